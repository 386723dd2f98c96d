/* core/control/daemon.h: service-manager readiness and privilege drop
 * (core/control/daemon.c). */
#ifndef PGRING_DAEMON_H
#define PGRING_DAEMON_H

#include <stddef.h>

/* Tell the service manager a state ("READY=1", "RELOADING=1", "STOPPING=1",
 * "STATUS=..."; several joined by '\n') if NOTIFY_SOCKET is set. */
void daemon_notify(const char *state);
/* Become `user` (PgBouncer's key) if given and not already: supplementary
 * groups, group and user, for good. -1 with err when that fails. */
int daemon_drop_privileges(const char *user, char *err, size_t errlen);

#endif
