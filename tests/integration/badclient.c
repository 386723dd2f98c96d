/* tests/integration/badclient.c: a misbehaving PostgreSQL client (raw sockets, no
 * libpq on the wire) that runs named robustness scenarios against a running
 * pgring and checks its reaction to each. After every scenario it checks that
 * pgring is still alive (its pid, if given) and still answers a normal libpq query.
 *
 *   badclient [-h HOST] [-p PORT] [-U USER] [-W PASSWORD] [-d DB] [-P PGRING_PID]
 *             [-M MAX_PACKET_BYTES] [-R RSS_BOUND_MB] [-v] [SCENARIO]...
 *
 * Scenarios (default: all, in this order):
 *   a  garbage instead of a startup packet       -> optional ErrorResponse 08P01, then close
 *   b  startup length 3 / 2^31 / 7 / no NUL        -> error or close
 *   c  protocol version 2.0                        -> ErrorResponse 0A000
 *   d  protocol version 3.5 (+ _pq_.x option)      -> NegotiateProtocolVersion, then login goes on
 *   e  SSLRequest                                  -> 'N', then a normal login on the same socket;
 *      twice -> 0A000 (as PostgreSQL); with length 12 -> 08P01
 *   f  GSSENCRequest                               -> 'N', then a normal login on the same socket
 *   g  startup without user                        -> ErrorResponse 28000
 *   h  typed message with length < 4 after login   -> ErrorResponse 08P01, then close
 *   i  Query longer than max_packet_size (-M)      -> ErrorResponse 08P01, then close
 *   j  typed message before startup / wrong type during auth -> 08P01 (or close)
 *   k  a client that never reads a huge result     -> pgring's RSS stays bounded, others keep working
 *   l  200 clients reset (SO_LINGER 0) during startup, auth, waiting and mid-query
 *   m  CancelRequest with random keys -> plain close; a real cancel still works
 *   n  clients killed mid-COPY FROM STDIN (simple, and started by an Execute)
 *   o  the server dies inside a transaction: queries of any size get 25P02 until ROLLBACK
 *   p  a client waiting for a server trickles tiny messages: others can still log in
 *   q  an invalid message type after login ('z', 'A', ...)  -> ErrorResponse 08P01, then close
 *   r  2 x pool size clients stall mid-way through a first Query -> a normal query is answered at once
 *   t  Syncs around COPY FROM STDIN, all in one write (Execute, CopyFail, Sync; Query, Sync, CopyDone)
 *      -> PostgreSQL's answers and a query behind them answered; the pool serves on
 *   u  (statement pooling only, not in the default set) BEGIN, a SET and COMMIT pipelined: the client is
 *      refused at BEGIN, and the SET its server still committed is not handed on
 *   v  an invalid message sent while a row near max_packet_size streams to the client -> the row arrives whole, then
 *      FATAL 08P01, then the close (nothing is cut inside a message)
 *   w  requests the server would read inside a COPY FROM STDIN (a Sync after a bad row's CopyData, a Query
 *      before or after the CopyInResponse) -> FATAL 08P01, and the pool's servers answer their next clients in step
 *   x  Execute/Describe of portal "" after a Query failed inside a block (PostgreSQL 15 crashes on it) -> 34000
 *   y  a protocol Close, and a Bind, of an SQL PREPARE's name pipelined behind the PREPARE -> as PostgreSQL:
 *      closed (every server of the pool serves its next client), bound (its row)
 *   F  a half-close (shutdown SHUT_WR) while a row near max_packet_size streams -> the row arrives whole, then the
 *      close (what pgring queued is not dropped at the FIN)
 *   s  clients leave mid extended-protocol batch (after Execute and Flush, with half a Sync sent; after a
 *      Bind of a missing statement) -> what they never synced is not committed, the next client is served
 *   z  the pool is not leaking: pool-size concurrent transactions all get a server
 *
 * Exit 0 when every scenario passed, 1 on the first failure (with a message), 2 usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

/* ---- options and reporting ---- */

static const char *opt_host = "127.0.0.1";
static int opt_port = 6543;
static const char *opt_user = "app";
static const char *opt_pass = "app";
static const char *opt_db = "app";
static pid_t opt_pid;
static long opt_max_packet = 1 << 20;
static long opt_rss_bound_mb = 64;
static int opt_pool_size = 5;
static int verbose;

static const char *cur_scenario = "setup";

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "  [%s] ", cur_scenario);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL [%s] ", cur_scenario);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "FAIL: watchdog: scenario hung (pgring stopped answering?)\n";
	ssize_t w = write(2, m, sizeof m - 1);
	(void)w;
	_exit(1);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- MD5 (RFC 1321), for md5 authentication ---- */

struct md5 {
	uint32_t h[4];
	uint64_t len;
	uint8_t buf[64];
};

static uint32_t rol(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

static void md5_block(struct md5 *m, const uint8_t *p)
{
	static const uint32_t K[64] = {
		0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
		0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
		0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
		0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
		0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
		0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
		0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
		0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
	};
	static const int R[64] = { 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
				   5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
				   4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
				   6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21 };
	uint32_t w[16];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 | (uint32_t)p[i * 4 + 2] << 16 |
		       (uint32_t)p[i * 4 + 3] << 24;
	uint32_t a = m->h[0], b = m->h[1], c = m->h[2], d = m->h[3];
	for (int i = 0; i < 64; i++) {
		uint32_t f;
		int g;
		if (i < 16) {
			f = (b & c) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & c);
			g = (5 * i + 1) % 16;
		} else if (i < 48) {
			f = b ^ c ^ d;
			g = (3 * i + 5) % 16;
		} else {
			f = c ^ (b | ~d);
			g = (7 * i) % 16;
		}
		uint32_t t = d;
		d = c;
		c = b;
		b = b + rol(a + f + K[i] + w[g], R[i]);
		a = t;
	}
	m->h[0] += a;
	m->h[1] += b;
	m->h[2] += c;
	m->h[3] += d;
}

static void md5_hex(const void *data, size_t n, char out[33])
{
	struct md5 m = { { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 }, 0, { 0 } };
	const uint8_t *p = data;
	size_t full = n / 64 * 64;
	for (size_t i = 0; i < full; i += 64)
		md5_block(&m, p + i);
	uint8_t tail[128] = { 0 };
	size_t rest = n - full;
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	size_t tl = rest < 56 ? 64 : 128;
	uint64_t bits = (uint64_t)n * 8;
	for (int i = 0; i < 8; i++)
		tail[tl - 8 + i] = (uint8_t)(bits >> (8 * i));
	md5_block(&m, tail);
	if (tl == 128)
		md5_block(&m, tail + 64);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", (m.h[i / 4] >> (8 * (i % 4))) & 0xff);
}

/* md5 response: "md5" + md5(md5(password + user) + salt) */
static void md5_response(const char *user, const char *pass, const uint8_t salt[4], char out[36])
{
	char tmp[1024], inner[33];
	int n = snprintf(tmp, sizeof tmp, "%s%s", pass, user);
	md5_hex(tmp, (size_t)n, inner);
	uint8_t buf[36];
	memcpy(buf, inner, 32);
	memcpy(buf + 32, salt, 4);
	strcpy(out, "md5");
	md5_hex(buf, 36, out + 3);
}

/* ---- sockets ---- */

static int small_rcvbuf;   /* SO_RCVBUF for the next connections (0: the default) */

static int tcp_connect(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", opt_port);
	if (getaddrinfo(opt_host, ps, &hints, &res))
		fail("cannot resolve %s", opt_host);
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (small_rcvbuf)   /* before connect, so the window stays small */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small_rcvbuf, sizeof small_rcvbuf);
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		fail("cannot connect to pgring at %s:%d: %s", opt_host, opt_port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

/* Close with a RST instead of a FIN. */
static void rst_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
}

static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			fail("send: %s", strerror(errno));
		}
		b += w;
		n -= (size_t)w;
	}
}

/* Like send_all, but a peer that already closed is fine (returns false). */
static bool send_try(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		b += w;
		n -= (size_t)w;
	}
	return true;
}

enum { RD_OK = 1, RD_EOF = 0, RD_TIMEOUT = -1, RD_ERR = -2 };

/* Read exactly n bytes within timeout_ms. */
static int read_exact(int fd, void *p, size_t n, int timeout_ms)
{
	uint8_t *b = p;
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	while (n) {
		int64_t left = (int64_t)(deadline - now_ms());
		if (left <= 0)
			return RD_TIMEOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			return RD_TIMEOUT;
		ssize_t r = recv(fd, b, n, 0);
		if (r == 0)
			return RD_EOF;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? RD_EOF : RD_ERR;
		}
		b += r;
		n -= (size_t)r;
	}
	return RD_OK;
}

struct msg {
	uint8_t type;
	uint32_t len;          /* body length (without type and length field) */
	uint8_t *body;
};

static uint8_t msgbuf[1 << 20];

/* Read one typed message. Bodies longer than msgbuf are skipped (body NULL). */
static int read_msg(int fd, struct msg *m, int timeout_ms)
{
	uint8_t hdr[5];
	int rc = read_exact(fd, hdr, 5, timeout_ms);
	if (rc != RD_OK)
		return rc;   /* EOF between messages: a clean close */
	m->type = hdr[0];
	uint32_t len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
	if (len < 4)
		fail("pgring sent message '%c' with length %u", hdr[0], len);
	m->len = len - 4;
	if (m->len < sizeof msgbuf) {
		rc = read_exact(fd, msgbuf, m->len, timeout_ms);
		msgbuf[m->len] = 0;
		m->body = msgbuf;
	} else {
		static uint8_t sink[65536];
		uint32_t left = m->len;
		while (left && rc == RD_OK) {
			uint32_t k = left < sizeof sink ? left : sizeof sink;
			rc = read_exact(fd, sink, k, timeout_ms);
			left -= k;
		}
		rc = left ? rc : RD_OK;
		m->body = NULL;
	}
	return rc == RD_OK ? RD_OK : (rc == RD_EOF ? RD_ERR : rc);   /* EOF mid-message is an error */
}

