/* pool/main.c: the program, which stacks the layers: command line, start-up
 * checks, daemonizing and the pidfile; then the shards start with the pool
 * layer above them (pool/layer.c) and this thread becomes the control shard. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/control/daemon.h"
#include "core/log.h"
#include "core/logsys.h"
#include "core/registry.h"
#include "core/shard.h"
#include "core/takeover.h"
#include "core/control/handover.h"
#include "pool/pool.h"
#include "tls/tls.h"

static void usage(FILE *f)
{
	fprintf(f,
		"pgring: a PostgreSQL connection pooler on io_uring\n\n"
		"Usage: pgring [OPTION]... [-c] CONFIG_FILE\n"
		"  -c FILE   configuration file (pgring.ini or an existing pgbouncer.ini)\n"
		"  -t        check the configuration and exit (0: valid, 1: not)\n"
		"  -d        run in the background\n"
		"  -v        more log output (repeat for more)\n"
		"  -q        only warnings and errors\n"
		"  -R        take over from the pgring serving the same port: its listening\n"
		"            sockets and its clients, without dropping any (online upgrade)\n"
		"  -V        print the version and exit\n"
		"  -h        this help\n\n"
		"Signals: SIGHUP reloads the configuration, SIGUSR2 starts this binary\n"
		"again with -R (an online upgrade), SIGTERM finishes running\n"
		"transactions then exits (shutdown_timeout), SIGINT exits at once.\n");
}

static void warn_stderr(const char *msg) { fprintf(stderr, "pgring: warning: %s\n", msg); }

static int write_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
	int rc = write(fd, buf, (size_t)n) == n ? 0 : -1;
	close(fd);
	return rc;
}

static bool pidfile_is_mine(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (!f)
		return false;
	bool mine = fscanf(f, "%d", &pid) == 1 && pid == (int)getpid();
	fclose(f);
	return mine;
}

/* pgring -R: connect to the pgring serving port and receive its listening
 * sockets, which the shards then use instead of opening their own, and its
 * view of the cluster nodes (*seed, malloc'd; NULL if none came). Returns
 * the hand-over socket, or -1 with err (the predecessor is left as it was). */
static int take_listeners(int port, char **seed, size_t *seed_len, char *err, size_t errlen)
{
	int sock = takeover_connect(port, err, errlen);
	if (sock < 0)
		return -1;
	if (takeover_send(sock, TAKEOVER_HELLO, TAKEOVER_MAGIC, sizeof TAKEOVER_MAGIC - 1, -1)) {
		snprintf(err, errlen, "hand-over socket: %s", strerror(errno));
		close(sock);
		return -1;
	}
	int got = 0;
	for (;;) {
		static uint8_t p[TAKEOVER_REC_MAX];
		uint8_t type;
		uint32_t n;
		int fd;
		int r = takeover_recv(sock, &type, p, sizeof p, &n, &fd, true);
		if (r <= 0) {
			snprintf(err, errlen, "the serving pgring %s before sending its listening sockets",
				 r == 0 ? "closed the hand-over socket" : strerror(errno));
			close(sock);
			return -1;
		}
		if (type == TAKEOVER_LISTENER && n == 3 && fd >= 0) {
			shard_inherit_listener(p[0] << 8 | p[1], p[2] != 0, fd);
			got++;
			continue;
		}
		if (fd >= 0)
			close(fd);
		if (type == TAKEOVER_TOPOLOGY && !*seed && (*seed = malloc(n ? n : 1))) {
			memcpy(*seed, p, n);
			*seed_len = n;
			continue;
		}
		if (type == TAKEOVER_LISTENERS_END && n == 2)
			break;
		snprintf(err, errlen, "unexpected record '%c' on the hand-over socket", type);
		close(sock);
		return -1;
	}
	log_notice("upgrade: %d listening socket%s received from the serving pgring", got, got == 1 ? "" : "s");
	return sock;
}

static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("pgring: fork");
		exit(1);
	}
	if (pid > 0)
		_exit(0);
	setsid();
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

