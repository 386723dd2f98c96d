/* core/control/control.c: the control shard. It owns the configuration: loads it,
 * reloads it on SIGHUP and publishes each version to the shards as an immutable
 * topology snapshot, freed once every shard has moved past it. It also turns
 * SIGTERM/SIGINT into drain/stop messages, runs the health checks of every
 * cluster node (core/control/health.c), publishing a snapshot whenever a role or state
 * changes, and serves the control port. */
#include "core/control/control.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/authq.h"
#include "core/control/daemon.h"
#include "core/control/dns.h"
#include "core/control/fleet.h"
#include "core/control/handover.h"
#include "core/control/health.h"
#include "core/control/http.h"
#include "core/hba.h"
#include "core/log.h"
#include "core/shard.h"

#define MAX_RETIRED 64

static _Atomic uint64_t topo_version;
static _Atomic bool shutting_down;
static struct timespec started_at;
static struct topology *current;
static struct topology *retired[MAX_RETIRED];
static int nretired;
static const char *config_file;
static struct hba *server_hba;   /* auth_hba_file = @server: the newest rules read */

/* Calls from the shards (control_call): a queue per shard, published once
 * made, and an eventfd in the poll set that a call writes to. */
struct control_call_item {
	void (*fn)(void *arg);
	void *arg;
};
static struct queue *_Atomic call_inbox;
static int call_fd = -1;

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

static bool draining;   /* SIGTERM's drain began: a second one stops at once */

void control_wait_for_clients(void *arg)
{
	(void)arg;
	if (atomic_load(&shutting_down))
		return;
	log_notice("SHUTDOWN WAIT_FOR_CLIENTS: not accepting; stopping once every client has left (SIGTERM drains them)");
	daemon_notify("STOPPING=1");
	atomic_store(&shutting_down, true);
	broadcast(SHARD_MSG_WAIT_CLIENTS, NULL);
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
			/* the newest snapshot of a cfg owns it; older ones of it are older still */
			if (retired[i]->owns_cfg)
				config_free(retired[i]->cfg);
			if (retired[i]->owns_hba)
				hba_free((struct hba *)retired[i]->hba);
			free(retired[i]);
		} else {
			retired[k++] = retired[i];
		}
	}
	nretired = k;
}

static void warn_cb(const char *msg) { log_warning("%s", msg); }

/* A snapshot of cfg and the nodes' current roles and states. */
static struct topology *make_topology(struct config *cfg, uint64_t version)
{
	size_t nodes = health_topology_size(cfg);
	struct topology *t = calloc(1, sizeof *t + nodes + dns_topology_size());
	if (!t)
		return NULL;
	t->version = version;
	t->cfg = cfg;
	t->owns_cfg = true;
	t->clusters = (struct topo_cluster *)(t + 1);
	t->hba = cfg->hba_cluster >= 0 ? server_hba : cfg->hba;
	t->owns_hba = t->hba && t->hba == server_hba;
	health_fill(t);
	dns_fill(t, (char *)(t + 1) + nodes);
	return t;
}

/* Make t the current snapshot and send it to every shard. */
static void publish(struct topology *t)
{
	if (current->cfg == t->cfg)
		current->owns_cfg = false;   /* ownership moves to the newest snapshot of the cfg */
	if (current->hba == t->hba)
		current->owns_hba = false;   /* and of the rules */
	retired[nretired++] = current;
	current = t;
	atomic_store(&topo_version, t->version);
	broadcast(SHARD_MSG_TOPOLOGY, t);
}

/* Room in the retired list, or false (shards have not caught up yet). */
static bool room_to_retire(void)
{
	if (nretired == MAX_RETIRED)
		collect_retired();
	return nretired < MAX_RETIRED;
}

/* A node's role or state, or a host name's addresses, changed: a new snapshot
 * with the same configuration. */