/* A field of an ErrorResponse/NoticeResponse body. */
static const char *err_field(const struct msg *m, char code)
{
	const uint8_t *p = m->body, *end = m->body + m->len;
	while (p && p < end && *p) {
		char c = (char)*p++;
		const char *v = (const char *)p;
		p += strlen(v) + 1;
		if (c == code)
			return v;
	}
	return "";
}

static const char *rc_name(int rc)
{
	switch (rc) {
	case RD_EOF: return "connection closed";
	case RD_TIMEOUT: return "timeout";
	case RD_OK: return "a message";
	default: return "read error / closed mid-message";
	}
}

/* Expect: [ErrorResponse with one of the SQLSTATEs] then the connection closes.
 * need_error: the ErrorResponse must be there; otherwise a bare close is fine. */
static void expect_error_close(int fd, const char *what, const char *states, bool need_error)
{
	struct msg m;
	int rc = read_msg(fd, &m, 5000);
	if (rc == RD_OK) {
		if (m.type != 'E')
			fail("%s: expected ErrorResponse or close, got message '%c'", what, m.type);
		const char *st = err_field(&m, 'C');
		if (!*st || !strstr(states, st))
			fail("%s: expected SQLSTATE %s, got %s (%s)", what, states, st, err_field(&m, 'M'));
		note("%s: ErrorResponse %s %s: %s", what, err_field(&m, 'S'), st, err_field(&m, 'M'));
		rc = read_msg(fd, &m, 5000);
		if (rc == RD_OK)
			fail("%s: expected close after the ErrorResponse, got message '%c'", what, m.type);
	} else if (need_error) {
		fail("%s: expected ErrorResponse %s, got %s", what, states, rc_name(rc));
	}
	if (rc == RD_TIMEOUT)
		fail("%s: connection not closed within 5 s", what);
	if (rc == RD_EOF || rc == RD_ERR)
		note("%s: connection closed", what);
	close(fd);
}

static void expect_close_silently(int fd, const char *what)
{
	uint8_t b[64];
	int rc = read_exact(fd, b, 1, 5000);
	if (rc == RD_OK)
		fail("%s: expected a close with nothing sent, got byte 0x%02x ('%c')", what, b[0],
		     b[0] >= 32 && b[0] < 127 ? b[0] : '?');
	if (rc == RD_TIMEOUT)
		fail("%s: connection not closed within 5 s", what);
	close(fd);
}

/* ---- building messages ---- */

struct out {
	uint8_t b[8192];
	size_t n;
};

static void put_u32(struct out *o, uint32_t v)
{
	o->b[o->n++] = (uint8_t)(v >> 24);
	o->b[o->n++] = (uint8_t)(v >> 16);
	o->b[o->n++] = (uint8_t)(v >> 8);
	o->b[o->n++] = (uint8_t)v;
}

static void put_str(struct out *o, const char *s)
{
	size_t k = strlen(s) + 1;
	memcpy(o->b + o->n, s, k);
	o->n += k;
}

static void set_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A typed message appended, to go out with others in one write. */
static void put_typed(struct out *o, char type, const void *body, size_t n)
{
	o->b[o->n++] = (uint8_t)type;
	put_u32(o, (uint32_t)n + 4);
	if (n)
		memcpy(o->b + o->n, body, n);
	o->n += n;
}

/* A startup packet: version, then name/value pairs (NULL-terminated list). */
static void build_startup(struct out *o, uint32_t version, const char *const *kv)
{
	o->n = 0;
	put_u32(o, 0);
	put_u32(o, version);
	for (; kv && kv[0]; kv += 2) {
		put_str(o, kv[0]);
		put_str(o, kv[1]);
	}
	o->b[o->n++] = 0;
	set_u32(o->b, (uint32_t)o->n);
}

static void send_startup(int fd, uint32_t version, const char *const *extra)
{
	const char *kv[32];
	int n = 0;
	kv[n++] = "user";
	kv[n++] = opt_user;
	kv[n++] = "database";
	kv[n++] = opt_db;
	for (; extra && extra[0] && n < 28; extra += 2) {
		kv[n++] = extra[0];
		kv[n++] = extra[1];
	}
	kv[n] = NULL;
	struct out o;
	build_startup(&o, version, kv);
	send_all(fd, o.b, o.n);
}

static void send_typed(int fd, char type, const void *body, size_t n)
{
	uint8_t hdr[5] = { (uint8_t)type };
	set_u32(hdr + 1, (uint32_t)n + 4);
	send_all(fd, hdr, 5);
	if (n)
		send_all(fd, body, n);
}

static void send_query(int fd, const char *sql)
{
	send_typed(fd, 'Q', sql, strlen(sql) + 1);
}

/* After the startup packet: answer authentication, read to ReadyForQuery.
 * Returns with key data filled in; fails the scenario on anything unexpected. */
struct session {
	uint32_t pid, key;
};

static void finish_login(int fd, const char *what, struct session *ss)
{
	struct msg m;
	for (;;) {
		int rc = read_msg(fd, &m, 10000);
		if (rc != RD_OK)
			fail("%s: login: expected a message, got %s", what, rc_name(rc));
		switch (m.type) {
		case 'R': {
			uint32_t code = m.len >= 4 ? (uint32_t)m.body[0] << 24 | (uint32_t)m.body[1] << 16 |
							     (uint32_t)m.body[2] << 8 | m.body[3]
						   : 99;
			if (code == 0)
				break;
			if (code == 3) {
				send_typed(fd, 'p', opt_pass, strlen(opt_pass) + 1);
			} else if (code == 5 && m.len >= 8) {
				char resp[36];
				md5_response(opt_user, opt_pass, m.body + 4, resp);
				send_typed(fd, 'p', resp, strlen(resp) + 1);
			} else {
				fail("%s: login: authentication request %u is not supported by badclient "
				     "(use auth_type trust, plain or md5)", what, code);
			}
			break;
		}
		case 'E':
			fail("%s: login failed: %s %s", what, err_field(&m, 'C'), err_field(&m, 'M'));
		case 'K':
			if (ss && m.len >= 8) {
				ss->pid = (uint32_t)m.body[0] << 24 | (uint32_t)m.body[1] << 16 | (uint32_t)m.body[2] << 8 | m.body[3];
				ss->key = (uint32_t)m.body[4] << 24 | (uint32_t)m.body[5] << 16 | (uint32_t)m.body[6] << 8 | m.body[7];
			}
			break;
		case 'Z':
			return;
		case 'S':
		case 'N':
		case 'v':
			break;
		default:
			fail("%s: login: unexpected message '%c'", what, m.type);
		}
	}
}

static int login(const char *what, struct session *ss)
{
	int fd = tcp_connect();
	send_startup(fd, 196608, NULL);
	finish_login(fd, what, ss);
	return fd;
}

/* Run a simple query, read to ReadyForQuery; returns the SQLSTATE of an error or "". */
static const char *simple_query(int fd, const char *sql, const char *what)
{
	static char state[8];
	state[0] = 0;
	send_query(fd, sql);
	struct msg m;
	for (;;) {
		int rc = read_msg(fd, &m, 15000);
		if (rc != RD_OK)
			fail("%s: query %s: %s", what, sql, rc_name(rc));
		if (m.type == 'E')
			snprintf(state, sizeof state, "%s", err_field(&m, 'C'));
		if (m.type == 'Z')
			return state;
	}
}

/* Run a simple query and return the first column of its first row ("" if none). */
static const char *query_value(int fd, const char *sql, const char *what)
{
	static char val[256];
	val[0] = 0;
	bool got = false;
	send_query(fd, sql);
	struct msg m;
	for (;;) {
		int rc = read_msg(fd, &m, 15000);
		if (rc != RD_OK)
			fail("%s: query %s: %s", what, sql, rc_name(rc));
		if (m.type == 'E')
			fail("%s: query %s: %s %s", what, sql, err_field(&m, 'C'), err_field(&m, 'M'));
		if (m.type == 'D' && !got && m.len >= 6) {
			uint32_t n = (uint32_t)m.body[2] << 24 | (uint32_t)m.body[3] << 16 | (uint32_t)m.body[4] << 8 | m.body[5];
			if (n < sizeof val && n + 6 <= m.len) {
				memcpy(val, m.body + 6, n);
				val[n] = 0;
			}
			got = true;
		}
		if (m.type == 'Z')
			return val;
	}
}

/* ---- libpq checks ---- */

static char conninfo[1024];

static PGconn *pq_connect(void)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		fail("libpq cannot connect through pgring: %s", PQerrorMessage(c));
	return c;
}

static void pq_expect(PGconn *c, const char *sql, const char *want)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail("libpq query %s: %s", sql, PQerrorMessage(c));
	if (want && strcmp(PQgetvalue(r, 0, 0), want) != 0)
		fail("libpq query %s: got %s, want %s", sql, PQgetvalue(r, 0, 0), want);
	PQclear(r);
}

static bool pgring_running(void)
{
	if (!opt_pid)
		return true;
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)opt_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void check_alive(void)
{
	if (!pgring_running())
		fail("pgring (pid %d) is no longer running", (int)opt_pid);
	PGconn *c = pq_connect();
	pq_expect(c, "SELECT 41 + 1", "42");
	PQfinish(c);
}

static long rss_kb(void)
{
	if (!opt_pid)
		return -1;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)opt_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- scenarios ---- */

