/* core/conn.c: receive arming, the send queue and teardown of one socket.
 * Sends on a socket are not ordered once they park in the kernel, so exactly one
 * is in flight; slices queued meanwhile are gathered into the next sendmsg. */
#include "core/conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/shard.h"
#include "tls/tls.h"

static void tls_count(struct conn *c, int add);

static bool wire_pending(const struct conn *c) { return c->tls && c->tls->wire.head; }

void conn_init(struct conn *c, struct shard *s, int fd, const struct conn_ops *ops, int group)
{
	memset(c, 0, sizeof *c);
	c->shard = s;
	c->ops = ops;
	c->fd = fd;
	c->group = (uint8_t)group;
	c->id = ++s->next_conn_id * 256 + (uint64_t)s->id;
}

void conn_connect(struct conn *c, const struct sockaddr *addr, socklen_t len)
{
	struct io_uring_sqe *sqe = shard_sqe(c->shard);
	io_uring_prep_connect(sqe, c->fd, addr, len);
	io_uring_sqe_set_data64(sqe, shard_ud(c, SHARD_OP_CONNECT));
	c->inflight++;
}

void conn_on_connect(struct conn *c, int res)
{
	if (!c->closing && c->ops->connected)
		c->ops->connected(c, res);
	c->inflight--;
	conn_maybe_free(c);
}

void conn_exchange(struct shard *s, struct shard_call *call, int fd, const struct sockaddr *addr, socklen_t alen,
		   void *msg, uint32_t n, const struct __kernel_timespec *limit)
{
	struct io_uring_sqe *sqe[5];
	unsigned k = 0;
	shard_sqes(s, sqe, limit ? 5 : 3);   /* a linked chain must not be split across submissions */
	/* No IOSQE_CQE_SKIP_SUCCESS on the steps: when a request with it fails,
	 * the kernel omits the CQEs of the rest of the chain, and call->done would
	 * never run. A link timeout bounds the step before it (the connect, which
	 * a silent network holds for minutes, and the wait for the close, which a
	 * peer that accepts and never answers holds for ever) and lets the chain go
	 * on when that step ends in time. */
	io_uring_prep_connect(sqe[k], fd, addr, alen);
	sqe[k]->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe[k++], SHARD_OP_IGNORE);
	if (limit) {
		io_uring_prep_link_timeout(sqe[k], (struct __kernel_timespec *)limit, 0);
		sqe[k]->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(sqe[k++], SHARD_OP_IGNORE);
	}
	io_uring_prep_send(sqe[k], fd, msg, n, MSG_NOSIGNAL);
	sqe[k]->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe[k++], SHARD_OP_IGNORE);
	io_uring_prep_recv(sqe[k], fd, msg, n, 0);
	io_uring_sqe_set_data64(sqe[k], shard_ud(call, SHARD_OP_CALL));
	if (limit) {
		sqe[k++]->flags |= IOSQE_IO_LINK;
		io_uring_prep_link_timeout(sqe[k], (struct __kernel_timespec *)limit, 0);
		io_uring_sqe_set_data64(sqe[k], SHARD_OP_IGNORE);
	}
}

void conn_unhold(struct conn *c)
{
	c->inflight--;
	conn_maybe_free(c);
}

static void arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = shard_sqe(c->shard);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = c->shard->bufs.group[c->group].bgid;
	io_uring_sqe_set_data64(sqe, shard_ud(c, SHARD_OP_RECV));
	c->recv_armed = true;
	c->inflight++;
}

void conn_recv_on(struct conn *c)
{
	c->recv_wanted = true;
	/* parking: the owner's parked callback decides (a drained send would
	 * otherwise re-arm it and the conn would never be free of our I/O) */
	if (!c->recv_armed && !c->eof && !c->fin && !c->closing && !c->starved && !c->parking)
		arm_recv(c);
}