static void topology_changed(void)
{
	if (!room_to_retire())
		return;   /* tried again after the next check */
	struct topology *t = make_topology(current->cfg, current->version + 1);
	if (t)
		publish(t);
}

/* New rules from the server. The ones before stay with the snapshots that
 * carry them (freed with the last); ones no snapshot took yet go now. */
static void server_rules(struct hba *rules)
{
	if (server_hba && server_hba != current->hba) {
		bool carried = false;
		for (int i = 0; i < nretired; i++)
			carried |= retired[i]->hba == server_hba;
		if (!carried)
			hba_free(server_hba);
	}
	server_hba = rules;
}

static void warn_restart_only(const struct config *old, const struct config *new)
{
	if ((old->listen_addr == NULL) != (new->listen_addr == NULL) ||
	    (old->listen_addr && strcmp(old->listen_addr, new->listen_addr)) || old->listen_port != new->listen_port)
		log_warning("listen_addr/listen_port changes take effect at restart");
	if (old->shards != new->shards || old->n_shard_cpus != new->n_shard_cpus)
		log_warning("shards/shard_cpus changes take effect at restart");
}

/* The admin console's SETs in force (key, value, ..., NULL), applied over the
 * file until a reload makes the file authoritative again. */
static char **overrides;
static int noverrides;
/* Patroni's members the file does not name (cluster, node, value, ...,
 * NULL), nodes in every configuration made while they are members. */
static char **found;

static void overrides_clear(void)
{
	for (int i = 0; i < noverrides; i++)
		free(overrides[i]);
	free(overrides);
	overrides = NULL;
	noverrides = 0;
}

/* Load the file with ov over it and put the result in force; 0, or -1 with
 * why in err (the running configuration stays). */
static int apply(const char *path, const char *const *ov, char *err, size_t errlen)
{
	struct config *cfg;
	if (config_load_with(path, ov, (const char *const *)found, &cfg, err, errlen, warn_cb))
		return -1;
	if (!room_to_retire()) {
		snprintf(err, errlen, "shards have not adopted earlier configurations yet");
		config_free(cfg);
		return -1;
	}
	struct topology *t = NULL;
	if (dns_configure(cfg) < 0 || health_configure(cfg) < 0 || fleet_configure(cfg) < 0 ||
	    !(t = make_topology(cfg, current->version + 1))) {
		snprintf(err, errlen, "out of memory");
		dns_configure(current->cfg);
		health_configure(current->cfg);
		fleet_configure(current->cfg);
		config_free(cfg);
		return -1;
	}
	warn_restart_only(current->cfg, cfg);
	authq_configure(cfg);   /* the looked-up secrets go with the old configuration */
	publish(t);
	return 0;
}

static int reload(const char *path)
{
	char err[512];
	log_reopen();
	daemon_notify("RELOADING=1");
	int rc = apply(path, NULL, err, sizeof err);
	daemon_notify("READY=1");   /* reloaded or not, it serves on */
	if (rc) {
		log_error("reload failed, keeping the running configuration: %s", err);
		return -1;
	}
	if (noverrides)
		log_notice("reload: %d setting%s made by SET replaced by the file's", noverrides / 2,
			   noverrides == 2 ? "" : "s");
	overrides_clear();
	log_notice("configuration reloaded (version %llu)", (unsigned long long)current->version);
	return 0;
}

/* Patroni's members changed: a configuration with them as nodes, the file's
 * and the console's settings as they are. */
static void members_found(char **now)
{
	char err[512];
	fleet_found_free(found);
	found = now;
	if (apply(config_file, (const char *const *)overrides, err, sizeof err))
		log_error("the members of Patroni's scopes could not be taken as nodes: %s", err);
	else
		log_notice("configuration version %llu: nodes from Patroni's members", (unsigned long long)current->version);
}