/* SIGUSR2 runs this again as a successor (-R), with the same flags and the
 * configuration by its absolute path (a daemon is in / by then). */
static void remember_successor(char *argv0, const char *path, int verbosity, bool background)
{
	char abs[PATH_MAX], *succ[16];
	int k = 0;
	succ[k++] = argv0;
	for (int i = 0; i < verbosity && k < 10; i++)
		succ[k++] = "-v";
	if (verbosity < 0)
		succ[k++] = "-q";
	if (background)
		succ[k++] = "-d";
	succ[k++] = "-R";
	succ[k++] = "-c";
	succ[k++] = realpath(path, abs) ? abs : (char *)path;
	succ[k] = NULL;
	daemon_set_successor(succ);   /* copies them */
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool check = false, background = false, takeover = false;
	int verbosity = 0;
	int opt;
	while ((opt = getopt(argc, argv, "c:tdvqRVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': check = true; break;
		case 'd': background = true; break;
		case 'v': verbosity++; break;
		case 'q': verbosity = -1; break;
		case 'R': takeover = true; break;
		case 'V': puts(control_version()); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (!path && optind < argc)
		path = argv[optind];
	if (!path) {
		usage(stderr);
		return 1;
	}
	remember_successor(argv[0], path, verbosity, background);
	char err[1024];
	struct config *cfg;
	tls_init();   /* before the configuration, which builds TLS contexts */
	if (config_load(path, &cfg, err, sizeof err, warn_stderr)) {
		fprintf(stderr, "pgring: %s\n", err);
		return 1;
	}
	if (check) {
		printf("pgring: configuration file %s is valid\n", path);
		config_free(cfg);
		return 0;
	}
	if (verbosity >= 0)
		verbosity += cfg->verbose;
	if (background && !cfg->logfile)
		fprintf(stderr, "pgring: warning: -d without logfile: log output is discarded\n");
	if (background)
		daemonize();
	if (log_open(verbosity, cfg->logfile)) {
		fprintf(stderr, "pgring: cannot open logfile %s: %s\n", cfg->logfile, strerror(errno));
		return 1;
	}
	if (cfg->syslog && logsys_open(cfg->syslog_ident, cfg->syslog_facility)) {
		log_error("syslog_facility %s: not a facility (daemon, user, local0 ... local7)", cfg->syslog_facility);
		return 1;
	}
	/* descriptors: as many as we may have */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* signals go to the control shard's signalfd; threads inherit the mask */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int predecessor = -1;
	char *seed = NULL;
	size_t seed_len = 0;
	if (takeover && (predecessor = take_listeners(cfg->listen_port, &seed, &seed_len, err, sizeof err)) < 0) {
		log_error("cannot take over: %s", err);
		fprintf(stderr, "pgring: cannot take over: %s\n", err);
		return 1;
	}
	int nshards = cfg->shards > 0 ? cfg->shards : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nshards < 1)
		nshards = 1;
	if (nshards > CONFIG_MAX_SHARDS)
		nshards = CONFIG_MAX_SHARDS;
	if (registry_init(nshards) || stats_init(nshards)) {
		log_error("out of memory");
		return 1;
	}
	struct topology *topo = control_first_topology(cfg, seed, seed_len);
	free(seed);
	if (!topo || shard_start_all(topo, &pool_layer, nshards, cfg->shard_cpus, cfg->n_shard_cpus, err, sizeof err)) {
		log_error("cannot start: %s", err);
		fprintf(stderr, "pgring: cannot start: %s\n", err);
		return 1;
	}
	if (predecessor >= 0)
		handover_set_predecessor(predecessor);   /* READY once control_run serves */
	if (cfg->pidfile && write_pidfile(cfg->pidfile))
		log_warning("cannot write pidfile %s: %s", cfg->pidfile, strerror(errno));
	char *pidfile = cfg->pidfile ? strdup(cfg->pidfile) : NULL;
	int status = control_run(cfg, path);
	if (pidfile && pidfile_is_mine(pidfile))   /* after pgring -R it is the successor's */
		unlink(pidfile);
	free(pidfile);
	return status;
}