static void sc_a(void)
{
	/* an HTTP request: the length field reads as ~1.2 GB */
	int fd = tcp_connect();
	const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(fd, http, sizeof http - 1);
	expect_error_close(fd, "HTTP request", "08P01", false);

	/* random bytes (fixed seed) */
	srand(12345);
	for (int round = 0; round < 20; round++) {
		uint8_t junk[256];
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = (uint8_t)rand();
		if (round % 2)
			junk[0] = 0;   /* make some lengths plausible: < 16 MB */
		fd = tcp_connect();
		send_try(fd, junk, sizeof junk);
		expect_error_close(fd, "random bytes", "08P01 0A000 28000", false);
	}

	/* a few garbage bytes then a FIN: pgring must not wait forever */
	fd = tcp_connect();
	send_all(fd, "\x00\x00", 2);
	shutdown(fd, SHUT_WR);
	expect_error_close(fd, "2 bytes then FIN", "08P01", false);
}

static void sc_b(void)
{
	static const struct {
		const char *what;
		uint32_t len;
	} cases[] = { { "startup length 3", 3 }, { "startup length 0", 0 }, { "startup length 2^31", 0x80000000u },
		      { "startup length 0xffffffff", 0xffffffffu }, { "startup length 1 MB", 1u << 20 } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int fd = tcp_connect();
		uint8_t b[8];
		set_u32(b, cases[i].len);
		set_u32(b + 4, 196608);
		send_all(fd, b, 8);
		expect_error_close(fd, cases[i].what, "08P01", false);
	}
	/* length 7: a version field cut short */
	{
		int fd = tcp_connect();
		uint8_t b[7] = { 0, 0, 0, 7, 0, 3, 0 };
		send_all(fd, b, 7);
		expect_error_close(fd, "startup length 7", "08P01 0A000", false);
	}
	/* the parameter list is not NUL-terminated */
	{
		int fd = tcp_connect();
		struct out o = { .n = 0 };
		put_u32(&o, 0);
		put_u32(&o, 196608);
		put_str(&o, "user");
		memcpy(o.b + o.n, "app", 3);
		o.n += 3;   /* no NUL, no final terminator */
		set_u32(o.b, (uint32_t)o.n);
		send_all(fd, o.b, o.n);
		expect_error_close(fd, "startup without terminators", "08P01", true);
	}
	/* a value without its name's pair */
	{
		int fd = tcp_connect();
		struct out o = { .n = 0 };
		put_u32(&o, 0);
		put_u32(&o, 196608);
		put_str(&o, "user");
		o.b[o.n++] = 0;
		set_u32(o.b, (uint32_t)o.n);
		send_all(fd, o.b, o.n);
		expect_error_close(fd, "startup with a dangling name", "08P01 28000", true);
	}
	/* a length that promises more than is sent, then silence: the login timeout
	 * would catch it; here just hang up and make sure nothing breaks */
	{
		int fd = tcp_connect();
		uint8_t b[8];
		set_u32(b, 100);
		set_u32(b + 4, 196608);
		send_all(fd, b, 8);
		usleep(50000);
		rst_close(fd);
	}
}

static void sc_c(void)
{
	int fd = tcp_connect();
	send_startup(fd, 2u << 16, NULL);
	expect_error_close(fd, "protocol 2.0", "0A000", true);
	fd = tcp_connect();
	send_startup(fd, 4u << 16, NULL);
	expect_error_close(fd, "protocol 4.0", "0A000", true);
}

static void sc_d(void)
{
	for (int variant = 0; variant < 2; variant++) {
		int fd = tcp_connect();
		const char *extra[] = { "_pq_.badclient_option", "on", NULL };
		send_startup(fd, (3u << 16) | 5, variant ? extra : NULL);
		struct msg m;
		int rc = read_msg(fd, &m, 5000);
		if (rc != RD_OK)
			fail("protocol 3.5: expected NegotiateProtocolVersion, got %s", rc_name(rc));
		if (m.type != 'v')
			fail("protocol 3.5: expected NegotiateProtocolVersion 'v', got '%c'%s%s", m.type,
			     m.type == 'E' ? ": " : "", m.type == 'E' ? err_field(&m, 'M') : "");
		if (m.len < 8)
			fail("protocol 3.5: NegotiateProtocolVersion too short (%u)", m.len);
		uint32_t newest = (uint32_t)m.body[0] << 24 | (uint32_t)m.body[1] << 16 | (uint32_t)m.body[2] << 8 | m.body[3];
		uint32_t nopt = (uint32_t)m.body[4] << 24 | (uint32_t)m.body[5] << 16 | (uint32_t)m.body[6] << 8 | m.body[7];
		/* PostgreSQL sends the whole version number (3 << 16 | minor), though the
		 * protocol documentation speaks of the newest minor; accept both */
		if (newest >> 16 == 3)
			newest &= 0xffff;
		if (newest >= 5)
			fail("protocol 3.5: NegotiateProtocolVersion offers version %u", newest);
		if (variant && (nopt != 1 || m.len < 9 || strcmp((const char *)m.body + 8, "_pq_.badclient_option")))
			fail("protocol 3.5: NegotiateProtocolVersion does not list the unknown _pq_ option (n=%u)", nopt);
		if (!variant && nopt != 0)
			fail("protocol 3.5: NegotiateProtocolVersion lists %u options, none were sent", nopt);
		note("NegotiateProtocolVersion: newest minor %u, %u unrecognized option(s)", newest, nopt);
		finish_login(fd, "protocol 3.5", NULL);
		if (*simple_query(fd, "SELECT 1", "protocol 3.5"))
			fail("protocol 3.5: SELECT 1 failed after login");
		close(fd);
	}
}

static void ssl_like(uint32_t code, const char *what)
{
	int fd = tcp_connect();
	uint8_t b[8];
	set_u32(b, 8);
	set_u32(b + 4, code);
	send_all(fd, b, 8);
	uint8_t c;
	int rc = read_exact(fd, &c, 1, 5000);
	if (rc != RD_OK)
		fail("%s: expected 'N', got %s", what, rc_name(rc));
	if (c != 'N' && c != 'S' && c != 'G')
		fail("%s: expected 'N', got byte 0x%02x", what, c);
	if (c != 'N') {
		note("%s: pgring accepted encryption ('%c'); not continuing on this socket", what, c);
		close(fd);
		return;
	}
	/* nothing else must follow the single byte */
	uint8_t extra;
	rc = read_exact(fd, &extra, 1, 200);
	if (rc != RD_TIMEOUT)
		fail("%s: more than the single 'N' byte came back (%s)", what, rc_name(rc));
	send_startup(fd, 196608, NULL);
	finish_login(fd, what, NULL);
	if (*simple_query(fd, "SELECT 1", what))
		fail("%s: SELECT 1 failed after login", what);
	close(fd);

	/* the request twice in a row: PostgreSQL refuses the second one */
	fd = tcp_connect();
	send_all(fd, b, 8);
	rc = read_exact(fd, &c, 1, 5000);
	if (rc != RD_OK || c != 'N')
		fail("%s (twice): expected 'N'", what);
	send_try(fd, b, 8);
	/* as PostgreSQL: the second is an unknown protocol version, 1234.5679/5680 */
	char twice[64];
	snprintf(twice, sizeof twice, "%s twice", what);
	expect_error_close(fd, twice, "0A000", true);

	/* the request with a wrong length is a protocol violation, not a request */
	fd = tcp_connect();
	uint8_t longer[12] = { 0 };
	set_u32(longer, 12);
	set_u32(longer + 4, code);
	send_all(fd, longer, sizeof longer);
	char bad_len[64];
	snprintf(bad_len, sizeof bad_len, "%s with length 12", what);
	expect_error_close(fd, bad_len, "08P01", true);
}

static void sc_e(void) { ssl_like(80877103, "SSLRequest"); }
static void sc_f(void) { ssl_like(80877104, "GSSENCRequest"); }

static void sc_g(void)
{
	int fd = tcp_connect();
	const char *kv[] = { "database", opt_db, "application_name", "badclient", NULL };
	struct out o;
	build_startup(&o, 196608, kv);
	send_all(fd, o.b, o.n);
	expect_error_close(fd, "startup without user", "28000", true);
	fd = tcp_connect();
	const char *kv2[] = { "user", "", NULL };
	build_startup(&o, 196608, kv2);
	send_all(fd, o.b, o.n);
	expect_error_close(fd, "startup with empty user", "28000", true);
}

static void sc_h(void)
{
	for (uint32_t len = 0; len < 4; len++) {
		int fd = login("short message", NULL);
		uint8_t b[5] = { 'Q' };
		set_u32(b + 1, len);
		send_all(fd, b, 5);
		char what[64];
		snprintf(what, sizeof what, "Query with length %u", len);
		expect_error_close(fd, what, "08P01", true);
	}
	/* the same split over two sends (header straddles reads) */
	int fd = login("short message", NULL);
	send_all(fd, "S\x00", 2);
	usleep(20000);
	send_all(fd, "\x00\x00\x02", 3);
	expect_error_close(fd, "Sync with length 2 (split header)", "08P01", true);
}

static void sc_i(void)
{
	uint32_t claim = (uint32_t)(opt_max_packet * 2);
	int fd = login("oversized", NULL);
	uint8_t b[5 + 64] = { 'Q' };
	set_u32(b + 1, claim);
	memcpy(b + 5, "SELECT '", 8);
	memset(b + 13, 'x', sizeof b - 13);
	send_all(fd, b, sizeof b);
	char what[64];
	snprintf(what, sizeof what, "Query claiming %u bytes", claim);
	expect_error_close(fd, what, "08P01", true);

	/* while a transaction is open on a leased server */
	fd = login("oversized in txn", NULL);
	if (*simple_query(fd, "BEGIN", "oversized in txn"))
		fail("BEGIN failed");
	send_all(fd, b, sizeof b);
	expect_error_close(fd, "oversized Query inside a transaction", "08P01", true);

	/* a Parse claiming just over the limit, split after the header */
	fd = login("oversized parse", NULL);
	uint8_t p[5] = { 'P' };
	set_u32(p + 1, (uint32_t)opt_max_packet + 1);
	send_all(fd, p, 3);
	usleep(20000);
	send_all(fd, p + 3, 2);
	expect_error_close(fd, "Parse just over max_packet_size", "08P01", true);
}

