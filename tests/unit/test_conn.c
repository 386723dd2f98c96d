/* tests/unit/test_conn.c: core/conn.c and core/buf.c on a real ring, stepped by
 * the test (tests/unit/harness.h): receive into provided buffers, the send queue
 * (batching, references, copies, merged slices), back-pressure, ENOBUFS, EOF,
 * teardown, parking, connect, linked SQE chains (conn_exchange), one loop turn
 * (shard_step), and scratch buffers. The shard's end of each socketpair is
 * fds[0]; the test plays the peer on fds[1]. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/shard.h"
#include "tests/unit/harness.h"

/* ---- a recording owner ---- */

/* What the callbacks saw. Outlives its conn, so a test can look after free. */
struct rec {
	uint8_t data[65536];
	size_t n;
	int ndata, neof, eof_err, ndrained, nconnected, connected_res, nparked, nfree;
	bool data_after_close;       /* a callback other than free came after conn_close */
	bool all_provided;           /* every data callback's bytes were in a provided buffer */
	bool hold;                   /* data: keep a reference to each buffer (in held) */
	uint32_t held[256];
	int nheld;
	struct conn *echo_to;        /* data: queue the bytes there, by buffer id (no copy) */
	uint32_t last_buf;
	uint16_t refs_in_cb;         /* the buffer's count right after echoing it */
};

/* The owner object: malloc'ed, freed by ops->free, so that ASan sees any use
 * of the conn after its free. */
struct tconn {
	struct conn conn;
	struct rec *rec;
	bool closed;                 /* conn_close was called */
};

static struct tconn *tc_of(struct conn *c) { return conn_owner(c, struct tconn); }

static bool in_provided(struct shard *s, const uint8_t *p, uint32_t n, uint32_t buf, int g)
{
	const struct buf_group *grp = &s->bufs.group[g];
	return buf >= grp->first_id && buf < grp->first_id + grp->count && p >= grp->mem &&
	       p + n <= grp->mem + (size_t)grp->count * grp->size &&
	       p == grp->mem + (size_t)(buf - grp->first_id) * grp->size;
}

static void on_data(struct conn *c, uint8_t *data, uint32_t n, uint32_t buf)
{
	struct tconn *t = tc_of(c);
	struct rec *r = t->rec;
	r->data_after_close |= t->closed;
	r->all_provided &= in_provided(c->shard, data, n, buf, c->group);
	cr_assert_leq(r->n + n, sizeof r->data);
	memcpy(r->data + r->n, data, n);
	r->n += n;
	r->ndata++;
	r->last_buf = buf;
	if (r->hold) {
		cr_assert_lt(r->nheld, 256);
		bufs_ref(&c->shard->bufs, buf);
		r->held[r->nheld++] = buf;
	}
	if (r->echo_to) {
		cr_assert(conn_queue(r->echo_to, data, n, buf));
		r->refs_in_cb = c->shard->bufs.refs[buf];
	}
}

static void on_eof(struct conn *c, int err)
{
	struct tconn *t = tc_of(c);
	t->rec->data_after_close |= t->closed;
	t->rec->neof++;
	t->rec->eof_err = err;
}

static void on_drained(struct conn *c)
{
	struct tconn *t = tc_of(c);
	t->rec->data_after_close |= t->closed;
	t->rec->ndrained++;
}

static void on_connected(struct conn *c, int res)
{
	struct tconn *t = tc_of(c);
	t->rec->nconnected++;
	t->rec->connected_res = res;
}

static void on_parked(struct conn *c)
{
	tc_of(c)->rec->nparked++;
}

static void on_free(struct conn *c)
{
	struct tconn *t = tc_of(c);
	t->rec->nfree++;
	memset(t, 0xdb, sizeof *t);   /* a later use reads garbage even without ASan */
	free(t);
}

static const struct conn_ops rec_ops = {
	.data = on_data,
	.eof = on_eof,
	.drained = on_drained,
	.connected = on_connected,
	.parked = on_parked,
	.free = on_free,
};

static struct rec *new_rec(void)
{
	struct rec *r = calloc(1, sizeof *r);
	cr_assert_not_null(r);
	r->all_provided = true;
	return r;
}

static struct tconn *new_conn(struct harness *h, int fd, struct rec *r, int group)
{
	struct tconn *t = calloc(1, sizeof *t);
	cr_assert_not_null(t);
	t->rec = r;
	conn_init(&t->conn, &h->shard, fd, &rec_ops, group);
	return t;
}

static void close_conn(struct tconn *t)
{
	t->closed = true;
	conn_close(&t->conn);
}

/* ---- predicates ---- */

struct want {
	struct rec *r;
	size_t n;
};

static bool got_bytes(void *ctx)
{
	struct want *w = ctx;
	return w->r->n >= w->n;
}

static bool got_eof(void *ctx) { return ((struct rec *)ctx)->neof > 0; }
static bool got_free(void *ctx) { return ((struct rec *)ctx)->nfree > 0; }
static bool got_parked(void *ctx) { return ((struct rec *)ctx)->nparked > 0; }
static bool got_connected(void *ctx) { return ((struct rec *)ctx)->nconnected > 0; }
static bool recv_disarmed(void *ctx) { return !((struct conn *)ctx)->recv_armed; }
static bool send_done(void *ctx) { return !((struct conn *)ctx)->sending && !((struct conn *)ctx)->flushing; }
static bool sending(void *ctx) { return ((struct conn *)ctx)->sending != NULL; }
static bool starved(void *ctx) { return ((struct conn *)ctx)->starved; }

struct starve_watch {
	struct conn *c;
	struct rec *r;
	size_t n;
};

static bool starved_or_all(void *ctx)
{
	struct starve_watch *w = ctx;
	return w->c->starved || w->r->n >= w->n;
}

/* ---- fixtures ---- */

static struct harness *h;
static struct shard *s;

static void setup(void)
{
	h = harness_open(NULL, NULL);
	s = &h->shard;
}

static void teardown(void)
{
	harness_close(h);
}

TestSuite(conn, .init = setup, .fini = teardown, .timeout = 20);
TestSuite(buf, .init = setup, .fini = teardown, .timeout = 20);

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed + i / 251);
}

/* ---- receive ---- */

