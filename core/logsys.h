/* core/logsys.h: log lines to syslog too (core/logsys.c). */
#ifndef PGRING_LOGSYS_H
#define PGRING_LOGSYS_H

#include <stddef.h>

/* Start sending to syslog as ident with facility (daemon, user, local0..7);
 * -1: no such facility. */
int logsys_open(const char *ident, const char *facility);
/* One line (without the time and pid, which syslog adds) at pgring's level. */
void logsys_line(int level, const char *text, size_t len);

#endif