static void sc_j(void)
{
	/* a PasswordMessage instead of a startup packet */
	int fd = tcp_connect();
	send_typed(fd, 'p', "app", 4);
	expect_error_close(fd, "password message before startup", "08P01", false);

	/* a Query where the password should be */
	fd = tcp_connect();
	send_startup(fd, 196608, NULL);
	struct msg m;
	int rc = read_msg(fd, &m, 5000);
	if (rc != RD_OK)
		fail("wrong type during auth: expected a message after startup, got %s", rc_name(rc));
	if (m.type != 'R')
		fail("wrong type during auth: expected an authentication request, got '%c'", m.type);
	uint32_t code = (uint32_t)m.body[0] << 24 | (uint32_t)m.body[1] << 16 | (uint32_t)m.body[2] << 8 | m.body[3];
	if (code == 0) {
		note("auth_type trust: no authentication exchange to disturb; sending a password after login");
		finish_login(fd, "trust", NULL);
		send_typed(fd, 'p', "app", 4);
		/* forwarded to the server, which complains */
		for (;;) {
			rc = read_msg(fd, &m, 5000);
			if (rc != RD_OK)
				break;
			if (m.type == 'E')
				note("stray password message: %s %s", err_field(&m, 'C'), err_field(&m, 'M'));
		}
		close(fd);
		return;
	}
	send_query(fd, "SELECT 1");
	expect_error_close(fd, "Query during authentication", "08P01", true);

	/* a password message with no terminating NUL */
	fd = tcp_connect();
	send_startup(fd, 196608, NULL);
	if (read_msg(fd, &m, 5000) != RD_OK || m.type != 'R')
		fail("malformed password: no authentication request");
	send_typed(fd, 'p', "md5abc", 6);
	expect_error_close(fd, "password without NUL", "08P01 28P01", true);

	/* an empty password message (length 4) */
	fd = tcp_connect();
	send_startup(fd, 196608, NULL);
	if (read_msg(fd, &m, 5000) != RD_OK || m.type != 'R')
		fail("empty password: no authentication request");
	send_typed(fd, 'p', NULL, 0);
	expect_error_close(fd, "empty password message", "08P01 28P01", true);

	/* a second startup packet where the password should be */
	fd = tcp_connect();
	send_startup(fd, 196608, NULL);
	if (read_msg(fd, &m, 5000) != RD_OK || m.type != 'R')
		fail("second startup: no authentication request");
	send_startup(fd, 196608, NULL);
	/* read as a typed message, its type is 0x00 and its length ~7900: like PostgreSQL,
	 * pgring may wait for the rest (until client_login_timeout); an error is fine too */
	rc = read_msg(fd, &m, 500);
	if (rc == RD_OK && m.type != 'E')
		fail("startup packet during authentication: got '%c'", m.type);
	rst_close(fd);

	/* a password message pipelined with the startup packet, before it was asked for */
	fd = tcp_connect();
	send_startup(fd, 196608, NULL);
	send_typed(fd, 'p', "md500000000000000000000000000000000", 36);
	rc = read_msg(fd, &m, 5000);
	if (rc == RD_OK && m.type == 'R')
		rc = read_msg(fd, &m, 5000);
	if (rc == RD_OK && m.type != 'E')
		fail("early password: expected an ErrorResponse, got '%c'", m.type);
	if (rc == RD_OK)
		note("early password: %s %s", err_field(&m, 'C'), err_field(&m, 'M'));
	close(fd);
}

static void sc_k(void)
{
	if (!opt_pid)
		fail("scenario k needs pgring's pid (-P)");
	PGconn *busy = pq_connect();
	pq_expect(busy, "SELECT 1", "1");
	long before = rss_kb();
	int hog = login("hog", NULL);
	/* (no SO_RCVBUF shrinking here: a tiny window after the connection is up makes the
	 * reads below crawl at the pace of TCP window probes) */
	send_query(hog, "SELECT repeat('x', 1000) FROM generate_series(1, 200000)");
	long peak = before;
	int ok = 0;
	uint64_t end = now_ms() + 4000;
	while (now_ms() < end) {
		pq_expect(busy, "SELECT count(*) FROM generate_series(1, 1000)", "1000");
		if (ok % 10 == 0) {
			PGconn *c = pq_connect();
			pq_expect(c, "SELECT 2", "2");
			PQfinish(c);
		}
		ok++;
		long r = rss_kb();
		if (r > peak)
			peak = r;
		usleep(20000);
	}
	note("RSS before %ld kB, peak %ld kB (+%ld kB) while the hog does not read; %d queries by others ok",
	     before, peak, peak - before, ok);
	if (peak - before > opt_rss_bound_mb * 1024)
		fail("pgring's RSS grew by %ld kB (bound %ld MB) for a client that does not read", peak - before,
		     opt_rss_bound_mb);
	/* the hog reads a little and must still get well-formed data */
	struct msg m;
	int rc = read_msg(hog, &m, 5000);
	if (rc != RD_OK || (m.type != 'T' && m.type != 'D'))
		fail("hog: expected RowDescription/DataRow, got %s '%c'", rc_name(rc), rc == RD_OK ? m.type : '-');
	for (int i = 0; i < 1000; i++) {
		rc = read_msg(hog, &m, 5000);
		if (rc != RD_OK || m.type != 'D')
			fail("hog: expected DataRow #%d, got %s '%c'", i, rc_name(rc), rc == RD_OK ? m.type : '-');
	}
	rst_close(hog);   /* and vanish mid-result */
	PQfinish(busy);
	/* the server it had must come back (or be replaced) */
	usleep(200000);
}

/* Drive n sockets to a stage, then reset them all. */
enum stage { ST_CONNECT, ST_PARTIAL_STARTUP, ST_STARTUP, ST_AUTH_PENDING, ST_WAITING, ST_MID_QUERY, ST_MID_RESULT, ST_NSTAGES };
static const char *stage_name[] = { "just connected", "half a startup packet", "startup sent (no reply read)",
				    "auth requested", "query queued for a server", "mid-query (pg_sleep)",
				    "mid-result" };

static void sc_l(void)
{
	enum { N = 200, BATCH = 40 };
	int done = 0;
	for (int base = 0; base < N; base += BATCH) {
		int fds[BATCH];
		for (int i = 0; i < BATCH; i++) {
			int st = (base + i) % ST_NSTAGES;
			if (st >= ST_WAITING) {
				fds[i] = login("abrupt", NULL);
				if (st == ST_WAITING || st == ST_MID_QUERY)
					send_query(fds[i], "SELECT pg_sleep(0.2)");
				else
					send_query(fds[i], "SELECT repeat('y', 500) FROM generate_series(1, 20000)");
				continue;
			}
			fds[i] = tcp_connect();
			struct out o;
			const char *kv[] = { "user", opt_user, "database", opt_db, NULL };
			build_startup(&o, 196608, kv);
			if (st == ST_PARTIAL_STARTUP)
				send_all(fds[i], o.b, o.n / 2);
			else if (st >= ST_STARTUP)
				send_all(fds[i], o.b, o.n);
			if (st == ST_AUTH_PENDING) {
				struct msg m;
				if (read_msg(fds[i], &m, 5000) != RD_OK)
					fail("abrupt: no answer to the startup packet");
			}
		}
		usleep(30000);
		for (int i = 0; i < BATCH; i++) {
			rst_close(fds[i]);
			done++;
		}
	}
	note("%d connections reset across %d stages", done, (int)ST_NSTAGES);
	(void)stage_name;
	usleep(300000);
}

static void sc_m(void)
{
	srand(777);
	for (int i = 0; i < 20; i++) {
		int fd = tcp_connect();
		uint8_t b[16];
		set_u32(b, 16);
		set_u32(b + 4, 80877102);
		uint32_t pid = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
		if (i % 2)
			pid &= 0x7fffff;   /* owner shard 0 or 1: looks like one of ours */
		set_u32(b + 8, pid);
		set_u32(b + 12, (uint32_t)rand());
		send_all(fd, b, 16);
		expect_close_silently(fd, "CancelRequest with a random key");
	}
	/* a cancel request of the wrong length */
	int fd = tcp_connect();
	uint8_t b[12];
	set_u32(b, 12);
	set_u32(b + 4, 80877102);
	set_u32(b + 8, 1);
	send_all(fd, b, 12);
	expect_error_close(fd, "CancelRequest of 12 bytes", "08P01", false);

	/* a real cancel still works: pg_sleep(10) is cancelled within a few seconds */
	struct session ss = { 0, 0 };
	int q = login("cancel", &ss);
	if (!ss.pid)
		fail("no BackendKeyData at login");
	send_query(q, "SELECT pg_sleep(10)");
	usleep(300000);
	fd = tcp_connect();
	uint8_t c[16];
	set_u32(c, 16);
	set_u32(c + 4, 80877102);
	set_u32(c + 8, ss.pid);
	set_u32(c + 12, ss.key);
	send_all(fd, c, 16);
	expect_close_silently(fd, "genuine CancelRequest");
	uint64_t t0 = now_ms();
	struct msg m;
	const char *st = "";
	for (;;) {
		int rc = read_msg(q, &m, 8000);
		if (rc != RD_OK)
			fail("genuine cancel: %s while waiting for the cancelled query", rc_name(rc));
		if (m.type == 'E')
			st = err_field(&m, 'C') == NULL ? "" : strdup(err_field(&m, 'C'));
		if (m.type == 'Z')
			break;
	}
	if (strcmp(st, "57014") != 0)
		fail("genuine cancel: the query was not cancelled (SQLSTATE '%s', %llu ms)", st,
		     (unsigned long long)(now_ms() - t0));
	note("genuine cancel took effect after %llu ms", (unsigned long long)(now_ms() - t0));
	if (*simple_query(q, "SELECT 1", "after cancel"))
		fail("query after a cancel failed");
	close(q);
}