Test(conn, receive_in_order_into_provided_buffers)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	uint8_t msg[1500];   /* several 256-byte buffers' worth */
	fill_pattern(msg, sizeof msg, 1);
	size_t sent = 0;
	for (size_t chunk = 100; sent < sizeof msg; chunk += 200) {
		size_t n = chunk < sizeof msg - sent ? chunk : sizeof msg - sent;
		cr_assert_eq(harness_write_all(s, fds[1], msg + sent, n, 1000), n);
		sent += n;
		harness_run_for(s, 2);
	}
	struct want w = { r, sizeof msg };
	cr_assert(harness_run_until(s, got_bytes, &w, 2000), "received %zu of %zu", r->n, sizeof msg);
	cr_expect_eq(r->n, sizeof msg);
	cr_expect_eq(memcmp(r->data, msg, sizeof msg), 0, "bytes out of order or altered");
	cr_expect_geq(r->ndata, 6, "a 256-byte buffer holds at most 256 bytes");
	cr_expect(r->all_provided, "data outside the client group's provided buffers");
	cr_expect_eq(s->bufs.group[BUF_GROUP_CLIENT].in_use, 0, "buffers not returned after the callback");
	cr_expect_eq(s->bufs.in_use, 0);
	cr_expect_eq(r->neof, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, server_group_draws_from_server_buffers)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	r->hold = true;
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_SERVER);
	conn_recv_on(&t->conn);
	cr_assert_eq(harness_write_all(s, fds[1], "server says", 11, 1000), 11);
	struct want w = { r, 11 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	cr_expect(r->all_provided);
	cr_expect_eq(s->bufs.group[BUF_GROUP_SERVER].in_use, 1);
	cr_expect_eq(s->bufs.group[BUF_GROUP_CLIENT].in_use, 0);
	cr_expect_geq(r->held[0], s->bufs.group[BUF_GROUP_SERVER].first_id);
	bufs_unref(&s->bufs, r->held[0]);
	cr_expect_eq(s->bufs.group[BUF_GROUP_SERVER].in_use, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, buffer_returns_to_ring_on_last_unref)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	r->hold = true;
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	cr_assert_eq(harness_write_all(s, fds[1], "abc", 3, 1000), 3);
	struct want w = { r, 3 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	struct buf_group *g = &s->bufs.group[BUF_GROUP_CLIENT];
	uint32_t id = r->held[0];
	cr_expect_eq(r->nheld, 1);
	cr_expect_eq(s->bufs.refs[id], 1, "only the owner's reference is left");
	cr_expect_eq(g->in_use, 1);
	cr_expect_eq(s->bufs.in_use, 1);
	bufs_ref(&s->bufs, id);   /* a second holder: the first unref must not return it */
	bufs_unref(&s->bufs, id);
	cr_expect_eq(g->in_use, 1);
	bufs_unref(&s->bufs, id);
	cr_expect_eq(s->bufs.refs[id], 0);
	cr_expect_eq(g->in_use, 0);
	cr_expect_eq(s->bufs.in_use, 0);
	/* Back in the ring: every buffer can be filled again. 8 buffers of 256
	 * bytes, 2048 bytes held at once: needs the returned one too. */
	r->n = 0;
	r->nheld = 0;
	uint8_t more[2048];
	fill_pattern(more, sizeof more, 7);
	cr_assert_eq(harness_write_all(s, fds[1], more, sizeof more, 1000), sizeof more);
	w.n = sizeof more;
	cr_assert(harness_run_until(s, got_bytes, &w, 2000), "got %zu of 2048: the buffer did not go back", r->n);
	cr_expect_eq(memcmp(r->data, more, sizeof more), 0);
	cr_expect_eq(g->in_use, 8);
	for (int i = 0; i < r->nheld; i++)
		bufs_unref(&s->bufs, r->held[i]);
	cr_expect_eq(g->in_use, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

/* ---- send ---- */

Test(conn, queued_slices_go_out_in_one_sendmsg)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	uint32_t ida, idb;
	uint8_t *a = bufs_scratch(&s->bufs, 5000, &ida), *b = bufs_scratch(&s->bufs, 5000, &idb);
	cr_assert(a && b && ida != idb);
	memset(a, 'a', 5000);
	memset(b, 'b', 5000);
	uint64_t sends = stat_get(&s->stats->sends), iovecs = stat_get(&s->stats->send_iovecs);
	cr_assert(conn_queue(&t->conn, a, 5000, ida));
	cr_assert(conn_queue(&t->conn, "xyz", 3, PROTO_BUF_NONE));
	cr_assert(conn_queue(&t->conn, b, 5000, idb));
	cr_expect_eq(s->bufs.refs[ida], 2, "the queue takes its own reference");
	bufs_unref(&s->bufs, ida);
	bufs_unref(&s->bufs, idb);
	cr_expect_eq(t->conn.out_bytes, 10003);
	uint8_t got[10003];
	cr_assert_eq(harness_read_all(s, fds[1], got, sizeof got, 2000), sizeof got);
	cr_expect(got[0] == 'a' && got[4999] == 'a' && memcmp(got + 5000, "xyz", 3) == 0 && got[5003] == 'b' &&
		  got[10002] == 'b', "slices out of order");
	cr_assert(harness_run_until(s, send_done, &t->conn, 1000));
	cr_expect_eq(stat_get(&s->stats->sends) - sends, 1, "three queued slices took %llu sends",
		     (unsigned long long)(stat_get(&s->stats->sends) - sends));
	cr_expect_eq(stat_get(&s->stats->send_iovecs) - iovecs, 3);
	cr_expect_eq(s->bufs.refs[ida], 0, "the send's reference is dropped once it completed");
	cr_expect_eq(s->bufs.refs[idb], 0);
	cr_expect_eq(t->conn.out_bytes, 0);
	cr_expect_geq(r->ndrained, 1);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, more_slices_than_one_sendmsg_holds_stay_in_order)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	uint32_t id;
	uint8_t *p = bufs_scratch(&s->bufs, 8000, &id);
	cr_assert_not_null(p);
	fill_pattern(p, 8000, 3);
	uint8_t want[SENDBUF_IOV + 6];
	uint64_t sends = stat_get(&s->stats->sends), iovecs = stat_get(&s->stats->send_iovecs);
	for (unsigned i = 0; i < sizeof want; i++) {   /* every other byte: no two adjacent */
		cr_assert(conn_queue(&t->conn, p + 2 * i, 1, id));
		want[i] = p[2 * i];
	}
	bufs_unref(&s->bufs, id);
	uint8_t got[sizeof want];
	cr_assert_eq(harness_read_all(s, fds[1], got, sizeof got, 2000), sizeof got);
	cr_expect_eq(memcmp(got, want, sizeof want), 0);
	cr_assert(harness_run_until(s, send_done, &t->conn, 1000));
	cr_expect_eq(stat_get(&s->stats->sends) - sends, 2);
	cr_expect_eq(stat_get(&s->stats->send_iovecs) - iovecs, sizeof want);
	cr_expect_eq(s->bufs.refs[id], 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, forwarded_buffer_is_held_until_its_send_completes)
{
	int a[2], b[2];
	harness_socketpair(a);
	harness_socketpair(b);
	struct rec *ra = new_rec(), *rb = new_rec();
	struct tconn *ta = new_conn(h, a[0], ra, BUF_GROUP_CLIENT), *tb = new_conn(h, b[0], rb, BUF_GROUP_SERVER);
	ra->echo_to = &tb->conn;
	conn_recv_on(&ta->conn);
	cr_assert_eq(harness_write_all(s, a[1], "forward me", 10, 1000), 10);
	struct want w = { ra, 10 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	uint32_t id = ra->last_buf;
	struct buf_group *g = &s->bufs.group[BUF_GROUP_CLIENT];
	cr_expect_eq(ra->refs_in_cb, 2, "conn_queue took no reference of its own");
	cr_expect_eq(s->bufs.refs[id], 1, "after the callback only the queued slice holds the buffer");
	cr_expect_eq(g->in_use, 1, "the buffer went back to the ring while still queued");
	cr_expect_eq(tb->conn.q.head ? tb->conn.q.head->buf[0] : PROTO_BUF_NONE, id, "queued by copy, not by id");
	char got[10];
	cr_assert_eq(harness_read_all(s, b[1], got, 10, 1000), 10);
	cr_expect_eq(memcmp(got, "forward me", 10), 0);
	cr_assert(harness_run_until(s, send_done, &tb->conn, 1000));
	cr_expect_eq(s->bufs.refs[id], 0);
	cr_expect_eq(g->in_use, 0);
	close_conn(ta);
	close_conn(tb);
	cr_assert(harness_run_until(s, got_free, ra, 1000));
	cr_assert(harness_run_until(s, got_free, rb, 1000));
	close(a[1]);
	close(b[1]);
	free(ra);
	free(rb);
}

/* A small slice of a receive buffer is copied, not referenced, once half of
 * its ring is held: a connection that does not read cannot empty the ring a
 * few bytes at a time and stop every other connection receiving. */
Test(conn, small_slices_are_copied_when_half_the_ring_is_held)
{
	int a[2], b[2];
	harness_socketpair(a);
	harness_socketpair(b);
	struct rec *ra = new_rec(), *rb = new_rec();
	struct tconn *ta = new_conn(h, a[0], ra, BUF_GROUP_CLIENT), *tb = new_conn(h, b[0], rb, BUF_GROUP_SERVER);
	struct buf_group *g = &s->bufs.group[BUF_GROUP_CLIENT];
	ra->hold = true;   /* each receive keeps its buffer, as a queue to a non-reader would */
	conn_recv_on(&ta->conn);
	size_t total = 0;
	for (uint32_t k = 0; g->in_use * 2 <= g->count; k++) {
		cr_assert_lt(k, g->count, "the ring never got half held");
		cr_assert_eq(harness_write_all(s, a[1], "x", 1, 1000), 1);
		struct want w = { ra, ++total };
		cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	}
	ra->hold = false;
	ra->echo_to = &tb->conn;
	cr_assert_eq(harness_write_all(s, a[1], "small", 5, 1000), 5);
	struct want w = { ra, total + 5 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	uint32_t id = ra->last_buf;
	cr_expect_eq(ra->refs_in_cb, 1, "the queue took a reference of the receive buffer (%u)", ra->refs_in_cb);
	uint32_t queued = tb->conn.q.head ? tb->conn.q.head->buf[0] : PROTO_BUF_NONE;
	cr_expect_neq(queued, id, "queued by reference");
	cr_expect_geq(queued, s->bufs.nprovided, "not a scratch copy: %u", queued);
	char got[5];
	cr_assert_eq(harness_read_all(s, b[1], got, 5, 1000), 5);
	cr_expect_eq(memcmp(got, "small", 5), 0);
	for (int i = 0; i < ra->nheld; i++)
		bufs_unref(&s->bufs, ra->held[i]);
	cr_assert(harness_run_until(s, send_done, &tb->conn, 1000));
	close_conn(ta);
	close_conn(tb);
	cr_assert(harness_run_until(s, got_free, ra, 1000));
	cr_assert(harness_run_until(s, got_free, rb, 1000));
	cr_expect_eq(g->in_use, 0, "every receive buffer back in the ring");
	close(a[1]);
	close(b[1]);
	free(ra);
	free(rb);
}

Test(conn, unbuffered_bytes_are_copied)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	char mine[32] = "the caller's own memory";
	size_t n = strlen(mine);
	cr_assert(conn_queue(&t->conn, mine, (uint32_t)n, PROTO_BUF_NONE));
	uint32_t id = t->conn.q.head->buf[0];
	cr_expect_geq(id, s->bufs.nprovided, "copied bytes live in a scratch buffer");
	cr_expect_neq(t->conn.q.head->iov[0].iov_base, (void *)mine, "not copied");
	memset(mine, 'Z', sizeof mine);   /* at once, before any step */
	char got[32];
	cr_assert_eq(harness_read_all(s, fds[1], got, n, 1000), n);
	cr_expect_eq(memcmp(got, "the caller's own memory", n), 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, adjacent_slices_of_one_buffer_merge)
{
	uint32_t id;
	uint8_t *p = bufs_scratch(&s->bufs, 8000, &id);
	cr_assert_not_null(p);
	fill_pattern(p, 8000, 5);
	struct sendq q = { 0 };
	cr_assert(sendq_append(s, &q, p, 10, id));
	cr_assert(sendq_append(s, &q, p + 10, 10, id));
	cr_expect_eq(q.head->n, 1, "adjacent bytes of one buffer took two iovecs");
	cr_expect_eq(q.head->iov[0].iov_len, 20);
	cr_expect_eq(s->bufs.refs[id], 2, "one reference per iovec");
	cr_assert(sendq_append(s, &q, p + 30, 10, id));   /* a gap: a new slice */
	cr_expect_eq(q.head->n, 2);
	cr_expect_eq(s->bufs.refs[id], 3);
	cr_assert(sendq_append(s, &q, "ab", 2, PROTO_BUF_NONE));
	cr_assert(sendq_append(s, &q, "cd", 2, PROTO_BUF_NONE));   /* carved right behind "ab" */
	cr_expect_eq(q.head->n, 3, "consecutive copies took two iovecs");
	cr_expect_eq(q.head->iov[2].iov_len, 4);
	cr_expect_eq(memcmp(q.head->iov[2].iov_base, "abcd", 4), 0);
	cr_expect_eq(q.bytes, 34);
	cr_expect_eq(q.head->bytes, 34);
	cr_assert(sendq_append(s, &q, p, 0, id));   /* nothing: no slice, no reference */
	cr_expect_eq(q.head->n, 3);
	cr_expect_eq(s->bufs.refs[id], 3);
	sendq_drop(s, &q);
	cr_expect_eq(s->bufs.refs[id], 1, "sendq_drop left references behind");
	cr_expect_null(q.head);
	cr_expect_eq(q.bytes, 0);

	/* The same through a conn: two iovecs in one sendmsg, bytes in order. */
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	uint64_t iovecs = stat_get(&s->stats->send_iovecs);
	cr_assert(conn_queue(&t->conn, p, 10, id));
	cr_assert(conn_queue(&t->conn, p + 10, 10, id));
	cr_assert(conn_queue(&t->conn, p + 30, 10, id));
	uint8_t got[30];
	cr_assert_eq(harness_read_all(s, fds[1], got, 30, 1000), 30);
	cr_expect_eq(memcmp(got, p, 20), 0);
	cr_expect_eq(memcmp(got + 20, p + 30, 10), 0);
	cr_assert(harness_run_until(s, send_done, &t->conn, 1000));
	cr_expect_eq(stat_get(&s->stats->send_iovecs) - iovecs, 2);
	bufs_unref(&s->bufs, id);
	cr_expect_eq(s->bufs.refs[id], 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, take_queue_appends_a_detached_queue_in_order)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	struct sendq q = { 0 };
	cr_assert(sendq_append(s, &q, "held ", 5, PROTO_BUF_NONE));
	cr_assert(sendq_append(s, &q, "request", 7, PROTO_BUF_NONE));
	cr_assert(conn_queue(&t->conn, "first ", 6, PROTO_BUF_NONE));
	conn_take_queue(&t->conn, &q);
	cr_expect_null(q.head);
	cr_expect_eq(q.bytes, 0);
	cr_expect_eq(t->conn.out_bytes, 18);
	cr_expect_eq(t->conn.q.bytes, 18);
	char got[18];
	cr_assert_eq(harness_read_all(s, fds[1], got, 18, 1000), 18);
	cr_expect_eq(memcmp(got, "first held request", 18), 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, queue_out_refuses_an_overflowed_message)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	uint8_t mem[8];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	o.overflow = true;
	cr_expect_not(conn_queue_out(&t->conn, &o));
	cr_expect_eq(t->conn.out_bytes, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

/* ---- back-pressure ---- */

Test(conn, recv_off_leaves_bytes_in_the_kernel_and_recv_on_resumes)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	cr_assert_eq(harness_write_all(s, fds[1], "first", 5, 1000), 5);
	struct want w = { r, 5 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	uint64_t paused = stat_get(&s->stats->paused);
	conn_recv_off(&t->conn);
	cr_expect_eq(stat_get(&s->stats->paused) - paused, 1);
	cr_assert(harness_run_until(s, recv_disarmed, &t->conn, 1000), "the multishot recv was not cancelled");
	int ndata = r->ndata;
	cr_assert_eq(harness_write_all(s, fds[1], "second", 6, 1000), 6);
	harness_run_for(s, 50);
	cr_expect_eq(r->ndata, ndata, "data while receiving is off");
	cr_expect_eq(r->n, 5);
	cr_expect_eq(harness_pending(fds[0]), 6, "the bytes should wait in the kernel");
	conn_recv_on(&t->conn);
	w.n = 11;
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	cr_expect_eq(r->n, 11);
	cr_expect_eq(memcmp(r->data, "firstsecond", 11), 0);
	cr_expect_eq(harness_pending(fds[0]), 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, recv_off_then_on_before_the_cancel_lands_loses_nothing)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	harness_run_for(s, 5);
	conn_recv_off(&t->conn);
	conn_recv_on(&t->conn);   /* same turn: the cancel is still on its way */
	uint8_t msg[600];
	fill_pattern(msg, sizeof msg, 9);
	cr_assert_eq(harness_write_all(s, fds[1], msg, sizeof msg, 1000), sizeof msg);
	struct want w = { r, sizeof msg };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000), "receiving stopped after off+on: %zu of %zu", r->n,
		  sizeof msg);
	cr_expect_eq(memcmp(r->data, msg, sizeof msg), 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

/* ---- ENOBUFS ---- */

Test(conn, out_of_buffers_starves_then_resumes_without_loss)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	r->hold = true;   /* nothing goes back until the test says so */
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	struct buf_group *g = &s->bufs.group[BUF_GROUP_CLIENT];
	conn_recv_on(&t->conn);
	uint8_t msg[5000];   /* the group holds 8 x 256 = 2048 */
	fill_pattern(msg, sizeof msg, 11);
	cr_assert_eq(harness_write_all(s, fds[1], msg, sizeof msg, 1000), sizeof msg);
	uint64_t enobufs = stat_get(&s->stats->enobufs);
	cr_assert(harness_run_until(s, starved, &t->conn, 2000), "never starved: %zu bytes, %u buffers in use", r->n,
		  g->in_use);
	cr_expect_eq(g->in_use, g->count);
	cr_expect_eq(r->n, (size_t)g->count * g->size);
	cr_expect_geq(stat_get(&s->stats->enobufs) - enobufs, 1);
	cr_expect_eq(s->starved_head, &t->conn);
	cr_expect_not(t->conn.recv_armed);
	cr_expect_eq(harness_pending(fds[0]), (int)(sizeof msg - r->n), "the rest should wait in the kernel");
	enobufs = stat_get(&s->stats->enobufs);
	harness_run_for(s, 30);
	cr_expect(t->conn.starved, "re-armed with no buffer free");
	cr_expect_eq(stat_get(&s->stats->enobufs), enobufs, "re-armed into ENOBUFS again and again");
	cr_expect_eq(r->n, (size_t)g->count * g->size);
	/* Release what is held, as a slow peer would drain; the conn must come back
	 * each time and the bytes arrive whole and in order. */
	int rounds = 0;
	struct starve_watch sw = { &t->conn, r, sizeof msg };
	while (r->n < sizeof msg && rounds++ < 10) {
		for (int i = 0; i < r->nheld; i++)
			bufs_unref(&s->bufs, r->held[i]);
		r->nheld = 0;
		harness_run_for(s, 2);
		cr_assert(harness_run_until(s, starved_or_all, &sw, 2000));
	}
	cr_expect_eq(r->n, sizeof msg);
	cr_expect_eq(memcmp(r->data, msg, sizeof msg), 0, "bytes lost or reordered across ENOBUFS");
	cr_expect_geq(rounds, 2);
	for (int i = 0; i < r->nheld; i++)
		bufs_unref(&s->bufs, r->held[i]);
	cr_expect_eq(g->in_use, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

/* A group of fewer than 8 buffers: an eighth of it is 0, which must not mean
 * "re-arm at once" (that would hit ENOBUFS again on every turn). */
Test(conn, a_tiny_group_does_not_spin_on_enobufs)
{
	harness_close(h);
	h = harness_open(NULL, "[pgring]\nauth_type = trust\nring_entries = 64\ncq_entries = 1024\n"
			       "client_bufs = 4\nclient_buf_size = 256\nserver_bufs = 4\nserver_buf_size = 256\n");
	s = &h->shard;
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	r->hold = true;
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	uint8_t msg[2000];
	fill_pattern(msg, sizeof msg, 23);
	cr_assert_eq(harness_write_all(s, fds[1], msg, sizeof msg, 1000), sizeof msg);
	struct want w = { r, 4 * 256 };   /* every buffer filled and held */
	cr_assert(harness_run_until(s, got_bytes, &w, 2000));
	harness_run_for(s, 5);
	uint64_t enobufs = stat_get(&s->stats->enobufs), loops = stat_get(&s->stats->loops);
	harness_run_for(s, 30);
	cr_expect(t->conn.starved);
	cr_expect_eq(stat_get(&s->stats->enobufs), enobufs, "%llu ENOBUFS in %llu turns with every buffer held",
		     (unsigned long long)(stat_get(&s->stats->enobufs) - enobufs),
		     (unsigned long long)(stat_get(&s->stats->loops) - loops));
	struct starve_watch sw = { &t->conn, r, sizeof msg };
	for (int rounds = 0; r->n < sizeof msg && rounds < 10; rounds++) {
		for (int i = 0; i < r->nheld; i++)
			bufs_unref(&s->bufs, r->held[i]);
		r->nheld = 0;
		harness_run_for(s, 2);
		cr_assert(harness_run_until(s, starved_or_all, &sw, 2000));
	}
	cr_expect_eq(r->n, sizeof msg);
	cr_expect_eq(memcmp(r->data, msg, sizeof msg), 0);
	for (int i = 0; i < r->nheld; i++)
		bufs_unref(&s->bufs, r->held[i]);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

/* A starved conn of a group still short of buffers holds back only its own
 * group: a server conn behind a client conn is re-armed once server buffers
 * are free (client buffers may be held by slices queued to a server that is
 * itself blocked on sending to pgring, which would never resolve), and a
 * closing conn leaves the list at once. */
Test(conn, a_starved_conn_of_one_group_does_not_hold_back_the_other_group)
{
	int a[2], b[2];
	harness_socketpair(a);
	harness_socketpair(b);
	struct rec *ra = new_rec(), *rb = new_rec();
	ra->hold = rb->hold = true;
	struct tconn *ta = new_conn(h, a[0], ra, BUF_GROUP_CLIENT), *tb = new_conn(h, b[0], rb, BUF_GROUP_SERVER);
	uint8_t msg[12000];
	fill_pattern(msg, sizeof msg, 29);
	conn_recv_on(&ta->conn);
	cr_assert_eq(harness_write_all(s, a[1], msg, 3000, 1000), 3000);
	cr_assert(harness_run_until(s, starved, &ta->conn, 2000));
	conn_recv_on(&tb->conn);
	cr_assert_eq(harness_write_all(s, b[1], msg, sizeof msg, 1000), sizeof msg);
	cr_assert(harness_run_until(s, starved, &tb->conn, 2000));
	cr_expect_eq(s->starved_head, &ta->conn);
	size_t before = rb->n;
	for (int i = 0; i < rb->nheld; i++)   /* server buffers free again, client ones still held */
		bufs_unref(&s->bufs, rb->held[i]);
	rb->nheld = 0;
	struct want w = { rb, before + 1 };
	cr_expect(harness_run_until(s, got_bytes, &w, 200), "the server conn waited for client buffers");
	cr_expect(ta->conn.starved);
	for (int i = 0; i < ra->nheld; i++)
		bufs_unref(&s->bufs, ra->held[i]);
	for (int i = 0; i < rb->nheld; i++)
		bufs_unref(&s->bufs, rb->held[i]);
	close_conn(ta);
	close_conn(tb);
	cr_assert(harness_run_until(s, got_free, ra, 1000));
	cr_assert(harness_run_until(s, got_free, rb, 1000));
	close(a[1]);
	close(b[1]);
	free(ra);
	free(rb);
}

Test(conn, close_while_starved_frees_once_buffers_return)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	r->hold = true;
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	uint8_t msg[3000];
	fill_pattern(msg, sizeof msg, 13);
	cr_assert_eq(harness_write_all(s, fds[1], msg, sizeof msg, 1000), sizeof msg);
	cr_assert(harness_run_until(s, starved, &t->conn, 2000));
	close_conn(t);
	harness_run_for(s, 20);   /* (today it waits on the starved list until buffers return) */
	for (int i = 0; i < r->nheld; i++)
		bufs_unref(&s->bufs, r->held[i]);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	cr_expect_eq(r->nfree, 1);
	cr_expect_null(s->starved_head);
	cr_expect_not(r->data_after_close);
	close(fds[1]);
	free(r);
}

/* ---- EOF ---- */

Test(conn, peer_close_gives_one_clean_eof)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	cr_assert_eq(harness_write_all(s, fds[1], "last words", 10, 1000), 10);
	close(fds[1]);
	cr_assert(harness_run_until(s, got_eof, r, 1000));
	harness_run_for(s, 30);
	cr_expect_eq(r->neof, 1);
	cr_expect_eq(r->eof_err, 0);
	cr_expect_eq(r->n, 10, "bytes before the FIN were lost");
	cr_expect_not(t->conn.recv_armed, "re-armed after EOF");
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	cr_expect_eq(r->neof, 1);
	free(r);
}

Test(conn, send_to_closed_peer_gives_one_eof_with_the_error)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	close(fds[1]);   /* not receiving: only the send can find out */
	cr_assert(conn_queue(&t->conn, "anyone?", 7, PROTO_BUF_NONE));
	cr_assert(harness_run_until(s, got_eof, r, 1000));
	cr_expect(r->eof_err == EPIPE || r->eof_err == ECONNRESET, "eof err %d (%s)", r->eof_err, strerror(r->eof_err));
	cr_expect_eq(t->conn.out_bytes, 0);
	cr_assert(conn_queue(&t->conn, "still?", 6, PROTO_BUF_NONE));   /* queued after EOF: never sent */
	harness_run_for(s, 30);
	cr_expect_eq(r->neof, 1);
	cr_expect_null(t->conn.sending);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	cr_expect_eq(s->bufs.in_use, 1, "only the scratch buffer being carved is left");
	free(r);
}

Test(conn, a_failed_send_drops_what_was_queued_behind_it_and_eof_comes_once)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);   /* the recv and the send will both see the peer go */
	size_t n = 1 << 20;
	uint8_t *big = calloc(1, n);
	cr_assert_not_null(big);
	cr_assert(conn_queue(&t->conn, big, (uint32_t)n, PROTO_BUF_NONE));
	cr_assert(harness_run_until(s, sending, &t->conn, 1000));
	uint32_t id;
	uint8_t *p = bufs_scratch(&s->bufs, 6000, &id);
	cr_assert_not_null(p);
	cr_assert(conn_queue(&t->conn, p, 6000, id));   /* behind the one in flight */
	bufs_unref(&s->bufs, id);
	close(fds[1]);
	cr_assert(harness_run_until(s, got_eof, r, 1000));
	cr_assert(harness_run_until(s, send_done, &t->conn, 1000));
	harness_run_for(s, 30);
	cr_expect_eq(r->neof, 1, "eof %d times", r->neof);
	cr_expect_eq(t->conn.out_bytes, 0, "%u bytes still counted", t->conn.out_bytes);
	cr_expect_null(t->conn.q.head);
	cr_expect_eq(s->bufs.refs[id], 0, "the queued slice still holds its buffer");
	cr_expect_eq(s->bufs.in_use, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	free(big);
	free(r);
}

Test(conn, a_send_failing_after_the_peer_closed_gives_no_second_eof)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	size_t n = 1 << 20;
	uint8_t *big = calloc(1, n);
	cr_assert_not_null(big);
	cr_assert(conn_queue(&t->conn, big, (uint32_t)n, PROTO_BUF_NONE));
	cr_assert(harness_run_until(s, sending, &t->conn, 1000));
	shutdown(fds[1], SHUT_WR);   /* the recv sees EOF first, the send is still in flight */
	cr_assert(harness_run_until(s, got_eof, r, 1000));
	cr_expect_eq(r->eof_err, 0);
	cr_expect_not_null(t->conn.sending);
	close(fds[1]);               /* now the send fails too */
	cr_assert(harness_run_until(s, send_done, &t->conn, 1000));
	harness_run_for(s, 20);
	cr_expect_eq(r->neof, 1, "eof %d times", r->neof);
	cr_expect_eq(r->eof_err, 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	free(big);
	free(r);
}

/* ---- teardown ---- */

Test(conn, close_sends_what_is_queued_then_closes_and_frees_once)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	cr_assert(conn_queue(&t->conn, "good", 4, PROTO_BUF_NONE));
	cr_assert(conn_queue(&t->conn, "bye", 3, PROTO_BUF_NONE));
	close_conn(t);
	cr_expect_eq(r->nfree, 0, "freed with output queued");
	char got[7];
	cr_assert_eq(harness_read_all(s, fds[1], got, 7, 1000), 7);
	cr_expect_eq(memcmp(got, "goodbye", 7), 0);
	size_t extra;
	cr_expect(harness_wait_eof(s, fds[1], &extra, 1000), "the descriptor was not closed");
	cr_expect_eq(extra, 0);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	harness_run_for(s, 30);
	cr_expect_eq(r->nfree, 1);
	cr_expect_eq(r->neof, 0);
	cr_expect_eq(r->ndrained, 0, "drained after conn_close");
	cr_expect_not(r->data_after_close);
	close(fds[1]);
	free(r);
}

Test(conn, close_waits_for_a_send_in_flight)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	size_t n = 1 << 20;   /* more than the socket holds: the send stays in flight */
	uint8_t *big = malloc(n), *got = malloc(n);
	cr_assert(big && got);
	fill_pattern(big, n, 17);
	cr_assert(conn_queue(&t->conn, big, (uint32_t)n, PROTO_BUF_NONE));
	cr_assert(harness_run_until(s, sending, &t->conn, 1000));
	harness_run_for(s, 30);
	cr_assert_not_null(t->conn.sending, "1 MiB sent without a reader?");
	close_conn(t);
	harness_run_for(s, 30);
	cr_expect_eq(r->nfree, 0, "freed with a send in flight");
	cr_expect_gt(t->conn.inflight, 0);
	cr_assert_eq(harness_read_all(s, fds[1], got, n, 5000), n);
	cr_expect_eq(memcmp(got, big, n), 0);
	cr_expect(harness_wait_eof(s, fds[1], NULL, 1000));
	cr_assert(harness_run_until(s, got_free, r, 1000));
	harness_run_for(s, 20);
	cr_expect_eq(r->nfree, 1);
	cr_expect_eq(s->bufs.in_use, 0, "the 1 MiB scratch buffer was not released");
	close(fds[1]);
	free(big);
	free(got);
	free(r);
}

Test(conn, close_waits_for_the_recv_cancel)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	harness_run_for(s, 5);
	cr_assert(t->conn.recv_armed);
	close_conn(t);
	cr_expect_eq(r->nfree, 0, "freed while its multishot recv was live");
	cr_assert(harness_run_until(s, got_free, r, 1000));
	cr_expect(harness_wait_eof(s, fds[1], NULL, 1000));
	harness_run_for(s, 20);
	cr_expect_eq(r->nfree, 1);
	close(fds[1]);
	free(r);
}

Test(conn, nothing_is_delivered_after_close)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);   /* prepared, not yet submitted */
	cr_assert_eq(harness_write_all(s, fds[1], "too late", 8, 1000), 8);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	harness_run_for(s, 20);
	cr_expect_eq(r->ndata, 0);
	cr_expect_eq(r->neof, 0);
	cr_expect_eq(s->bufs.group[BUF_GROUP_CLIENT].in_use, 0);
	close(fds[1]);
	free(r);
}

