/* core/control/daemon.c: what a service manager and an init system expect of
 * a daemon: systemd's readiness protocol over NOTIFY_SOCKET (a datagram per
 * state change, no libsystemd needed), and dropping root for `user` once the
 * listening sockets are open. */
#include "core/control/daemon.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

void daemon_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;   /* an abstract socket */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%s\nMAINPID=%ld", state, (long)getpid());
	if (strstr(state, "RELOADING=1")) {
		/* systemd 253 and later want the monotonic time with RELOADING=1 */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		n += snprintf(msg + n, sizeof msg - (size_t)n, "\nMONOTONIC_USEC=%llu",
			      (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	}
	if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warning("NOTIFY_SOCKET %s: %s", path, strerror(errno));
	close(fd);
}

int daemon_drop_privileges(const char *user, char *err, size_t errlen)
{
	if (!user || !*user)
		return 0;
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen, "user %s: %s", user, errno ? strerror(errno) : "no such user");
		return -1;
	}
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
		return 0;   /* already that user */
	if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) {
		snprintf(err, errlen, "cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "user %s: root privileges could be regained", user);
		return -1;
	}
	log_notice("running as user %s (uid %lu, gid %lu)", user, (unsigned long)pw->pw_uid, (unsigned long)pw->pw_gid);
	return 0;
}