int control_reset(const char *key, char *err, size_t errlen)
{
	char **ov = calloc((size_t)noverrides + 1, sizeof *ov);
	int n = 0;
	if (!ov) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < noverrides; i += 2)
		if (key && strcmp(overrides[i], key)) {
			ov[n++] = overrides[i];
			ov[n++] = overrides[i + 1];
		}
	if (n == noverrides) {
		free(ov);
		return 0;   /* not set by SET: the file's value is in force already */
	}
	int rc = apply(config_file, (const char *const *)ov, err, errlen);
	if (rc == 0) {
		for (int i = 0; i < noverrides; i += 2)
			if (!key || !strcmp(overrides[i], key)) {
				free(overrides[i]);
				free(overrides[i + 1]);
			}
		free(overrides);
		overrides = ov;
		noverrides = n;
		log_notice("RESET %s (configuration version %llu)", key ? key : "ALL",
			   (unsigned long long)current->version);
	} else {
		free(ov);
	}
	return rc;
}

int control_set(const char *key, const char *value, char *err, size_t errlen)
{
	int n = noverrides, at = n;
	for (int i = 0; i < n; i += 2)
		if (!strcmp(overrides[i], key))
			at = i;
	char **ov = calloc((size_t)n + 3, sizeof *ov);
	if (!ov) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++)
		ov[i] = overrides[i];
	ov[at] = (char *)key;
	ov[at + 1] = (char *)value;
	int len = at == n ? n + 2 : n;
	int rc = apply(config_file, (const char *const *)ov, err, errlen);
	if (rc == 0) {
		char *k = strdup(key), *v = strdup(value);
		if (!k || !v) {
			free(k);
			free(v);
			free(ov);
			snprintf(err, errlen, "out of memory");
			return -1;   /* in force, but not kept for the next SET: said so */
		}
		if (at < n) {
			free(overrides[at]);
			free(overrides[at + 1]);
		}
		ov[at] = k;
		ov[at + 1] = v;
		free(overrides);
		overrides = ov;
		noverrides = len;
		log_notice("SET %s = '%s' (configuration version %llu)", key, value,
			   (unsigned long long)current->version);
	} else {
		free(ov);
	}
	return rc;
}

int control_reload(void) { return reload(config_file); }

bool control_call(int from, void (*fn)(void *arg), void *arg)
{
	struct queue *q = atomic_load_explicit(&call_inbox, memory_order_acquire);
	struct control_call_item it = { fn, arg };
	if (!q || from < 0 || from >= shard_count() || !queue_push(&q[from], &it))
		return false;
	uint64_t one = 1;
	ssize_t w = write(call_fd, &one, sizeof one);
	(void)w;
	return true;
}

/* The queues exist before the loop polls them; a shard that calls earlier is
 * told to try again. */
static void calls_open(void)
{
	int n = shard_count();
	struct queue *q = calloc((size_t)n, sizeof *q);
	call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; q && i < n; i++)
		if (queue_init(&q[i], 64, sizeof(struct control_call_item))) {
			free(q);   /* the ones made leak; a process out of memory at start */
			q = NULL;
		}
	if (q && call_fd >= 0)
		atomic_store_explicit(&call_inbox, q, memory_order_release);
	else
		log_warning("admin console: no calls to the control thread (out of memory)");
}

static void calls_run(void)
{
	struct queue *q = atomic_load_explicit(&call_inbox, memory_order_relaxed);
	if (!q)
		return;
	uint64_t v;
	ssize_t r = read(call_fd, &v, sizeof v);
	(void)r;
	struct control_call_item it;
	for (int i = 0; i < shard_count(); i++)
		while (queue_pop(&q[i], &it))
			it.fn(it.arg);
}

/* SIGUSR2: run the binary on disk again as a successor (pgring -R). It
 * takes over or fails on its own; this process learns which on the hand-over
 * socket, as with a successor started by hand. */