Test(conn, hold_keeps_a_closed_conn_until_unhold)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_hold(&t->conn);
	close_conn(t);
	harness_run_for(s, 20);
	cr_expect_eq(r->nfree, 0);
	conn_unhold(&t->conn);
	cr_expect_eq(r->nfree, 1);
	close(fds[1]);
	free(r);
}

/* ---- parking ---- */

Test(conn, park_with_nothing_in_flight_parks_at_once)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_park(&t->conn);
	cr_expect_eq(r->nparked, 1);
	harness_run_for(s, 10);
	cr_expect_eq(r->nparked, 1);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, park_waits_for_the_recv_to_end)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	conn_recv_on(&t->conn);
	harness_run_for(s, 5);
	conn_park(&t->conn);
	cr_expect_eq(r->nparked, 0, "parked with a live recv");
	cr_assert(harness_run_until(s, got_parked, r, 1000));
	cr_expect_not(t->conn.recv_armed);
	cr_expect_eq(t->conn.inflight, 0);
	cr_assert_eq(harness_write_all(s, fds[1], "for the next shard", 18, 1000), 18);
	harness_run_for(s, 30);
	cr_expect_eq(r->ndata, 0, "data after parking");
	cr_expect_eq(r->nparked, 1);
	cr_expect_eq(harness_pending(fds[0]), 18);
	/* adopted (here by the same shard) it receives again, nothing lost */
	conn_adopt(&t->conn, s);
	conn_recv_on(&t->conn);
	struct want w = { r, 18 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	cr_expect_eq(memcmp(r->data, "for the next shard", 18), 0);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(r);
}

