/* core/shard.c: the shard thread: ring set-up, listeners, the event loop that
 * reaps a batch of completions, drains the inboxes, starts the sends the batch
 * produced and submits everything with one io_uring_enter. */
#include "core/shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/balance.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "core/takeover.h"

#define TICK_US 100000

static struct shard *shards;
static int nshards;
static _Atomic int running;

int shard_running(void) { return atomic_load(&running); }

struct shard *shard_get(int id) { return &shards[id]; }
int shard_count(void) { return nshards; }

uint64_t shard_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Room for n more SQEs: when the SQ has less, push what it holds to the kernel. */
static void reserve_sqes(struct shard *s, unsigned n)
{
	while (io_uring_sq_space_left(&s->ring) < n) {
		io_uring_submit(&s->ring);
		stat_add(&s->stats->submits, 1);
	}
}

struct io_uring_sqe *shard_sqe(struct shard *s)
{
	/* get_sqe says when the SQ is full: asking for the space left first
	 * read the kernel's head twice per SQE */
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&s->ring))) {
		io_uring_submit(&s->ring);
		stat_add(&s->stats->submits, 1);
	}
	return sqe;
}

void shard_sqes(struct shard *s, struct io_uring_sqe **sqes, unsigned n)
{
	reserve_sqes(s, n);
	for (unsigned i = 0; i < n; i++)
		sqes[i] = io_uring_get_sqe(&s->ring);
}

struct sendbuf *shard_sendbuf_get(struct shard *s)
{
	struct sendbuf *sb = s->free_sendbufs;
	if (sb)
		s->free_sendbufs = sb->next;
	else if (!(sb = malloc(sizeof *sb)))
		return NULL;
	sb->next = NULL;
	sb->n = 0;
	sb->bytes = 0;
	return sb;
}

void shard_sendbuf_put(struct shard *s, struct sendbuf *sb)
{
	sb->next = s->free_sendbufs;
	s->free_sendbufs = sb;
}

void shard_flush_later(struct shard *s, struct conn *c)
{
	if (c->flushing)
		return;
	c->flushing = true;
	c->next_flush = s->flush_list;
	s->flush_list = c;
}

void shard_starved(struct shard *s, struct conn *c)
{
	if (c->starved)
		return;
	c->starved = true;
	c->next_starved = NULL;
	if (s->starved_tail)
		s->starved_tail->next_starved = c;
	else
		s->starved_head = c;
	s->starved_tail = c;
}

/* ---- listeners ---- */

/* Is host:port free for us? Our shards share the port through SO_REUSEPORT,
 * which would also let them join another process's group silently (a second
 * pgring with other users taking half the logins): a socket without it
 * cannot bind while anyone listens there. */
static bool port_taken(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);   /* TIME_WAIT is no owner */
	if (ai->ai_family == AF_INET6) {
		int zero = 0;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	}
	bool taken = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

void shard_tcp_options(const struct config *cfg, int fd)
{
	int one = 1, on = cfg->tcp_keepalive;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
	if (on && cfg->tcp_keepcnt > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->tcp_keepcnt, sizeof(int));
	if (on && cfg->tcp_keepidle > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->tcp_keepidle, sizeof(int));
	if (on && cfg->tcp_keepintvl > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->tcp_keepintvl, sizeof(int));
	if (cfg->tcp_user_timeout > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &cfg->tcp_user_timeout, sizeof(int));
}

/* A process that died a moment ago (a crash, SIGKILL, a supervisor restarting
 * pgring at once) may still hold its listening sockets: the kernel tears an
 * io_uring instance down after the process has gone, and its pending accept
 * keeps the socket listening meanwhile. So "in use" is believed only after it
 * lasts ADDR_IN_USE_TRIES x ADDR_IN_USE_PAUSE_US (2 s). */
#define ADDR_IN_USE_TRIES 20
#define ADDR_IN_USE_PAUSE_US 100000

static bool port_taken_a_while(const struct addrinfo *ai)
{
	for (int tries = 0; tries < ADDR_IN_USE_TRIES; tries++) {
		if (tries)
			usleep(ADDR_IN_USE_PAUSE_US);
		if (!port_taken(ai))
			return false;
	}
	return true;
}

/* share: so_reuseport (others may listen on the port too); probe: check that
 * nobody does (the first shard's socket). */
