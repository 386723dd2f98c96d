/* bench/idleconns.c: hold N authenticated, idle client connections to a pooler and
 * measure what they cost it.
 *
 *   idleconns [-h host] [-p port] [-U user] [-W password] [-d db] -n N [-P pooler_pid]
 *             [-t target_name] [-w workers] [-H hold_s] [-Q] [-q probe_queries]
 *             [-c inflight_per_worker] [-T login_timeout_s] [-S settle_s]
 *             [--tls] [--tls-ciphers LIST]
 *
 * Speaks the PostgreSQL protocol itself over raw non-blocking sockets (no libpq per
 * connection): StartupMessage(user, database), answers AuthenticationOk (trust),
 * AuthenticationCleartextPassword, AuthenticationMD5Password or SASL with
 * SCRAM-SHA-256 (no channel binding; the salted password is derived once per
 * salt and iteration count, as a client of many connections would cache it),
 * and reads until ReadyForQuery. Each
 * process may hold at most RLIMIT_NOFILE descriptors (20000 here), so the work is
 * split over W forked workers (default ceil(N/8000)), each with its own epoll loop
 * and at most -c logins in flight (default 256). When the target is in 127.0.0.0/8,
 * every socket is bound to 127.0.0.X (X = 1..250, cycling over the connection
 * number, IP_BIND_ADDRESS_NO_PORT) before connect(), so the 4-tuple space never
 * runs out.
 *
 * The parent measures before forking (0 clients) and again after every worker has
 * finished its logins and the connections have sat idle for -S seconds (default 2):
 *   - the pooler's VmRSS (/proc/PID/status, -P PID)
 *   - kernel TCP socket memory (/proc/net/sockstat "TCP: ... mem N", pages)
 *   - kernel slab (/proc/meminfo Slab)
 * The kernel figures contain BOTH ends of every loopback connection (this tool's
 * sockets and epoll registrations too) and whatever else the machine does meanwhile;
 * they are printed raw and halved (the "_half" fields, a rough estimate of the
 * pooler's side, nothing more).
 *
 * Output, one line (then one "error" line per failure reason with its first message,
 * and the optional probe and close lines):
 *   target=NAME n=N established=E failed=F rss_before_kb=.. rss_after_kb=..
 *   per_conn_bytes=.. sockmem_delta_kb=.. sockmem_half_kb=.. slab_delta_kb=..
 *   slab_half_kb=.. slab_half_per_conn_bytes=.. conns_per_sec=.. login_s=..
 *   errors="53300:12 timeout-login:3" first_error="53300 no more connections ..."
 * conns_per_sec = established / (last ReadyForQuery - first connect()), over all
 * workers. errors counts failures by reason: a SQLSTATE from an ErrorResponse, or
 * socket-E*, bind-E*, connect-E* (errno names), eof-login, reset-login, auth-sasl,
 * auth-codeN, protocol, and timeouts (-T, default 30 s) by how far the login got:
 * timeout-connect (TCP connect pending), timeout-noreply (StartupMessage sent, not a
 * byte back: e.g. waiting un-accepted in the listen backlog), timeout-auth (password
 * sent, no answer), timeout-afterauth (AuthenticationOk seen, no ReadyForQuery).
 *
 * -Q: after the measurement, while the N clients are idle, one extra libpq
 * connection runs `SELECT 1` -q times (default 1000; 20 unmeasured first) and prints
 *   probe target=NAME n=N queries=Q p50_us=.. p90_us=.. p99_us=.. max_us=.. mean_us=..
 * Then the connections are held -H seconds (default 0) and closed; connections the
 * pooler closed while they were idle are reported on the last line:
 *   closed target=NAME n=N dropped_while_idle=D drop_reasons=".."
 *
 * --tls: every connection first sends an SSLRequest, expects 'S' and does a TLS
 * handshake (wolfSSL, non-blocking, no certificate verification: libpq's
 * sslmode=require; it offers what libpq 15 on OpenSSL 3 offers: TLS 1.2-1.3, X25519 key
 * share, TLS 1.3 suites AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM, or --tls-ciphers in
 * wolfSSL's names), then logs in over TLS and stays connected, idle, with its TLS
 * session open. A server answering 'N' fails the connection with reason "ssl-refused".
 * The -Q probe then connects with sslmode=require. The result line gains
 * tls=1 tls_version=.. tls_cipher=.. tls_group=.. (of the first connection to finish).
 * Exit status: 0 if every connection was established, 1 otherwise, 2 on usage error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/md5.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <sys/random.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#include "bench/benchkit.h"

#define PER_WORKER_DEFAULT 8000
#define MAX_WORKERS 64
#define MAX_MSG 1048576

static const char *o_host = "127.0.0.1", *o_port = "6432", *o_user = "app", *o_pass = "app",
		  *o_db = "app", *o_target = "pooler";
static long o_n = 0, o_pid = 0, o_hold = 0, o_queries = 1000;
static int o_workers = 0, o_inflight = 256;
static double o_timeout = 30, o_settle = 2;
static bool o_probe = false, o_tls = false;
static const char *o_tls_ciphers = default_ciphers;
static WOLFSSL_CTX *tls_ctx;   /* per worker (made after fork) */

