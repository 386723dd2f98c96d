/* core/control/http.c: the control port's HTTP/1.1 server (see http.h). Owns the listen
 * socket and up to HTTP_MAX_CONNS connections, each a small state machine:
 * read a request head -> write the response -> read the next (keep-alive) or drain and close.
 * Against slowloris (many connections trickling bytes) the listener stays polled when
 * every slot is taken, and a new connection evicts the one that has made the least
 * progress, as nginx and HAProxy do: a load balancer's /health must not queue behind
 * them, and head deadlines alone would still leave it waiting seconds. */
#include "core/control/http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/control/control.h"
#include "core/log.h"
#include "core/control/fleet.h"
#include "core/control/metrics.h"
#include "core/strbuf.h"

/* Requests served back to back from one connection's buffer before giving the
 * caller's loop a turn; the rest wait for the next wake-up. */
#define PIPELINE_BURST 8
/* After accept(2) fails for lack of descriptors or memory, wait this long before
 * polling the listener again rather than spin on it. */
#define ACCEPT_BACKOFF_MS 100
/* Connections accepted per wake-up, so that a flood of connects (each evicting
 * another) cannot keep the caller's loop in accept_all. */
#define ACCEPT_BURST HTTP_MAX_CONNS

enum conn_state {
	CONN_READ,   /* collecting a request head */
	CONN_WRITE,  /* sending the response in out */
	CONN_DRAIN,  /* response sent, write side shut: read until the client closes */
};

struct conn {
	int fd;              /* -1: slot free */
	enum conn_state state;
	bool close_after;    /* close once the response is out */
	bool more;           /* unparsed bytes may hold another request: wake up at once */
	bool idle;           /* kept alive between requests, no byte of the next one yet */
	size_t inlen;
	size_t head_len;     /* bytes of in[] taken by the request being answered */
	size_t outoff;
	uint64_t since;      /* when this phase began (accept, a head's first byte, idle,
				response), as a count of phases: the older, the sooner evicted */
	int64_t deadline;    /* monotonic ms */
	struct strbuf out;
	char in[HTTP_HEAD_MAX];
};

struct http_server {
	int lfd;
	int port;
	int head_timeout_ms;    /* HTTP_HEAD_TIMEOUT_MS */
	int timeout_ms;         /* HTTP_TIMEOUT_MS */
	int nconns;
	int64_t accept_resume;  /* monotonic ms; listener not polled before */
	uint64_t phases;        /* phases begun: orders them exactly, unlike a clock */
	/* Evictions and timeouts could come by the thousand from one attacker: one
	 * line a second at most, with these counts since the last. */
	struct log_rate slow_log;
	int evicted, timed_out;
	struct conn conns[HTTP_MAX_CONNS];
};

struct request {
	const char *method, *target;
	size_t method_len, target_len;
	int minor;           /* HTTP/1.<minor> */
	bool close;          /* Connection: close, or HTTP/1.0 */
	bool body;           /* has a body we will not read: must close after */
	int status;          /* nonzero: answer with this error */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- listening ---- */

static int listen_on(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, HTTP_MAX_CONNS) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

struct http_server *http_open(const char *addr, int port, char *err, size_t errlen)
{
	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "control port %d: out of range", port);
		return NULL;
	}
	bool any = !addr || !*addr || strcmp(addr, "*") == 0;
	char service[8];
	snprintf(service, sizeof service, "%d", port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_family = any ? AF_INET : AF_UNSPEC };
	struct addrinfo *res;
	int rc = getaddrinfo(any ? NULL : addr, service, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "control address %s: %s", any ? "*" : addr, gai_strerror(rc));
		return NULL;
	}
	int fd = -1, e = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		if ((fd = listen_on(ai)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "control port %s:%d: %s", any ? "*" : addr, port, strerror(e));
		return NULL;
	}
	struct http_server *s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		snprintf(err, errlen, "control port: out of memory");
		return NULL;
	}
	s->lfd = fd;
	s->port = bound_port(fd);
	s->head_timeout_ms = HTTP_HEAD_TIMEOUT_MS;
	s->timeout_ms = HTTP_TIMEOUT_MS;
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		s->conns[i].fd = -1;
	return s;
}

int http_port(const struct http_server *s)
{
	return s->port;
}

void http_set_timeouts(struct http_server *s, int head_ms, int idle_ms)
{
	s->head_timeout_ms = head_ms;
	s->timeout_ms = idle_ms;
}