static void cancel_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = shard_sqe(c->shard);
	io_uring_prep_cancel64(sqe, shard_ud(c, SHARD_OP_RECV), 0);
	io_uring_sqe_set_data64(sqe, SHARD_OP_IGNORE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void conn_recv_off(struct conn *c)
{
	if (!c->recv_wanted)
		return;
	c->recv_wanted = false;
	stat_add(&c->shard->stats->paused, 1);
	if (c->recv_armed)
		cancel_recv(c);
}

static struct sendbuf *tail_for_append(struct shard *s, struct sendq *q)
{
	struct sendbuf *t = q->tail;
	if (t && t->n < SENDBUF_IOV)
		return t;
	struct sendbuf *sb = shard_sendbuf_get(s);
	if (!sb)
		return NULL;
	if (t)
		t->next = sb;
	else
		q->head = sb;
	q->tail = sb;
	return sb;
}

/* A small slice of a receive buffer, while half of that buffer's ring is
 * held: it is copied rather than referenced. A connection that does not read
 * (a client pipelining Syncs and never reading the replies) would otherwise
 * hold a whole receive buffer for every few bytes it is owed, empty the ring,
 * and stop every other connection of the shard receiving. Large slices stay
 * zero-copy: they use their buffer well, and max_pending_bytes bounds them. */
static bool ring_short(const struct bufs *b, uint32_t buf, uint32_t n)
{
	if (buf >= b->nprovided)
		return false;   /* a scratch buffer */
	const struct buf_group *grp = &b->group[buf >= b->group[BUF_GROUP_SERVER].first_id];
	return grp->in_use * 2 > grp->count && n <= grp->size / 4;
}

bool sendq_append(struct shard *s, struct sendq *q, const void *p, uint32_t n, uint32_t buf)
{
	if (n == 0)
		return true;
	struct bufs *b = &s->bufs;
	bool copied = buf == PROTO_BUF_NONE || ring_short(b, buf, n);
	if (copied) {
		uint8_t *mem = bufs_scratch(b, n, &buf);
		if (!mem)
			return false;
		memcpy(mem, p, n);
		p = mem;
		b->refs[buf]--;   /* the slice below takes the reference back */
	}
	struct sendbuf *t = q->tail;
	if (t && t->n && t->buf[t->n - 1] == buf &&
	    (const uint8_t *)t->iov[t->n - 1].iov_base + t->iov[t->n - 1].iov_len == (const uint8_t *)p) {
		t->iov[t->n - 1].iov_len += n;   /* adjacent bytes of the same buffer: one iovec */
	} else {
		t = tail_for_append(s, q);
		if (!t) {
			if (copied) {
				b->refs[buf]++;
				bufs_unref(b, buf);   /* nobody holds the copy: it goes back */
			}
			return false;
		}
		t->iov[t->n].iov_base = (void *)p;
		t->iov[t->n].iov_len = n;
		t->buf[t->n] = buf;
		t->n++;
		bufs_ref(b, buf);
	}
	t->bytes += n;
	q->bytes += n;
	return true;
}

bool conn_queue_slow(struct conn *c, const void *p, uint32_t n, uint32_t buf)
{
	if (!sendq_append(c->shard, &c->q, p, n, buf))
		return false;
	c->out_bytes += n;
	if (n)
		shard_flush_later(c->shard, c);
	return true;
}

bool conn_queue_out(struct conn *c, const struct proto_out *o)
{
	if (o->overflow)
		return false;
	return conn_queue(c, o->p, (uint32_t)o->len, PROTO_BUF_NONE);
}

/* At the switch to TLS: the plaintext queued so far goes to the wire as it is. */
static void conn_take_queue_into(struct conn *c)
{
	struct sendq *wire = &c->tls->wire;
	if (!c->q.head)
		return;
	if (wire->tail)
		wire->tail->next = c->q.head;
	else
		wire->head = c->q.head;
	wire->tail = c->q.tail;
	wire->bytes += c->q.bytes;
	c->q.head = c->q.tail = NULL;
	c->q.bytes = 0;
	shard_flush_later(c->shard, c);
}

void conn_take_queue(struct conn *c, struct sendq *q)
{
	if (!q->head)
		return;
	if (c->q.tail)
		c->q.tail->next = q->head;
	else
		c->q.head = q->head;
	c->q.tail = q->tail;
	c->q.bytes += q->bytes;
	c->out_bytes += q->bytes;
	q->head = q->tail = NULL;
	q->bytes = 0;
	shard_flush_later(c->shard, c);
}

static void release_sendbuf(struct shard *s, struct sendbuf *sb)
{
	for (uint32_t i = 0; i < sb->n; i++)
		bufs_unref(&s->bufs, sb->buf[i]);
	shard_sendbuf_put(s, sb);
}

void sendq_drop(struct shard *s, struct sendq *q)
{
	while (q->head) {
		struct sendbuf *sb = q->head;
		q->head = sb->next;
		release_sendbuf(s, sb);
	}
	q->tail = NULL;
	q->bytes = 0;
}

void conn_drop_queue(struct conn *c)
{
	c->out_bytes -= c->q.bytes;
	sendq_drop(c->shard, &c->q);
	if (c->tls) {
		c->out_bytes -= c->tls->wire.bytes;
		sendq_drop(c->shard, &c->tls->wire);
	}
}

uint8_t *conn_frame_alloc(void *owner, uint32_t len, uint32_t *buf)
{
	struct conn *c = owner;
	return bufs_scratch(&c->shard->bufs, len, buf);
}

void conn_frame_release(void *owner, uint32_t buf, uint8_t *mem)
{
	struct conn *c = owner;
	(void)mem;
	bufs_unref(&c->shard->bufs, buf);
}

static void tls_encrypt(struct conn *c);

void conn_flush(struct conn *c)
{
	if (c->tls)
		tls_encrypt(c);
	struct sendq *q = c->tls ? &c->tls->wire : &c->q;
	if (c->sending || !q->head || c->eof)
		return;
	struct sendbuf *sb = q->head;
	q->head = sb->next;
	if (!q->head)
		q->tail = NULL;
	q->bytes -= sb->bytes;
	sb->next = NULL;
	c->sending = sb;
	struct io_uring_sqe *sqe = shard_sqe(c->shard);
	if (sb->n == 1) {
		io_uring_prep_send(sqe, c->fd, sb->iov[0].iov_base, sb->iov[0].iov_len, MSG_WAITALL | MSG_NOSIGNAL);
	} else {
		memset(&sb->msg, 0, sizeof sb->msg);
		sb->msg.msg_iov = sb->iov;
		sb->msg.msg_iovlen = sb->n;
		io_uring_prep_sendmsg(sqe, c->fd, &sb->msg, MSG_WAITALL | MSG_NOSIGNAL);
	}
	io_uring_sqe_set_data64(sqe, shard_ud(c, SHARD_OP_SEND));
	c->inflight++;
	stat_add(&c->shard->stats->sends, 1);
	stat_add(&c->shard->stats->send_iovecs, sb->n);
}

/* Completions keep their reference (inflight) until the owner's handler has
 * returned, so a handler that closes the connection cannot free it under us. */
void conn_on_send(struct conn *c, int res)
{
	struct sendbuf *sb = c->sending;
	c->sending = NULL;
	bool ok = res >= 0 && (uint32_t)res == sb->bytes;
	c->out_bytes -= sb->bytes;
	release_sendbuf(c->shard, sb);
	if (!ok) {
		if (!c->eof)
			LOGF(LOG_DEBUG, c->id, "send failed: %s", res < 0 ? strerror(-res) : "short send");
		bool was_eof = c->eof;
		c->eof = true;
		conn_drop_queue(c);
		if (!c->closing && !was_eof && !c->fin)   /* the owner heard of a FIN already */
			c->ops->eof(c, res < 0 ? -res : EPIPE);
	} else {
		conn_flush(c);
		if (!c->closing)
			c->ops->drained(c);
	}
	c->inflight--;
	conn_maybe_free(c);
}

static void tls_recv(struct conn *c, const uint8_t *data, uint32_t n);

void conn_on_recv(struct conn *c, int res, unsigned flags)
{
	struct shard *s = c->shard;
	bool last = !(flags & IORING_CQE_F_MORE);
	if (last)
		c->recv_armed = false;
	if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
		uint32_t id;
		uint8_t *data = bufs_received(&s->bufs, c->group, (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT), &id);
		stat_add(&s->stats->recvs, 1);
		if (c->tls && !c->closing && !c->eof) {
			tls_recv(c, data, (uint32_t)res);
		} else if (!c->closing && !c->eof) {
			c->ops->data(c, data, (uint32_t)res, id);
			if (c->tls && c->tls->replay) {   /* the owner saw a ClientHello: these bytes are TLS */
				c->tls->replay = false;
				if (!c->closing && !c->eof)
					tls_recv(c, data, (uint32_t)res);
			}
		}
		bufs_unref(&s->bufs, id);
	} else if (res == -ENOBUFS) {
		stat_add(&s->stats->enobufs, 1);
		if (!c->closing && !c->eof)
			shard_starved(s, c);
	} else if (res == 0 && !c->tls) {
		/* a half-close: the peer may still read, so what is queued (the
		 * rest of a message among it) goes out before the close */
		bool was_fin = c->fin;
		c->fin = true;
		if (!was_fin && !c->eof && !c->closing)
			c->ops->eof(c, 0);
	} else if (res == 0 || (res < 0 && res != -ECANCELED)) {
		bool was_eof = c->eof;
		c->eof = true;
		if (!was_eof && !c->closing) {
			conn_drop_queue(c);
			c->ops->eof(c, res < 0 ? -res : 0);
		}
	}
	if (!c->recv_armed && c->recv_wanted && !c->eof && !c->fin && !c->closing && !c->starved && !c->parking)
		arm_recv(c);
	if (last)
		c->inflight--;
	conn_maybe_free(c);
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->recv_wanted = false;
	if (c->recv_armed)
		cancel_recv(c);
	if (c->tls && !c->eof) {
		tls_encrypt(c);   /* what the owner queued goes first, then close_notify */
		tls_session_close_notify(c->tls->session);
		if (c->tls->wire.head)
			shard_flush_later(c->shard, c);
	}
	if (!c->sending && !c->q.head && !wire_pending(c) && c->fd >= 0 && !c->eof)
		shutdown(c->fd, SHUT_RDWR);   /* nothing left to say: FIN now */
	conn_maybe_free(c);
}