static void sc_z(void);

static void sc_n(void)
{
	/* a real table so that COPY sits in a transaction on the server */
	PGconn *c = pq_connect();
	PGresult *r = PQexec(c, "CREATE TABLE IF NOT EXISTS badclient_copy (x text)");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail("CREATE TABLE: %s", PQerrorMessage(c));
	PQclear(r);
	for (int variant = 0; variant < 5; variant++) {
		int fd = login("copy", NULL);
		struct msg m;
		int rc;
		if (variant == 4) {
			/* COPY started by an Execute (extended protocol): the server then
			 * ignores Syncs and reads a Query as an error, so the server of a
			 * client that dies here cannot be reset and must be closed */
			static const uint8_t bind[] = { 0, 0, 0, 0, 0, 0, 0, 0 }, exec[] = { 0, 0, 0, 0, 0 };
			struct out o = { .n = 0 };
			o.b[o.n++] = 0;
			put_str(&o, "COPY badclient_copy FROM STDIN");
			o.b[o.n++] = 0, o.b[o.n++] = 0;
			send_typed(fd, 'P', o.b, o.n);
			send_typed(fd, 'B', bind, sizeof bind);
			send_typed(fd, 'E', exec, sizeof exec);
			send_typed(fd, 'S', NULL, 0);
			while ((rc = read_msg(fd, &m, 5000)) == RD_OK && (m.type == '1' || m.type == '2'))
				;
		} else {
			send_query(fd, "COPY badclient_copy FROM STDIN");
			rc = read_msg(fd, &m, 5000);
		}
		if (rc != RD_OK || m.type != 'G')
			fail("COPY: expected CopyInResponse, got %s '%c'%s", rc_name(rc), rc == RD_OK ? m.type : '-',
			     rc == RD_OK && m.type == 'E' ? err_field(&m, 'M') : "");
		char line[64];
		for (int i = 0; i < 1000; i++) {
			int k = snprintf(line, sizeof line, "row %d\n", i);
			send_typed(fd, 'd', line, (size_t)k);
		}
		if (variant == 1) {
			/* half a CopyData message */
			uint8_t h[5] = { 'd' };
			set_u32(h + 1, 1000);
			send_all(fd, h, 5);
			send_all(fd, "partial", 7);
		} else if (variant == 2) {
			/* CopyDone, but die before reading the result */
			send_typed(fd, 'c', NULL, 0);
		} else if (variant == 3) {
			/* a huge CopyData in flight */
			uint8_t h[5] = { 'd' };
			set_u32(h + 1, 500000);
			send_all(fd, h, 5);
			static char big[200000];
			memset(big, 'z', sizeof big);
			send_all(fd, big, sizeof big);
		}
		usleep(50000);
		if (variant % 2)
			rst_close(fd);
		else
			close(fd);   /* FIN: pgring sees EOF mid-COPY */
		usleep(100000);
		check_alive();
	}
	/* the pool still has every server (variant 4 cost its server, not the pool's) */
	sc_z();
	/* what made it in is only from variant 2 (CopyDone sent): 1000 rows at most */
	r = PQexec(c, "SELECT count(*) FROM badclient_copy");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail("count: %s", PQerrorMessage(c));
	long rows = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	note("%ld rows committed by killed COPY clients", rows);
	if (rows > 1000)
		fail("%ld rows were committed by COPY clients that died before CopyDone", rows);
	r = PQexec(c, "DROP TABLE badclient_copy");
	PQclear(r);
	PQfinish(c);
}

/* The server dies inside the client's transaction block: pgring answers the
 * client's next requests with 25P02 (or 08006) until it ends the block. Queries of
 * every size must get an answer, whatever the receive buffers cut them into. */
