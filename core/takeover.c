/* core/takeover.c: the hand-over socket's name, connect and accept with the
 * peer's user checked, and records with one descriptor each (core/takeover.h).
 * Anything malformed on it is refused here, never trusted further up. Also
 * the pools' cumulative counters, carried from the old process to the new. */
#include "core/takeover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/registry.h"
#include "core/strbuf.h"

struct takeover_rec *takeover_rec_new(const void *data, uint32_t len, int fd)
{
	struct takeover_rec *r = malloc(sizeof *r + len);
	if (!r)
		return NULL;
	r->fd = fd;
	r->len = len;
	r->pair = r->next = NULL;
	if (len)
		memcpy(r->data, data, len);
	return r;
}

void takeover_rec_free(struct takeover_rec *r)
{
	while (r) {
		struct takeover_rec *next = r->next;
		if (r->fd >= 0)
			close(r->fd);
		takeover_rec_free(r->pair);
		free(r);
		r = next;
	}
}

/* An abstract name: nothing on disk to go stale, and the peer's credentials
 * (not a file mode) decide who may talk on it. */
static socklen_t name_of(int port, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path + 1, sizeof sa->sun_path - 1, "pgring-takeover.%d", port);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void set_buffers(int fd)
{
	int sz = 2 * TAKEOVER_REC_MAX;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	/* the peer reads in its control loop: a send that cannot go in this long
	 * means it is stuck, and the record is not worth the old process hanging */
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static bool same_user(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || len != sizeof cr)
		return false;
	return cr.uid == geteuid();
}

int takeover_listen(int port)
{
	struct sockaddr_un sa;
	socklen_t len = name_of(port, &sa);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, len) || listen(fd, 4)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int takeover_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -1;
	if (!same_user(fd)) {
		log_warning("upgrade: refused a hand-over connection from another user");
		close(fd);
		return -1;
	}
	set_buffers(fd);
	return fd;
}

int takeover_connect(int port, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	socklen_t len = name_of(port, &sa);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, len)) {
		snprintf(err, errlen, "no pgring serving port %d to take over from (%s)", port, strerror(errno));
		close(fd);
		return -1;
	}
	if (!same_user(fd)) {
		snprintf(err, errlen, "the pgring serving port %d runs as another user", port);
		close(fd);
		return -1;
	}
	set_buffers(fd);
	struct timeval tv = { .tv_sec = 10 };   /* the hand-over of the listeners, at start */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

int takeover_send(int sock, uint8_t type, const void *p, uint32_t n, int fd)
{
	if (n > TAKEOVER_REC_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	struct iovec iov[2] = { { &type, 1 }, { (void *)p, n } };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n ? 2 : 1 };
	if (fd >= 0) {
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof ctl.b;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	ssize_t w;
	do
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)n + 1 ? 0 : -1;
}

int takeover_recv(int sock, uint8_t *type, uint8_t *buf, uint32_t cap, uint32_t *n, int *fd, bool wait)
{
	*fd = -1;
	struct iovec iov[2] = { { type, 1 }, { buf, cap } };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r == 0 ? 0 : -1;
	/* every descriptor that came is ours to close, whatever the record is */
	int nfds = 0, got = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
			if (nfds++ == 0)
				got = f;
			else
				close(f);
		}
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds > 1) {
		if (got >= 0)
			close(got);
		errno = EBADMSG;
		return -1;
	}
	*n = (uint32_t)(r - 1);
	*fd = got;
	return 1;
}

/* ---- the pools' counters ---- */