/* ---- connections ---- */

static void conn_close(struct http_server *s, struct conn *c)
{
	close(c->fd);
	strbuf_free(&c->out);
	c->fd = -1;
	s->nconns--;
}

/* Start a phase of c that must end within ms. Deadlines move only here, at a
 * phase change, never for a byte received: trickling bytes buys no time. */
static void conn_phase(struct http_server *s, struct conn *c, int64_t now, int ms)
{
	c->since = ++s->phases;
	c->deadline = now + ms;
}

/* Add n to *counter (evictions or timeouts; n = 0 is a tick) and log when due.
 * Only a connection closed mid-request or mid-response counts: closing an idle
 * keep-alive or a lingering close costs its client nothing, and is routine. */
static void log_slow(struct http_server *s, int64_t now, int *counter, int n)
{
	*counter += n;
	if (!log_rate_due(&s->slow_log, (unsigned long long)now * 1000, n))
		return;
	log_warning("control port: closed %d slow connection%s: %d evicted for new ones (all %d slots busy), "
		    "%d timed out (request head not complete within %d ms, or response not taken within %d ms)",
		    s->evicted + s->timed_out, s->evicted + s->timed_out == 1 ? "" : "s", s->evicted,
		    HTTP_MAX_CONNS, s->timed_out, s->head_timeout_ms, s->timeout_ms);
	s->evicted = s->timed_out = 0;
}

/* Which connections give way first to a new one: those already answered (idle
 * keep-alive, draining) lose nothing; then incomplete heads; a response being
 * sent last. */
static int evict_rank(const struct conn *c)
{
	if (c->state == CONN_DRAIN || (c->state == CONN_READ && c->idle))
		return 0;
	return c->state == CONN_READ ? 1 : 2;
}

/* Close the connection that has made the least progress: the lowest rank, and
 * within it the oldest phase (for a head, the one started longest ago). */
static struct conn *evict(struct http_server *s, int64_t now)
{
	struct conn *victim = NULL;
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];
		if (c->fd < 0)
			continue;
		if (!victim || evict_rank(c) < evict_rank(victim) ||
		    (evict_rank(c) == evict_rank(victim) && c->since < victim->since))
			victim = c;
	}
	INVARIANT(victim);
	log_slow(s, now, &s->evicted, evict_rank(victim) > 0);
	conn_close(s, victim);
	return victim;
}

static struct conn *free_slot(struct http_server *s, int64_t now)
{
	if (s->nconns == HTTP_MAX_CONNS)
		return evict(s, now);
	struct conn *c = s->conns;
	while (c->fd >= 0)
		c++;
	return c;
}

static void conn_run(struct http_server *s, struct conn *c, int64_t now);

static void accept_all(struct http_server *s, int64_t now)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warning("control port: accept: %s", strerror(errno));
				s->accept_resume = now + ACCEPT_BACKOFF_MS;
			}
			return;
		}
		/* Small responses must not wait for a delayed ACK. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = free_slot(s, now);
		c->fd = fd;
		c->state = CONN_READ;
		c->close_after = c->more = c->idle = false;
		c->inlen = c->head_len = c->outoff = 0;
		conn_phase(s, c, now, s->head_timeout_ms);
		s->nconns++;
		/* The request often came with the connection: answer it now, before
		 * later connects of this burst could evict it. */
		conn_run(s, c, now);
	}
}

/* The listener is polled even with every slot taken: a new connection evicts one. */
int http_pollfds(struct http_server *s, struct pollfd *fds, int max)
{
	int n = 0;
	if (n < max && now_ms() >= s->accept_resume)
		fds[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
	for (int i = 0; i < HTTP_MAX_CONNS && n < max; i++) {
		struct conn *c = &s->conns[i];
		if (c->fd < 0)
			continue;
		short ev = c->state == CONN_WRITE ? POLLOUT : POLLIN;
		if (c->state == CONN_READ && c->more)
			ev |= POLLOUT; /* writable at once: the wake-up we want */
		fds[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
	}
	return n;
}

int http_next_timeout(const struct http_server *s)
{
	int64_t next = -1, now = now_ms();
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		const struct conn *c = &s->conns[i];
		if (c->fd >= 0 && (next < 0 || c->deadline < next))
			next = c->deadline;
	}
	if (s->accept_resume > now && (next < 0 || s->accept_resume < next))
		next = s->accept_resume;
	if (next < 0)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

/* ---- request parsing ---- */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool all_tchar(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)p[i]))
			return false;
	return n > 0;
}