Test(conn, park_waits_for_a_send_in_flight)
{
	int fds[2];
	harness_socketpair(fds);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, fds[0], r, BUF_GROUP_CLIENT);
	size_t n = 1 << 20;
	uint8_t *big = malloc(n), *got = malloc(n);
	cr_assert(big && got);
	fill_pattern(big, n, 19);
	cr_assert(conn_queue(&t->conn, big, (uint32_t)n, PROTO_BUF_NONE));
	cr_assert(harness_run_until(s, sending, &t->conn, 1000));
	conn_park(&t->conn);
	harness_run_for(s, 30);
	cr_expect_eq(r->nparked, 0, "parked with a send in flight");
	cr_assert_eq(harness_read_all(s, fds[1], got, n, 5000), n);
	cr_expect_eq(memcmp(got, big, n), 0);
	cr_assert(harness_run_until(s, got_parked, r, 1000));
	cr_expect_eq(r->nparked, 1);
	cr_expect_null(t->conn.sending);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(fds[1]);
	free(big);
	free(got);
	free(r);
}

Test(conn, park_waits_for_a_connect_or_a_hold)
{
	int lfd = harness_listen_unix(h, 5997);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, harness_path(h, ".s.PGSQL.5997"));
	struct rec *r = new_rec();
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct tconn *t = new_conn(h, fd, r, BUF_GROUP_SERVER);
	conn_connect(&t->conn, (struct sockaddr *)&sa, sizeof sa);
	conn_park(&t->conn);
	cr_expect_eq(r->nparked, 0, "parked with its connect in flight");
	cr_assert(harness_run_until(s, got_parked, r, 1000));
	cr_expect_eq(r->nconnected, 1);
	cr_expect_eq(r->connected_res, 0);
	conn_hold(&t->conn);
	conn_park(&t->conn);
	harness_run_for(s, 10);
	cr_expect_eq(r->nparked, 1, "parked while held");
	conn_unhold(&t->conn);
	cr_expect_eq(r->nparked, 2);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(lfd);
	free(r);
}