static void sc_o(void)
{
	static const size_t sizes[] = { 100, 3000, 5000, 100000 };
	PGconn *killer = pq_connect();
	for (size_t v = 0; v < sizeof sizes / sizeof sizes[0]; v++) {
		int fd = login("server lost", NULL);
		if (*simple_query(fd, "BEGIN", "server lost"))
			fail("BEGIN failed");
		char pid[64];
		if (snprintf(pid, sizeof pid, "%s", query_value(fd, "SELECT pg_backend_pid()", "server lost")) >=
		    (int)sizeof pid)
			fail("backend pid too long");
		char sql[128];
		if (snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", pid) >= (int)sizeof sql)
			fail("query too long");
		pq_expect(killer, sql, "t");
		/* whatever pgring says about the loss comes unsolicited; drain it */
		struct msg m;
		int rc;
		while ((rc = read_msg(fd, &m, 500)) == RD_OK)
			note("after the backend was terminated: '%c' %s %s", m.type, m.type == 'E' ? err_field(&m, 'C') : "",
			     m.type == 'E' ? err_field(&m, 'M') : "");
		if (rc != RD_TIMEOUT)
			fail("pgring closed the client when its server died in a transaction (transaction mode): %s",
			     rc_name(rc));
		/* a query of sizes[v] bytes */
		size_t n = sizes[v];
		char *q = malloc(n + 1);
		memcpy(q, "SELECT '", 8);
		memset(q + 8, 'q', n - 10);
		memcpy(q + n - 2, "'", 2);
		q[n] = 0;
		send_query(fd, q);
		free(q);
		const char *st = "";
		char status = 0;
		for (;;) {
			rc = read_msg(fd, &m, 5000);
			if (rc != RD_OK)
				fail("%zu-byte Query in a transaction whose server died: no answer (%s)", n, rc_name(rc));
			if (m.type == 'E')
				st = strdup(err_field(&m, 'C'));
			if (m.type == 'Z') {
				status = m.len ? (char)m.body[0] : '?';
				break;
			}
		}
		note("%zu-byte Query after the server died: %s, ReadyForQuery '%c'", n, st, status);
		/* the first statement hears why (the server's own SQLSTATE, 57P01 here),
		 * later ones that the block is failed (25P02) */
		if (status != 'E' || (strcmp(st, "25P02") && strcmp(st, "08006") && strcmp(st, "57P01")))
			fail("%zu-byte Query after the server died: SQLSTATE '%s', status '%c' (want 57P01/25P02, 'E')", n,
			     st, status);
		st = simple_query(fd, "ROLLBACK", "server lost");
		if (*st)
			fail("ROLLBACK after the server died: %s", st);
		if (*simple_query(fd, "SELECT 1", "server lost"))
			fail("SELECT 1 after the ROLLBACK failed");
		close(fd);
	}
	PQfinish(killer);
}

/* A client waiting for a server (the pool is busy) trickles tiny messages, each in
 * its own TCP segment. pgring holds what a waiting client sends; the hold is bounded
 * in bytes, but every receive takes a whole provided buffer. Other clients must
 * still be able to log in meanwhile. */
static void sc_p(void)
{
	int sleepers[64];
	int ns = opt_pool_size < 64 ? opt_pool_size : 64;
	for (int i = 0; i < ns; i++) {
		sleepers[i] = login("sleeper", NULL);
		send_query(sleepers[i], "SELECT pg_sleep(6)");
	}
	usleep(200000);
	int att = login("trickler", NULL);
	send_query(att, "SELECT 1");   /* waits: every server is sleeping */
	static const uint8_t sync[5] = { 'S', 0, 0, 0, 4 };
	int sent = 0;
	uint64_t t0 = now_ms();
	while (sent < 6000 && now_ms() - t0 < 2500) {
		if (!send_try(att, sync, 5))
			break;
		sent++;
		usleep(100);
	}
	note("trickled %d Sync messages in %llu ms", sent, (unsigned long long)(now_ms() - t0));
	/* fresh logins, on whichever shard the kernel picks */
	int slow = 0;
	for (int i = 0; i < 8; i++) {
		uint64_t t = now_ms();
		char ci[1200];
		snprintf(ci, sizeof ci, "%s connect_timeout=2", conninfo);
		PGconn *c = PQconnectdb(ci);
		uint64_t took = now_ms() - t;
		if (PQstatus(c) != CONNECTION_OK || took > 1500) {
			slow++;
			note("login %d while the trickler waits: %s after %llu ms", i,
			     PQstatus(c) == CONNECTION_OK ? "ok" : "FAILED", (unsigned long long)took);
		}
		PQfinish(c);
	}
	rst_close(att);
	for (int i = 0; i < ns; i++)
		rst_close(sleepers[i]);
	usleep(300000);
	if (slow)
		fail("%d of 8 fresh logins failed or took > 1.5 s while one waiting client trickled %d tiny "
		     "messages (receive buffers pinned by a held queue?)", slow, sent);
}

/* Every server of the pool is usable: pool_size transactions at once. */
/* Clients that trickle the first message of a transaction hold no server
 * meanwhile: twice the pool's size of them stall mid-Query, and a normal
 * client still gets its answer at once. */
static void sc_r(void)
{
	int n = 2 * opt_pool_size < 64 ? 2 * opt_pool_size : 64;
	int t[64];
	for (int i = 0; i < n; i++) {
		t[i] = login("trickler", NULL);
		uint8_t b[5 + 10] = { 'Q' };
		set_u32(b + 1, 4 + 100);   /* 100 bytes announced, 10 sent */
		memcpy(b + 5, "SELECT 1 -", 10);
		send_all(t[i], b, sizeof b);
	}
	usleep(300000);
	uint64_t t0 = now_ms();
	PGconn *c = pq_connect();
	pq_expect(c, "SELECT 42", "42");
	PQfinish(c);
	uint64_t took = now_ms() - t0;
	if (took > 2000)
		fail("a normal query took %llu ms while %d clients trickled a first Query (pool of %d)",
		     (unsigned long long)took, n, opt_pool_size);
	note("a normal query took %llu ms while %d clients trickled a first Query", (unsigned long long)took, n);
	for (int i = 0; i < n; i++)
		rst_close(t[i]);
}

/* A message type no frontend sends: 08P01 and close, as PostgreSQL does,
 * before any server is taken for it. */
static void sc_q(void)
{
	static const uint8_t types[] = { 'z', 'A', '1', 0x7f, 'p' };
	for (size_t i = 0; i < sizeof types; i++) {
		int fd = login("invalid message type", NULL);
		uint8_t b[5] = { types[i], 0, 0, 0, 4 };
		send_all(fd, b, 5);
		char what[64];
		snprintf(what, sizeof what, "message type 0x%02x after login", types[i]);
		expect_error_close(fd, what, "08P01", true);
	}
}

static void sc_z(void)
{
	PGconn *c[64];
	int n = opt_pool_size < 64 ? opt_pool_size : 64;
	for (int i = 0; i < n; i++) {
		c[i] = pq_connect();
		PGresult *r = PQexec(c[i], "BEGIN");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			fail("BEGIN on connection %d of %d: %s", i + 1, n, PQerrorMessage(c[i]));
		PQclear(r);
		pq_expect(c[i], "SELECT 1", "1");
	}
	for (int i = 0; i < n; i++) {
		PGresult *r = PQexec(c[i], "COMMIT");
		PQclear(r);
		PQfinish(c[i]);
	}
	note("%d concurrent transactions each got a server", n);
}

/* Parse, Bind and Execute of sql on the unnamed statement and portal (no Sync). */
static void send_pbe(int fd, const char *stmt, const char *sql)
{
	struct out o = { 0 };
	if (sql) {
		put_str(&o, stmt);
		put_str(&o, sql);
		o.b[o.n++] = 0;
		o.b[o.n++] = 0;   /* no parameter types */
		send_typed(fd, 'P', o.b, o.n);
	}
	o.n = 0;
	put_str(&o, "");
	put_str(&o, stmt);
	put_u32(&o, 0);   /* no format codes, no parameters (two u16) */
	o.b[o.n++] = 0;
	o.b[o.n++] = 0;   /* no result formats */
	send_typed(fd, 'B', o.b, o.n);
	o.n = 0;
	put_str(&o, "");
	put_u32(&o, 0);
	send_typed(fd, 'E', o.b, o.n);
}

/* A client that leaves before its Sync: PostgreSQL rolls back what it never
 * synced; a pooler must not commit it (a Sync of its own would), and must not
 * hand the server on while it ignores everything up to a Sync. The last part
 * stops after the Sync's first bytes: counted as begun, never sent. */
static void sc_s(void)
{
	PGconn *c = pq_connect();
	PGresult *r = PQexec(c, "CREATE TABLE IF NOT EXISTS bc_unsynced (a int); TRUNCATE bc_unsynced");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail("creating bc_unsynced: %s", PQerrorMessage(c));
	PQclear(r);
	static const uint8_t half_sync[3] = { 'S', 0, 0 };
	for (int v = 0; v < 4; v++) {
		int fd = login("unsynced", NULL);
		bool missing = v & 1;   /* Bind of a statement that does not exist */
		send_pbe(fd, missing ? "bc_nowhere" : "", missing ? NULL : "INSERT INTO bc_unsynced VALUES (1)");
		send_typed(fd, 'H', NULL, 0);
		struct msg m;
		int rc;
		char last = 0;
		while ((rc = read_msg(fd, &m, 1000)) == RD_OK) {
			last = m.type;
			if (m.type == 'C' || m.type == 'E')
				break;
		}
		if (rc != RD_OK || last != (missing ? 'E' : 'C'))
			fail("variant %d: Execute behind a Flush: %s, last message '%c'", v, rc_name(rc), last ? last : '-');
		if (v >= 2)
			send_all(fd, half_sync, sizeof half_sync);
		close(fd);
		/* the next client gets the same server (pool size 1 is not required:
		 * a server ignoring everything would hang one of them) */
		for (int k = 0; k < opt_pool_size; k++)
			pq_expect(c, "SELECT count(*) FROM bc_unsynced", "0");
	}
	r = PQexec(c, "DROP TABLE bc_unsynced");
	PQclear(r);
	PQfinish(c);
	note("4 clients left unsynced: nothing committed, the pool serves on");
}

/* Read up to the ReadyForQuery of the marker query; the message types seen. */
static void read_to_marker(int fd, const char *what, char *types, size_t cap)
{
	struct msg m;
	size_t n = 0;
	bool marker = false;
	for (;;) {
		int rc = read_msg(fd, &m, 5000);
		if (rc != RD_OK)
			fail("%s: no answer to the query behind the COPY (%s), got '%.*s'", what, rc_name(rc), (int)n, types);
		if (n + 1 < cap)
			types[n++] = (char)m.type;
		if (m.type == 'D' && m.len >= 6 + 10 && memcmp(m.body + 6, "pf_after_copy", 10) == 0)
			marker = true;
		if (m.type == 'Z' && marker)
			break;
	}
	types[n] = 0;
}

/* Read until the connection closes: a FATAL 08P01 must have come, and before
 * it only message types in `allowed`. */
static void expect_fatal_08p01(int fd, const char *what, const char *allowed)
{
	struct msg m;
	int rc;
	bool fatal = false;
	while ((rc = read_msg(fd, &m, 5000)) == RD_OK) {
		if (fatal)
			fail("%s: message '%c' after the FATAL", what, m.type);
		if (m.type == 'E' && !strcmp(err_field(&m, 'S'), "FATAL")) {
			if (strcmp(err_field(&m, 'C'), "08P01"))
				fail("%s: FATAL %s %s", what, err_field(&m, 'C'), err_field(&m, 'M'));
			fatal = true;
		} else if (!strchr(allowed, m.type)) {
			fail("%s: unexpected message '%c'", what, m.type);
		}
	}
	if (!fatal || rc == RD_TIMEOUT)
		fail("%s: %s without a FATAL 08P01", what, rc_name(rc));
	close(fd);
}

/* A Sync sent before the client's CopyDone/CopyFail is ignored by the server
 * in COPY FROM STDIN; one sent after it is answered. Pipelined, pgring learns
 * of the COPY (CopyInResponse) after it has sent both. */
static void sc_t(void)
{
	PGconn *c = pq_connect();
	PGresult *r = PQexec(c, "CREATE TABLE IF NOT EXISTS bc_copysync (a int)");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail("creating bc_copysync: %s", PQerrorMessage(c));
	PQclear(r);
	static const char marker[] = "SELECT 'pf_after_copy'";
	static const uint8_t row[] = "7\n";
	char types[64];
	for (int v = 0; v < 2; v++) {
		int fd = login("copy syncs", NULL);
		if (v == 0) {   /* Execute, CopyFail, Sync: the Sync ends the failed batch */
			send_pbe(fd, "", "COPY bc_copysync FROM STDIN");
			send_typed(fd, 'f', "no", 3);
			send_typed(fd, 'S', NULL, 0);
		} else {        /* Query, Sync (ignored), CopyData, CopyDone */
			send_query(fd, "COPY bc_copysync FROM STDIN");
			send_typed(fd, 'S', NULL, 0);
			send_typed(fd, 'd', row, sizeof row - 1);
			send_typed(fd, 'c', NULL, 0);
		}
		send_query(fd, marker);
		read_to_marker(fd, v ? "Query COPY, Sync, CopyDone" : "Execute COPY, CopyFail, Sync", types, sizeof types);
		const char *want = v ? "GCZTDCZ" : "12GEZTDCZ";
		if (strcmp(types, want))
			fail("variant %d: got messages '%s', want '%s'", v, types, want);
		if (strcmp(query_value(fd, "SELECT 'again'", "copy syncs"), "again"))
			fail("variant %d: the next query on the same connection", v);
		close(fd);
		for (int k = 0; k < opt_pool_size; k++)
			pq_expect(c, "SELECT count(*) FROM bc_copysync", v ? "1" : "0");
	}
	/* a Sync between CopyData messages: whether the server reads it inside
	 * the COPY (ignored) or after a bad row ended it (answered) cannot be
	 * known, so pgring refuses it; the row error may come first */
	int fd = login("copy syncs", NULL);
	static const char copy[] = "COPY bc_copysync FROM STDIN";
	static const uint8_t bad_row[] = "x\n";
	struct out o = { 0 };
	put_typed(&o, 'Q', copy, sizeof copy);
	put_typed(&o, 'd', bad_row, sizeof bad_row - 1);
	put_typed(&o, 'S', NULL, 0);
	put_typed(&o, 'Q', marker, sizeof marker);
	send_all(fd, o.b, o.n);   /* one write: pgring's close after the Sync cannot break a later send */
	expect_fatal_08p01(fd, "Sync between CopyData messages", "GEZ");
	for (int k = 0; k < opt_pool_size; k++)
		pq_expect(c, "SELECT count(*) FROM bc_copysync", "1");
	r = PQexec(c, "DROP TABLE bc_copysync");
	PQclear(r);
	PQfinish(c);
	note("Syncs before and after the end of a COPY answered as PostgreSQL does");
}

/* Every server of the pool answers each query with its own result. */
static void pool_in_step(PGconn *c, const char *what)
{
	for (int k = 0; k < 2 * opt_pool_size; k++) {
		char sql[64], want[32];
		snprintf(want, sizeof want, "w_%d", k);
		snprintf(sql, sizeof sql, "SELECT '%s'", want);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), want))
			fail("%s: the next client's %s got %s '%s'", what, sql, PQresStatus(PQresultStatus(r)),
			     PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : PQerrorMessage(c));
		PQclear(r);
	}
}

