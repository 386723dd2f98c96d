/* core/control/etcd.h: a client of etcd v3's JSON gateway (HTTP/1.1, plain, on
 * etcd's client port) for the control thread: non-blocking, driven by the
 * caller's poll loop like core/control/health.h. Each request is one exchange
 * on a connection of its own (Connection: close); a watch holds its own
 * connection and reads the gateway's chunked stream as it comes. Endpoints are
 * numeric "host:port" ("[v6]:port", "localhost", an http:// prefix allowed),
 * tried in turn: one that cannot be connected to is left for the next, within
 * the request's timeout. Control thread only. */
#ifndef PGRING_ETCD_H
#define PGRING_ETCD_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

#define ETCD_MAX_RESPONSE (4u << 20)   /* a response body (a watch: its unread part) beyond this fails */

struct etcd;
struct etcd_watch;

/* A key and its value as etcd holds them: both NUL-terminated (the lengths
 * also count NULs inside); valid during the callback only. */
struct etcd_kv {
	const char *key, *value;
	size_t key_len, value_len;
	int64_t mod_revision, lease;   /* lease 0: none */
};

/* endpoints: n of them, copied. timeout_seconds: for each request, connecting
 * and retrying included, and for a watch until etcd has acknowledged it.
 * NULL when an endpoint is not one (logged) or no memory. */
struct etcd *etcd_new(const char *const *endpoints, int n, double timeout_seconds);
/* Closes everything; callbacks of requests in flight are not called. */
void etcd_free(struct etcd *e);

/* The control loop's side: poll entries (one per request in flight, at most
 * max: give room for all), ms until etcd_process has work without them (-1:
 * none; 0 while a new request waits to start), and the work: after poll,
 * with the same entries. Callbacks are called from etcd_process only, never
 * from the call that made the request; a callback may make requests and
 * cancel watches, but not call etcd_process or etcd_free. */
int etcd_pollfds(struct etcd *e, struct pollfd *fds, int max);
int etcd_next_timeout(const struct etcd *e);
void etcd_process(struct etcd *e, const struct pollfd *fds, int n);

/* The last exchange with etcd got an answer (an error from etcd below 500
 * counts: it is up); false before the first one and after a failure or
 * timeout. etcd_last_error: why the last request that failed did, "endpoint:
 * reason" ("" if none has). */
bool etcd_up(const struct etcd *e);
const char *etcd_last_error(const struct etcd *e);

/* Requests. False (and no callback) only when out of memory; else done (may
 * be NULL) is called exactly once, ok false on any failure (etcd_last_error
 * says). A request goes to the endpoint that accepts its connection and is
 * not repeated on another after that (it may have been applied). */
bool etcd_range_prefix(struct etcd *e, const char *prefix,
		       void (*done)(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision), void *ctx);
bool etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease, void (*done)(void *ctx, bool ok),
	      void *ctx);
bool etcd_delete(struct etcd *e, const char *key, void (*done)(void *ctx, bool ok), void *ctx);
bool etcd_lease_grant(struct etcd *e, int ttl_seconds, void (*done)(void *ctx, bool ok, int64_t lease_id, int ttl),
		      void *ctx);
/* ttl 0 with ok true: the lease is gone (expired or revoked). */
bool etcd_lease_keepalive(struct etcd *e, int64_t lease_id, void (*done)(void *ctx, bool ok, int ttl), void *ctx);
/* ok false for a lease etcd does not know (any more). */
bool etcd_lease_revoke(struct etcd *e, int64_t lease_id, void (*done)(void *ctx, bool ok), void *ctx);
/* Create key (with lease, 0 none) only if it does not exist: a txn comparing its
 * create_revision with 0. created false with ok true: it existed. */
bool etcd_put_if_absent(struct etcd *e, const char *key, const char *value, int64_t lease,
			void (*done)(void *ctx, bool ok, bool created), void *ctx);

/* Watch the keys under prefix from start_revision (<= 0: from now on). event
 * for each change in order (revision: the store's as of the message that
 * carried it; kv->mod_revision is the change's own; a delete's value is
 * empty); broken (may be NULL) once if the watch cannot be set up in time, is
 * canceled by etcd (e.g. its start revision was compacted), fails or ends (the
 * caller ranges again and watches from there). Once set up it has no timeout;
 * TCP keepalives find a peer that went silently (after 4 x (timeout + 1 s)).
 * The handle is valid until etcd_watch_cancel (no callback after it) or until
 * broken returns. NULL: no memory. */
struct etcd_watch *etcd_watch_prefix(struct etcd *e, const char *prefix, int64_t start_revision,
				     void (*event)(void *ctx, bool is_put, const struct etcd_kv *kv, int64_t revision),
				     void (*broken)(void *ctx), void *ctx);
void etcd_watch_cancel(struct etcd_watch *w);

/* ---- the parts without sockets, exposed for tests ---- */

/* An HTTP/1.1 response read as it arrives: the head, then the body (by
 * Content-Length, chunked, or until the peer closes) decoded into body. A
 * reader may take from the front of body as it goes (a watch does). */
struct etcd_http {
	int state;                 /* internal */
	int status;                /* 0 until the status line is in */
	bool chunked, until_eof;
	size_t left, max;          /* bytes left of the body or chunk; the bound on body */
	struct strbuf line, body;
};
void etcd_http_init(struct etcd_http *h, size_t max);
/* 1: the response is complete, 0: more to come, -1: malformed or too large. */
int etcd_http_feed(struct etcd_http *h, const char *data, size_t n);
int etcd_http_eof(struct etcd_http *h);   /* the peer closed: 1 complete, -1 cut short */
void etcd_http_free(struct etcd_http *h);

enum etcd_op { ETCD_RANGE, ETCD_PUT, ETCD_DELETE, ETCD_GRANT, ETCD_KEEPALIVE, ETCD_REVOKE, ETCD_TXN, ETCD_WATCH };

/* What a response says, for any op (a watch: one message of its stream). */
struct etcd_result {
	int64_t revision;          /* header.revision */
	int64_t lease_id;          /* grant */
	int ttl;                   /* grant, keepalive (0: the lease is gone) */
	bool succeeded;            /* txn */
	bool created, canceled;    /* watch */
	struct etcd_kv *kvs;       /* range: the keys; watch: each event's */
	bool *deleted;             /* watch: per event, a DELETE */
	int n;
	char error[200];           /* why it failed */
};
/* Read a response body to op given its HTTP status. 0, or -1 with res->error
 * (an error etcd sent or a malformed body). etcd_result_free either way. */
int etcd_parse(enum etcd_op op, int status, const char *body, size_t len, struct etcd_result *res);
void etcd_result_free(struct etcd_result *res);

#endif
