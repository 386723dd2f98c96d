/* core/conn.h: one socket on a shard's ring: its connect, its multishot receive,
 * its send queue (iovec slices of shard buffers, one send in flight, everything
 * queued meanwhile goes out together in the next sendmsg), back-pressure and
 * teardown. Its owner (a layer above core) embeds a struct conn and hears of
 * the socket's events through the ops table it gives conn_init. */
#ifndef PGRING_CONN_H
#define PGRING_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proto/proto.h"

struct shard;
struct conn;
struct tls_session;
struct tls_ctx;

/* What a connection tells its owner. data, eof, drained and connected are
 * called from the shard loop, never from inside a conn_* call the owner made;
 * free (conn_close, conn_unhold) and parked (conn_park) run at once when
 * nothing is in flight, else from the loop. None but free is called once the
 * owner has called conn_close. */
struct conn_ops {
	/* n bytes received into shard buffer buf (take a reference to keep them). */
	void (*data)(struct conn *c, uint8_t *data, uint32_t n, uint32_t buf);
	/* The peer closed or the socket failed (err: an errno, 0 for a clean close). */
	void (*eof)(struct conn *c, int err);
	/* A send completed: room in the send queue again (back-pressure). */
	void (*drained)(struct conn *c);
	/* conn_connect finished: res 0 or -errno. Optional. */
	void (*connected)(struct conn *c, int res);
	/* conn_park asked for it: no I/O of this ring refers to the conn any more,
	 * so it may move to another shard. Optional. */
	void (*parked)(struct conn *c);
	/* Closed and unreferenced: release the owner's object. */
	void (*free)(struct conn *c);
};

#define SENDBUF_IOV 64

struct sendbuf {
	struct sendbuf *next;
	uint32_t n, bytes;
	struct msghdr msg;
	struct iovec iov[SENDBUF_IOV];
	uint32_t buf[SENDBUF_IOV];
};

/* A FIFO of slices not yet handed to the kernel. */
struct sendq {
	struct sendbuf *head, *tail;
	uint32_t bytes;
};

struct conn {
	struct shard *shard;
	const struct conn_ops *ops;
	uint64_t id;                 /* for logs */
	int fd;
	uint8_t group;               /* provided-buffer group its receives draw from */
	bool recv_armed;             /* a multishot recv is live */
	bool recv_wanted;            /* we want data (false while paused or closing) */
	bool eof;                    /* peer closed or the socket failed */
	bool fin;                    /* peer sends no more (its FIN); what we queued still goes out */
	bool closing;                /* owner is done; tear down when drained */
	bool flushing;               /* on the shard's flush list */
	bool starved;                /* on the shard's starved list (ENOBUFS) */
	bool parking;                /* moving to another shard once no I/O is outstanding */
	uint16_t inflight;           /* SQEs naming this conn not yet completed */
	uint32_t out_bytes;          /* queued + in flight */
	struct sendq q;              /* queued, not yet sent */
	struct sendbuf *sending;     /* in flight */
	struct conn *next_flush;     /* flush list link */
	struct conn *next_starved;   /* starved list link */
	struct proto_framer fr;
	struct conn_tls *tls;        /* NULL: plaintext */
};

/* A conn's TLS, allocated when it starts (most connections never have one).
 * The owner's bytes wait in the conn's q as plaintext and are encrypted into
 * wire when a send is due; received records are decrypted before ops->data
 * sees them. */
struct conn_tls {
	struct tls_session *session;
	struct sendq wire;           /* ciphertext (and, at the switch, plaintext queued before it) */
	bool replay;                 /* the receive being handled is the first TLS bytes */
	bool dead;                   /* the session failed: the owner has been told */
	int8_t kind;                 /* stats_tls_kind entry counted, -1 none */
};

/* One exchange on a socket of its own (a cancel request): connect fd to addr,
 * send the n bytes at msg, then wait for the peer to close (msg is reused as
 * the receive buffer). The steps are one linked chain in one submission;
 * call->done gets the last step's result. limit (NULL: none) bounds the
 * connect and the wait for the close, each: a step that outlasts it ends the
 * chain with -ECANCELED. addr, msg and limit must stay valid until done; fd is
 * the caller's to close. */
struct shard_call;
struct __kernel_timespec;
void conn_exchange(struct shard *s, struct shard_call *call, int fd, const struct sockaddr *addr, socklen_t alen,
		   void *msg, uint32_t n, const struct __kernel_timespec *limit);