/* Requests the server reads inside a COPY FROM STDIN fail the COPY unanswered
 * (PostgreSQL) or, after a bad row ended it, are answered: pgring cannot count
 * the replies owed for them, so it refuses them, and its servers stay in step.
 * The first variant is the protocol fuzzer's finding: a CopyData sent while an
 * earlier Query was still running, a Sync sent after that Query's error (which
 * once cleared pgring's note of the CopyData) and before the CopyInResponse
 * (which then counted the Sync as ignored, though the bad row had ended the
 * COPY): one ReadyForQuery too many shifted every answer the server gave its
 * next clients by one. */
static void sc_w(void)
{
	PGconn *c = pq_connect();
	PGresult *r = PQexec(c, "CREATE TABLE IF NOT EXISTS bc_copymix (a int)");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail("creating bc_copymix: %s", PQerrorMessage(c));
	PQclear(r);
	static const uint8_t bad_row[] = "x\n";
	static const char slow_marker[] = "SELECT 'pf_after_copy' FROM pg_sleep(0.3)";

	int fd = login("copy mix", NULL);
	send_query(fd, "DO $$BEGIN PERFORM pg_sleep(0.1); RAISE EXCEPTION 'bc_copymix'; END$$");
	send_query(fd, "SELECT pg_sleep(0.4); COPY bc_copymix FROM STDIN");
	send_typed(fd, 'd', bad_row, sizeof bad_row - 1);
	usleep(250 * 1000);   /* the first Query has failed, the COPY has not begun */
	struct out o = { 0 };
	put_typed(&o, 'S', NULL, 0);
	put_typed(&o, 'Q', slow_marker, sizeof slow_marker);
	put_typed(&o, 'f', "no", 3);
	send_all(fd, o.b, o.n);   /* one write: pgring's close after the Sync cannot break a later send */
	expect_fatal_08p01(fd, "Sync after CopyData, before the COPY began", "ETDCGZ");
	pool_in_step(c, "Sync after CopyData, before the COPY began");

	fd = login("copy mix", NULL);
	send_query(fd, "COPY bc_copymix FROM STDIN");
	send_query(fd, slow_marker);
	expect_fatal_08p01(fd, "Query behind a COPY, before its CopyInResponse", "GEZ");
	pool_in_step(c, "Query behind a COPY, before its CopyInResponse");

	fd = login("copy mix", NULL);
	send_query(fd, "COPY bc_copymix FROM STDIN");
	struct msg m;
	if (read_msg(fd, &m, 5000) != RD_OK || m.type != 'G')
		fail("COPY FROM STDIN: no CopyInResponse");
	send_query(fd, slow_marker);
	expect_fatal_08p01(fd, "Query inside a COPY", "");
	pool_in_step(c, "Query inside a COPY");

	r = PQexec(c, "SELECT count(*) FROM bc_copymix");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "0"))
		fail("bc_copymix has rows: %s", PQgetvalue(r, 0, 0));
	PQclear(r);
	r = PQexec(c, "DROP TABLE bc_copymix");
	PQclear(r);
	PQfinish(c);
	note("requests sent inside a COPY FROM STDIN refused with 08P01, the pool's servers in step");
}

/* Read up to a ReadyForQuery; the first ErrorResponse's SQLSTATE ("" if none). */
static const char *error_until_ready(int fd, const char *what)
{
	static char code[8];
	struct msg m;
	code[0] = 0;
	for (;;) {
		int rc = read_msg(fd, &m, 5000);
		if (rc != RD_OK)
			fail("%s: %s before ReadyForQuery", what, rc_name(rc));
		if (m.type == 'E' && !code[0])
			snprintf(code, sizeof code, "%s", err_field(&m, 'C'));
		if (m.type == 'Z')
			return code;
	}
}

/* PostgreSQL 15 keeps the unnamed portal of a simple Query that failed inside
 * a transaction block, its plan already freed: an Execute of portal "" then
 * crashes the backend, and every session of the cluster with it (not every
 * time: it reads freed memory). The protocol says the Query destroyed that
 * portal: pgring never sends the Execute (test_lease checks that exactly). */
static void sc_x(void)
{
	static const uint8_t execute_unnamed[] = { 0, 0, 0, 0, 0 };   /* portal "", no row limit */
	static const uint8_t describe_unnamed[] = { 'P', 0 };
	/* a crash ends every session of the cluster: this one holds its server
	 * in a transaction block throughout */
	PGconn *canary = pq_connect();
	pq_expect(canary, "BEGIN; SELECT 'canary'", "canary");
	for (int v = 0; v < 2; v++) {
		int fd = login("unnamed portal", NULL);
		const char *steps[] = { "BEGIN", "DISCARD ALL", "SELECT 1" };
		const char *want[] = { "", "25001", "25P02" };
		for (int i = 0; i < 3; i++) {
			send_query(fd, steps[i]);
			const char *code = error_until_ready(fd, steps[i]);
			if (strcmp(code, want[i]))
				fail("%s: error '%s', want '%s'", steps[i], code, want[i]);
		}
		if (v == 0)
			send_typed(fd, 'E', execute_unnamed, sizeof execute_unnamed);
		else
			send_typed(fd, 'D', describe_unnamed, sizeof describe_unnamed);
		send_typed(fd, 'S', NULL, 0);
		const char *what = v ? "Describe of portal \"\" after the failed Query" : "Execute of portal \"\" after the failed Query";
		/* 34000, or the aborted block's 25P02 when pgring's raise of it is
		 * refused as PostgreSQL refuses everything there */
		const char *code = error_until_ready(fd, what);
		if (strcmp(code, "34000") && strcmp(code, "25P02"))
			fail("%s: error '%s', want 34000 or 25P02", what, code);
		send_query(fd, "ROLLBACK");
		if (error_until_ready(fd, "ROLLBACK")[0])
			fail("ROLLBACK after the unnamed portal failed");
		if (strcmp(query_value(fd, "SELECT 'alive'", "unnamed portal"), "alive"))
			fail("%s: the next query on the same connection", what);
		close(fd);
	}
	pq_expect(canary, "SELECT 'still here'", "still here");
	PQfinish(canary);
	check_alive();
	note("Execute and Describe of a portal a failed Query destroyed: refused, PostgreSQL unharmed");
}

static void sc_u(void)
{
	int fd = login("statement mode pipeline", NULL);
	struct out o = { 0 };
	static const char *const sql[] = { "BEGIN", "SET search_path = nowhere", "COMMIT" };
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(sql[i]) + 1;
		o.b[o.n++] = 'Q';
		set_u32(o.b + o.n, (uint32_t)(n + 4));
		o.n += 4;
		memcpy(o.b + o.n, sql[i], n);
		o.n += n;
	}
	send_all(fd, o.b, o.n);   /* one write: all three reach the server */
	struct msg m;
	int rc;
	bool refused = false;
	while ((rc = read_msg(fd, &m, 5000)) == RD_OK)
		if (m.type == 'E' && !strcmp(err_field(&m, 'C'), "08P01"))
			refused = true;
	if (!refused || rc == RD_TIMEOUT)
		fail("pipelined BEGIN in statement mode: not refused with 08P01 (%s)", rc_name(rc));
	close(fd);
	PGconn *c = pq_connect();
	for (int k = 0; k < 2 * opt_pool_size; k++)
		pq_expect(c, "SHOW search_path", "\"$user\", public");
	PQfinish(c);
	note("the refused client's committed SET stayed with it");
}

/* A client with a small receive buffer that asked for a row near
 * max_packet_size: the row is still streaming through pgring while the
 * scenario acts. */
static int login_big_row(const char *what)
{
	small_rcvbuf = 4096;
	int fd = login(what, NULL);
	small_rcvbuf = 0;
	char big[64];
	snprintf(big, sizeof big, "SELECT repeat('x', %ld)", opt_max_packet - 4096);
	send_query(fd, big);
	return fd;
}

static void sc_v(void)
{
	/* a small receive buffer and a row near max_packet_size: the row is
	 * still streaming through pgring when the invalid message comes */
	int fd = login_big_row("invalid message mid-row");
	uint8_t hdr[5];
	static uint8_t chunk[65536];
	size_t sent_bad_at = 0;
	bool row = false, fatal = false;
	int rc;
	for (;;) {
		if ((rc = read_exact(fd, hdr, 5, 10000)) != RD_OK)
			break;
		uint32_t len = ((uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4]) - 4;
		if (fatal)
			fail("message '%c' after the FATAL", hdr[0]);
		if (hdr[0] == 'E') {
			if (len > sizeof chunk || (rc = read_exact(fd, chunk, len, 5000)) != RD_OK)
				fail("reading the ErrorResponse: %s", rc_name(rc));
			struct msg m = { .type = 'E', .len = len, .body = chunk };
			if (strcmp(err_field(&m, 'S'), "FATAL") || strcmp(err_field(&m, 'C'), "08P01"))
				fail("expected FATAL 08P01, got %s %s %s", err_field(&m, 'S'), err_field(&m, 'C'),
				     err_field(&m, 'M'));
			fatal = true;
			continue;
		}
		size_t got = 0;
		while (got < len) {
			size_t want = len - got < sizeof chunk ? len - got : sizeof chunk;
			if ((rc = read_exact(fd, chunk, want, 10000)) != RD_OK)
				fail("message '%c' of %u bytes cut short after %zu: %s", hdr[0], len, got, rc_name(rc));
			got += want;
			if (hdr[0] == 'D' && !sent_bad_at && got >= 65536) {
				send_typed(fd, 'z', NULL, 0);   /* an invalid type, mid-row */
				sent_bad_at = got;
			}
		}
		row |= hdr[0] == 'D';
	}
	if (rc == RD_TIMEOUT)
		fail("no close after the FATAL");
	if (!row || !fatal)
		fail("the row (%d) and then FATAL 08P01 (%d) expected", row, fatal);
	close(fd);
	note("invalid message after %zu bytes of a %ld-byte row: the row arrived whole, then FATAL 08P01", sent_bad_at,
	     opt_max_packet - 4096);
}