void conn_park(struct conn *c)
{
	c->parking = true;
	conn_recv_off(c);
	conn_maybe_free(c);
}

void conn_adopt(struct conn *c, struct shard *s)
{
	c->shard = s;
	if (c->tls && tls_session_ready(c->tls->session))
		tls_count(c, +1);
}

void conn_maybe_free(struct conn *c)
{
	if (!c->closing) {
		if (c->parking && !c->inflight && !c->recv_armed && !c->sending && !c->flushing && !c->starved &&
		    !wire_pending(c)) {
			tls_count(c, -1);   /* counted again on the shard that adopts it */
			c->parking = false;
			if (c->ops->parked)
				c->ops->parked(c);
		}
		return;
	}
	if (c->eof)
		conn_drop_queue(c);
	if (c->sending || c->q.head || wire_pending(c) || c->inflight || c->flushing || c->starved)
		return;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->tls) {
		tls_count(c, -1);
		tls_session_free(c->tls->session);
		free(c->tls);
		c->tls = NULL;
	}
	c->ops->free(c);
}

/* ---- TLS: the session between the ring and the owner ---- */

/* Plaintext is gathered here before it is encrypted, so that a reply made of
 * many small messages becomes a few full records, not a record each. */
static _Thread_local uint8_t tls_stage[16384];

