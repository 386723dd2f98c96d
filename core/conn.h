/* core/conn.h: one socket on a shard's ring: its multishot receive, its send
 * queue (iovec slices of shard buffers, one send in flight, everything queued
 * meanwhile goes out together in the next sendmsg), back-pressure and teardown.
 * Clients and servers embed a struct conn as their first member. */
#ifndef PGRING_CONN_H
#define PGRING_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proto/proto.h"

struct shard;

enum conn_kind { CONN_CLIENT = 1, CONN_SERVER = 2 };

/* user_data of an SQE: a pointer to the object with the operation in its low bits */
enum conn_op {
	OP_IGNORE = 0,
	OP_RECV = 1,
	OP_SEND = 2,
	OP_CONNECT = 3,
	OP_ACCEPT = 4,
	OP_WAKE = 5,
	OP_CANCEL = 6,   /* a cancel-request connection to a server */
	OP_MASK = 7,
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
	uint64_t id;                 /* for logs */
	int fd;
	uint8_t kind;                /* enum conn_kind */
	uint8_t group;               /* provided-buffer group its receives draw from */
	bool recv_armed;             /* a multishot recv is live */
	bool recv_wanted;            /* we want data (false while paused or closing) */
	bool eof;                    /* peer closed or the socket failed */
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
};

void conn_init(struct conn *c, struct shard *s, int fd, int kind, int group);
/* Start (or resume) receiving. */
void conn_recv_on(struct conn *c);
/* Stop receiving for back-pressure; conn_recv_on resumes. */
void conn_recv_off(struct conn *c);

/* Queue n bytes at p for sending. buf is the shard buffer holding them (a
 * reference is taken) or PROTO_BUF_NONE (the bytes are copied). false: no memory. */
bool conn_queue(struct conn *c, const void *p, uint32_t n, uint32_t buf);
bool conn_queue_out(struct conn *c, const struct proto_out *o);
/* The same for a detached queue (data held until a server is found). */
bool sendq_append(struct shard *s, struct sendq *q, const void *p, uint32_t n, uint32_t buf);
void sendq_drop(struct shard *s, struct sendq *q);
/* Move every slice of q to the end of c's queue. */
void conn_take_queue(struct conn *c, struct sendq *q);
/* Drop queued (unsent) slices. */
void conn_drop_queue(struct conn *c);
static inline bool conn_has_output(const struct conn *c) { return c->out_bytes != 0; }

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
void conn_flush(struct conn *c);        /* start a send if one is due */
void conn_maybe_free(struct conn *c);

#endif