/* Every stat_t of struct stats_pool: the counters, then the histograms. */
static const size_t stat_fields[] = {
	offsetof(struct stats_pool, xact_count), offsetof(struct stats_pool, query_count),
	offsetof(struct stats_pool, bytes_in), offsetof(struct stats_pool, bytes_out),
	offsetof(struct stats_pool, xact_time_us), offsetof(struct stats_pool, query_time_us),
	offsetof(struct stats_pool, wait_time_us), offsetof(struct stats_pool, wait_count),
	offsetof(struct stats_pool, server_assignments), offsetof(struct stats_pool, server_connects),
	offsetof(struct stats_pool, server_connect_errors), offsetof(struct stats_pool, client_logins),
	offsetof(struct stats_pool, client_login_errors), offsetof(struct stats_pool, prepares_injected),
	offsetof(struct stats_pool, prepares_shared), offsetof(struct stats_pool, state_replays),
	offsetof(struct stats_pool, replication_connects), offsetof(struct stats_pool, notifications),
	offsetof(struct stats_pool, listener_losses),
};
static const size_t hist_fields[] = {
	offsetof(struct stats_pool, query_hist), offsetof(struct stats_pool, xact_hist),
	offsetof(struct stats_pool, wait_hist),
};
#define NFIELDS (sizeof stat_fields / sizeof stat_fields[0] + 3 * STATS_HIST_BUCKETS)

static stat_t *field(struct stats_pool *sp, size_t k)
{
	size_t nplain = sizeof stat_fields / sizeof stat_fields[0];
	if (k < nplain)
		return (stat_t *)(void *)((char *)sp + stat_fields[k]);
	k -= nplain;
	struct stats_hist *h = (struct stats_hist *)(void *)((char *)sp + hist_fields[k / STATS_HIST_BUCKETS]);
	return &h->bucket[k % STATS_HIST_BUCKETS];
}

static void put_name(struct strbuf *sb, const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	uint8_t len = (uint8_t)(n > 255 ? 255 : n);
	strbuf_append(sb, &len, 1);
	strbuf_append(sb, s, len);
}

void takeover_pack_stats(struct strbuf *sb)
{
	uint16_t nf = (uint16_t)NFIELDS;
	strbuf_append(sb, "PGRS", 4);
	strbuf_append(sb, &nf, sizeof nf);
	for (int i = 0; i < registry_count(); i++) {
		struct pool_shared *ps = registry_at(i);
		if (!ps)
			continue;
		put_name(sb, ps->db, sizeof ps->db);
		put_name(sb, ps->user, sizeof ps->user);
		put_name(sb, ps->node, sizeof ps->node);
		for (size_t k = 0; k < NFIELDS; k++) {
			uint64_t sum = 0;
			for (int j = 0; j < registry_nshards(); j++)
				sum += stat_get(field(&ps->shard[j], k));
			strbuf_append(sb, &sum, sizeof sum);
		}
	}
}

static bool get_name(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
	if (*p >= end || (size_t)**p >= cap || (size_t)(end - *p) < 1u + **p)
		return false;
	size_t n = **p;
	memcpy(out, *p + 1, n);
	out[n] = 0;
	*p += 1 + n;
	return memchr(out, 0, n) == NULL;
}

bool takeover_apply_stats(int shard, const uint8_t *p, uint32_t n)
{
	const uint8_t *end = p + n;
	uint16_t nf;
	if (n < 6 || memcmp(p, "PGRS", 4) != 0)
		return false;
	memcpy(&nf, p + 4, sizeof nf);
	if (nf != NFIELDS)
		return false;   /* another build's layout: nothing is added rather than the wrong thing */
	p += 6;
	while (p < end) {
		char db[REGISTRY_NAME_MAX], user[REGISTRY_NAME_MAX], node[2 * REGISTRY_NAME_MAX];
		if (!get_name(&p, end, db, sizeof db) || !get_name(&p, end, user, sizeof user) ||
		    !get_name(&p, end, node, sizeof node) || (size_t)(end - p) < NFIELDS * sizeof(uint64_t))
			return false;
		/* a pool the new process has not opened yet gets its entry now, so
		 * that its totals show and its pool finds them when it opens */
		struct node_shared *ns = NULL;
		char *slash = strchr(node, '/');
		if (slash) {
			*slash = 0;
			ns = registry_node(node, slash + 1);
		}
		struct pool_shared *ps = (!*node || ns) && *db && *user ? registry_get(db, user, ns) : NULL;
		for (size_t k = 0; k < NFIELDS; k++, p += sizeof(uint64_t)) {
			uint64_t v;
			memcpy(&v, p, sizeof v);
			if (ps && shard < registry_nshards())
				stat_add(field(&ps->shard[shard], k), v);
		}
	}
	return true;
}