/* Ciphertext from the session goes to the wire queue (copied into scratch
 * buffers, adjacent records in one iovec). */
static bool wire_out(void *arg, const uint8_t *p, uint32_t n)
{
	struct conn *c = arg;
	if (!sendq_append(c->shard, &c->tls->wire, p, n, PROTO_BUF_NONE))
		return false;
	c->out_bytes += n;
	return true;
}

static int side(const struct conn *c) { return c->group == BUF_GROUP_CLIENT ? 0 : 1; }

/* The open-connections gauge of the session's (version, cipher) pair. */
static void tls_count(struct conn *c, int add)
{
	struct stats_shard *st = c->shard->stats;
	int sd = side(c);
	if (!c->tls)
		return;
	if (add < 0) {
		if (c->tls->kind >= 0)
			gauge_add(&st->tls_kinds[sd][c->tls->kind].open, -1);
		c->tls->kind = -1;
		return;
	}
	const char *v = tls_session_version(c->tls->session), *ci = tls_session_cipher(c->tls->session);
	int n = atomic_load_explicit(&st->ntls_kinds[sd], memory_order_relaxed), k;
	for (k = 0; k < n; k++)
		if (!strcmp(st->tls_kinds[sd][k].version, v) && !strcmp(st->tls_kinds[sd][k].cipher, ci))
			break;
	if (k == n) {
		if (n == STATS_TLS_KINDS)
			return;   /* more pairs than slots: not counted */
		snprintf(st->tls_kinds[sd][k].version, sizeof st->tls_kinds[sd][k].version, "%s", v);
		snprintf(st->tls_kinds[sd][k].cipher, sizeof st->tls_kinds[sd][k].cipher, "%s", ci);
		atomic_store_explicit(&st->ntls_kinds[sd], n + 1, memory_order_release);
	}
	c->tls->kind = (int8_t)k;
	gauge_add(&st->tls_kinds[sd][k].open, 1);
}

/* The session failed or broke: the owner hears it once, as the end of the
 * socket; what the session queued (an alert) still goes out before the close. */
static void tls_fail(struct conn *c, int err)
{
	if (c->eof || c->closing || c->tls->dead)
		return;
	c->tls->dead = true;
	c->ops->eof(c, err);
}