static bool token_eq(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

static void parse_request_line(const char *p, size_t n, struct request *rq)
{
	const char *sp1 = memchr(p, ' ', n);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1)) : NULL;
	if (!sp2) {
		rq->status = 400;
		return;
	}
	rq->method = p;
	rq->method_len = (size_t)(sp1 - p);
	rq->target = sp1 + 1;
	rq->target_len = (size_t)(sp2 - sp1 - 1);
	const char *v = sp2 + 1;
	size_t vlen = (size_t)(p + n - v);
	if (!all_tchar(rq->method, rq->method_len) || rq->target_len == 0) {
		rq->status = 400;
		return;
	}
	for (size_t i = 0; i < rq->target_len; i++)
		if ((unsigned char)rq->target[i] <= ' ' || (unsigned char)rq->target[i] >= 0x7f)
			rq->status = 400;
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') {
		rq->status = 400;
		return;
	}
	if (v[5] != '1') {
		if (!rq->status)
			rq->status = 505;
		return;
	}
	rq->minor = v[7] - '0';
	if (rq->minor == 0)
		rq->close = true;
}

static void parse_connection(const char *v, size_t n, struct request *rq)
{
	size_t i = 0;
	while (i < n) {
		size_t start = i;
		while (i < n && v[i] != ',')
			i++;
		size_t end = i++;
		while (start < end && (v[start] == ' ' || v[start] == '\t'))
			start++;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (token_eq(v + start, end - start, "close"))
			rq->close = true;
	}
}

static void parse_content_length(const char *v, size_t n, struct request *rq)
{
	if (n == 0 || n > 18) {
		rq->status = 400;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9') {
			rq->status = 400;
			return;
		}
		if (v[i] != '0')
			rq->body = true;
	}
}

static void parse_header(const char *p, size_t n, struct request *rq)
{
	const char *colon = memchr(p, ':', n);
	if (!colon || !all_tchar(p, (size_t)(colon - p))) {
		rq->status = 400; /* also catches obs-fold: a line starting with SP/HTAB */
		return;
	}
	size_t name_len = (size_t)(colon - p);
	const char *v = colon + 1, *end = p + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *q = v; q < end; q++)
		if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f)
			rq->status = 400;
	if (token_eq(p, name_len, "connection"))
		parse_connection(v, (size_t)(end - v), rq);
	else if (token_eq(p, name_len, "content-length"))
		parse_content_length(v, (size_t)(end - v), rq);
	else if (token_eq(p, name_len, "transfer-encoding"))
		rq->body = true;
}

/* Parse the head at buf[0..len). Returns its length (through the blank line) once
 * complete, 0 while more bytes are needed. Lines may end in CRLF or a bare LF. */
static size_t parse_head(const char *buf, size_t len, struct request *rq)
{
	size_t pos = 0;
	bool first = true;
	*rq = (struct request){ 0 };
	/* A client may send stray CRLFs between requests; skip them. */
	while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n'))
		pos++;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl)
			return 0;
		size_t n = (size_t)(nl - (buf + pos));
		if (n && buf[pos + n - 1] == '\r')
			n--;
		if (memchr(buf + pos, '\0', n) || memchr(buf + pos, '\r', n))
			rq->status = 400;
		if (n == 0 && !first)
			return (size_t)(nl - buf) + 1;
		if (first)
			parse_request_line(buf + pos, n, rq);
		else if (!rq->status)
			parse_header(buf + pos, n, rq);
		first = false;
		pos = (size_t)(nl - buf) + 1;
	}
}

/* ---- responses ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

struct response {
	int status;
	const char *type;
	struct strbuf body;
	bool allow;          /* add Allow: (405) */
};

static void put_response(struct conn *c, struct response *rs, bool head_only)
{
	char date[64];
	struct tm tm;
	time_t t = time(NULL);
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	strbuf_reset(&c->out);
	strbuf_printf(&c->out,
		      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Cache-Control: no-store\r\n%sConnection: %s\r\n\r\n",
		      rs->status, reason(rs->status), date, rs->type, rs->body.len,
		      rs->allow ? "Allow: GET, HEAD\r\n" : "",
		      c->close_after ? "close" : "keep-alive");
	if (!head_only)
		strbuf_append(&c->out, strbuf_str(&rs->body), rs->body.len);
}