static void spawn_successor(void)
{
	if (atomic_load(&shutting_down) || handover_handing_over()) {
		log_warning("SIGUSR2: %s: no successor started",
			    atomic_load(&shutting_down) ? "shutting down" : "a successor serves already");
		return;
	}
	long pid = daemon_spawn_successor();
	if (pid < 0)
		log_warning("SIGUSR2: cannot start a successor: %s", strerror(errno));
	else
		log_notice("SIGUSR2: started the binary again (pid %ld) to take over from this process", pid);
}

int control_run(struct config *cfg, const char *config_path)
{
	(void)cfg;
	config_file = config_path;
	clock_gettime(CLOCK_MONOTONIC, &started_at);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR2);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	struct http_server *http = NULL;
	bool http_owed = false;   /* pgring -R: the predecessor still has the control port */
	if (current->cfg->control_port > 0) {
		char err[256];
		http = http_open(current->cfg->control_addr ? current->cfg->control_addr : "127.0.0.1",
				 current->cfg->control_port, err, sizeof err);
		if (!http && handover_taking_over()) {
			log_notice("control port: %s; opened once the predecessor lets it go", err);
			http_owed = true;
		} else if (!http) {
			log_error("control port: %s", err);
			return 1;
		}
	}
	uint64_t http_retry_at = 0;
	char why[256];
	if (daemon_drop_privileges(current->cfg->user, why, sizeof why)) {
		log_error("%s", why);
		http_close(http);
		broadcast(SHARD_MSG_STOP, NULL);
		shard_join_all();
		return 1;
	}
	char ctl[96] = "";
	if (http)
		snprintf(ctl, sizeof ctl, ", control port %s:%d",
			 current->cfg->control_addr ? current->cfg->control_addr : "127.0.0.1", current->cfg->control_port);
	log_notice("%s running: %d shards, listening on %s:%d%s, %d cluster node%s", control_version(), shard_count(),
		   current->cfg->listen_addr ? current->cfg->listen_addr : "-", current->cfg->listen_port, ctl,
		   health_count(), health_count() == 1 ? "" : "s");
	daemon_notify("READY=1\nSTATUS=serving");
	calls_open();
	handover_ready();          /* pgring -R: the predecessor stops accepting now */
	handover_start(current->cfg->listen_port);
	int status = 0;
	int maxfds = 4 + HTTP_MAX_POLLFDS + health_count() + CONFIG_MAX_NODES * 4;
	struct pollfd *fds = NULL;
	while (shard_running() > 0) {
		int want = 4 + HTTP_MAX_POLLFDS + health_count() + authq_count() + FLEET_MAX_POLLFDS;
		if (!fds || want > maxfds) {
			maxfds = want > maxfds ? want : maxfds;
			struct pollfd *f = realloc(fds, (size_t)maxfds * sizeof *f);
			if (!f) {
				usleep(100000);
				continue;
			}
			fds = f;
		}
		fds[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		int n = 1, nhttp = 0;
		if (http)
			n += nhttp = http_pollfds(http, fds + 1, HTTP_MAX_POLLFDS);
		int nhealth = health_pollfds(fds + n, maxfds - n - 1);
		n += nhealth;
		n += authq_pollfds(fds + n, maxfds - n - 1);
		int nfleet = fleet_pollfds(fds + n, maxfds - n - 3);
		struct pollfd *fleet_fds = fds + n;
		n += nfleet;
		if (call_fd >= 0)
			fds[n++] = (struct pollfd){ .fd = call_fd, .events = POLLIN };
		int nhand = handover_pollfds(fds + n, 2);
		n += nhand;
		int timeout = 500;
		int t = http ? http_next_timeout(http) : -1;
		if (t >= 0 && t < timeout)
			timeout = t;
		t = health_next_timeout();
		if (t >= 0 && t < timeout)
			timeout = t;
		t = dns_next_timeout();
		if (t >= 0 && t < timeout)
			timeout = t;
		t = authq_next_timeout();
		if (t >= 0 && t < timeout)
			timeout = t;
		t = fleet_next_timeout();
		if (t >= 0 && t < timeout)
			timeout = t;
		poll(fds, (nfds_t)n, timeout);
		if (http)
			http_process(http, fds + 1, nhttp);
		bool moved = dns_process();   /* first: the checks use its addresses */
		bool changed = health_process(fds + 1 + nhttp, nhealth) || moved;
		changed |= fleet_process(fleet_fds, nfleet);
		char **now_found;
		if (fleet_take_found(&now_found))
			members_found(now_found);
		struct hba *rules = health_take_hba();
		if (rules) {
			server_rules(rules);
			changed = true;
		}
		/* rules a full retired list kept from going out go with the next try */
		if (changed || (current->cfg->hba_cluster >= 0 && current->hba != server_hba))
			topology_changed();
		switch (handover_process(fds + n - nhand, nhand, atomic_load(&shutting_down))) {
		case HANDOVER_SUCCESSOR_READY:
			http_close(http);   /* the successor binds the control port next */
			http = NULL;
			break;
		case HANDOVER_PREDECESSOR_GONE:
			http_retry_at = 0;
			break;
		case HANDOVER_SUCCESSOR_GONE:
			http_owed = !http && current->cfg->control_port > 0;   /* released at READY */
			http_retry_at = 0;
			break;
		case HANDOVER_NOTHING:
			break;
		}
		if (http_owed && shard_now_us() >= http_retry_at) {
			char err[256];
			http = http_open(current->cfg->control_addr ? current->cfg->control_addr : "127.0.0.1",
					 current->cfg->control_port, err, sizeof err);
			http_retry_at = shard_now_us() + 200000;
			if (http) {
				http_owed = false;
				log_notice("control port open");
			}
		}
		calls_run();        /* auth_query questions start their lookups here */
		authq_process();
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof si) == sizeof si) {
			switch (si.ssi_signo) {
			case SIGHUP:
				reload(config_path);
				break;
			case SIGTERM:
				if (draining) {
					log_notice("second SIGTERM: stopping now");
					broadcast(SHARD_MSG_STOP, NULL);
				} else {
					log_notice("SIGTERM: finishing transactions, then stopping (shutdown_timeout %gs)",
						   current->cfg->shutdown_timeout);
					if (!atomic_load(&shutting_down))
						daemon_notify("STOPPING=1");
					atomic_store(&shutting_down, true);
					draining = true;
					broadcast(SHARD_MSG_DRAIN, NULL);
				}
				break;
			case SIGUSR2:
				spawn_successor();
				break;
			case SIGINT:
				log_notice("SIGINT: stopping now");
				daemon_notify("STOPPING=1");
				atomic_store(&shutting_down, true);
				broadcast(SHARD_MSG_STOP, NULL);
				break;
			}
		}
		collect_retired();
	}
	shard_join_all();
	calls_run();   /* the last clients the shards handed over, queued as they stopped */
	handover_stop();
	free(fds);
	authq_shutdown();
	fleet_shutdown();
	fleet_found_free(found);
	found = NULL;
	health_shutdown();
	dns_shutdown();
	http_close(http);
	close(sfd);
	log_notice("stopped");
	return status;
}

/* main hands over the first snapshot before the shards start */
struct topology *control_first_topology(struct config *cfg, const char *seed, size_t seed_len)
{
	if (dns_configure(cfg) < 0)
		return NULL;
	dns_wait(2);   /* the first server connections find their addresses */
	if (health_configure(cfg) < 0 || fleet_configure(cfg) < 0)
		return NULL;
	if (seed) {
		int n = health_seed(seed, seed_len);
		log_notice("upgrade: the predecessor's view of %d cluster node%s taken over; health checks go on from it",
			   n, n == 1 ? "" : "s");
	}
	if (!(current = make_topology(cfg, 1)))
		return NULL;
	authq_configure(cfg);
	atomic_store(&topo_version, 1);
	return current;
}
