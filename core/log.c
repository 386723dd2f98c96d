/* core/log.c: the log sink. Lines look like
 *   2026-11-23 16:50:01.123 UTC [1234] LOG shard=1 c=42: message */
#include "core/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Thread_local int log_shard_id = -1;
int log_level_max = LOG_NOTICE;
static int log_fd = 2;
static const char *log_path;

static const char *level_names[] = { "ERROR", "WARNING", "LOG", "INFO", "DEBUG", "TRACE" };

int log_open(int verbosity, const char *file)
{
	int lvl = LOG_NOTICE + verbosity;
	if (lvl < LOG_WARNING)
		lvl = LOG_WARNING;
	if (lvl > LOG_TRACE)
		lvl = LOG_TRACE;
	log_level_max = lvl;
	log_path = (file && *file) ? file : NULL;
	if (log_path) {
		int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -1;
		log_fd = fd;
	}
	return 0;
}

void log_reopen(void)
{
	if (!log_path)
		return;
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	int old = log_fd;
	log_fd = fd;
	if (old > 2)
		close(old);
}

void log_write(int level, unsigned long long conn, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof line - n, ".%03d UTC [%d] %s", (int)(tv.tv_usec / 1000),
		      (int)getpid(), level_names[level]);
	if (log_shard_id >= 0)
		n += snprintf(line + n, sizeof line - n, " shard=%d", log_shard_id);
	else
		n += snprintf(line + n, sizeof line - n, " control");
	if (conn)
		n += snprintf(line + n, sizeof line - n, " c=%llu", conn);
	n += snprintf(line + n, sizeof line - n, ": ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(log_fd, line, (size_t)n);
	(void)w;
}
