/* core/control/daemon.h: service-manager readiness, privilege drop and the
 * successor a SIGUSR2 starts (core/control/daemon.c). */
#ifndef PGRING_DAEMON_H
#define PGRING_DAEMON_H

#include <stddef.h>

/* Tell the service manager a state ("READY=1", "RELOADING=1", "STOPPING=1",
 * "STATUS=..."; several joined by '\n') if NOTIFY_SOCKET is set. */
void daemon_notify(const char *state);
/* Become `user` (PgBouncer's key) if given and not already: supplementary
 * groups, group and user, for good. -1 with err when that fails. */
int daemon_drop_privileges(const char *user, char *err, size_t errlen);
/* At start: how to run this binary again as a successor (pgring -R): the
 * executable's path now (a package upgrade replaces the file, not the name)
 * and the arguments (copied; argv[0] is replaced). */
void daemon_set_successor(char *const *argv);
/* SIGUSR2: start the successor, detached (a grandchild, so that nobody has
 * to wait for it), in this process's cgroup and with its stdout and stderr,
 * so that a service manager keeps it (it sends MAINPID= when it serves). Its
 * pid, or -1 with errno. */
long daemon_spawn_successor(void);

#endif