/* A protocol Close of an SQL PREPARE's name pipelined behind the PREPARE:
 * the server prepares, then closes. pgring once applied the Close when it
 * went out and the PREPARE when it completed, so its record kept a statement
 * the server no longer had, and the next client leased that server failed
 * at its restore's DEALLOCATE (protofuzz, seed 920264321). */
static void sc_y(void)
{
	int fd = login("Close behind PREPARE", NULL);
	struct out o = { 0 };
	static const char sql[] = "PREPARE pf_y AS SELECT 1";
	put_typed(&o, 'Q', sql, sizeof sql);
	put_typed(&o, 'C', "Spf_y", 6);
	put_typed(&o, 'S', NULL, 0);
	send_all(fd, o.b, o.n);   /* one write: the Close reaches pgring before the PREPARE completes */
	if (error_until_ready(fd, "PREPARE")[0] || error_until_ready(fd, "Close and Sync")[0])
		fail("PREPARE, then Close of its name: an error");
	send_query(fd, "EXECUTE pf_y");
	const char *code = error_until_ready(fd, "EXECUTE of the closed statement");
	if (strcmp(code, "26000"))
		fail("EXECUTE of a statement the client closed: error '%s', want 26000", code);
	/* a Bind of an SQL PREPARE's name pipelined behind it: bound as the
	 * server would, not refused for a name pgring has no record of yet */
	o.n = 0;
	static const char sql2[] = "PREPARE pf_y2 AS SELECT 7";
	static const uint8_t bind[] = { 0, 'p', 'f', '_', 'y', '2', 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t execute[5] = { 0 };
	put_typed(&o, 'Q', sql2, sizeof sql2);
	put_typed(&o, 'B', bind, sizeof bind);
	put_typed(&o, 'E', execute, sizeof execute);
	put_typed(&o, 'S', NULL, 0);
	send_all(fd, o.b, o.n);
	if (error_until_ready(fd, "PREPARE pf_y2")[0])
		fail("PREPARE pf_y2: an error");
	struct msg m;
	int rc;
	char got[16] = "";
	while ((rc = read_msg(fd, &m, 5000)) == RD_OK && m.type != 'Z') {
		if (m.type == 'E')
			fail("Bind of pf_y2 pipelined behind its PREPARE: %s %s", err_field(&m, 'C'), err_field(&m, 'M'));
		if (m.type == 'D' && m.len >= 7)
			snprintf(got, sizeof got, "%.*s", (int)(m.len - 6), (const char *)m.body + 6);
	}
	if (rc != RD_OK || strcmp(got, "7"))
		fail("Bind of pf_y2 pipelined behind its PREPARE: row '%s' (%s), want 7", got, rc_name(rc));
	/* every server of the pool leased at once: the one the PREPARE ran on
	 * among them, restored for a client that never prepared pf_y */
	PGconn *c[64];
	int n = opt_pool_size < 64 ? opt_pool_size : 64;
	for (int i = 0; i < n; i++) {
		c[i] = pq_connect();
		PGresult *r = PQexec(c[i], "BEGIN");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			fail("BEGIN on client %d of %d after the Close: %s", i + 1, n, PQerrorMessage(c[i]));
		PQclear(r);
	}
	for (int i = 0; i < n; i++) {
		pq_expect(c[i], "SELECT count(*) FROM pg_prepared_statements WHERE name = 'pf_y'", "0");
		PQfinish(c[i]);
	}
	close(fd);
	check_alive();
	note("a Close pipelined behind the PREPARE of its name: the statement gone for the client and the record, "
	     "%d servers leased at once after it", n);
}

/* A client that half-closes (shutdown SHUT_WR) while a large row streams to
 * it can still read: pgring once dropped what it had queued at the FIN, so the
 * row was cut in the middle (protofuzz, half-close endings). Now the row
 * arrives whole, then the close. */
static void sc_F(void)
{
	int fd = login_big_row("half-close mid-row");
	uint8_t hdr[5];
	static uint8_t chunk[65536];
	size_t fin_at = 0;
	bool row = false;
	int rc;
	for (;;) {
		if ((rc = read_exact(fd, hdr, 5, 10000)) != RD_OK)
			break;
		uint32_t len = ((uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4]) - 4;
		size_t got = 0;
		while (got < len) {
			size_t want = len - got < sizeof chunk ? len - got : sizeof chunk;
			if ((rc = read_exact(fd, chunk, want, 10000)) != RD_OK)
				fail("message '%c' of %u bytes cut short after %zu (FIN sent after %zu): %s", hdr[0], len,
				     got, fin_at, rc_name(rc));
			got += want;
			if (hdr[0] == 'D' && !fin_at && got >= 65536) {
				shutdown(fd, SHUT_WR);   /* mid-row */
				fin_at = got;
			}
		}
		row |= hdr[0] == 'D' && fin_at;
	}
	if (rc == RD_TIMEOUT)
		fail("no close after the half-close");
	if (!row)
		fail("the row did not arrive whole (FIN sent after %zu bytes)", fin_at);
	close(fd);
	check_alive();
	note("half-close after %zu bytes of a %ld-byte row: the row arrived whole, then the close", fin_at,
	     opt_max_packet - 4096);
}

static const struct {
	char id;
	const char *name;
	void (*fn)(void);
	int timeout_s;
} scenarios[] = {
	{ 'a', "garbage instead of a startup packet", sc_a, 20 },
	{ 'b', "bad startup packet lengths and layouts", sc_b, 20 },
	{ 'c', "protocol version 2.0", sc_c, 10 },
	{ 'd', "protocol version 3.5", sc_d, 15 },
	{ 'e', "SSLRequest", sc_e, 15 },
	{ 'f', "GSSENCRequest", sc_f, 15 },
	{ 'g', "startup without user", sc_g, 10 },
	{ 'h', "typed message shorter than 4", sc_h, 15 },
	{ 'i', "message longer than max_packet_size", sc_i, 15 },
	{ 'j', "wrong message before/during authentication", sc_j, 20 },
	{ 'k', "client that never reads (back-pressure)", sc_k, 30 },
	{ 'l', "200 clients reset at every stage", sc_l, 30 },
	{ 'm', "CancelRequest with random keys", sc_m, 20 },
	{ 'n', "client killed mid-COPY FROM STDIN", sc_n, 30 },
	{ 'o', "server dies inside the client's transaction", sc_o, 40 },
	{ 'p', "waiting client trickling tiny messages", sc_p, 40 },
	{ 'q', "invalid message type after login", sc_q, 20 },
	{ 'r', "clients trickling their first Query hold no server", sc_r, 30 },
	{ 's', "clients leave mid extended-protocol batch", sc_s, 30 },
	{ 't', "Syncs around COPY FROM STDIN", sc_t, 30 },
	{ 'u', "statement mode: pipelined BEGIN, SET, COMMIT", sc_u, 30 },
	{ 'v', "invalid message while a row streams", sc_v, 60 },
	{ 'w', "requests sent inside a COPY FROM STDIN", sc_w, 40 },
	{ 'x', "the unnamed portal after a failed Query", sc_x, 30 },
	{ 'y', "a Close and a Bind pipelined behind an SQL PREPARE", sc_y, 30 },
	{ 'F', "half-close while a row streams", sc_F, 60 },
	{ 'z', "no server leaked from the pool", sc_z, 20 },
};

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "h:p:U:W:d:P:M:R:S:v")) != -1) {
		switch (opt) {
		case 'h': opt_host = optarg; break;
		case 'p': opt_port = atoi(optarg); break;
		case 'U': opt_user = optarg; break;
		case 'W': opt_pass = optarg; break;
		case 'd': opt_db = optarg; break;
		case 'P': opt_pid = (pid_t)atoi(optarg); break;
		case 'M': opt_max_packet = atol(optarg); break;
		case 'R': opt_rss_bound_mb = atol(optarg); break;
		case 'S': opt_pool_size = atoi(optarg); break;
		case 'v': verbose++; break;
		default:
			fprintf(stderr, "usage: badclient [-h HOST] [-p PORT] [-U USER] [-W PASSWORD] [-d DB] "
					"[-P PGRING_PID] [-M MAX_PACKET] [-R RSS_BOUND_MB] [-S POOL_SIZE] [-v] [SCENARIO]...\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(conninfo, sizeof conninfo,
		 "host=%s port=%d user=%s password=%s dbname=%s connect_timeout=5 sslmode=disable "
		 "gssencmode=disable application_name=badclient",
		 opt_host, opt_port, opt_user, opt_pass, opt_db);

	char want[64] = "";
	for (int i = optind; i < argc; i++)
		strncat(want, argv[i], sizeof want - strlen(want) - 1);

	check_alive();
	int ran = 0;
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
		if (*want ? !strchr(want, scenarios[i].id) : scenarios[i].id == 'u')
			continue;   /* u is for statement pooling: asked for by name */
		static char label[80];
		snprintf(label, sizeof label, "%c: %s", scenarios[i].id, scenarios[i].name);
		cur_scenario = label;
		uint64_t t0 = now_ms();
		alarm((unsigned)scenarios[i].timeout_s);
		scenarios[i].fn();
		check_alive();
		alarm(0);
		printf("ok   %-55s %5llu ms\n", label, (unsigned long long)(now_ms() - t0));
		ran++;
	}
	printf("badclient: %d scenario(s) passed\n", ran);
	return 0;
}