static struct sockaddr_in dst;
static bool loopback;

static long reasons_total(const struct reasons *rs)
{
	long t = 0;
	for (int i = 0; i < rs->n; i++)
		t += rs->r[i].count;
	return t;
}

/* ---- a worker: its share of the connections, one epoll loop ---- */

enum cstate { C_NEW, C_CONNECTING, C_LOGIN, C_UP, C_FAILED, C_DROPPED, C_SSLREQ, C_HANDSHAKE };

struct conn {
	int fd;
	uint8_t state;
	uint8_t stage;   /* login progress: 0 startup sent, 1 password sent, 2 AuthenticationOk seen */
	uint32_t len, cap;
	char *buf;    /* only while logging in */
	double t0;
	WOLFSSL *ssl; /* --tls */
	char *scram;  /* SCRAM: the client-first-message-bare, while logging in */
};

static struct conn *conns;
static long nconns, first_index;
static int ep;
static long inflight, done, established, up_now;
static double t_first = 0, t_last_up = 0;
static struct reasons fails, drops;
static char tls_info[160] = "";   /* version, cipher, group of the first TLS connection up */

static void conn_close(struct conn *c)
{
	close_conn(&c->ssl, &c->fd);
	free(c->scram);
	c->scram = NULL;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

static void fail(struct conn *c, const char *key, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	format_msg(msg, sizeof msg, fmt, ap);
	va_end(ap);
	reason_add(&fails, key, msg, 1);
	conn_close(c);
	c->state = C_FAILED;
	inflight--;
	done++;
}

static bool send_all(struct conn *c, const void *p, size_t n)
{
	if (c->ssl) {
		int w = wolfSSL_write(c->ssl, p, (int)n);
		if (w == (int)n)
			return true;
		char es[120];
		int e = wolfSSL_get_error(c->ssl, w);
		wolfSSL_ERR_error_string_n((unsigned long)e, es, sizeof es);
		fail(c, "tls-write", "wolfSSL_write: %s (%d)", es, e);
		return false;
	}
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
	if (w == (ssize_t)n)
		return true;
	if (w < 0)
		fail(c, errno == ECONNRESET || errno == EPIPE ? "reset-login" : "send-error",
		     "send: %s", strerror(errno));
	else
		fail(c, "protocol", "short write (%zd of %zu)", w, n);
	return false;
}

/* recv(), or wolfSSL_read() on a TLS connection, with recv()'s conventions: > 0 bytes,
 * 0 at EOF (a close_notify or the peer's FIN), -1 with errno EAGAIN (wolfSSL wants more
 * bytes), ECONNRESET, or EPROTO for any other TLS error (then tls_err says which). */
static char tls_err[160];
static ssize_t conn_recv(struct conn *c, void *b, size_t n)
{
	if (!c->ssl)
		return recv(c->fd, b, n, 0);
	int r = wolfSSL_read(c->ssl, b, (int)n);
	if (r > 0)
		return r;
	int e = wolfSSL_get_error(c->ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E)
		return 0;
	if (e == SOCKET_ERROR_E) {
		errno = ECONNRESET;
		return -1;
	}
	char es[120];
	wolfSSL_ERR_error_string_n((unsigned long)e, es, sizeof es);
	snprintf(tls_err, sizeof tls_err, "%s (%d)", es, e);
	errno = EPROTO;
	return -1;
}

static void send_startup(struct conn *c)
{
	char m[512];
	const char *kv[] = { "user", o_user, "database", o_db };
	size_t o = pg_startup_message(m, sizeof m, kv, 4);
	if (!o) {
		fail(c, "protocol", "startup message too long");
		return;
	}
	if (!send_all(c, m, o))
		return;
	c->state = C_LOGIN;
	c->cap = 8192;
	c->len = 0;
	c->buf = malloc(c->cap);
	if (!c->buf) {
		fail(c, "client-nomem", NULL);
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)(c - conns) };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void hex(const unsigned char *d, int n, char *out)
{
	static const char x[] = "0123456789abcdef";
	for (int i = 0; i < n; i++) {
		out[2 * i] = x[d[i] >> 4];
		out[2 * i + 1] = x[d[i] & 15];
	}
	out[2 * n] = 0;
}

static void md5hex(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	unsigned char d[WC_MD5_DIGEST_SIZE];
	wc_Md5 m;
	wc_InitMd5(&m);
	wc_Md5Update(&m, a, (word32)alen);
	wc_Md5Update(&m, b, (word32)blen);
	wc_Md5Final(&m, d);
	wc_Md5Free(&m);
	hex(d, 16, out);
}

static void send_password(struct conn *c, const char *pw)
{
	char m[1024];
	size_t l = strlen(pw) + 1;
	if (l + 5 > sizeof m) {
		fail(c, "protocol", "password too long");
		return;
	}
	m[0] = 'p';
	put32(m + 1, (uint32_t)(4 + l));
	memcpy(m + 5, pw, l);
	send_all(c, m, 5 + l);
}

/* ---- SCRAM-SHA-256 (RFC 5802/7677), client side, no channel binding ---- */

/* a SASL message ('p') of n bytes */
static void send_sasl(struct conn *c, const char *mech, const char *data, size_t n)
{
	char m[1024];
	size_t l = mech ? strlen(mech) + 1 + 4 + n : n;
	if (l + 5 > sizeof m) {
		fail(c, "protocol", "SASL message too long");
		return;
	}
	m[0] = 'p';
	put32(m + 1, (uint32_t)(4 + l));
	char *o = m + 5;
	if (mech) {
		strcpy(o, mech);
		o += strlen(mech) + 1;
		put32(o, (uint32_t)n);
		o += 4;
	}
	memcpy(o, data, n);
	send_all(c, m, 5 + l);
}

static void scram_first(struct conn *c)
{
	uint8_t raw[18];
	char nonce[32], first[96];
	word32 nl = sizeof nonce;
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw || Base64_Encode_NoNl(raw, sizeof raw, (byte *)nonce, &nl)) {
		fail(c, "client-nonce", NULL);
		return;
	}
	nonce[nl] = 0;
	snprintf(first, sizeof first, "n=,r=%s", nonce);
	if (!(c->scram = strdup(first))) {
		fail(c, "client-nomem", NULL);
		return;
	}
	char msg[128];
	int n = snprintf(msg, sizeof msg, "n,,%s", first);
	send_sasl(c, "SCRAM-SHA-256", msg, (size_t)n);
}