static void set_text(struct response *rs, int status, const char *text)
{
	rs->status = status;
	rs->type = "text/plain; charset=utf-8";
	strbuf_puts(&rs->body, text);
}

/* Strip the query and, for an absolute-form target, the scheme and authority. */
static bool target_path(const struct request *rq, const char **path, size_t *len)
{
	const char *p = rq->target, *end = p + rq->target_len;
	if (*p != '/') {
		size_t skip = strncasecmp(p, "http://", 7) == 0 ? 7
			      : strncasecmp(p, "https://", 8) == 0 ? 8 : 0;
		if (!skip)
			return false;
		p += skip;
		while (p < end && *p != '/')
			p++;
	}
	const char *q = memchr(p, '?', (size_t)(end - p));
	*path = p;
	*len = (size_t)((q ? q : end) - p);
	return true;
}

static void route(const struct request *rq, struct response *rs)
{
	const char *path;
	size_t len;
	bool get = rq->method_len == 3 && memcmp(rq->method, "GET", 3) == 0;
	bool head = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
	if (!target_path(rq, &path, &len))
		set_text(rs, 400, "bad request\n");
	else if (!get && !head) {
		set_text(rs, 405, "method not allowed\n");
		rs->allow = true;
	} else if (len == 8 && memcmp(path, "/metrics", 8) == 0) {
		rs->status = 200;
		rs->type = METRICS_PROMETHEUS_TYPE;
		metrics_prometheus(&rs->body);
	} else if (len == 6 && memcmp(path, "/stats", 6) == 0) {
		rs->status = 200;
		rs->type = METRICS_JSON_TYPE;
		metrics_json(&rs->body);
	} else if (len == 6 && memcmp(path, "/nodes", 6) == 0) {
		rs->status = 200;
		rs->type = METRICS_JSON_TYPE;
		metrics_json_nodes(&rs->body);
	} else if (len == 6 && memcmp(path, "/peers", 6) == 0) {
		rs->status = 200;
		rs->type = METRICS_JSON_TYPE;
		fleet_peers_json(&rs->body);
	} else if (len == 7 && memcmp(path, "/status", 7) == 0) {
		rs->status = 200;
		rs->type = "text/plain; charset=utf-8";
		metrics_status(&rs->body);
	} else if (len == 7 && memcmp(path, "/health", 7) == 0) {
		if (control_shutting_down())
			set_text(rs, 503, "shutting down\n");
		else
			set_text(rs, 200, "ok\n");
	} else {
		set_text(rs, 404, "not found\n");
	}
}

static int respond(struct conn *c, const struct request *rq)
{
	struct response rs = { .body = STRBUF_INIT };
	if (rq->status)
		set_text(&rs, rq->status, rq->status == 431 ? "request head too large\n"
					  : rq->status == 505 ? "http version not supported\n"
					  : "bad request\n");
	else
		route(rq, &rs);
	if (rs.body.failed) {
		strbuf_free(&rs.body);
		set_text(&rs, 500, "out of memory\n");
	}
	/* Framing can't be trusted after a bad request, nor kept around a body we
	 * skip; and a draining pooler wants its monitors to reconnect elsewhere. */
	bool bad = rs.status >= 400 && rs.status != 404 && rs.status != 405;
	c->close_after = rq->close || rq->body || bad || control_shutting_down();
	bool head = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0 && !rq->status;
	put_response(c, &rs, head);
	strbuf_free(&rs.body);
	if (c->out.failed)
		return -1;
	c->outoff = 0;
	c->state = CONN_WRITE;
	return 0;
}

/* ---- the connection state machine ---- */

enum step { STEP_BLOCKED, STEP_AGAIN, STEP_CLOSE };

/* Answer the request at the front of in[] if it is complete. */
static enum step take_request(struct http_server *s, struct conn *c, int64_t now)
{
	struct request rq;
	size_t n = parse_head(c->in, c->inlen, &rq);
	if (!n) {
		if (c->inlen < HTTP_HEAD_MAX)
			return STEP_BLOCKED;
		rq = (struct request){ .status = 431, .close = true };
		n = c->inlen;
	}
	c->head_len = n;
	conn_phase(s, c, now, s->timeout_ms);
	return respond(c, &rq) < 0 ? STEP_CLOSE : STEP_AGAIN;
}

