/* core/control/daemon.c: what a service manager and an init system expect of
 * a daemon: systemd's readiness protocol over NOTIFY_SOCKET (a datagram per
 * state change, no libsystemd needed), dropping root for `user` once the
 * listening sockets are open, and starting a successor on SIGUSR2 (as nginx
 * does for a binary upgrade). */
#include "core/control/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
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

/* ---- the successor (SIGUSR2) ---- */

static char exe[PATH_MAX];
static char **succ_argv;

void daemon_set_successor(char *const *argv)
{
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	int argc = 0;
	while (argv[argc])
		argc++;
	succ_argv = calloc((size_t)argc + 1, sizeof *succ_argv);
	for (int i = 0; succ_argv && i < argc; i++)
		succ_argv[i] = strdup(i ? argv[i] : exe);
}

long daemon_spawn_successor(void)
{
	if (!exe[0] || !succ_argv) {
		errno = ENOENT;
		return -1;
	}
	int pipefd[2];   /* the grandchild's pid, back to us */
	if (pipe2(pipefd, O_CLOEXEC))
		return -1;
	pid_t child = fork();
	if (child < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (child == 0) {
		/* the child: only async-signal-safe calls from here (threads ran) */
		pid_t grandchild = fork();
		if (grandchild == 0) {
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			int null = open("/dev/null", O_RDONLY);
			if (null >= 0) {
				dup2(null, 0);
				close(null);
			}
			execv(exe, succ_argv);
			_exit(127);
		}
		long g = grandchild;
		ssize_t w = write(pipefd[1], &g, sizeof g);
		(void)w;
		_exit(grandchild < 0 ? 1 : 0);
	}
	close(pipefd[1]);
	long g = -1;
	ssize_t r = read(pipefd[0], &g, sizeof g);
	close(pipefd[0]);
	waitpid(child, NULL, 0);
	if (r != sizeof g || g < 0) {
		errno = ECHILD;
		return -1;
	}
	return g;
}