static const char *scram_attr(const char *msg, char key, char *out, size_t cap)
{
	for (const char *p = msg; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (p[0] == key && p[1] == '=') {
			size_t n = strcspn(p + 2, ",");
			if (n >= cap)
				return NULL;
			memcpy(out, p + 2, n);
			out[n] = 0;
			return out;
		}
	return NULL;
}

static void scram_final(struct conn *c, const char *server_first, size_t n)
{
	static char cached_for[160];            /* "salt:iterations" the cache holds */
	static uint8_t salted[WC_SHA256_DIGEST_SIZE];
	char sf[512], r[256], s64[128], it[16], key_for[160];
	if (!c->scram || n >= sizeof sf) {
		fail(c, "protocol", "unexpected SASLContinue");
		return;
	}
	memcpy(sf, server_first, n);
	sf[n] = 0;
	const char *mine = strstr(c->scram, "r=") + 2;
	if (!scram_attr(sf, 'r', r, sizeof r) || !scram_attr(sf, 's', s64, sizeof s64) ||
	    !scram_attr(sf, 'i', it, sizeof it) || strncmp(r, mine, strlen(mine))) {
		fail(c, "protocol", "bad SCRAM server-first-message");
		return;
	}
	snprintf(key_for, sizeof key_for, "%s:%s", s64, it);
	if (strcmp(key_for, cached_for)) {
		byte salt[96];
		word32 sl = sizeof salt;
		if (Base64_Decode((const byte *)s64, (word32)strlen(s64), salt, &sl) ||
		    wc_PBKDF2(salted, (const byte *)o_pass, (int)strlen(o_pass), salt, (int)sl, atoi(it),
			      WC_SHA256_DIGEST_SIZE, WC_SHA256)) {
			fail(c, "client-scram", "PBKDF2 failed");
			return;
		}
		snprintf(cached_for, sizeof cached_for, "%s", key_for);
	}
	char without_proof[300], auth[1100];
	snprintf(without_proof, sizeof without_proof, "c=biws,r=%s", r);
	int al = snprintf(auth, sizeof auth, "%s,%s,%s", c->scram, sf, without_proof);
	byte client_key[WC_SHA256_DIGEST_SIZE], stored[WC_SHA256_DIGEST_SIZE], sig[WC_SHA256_DIGEST_SIZE];
	Hmac h;
	if (wc_HmacSetKey(&h, WC_SHA256, salted, sizeof salted) || wc_HmacUpdate(&h, (const byte *)"Client Key", 10) ||
	    wc_HmacFinal(&h, client_key) || wc_Sha256Hash(client_key, sizeof client_key, stored) ||
	    wc_HmacSetKey(&h, WC_SHA256, stored, sizeof stored) || wc_HmacUpdate(&h, (const byte *)auth, (word32)al) ||
	    wc_HmacFinal(&h, sig)) {
		fail(c, "client-scram", "HMAC failed");
		return;
	}
	for (size_t i = 0; i < sizeof sig; i++)
		client_key[i] ^= sig[i];
	char proof[64], final_msg[400];
	word32 pl = sizeof proof;
	if (Base64_Encode_NoNl(client_key, sizeof client_key, (byte *)proof, &pl)) {
		fail(c, "client-scram", "base64 failed");
		return;
	}
	proof[pl] = 0;
	int fl = snprintf(final_msg, sizeof final_msg, "%s,p=%s", without_proof, proof);
	send_sasl(c, NULL, final_msg, (size_t)fl);
}

static void became_up(struct conn *c)
{
	free(c->scram);
	c->scram = NULL;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
	c->state = C_UP;
	inflight--;
	done++;
	established++;
	up_now++;
	t_last_up = now();
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)(c - conns) };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* one whole message from the server during login; returns false when c is finished */
static bool login_message(struct conn *c, char type, const char *body, uint32_t blen)
{
	switch (type) {
	case 'R': {
		if (blen < 4) {
			fail(c, "protocol", "short Authentication message");
			return false;
		}
		uint32_t code = get32(body);
		if (code == 0) {
			c->stage = 2;
			return true;
		}
		c->stage = 1;
		if (code == 3) {
			send_password(c, o_pass);
			return c->state == C_LOGIN;
		}
		if (code == 5 && blen >= 8) {
			char inner[33], outer[36];
			char *up = malloc(strlen(o_pass) + strlen(o_user) + 1);
			if (!up) {
				fail(c, "client-nomem", NULL);
				return false;
			}
			strcpy(up, o_pass);
			strcat(up, o_user);
			md5hex(up, strlen(up), "", 0, inner);
			free(up);
			memcpy(outer, "md5", 3);
			md5hex(inner, 32, body + 4, 4, outer + 3);
			send_password(c, outer);
			return c->state == C_LOGIN;
		}
		if (code == 10) {   /* SASL: the mechanisms follow; SCRAM-SHA-256 is always among them */
			scram_first(c);
			return c->state == C_LOGIN;
		}
		if (code == 11) {
			scram_final(c, body + 4, blen - 4);
			return c->state == C_LOGIN;
		}
		if (code == 12)
			return true;   /* SASLFinal: the server's signature, not checked by a benchmark */
		char key[32];
		snprintf(key, sizeof key, "auth-code%u", code);
		fail(c, key, "unsupported authentication request %u", code);
		return false;
	}
	case 'E': {
		char code[8], msg[200];
		pg_error_fields(body, blen, code, msg, sizeof msg);
		fail(c, code, "%s", msg);
		return false;
	}
	case 'Z':
		became_up(c);
		return false;
	default:   /* ParameterStatus, BackendKeyData, NoticeResponse, ... */
		return true;
	}
}