static void handshake_step(struct conn *c)
{
	struct stats_shard *st = c->shard->stats;
	int sd = side(c);
	uint64_t t0 = shard_now_us();
	struct tls_session *t = c->tls->session;
	enum tls_result r = tls_session_handshake(t);
	stat_add(&st->tls_handshake_us[sd], shard_now_us() - t0);
	if (c->tls->wire.head)
		shard_flush_later(c->shard, c);
	if (r == TLS_DONE) {
		stat_add(&st->tls_handshakes[sd], 1);
		if (tls_session_resumed(t))
			stat_add(&st->tls_resumed[sd], 1);
		tls_count(c, +1);
		LOGF(LOG_DEBUG, c->id, "TLS established: %s %s%s", tls_session_version(t), tls_session_cipher(t),
		     tls_session_resumed(t) ? " (resumed)" : "");
		if (c->q.head)
			shard_flush_later(c->shard, c);   /* what the owner queued meanwhile */
	} else if (r != TLS_WANT) {
		stat_add(&st->tls_failures[sd][tls_session_failure(t)], 1);
		tls_fail(c, EPROTO);
	}
}

struct tls_session *conn_tls_new(struct conn *c, struct tls_ctx *ctx, bool server)
{
	struct conn_tls *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->kind = -1;
	c->tls = x;   /* wire_out's queue */
	if (!(x->session = tls_session_new(ctx, server, wire_out, c))) {
		free(x);
		c->tls = NULL;
	}
	return c->tls ? x->session : NULL;
}

void conn_tls_start(struct conn *c, bool replay)
{
	c->tls->replay = replay;
	/* what the owner queued until now (the 'S' answering SSLRequest) is not TLS */
	conn_take_queue_into(c);
	handshake_step(c);   /* a client-side session says its ClientHello now */
}

static void tls_recv(struct conn *c, const uint8_t *data, uint32_t n)
{
	struct tls_session *t = c->tls->session;
	if (c->tls->dead)
		return;
	tls_session_input(t, data, n);
	if (!tls_session_ready(t)) {
		handshake_step(c);
		if (!tls_session_ready(t))
			return;
	}
	struct bufs *b = &c->shard->bufs;
	int r;
	do {
		/* a buffer of our own (bufs_scratch gives big carves one): records
		 * decrypt into it back to back and reach the owner together */
		uint32_t id;
		uint8_t *p = bufs_scratch(b, BUF_SCRATCH_SIZE, &id);
		if (!p) {
			tls_fail(c, ENOMEM);
			return;
		}
		uint32_t got = 0;
		while (got < BUF_SCRATCH_SIZE && (r = tls_session_read(t, p + got, BUF_SCRATCH_SIZE - got)) > 0)
			got += (uint32_t)r;
		if (got)
			c->ops->data(c, p, got, id);
		bufs_unref(b, id);
		if (c->closing || c->eof || c->tls->dead)
			return;
	} while (r > 0);
	if (c->tls->wire.head)
		shard_flush_later(c->shard, c);   /* post-handshake messages: tickets, key updates */
	if (r == TLS_CLOSED) {
		c->eof = true;
		conn_drop_queue(c);
		c->ops->eof(c, 0);
	} else if (r == TLS_ERROR) {
		stat_add(&c->shard->stats->tls_failures[side(c)][tls_session_failure(t)], 1);
		tls_fail(c, EPROTO);
	}
}

static bool encrypt(struct conn *c, const uint8_t *p, uint32_t n)
{
	if (tls_session_write(c->tls->session, p, n))
		return true;
	tls_fail(c, ENOMEM);
	return false;
}

/* Move the owner's plaintext into records on the wire queue. */
static void tls_encrypt(struct conn *c)
{
	if (!c->q.head || c->tls->dead || !tls_session_ready(c->tls->session))
		return;
	struct shard *s = c->shard;
	uint32_t staged = 0;
	bool ok = true;
	while (c->q.head) {
		struct sendbuf *sb = c->q.head;
		for (uint32_t i = 0; ok && i < sb->n; i++) {
			const uint8_t *p = sb->iov[i].iov_base;
			uint32_t n = (uint32_t)sb->iov[i].iov_len;
			if (!staged && n >= sizeof tls_stage / 2) {
				ok = encrypt(c, p, n);   /* big enough to be full records by itself */
				continue;
			}
			while (ok && n) {
				uint32_t k = n < sizeof tls_stage - staged ? n : (uint32_t)sizeof tls_stage - staged;
				memcpy(tls_stage + staged, p, k);
				staged += k;
				p += k;
				n -= k;
				if (staged == sizeof tls_stage) {
					ok = encrypt(c, tls_stage, staged);
					staged = 0;
				}
			}
		}
		c->q.head = sb->next;
		c->q.bytes -= sb->bytes;
		c->out_bytes -= sb->bytes;
		release_sendbuf(s, sb);
	}
	c->q.tail = NULL;
	if (ok && staged)
		encrypt(c, tls_stage, staged);
}
