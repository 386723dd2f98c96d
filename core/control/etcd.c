/* core/control/etcd.c: the etcd gateway client (see core/control/etcd.h). Each
 * request is a state machine (start -> connecting -> sending -> receiving ->
 * done) on a socket of its own. Finished ones are freed at the end of
 * etcd_process, never inside a callback, so callbacks may make requests and
 * cancel watches freely. */
#include "core/control/etcd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/json.h"
#include "core/log.h"
#include "core/shard.h"

/* ---- HTTP responses ---- */

enum { HS_HEAD, HS_BODY, HS_CHUNK_SIZE, HS_CHUNK_END, HS_TRAILER, HS_DONE, HS_BAD };
#define HTTP_LINE_MAX 8192   /* a header, chunk size or trailer line */

void etcd_http_init(struct etcd_http *h, size_t max)
{
	*h = (struct etcd_http){ .until_eof = true, .max = max, .line = STRBUF_INIT, .body = STRBUF_INIT };
}

void etcd_http_free(struct etcd_http *h)
{
	strbuf_free(&h->line);
	strbuf_free(&h->body);
}

/* A line of the head (the status line, a header, the end) or of the chunked
 * framing: the state it leads to. */
static int line_done(struct etcd_http *h, const char *l)
{
	char *end;
	switch (h->state) {
	case HS_HEAD:
		if (!h->status)   /* 1xx is not expected: etcd is not sent Expect */
			return sscanf(l, "HTTP/1.%*d %3d", &h->status) == 1 && h->status >= 200 ? HS_HEAD : HS_BAD;
		if (strncasecmp(l, "content-length:", 15) == 0) {
			l += 15 + strspn(l + 15, " \t");
			h->left = strtoull(l, &end, 10);
			h->until_eof = false;
			return isdigit((unsigned char)*l) && !*end && h->left <= h->max ? HS_HEAD : HS_BAD;
		}
		h->chunked |= strncasecmp(l, "transfer-encoding:", 18) == 0 && strcasestr(l + 18, "chunked");
		return *l ? HS_HEAD : h->chunked ? HS_CHUNK_SIZE : h->until_eof || h->left ? HS_BODY : HS_DONE;
	case HS_CHUNK_SIZE:
		h->left = strtoull(l, &end, 16);
		h->until_eof = false;
		if (!isxdigit((unsigned char)*l) || (*end && !strchr("; \t", *end)) || h->left > h->max)
			return HS_BAD;
		return h->left ? HS_BODY : HS_TRAILER;
	case HS_CHUNK_END:
		return *l ? HS_BAD : HS_CHUNK_SIZE;
	default:   /* HS_TRAILER: its fields are of no interest */
		return *l ? HS_TRAILER : HS_DONE;
	}
}

int etcd_http_feed(struct etcd_http *h, const char *p, size_t n)
{
	while (n && h->state != HS_DONE && h->state != HS_BAD) {
		bool body = h->state == HS_BODY;
		const char *nl = body ? NULL : memchr(p, '\n', n);
		size_t take = body ? (h->until_eof || h->left > n ? n : h->left) : nl ? (size_t)(nl - p) + 1 : n;
		struct strbuf *to = body ? &h->body : &h->line;
		if (to->len + take > (body ? h->max : HTTP_LINE_MAX) || strbuf_append(to, p, take) < 0) {
			h->state = HS_BAD;
			break;
		}
		p += take;
		n -= take;
		if (body && !h->until_eof && !(h->left -= take))
			h->state = h->chunked ? HS_CHUNK_END : HS_DONE;
		if (!nl)
			continue;
		h->line.buf[--h->line.len] = '\0';   /* without its CRLF */
		if (h->line.len && h->line.buf[h->line.len - 1] == '\r')
			h->line.buf[--h->line.len] = '\0';
		h->state = line_done(h, h->line.buf);
		strbuf_reset(&h->line);
	}
	return h->state == HS_DONE ? 1 : h->state == HS_BAD ? -1 : 0;
}

int etcd_http_eof(struct etcd_http *h)
{
	if (h->state == HS_BODY && h->until_eof)
		h->state = HS_DONE;
	return h->state == HS_DONE ? 1 : -1;
}