static enum step read_more(struct conn *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, c->in + c->inlen, HTTP_HEAD_MAX - c->inlen, 0);
		if (r > 0) {
			c->inlen += (size_t)r;
			return STEP_AGAIN;
		}
		if (r == 0)
			return STEP_CLOSE;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? STEP_BLOCKED : STEP_CLOSE;
	}
}

static enum step on_read(struct http_server *s, struct conn *c, int64_t now)
{
	enum step st = take_request(s, c, now);
	if (st != STEP_BLOCKED)
		return st;
	c->more = false;
	st = read_more(c);
	if (st == STEP_AGAIN && c->idle) {
		/* The next request began: from now on its head has the short deadline. */
		c->idle = false;
		conn_phase(s, c, now, s->head_timeout_ms);
	}
	return st;
}

static enum step finish_response(struct http_server *s, struct conn *c, int64_t now)
{
	strbuf_free(&c->out);
	c->outoff = 0;
	if (c->close_after) {
		shutdown(c->fd, SHUT_WR);
		c->state = CONN_DRAIN;
		conn_phase(s, c, now, s->timeout_ms);
		return STEP_BLOCKED;
	}
	c->inlen -= c->head_len;
	memmove(c->in, c->in + c->head_len, c->inlen);
	c->head_len = 0;
	c->state = CONN_READ;
	c->more = c->inlen > 0;
	/* Pipelined bytes are the next head, already begun; else the client may idle. */
	c->idle = !c->more;
	conn_phase(s, c, now, c->idle ? s->timeout_ms : s->head_timeout_ms);
	return STEP_AGAIN;
}

static enum step on_write(struct http_server *s, struct conn *c, int64_t now)
{
	while (c->outoff < c->out.len) {
		ssize_t w = send(c->fd, c->out.buf + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? STEP_BLOCKED : STEP_CLOSE;
		}
		c->outoff += (size_t)w;
	}
	return finish_response(s, c, now);
}

/* Discard what the client still sends so that our close does not turn into a
 * reset that could destroy the response before the client read it. */
static enum step on_drain(struct conn *c)
{
	char sink[4096];
	for (;;) {
		ssize_t r = recv(c->fd, sink, sizeof sink, 0);
		if (r > 0)
			continue;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? STEP_BLOCKED : STEP_CLOSE;
	}
}

static void conn_run(struct http_server *s, struct conn *c, int64_t now)
{
	int served = 0;
	enum step st = STEP_AGAIN;
	while (st == STEP_AGAIN) {
		if (c->state == CONN_READ) {
			if (served == PIPELINE_BURST) {
				c->more = true;
				return;
			}
			st = on_read(s, c, now);
			if (c->state == CONN_WRITE)
				served++;
		} else if (c->state == CONN_WRITE) {
			st = on_write(s, c, now);
		} else {
			st = on_drain(c);
		}
	}
	if (st == STEP_CLOSE)
		conn_close(s, c);
}

static struct conn *find_conn(struct http_server *s, int fd)
{
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		if (s->conns[i].fd == fd)
			return &s->conns[i];
	return NULL;
}

/* Close connections past their deadline. */
static void expire(struct http_server *s, int64_t now)
{
	int slow = 0;
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];
		if (c->fd < 0 || now < c->deadline)
			continue;
		slow += evict_rank(c) > 0;
		conn_close(s, c);
	}
	log_slow(s, now, &s->timed_out, slow);
}

void http_process(struct http_server *s, const struct pollfd *fds, int n)
{
	int64_t now = now_ms();
	bool listener = false;
	for (int i = 0; i < n; i++) {
		if (!fds[i].revents || fds[i].fd < 0)
			continue;
		if (fds[i].fd == s->lfd) {
			listener = true;
			continue;
		}
		struct conn *c = find_conn(s, fds[i].fd);
		if (!c)
			continue;
		if (fds[i].revents & POLLNVAL)
			conn_close(s, c);
		else
			conn_run(s, c, now);
	}
	/* Accept last: a descriptor closed above may be reused by accept, and must
	 * not be matched against a later, stale pollfd entry of this round. */
	if (listener)
		accept_all(s, now);
	expire(s, now);
}

void http_close(struct http_server *s)
{
	if (!s)
		return;
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		if (s->conns[i].fd >= 0)
			conn_close(s, &s->conns[i]);
	close(s->lfd);
	free(s);
}
