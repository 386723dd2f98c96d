/* tests/unit/harness.c: a shard stepped by the test's thread, and the socket
 * helpers that keep it stepping while they wait (see harness.h). */
#include "tests/unit/harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/registry.h"
#include "proto/proto.h"

/* Each wait on the ring is cut this short so that predicates about the peer
 * sockets (which the ring does not see) are looked at often. */
#define STEP_US 2000

const char harness_default_settings[] =
	"[pgring]\n"
	"auth_type = trust\n"
	"listen_addr =\n"
	"unix_socket_dir =\n"
	"control_port = 0\n"
	"ring_entries = 64\n"
	"cq_entries = 1024\n"
	"client_bufs = 8\n"
	"client_buf_size = 256\n"
	"server_bufs = 8\n"
	"server_buf_size = 1024\n";

/* ---- the upper that does nothing ---- */

static int none_start(struct shard *s) { (void)s; return 0; }
static void none_accept(struct shard *s, int fd, bool is_unix, bool passed)
{
	(void)s;
	(void)is_unix;
	(void)passed;
	close(fd);
}
static void none_message(struct shard *s, const struct shard_msg *m) { (void)s; (void)m; }
static void none_topology(struct shard *s, bool cfg_changed) { (void)s; (void)cfg_changed; }
static void none_tick(struct shard *s) { (void)s; }
static bool none_drain(struct shard *s, bool overdue) { (void)s; (void)overdue; return true; }
static void none_batch_end(struct shard *s) { (void)s; }

const struct shard_upper harness_upper_none = {
	.start = none_start,
	.accept = none_accept,
	.message = none_message,
	.topology = none_topology,
	.tick = none_tick,
	.drain = none_drain,
	.batch_end = none_batch_end,
};

/* ---- set-up ---- */