/* ---- connect ---- */

static int unix_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	return fd;
}

static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cr_assert_lt(strlen(path), sizeof sa.sun_path);
	strcpy(sa.sun_path, path);
	return sa;
}

Test(conn, connect_to_a_listener_reports_success)
{
	int lfd = harness_listen_unix(h, 5999);
	struct sockaddr_un sa = unix_addr(harness_path(h, ".s.PGSQL.5999"));
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, unix_socket(), r, BUF_GROUP_SERVER);
	conn_connect(&t->conn, (struct sockaddr *)&sa, sizeof sa);
	cr_assert(harness_run_until(s, got_connected, r, 1000));
	cr_expect_eq(r->nconnected, 1);
	cr_expect_eq(r->connected_res, 0);
	int peer = harness_accept(s, lfd, 1000);
	cr_assert_geq(peer, 0);
	cr_assert(conn_queue(&t->conn, "startup", 7, PROTO_BUF_NONE));
	conn_recv_on(&t->conn);
	char got[7];
	cr_assert_eq(harness_read_all(s, peer, got, 7, 1000), 7);
	cr_expect_eq(memcmp(got, "startup", 7), 0);
	cr_assert_eq(harness_write_all(s, peer, "R", 1, 1000), 1);
	struct want w = { r, 1 };
	cr_assert(harness_run_until(s, got_bytes, &w, 1000));
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(peer);
	close(lfd);
	free(r);
}

