/* core/conn.c: receive arming, the send queue and teardown of one socket.
 * Sends on a socket are not ordered once they park in the kernel, so exactly one
 * is in flight; slices queued meanwhile are gathered into the next sendmsg. */
#include "core/conn.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/shard.h"

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
		   void *msg, uint32_t n)
{
	struct io_uring_sqe *sqe[3];
	shard_sqes(s, sqe, 3);   /* a linked chain must not be split across submissions */
	/* No IOSQE_CQE_SKIP_SUCCESS on the first two: when a request with it fails,
	 * the kernel omits the CQEs of the rest of the chain, and call->done would
	 * never run. */
	io_uring_prep_connect(sqe[0], fd, addr, alen);
	sqe[0]->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe[0], SHARD_OP_IGNORE);
	io_uring_prep_send(sqe[1], fd, msg, n, MSG_NOSIGNAL);
	sqe[1]->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe[1], SHARD_OP_IGNORE);
	io_uring_prep_recv(sqe[2], fd, msg, n, 0);
	io_uring_sqe_set_data64(sqe[2], shard_ud(call, SHARD_OP_CALL));
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
	if (!c->recv_armed && !c->eof && !c->closing && !c->starved)
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

bool sendq_append(struct shard *s, struct sendq *q, const void *p, uint32_t n, uint32_t buf)
{
	if (n == 0)
		return true;
	struct bufs *b = &s->bufs;
	bool copied = buf == PROTO_BUF_NONE;
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

bool conn_queue(struct conn *c, const void *p, uint32_t n, uint32_t buf)
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

void conn_flush(struct conn *c)
{
	if (c->sending || !c->q.head || c->eof)
		return;
	struct sendbuf *sb = c->q.head;
	c->q.head = sb->next;
	if (!c->q.head)
		c->q.tail = NULL;
	c->q.bytes -= sb->bytes;
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
		if (!c->closing && !was_eof)
			c->ops->eof(c, res < 0 ? -res : EPIPE);
	} else {
		conn_flush(c);
		if (!c->closing)
			c->ops->drained(c);
	}
	c->inflight--;
	conn_maybe_free(c);
}

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
		if (!c->closing && !c->eof)
			c->ops->data(c, data, (uint32_t)res, id);
		bufs_unref(&s->bufs, id);
	} else if (res == -ENOBUFS) {
		stat_add(&s->stats->enobufs, 1);
		if (!c->closing && !c->eof)
			shard_starved(s, c);
	} else if (res == 0 || (res < 0 && res != -ECANCELED)) {
		bool was_eof = c->eof;
		c->eof = true;
		if (!was_eof && !c->closing) {
			conn_drop_queue(c);
			c->ops->eof(c, res < 0 ? -res : 0);
		}
	}
	if (!c->recv_armed && c->recv_wanted && !c->eof && !c->closing && !c->starved)
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
	if (!c->sending && !c->q.head && c->fd >= 0 && !c->eof)
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
}

void conn_maybe_free(struct conn *c)
{
	if (!c->closing) {
		if (c->parking && !c->inflight && !c->recv_armed && !c->sending && !c->flushing && !c->starved) {
			c->parking = false;
			if (c->ops->parked)
				c->ops->parked(c);
		}
		return;
	}
	if (c->eof)
		conn_drop_queue(c);
	if (c->sending || c->q.head || c->inflight || c->flushing || c->starved)
		return;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->ops->free(c);
}