static void on_login_readable(struct conn *c)
{
	for (;;) {
		if (c->len == c->cap) {
			uint32_t ncap = c->cap * 2;
			char *nb = ncap <= 2 * MAX_MSG ? realloc(c->buf, ncap) : NULL;
			if (!nb) {
				fail(c, "protocol", "login response too large");
				return;
			}
			c->buf = nb;
			c->cap = ncap;
		}
		ssize_t r = conn_recv(c, c->buf + c->len, c->cap - c->len);
		if (r == 0) {
			fail(c, "eof-login", "server closed the connection during login");
			return;
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			if (errno == EPROTO && c->ssl) {
				fail(c, "tls-error-login", "wolfSSL_read: %s", tls_err);
				return;
			}
			fail(c, errno == ECONNRESET ? "reset-login" : "recv-error", "recv: %s", strerror(errno));
			return;
		}
		c->len += (uint32_t)r;
		uint32_t off = 0;
		while (c->len - off >= 5) {
			char type = c->buf[off];
			uint32_t ml = get32(c->buf + off + 1);
			if (ml < 4 || ml > MAX_MSG) {
				fail(c, "protocol", "bad message length %u (type %c)", ml, type);
				return;
			}
			if (c->len - off < 1 + ml)
				break;
			if (!login_message(c, type, c->buf + off + 5, ml - 4))
				return;
			off += 1 + ml;
		}
		if (off) {
			memmove(c->buf, c->buf + off, c->len - off);
			c->len -= off;
		}
	}
}

/* An established, idle connection became readable: the pooler said something
 * (usually an ErrorResponse before closing) or closed it. */