/* settings with every "{dir}" replaced by dir (malloc'ed). */
static char *expand(const char *settings, const char *dir)
{
	size_t cap = strlen(settings) + 1, dlen = strlen(dir);
	for (const char *p = settings; (p = strstr(p, "{dir}")); p += 5)
		cap += dlen;
	char *out = malloc(cap), *o = out;
	cr_assert_not_null(out);
	for (const char *p = settings; *p;) {
		if (strncmp(p, "{dir}", 5) == 0) {
			memcpy(o, dir, dlen);
			o += dlen;
			p += 5;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static struct config *load_config(struct harness *h, const char *settings)
{
	char *text = expand(settings ? settings : harness_default_settings, h->dir);
	const char *path = harness_path(h, "pgring.ini");
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
	free(text);
	struct config *cfg;
	char err[512];
	cr_assert_eq(config_load(path, &cfg, err, sizeof err, NULL), 0, "harness settings: %s", err);
	return cfg;
}

/* Every configured cluster, every node up, roles as the config hints them:
 * what the control shard publishes before its first health check says more. */
static void build_topology(struct topology *t, struct config *cfg)
{
	t->version = 1;
	t->cfg = cfg;
	t->nclusters = cfg->nclusters;
	t->clusters = calloc((size_t)cfg->nclusters + 1, sizeof *t->clusters);
	cr_assert_not_null(t->clusters);
	for (int i = 0; i < cfg->nclusters; i++) {
		const struct config_cluster *cc = &cfg->clusters[i];
		struct topo_cluster *tc = &t->clusters[i];
		tc->cc = cc;
		tc->primary = -1;
		tc->nodes = calloc((size_t)cc->nnodes + 1, sizeof *tc->nodes);
		cr_assert_not_null(tc->nodes);
		for (int j = 0; j < cc->nnodes; j++) {
			const struct config_node *cn = &cc->nodes[j];
			bool primary = cn->role && strcmp(cn->role, "primary") == 0;
			if (primary && tc->primary < 0)
				tc->primary = j;
			tc->nodes[j] = (struct topo_node){ .role = primary ? NODE_PRIMARY : NODE_REPLICA,
							   .state = NODE_UP, .weight = cn->weight,
							   .shared = registry_node(cc->name, cn->name) };
		}
	}
}

struct harness *harness_open(const struct shard_upper *upper, const char *settings)
{
	static bool registry_ready;
	if (!registry_ready) {
		cr_assert_eq(registry_init(1), 0);
		cr_assert_eq(stats_init(1), 0);
		registry_ready = true;
	}
	log_level_max = LOG_WARNING;
	struct harness *h = calloc(1, sizeof *h);
	cr_assert_not_null(h);
	strcpy(h->dir, "/tmp/pgring-harness-XXXXXX");
	cr_assert_not_null(mkdtemp(h->dir));
	h->cfg = load_config(h, settings);
	build_topology(&h->topo, h->cfg);
	char err[512];
	cr_assert_eq(shard_open(&h->shard, &h->topo, upper ? upper : &harness_upper_none, 0, err, sizeof err), 0,
		     "shard_open: %s", err);
	return h;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char path[512];
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

void harness_close(struct harness *h)
{
	shard_close(&h->shard);
	for (int i = 0; i < h->topo.nclusters; i++)
		free(h->topo.clusters[i].nodes);
	free(h->topo.clusters);
	config_free(h->cfg);
	remove_dir(h->dir);
	free(h);
}

/* ---- running ---- */

static uint64_t deadline(int timeout_ms)
{
	return shard_now_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000;
}

/* One step waiting at most until end (and at most STEP_US). */
static void step_until(struct shard *s, uint64_t end)
{
	uint64_t now = shard_now_us();
	uint64_t wait = end > now ? end - now : 0;
	shard_step(s, wait < STEP_US ? wait : STEP_US);
}

bool harness_run_until(struct shard *s, bool (*pred)(void *ctx), void *ctx, int timeout_ms)
{
	uint64_t end = deadline(timeout_ms);
	while (!pred(ctx)) {
		if (shard_now_us() >= end)
			return pred(ctx);
		step_until(s, end);
	}
	return true;
}

void harness_run_for(struct shard *s, int ms)
{
	uint64_t end = deadline(ms);
	while (shard_now_us() < end)
		step_until(s, end);
}

bool harness_settle(struct shard *s, int timeout_ms)
{
	uint64_t end = deadline(timeout_ms);
	while (shard_now_us() < end) {
		uint64_t before = stat_get(&s->stats->cqes);
		bool had_output = s->flush_list != NULL;
		step_until(s, end);
		if (stat_get(&s->stats->cqes) == before && !had_output && !s->flush_list)
			return true;
	}
	return false;
}

/* ---- sockets ---- */

static void set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	cr_assert(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
}

void harness_socketpair(int fds[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0, "socketpair: %s", strerror(errno));
	set_nonblocking(fds[1]);
}

size_t harness_write_all(struct shard *s, int fd, const void *p, size_t n, int timeout_ms)
{
	uint64_t end = deadline(timeout_ms);
	size_t done = 0;
	while (done < n) {
		ssize_t w = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (shard_now_us() >= end) {
			errno = ETIMEDOUT;
			break;
		}
		step_until(s, end);
	}
	return done;
}

size_t harness_read_all(struct shard *s, int fd, void *p, size_t n, int timeout_ms)
{
	uint64_t end = deadline(timeout_ms);
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, (char *)p + done, n - done);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r == 0) {
			errno = 0;
			break;
		}
		if (errno != EAGAIN && errno != EINTR)
			break;
		if (shard_now_us() >= end) {
			errno = ETIMEDOUT;
			break;
		}
		step_until(s, end);
	}
	return done;
}

size_t harness_read_avail(int fd, void *p, size_t cap)
{
	ssize_t r = recv(fd, p, cap, MSG_DONTWAIT);
	return r > 0 ? (size_t)r : 0;
}

bool harness_wait_eof(struct shard *s, int fd, size_t *skipped, int timeout_ms)
{
	uint64_t end = deadline(timeout_ms);
	char buf[4096];
	if (skipped)
		*skipped = 0;
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r == 0)
			return true;
		if (r > 0) {
			if (skipped)
				*skipped += (size_t)r;
			continue;
		}
		if (errno == ECONNRESET)
			return true;
		if (errno != EAGAIN && errno != EINTR)
			return false;
		if (shard_now_us() >= end)
			return false;
		step_until(s, end);
	}
}

int harness_pending(int fd)
{
	int n = 0;
	cr_assert_eq(ioctl(fd, FIONREAD, &n), 0, "FIONREAD: %s", strerror(errno));
	return n;
}

const char *harness_path(const struct harness *h, const char *name)
{
	static char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int n = snprintf(path, sizeof path, "%s/%s", h->dir, name);
	cr_assert(n > 0 && (size_t)n < sizeof path, "path too long: %s/%s", h->dir, name);
	return path;
}

int harness_listen_unix(struct harness *h, int port)
{
	char name[32];
	snprintf(name, sizeof name, ".s.PGSQL.%d", port);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, harness_path(h, name));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "bind %s: %s", sa.sun_path, strerror(errno));
	cr_assert_eq(listen(fd, 64), 0, "listen: %s", strerror(errno));
	return fd;
}

int harness_accept(struct shard *s, int lfd, int timeout_ms)
{
	uint64_t end = deadline(timeout_ms);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		cr_assert(errno == EAGAIN || errno == EINTR || errno == ECONNABORTED, "accept: %s", strerror(errno));
		if (shard_now_us() >= end)
			return -1;
		step_until(s, end);
	}
}

void harness_post(struct shard *s, const struct shard_msg *m)
{
	cr_assert(shard_deliver(s, s->nshards, m), "the shard's inbox is full");
}

void harness_put_startup(struct proto_out *o, const char *user, const char *database)
{
	proto_begin(o, 0);
	proto_put_u32(o, PROTO_VERSION_30);
	proto_put_str(o, "user");
	proto_put_str(o, user);
	proto_put_str(o, "database");
	proto_put_str(o, database);
	proto_put_u8(o, 0);
	proto_end(o);
}