/* ---- what etcd answers ---- */

/* A member holding base64 (absent: empty), decoded in memory of its own. NULL:
 * not base64, or no memory. */
static char *b64_member(const struct json_doc *d, int obj, const char *name, size_t *len)
{
	int v = json_get(d, obj, name);
	size_t n = 0;
	char *s = v < 0 ? calloc(1, 1) : json_strdup(d, v, &n);
	ssize_t k = s ? base64_decode(s, n, s) : -1;
	if (k < 0) {
		free(s);
		return NULL;
	}
	s[k] = '\0';
	*len = (size_t)k;
	return s;
}

/* A range's kvs, or a watch message's events ({"type":"DELETE"?, "kv":{...}}). */
static int take_kvs(const struct json_doc *d, int arr, struct etcd_result *res, bool events)
{
	for (int i = json_first(d, arr); i >= 0; i = json_next(d, i))
		res->n++;
	if (!res->n)
		return arr < 0 || json_is(d, arr, JSON_ARRAY) ? 0 : -1;
	res->kvs = calloc((size_t)res->n, sizeof *res->kvs);
	res->deleted = calloc((size_t)res->n, sizeof *res->deleted);
	if (!res->kvs || !res->deleted) {
		res->n = 0;
		return -1;
	}
	int k = 0;
	for (int i = json_first(d, arr); i >= 0; i = json_next(d, i), k++) {
		int v = events ? json_get(d, i, "kv") : i;
		char *type = events ? json_strdup(d, json_get(d, i, "type"), NULL) : NULL;
		res->deleted[k] = type && strcmp(type, "DELETE") == 0;
		free(type);
		struct etcd_kv *kv = &res->kvs[k];
		kv->key = b64_member(d, v, "key", &kv->key_len);
		kv->value = b64_member(d, v, "value", &kv->value_len);
		json_int64(d, json_get(d, v, "mod_revision"), &kv->mod_revision);
		json_int64(d, json_get(d, v, "lease"), &kv->lease);
		if (!kv->key || !kv->value || !json_is(d, json_get(d, v, "key"), JSON_STRING))
			return -1;
	}
	return 0;
}

static int parse_doc(enum etcd_op op, int status, const struct json_doc *d, struct etcd_result *res)
{
	int r = op == ETCD_KEEPALIVE || op == ETCD_WATCH ? json_get(d, 0, "result") : 0;   /* streams wrap */
	if (status / 100 != 2 || r < 0) {
		/* {"error":"..","message":"..","code":5}; in a stream {"error":{"message":"..",...}} */
		int m = json_get(d, 0, "message");
		char *s = json_strdup(d, m >= 0 ? m : json_get(d, json_get(d, 0, "error"), "message"), NULL);
		snprintf(res->error, sizeof res->error, "etcd: %s (HTTP %d)", s ? s : "unexpected response", status);
		free(s);
		return -1;
	}
	int64_t ttl = 0, compacted = 0;
	json_int64(d, json_get(d, json_get(d, r, "header"), "revision"), &res->revision);
	json_int64(d, json_get(d, r, "TTL"), &ttl);   /* keepalive leaves 0 out: the lease is gone */
	res->ttl = ttl < 0 ? 0 : ttl > INT32_MAX ? INT32_MAX : (int)ttl;
	switch (op) {
	case ETCD_RANGE:
		return take_kvs(d, json_get(d, r, "kvs"), res, false);
	case ETCD_GRANT:
		return json_int64(d, json_get(d, r, "ID"), &res->lease_id) && res->ttl > 0 ? 0 : -1;
	case ETCD_TXN:
		res->succeeded = json_bool(d, json_get(d, r, "succeeded"), false);
		return 0;
	case ETCD_WATCH:
		res->created = json_bool(d, json_get(d, r, "created"), false);
		res->canceled = json_bool(d, json_get(d, r, "canceled"), false);
		if (res->canceled && json_int64(d, json_get(d, r, "compact_revision"), &compacted) && compacted)
			snprintf(res->error, sizeof res->error, "watch canceled: compacted at revision %" PRId64, compacted);
		else if (res->canceled) {
			char *why = json_strdup(d, json_get(d, r, "cancel_reason"), NULL);
			snprintf(res->error, sizeof res->error, "watch canceled: %s", why && *why ? why : "by etcd");
			free(why);
		}
		return take_kvs(d, json_get(d, r, "events"), res, true);
	default:
		return 0;
	}
}