static void on_up_readable(struct conn *c)
{
	char b[4096];
	char key[48] = "", msg[200] = "";
	for (;;) {
		ssize_t r = conn_recv(c, b, sizeof b);
		if (r > 0) {
			if (b[0] == 'E' && r > 5 && !key[0]) {
				char code[8];
				pg_error_fields(b + 5, (uint32_t)r - 5, code, msg, sizeof msg);
				snprintf(key, sizeof key, "%s", code);
			}
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;   /* still open: unsolicited data only */
		if (r < 0 && errno == EINTR)
			continue;
		if (!key[0])
			snprintf(key, sizeof key, r == 0 ? "eof-idle" : errno == EPROTO && c->ssl ? "tls-error-idle" : "reset-idle");
		reason_add(&drops, key, msg, 1);
		conn_close(c);
		c->state = C_DROPPED;
		up_now--;
		return;
	}
}

/* --tls: SSLRequest, 'S', the handshake, then the StartupMessage over TLS */
static void tls_handshake_step(struct conn *c)
{
	int r = wolfSSL_connect(c->ssl);
	if (r == WOLFSSL_SUCCESS) {
		if (!tls_info[0]) {
			const char *g = wolfSSL_get_curve_name(c->ssl);
			snprintf(tls_info, sizeof tls_info, "tls_version=%s tls_cipher=%s tls_group=%s",
				 wolfSSL_get_version(c->ssl), wolfSSL_get_cipher_name(c->ssl), g ? g : "?");
		}
		send_startup(c);
		return;
	}
	int e = wolfSSL_get_error(c->ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
		struct epoll_event ev = { .events = e == WOLFSSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT,
					  .data.u64 = (uint64_t)(c - conns) };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	char es[120];
	wolfSSL_ERR_error_string_n((unsigned long)e, es, sizeof es);
	fail(c, "tls-handshake", "wolfSSL_connect: %s (%d)", es, e);
}

static void on_sslrequest_reply(struct conn *c)
{
	char b;
	ssize_t r = recv(c->fd, &b, 1, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		fail(c, r == 0 ? "eof-sslrequest" : "reset-sslrequest", "no reply to SSLRequest: %s",
		     r == 0 ? "EOF" : strerror(errno));
		return;
	}
	if (b == 'N') {
		fail(c, "ssl-refused", "the server answered 'N' to SSLRequest (no TLS)");
		return;
	}
	if (b != 'S') {
		fail(c, "protocol", "unexpected reply 0x%02x to SSLRequest", (unsigned char)b);
		return;
	}
	c->ssl = wolfSSL_new(tls_ctx);
	if (!c->ssl) {
		fail(c, "client-nomem", "wolfSSL_new failed");
		return;
	}
	wolfSSL_set_fd(c->ssl, c->fd);
	c->state = C_HANDSHAKE;
	tls_handshake_step(c);
}

static void send_sslrequest(struct conn *c)
{
	ssize_t w = send(c->fd, pg_sslrequest, 8, MSG_NOSIGNAL);
	if (w != 8) {
		fail(c, "send-error", "send SSLRequest: %s", w < 0 ? strerror(errno) : "short write");
		return;
	}
	c->state = C_SSLREQ;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)(c - conns) };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_connected(struct conn *c)
{
	int err = connect_result(c->fd);
	if (err) {
		char key[48], msg[200];
		errno_reason("connect", err, key, msg);
		fail(c, key, "%s", msg);
		return;
	}
	if (o_tls)
		send_sslrequest(c);
	else
		send_startup(c);
}

static void start_conn(long i)
{
	struct conn *c = &conns[i];
	c->t0 = now();
	if (!t_first)
		t_first = c->t0;
	inflight++;
	char key[48], msg[200];
	c->fd = client_socket(loopback, (unsigned long)(first_index + i), key, msg);
	if (c->fd < 0) {
		fail(c, key, "%s", msg);
		return;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)i };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		fail(c, "epoll-error", "epoll_ctl: %s", strerror(errno));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) == 0) {
		if (o_tls)
			send_sslrequest(c);
		else
			send_startup(c);
		return;
	}
	if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		return;
	}
	errno_reason("connect", errno, key, msg);
	fail(c, key, "%s", msg);
}

static void check_timeouts(long lo, long hi)
{
	double t = now();
	for (long i = lo; i < hi; i++) {
		struct conn *c = &conns[i];
		if (c->state == C_CONNECTING && t - c->t0 > o_timeout)
			fail(c, "timeout-connect", "TCP connect did not complete within %.0f s", o_timeout);
		else if (c->state == C_SSLREQ && t - c->t0 > o_timeout)
			fail(c, "timeout-sslrequest", "no reply to SSLRequest within %.0f s", o_timeout);
		else if (c->state == C_HANDSHAKE && t - c->t0 > o_timeout)
			fail(c, "timeout-tls", "TLS handshake did not complete within %.0f s", o_timeout);
		else if (c->state == C_LOGIN && t - c->t0 > o_timeout && c->stage == 0)
			fail(c, "timeout-noreply", "no reply at all to the StartupMessage within %.0f s", o_timeout);
		else if (c->state == C_LOGIN && t - c->t0 > o_timeout && c->stage == 1)
			fail(c, "timeout-auth", "password sent, no AuthenticationOk or error within %.0f s", o_timeout);
		else if (c->state == C_LOGIN && t - c->t0 > o_timeout)
			fail(c, "timeout-afterauth", "AuthenticationOk received, no ReadyForQuery within %.0f s", o_timeout);
	}
}

static void dispatch(struct epoll_event *e)
{
	struct conn *c = &conns[e->data.u64];
	switch (c->state) {
	case C_CONNECTING: on_connected(c); break;
	case C_LOGIN: on_login_readable(c); break;
	case C_UP: on_up_readable(c); break;
	case C_SSLREQ: on_sslrequest_reply(c); break;
	case C_HANDSHAKE: tls_handshake_step(c); break;
	default: break;
	}
}

static void report_reasons(FILE *f, char tag, const struct reasons *rs)
{
	for (int i = 0; i < rs->n; i++)
		fprintf(f, "%c %s %ld %s\n", tag, rs->r[i].key, rs->r[i].count, rs->r[i].msg);
}