Test(conn, connect_to_a_missing_socket_reports_enoent)
{
	struct sockaddr_un sa = unix_addr(harness_path(h, ".s.PGSQL.1"));
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, unix_socket(), r, BUF_GROUP_SERVER);
	conn_connect(&t->conn, (struct sockaddr *)&sa, sizeof sa);
	cr_assert(harness_run_until(s, got_connected, r, 1000));
	cr_expect_eq(r->connected_res, -ENOENT, "res %d", r->connected_res);
	cr_expect_eq(t->conn.inflight, 0);
	close_conn(t);
	cr_expect_eq(r->nfree, 1, "nothing in flight: freed at once");
	free(r);
}

Test(conn, connect_to_a_socket_nobody_listens_on_reports_econnrefused)
{
	const char *path = harness_path(h, ".s.PGSQL.2");
	struct sockaddr_un sa = unix_addr(path);
	int bound = unix_socket();   /* the file exists, no listen() */
	cr_assert_eq(bind(bound, (struct sockaddr *)&sa, sizeof sa), 0);
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, unix_socket(), r, BUF_GROUP_SERVER);
	conn_connect(&t->conn, (struct sockaddr *)&sa, sizeof sa);
	cr_assert(harness_run_until(s, got_connected, r, 1000));
	cr_expect_eq(r->connected_res, -ECONNREFUSED, "res %d", r->connected_res);
	close_conn(t);
	cr_assert(harness_run_until(s, got_free, r, 1000));
	close(bound);
	free(r);
}

Test(conn, close_during_connect_frees_after_it_and_says_nothing)
{
	int lfd = harness_listen_unix(h, 5998);
	struct sockaddr_un sa = unix_addr(harness_path(h, ".s.PGSQL.5998"));
	struct rec *r = new_rec();
	struct tconn *t = new_conn(h, unix_socket(), r, BUF_GROUP_SERVER);
	conn_connect(&t->conn, (struct sockaddr *)&sa, sizeof sa);
	close_conn(t);
	cr_expect_eq(r->nfree, 0, "freed with its connect in flight");
	cr_assert(harness_run_until(s, got_free, r, 1000));
	cr_expect_eq(r->nconnected, 0, "connected reported after conn_close");
	close(lfd);
	free(r);
}

/* ---- linked SQE chains ---- */

static void fill_sq_but(struct shard *sh, unsigned left)
{
	while (io_uring_sq_space_left(&sh->ring) > left) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, SHARD_OP_IGNORE);
	}
}

Test(conn, a_chain_is_never_split_across_submissions)
{
	unsigned entries = s->ring.sq.ring_entries;
	fill_sq_but(s, 2);
	uint64_t submits = stat_get(&s->stats->submits);
	struct io_uring_sqe *sqes[3];
	shard_sqes(s, sqes, 3);
	cr_expect_eq(stat_get(&s->stats->submits) - submits, 1, "the full SQ was not pushed first");
	cr_expect_eq(io_uring_sq_ready(&s->ring), 3, "the chain's SQEs are not all in the next submission");
	cr_expect_eq(io_uring_sq_space_left(&s->ring), entries - 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_not_null(sqes[i]);
		io_uring_prep_nop(sqes[i]);
		io_uring_sqe_set_data64(sqes[i], SHARD_OP_IGNORE);
		if (i < 2)
			sqes[i]->flags |= IOSQE_IO_LINK;
	}
	for (int i = 1; i < 3; i++)
		cr_expect_eq((unsigned)(sqes[i] - s->ring.sq.sqes), (unsigned)(sqes[i - 1] - s->ring.sq.sqes + 1) & (entries - 1),
			     "SQE %d is not next to SQE %d", i, i - 1);
	uint64_t cqes = stat_get(&s->stats->cqes);
	cr_assert(harness_settle(s, 1000));
	cr_expect_geq(stat_get(&s->stats->cqes) - cqes, 3);
	cr_expect_eq(io_uring_sq_ready(&s->ring), 0);
}

/* What shard_sqes prevents: one SQE at a time, the third lands in the next
 * submission (this pins down the test above's premise). */
Test(conn, single_sqes_would_split_the_chain)
{
	fill_sq_but(s, 2);
	struct io_uring_sqe *sqes[3];
	for (int i = 0; i < 3; i++) {
		sqes[i] = shard_sqe(s);
		io_uring_prep_nop(sqes[i]);
		io_uring_sqe_set_data64(sqes[i], SHARD_OP_IGNORE);
	}
	cr_expect_eq(io_uring_sq_ready(&s->ring), 1);
	cr_assert(harness_settle(s, 1000));
}

Test(conn, a_chain_that_fits_costs_no_extra_submission)
{
	uint64_t submits = stat_get(&s->stats->submits);
	unsigned ready = io_uring_sq_ready(&s->ring);
	struct io_uring_sqe *sqes[3];
	shard_sqes(s, sqes, 3);
	cr_expect_eq(stat_get(&s->stats->submits), submits);
	cr_expect_eq(io_uring_sq_ready(&s->ring), ready + 3);
	for (int i = 0; i < 3; i++) {
		io_uring_prep_nop(sqes[i]);
		io_uring_sqe_set_data64(sqes[i], SHARD_OP_IGNORE);
	}
	cr_assert(harness_settle(s, 1000));
}