int etcd_parse(enum etcd_op op, int status, const char *body, size_t len, struct etcd_result *res)
{
	memset(res, 0, sizeof *res);
	struct json_doc d;
	int rc = json_parse(&d, body, len) == 0 && json_is(&d, 0, JSON_OBJECT) ? parse_doc(op, status, &d, res) : -1;
	if (rc < 0 && !res->error[0])
		snprintf(res->error, sizeof res->error, "unexpected response from etcd (HTTP %d)", status);
	json_free(&d);
	return rc;
}

void etcd_result_free(struct etcd_result *res)
{
	for (int i = 0; i < res->n; i++) {
		free((char *)res->kvs[i].key);
		free((char *)res->kvs[i].value);
	}
	free(res->kvs);
	free(res->deleted);
	memset(res, 0, sizeof *res);
}

/* ---- the client ---- */

struct endpoint {
	union addr_any a;
	socklen_t len;
	char name[80];                /* host:port, for Host: and messages */
};

enum phase { PH_START, PH_CONNECTING, PH_SENDING, PH_RECEIVING, PH_DONE };

typedef void (*any_fn)(void);     /* the callback, called as the type its op gives it */

struct req {
	struct etcd *e;
	struct req *next;
	enum etcd_op op;
	enum phase phase;
	int fd, ep, tries;            /* ep: the endpoint it is on; tries: endpoints tried */
	short events;
	bool acked;                   /* a watch etcd said it created */
	uint64_t deadline_us;         /* 0: none (a watch once acknowledged) */
	struct strbuf body, out;      /* the JSON to send; the whole request */
	size_t sent;
	struct etcd_http in;
	any_fn done;                  /* a watch: its event callback */
	void (*broken)(void *);
	void *ctx;
};

struct etcd_watch {
	struct req r;
};

struct etcd {
	struct endpoint *ep;
	int nep, cur;                 /* cur: where the next connection goes */
	uint64_t timeout_us;
	struct req *reqs;
	bool up;                      /* the last exchange got an answer */
	char error[320];
};

static const char *const paths[] = {
	[ETCD_RANGE] = "/v3/kv/range", [ETCD_PUT] = "/v3/kv/put", [ETCD_DELETE] = "/v3/kv/deleterange",
	[ETCD_GRANT] = "/v3/lease/grant", [ETCD_KEEPALIVE] = "/v3/lease/keepalive",
	[ETCD_REVOKE] = "/v3/lease/revoke", [ETCD_TXN] = "/v3/kv/txn", [ETCD_WATCH] = "/v3/watch",
};


/* "host:port", "[v6]:port", either after "http://"; the host numeric or
 * localhost: no name lookups on the control thread. */
static bool parse_endpoint(const char *s, struct endpoint *ep)
{
	s += strncmp(s, "http://", 7) == 0 ? 7 : 0;
	bool v6 = *s == '[';
	const char *h = s + v6, *hend = v6 ? strchr(s, ']') : strrchr(s, ':'), *port = hend ? hend + 1 + v6 : NULL;
	char host[64], *end;
	if (!hend || (size_t)(hend - h) >= sizeof host || port[-1] != ':' || !isdigit((unsigned char)*port))
		return false;
	snprintf(host, sizeof host, "%.*s", (int)(hend - h), h);
	long p = strtol(port, &end, 10);
	snprintf(ep->name, sizeof ep->name, "%.*s", (int)(end - s), s);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	int family = (*end && strcmp(end, "/")) || p < 1 || p > 65535 || !*host || addr_is_name(host) ? -1
		     : addr_resolve(NULL, host, (int)p, "", 0, &ep->a, &ep->len);   /* an address: no lookup */
	return family == AF_INET || family == AF_INET6;
}