static void worker(long first, long count, int cmd_fd, int rep_fd)
{
	FILE *rep = fdopen(rep_fd, "w");
	first_index = first;
	nconns = count;
	conns = calloc((size_t)(count ? count : 1), sizeof *conns);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0 || !rep)
		_exit(3);
	for (long i = 0; i < count; i++)
		conns[i].fd = -1;
	if (o_tls) {
		wolfSSL_Init();
		char err[2048];
		tls_ctx = tls_client_ctx(0, o_tls_ciphers, "X25519:P-256:P-384", err, sizeof err);
		if (!tls_ctx && !err[0])
			_exit(3);
		if (!tls_ctx) {
			fprintf(rep, "U 0 %ld 0 0\nF tls-setup %ld wolfSSL refused the cipher list or groups\nEND\n", count, count);
			fflush(rep);
			_exit(3);
		}
	}
	char go;
	if (read(cmd_fd, &go, 1) != 1)
		_exit(0);

	struct epoll_event evs[1024];
	long next = 0, lo = 0;
	double last_scan = now();
	while (done < count) {
		while (inflight < o_inflight && next < count)
			start_conn(next++);
		int n = epoll_wait(ep, evs, 1024, 50);
		for (int k = 0; k < n; k++)
			dispatch(&evs[k]);
		if (now() - last_scan > 0.1) {
			while (lo < next && conns[lo].state != C_CONNECTING && conns[lo].state != C_LOGIN &&
			       conns[lo].state != C_SSLREQ && conns[lo].state != C_HANDSHAKE)
				lo++;
			check_timeouts(lo, next);
			last_scan = now();
		}
	}
	fprintf(rep, "U %ld %ld %.9f %.9f\n", established, reasons_total(&fails), t_first, t_last_up);
	if (tls_info[0])
		fprintf(rep, "I %s\n", tls_info);
	report_reasons(rep, 'F', &fails);
	fprintf(rep, "END\n");
	fflush(rep);

	/* hold: watch for connections the pooler closes, until told to quit */
	struct epoll_event ce = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
	epoll_ctl(ep, EPOLL_CTL_ADD, cmd_fd, &ce);
	bool quit = false;
	while (!quit) {
		int n = epoll_wait(ep, evs, 1024, -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int k = 0; k < n; k++) {
			if (evs[k].data.u64 == UINT64_MAX)
				quit = true;
			else
				dispatch(&evs[k]);
		}
	}
	fprintf(rep, "D %ld\n", reasons_total(&drops));
	report_reasons(rep, 'X', &drops);
	fprintf(rep, "END\n");
	fflush(rep);
	for (long i = 0; i < count; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	_exit(0);
}

/* ---- the parent: measurements ---- */

static long read_kv_kb(const char *file, const char *key)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return -1;
	char line[512];
	long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static long pooler_rss_kb(void)
{
	if (o_pid <= 0)
		return -1;
	char p[64];
	snprintf(p, sizeof p, "/proc/%ld/status", o_pid);
	return read_kv_kb(p, "VmRSS");
}

/* /proc/net/sockstat "TCP: inuse 5 orphan 0 tw 0 alloc 7 mem 3" (mem in pages) */
static long sockmem_kb(void)
{
	FILE *f = fopen("/proc/net/sockstat", "r");
	if (!f)
		return -1;
	char line[512];
	long v = -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "TCP:", 4) != 0)
			continue;
		char *m = strstr(line, " mem ");
		if (m)
			v = strtol(m + 5, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
	}
	fclose(f);
	return v;
}

static void probe(void)
{
	const char *kw[] = { "host", "port", "user", "password", "dbname", "sslmode",
			     "application_name", "connect_timeout", NULL };
	const char *val[] = { o_host, o_port, o_user, o_pass, o_db, o_tls ? "require" : "disable", "idleconns-probe", "10", NULL };
	PGconn *pc = PQconnectdbParams(kw, val, 0);
	if (PQstatus(pc) != CONNECTION_OK) {
		char m[256];
		snprintf(m, sizeof m, "%s", PQerrorMessage(pc));
		for (char *p = m; *p; p++)
			if (*p == '\n' || *p == '"')
				*p = ' ';
		printf("probe target=%s n=%ld error=\"%s\"\n", o_target, o_n, m);
		fflush(stdout);
		PQfinish(pc);
		return;
	}
	double *lat = calloc((size_t)o_queries, sizeof *lat);
	long ok = 0;
	char err[256] = "";
	for (long i = -20; i < o_queries; i++) {
		double t0 = now();
		PGresult *r = PQexec(pc, "SELECT 1");
		double dt = now() - t0;
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			if (!err[0])
				snprintf(err, sizeof err, "%s", PQerrorMessage(pc));
		} else if (i >= 0) {
			lat[ok++] = dt * 1e6;
		}
		PQclear(r);
	}
	PQfinish(pc);
	if (!ok) {
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '"')
				*p = ' ';
		printf("probe target=%s n=%ld error=\"%s\"\n", o_target, o_n, err);
		fflush(stdout);
		free(lat);
		return;
	}
	qsort(lat, (size_t)ok, sizeof *lat, cmp_double);
	double sum = 0;
	for (long i = 0; i < ok; i++)
		sum += lat[i];