/* conn_exchange: the cancel request's connect -> send -> wait-for-close. */
struct exchange {
	struct shard_call call;
	int ndone, res;
};

static void exchange_done(struct shard_call *call, int res)
{
	struct exchange *x = (struct exchange *)call;
	x->ndone++;
	x->res = res;
}

static bool exchange_over(void *ctx) { return ((struct exchange *)ctx)->ndone > 0; }

Test(conn, exchange_is_one_chain_even_on_a_full_sq_and_ends_at_the_peers_close)
{
	int lfd = harness_listen_unix(h, 5996);
	struct sockaddr_un sa = unix_addr(harness_path(h, ".s.PGSQL.5996"));
	int fd = unix_socket();
	struct exchange x = { .call.done = exchange_done };
	char msg[16] = "cancel 12345678";
	fill_sq_but(s, 2);
	conn_exchange(s, &x.call, fd, (struct sockaddr *)&sa, sizeof sa, msg, sizeof msg, NULL);
	cr_expect_eq(io_uring_sq_ready(&s->ring), 3, "the chain was split");
	int peer = harness_accept(s, lfd, 1000);
	cr_assert_geq(peer, 0);
	char got[16];
	cr_assert_eq(harness_read_all(s, peer, got, sizeof got, 1000), sizeof got);
	cr_expect_eq(memcmp(got, "cancel 12345678", 16), 0);
	harness_run_for(s, 20);
	cr_expect_eq(x.ndone, 0, "done before the peer closed");
	close(peer);
	cr_assert(harness_run_until(s, exchange_over, &x, 1000));
	harness_run_for(s, 10);
	cr_expect_eq(x.ndone, 1);
	cr_expect_eq(x.res, 0, "res %d", x.res);
	close(fd);
	close(lfd);
}

Test(conn, exchange_with_no_listener_reports_one_failure)
{
	struct sockaddr_un sa = unix_addr(harness_path(h, ".s.PGSQL.3"));
	int fd = unix_socket();
	struct exchange x = { .call.done = exchange_done };
	char msg[16] = "cancel";
	conn_exchange(s, &x.call, fd, (struct sockaddr *)&sa, sizeof sa, msg, sizeof msg, NULL);
	cr_assert(harness_run_until(s, exchange_over, &x, 1000));
	harness_run_for(s, 10);
	cr_expect_eq(x.ndone, 1);
	cr_expect_lt(x.res, 0, "res %d", x.res);   /* -ECANCELED: the chain broke at the connect */
	close(fd);
}

/* A peer that accepts, reads the request and never closes (a stopped
 * postmaster, a black hole): the limit ends the wait, after the send went out. */
Test(conn, exchange_with_a_limit_ends_when_the_peer_never_closes)
{
	int lfd = harness_listen_unix(h, 5995);
	struct sockaddr_un sa = unix_addr(harness_path(h, ".s.PGSQL.5995"));
	int fd = unix_socket();
	struct exchange x = { .call.done = exchange_done };
	char msg[16] = "cancel 87654321";
	struct __kernel_timespec limit = { .tv_nsec = 200 * 1000000 };
	fill_sq_but(s, 4);
	conn_exchange(s, &x.call, fd, (struct sockaddr *)&sa, sizeof sa, msg, sizeof msg, &limit);
	cr_expect_eq(io_uring_sq_ready(&s->ring), 5, "the chain was split");
	uint64_t t0 = shard_now_us();
	int peer = harness_accept(s, lfd, 1000);
	cr_assert_geq(peer, 0);
	char got[16];
	cr_assert_eq(harness_read_all(s, peer, got, sizeof got, 1000), sizeof got, "the send after the timed connect did not run");
	cr_expect_eq(memcmp(got, "cancel 87654321", 16), 0);
	cr_assert(harness_run_until(s, exchange_over, &x, 2000));
	uint64_t took = shard_now_us() - t0;
	harness_run_for(s, 10);
	cr_expect_eq(x.ndone, 1);
	cr_expect_eq(x.res, -ECANCELED, "res %d", x.res);
	cr_expect_geq(took, 150000, "ended before the limit: %llu us", (unsigned long long)took);
	cr_expect_lt(took, 1000000, "took %llu us", (unsigned long long)took);
	close(peer);
	close(fd);
	close(lfd);
}

/* A connect that cannot complete (a listener whose backlog is full): the limit
 * ends it, and nothing is sent. */
