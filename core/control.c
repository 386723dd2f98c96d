/* core/control.c: the control shard. It owns the configuration: loads it,
 * reloads it on SIGHUP and publishes each version to the shards as an immutable
 * topology snapshot, freed once every shard has moved past it. It also turns
 * SIGTERM/SIGINT into drain/stop messages and serves the control port. */
#include "core/control.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/http.h"
#include "core/log.h"
#include "core/shard.h"

#define MAX_RETIRED 64

static _Atomic uint64_t topo_version;
static _Atomic bool shutting_down;
static struct timespec started_at;
static struct topology *current;
static struct topology *retired[MAX_RETIRED];
static int nretired;

uint64_t control_topology_version(void) { return atomic_load(&topo_version); }
bool control_shutting_down(void) { return atomic_load(&shutting_down); }
const char *control_version(void) { return "pgring 0.1.0"; }

double control_uptime(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - started_at.tv_sec) + (double)(now.tv_nsec - started_at.tv_nsec) / 1e9;
}

static void broadcast(int type, void *ptr)
{
	struct shard_msg m = { .type = type, .ptr = ptr };
	for (int i = 0; i < shard_count(); i++) {
		while (!shard_post(-1, i, &m))
			usleep(1000);   /* inbox full: the shard is busy, it drains every loop */
	}
}

/* Free snapshots that no shard runs any more. */
static void collect_retired(void)
{
	uint64_t oldest = UINT64_MAX;
	for (int i = 0; i < shard_count(); i++) {
		uint64_t v = atomic_load_explicit(&shard_get(i)->stats->topology_version, memory_order_acquire);
		if (v < oldest)
			oldest = v;
	}
	int k = 0;
	for (int i = 0; i < nretired; i++) {
		if (retired[i]->version < oldest) {
			config_free(retired[i]->cfg);
			free(retired[i]);
		} else {
			retired[k++] = retired[i];
		}
	}
	nretired = k;
}

static void warn_cb(const char *msg) { log_warning("%s", msg); }

static void warn_restart_only(const struct config *old, const struct config *new)
{
	if ((old->listen_addr == NULL) != (new->listen_addr == NULL) ||
	    (old->listen_addr && strcmp(old->listen_addr, new->listen_addr)) || old->listen_port != new->listen_port)
		log_warning("listen_addr/listen_port changes take effect at restart");
	if (old->shards != new->shards || old->n_shard_cpus != new->n_shard_cpus)
		log_warning("shards/shard_cpus changes take effect at restart");
}

static void reload(const char *path)
{
	char err[512];
	struct config *cfg;
	log_reopen();
	if (config_load(path, &cfg, err, sizeof err, warn_cb)) {
		log_error("reload failed, keeping the running configuration: %s", err);
		return;
	}
	if (nretired == MAX_RETIRED) {
		collect_retired();
		if (nretired == MAX_RETIRED) {
			log_error("reload refused: shards have not adopted earlier configurations yet");
			config_free(cfg);
			return;
		}
	}
	struct topology *t = calloc(1, sizeof *t);
	if (!t) {
		config_free(cfg);
		return;
	}
	warn_restart_only(current->cfg, cfg);
	t->version = current->version + 1;
	t->cfg = cfg;
	retired[nretired++] = current;
	current = t;
	atomic_store(&topo_version, t->version);
	broadcast(SHARD_MSG_TOPOLOGY, t);
	log_notice("configuration reloaded (version %llu)", (unsigned long long)t->version);
}

int control_run(struct config *cfg, const char *config_path)
{
	(void)cfg;
	clock_gettime(CLOCK_MONOTONIC, &started_at);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	struct http_server *http = NULL;
	if (current->cfg->control_port > 0) {
		char err[256];
		http = http_open(current->cfg->control_addr ? current->cfg->control_addr : "127.0.0.1",
				 current->cfg->control_port, err, sizeof err);
		if (!http) {
			log_error("control port: %s", err);
			return 1;
		}
	}
	log_notice("%s running: %d shards, listening on %s:%d%s%s", control_version(), shard_count(),
		   current->cfg->listen_addr ? current->cfg->listen_addr : "-", current->cfg->listen_port,
		   http ? ", control port " : "", http ? "on" : "");
	int status = 0;
	while (shard_running() > 0) {
		struct pollfd fds[1 + HTTP_MAX_POLLFDS];
		fds[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		int n = 1;
		if (http)
			n += http_pollfds(http, fds + 1, HTTP_MAX_POLLFDS);
		int timeout = 500;
		if (http) {
			int t = http_next_timeout(http);
			if (t >= 0 && t < timeout)
				timeout = t;
		}
		poll(fds, (nfds_t)n, timeout);
		if (http)
			http_process(http, fds + 1, n - 1);
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof si) == sizeof si) {
			switch (si.ssi_signo) {
			case SIGHUP:
				reload(config_path);
				break;
			case SIGTERM:
				if (atomic_load(&shutting_down)) {
					log_notice("second SIGTERM: stopping now");
					broadcast(SHARD_MSG_STOP, NULL);
				} else {
					log_notice("SIGTERM: finishing transactions, then stopping (shutdown_timeout %gs)",
						   current->cfg->shutdown_timeout);
					atomic_store(&shutting_down, true);
					broadcast(SHARD_MSG_DRAIN, NULL);
				}
				break;
			case SIGINT:
				log_notice("SIGINT: stopping now");
				atomic_store(&shutting_down, true);
				broadcast(SHARD_MSG_STOP, NULL);
				break;
			}
		}
		collect_retired();
	}
	shard_join_all();
	http_close(http);
	close(sfd);
	log_notice("stopped");
	return status;
}

/* main hands over the first snapshot before the shards start */
struct topology *control_first_topology(struct config *cfg)
{
	current = calloc(1, sizeof *current);
	if (!current)
		return NULL;
	current->version = 1;
	current->cfg = cfg;
	atomic_store(&topo_version, 1);
	return current;
}