struct etcd *etcd_new(const char *const *endpoints, int n, double timeout_seconds)
{
	struct etcd *e = n > 0 ? calloc(1, sizeof *e) : NULL;
	if (!e || !(e->ep = calloc((size_t)n, sizeof *e->ep))) {
		free(e);
		return NULL;
	}
	e->nep = n;
	e->timeout_us = (uint64_t)((timeout_seconds > 0 ? timeout_seconds : 5) * 1e6);
	for (int i = 0; i < n; i++)
		if (!parse_endpoint(endpoints[i], &e->ep[i])) {
			log_warning("etcd endpoint \"%s\" is not a numeric host:port", endpoints[i]);
			etcd_free(e);
			return NULL;
		}
	return e;
}

static void req_free(struct req *r)
{
	if (r->fd >= 0)
		close(r->fd);
	strbuf_free(&r->body);
	strbuf_free(&r->out);
	etcd_http_free(&r->in);
	free(r);
}

void etcd_free(struct etcd *e)
{
	while (e && e->reqs) {
		struct req *r = e->reqs;
		e->reqs = r->next;
		req_free(r);
	}
	if (e)
		free(e->ep);
	free(e);
}

bool etcd_up(const struct etcd *e) { return e->up; }
const char *etcd_last_error(const struct etcd *e) { return e->error; }

/* The end of a request: its socket closed, then its callback, once (res NULL: failed). */
static void finish(struct req *r, const struct etcd_result *res)
{
	static const struct etcd_result none;
	const struct etcd_result *v = res ? res : &none;
	bool ok = res != NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->phase = PH_DONE;
	if (r->op == ETCD_WATCH && r->broken)
		r->broken(r->ctx);   /* a watch ends only by breaking */
	if (!r->done || r->op == ETCD_WATCH)
		return;
	switch (r->op) {
	case ETCD_RANGE:
		((void (*)(void *, bool, const struct etcd_kv *, int, int64_t))r->done)(r->ctx, ok, v->kvs, v->n, v->revision);
		break;
	case ETCD_GRANT:
		((void (*)(void *, bool, int64_t, int))r->done)(r->ctx, ok, v->lease_id, v->ttl);
		break;
	case ETCD_KEEPALIVE:
		((void (*)(void *, bool, int))r->done)(r->ctx, ok, v->ttl);
		break;
	case ETCD_TXN:
		((void (*)(void *, bool, bool))r->done)(r->ctx, ok, v->succeeded);
		break;
	default:
		((void (*)(void *, bool))r->done)(r->ctx, ok);
	}
}

/* up: etcd answered (with an error); else it could not be reached. */
static void fail(struct req *r, bool up, const char *what, int err)
{
	struct etcd *e = r->e;
	snprintf(e->error, sizeof e->error, "%s: %s%s%s", e->ep[r->ep].name, what, err ? ": " : "", err ? strerror(err) : "");
	e->up = up;
	finish(r, NULL);
}

/* The endpoint r is on failed: the next connection goes elsewhere. */
static void leave_endpoint(struct req *r, const char *what, int err)
{
	struct etcd *e = r->e;
	snprintf(e->error, sizeof e->error, "%s: %s: %s", e->ep[r->ep].name, what, strerror(err));
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	e->cur = (r->ep + 1) % e->nep;
}

/* Keepalive probes, so that a watch on a connection that died silently (a
 * partition) breaks instead of waiting forever: after 4 x seconds (idle, then
 * 3 probes). */
static void tcp_keepalive(int fd, int seconds)
{
	int on = 1, count = 3;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &seconds, sizeof seconds);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