Test(conn, exchange_with_a_limit_ends_a_connect_that_hangs)
{
	const char *path = harness_path(h, ".s.PGSQL.5994");
	struct sockaddr_un sa = unix_addr(path);
	int lfd = unix_socket();
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	int fill[4], nfill = 0;
	for (; nfill < 4; nfill++) {   /* fill the backlog: the next connect waits */
		fill[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (connect(fill[nfill], (struct sockaddr *)&sa, sizeof sa) < 0) {
			cr_assert_eq(errno, EAGAIN, "errno %d", errno);
			close(fill[nfill]);
			break;
		}
	}
	cr_assert_lt(nfill, 4, "the backlog never filled");
	int fd = unix_socket();
	struct exchange x = { .call.done = exchange_done };
	char msg[16] = "cancel";
	struct __kernel_timespec limit = { .tv_nsec = 200 * 1000000 };
	uint64_t t0 = shard_now_us();
	conn_exchange(s, &x.call, fd, (struct sockaddr *)&sa, sizeof sa, msg, sizeof msg, &limit);
	cr_assert(harness_run_until(s, exchange_over, &x, 2000), "the connect was not bounded");
	uint64_t took = shard_now_us() - t0;
	harness_run_for(s, 10);
	cr_expect_eq(x.ndone, 1);
	cr_expect_eq(x.res, -ECANCELED, "res %d", x.res);
	cr_expect_geq(took, 150000, "ended before the limit: %llu us", (unsigned long long)took);
	close(fd);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
}

/* ---- the loop ---- */

Test(conn, step_is_one_submit_and_a_tick_every_100ms)
{
	uint64_t submits = stat_get(&s->stats->submits), loops = stat_get(&s->stats->loops);
	shard_step(s, 0);
	cr_expect_eq(stat_get(&s->stats->submits) - submits, 1);
	cr_expect_eq(stat_get(&s->stats->loops) - loops, 1);
	uint64_t before = s->next_tick_us;
	harness_run_for(s, 150);
	cr_expect_gt(s->next_tick_us, before, "no tick in 150 ms");
	uint64_t t0 = shard_now_us();
	shard_step(s, 20000);   /* nothing to do: waits its 20 ms, not the tick */
	cr_expect_lt(shard_now_us() - t0, 90000);
}

/* Step until a tick has just run: the next wait may then last up to 100 ms. */
static void just_after_a_tick(struct shard *sh)
{
	uint64_t next = sh->next_tick_us;
	while (sh->next_tick_us == next)
		shard_step(sh, 5000);
}

static uint64_t timed_step(struct shard *sh)
{
	uint64_t t0 = shard_now_us();
	shard_step(sh, 1000000);
	return shard_now_us() - t0;
}

Test(conn, a_posted_message_wakes_the_shard_and_is_handled)
{
	struct shard_msg m = { .type = SHARD_MSG_STOP };
	for (int round = 0; round < 2; round++) {   /* twice: the wake-up read is re-armed */
		just_after_a_tick(s);
		s->stopped = false;
		harness_post(s, &m);
		uint64_t took = timed_step(s);
		cr_expect(s->stopped, "round %d: the inbox was not read", round);
		cr_expect_lt(took, 50000, "round %d: the wake-up eventfd did not end the wait (%llu us)", round,
			     (unsigned long long)took);
	}
}

/* Posts that find a wake-up owed (the mail flag set) write no eventfd; the
 * turn that reads them clears the flag first and reads every one, and the
 * next post after it wakes the shard again. */
Test(conn, posts_before_a_turn_are_all_read_and_the_next_wakes_it_again)
{
	struct shard_msg m = { .type = SHARD_MSG_STOP };
	just_after_a_tick(s);
	s->stopped = false;
	harness_post(s, &m);
	harness_post(s, &m);
	harness_post(s, &m);
	cr_expect_eq(atomic_load(&s->mail), 1);
	uint64_t took = timed_step(s);
	cr_expect(s->stopped, "the inbox was not read");
	cr_expect_lt(took, 50000, "the first post's eventfd did not end the wait (%llu us)", (unsigned long long)took);
	cr_expect_eq(atomic_load(&s->mail), 0, "the flag was not cleared");
	struct shard_msg left;
	cr_expect_not(queue_pop(&s->inbox[s->nshards], &left), "a message was left in the inbox");
	/* a turn with the flag clear reads no inbox, and a post after it wakes the shard */
	just_after_a_tick(s);
	s->stopped = false;
	harness_post(s, &m);
	took = timed_step(s);
	cr_expect(s->stopped, "the post after the turn was not read");
	cr_expect_lt(took, 50000, "the post after the turn did not wake the shard (%llu us)", (unsigned long long)took);
}

/* An idle turn with no timer of the layer above waits with no timeout of its
 * own: the periodic tick timer's completion ends it and the tick runs, once
 * per 100 ms. (A kernel without multishot timeouts answers the timer with an
 * error at once, which turns it off; the turns after that wait for the
 * tick's time.) A broken timer would block here: the test's timeout ends it. */
Test(conn, idle_turns_end_at_each_tick, .timeout = 10)
{
	just_after_a_tick(s);
	uint64_t t0 = shard_now_us();
	int ticks = 0;
	for (int i = 0; i < 12 && ticks < 3; i++) {
		uint64_t next = s->next_tick_us;
		shard_step(s, UINT64_MAX);
		ticks += s->next_tick_us != next;
	}
	uint64_t took = shard_now_us() - t0;
	cr_expect_eq(ticks, 3, "12 idle turns and %d ticks", ticks);
	cr_expect_gt(took, 150000, "three ticks in %llu us: more than one per 100 ms", (unsigned long long)took);
	cr_expect_lt(took, 600000, "three ticks took %llu us", (unsigned long long)took);
	cr_log_info("tick timer %s; three ticks in %llu us", s->tick_timer ? "on" : "off (timed waits)",
		    (unsigned long long)took);
}

/* ---- scratch buffers ---- */

Test(buf, small_scratch_pieces_are_carved_adjacent_from_one_buffer)
{
	struct bufs *b = &s->bufs;
	uint32_t a, c;
	uint8_t *pa = bufs_scratch(b, 100, &a), *pc = bufs_scratch(b, 50, &c);
	cr_assert(pa && pc);
	cr_expect_eq(a, c, "two small pieces in two buffers");
	cr_expect_geq(a, b->nprovided, "scratch ids come after the provided ones");
	cr_expect_eq(pc, pa + 100, "consecutive pieces are not adjacent");
	cr_expect_eq(b->refs[a], 3, "carving reference + one per piece");
	cr_expect_eq(b->in_use, 1);
	memset(pa, 1, 100);   /* ASan: the memory is there */
	memset(pc, 2, 50);
	bufs_unref(b, a);
	bufs_unref(b, c);
	cr_expect_eq(b->refs[a], 1, "the carving reference keeps it");
	cr_expect_eq(b->nfree, 0);
	bufs_unref(b, PROTO_BUF_NONE);   /* allowed, and a no-op */
	cr_expect_eq(b->refs[a], 1);
}

Test(buf, a_full_carving_buffer_is_replaced_and_returns_when_unreferenced)
{
	struct bufs *b = &s->bufs;
	uint32_t first, id;
	cr_assert_not_null(bufs_scratch(b, 4000, &first));
	uint32_t pieces = 1;
	for (;;) {   /* 4000-byte pieces until one no longer fits */
		cr_assert_not_null(bufs_scratch(b, 4000, &id));
		if (id != first)
			break;
		pieces++;
	}
	cr_expect_eq(pieces, BUF_SCRATCH_SIZE / 4000);
	cr_expect_eq(b->refs[first], pieces, "the old buffer kept its carving reference");
	cr_expect_eq(b->in_use, 2);
	for (uint32_t i = 0; i < pieces; i++)
		bufs_unref(b, first);
	cr_expect_eq(b->refs[first], 0);
	cr_expect_eq(b->in_use, 1);
	cr_expect_eq(b->nfree, 1, "not back on the free list");
	cr_expect_eq(b->free_ids[0], first - b->nprovided);
	/* the next buffer needed is the free one, not new memory */
	uint32_t nscratch = b->nscratch, cur = id;
	do
		cr_assert_not_null(bufs_scratch(b, 4000, &id));
	while (id == cur);
	cr_expect_eq(id, first, "the freed buffer was not reused");
	cr_expect_eq(b->nscratch, nscratch, "new memory while a buffer was free");
}

Test(buf, a_medium_piece_gets_its_own_standard_buffer)
{
	struct bufs *b = &s->bufs;
	uint32_t small, medium;
	uint8_t *ps = bufs_scratch(b, 10, &small);
	uint8_t *pm = bufs_scratch(b, BUF_SCRATCH_SIZE / 4 + 1, &medium);
	cr_assert(ps && pm);
	cr_expect_neq(small, medium);
	cr_expect_eq(b->refs[medium], 1, "no carving reference on a buffer of its own");
	cr_expect_eq(b->scratch_size[medium - b->nprovided], BUF_SCRATCH_SIZE);
	memset(pm, 3, BUF_SCRATCH_SIZE / 4 + 1);
	uint32_t next;
	uint8_t *pn = bufs_scratch(b, 10, &next);
	cr_expect_eq(next, small, "the medium piece disturbed the carving buffer");
	cr_expect_eq(pn, ps + 10);
	bufs_unref(b, medium);
	cr_expect_eq(b->nfree, 1);
	bufs_unref(b, small);
	bufs_unref(b, next);
}

Test(buf, a_large_piece_is_sized_to_fit_and_shrinks_when_released)
{
	struct bufs *b = &s->bufs;
	uint32_t big;
	uint32_t len = 3 * BUF_SCRATCH_SIZE + 5;
	uint8_t *p = bufs_scratch(b, len, &big);
	cr_assert_not_null(p);
	uint32_t i = big - b->nprovided;
	cr_expect_eq(b->scratch_size[i], len);
	memset(p, 4, len);   /* ASan: all of it is there */
	cr_expect_eq(b->refs[big], 1);
	int64_t in_use = b->in_use;
	bufs_unref(b, big);
	cr_expect_eq(b->in_use, in_use - 1);
	cr_expect_eq(b->scratch_size[i], BUF_SCRATCH_SIZE, "the slot was not brought back to standard size");
	cr_expect_eq(b->nfree, 1);
	cr_expect_eq(b->free_ids[0], i);
	/* the slot serves standard requests again, with standard memory */
	uint32_t again;
	uint8_t *q = bufs_scratch(b, BUF_SCRATCH_SIZE, &again);
	cr_assert_not_null(q);
	cr_expect_eq(again, big);
	memset(q, 5, BUF_SCRATCH_SIZE);
	bufs_unref(b, again);
}

Test(buf, refs_grow_past_the_first_allocation)
{
	struct bufs *b = &s->bufs;
	uint32_t cap = b->refs_cap, n = cap + 8;   /* more scratch buffers than refs had room for */
	uint32_t *ids = calloc(n, sizeof *ids);
	cr_assert_not_null(ids);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_not_null(bufs_scratch(b, BUF_SCRATCH_SIZE, &ids[i]));
		cr_assert_eq(b->refs[ids[i]], 1);
	}
	cr_expect_gt(b->refs_cap, cap);
	cr_expect_eq(b->refs[ids[0]], 1, "counts lost when refs grew");
	for (uint32_t i = 0; i < n; i++)
		bufs_unref(b, ids[i]);
	cr_expect_eq(b->nfree, n);
	cr_expect_eq(b->in_use, 0);
	free(ids);
}