#define PCT(p) lat[(long)ceil((p) * ok) - 1 < 0 ? 0 : (long)ceil((p) * ok) - 1]
	printf("probe target=%s n=%ld queries=%ld failed=%ld p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.0f\n",
	       o_target, o_n, ok, o_queries - ok, PCT(0.50), PCT(0.90), PCT(0.99), lat[ok - 1], sum / ok);
	fflush(stdout);
	free(lat);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: idleconns [-h host] [-p port] [-U user] [-W password] [-d db] -n N [-P pooler_pid]\n"
		"                 [-t target_name] [-w workers] [-H hold_s] [-Q] [-q probe_queries]\n"
		"                 [-c inflight_per_worker] [-T login_timeout_s] [-S settle_s]\n"
		"                 [--tls] [--tls-ciphers LIST]\n");
	exit(2);
}

struct wk {
	pid_t pid;
	int cmd, rep;
	FILE *in;
	long first, count;
};

/* read one report block (until END) from a worker */
static void read_block(struct wk *w, long *est, long *failed, double *t0, double *t1, long *dropped,
		       struct reasons *fr, struct reasons *dr)
{
	char line[512];
	while (fgets(line, sizeof line, w->in)) {
		line[strcspn(line, "\n")] = 0;
		if (strcmp(line, "END") == 0)
			return;
		if (line[0] == 'U') {
			long e, f;
			double a, b;
			if (sscanf(line + 2, "%ld %ld %lf %lf", &e, &f, &a, &b) == 4) {
				*est += e;
				*failed += f;
				if (a > 0 && (*t0 == 0 || a < *t0))
					*t0 = a;
				if (b > *t1)
					*t1 = b;
			}
		} else if (line[0] == 'I') {
			if (!tls_info[0])
				snprintf(tls_info, sizeof tls_info, "%.159s", line + 2);
		} else if (line[0] == 'D') {
			*dropped += strtol(line + 2, NULL, 10);
		} else if (line[0] == 'F' || line[0] == 'X') {
			char key[48];
			long cnt;
			int off = 0;
			if (sscanf(line + 2, "%47s %ld %n", key, &cnt, &off) >= 2)
				reason_add(line[0] == 'F' ? fr : dr, key, off ? line + 2 + off : "", cnt);
		}
	}
	/* worker died */
	reason_add(fr, "worker-died", "a worker process exited early", 1);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tls", no_argument, NULL, 1 },
		{ "tls-ciphers", required_argument, NULL, 2 },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "h:p:U:W:d:n:P:t:w:H:Qq:c:T:S:", lo, NULL)) != -1) {
		switch (opt) {
		case 'h': o_host = optarg; break;
		case 'p': o_port = optarg; break;
		case 'U': o_user = optarg; break;
		case 'W': o_pass = optarg; break;
		case 'd': o_db = optarg; break;
		case 'n': o_n = atol(optarg); break;
		case 'P': o_pid = atol(optarg); break;
		case 't': o_target = optarg; break;
		case 'w': o_workers = atoi(optarg); break;
		case 'H': o_hold = atol(optarg); break;
		case 'Q': o_probe = true; break;
		case 'q': o_queries = atol(optarg); break;
		case 'c': o_inflight = atoi(optarg); break;
		case 'T': o_timeout = atof(optarg); break;
		case 'S': o_settle = atof(optarg); break;
		case 1: o_tls = true; break;
		case 2: o_tls_ciphers = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || o_n < 0 || o_inflight < 1 || o_queries < 1)
		usage();

	if (resolve_target("idleconns", o_host, o_port, &dst, &loopback))
		return 2;

	int nw = o_workers > 0 ? o_workers : (int)((o_n + PER_WORKER_DEFAULT - 1) / PER_WORKER_DEFAULT);
	if (nw > o_n)
		nw = (int)o_n;
	if (nw > MAX_WORKERS)
		nw = MAX_WORKERS;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (nw > 0 && (rlim_t)((o_n + nw - 1) / nw + 32) > rl.rlim_cur)
			fprintf(stderr, "idleconns: warning: %ld connections per worker exceed the descriptor limit %llu; use more -w\n",
				(o_n + nw - 1) / nw, (unsigned long long)rl.rlim_cur);
	}
	signal(SIGPIPE, SIG_IGN);

	long rss0 = pooler_rss_kb(), sock0 = sockmem_kb(), slab0 = read_kv_kb("/proc/meminfo", "Slab");
	if (o_pid > 0 && rss0 < 0)
		fprintf(stderr, "idleconns: cannot read /proc/%ld/status\n", o_pid);

	struct wk *w = calloc((size_t)(nw ? nw : 1), sizeof *w);
	long first = 0;
	for (int i = 0; i < nw; i++) {
		long share = o_n / nw + (i < o_n % nw);
		int cp[2], rp[2];
		if (pipe2(cp, O_CLOEXEC) || pipe2(rp, O_CLOEXEC)) {
			perror("idleconns: pipe");
			return 3;
		}
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("idleconns: fork");
			return 3;
		}
		if (pid == 0) {
			close(cp[1]);
			close(rp[0]);
			for (int j = 0; j < i; j++) {
				close(w[j].cmd);
				fclose(w[j].in);
			}
			worker(first, share, cp[0], rp[1]);
		}
		close(cp[0]);
		close(rp[1]);
		w[i] = (struct wk){ .pid = pid, .cmd = cp[1], .rep = rp[0], .first = first, .count = share };
		w[i].in = fdopen(rp[0], "r");
		first += share;
	}

	for (int i = 0; i < nw; i++)
		if (write(w[i].cmd, "g", 1) != 1)
			perror("idleconns: write");

	long est = 0, failed = 0, dropped = 0;
	double t0 = 0, t1 = 0;
	struct reasons fr = { .n = 0 }, dr = { .n = 0 };
	for (int i = 0; i < nw; i++)
		read_block(&w[i], &est, &failed, &t0, &t1, &dropped, &fr, &dr);
	failed = o_n - est;   /* whatever did not reach ReadyForQuery */

	sleep_s(o_settle);
	long rss1 = pooler_rss_kb(), sock1 = sockmem_kb(), slab1 = read_kv_kb("/proc/meminfo", "Slab");

	char errs[2048], first_err[300];
	reasons_format(&fr, errs, sizeof errs);
	reasons_first(&fr, first_err, sizeof first_err);
	double secs = t1 > t0 ? t1 - t0 : 0;
	char rssb[32] = "na", rssa[32] = "na", per[32] = "na", sd[32] = "na", sh[32] = "na", sl[32] = "na",
	     slh[32] = "na", slhp[32] = "na", cps[32] = "na";
	if (rss0 >= 0)
		snprintf(rssb, sizeof rssb, "%ld", rss0);
	if (rss1 >= 0)
		snprintf(rssa, sizeof rssa, "%ld", rss1);
	if (rss0 >= 0 && rss1 >= 0 && est > 0)
		snprintf(per, sizeof per, "%.0f", (rss1 - rss0) * 1024.0 / est);
	if (sock0 >= 0 && sock1 >= 0) {
		snprintf(sd, sizeof sd, "%ld", sock1 - sock0);
		snprintf(sh, sizeof sh, "%.0f", (sock1 - sock0) / 2.0);
	}
	if (slab0 >= 0 && slab1 >= 0) {
		snprintf(sl, sizeof sl, "%ld", slab1 - slab0);
		snprintf(slh, sizeof slh, "%.0f", (slab1 - slab0) / 2.0);
		if (est > 0)
			snprintf(slhp, sizeof slhp, "%.0f", (slab1 - slab0) * 1024.0 / 2.0 / est);
	}
	if (secs > 0)
		snprintf(cps, sizeof cps, "%.0f", est / secs);
	printf("target=%s n=%ld established=%ld failed=%ld rss_before_kb=%s rss_after_kb=%s per_conn_bytes=%s "
	       "sockmem_delta_kb=%s sockmem_half_kb=%s slab_delta_kb=%s slab_half_kb=%s slab_half_per_conn_bytes=%s "
	       "conns_per_sec=%s login_s=%.3f workers=%d errors=\"%s\" first_error=\"%s\"%s%s\n",
	       o_target, o_n, est, failed, rssb, rssa, per, sd, sh, sl, slh, slhp, cps, secs, nw, errs, first_err,
	       o_tls ? " tls=1 " : "", o_tls ? (tls_info[0] ? tls_info : "tls_version=?") : "");
	for (int i = 0; i < fr.n; i++)
		printf("error target=%s n=%ld reason=%s count=%ld message=\"%s\"\n", o_target, o_n, fr.r[i].key,
		       fr.r[i].count, fr.r[i].msg);
	fflush(stdout);

	if (o_probe)
		probe();
	if (o_hold > 0)
		sleep_s((double)o_hold);

	for (int i = 0; i < nw; i++)
		if (write(w[i].cmd, "q", 1) != 1)
			perror("idleconns: write");
	long e2 = 0, f2 = 0;
	double a2 = 0, b2 = 0;
	for (int i = 0; i < nw; i++) {
		read_block(&w[i], &e2, &f2, &a2, &b2, &dropped, &fr, &dr);
		fclose(w[i].in);
		close(w[i].cmd);
		waitpid(w[i].pid, NULL, 0);
	}
	char drs[2048];
	reasons_format(&dr, drs, sizeof drs);
	printf("closed target=%s n=%ld dropped_while_idle=%ld drop_reasons=\"%s\"\n", o_target, o_n, dropped, drs);
	fflush(stdout);
	return est == o_n ? 0 : 1;
}