static int listen_tcp(const struct config *cfg, const char *host, int port, bool share, bool probe, char *err,
		      size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);
	int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "listen_addr %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (strcmp(host, "*") == 0 && ai->ai_family != AF_INET6 && ai->ai_next)
			continue;   /* "*": prefer the dual-stack IPv6 socket */
		if (probe && !share && port_taken_a_while(ai)) {
			snprintf(err, errlen, "cannot listen on %s:%d: the address is in use (another pgring or program "
					      "listens there; so_reuseport = 1 shares it on purpose)", host, port);
			fd = -1;
			break;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
		shard_tcp_options(cfg, fd);   /* accepted sockets inherit them: no call per client */
		if (ai->ai_family == AF_INET6) {
			int zero = 0;
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		}
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
			break;
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int unix_fd = -1;
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static int listen_unix(const struct config *cfg, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
	if (n >= (int)sizeof sa.sun_path) {
		snprintf(err, errlen, "unix_socket_dir too long");
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* a socket file someone still answers on is theirs; a dead one is removed */
	bool live = true;
	for (int tries = 0; live && tries < ADDR_IN_USE_TRIES; tries++) {
		if (tries)
			usleep(ADDR_IN_USE_PAUSE_US);
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
		if (probe >= 0)
			close(probe);
	}
	if (live) {
		snprintf(err, errlen, "cannot listen on %s: another server listens there", sa.sun_path);
		close(fd);
		return -1;
	}
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4096)) {
		snprintf(err, errlen, "cannot listen on %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	chmod(sa.sun_path, (mode_t)cfg->unix_socket_mode);
	strcpy(unix_path, sa.sun_path);
	return fd;
}

static void add_listener(struct shard *s, int fd, bool is_unix)
{
	struct listener *l = &s->listen[s->nlisten++];
	l->shard = s;
	l->fd = fd;
	l->is_unix = is_unix;
	l->armed = false;
}

/* pgring -R: the sockets the predecessor listened on (core/shard.h). */
#define INHERIT_MAX (CONFIG_MAX_SHARDS * 4)
/* Set once the listening sockets are shared with another process (given to a
 * successor, or taken from a predecessor, in an upgrade): a drain here then
 * closes its descriptors without shutting the sockets down under the other. */
static atomic_bool listeners_shared;

static struct { int old_shard, fd; } inherited[INHERIT_MAX];
static int ninherited;
static bool unix_handed;
static bool unix_inherited;

void shard_inherit_listener(int old_shard, bool is_unix, int fd)
{
	atomic_store(&listeners_shared, true);   /* the predecessor's too */
	if (is_unix && unix_fd < 0) {
		unix_fd = fd;
		unix_inherited = true;
		return;
	}
	if (is_unix || ninherited == INHERIT_MAX || old_shard < 0) {
		close(fd);
		return;
	}
	inherited[ninherited].old_shard = old_shard;
	inherited[ninherited++].fd = fd;
}

void shard_listeners_handed(bool handed) { unix_handed = handed; }

int shard_listeners(int id, int *fds, bool *is_unix, int max)
{
	struct shard *s = &shards[id];
	atomic_store(&listeners_shared, true);
	int n = 0;
	for (int i = 0; i < s->nlisten && n < max; i++) {
		if (s->listen[i].fd < 0 || (s->listen[i].is_unix && id != 0))
			continue;
		fds[n] = s->listen[i].fd;
		is_unix[n++] = s->listen[i].is_unix;
	}
	return n;
}

static int open_listeners(struct shard *s, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	bool took = false;
	/* a successor accepts once its predecessor stops: should it fail before,
	 * no client is left in a dying process */
	s->accept_held = ninherited > 0 || unix_inherited;
	for (int i = 0; i < ninherited; i++) {
		if (inherited[i].old_shard % s->nshards != s->id || s->nlisten >= SHARD_MAX_LISTEN - 1)
			continue;
		add_listener(s, inherited[i].fd, false);
		inherited[i].fd = -1;
		took = true;
	}
	if (!took && cfg->listen_addr && *cfg->listen_addr) {
		/* a successor with more shards than its predecessor joins the port
		 * its predecessor's sockets hold: sharing it is the point here */
		bool share = cfg->so_reuseport || ninherited > 0;
		char *addrs = strdup(cfg->listen_addr), *save = NULL;
		for (char *a = strtok_r(addrs, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
			if (s->nlisten >= SHARD_MAX_LISTEN - 1)
				break;
			int fd = listen_tcp(cfg, a, cfg->listen_port, share, s->id == 0, err, errlen);
			if (fd < 0) {
				free(addrs);
				return -1;
			}
			add_listener(s, fd, false);
		}
		free(addrs);
	}
	if (unix_fd >= 0)
		add_listener(s, unix_fd, true);
	return 0;
}

static void arm_accept(struct shard *s, struct listener *l)
{
	if (l->armed || l->fd < 0 || s->draining || s->waiting_clients || s->accept_held)
		return;
	struct io_uring_sqe *sqe = shard_sqe(s);
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, shard_ud(l, SHARD_OP_ACCEPT));
	l->armed = true;
}

/* ---- the descriptor limit ----
 * Clients must never take the descriptors servers need, and at the limit they
 * are told why (53300, as PostgreSQL says "too many connections") instead of
 * being left in the backlog. Descriptors are numbered lowest-free-first, so an
 * accepted descriptor's number tells how full the process is. */

const char shard_fd_refusal[] = "no more connections allowed: pgring is out of file descriptors";

/* Descriptors kept back from clients: every database's servers (its
 * max_db_connections, else pool_size + reserve_pool_size; pools of further users
 * are not foreseen) and a few per shard (reserve, eventfd, listeners). */
static int fd_keep(const struct config *cfg, int nshards)
{
	long servers = 0;
	for (int i = 0; i < cfg->ndbs; i++) {
		const struct config_db *db = &cfg->dbs[i];
		long n = config_pool_size(cfg, db, NULL) +
			 (db->reserve_pool_size >= 0 ? db->reserve_pool_size : cfg->reserve_pool_size);
		long cap = db->max_db_connections > 0 ? db->max_db_connections : cfg->max_db_connections;
		servers += cap > 0 && cap < n ? cap : n;
	}
	return (int)(servers < INT_MAX / 2 ? servers : INT_MAX / 2) + 4 * nshards + 8;
}

static void fd_limits(struct shard *s)
{
	struct rlimit rl;
	long limit = INT_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX)
		limit = (long)rl.rlim_cur;
	long keep = fd_keep(s->cfg, s->nshards);
	if (keep > limit / 2)
		keep = limit / 2;
	s->fd_client_ceiling = (int)(limit - keep);
	s->fd_refuse_now = (int)(limit - (keep / 4 > 4 ? keep / 4 : 4));
	if (s->id == 0 && limit < INT_MAX)
		log_notice("descriptor limit %ld: clients beyond descriptor %d are refused with 53300 "
			   "(%ld kept for servers and pgring itself)%s", limit, s->fd_client_ceiling, keep,
			   s->cfg->max_client_conn > s->fd_client_ceiling ? "; max_client_conn is above that" : "");
}

static void report_fd_refusals(struct shard *s, int add)
{
	int n = log_rate_due(&s->fd_refused_log, s->now_us, add);
	if (n)
		log_warning("descriptor limit reached: refused %d client%s with 53300", n, n == 1 ? "" : "s");
}

void shard_fd_refused(struct shard *s)
{
	stat_add(&s->stats->fd_refused, 1);
	report_fd_refusals(s, 1);
}

/* Tell an accepted client why it cannot stay, and close it. */
void shard_refuse_fd(struct shard *s, int fd)
{
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", "53300", "%s", shard_fd_refusal);
	ssize_t w = send(fd, o.p, o.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	close(fd);
	shard_fd_refused(s);
}

/* Out of descriptors altogether: accept each waiting client on the shard's
 * reserve descriptor and refuse it. Another thread may take the freed number
 * meanwhile; tick() reopens the reserve when it can. */
static void shed_connections(struct shard *s, struct listener *l)
{
	while (s->reserve_fd >= 0) {
		close(s->reserve_fd);
		s->reserve_fd = -1;
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			shard_refuse_fd(s, fd);
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
	}
	if (s->reserve_fd < 0 && log_rate_due(&s->no_reserve_log, s->now_us, 1))
		log_warning("descriptor limit reached: no reserve descriptor left, clients wait in the backlog");
}

bool shard_pass_client(struct shard *s, int to, int fd, bool is_unix)
{
	struct shard_msg m = { .type = SHARD_MSG_CLIENT_FD, .a = (uint32_t)fd, .b = is_unix };
	if (to == s->id || s->handing_over || s->waiting_clients || !shard_post(s->id, to, &m))
		return false;
	stat_add(&s->stats->clients_passed, 1);
	return true;
}

static void on_accept(struct shard *s, struct listener *l, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		l->armed = false;
	if (res >= 0) {
		stat_add(&s->stats->accepts, 1);
		if (s->draining && !s->handing_over)
			close(res);
		else   /* handing over: it logs in here and moves at rest */
			s->upper_ops->accept(s, res, l->is_unix, false);   /* it refuses at fd_refuse_now */
	} else if (res == -EMFILE || res == -ENFILE) {
		stat_add(&s->stats->accept_errors, 1);
		shed_connections(s, l);
		return;   /* re-armed on the next tick, when descriptors may be free */
	} else if (res != -ECANCELED) {
		stat_add(&s->stats->accept_errors, 1);
		log_warning("accept failed: %s", strerror(-res));
	}
	arm_accept(s, l);
}

/* Arm every listener (each one not armed already, and allowed to accept). */
static void start_accepting(struct shard *s)
{
	for (int i = 0; i < s->nlisten; i++)
		arm_accept(s, &s->listen[i]);
}

/* Cancel the accepts, keep the sockets (a successor has them too). */
static void stop_accepting(struct shard *s)
{
	for (int i = 0; i < s->nlisten; i++) {
		struct listener *l = &s->listen[i];
		if (l->armed) {
			struct io_uring_sqe *sqe = shard_sqe(s);
			io_uring_prep_cancel64(sqe, shard_ud(l, SHARD_OP_ACCEPT), 0);
			io_uring_sqe_set_data64(sqe, SHARD_OP_IGNORE);
		}
	}
}

static void close_listeners(struct shard *s)
{
	stop_accepting(s);
	for (int i = 0; i < s->nlisten; i++) {
		struct listener *l = &s->listen[i];
		/* shutdown first: the accept in flight holds the socket open until its
		 * cancel completes (and a SIGKILLed or exiting process's ring until the
		 * kernel tears it down), and meanwhile it stays in the port's
		 * SO_REUSEPORT group, taking connections nobody will accept */
		if (!l->is_unix && l->fd >= 0) {
			if (!atomic_load(&listeners_shared))
				shutdown(l->fd, SHUT_RDWR);
			close(l->fd);
		}
		l->fd = -1;
	}
}

/* ---- the tick ---- */

#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6)   /* Linux 6.4; liburing 2.3's header lacks it */
#endif

/* The tick comes from a periodic timer (a multishot timeout): the loop then
 * waits for a completion with no timeout of its own, and liburing 2.3's
 * io_uring_submit_and_wait costs ~100 instructions a turn less than
 * io_uring_submit_and_wait_timeout (callgrind; a turn per transaction or more
 * at low load). A kernel without it answers -EINVAL at once, and every wait
 * carries the time to the next tick again. */
static void tick_fired(struct shard_call *call, int res)
{
	struct shard *s = list_entry(call, struct shard, tick_call);
	if (res == -ETIME) {
		s->tick_due = true;   /* at this turn's end */
		return;
	}
	s->tick_timer = false;
	if (!s->stopped)
		log_debug("periodic tick timer unavailable (%s): each wait is timed", strerror(-res));
}

static void arm_tick(struct shard *s)
{
	s->tick_ts.tv_sec = 0;
	s->tick_ts.tv_nsec = TICK_US * 1000;
	s->tick_call.done = tick_fired;
	struct io_uring_sqe *sqe = shard_sqe(s);
	io_uring_prep_timeout(sqe, &s->tick_ts, 0, IORING_TIMEOUT_MULTISHOT);
	io_uring_sqe_set_data64(sqe, shard_ud(&s->tick_call, SHARD_OP_CALL));
	s->tick_timer = true;
}

/* ---- inbox ---- */

static void arm_wake(struct shard *s)
{
	struct io_uring_sqe *sqe = shard_sqe(s);
	io_uring_prep_read(sqe, s->wake_fd, &s->wake_val, sizeof s->wake_val, 0);
	io_uring_sqe_set_data64(sqe, shard_ud(s, SHARD_OP_WAKE));
	s->wake_armed = true;
}

bool shard_deliver(struct shard *t, int slot, const struct shard_msg *m)
{
	if (!queue_push(&t->inbox[slot], m))
		return false;
	/* one write per wake-up, not per message: a burst of posts to a busy
	 * shard was a syscall each (the scaling study's hazard) */
	if (!atomic_exchange_explicit(&t->mail, 1, memory_order_acq_rel)) {
		uint64_t one = 1;
		ssize_t w = write(t->wake_fd, &one, sizeof one);
		(void)w;
	}
	return true;
}

bool shard_post(int from, int to, const struct shard_msg *m)
{
	return shard_deliver(&shards[to], from < 0 ? nshards : from, m);
}

static void start_drain(struct shard *s);

/* Shards handing over (pgring -R) with nothing left. One that is done keeps
 * running until all are: should the successor die, every shard takes its
 * listening socket back (a shard that had stopped would leave its share of
 * the port's connections unanswered in the backlog). */
static _Atomic int handover_done;

static void handover_done_set(struct shard *s, bool done)
{
	if (done != s->handover_done) {
		atomic_fetch_add(&handover_done, done ? 1 : -1);
		s->handover_done = done;
	}
}

static void handle_msg(struct shard *s, struct shard_msg *m)
{
	switch (m->type) {
	case SHARD_MSG_TOPOLOGY: {
		const struct config *old = s->cfg;
		s->topo = m->ptr;
		s->cfg = s->topo->cfg;
		s->upper_ops->topology(s, s->cfg != old);
		atomic_store_explicit(&s->stats->topology_version, s->topo->version, memory_order_release);
		break;
	}
	case SHARD_MSG_DRAIN:
		if (s->handing_over) {
			/* SIGTERM while handing over: what has not moved gets the
			 * shutdown timeout like any drain */
			s->handing_over = false;
			handover_done_set(s, false);
			s->drain_deadline_us = s->now_us + (uint64_t)(s->cfg->shutdown_timeout * 1e6);
			log_notice("draining: the clients not handed over yet get shutdown_timeout");
		}
		start_drain(s);
		break;
	case SHARD_MSG_HANDOVER:
		if (s->draining)
			break;
		s->draining = s->handing_over = true;
		s->drain_deadline_us = UINT64_MAX / 2;   /* clients move or leave on their own time */
		stop_accepting(s);
		log_notice("handing over: the successor accepts now; clients move as they reach rest");
		break;
	case SHARD_MSG_TAKEBACK:
		if (!s->handing_over)
			break;
		s->draining = s->handing_over = false;
		handover_done_set(s, false);
		start_accepting(s);
		log_notice("the successor is gone: accepting and serving again");
		break;
	case SHARD_MSG_ADOPT:
		s->upper_ops->adopt(s, m->ptr);
		break;
	case SHARD_MSG_STATS: {
		struct takeover_rec *r = m->ptr;
		if (takeover_apply_stats(s->id, r->data, r->len))
			log_notice("upgrade: the predecessor's pool counters are added to this process's");
		else
			log_warning("upgrade: the predecessor's pool counters are malformed or of another layout: "
				    "not (all) added");
		takeover_rec_free(r);
		break;
	}
	case SHARD_MSG_WAIT_CLIENTS:
		if (s->draining || s->waiting_clients)
			break;
		s->waiting_clients = true;
		close_listeners(s);   /* with so_reuseport, the port's other processes take the new ones */
		log_notice("SHUTDOWN WAIT_FOR_CLIENTS: no new connections; serving on, stopping once every client has left");
		break;
	case SHARD_MSG_CLIENT_FD:
		if (s->draining && !s->handing_over)
			close((int)m->a);
		else
			s->upper_ops->accept(s, (int)m->a, m->b != 0, true);
		break;
	case SHARD_MSG_ACCEPT:
		s->accept_held = false;
		start_accepting(s);
		break;
	case SHARD_MSG_STOP:
		s->stopped = true;
		break;
	default:
		s->upper_ops->message(s, m);
		break;
	}
}

static void drain_inbox(struct shard *s)
{
	/* A post that set the flag after this load wrote the eventfd: the next
	 * turn comes, and reads it. Cleared before the reading, so that a post
	 * meanwhile sets it again (and wakes the shard) rather than being missed. */
	if (!atomic_load_explicit(&s->mail, memory_order_relaxed))
		return;
	atomic_exchange_explicit(&s->mail, 0, memory_order_acq_rel);
	struct shard_msg m;
	for (int i = 0; i <= s->nshards; i++)
		while (queue_pop(&s->inbox[i], &m))
			handle_msg(s, &m);
}

/* ---- drain (SIGTERM) ---- */

static void start_drain(struct shard *s)
{
	if (s->draining)
		return;
	s->draining = true;
	s->drain_deadline_us = s->now_us + (uint64_t)(s->cfg->shutdown_timeout * 1e6);
	close_listeners(s);
	log_notice("draining: no new connections, waiting for transactions to finish");
}

static void check_drain(struct shard *s)
{
	if (s->waiting_clients && !s->draining && s->upper_ops->drain(s, false))
		s->stopped = true;
	if (!s->draining)
		return;
	if (s->handing_over) {
		handover_done_set(s, s->upper_ops->drain(s, false));
		if (atomic_load(&handover_done) == s->nshards)
			s->stopped = true;
		return;
	}
	if (s->upper_ops->drain(s, s->now_us >= s->drain_deadline_us))
		s->stopped = true;
	if (s->now_us >= s->drain_deadline_us + 2000000)
		s->stopped = true;   /* peers that never read their last bytes */
}

/* ---- the loop ---- */

static void dispatch(struct shard *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	void *p = (void *)(uintptr_t)(ud & ~(uint64_t)SHARD_OP_MASK);
	switch ((enum shard_op)(ud & SHARD_OP_MASK)) {
	case SHARD_OP_RECV:
		conn_on_recv(p, cqe->res, cqe->flags);
		break;
	case SHARD_OP_SEND:
		conn_on_send(p, cqe->res);
		break;
	case SHARD_OP_CONNECT:
		conn_on_connect(p, cqe->res);
		break;
	case SHARD_OP_ACCEPT:
		on_accept(s, p, cqe->res, cqe->flags);
		break;
	case SHARD_OP_CALL: {
		struct shard_call *call = p;
		call->done(call, cqe->res);
		break;
	}
	case SHARD_OP_WAKE:
		s->wake_armed = false;
		if (!s->stopped)
			arm_wake(s);
		break;
	default:
		break;
	}
}

static void flush_all(struct shard *s)
{
	while (s->flush_list) {
		struct conn *c = s->flush_list;
		s->flush_list = c->next_flush;
		c->flushing = false;
		conn_flush(c);
		conn_maybe_free(c);
	}
}

static void feed_starved(struct shard *s)
{
	/* Re-arm connections that ran out of receive buffers, oldest first within
	 * each buffer group, while at least an eighth of that group's buffers
	 * (rounded up: at least one, or a group of fewer than 8 would re-arm into
	 * ENOBUFS on every turn) are free again. A group still short holds back
	 * only its own connections: a server connection must not wait for client
	 * buffers (those may be held by data queued to that very server). One
	 * that no longer wants data (closing, paused) leaves the list at once. */
	bool short_of[2] = { false, false };
	struct conn **link = &s->starved_head, *prev = NULL;
	int budget = 64;
	while (*link && budget > 0) {
		struct conn *c = *link;
		const struct buf_group *g = &s->bufs.group[c->group];
		bool wants = c->recv_wanted && !c->closing;
		if (wants && (short_of[c->group] || g->in_use > g->count - (g->count + 7) / 8)) {
			short_of[c->group] = true;
			if (short_of[0] && short_of[1])
				break;
			prev = c;
			link = &c->next_starved;
			continue;
		}
		*link = c->next_starved;
		if (s->starved_tail == c)
			s->starved_tail = prev;
		c->starved = false;
		budget--;
		if (wants)
			conn_recv_on(c);
		conn_maybe_free(c);
	}
}

static void tick(struct shard *s)
{
	if (s->reserve_fd < 0)   /* another thread took the slot while we shed clients */
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	report_fd_refusals(s, 0);
	start_accepting(s);
	balance_tick(s);
	s->upper_ops->tick(s);
	check_drain(s);
	gauge_add(&s->stats->buffers_in_use, s->bufs.in_use - gauge_get(&s->stats->buffers_in_use));
}

void shard_step(struct shard *s, uint64_t max_wait_us)
{
	flush_all(s);
	if (s->tick_timer && s->upper_wake_us == UINT64_MAX && max_wait_us == UINT64_MAX) {
		io_uring_submit_and_wait(&s->ring, 1);   /* the tick timer bounds the sleep */
	} else {
		uint64_t due = s->next_tick_us < s->upper_wake_us ? s->next_tick_us : s->upper_wake_us;
		uint64_t wait = due > s->now_us ? due - s->now_us : 0;
		if (wait > max_wait_us)
			wait = max_wait_us;
		struct __kernel_timespec ts = { .tv_sec = (long long)(wait / 1000000),
						.tv_nsec = (long long)(wait % 1000000) * 1000 };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
	}
	stat_add(&s->stats->submits, 1);
	stat_add(&s->stats->loops, 1);
	s->now_us = shard_now_us();
	/* Only the completions present now: a handler that must submit (a full
	 * SQ) can complete work inline, and chasing those here would let one
	 * busy step starve the inbox, the buffer ring's refill and the tick. */
	/* by index, the tail read once: io_uring_for_each_cqe reads it again
	 * (an acquire) and tests for 32-byte CQEs on every one (not set up here) */
	unsigned head = *s->ring.cq.khead, mask = s->ring.cq.ring_mask, ready = io_uring_cq_ready(&s->ring);
	for (unsigned n = 0; n < ready; n++)
		dispatch(s, &s->ring.cq.cqes[(head + n) & mask]);
	io_uring_cq_advance(&s->ring, ready);
	stat_add(&s->stats->cqes, ready);
	drain_inbox(s);
	feed_starved(s);
	bufs_commit(&s->bufs);
	if (s->tick_timer ? s->tick_due : s->now_us >= s->next_tick_us) {
		s->tick_due = false;
		tick(s);
		s->next_tick_us = s->now_us + TICK_US;
	}
	s->upper_ops->batch_end(s);
}

static void loop(struct shard *s)
{
	while (!s->stopped)
		shard_step(s, UINT64_MAX);
}

/* ---- start-up ---- */

static int ring_init(struct shard *s, char *err, size_t errlen)
{
	struct io_uring_params p = { 0 };
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
		  IORING_SETUP_CQSIZE | IORING_SETUP_TASKRUN_FLAG;
	p.cq_entries = (unsigned)s->cfg->cq_entries;
	int rc = io_uring_queue_init_params((unsigned)s->cfg->ring_entries, &s->ring, &p);
	if (rc == -EINVAL) {
		/* kernels before 6.1 lack DEFER_TASKRUN */
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
		p.cq_entries = (unsigned)s->cfg->cq_entries;
		rc = io_uring_queue_init_params((unsigned)s->cfg->ring_entries, &s->ring, &p);
	}
	if (rc == 0)
		return 0;
	const char *fix;
	switch (-rc) {
	case ENOSYS:
		fix = "this kernel has no io_uring (CONFIG_IO_URING); pgring needs Linux 6.0 or newer";
		break;
	case EPERM:
	case EACCES:
		fix = "io_uring is disabled: check sysctl kernel.io_uring_disabled (set it to 0) or, in a "
		      "container, a seccomp profile that blocks io_uring_setup (run with a profile that allows it)";
		break;
	case ENOMEM:
		fix = "ring memory exceeds RLIMIT_MEMLOCK: raise it (ulimit -l, or LimitMEMLOCK= in the "
		      "systemd unit) or lower ring_entries / cq_entries";
		break;
	default:
		fix = "see io_uring_setup(2)";
	}
	snprintf(err, errlen, "cannot create io_uring (%u entries): %s: %s", (unsigned)s->cfg->ring_entries,
		 strerror(-rc), fix);
	return -1;
}

/* What a shard is before its ring exists: who it is, what runs above it, its
 * inboxes. n: the number of shards (one inbox from each, one from control). */
static int shard_init(struct shard *s, const struct topology *topo, const struct shard_upper *upper, int id, int n)
{
	s->id = id;
	s->nshards = n;
	s->cpu = -1;
	s->topo = topo;
	s->cfg = topo->cfg;
	s->upper_ops = upper;
	s->stats = stats_shard(id);
	s->wake_fd = s->reserve_fd = -1;
	s->inbox = calloc((size_t)n + 1, sizeof *s->inbox);
	if (!s->inbox)
		return -1;
	for (int j = 0; j <= n; j++)
		if (queue_init(&s->inbox[j], 1024, sizeof(struct shard_msg)))
			return -1;
	return 0;
}

static int pin(struct shard *s, char *err, size_t errlen)
{
	if (s->cpu < 0)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	if (rc)
		snprintf(err, errlen, "cannot pin shard %d to CPU %d: %s", s->id, s->cpu, strerror(rc));
	return rc ? -1 : 0;
}

/* The ring and what lives on it: buffer rings, the wake-up eventfd, the spare
 * descriptor. On the thread that will submit (SINGLE_ISSUER). */
static int open_ring(struct shard *s, char *err, size_t errlen)
{
	if (ring_init(s, err, errlen))
		return -1;
	if (bufs_init(&s->bufs, &s->ring, (uint32_t)s->cfg->client_bufs, (uint32_t)s->cfg->client_buf_size,
		      (uint32_t)s->cfg->server_bufs, (uint32_t)s->cfg->server_buf_size, err, errlen))
		return -1;
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fd_limits(s);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The layer above, then the first SQEs (accepts, the wake-up read) and the
 * clock the first step's wait and tick are measured from. */
static int start_upper(struct shard *s, char *err, size_t errlen)
{
	s->now_us = shard_now_us();
	s->next_tick_us = s->now_us + TICK_US;
	s->upper_wake_us = UINT64_MAX;
	if (s->upper_ops->start(s)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	start_accepting(s);
	arm_wake(s);
	arm_tick(s);
	atomic_store(&s->stats->topology_version, s->topo->version);
	return 0;
}

static int shard_setup(struct shard *s)
{
	char *err = s->startup_error;
	size_t errlen = sizeof s->startup_error;
	if (pin(s, err, errlen) || open_ring(s, err, errlen) || open_listeners(s, err, errlen))
		return -1;
	return start_upper(s, err, errlen);
}

int shard_open(struct shard *s, const struct topology *topo, const struct shard_upper *upper, int id, char *err,
	       size_t errlen)
{
	memset(s, 0, sizeof *s);
	if (shard_init(s, topo, upper, id, 1)) {
		snprintf(err, errlen, "out of memory");
		shard_close(s);
		return -1;
	}
	if (open_ring(s, err, errlen) || start_upper(s, err, errlen)) {
		shard_close(s);
		return -1;
	}
	return 0;
}

void shard_close(struct shard *s)
{
	if (s->bufs.ring) {   /* set by bufs_init, which runs once the ring exists */
		bufs_destroy(&s->bufs);
		io_uring_queue_exit(&s->ring);
	}
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	for (int j = 0; s->inbox && j <= s->nshards; j++)
		queue_destroy(&s->inbox[j]);
	free(s->inbox);
	while (s->free_sendbufs) {
		struct sendbuf *sb = s->free_sendbufs;
		s->free_sendbufs = sb->next;
		free(sb);
	}
	memset(s, 0, sizeof *s);
	s->wake_fd = s->reserve_fd = -1;
}

static void *shard_main(void *arg)
{
	struct shard *s = arg;
	log_shard_id = s->id;
	char name[16];
	snprintf(name, sizeof name, "pgring-shard%d", s->id);
	pthread_setname_np(pthread_self(), name);
	atomic_store(&s->stats->tid, (int)syscall(SYS_gettid));
	atomic_store(&s->stats->cpu, s->cpu);
	if (shard_setup(s)) {
		atomic_store(&s->started, -1);
		return NULL;
	}
	atomic_fetch_add(&running, 1);
	atomic_store(&s->started, 1);
	log_debug("shard running on CPU %d", s->cpu);
	loop(s);
	close_listeners(s);
	atomic_fetch_sub(&running, 1);
	log_debug("shard stopped");
	return NULL;
}

int shard_start_all(const struct topology *topo, const struct shard_upper *upper, int n, const int *cpus, int ncpus,
		    char *err, size_t errlen)
{
	nshards = n;
	shards = calloc((size_t)n, sizeof *shards);
	if (!shards) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (unix_fd >= 0) {
		/* inherited (pgring -R): the file is ours to remove at exit now */
		struct sockaddr_un sa;
		socklen_t len = sizeof sa;
		if (getsockname(unix_fd, (struct sockaddr *)&sa, &len) == 0 && len > offsetof(struct sockaddr_un, sun_path))
			snprintf(unix_path, sizeof unix_path, "%s", sa.sun_path);
	} else if (topo->cfg->unix_socket_dir && *topo->cfg->unix_socket_dir) {
		unix_fd = listen_unix(topo->cfg, err, errlen);
		if (unix_fd < 0)
			return -1;
	}
	for (int i = 0; i < n; i++) {
		struct shard *s = &shards[i];
		if (shard_init(s, topo, upper, i, n)) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		s->cpu = ncpus ? cpus[i % ncpus] : -1;
	}
	balance_init(n);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&shards[i].thread, NULL, shard_main, &shards[i])) {
			snprintf(err, errlen, "cannot start shard thread %d", i);
			return -1;
		}
		while (atomic_load(&shards[i].started) == 0)
			usleep(1000);
		if (atomic_load(&shards[i].started) < 0) {
			snprintf(err, errlen, "shard %d: %s", i, shards[i].startup_error);
			return -1;
		}
	}
	return 0;
}

void shard_join_all(void)
{
	for (int i = 0; i < nshards; i++)
		if (atomic_load(&shards[i].started) == 1)
			pthread_join(shards[i].thread, NULL);
	if (unix_fd >= 0) {
		close(unix_fd);
		if (!unix_handed && unix_path[0])
			unlink(unix_path);
	}
}
