/* pool/main.c: the program, which stacks the layers: command line, start-up
 * checks, daemonizing and the pidfile; then the shards start with the pool
 * layer above them (pool/layer.c) and this thread becomes the control shard. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/log.h"
#include "core/logsys.h"
#include "core/registry.h"
#include "core/shard.h"
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
		"  -V        print the version and exit\n"
		"  -h        this help\n\n"
		"Signals: SIGHUP reloads the configuration, SIGTERM finishes running\n"
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

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool check = false, background = false;
	int verbosity = 0;
	int opt;
	while ((opt = getopt(argc, argv, "c:tdvqVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': check = true; break;
		case 'd': background = true; break;
		case 'v': verbosity++; break;
		case 'q': verbosity = -1; break;
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
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int nshards = cfg->shards > 0 ? cfg->shards : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nshards < 1)
		nshards = 1;
	if (nshards > CONFIG_MAX_SHARDS)
		nshards = CONFIG_MAX_SHARDS;
	if (registry_init(nshards) || stats_init(nshards)) {
		log_error("out of memory");
		return 1;
	}
	struct topology *topo = control_first_topology(cfg);
	if (!topo || shard_start_all(topo, &pool_layer, nshards, cfg->shard_cpus, cfg->n_shard_cpus, err, sizeof err)) {
		log_error("cannot start: %s", err);
		fprintf(stderr, "pgring: cannot start: %s\n", err);
		return 1;
	}
	if (cfg->pidfile && write_pidfile(cfg->pidfile))
		log_warning("cannot write pidfile %s: %s", cfg->pidfile, strerror(errno));
	char *pidfile = cfg->pidfile ? strdup(cfg->pidfile) : NULL;
	int status = control_run(cfg, path);
	if (pidfile)
		unlink(pidfile);
	free(pidfile);
	return status;
}