/* Connect to the current endpoint; one that refuses is left for the next. */
static void connect_next(struct req *r)
{
	struct etcd *e = r->e;
	while (r->tries++ < e->nep) {
		const struct endpoint *ep = &e->ep[r->ep = e->cur];
		strbuf_reset(&r->out);
		strbuf_printf(&r->out, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", paths[r->op], ep->name, r->body.len,
			      strbuf_str(&r->body));
		r->fd = socket(ep->a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (r->fd >= 0 && !r->out.failed && (connect(r->fd, &ep->a.sa, ep->len) == 0 || errno == EINPROGRESS)) {
			tcp_keepalive(r->fd, (int)(e->timeout_us / 1000000) + 1);
			r->phase = PH_CONNECTING;
			r->events = POLLOUT;
			return;
		}
		leave_endpoint(r, "connect", r->out.failed ? ENOMEM : errno);
	}
	e->up = false;   /* e->error: the last endpoint's failure */
	finish(r, NULL);
}

static void send_some(struct req *r)
{
	while (r->sent < r->out.len) {
		ssize_t k = send(r->fd, r->out.buf + r->sent, r->out.len - r->sent, MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			fail(r, false, "send", errno);
		if (k < 0)
			return;
		r->sent += (size_t)k;
	}
	r->phase = PH_RECEIVING;
	r->events = POLLIN;
}

/* One message of a watch's stream: its events, in order, until one cancels it. */
static void watch_message(struct req *r, const char *text, size_t len)
{
	struct etcd_result res;
	if (etcd_parse(ETCD_WATCH, 200, text, len, &res) < 0 || res.canceled)
		fail(r, true, res.error, 0);
	else if (res.created && !r->acked) {
		r->acked = true;
		r->deadline_us = 0;
		r->e->up = true;
	}
	for (int i = 0; i < res.n && r->phase != PH_DONE; i++)
		((void (*)(void *, bool, const struct etcd_kv *, int64_t))r->done)(r->ctx, !res.deleted[i], &res.kvs[i],
										   res.revision);
	etcd_result_free(&res);
}

/* The gateway ends each message of a stream with a newline (and has none
 * inside: it writes compact JSON). False once the watch is over. */
static bool watch_messages(struct req *r)
{
	struct strbuf *b = &r->in.body;
	size_t at = 0;
	const char *nl;
	while (b->buf && r->phase != PH_DONE && (nl = memchr(b->buf + at, '\n', b->len - at))) {
		size_t len = (size_t)(nl - b->buf) - at;
		if (strspn(b->buf + at, " \t\r") < len)
			watch_message(r, b->buf + at, len);
		at += len + 1;
	}
	if (r->phase == PH_DONE)
		return false;
	if (at) {   /* keep what there is of an unfinished message */
		memmove(b->buf, b->buf + at, b->len - at);
		b->len -= at;
		b->buf[b->len] = '\0';
	}
	return true;
}

static void complete(struct req *r)
{
	if (r->op == ETCD_WATCH && r->in.status == 200) {
		fail(r, false, "the watch stream ended", 0);
		return;
	}
	struct etcd_result res;
	if (etcd_parse(r->op, r->in.status, strbuf_str(&r->in.body), r->in.body.len, &res) < 0)
		fail(r, r->in.status < 500, res.error, 0);   /* 5xx: etcd is there but cannot serve */
	else {
		r->e->up = true;
		finish(r, &res);
	}
	etcd_result_free(&res);
}

static void receive(struct req *r)
{
	char buf[16384];
	for (int k = 0; k < 16 && r->phase == PH_RECEIVING; k++) {   /* bounded: the loop has other work */
		ssize_t got = recv(r->fd, buf, sizeof buf, 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		int rc = got > 0 ? etcd_http_feed(&r->in, buf, (size_t)got) : got == 0 ? etcd_http_eof(&r->in) : -1;
		if (rc < 0)
			fail(r, false, got < 0 ? "recv" : got == 0 ? "connection closed" : "malformed or oversized response",
			     got < 0 ? errno : 0);
		else if (r->op == ETCD_WATCH && r->in.status == 200 && !watch_messages(r))
			return;
		else if (rc == 1)
			complete(r);
	}
}

static void step(struct req *r, int revents, uint64_t now)
{
	struct pollfd p = { .fd = r->fd, .events = POLLOUT };
	int err = 0;
	socklen_t len = sizeof err;
	switch (r->phase) {
	case PH_START:
		connect_next(r);
		break;
	case PH_CONNECTING:
		if (revents == 0 || poll(&p, 1, 0) <= 0)
			break;   /* still connecting */
		if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
			r->phase = PH_SENDING;
			send_some(r);
			break;
		}
		leave_endpoint(r, "connect", err ? err : errno);
		connect_next(r);
		break;
	case PH_SENDING:
		if (revents)
			send_some(r);
		break;
	case PH_RECEIVING:
		if (revents)
			receive(r);
		break;
	case PH_DONE:
		break;
	}
	if (r->phase != PH_DONE && r->deadline_us && now >= r->deadline_us) {
		char what[80];
		snprintf(what, sizeof what, "no answer within %.1f s", (double)r->e->timeout_us / 1e6);
		if (r->e->cur == r->ep)
			r->e->cur = (r->ep + 1) % r->e->nep;   /* the next request tries another */
		fail(r, false, what, 0);
	}
}

int etcd_pollfds(struct etcd *e, struct pollfd *fds, int max)
{
	int k = 0;
	for (struct req *r = e->reqs; r && k < max; r = r->next)
		if (r->fd >= 0 && r->phase != PH_DONE)
			fds[k++] = (struct pollfd){ .fd = r->fd, .events = r->events };
	return k;
}

int etcd_next_timeout(const struct etcd *e)
{
	uint64_t now = shard_now_us(), next = UINT64_MAX;
	for (const struct req *r = e->reqs; r; r = r->next) {
		uint64_t t = r->phase == PH_START ? now : r->phase == PH_DONE || !r->deadline_us ? UINT64_MAX : r->deadline_us;
		next = t < next ? t : next;
	}
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

void etcd_process(struct etcd *e, const struct pollfd *fds, int n)
{
	uint64_t now = shard_now_us();
	/* requests made by callbacks meanwhile join the front: they start next time */
	for (struct req *r = e->reqs; r; r = r->next) {
		int revents = -1;   /* not polled (yet): try */
		for (int i = 0; i < n && r->fd >= 0; i++)
			if (fds[i].fd == r->fd)
				revents = fds[i].revents;
		step(r, revents, now);
	}
	for (struct req **pr = &e->reqs; *pr;) {
		struct req *r = *pr;
		if (r->phase == PH_DONE) {
			*pr = r->next;
			req_free(r);
		} else
			pr = &r->next;
	}
}

/* ---- requests ---- */

static void put_b64(struct strbuf *sb, const char *before, const char *name, const void *data, size_t n)
{
	strbuf_printf(sb, "%s\"%s\":\"", before, name);
	base64_encode(sb, data, n);
	strbuf_putc(sb, '"');
}

/* The keys under prefix: from it to the first key after all that start with it
 * (its last byte below 0xff, plus one), or to the end ("\0") when there is none. */
static void put_prefix(struct strbuf *sb, const char *before, const char *prefix)
{
	size_t n = strlen(prefix);
	put_b64(sb, before, "key", prefix, n ? n : 1);
	while (n && (unsigned char)prefix[n - 1] == 0xff)
		n--;
	char *end = strndup(n ? prefix : "", n);
	if (end && n)
		end[n - 1]++;
	put_b64(sb, ",", "range_end", end ? end : "", n ? n : 1);
	sb->failed |= !end;
	free(end);
}

static void put_kv(struct strbuf *sb, const char *before, const char *key, const char *value, int64_t lease)
{
	put_b64(sb, before, "key", key, strlen(key));
	put_b64(sb, ",", "value", value, strlen(value));
	if (lease)
		strbuf_printf(sb, ",\"lease\":\"%" PRId64 "\"", lease);
}

/* A request for the queue, taking the JSON body in b (freed on failure). */
static struct req *submit(struct etcd *e, enum etcd_op op, struct strbuf *b, any_fn done, void *ctx)
{
	struct req *r = b->failed ? NULL : calloc(1, op == ETCD_WATCH ? sizeof(struct etcd_watch) : sizeof *r);
	if (!r) {
		strbuf_free(b);
		return NULL;
	}
	*r = (struct req){ .e = e, .op = op, .fd = -1, .body = *b, .out = STRBUF_INIT, .done = done, .ctx = ctx,
			   .deadline_us = shard_now_us() + e->timeout_us };
	etcd_http_init(&r->in, ETCD_MAX_RESPONSE);
	r->next = e->reqs;
	e->reqs = r;
	return r;
}

static bool submit_fmt(struct etcd *e, enum etcd_op op, const char *fmt, int64_t v, any_fn done, void *ctx)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_printf(&b, fmt, v);
	return submit(e, op, &b, done, ctx) != NULL;
}

bool etcd_range_prefix(struct etcd *e, const char *prefix,
		       void (*done)(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision), void *ctx)
{
	struct strbuf b = STRBUF_INIT;
	put_prefix(&b, "{", prefix);
	strbuf_putc(&b, '}');
	return submit(e, ETCD_RANGE, &b, (any_fn)done, ctx) != NULL;
}

bool etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease, void (*done)(void *ctx, bool ok),
	      void *ctx)
{
	struct strbuf b = STRBUF_INIT;
	put_kv(&b, "{", key, value, lease);
	strbuf_putc(&b, '}');
	return submit(e, ETCD_PUT, &b, (any_fn)done, ctx) != NULL;
}

bool etcd_delete(struct etcd *e, const char *key, void (*done)(void *ctx, bool ok), void *ctx)
{
	struct strbuf b = STRBUF_INIT;
	put_b64(&b, "{", "key", key, strlen(key));
	strbuf_putc(&b, '}');
	return submit(e, ETCD_DELETE, &b, (any_fn)done, ctx) != NULL;
}

bool etcd_lease_grant(struct etcd *e, int ttl_seconds, void (*done)(void *ctx, bool ok, int64_t lease_id, int ttl),
		      void *ctx)
{
	return submit_fmt(e, ETCD_GRANT, "{\"TTL\":\"%" PRId64 "\"}", ttl_seconds, (any_fn)done, ctx);
}

bool etcd_lease_keepalive(struct etcd *e, int64_t lease_id, void (*done)(void *ctx, bool ok, int ttl), void *ctx)
{
	return submit_fmt(e, ETCD_KEEPALIVE, "{\"ID\":\"%" PRId64 "\"}", lease_id, (any_fn)done, ctx);
}

bool etcd_lease_revoke(struct etcd *e, int64_t lease_id, void (*done)(void *ctx, bool ok), void *ctx)
{
	return submit_fmt(e, ETCD_REVOKE, "{\"ID\":\"%" PRId64 "\"}", lease_id, (any_fn)done, ctx);
}

bool etcd_put_if_absent(struct etcd *e, const char *key, const char *value, int64_t lease,
			void (*done)(void *ctx, bool ok, bool created), void *ctx)
{
	struct strbuf b = STRBUF_INIT;
	put_b64(&b, "{\"compare\":[{", "key", key, strlen(key));
	strbuf_puts(&b, ",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"}],\"success\":[");
	put_kv(&b, "{\"request_put\":{", key, value, lease);
	strbuf_puts(&b, "}}]}");
	return submit(e, ETCD_TXN, &b, (any_fn)done, ctx) != NULL;
}

struct etcd_watch *etcd_watch_prefix(struct etcd *e, const char *prefix, int64_t start_revision,
				     void (*event)(void *ctx, bool is_put, const struct etcd_kv *kv, int64_t revision),
				     void (*broken)(void *ctx), void *ctx)
{
	struct strbuf b = STRBUF_INIT;
	put_prefix(&b, "{\"create_request\":{", prefix);
	if (start_revision > 0)
		strbuf_printf(&b, ",\"start_revision\":\"%" PRId64 "\"", start_revision);
	strbuf_puts(&b, "}}");
	struct etcd_watch *w = (struct etcd_watch *)submit(e, ETCD_WATCH, &b, (any_fn)event, ctx);
	if (w)
		w->r.broken = broken;
	return w;
}

void etcd_watch_cancel(struct etcd_watch *w)
{
	if (w->r.fd >= 0)
		close(w->r.fd);   /* the gateway cancels the watch when its stream goes */
	w->r.fd = -1;
	w->r.phase = PH_DONE;   /* freed by the next etcd_process (or etcd_free) */
}