/* The owner object of type `type` whose member `conn` is c. */
#define conn_owner(c, type) ((type *)(void *)((char *)(c) - offsetof(type, conn)))

void conn_init(struct conn *c, struct shard *s, int fd, const struct conn_ops *ops, int group);
/* Connect the socket; ops->connected reports the result. addr must stay valid
 * until then. */
void conn_connect(struct conn *c, const struct sockaddr *addr, socklen_t len);
/* Keep the conn from being freed while something outside its own I/O (a
 * side request on another socket, say) still refers to it. */
static inline void conn_hold(struct conn *c) { c->inflight++; }
void conn_unhold(struct conn *c);
/* Stop receiving and tell ops->parked once no I/O on this ring refers to the
 * conn (at once if none does). */
void conn_park(struct conn *c);
/* The conn now belongs to shard s (on s's thread, after ops->parked). */
void conn_adopt(struct conn *c, struct shard *s);
/* Start (or resume) receiving. */
void conn_recv_on(struct conn *c);
/* Stop receiving for back-pressure; conn_recv_on resumes. */
void conn_recv_off(struct conn *c);

/* Queue n bytes at p for sending. buf is the shard buffer holding them (a
 * reference is taken) or PROTO_BUF_NONE (the bytes are copied). false: no memory. */
bool conn_queue_slow(struct conn *c, const void *p, uint32_t n, uint32_t buf);
bool conn_queue_out(struct conn *c, const struct proto_out *o);
void shard_flush_later(struct shard *s, struct conn *c);

/* The common case inline: bytes that continue the last slice queued, in the
 * same receive buffer (a request's messages one after another), lengthen it;
 * the buffer is referenced already. A call and an append cost ~90
 * instructions a message (callgrind), this ~15. */
static inline bool conn_queue(struct conn *c, const void *p, uint32_t n, uint32_t buf)
{
	struct sendbuf *t = c->q.tail;
	if (t && t->n && buf != PROTO_BUF_NONE && t->buf[t->n - 1] == buf &&
	    (const uint8_t *)t->iov[t->n - 1].iov_base + t->iov[t->n - 1].iov_len == (const uint8_t *)p) {
		t->iov[t->n - 1].iov_len += n;
		t->bytes += n;
		c->q.bytes += n;
		c->out_bytes += n;
		if (!c->flushing)
			shard_flush_later(c->shard, c);
		return true;
	}
	return conn_queue_slow(c, p, n, buf);
}
/* The same for a detached queue (data held until a server is found). */
bool sendq_append(struct shard *s, struct sendq *q, const void *p, uint32_t n, uint32_t buf);
void sendq_drop(struct shard *s, struct sendq *q);
/* Move every slice of q to the end of c's queue. */
void conn_take_queue(struct conn *c, struct sendq *q);
/* Drop queued (unsent) slices. */
void conn_drop_queue(struct conn *c);
static inline bool conn_has_output(const struct conn *c) { return c->out_bytes != 0; }

/* A TLS session on ctx whose records go to c's socket (NULL: no memory), c's
 * from now on (c->tls). Set it up (tls_session_set_peer, _set_direct), then
 * call conn_tls_start before anything else happens on c. */
struct tls_session *conn_tls_new(struct conn *c, struct tls_ctx *ctx, bool server);
/* From now on the socket speaks TLS through conn_tls_new's session: what
 * was queued before goes out as it is, what is queued after is
 * encrypted, and received bytes reach ops->data decrypted. Called from inside
 * ops->data, replay says that the bytes being handled are themselves the
 * start of the handshake (a client that opened with a TLS ClientHello). A
 * client-side session starts its handshake at once. A handshake that fails
 * reaches the owner as ops->eof(c, EPROTO); tls_session_error says why. */
void conn_tls_start(struct conn *c, bool replay);

/* The owner is finished with the socket: stop receiving, send what is queued,
 * then close; the owner's free function runs when nothing references it. */
void conn_close(struct conn *c);

/* Framer reassembly memory for any owner that embeds a struct conn first
 * (proto_frame_ops.alloc / .release with ctx = the owner). */
uint8_t *conn_frame_alloc(void *owner, uint32_t len, uint32_t *buf);
void conn_frame_release(void *owner, uint32_t buf, uint8_t *mem);

/* Shard loop entry points. */
void conn_on_recv(struct conn *c, int res, unsigned flags);
void conn_on_send(struct conn *c, int res);
void conn_on_connect(struct conn *c, int res);
void conn_flush(struct conn *c);        /* start a send if one is due */
void conn_maybe_free(struct conn *c);

#endif
