/* core/logsys.c: log lines to syslog as well (PgBouncer's syslog,
 * syslog_ident, syslog_facility). Apart from core/log.c because <syslog.h>
 * takes the LOG_* names pgring's levels use. */
#include "core/logsys.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

static bool logsys_on;

int logsys_open(const char *ident, const char *facility)
{
	static const struct { const char *name; int value; } facilities[] = {
		{ "daemon", LOG_DAEMON }, { "user", LOG_USER }, { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
		{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};
	for (size_t i = 0; i < sizeof facilities / sizeof facilities[0]; i++) {
		if (strcasecmp(facility, facilities[i].name) == 0) {
			openlog(ident, LOG_PID | LOG_NDELAY, facilities[i].value);
			logsys_on = true;
			return 0;
		}
	}
	return -1;
}

void logsys_line(int level, const char *text, size_t len)
{
	/* pgring's levels: error, warning, notice, info, debug, trace */
	static const int priority[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG, LOG_DEBUG };
	if (logsys_on && level >= 0 && level < (int)(sizeof priority / sizeof priority[0]))
		syslog(priority[level], "%.*s", (int)len, text);
}
