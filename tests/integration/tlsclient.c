/* tests/integration/tlsclient.c: a small wolfSSL PostgreSQL client for the TLS tests
 * and benchmarks, speaking the protocol itself (no libpq), so that it can do what
 * libpq 15 cannot: PostgreSQL 17's direct TLS, injecting plaintext after SSLRequest,
 * and session resumption.
 *
 *   tlsclient MODE [options] HOST PORT
 *
 * Modes:
 *   direct  TLS at once, without SSLRequest (PostgreSQL 17's direct TLS; sends ALPN
 *           "postgresql" and, as libpq 17, requires the server to select it), then log
 *           in, run the SQL and print the rows.
 *   query   SSLRequest, 'S', TLS, then the same as direct (the classic way: works
 *           against any TLS server, e.g. PostgreSQL 15). 'N' is an error.
 *   inject  SSLRequest and, in the same write, a plaintext StartupMessage; read the
 *           reply and report what the server did with the injected bytes. It must not
 *           answer them (CVE-2021-23214): it should send an ErrorResponse (PostgreSQL:
 *           08P01 "received unencrypted data after SSL request") or close.
 *   resume  -n connections (SSLRequest, or direct TLS with --direct), each offering the
 *           session of the one before (wolfSSL_get1_session / wolfSSL_set_session);
 *           logs in and runs the SQL on each (so TLS 1.3 tickets are read) unless
 *           --handshake-only. Prints "resumed: yes|no" per reconnection and a summary.
 *   noread  a slow reader: SSLRequest (or direct TLS with --direct), TLS, log in, send
 *           the query (make it a huge result), print "query sent", then read nothing
 *           until SIGUSR1 (or -t runs out: exit 1), the socket open and its default
 *           receive buffer (back-pressure must reach the server). Then it prints
 *           "unread: N bytes" (what waits in the socket: FIONREAD) and "peer: open" (or
 *           "closed" if the server has sent FIN), reads the first --rows DataRows
 *           (default 1000) checking that the result is well formed (RowDescription,
 *           then DataRows of one field), prints "read: N rows ok" and waits for another
 *           SIGUSR1 (exit 0, closing mid-result without Terminate) or to be killed.
 *
 * Options:
 *   -U USER  -d DB          the StartupMessage (default app / app)
 *   -W PASSWORD             for cleartext and md5 authentication (SCRAM is not spoken)
 *   -c SQL                  the query (default "select 1")
 *   --ca FILE               verify the server's certificate chain against FILE
 *                           (default: no verification, as sslmode=require)
 *   --verify-name NAME      also require the certificate to be for NAME (needs --ca)
 *   --sni NAME              send SNI NAME
 *   --cert FILE --key FILE  a client certificate
 *   --no-alpn               send no ALPN (direct mode then only reports the result)
 *   --alpn PROTO            send PROTO instead of "postgresql"
 *   --tls12 | --tls13       only this TLS version (default: the highest both support)
 *   --gss-first             query and resume modes: send GSSENCRequest first (as libpq
 *                           does with gssencmode=prefer and a Kerberos ticket); it must
 *                           be answered 'N', then SSLRequest follows on the same socket
 *   --direct                resume and noread modes: direct TLS instead of SSLRequest
 *   --rows N                noread mode: DataRows to read after SIGUSR1 (default 1000)
 *   --handshake-only        resume mode: no login, only handshakes
 *   -n N                    resume mode: N connections (default 2)
 *   -t SECONDS              give up after SECONDS in all (default 30)
 *
 * Output: result rows on stdout, fields joined by '|' (NULL as empty), as psql -At.
 * A line per TLS handshake on stderr: "tls: TLSv1.3 TLS_AES_128_GCM_SHA256
 * alpn=postgresql resumed=no peer=/O=.../CN=localhost". Failures, on stdout, one line:
 *   ERROR <SQLSTATE> <message>         an ErrorResponse from the server
 *   ERROR none <what happened>         anything else (refused, closed, handshake, 'N')
 * inject mode prints "reply: S|N|E|closed" then "result: <what>" with <what>:
 *   closed [after TLS alert ...] | error <SQLSTATE> <message>   (refused: exit 0)
 *   ANSWERED ...                        (the injected startup was answered: exit 1)
 *   ignored ... | not-tls ... | unexpected ...                  (exit 3)
 * Exit: 0 ok, 1 failed (server error, refused, closed, handshake failure),
 *       2 usage or local trouble, 3 inject: neither refused nor answered. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/md5.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ALPN_POSTGRESQL "postgresql"
#define SSL_REQUEST_CODE 80877103u /* 1234 << 16 | 5679 */
#define GSSENC_REQUEST_CODE 80877104u /* 1234 << 16 | 5680 */
#define PROTOCOL_3_0 196608u
#define MAX_MESSAGE (64u << 20)

static const char *usage_text =
	"usage: tlsclient direct|query|inject|resume|noread [options] HOST PORT\n"
	"  -U USER -d DB -W PASSWORD -c SQL    login and query (default app, app, none, \"select 1\")\n"
	"  --ca FILE [--verify-name NAME]     verify the server certificate (and its name)\n"
	"  --sni NAME  --cert FILE --key FILE  SNI, client certificate\n"
	"  --no-alpn | --alpn PROTO            ALPN (default \"postgresql\")\n"
	"  --tls12 | --tls13                   pin the TLS version\n"
	"  --gss-first                         GSSENCRequest (must get N) before SSLRequest\n"
	"  resume: --direct --handshake-only -n N\n"
	"  noread: --direct --rows N           hold until SIGUSR1, then read N rows\n"
	"  -t SECONDS                          overall timeout (default 30)\n"
	"See the comment at the top of tests/integration/tlsclient.c.\n";

static struct {
	const char *mode, *host, *port, *user, *db, *password, *sql;
	const char *ca, *verify_name, *sni, *cert, *key, *alpn;
	int tls_version; /* 0 any, 12, 13 */
	bool direct, handshake_only, gss_first;
	int count, timeout, rows;
} opt = { .user = "app", .db = "app", .sql = "select 1", .alpn = ALPN_POSTGRESQL, .count = 2, .timeout = 30,
	  .rows = 1000 };

/* ---- reporting ---- */

static void one_line(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* "ERROR none ..." on stdout; exit 1. */
static _Noreturn __attribute__((format(printf, 1, 2))) void refused(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	one_line(buf);
	printf("ERROR none %s\n", buf);
	fflush(stdout);
	exit(1);
}

/* Local trouble (not the server's doing): stderr, exit 2. */
static _Noreturn __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tlsclient: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "ERROR none timeout (-t) reached\n";
	fflush(stdout);
	if (write(1, msg, sizeof msg - 1) < 0)
		_exit(1);
	_exit(1);
}

/* ---- a connection: a socket, then maybe TLS over it ---- */

struct conn {
	int fd;
	WOLFSSL *ssl;
};

static int tcp_connect(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (rc != 0)
		die("%s:%s: %s", opt.host, opt.port, gai_strerror(rc));
	int fd = -1, err = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		refused("connect to %s:%s: %s", opt.host, opt.port, strerror(err));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void put_all(struct conn *c, const void *data, size_t n)
{
	const char *p = data;
	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			w = wolfSSL_write(c->ssl, p, (int)(n > 1u << 30 ? 1u << 30 : n));
			if (w <= 0)
				refused("TLS write failed: %s",
					wolfSSL_ERR_error_string((unsigned long)wolfSSL_get_error(c->ssl, (int)w), NULL));
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				refused("write failed: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Read exactly n bytes; false on a clean EOF before the first byte when eof_ok. */
static bool get_exact(struct conn *c, void *data, size_t n, bool eof_ok)
{
	char *p = data;
	size_t got = 0;
	while (got < n) {
		ssize_t r;
		if (c->ssl) {
			r = wolfSSL_read(c->ssl, p + got, (int)(n - got > 1u << 30 ? 1u << 30 : n - got));
			if (r <= 0) {
				int e = wolfSSL_get_error(c->ssl, (int)r);
				if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E) {
					if (got == 0 && eof_ok)
						return false;
					refused("connection closed by the server (TLS close_notify)");
				}
				WOLFSSL_ALERT_HISTORY h;
				if (wolfSSL_get_alert_history(c->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0)
					refused("TLS alert from the server: %s (%d)",
						wolfSSL_alert_desc_string_long(h.last_rx.code), h.last_rx.code);
				if (got == 0 && eof_ok && e == WOLFSSL_ERROR_SYSCALL)
					return false;
				refused("connection closed by the server (TLS read: %s)",
					wolfSSL_ERR_error_string((unsigned long)e, NULL));
			}
		} else {
			r = recv(c->fd, p + got, n - got, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				refused("read failed: %s", strerror(errno));
			if (r == 0) {
				if (got == 0 && eof_ok)
					return false;
				refused("connection closed by the server");
			}
		}
		got += (size_t)r;
	}
	return true;
}

/* ---- messages ---- */

struct buf {
	char *data;
	size_t len, cap;
};

static void b_need(struct buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	b->cap = (b->len + n) * 2;
	b->data = realloc(b->data, b->cap);
	if (!b->data)
		die("out of memory");
}
static void b_put(struct buf *b, const void *p, size_t n)
{
	b_need(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}
static void b_u32(struct buf *b, uint32_t v)
{
	v = htonl(v);
	b_put(b, &v, 4);
}
static void b_str(struct buf *b, const char *s) { b_put(b, s, strlen(s) + 1); }
/* Fill in the length of the message that starts at offset at (its type byte, if any, before). */
static void b_len_at(struct buf *b, size_t at)
{
	uint32_t v = htonl((uint32_t)(b->len - at));
	memcpy(b->data + at, &v, 4);
}

static void put_ssl_request(struct buf *b)
{
	b_u32(b, 8);
	b_u32(b, SSL_REQUEST_CODE);
}
static void put_startup(struct buf *b)
{
	size_t at = b->len;
	b_u32(b, 0);
	b_u32(b, PROTOCOL_3_0);
	b_str(b, "user");
	b_str(b, opt.user);
	b_str(b, "database");
	b_str(b, opt.db);
	b_str(b, "application_name");
	b_str(b, "tlsclient");
	b_put(b, "", 1);
	b_len_at(b, at);
}
static void put_typed(struct buf *b, char type, const void *body, size_t n)
{
	b_put(b, &type, 1);
	b_u32(b, (uint32_t)(n + 4));
	b_put(b, body, n);
}

struct msg {
	char type;
	uint32_t len; /* of body */
	char *body;
};

/* Read one backend message (false on EOF before it when eof_ok). */
static bool get_msg(struct conn *c, struct msg *m, bool eof_ok)
{
	char hdr[5];
	if (!get_exact(c, hdr, 5, eof_ok))
		return false;
	uint32_t n;
	memcpy(&n, hdr + 1, 4);
	n = ntohl(n);
	if (n < 4 || n > MAX_MESSAGE)
		refused("bad message from the server: type 0x%02x, length %u", (unsigned char)hdr[0], n);
	free(m->body);
	m->type = hdr[0];
	m->len = n - 4;
	m->body = malloc(m->len + 1);
	if (!m->body)
		die("out of memory");
	get_exact(c, m->body, m->len, false);
	m->body[m->len] = 0;
	return true;
}

static uint32_t body_u32(const struct msg *m, size_t at)
{
	uint32_t v = 0;
	if (at + 4 <= m->len)
		memcpy(&v, m->body + at, 4);
	return ntohl(v);
}

/* An ErrorResponse/NoticeResponse: "<SQLSTATE> <message>" into out. */
static void error_fields(const struct msg *m, char *out, size_t cap)
{
	const char *code = "none", *text = "(no message)";
	for (size_t i = 0; i < m->len && m->body[i];) {
		char f = m->body[i];
		const char *v = m->body + i + 1;
		if (f == 'C')
			code = v;
		else if (f == 'M')
			text = v;
		i += strlen(v) + 2;
	}
	snprintf(out, cap, "%s %s", code, text);
	one_line(out);
}

static _Noreturn void server_error(const struct msg *m)
{
	char e[2048];
	error_fields(m, e, sizeof e);
	printf("ERROR %s\n", e);
	fflush(stdout);
	exit(1);
}

/* ---- login and query ---- */

static void md5_hex(const void *a, size_t na, const void *b, size_t nb, char out[33])
{
	wc_Md5 md5;
	unsigned char d[WC_MD5_DIGEST_SIZE];
	wc_InitMd5(&md5);
	wc_Md5Update(&md5, a, (word32)na);
	wc_Md5Update(&md5, b, (word32)nb);
	wc_Md5Final(&md5, d);
	wc_Md5Free(&md5);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void send_password(struct conn *c, const char *pw)
{
	struct buf b = { 0 };
	put_typed(&b, 'p', pw, strlen(pw) + 1);
	put_all(c, b.data, b.len);
	free(b.data);
}

/* After the StartupMessage: authenticate, then wait for ReadyForQuery. */
static void login(struct conn *c)
{
	struct msg m = { 0 };
	for (;;) {
		get_msg(c, &m, false);
		switch (m.type) {
		case 'R': {
			uint32_t code = body_u32(&m, 0);
			if (code == 0)
				break;
			if (code == 3 || code == 5) {
				if (!opt.password)
					refused("the server asks for a password (authentication request %u): use -W", code);
				if (code == 3) {
					send_password(c, opt.password);
				} else {
					char inner[33], outer[36] = "md5";
					if (m.len < 8)
						refused("MD5 request without a salt");
					md5_hex(opt.password, strlen(opt.password), opt.user, strlen(opt.user), inner);
					md5_hex(inner, 32, m.body + 4, 4, outer + 3);
					send_password(c, outer);
				}
				break;
			}
			if (code == 10)
				refused("the server asks for SASL (%s): tlsclient speaks only cleartext and md5",
					m.len > 4 ? m.body + 4 : "?");
			refused("unsupported authentication request %u", code);
		}
		case 'E':
			server_error(&m);
		case 'N': {
			char e[1024];
			error_fields(&m, e, sizeof e);
			fprintf(stderr, "notice: %s\n", e);
			break;
		}
		case 'S': /* ParameterStatus */
		case 'K': /* BackendKeyData */
		case 'v': /* NegotiateProtocolVersion */
			break;
		case 'Z':
			free(m.body);
			return;
		default:
			refused("unexpected message '%c' (0x%02x) during login", m.type, (unsigned char)m.type);
		}
	}
}

/* Send Query, print the rows, wait for ReadyForQuery. An error is printed at the
 * end (after any rows) and makes it return false. */
static bool run_query(struct conn *c, bool print)
{
	struct buf b = { 0 };
	put_typed(&b, 'Q', opt.sql, strlen(opt.sql) + 1);
	put_all(c, b.data, b.len);
	free(b.data);
	struct msg m = { 0 };
	char err[2048] = "";
	for (;;) {
		get_msg(c, &m, false);
		switch (m.type) {
		case 'D': {
			if (!print)
				break;
			uint16_t n;
			if (m.len < 2)
				refused("short DataRow");
			memcpy(&n, m.body, 2);
			n = ntohs(n);
			size_t at = 2;
			for (unsigned i = 0; i < n; i++) {
				uint32_t flen = body_u32(&m, at);
				at += 4;
				if (i > 0)
					putchar('|');
				if (flen != UINT32_MAX) {
					if (at + flen > m.len)
						refused("short DataRow");
					fwrite(m.body + at, 1, flen, stdout);
					at += flen;
				}
			}
			putchar('\n');
			break;
		}
		case 'E':
			if (!err[0])
				error_fields(&m, err, sizeof err);
			break;
		case 'N': {
			char e[1024];
			error_fields(&m, e, sizeof e);
			fprintf(stderr, "notice: %s\n", e);
			break;
		}
		case 'T': case 'C': case 'I': case 'S': case 'A':
			break;
		case 'Z':
			free(m.body);
			if (err[0]) {
				printf("ERROR %s\n", err);
				return false;
			}
			return true;
		default:
			refused("unexpected message '%c' (0x%02x) after Query", m.type, (unsigned char)m.type);
		}
	}
}

static void terminate(struct conn *c)
{
	static const char x[5] = { 'X', 0, 0, 0, 4 };
	put_all(c, x, sizeof x);
	if (c->ssl) {
		wolfSSL_shutdown(c->ssl);
		wolfSSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
}

/* ---- TLS ---- */

static WOLFSSL_CTX *make_ctx(void)
{
	WOLFSSL_METHOD *method = opt.tls_version == 12 ? wolfTLSv1_2_client_method()
			       : opt.tls_version == 13 ? wolfTLSv1_3_client_method()
						       : wolfSSLv23_client_method();
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(method);
	if (!ctx)
		die("wolfSSL_CTX_new failed");
	if (opt.ca) {
		if (wolfSSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != WOLFSSL_SUCCESS)
			die("cannot load CA file %s", opt.ca);
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	if (opt.cert && wolfSSL_CTX_use_certificate_chain_file(ctx, opt.cert) != WOLFSSL_SUCCESS)
		die("cannot load certificate file %s", opt.cert);
	if (opt.key && wolfSSL_CTX_use_PrivateKey_file(ctx, opt.key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		die("cannot load key file %s", opt.key);
	return ctx;
}

/* The TLS handshake on c->fd; offers session (may be NULL). On failure: ERROR none,
 * exit 1. Prints the "tls:" line on stderr. */
static void handshake(struct conn *c, WOLFSSL_CTX *ctx, WOLFSSL_SESSION *session, bool need_alpn)
{
	WOLFSSL *ssl = wolfSSL_new(ctx);
	if (!ssl)
		die("wolfSSL_new failed");
	if (opt.alpn && wolfSSL_UseALPN(ssl, (char *)opt.alpn, (unsigned)strlen(opt.alpn),
				       WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS)
		die("wolfSSL_UseALPN failed");
	if (opt.sni && wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, opt.sni, (unsigned short)strlen(opt.sni)) != WOLFSSL_SUCCESS)
		die("wolfSSL_UseSNI failed");
	if (opt.verify_name && wolfSSL_check_domain_name(ssl, opt.verify_name) != WOLFSSL_SUCCESS)
		die("wolfSSL_check_domain_name failed");
	wolfSSL_UseSessionTicket(ssl); /* TLS 1.2 tickets; TLS 1.3 always resumes by ticket */
	if (session && wolfSSL_set_session(ssl, session) != WOLFSSL_SUCCESS)
		fprintf(stderr, "tlsclient: nothing to resume (the server gave no session id or ticket)\n");
	wolfSSL_set_fd(ssl, c->fd);
	int rc = wolfSSL_connect(ssl);
	if (rc != WOLFSSL_SUCCESS) {
		int e = wolfSSL_get_error(ssl, rc);
		char why[256];
		wolfSSL_ERR_error_string_n((unsigned long)e, why, sizeof why);
		WOLFSSL_ALERT_HISTORY h;
		if (wolfSSL_get_alert_history(ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0)
			refused("TLS handshake failed: alert from the server: %s (%d); %s",
				wolfSSL_alert_desc_string_long(h.last_rx.code), h.last_rx.code, why);
		if (e == WOLFSSL_ERROR_SYSCALL || e == SOCKET_PEER_CLOSED_E || e == SOCKET_ERROR_E)
			refused("TLS handshake failed: connection closed by the server (%s)", why);
		refused("TLS handshake failed: %s (%d)", why, e);
	}
	c->ssl = ssl;

	char *alpn = NULL;
	unsigned short alpn_len = 0;
	char alpn_s[64] = "none";
	if (wolfSSL_ALPN_GetProtocol(ssl, &alpn, &alpn_len) == WOLFSSL_SUCCESS && alpn)
		snprintf(alpn_s, sizeof alpn_s, "%.*s", (int)alpn_len, alpn);
	char peer[512] = "none";
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
	if (x) {
		wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), peer, sizeof peer);
		wolfSSL_X509_free(x);
	}
	fprintf(stderr, "tls: %s %s alpn=%s resumed=%s peer=%s\n", wolfSSL_get_version(ssl),
		wolfSSL_CIPHER_get_name(wolfSSL_get_current_cipher(ssl)), alpn_s,
		wolfSSL_session_reused(ssl) ? "yes" : "no", peer);
	/* As libpq 17: a direct TLS connection must have negotiated "postgresql". */
	if (need_alpn && opt.alpn && strcmp(alpn_s, ALPN_POSTGRESQL) != 0)
		refused("direct TLS connection established without the ALPN protocol \"postgresql\" (server chose %s)", alpn_s);
}

/* SSLRequest and its answer; 'S' -> true. */
static void ssl_request(struct conn *c)
{
	struct buf b = { 0 };
	if (opt.gss_first) {
		b_u32(&b, 8);
		b_u32(&b, GSSENC_REQUEST_CODE);
		put_all(c, b.data, b.len);
		b.len = 0;
		char g;
		if (!get_exact(c, &g, 1, true))
			refused("connection closed by the server after GSSENCRequest");
		if (g != 'N')
			refused("unexpected answer to GSSENCRequest: 0x%02x (want N)", (unsigned char)g);
		fprintf(stderr, "gssenc: N\n");
	}
	put_ssl_request(&b);
	put_all(c, b.data, b.len);
	free(b.data);
	char r;
	if (!get_exact(c, &r, 1, true))
		refused("connection closed by the server after SSLRequest");
	if (r == 'S')
		return;
	if (r == 'N')
		refused("the server does not do TLS (answered SSLRequest with N)");
	if (r == 'E') {
		/* An old server's ErrorResponse: the rest of the message follows. */
		char lenb[4];
		get_exact(c, lenb, 4, false);
		uint32_t n;
		memcpy(&n, lenb, 4);
		n = ntohl(n);
		if (n < 4 || n > 65536)
			refused("bad answer to SSLRequest");
		struct msg m = { .type = 'E', .len = n - 4, .body = calloc(1, n - 3) };
		get_exact(c, m.body, m.len, false);
		server_error(&m);
	}
	refused("unexpected answer to SSLRequest: 0x%02x", (unsigned char)r);
}

/* Open a connection and set up TLS (direct or by SSLRequest). */
static void tls_open(struct conn *c, WOLFSSL_CTX *ctx, WOLFSSL_SESSION *session, bool direct)
{
	c->fd = tcp_connect();
	c->ssl = NULL;
	if (!direct)
		ssl_request(c);
	handshake(c, ctx, session, direct);
}

static void login_and_query(struct conn *c, bool print, bool *ok)
{
	struct buf b = { 0 };
	put_startup(&b);
	put_all(c, b.data, b.len);
	free(b.data);
	login(c);
	if (!run_query(c, print))
		*ok = false;
}

/* ---- modes ---- */

static int mode_query(bool direct)
{
	WOLFSSL_CTX *ctx = make_ctx();
	struct conn c;
	bool ok = true;
	tls_open(&c, ctx, NULL, direct);
	login_and_query(&c, true, &ok);
	terminate(&c);
	wolfSSL_CTX_free(ctx);
	return ok ? 0 : 1;
}

static int mode_resume(void)
{
	WOLFSSL_CTX *ctx = make_ctx();
	WOLFSSL_SESSION *session = NULL;
	int resumed = 0;
	bool ok = true;
	for (int i = 1; i <= opt.count; i++) {
		struct conn c;
		tls_open(&c, ctx, session, opt.direct);
		if (i > 1) {
			bool r = wolfSSL_session_reused(c.ssl);
			resumed += r;
			printf("resumed: %s\n", r ? "yes" : "no");
		}
		if (!opt.handshake_only) {
			login_and_query(&c, i == 1, &ok);
		} else if (wolfSSL_version(c.ssl) == TLS1_3_VERSION) {
			/* TLS 1.3 tickets come after the handshake: take what has arrived
			 * within 0.2 s (the read gives up with WANT_READ on the timeout). */
			struct timeval tv = { .tv_usec = 200000 };
			setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			char byte;
			wolfSSL_peek(c.ssl, &byte, 1);
		}
		if (session)
			wolfSSL_SESSION_free(session);
		session = wolfSSL_get1_session(c.ssl);
		if (opt.handshake_only) {
			wolfSSL_shutdown(c.ssl);
			wolfSSL_free(c.ssl);
			close(c.fd);
		} else {
			terminate(&c);
		}
	}
	if (session)
		wolfSSL_SESSION_free(session);
	printf("resumed %d of %d\n", resumed, opt.count - 1);
	wolfSSL_CTX_free(ctx);
	return ok ? 0 : 1;
}

static volatile sig_atomic_t usr1_count;
static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

/* Wait (SIGUSR1 blocked outside) until SIGUSR1 has come `want` times in all. */
static void wait_usr1(const sigset_t *unblocked, sig_atomic_t want)
{
	while (usr1_count < want)
		sigsuspend(unblocked);
}

/* The slow reader: log in, send the query, hold, then read a little. */
static int mode_noread(void)
{
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	WOLFSSL_CTX *ctx = make_ctx();
	struct conn c;
	tls_open(&c, ctx, NULL, opt.direct);
	struct buf b = { 0 };
	put_startup(&b);
	put_all(&c, b.data, b.len);
	b.len = 0;
	login(&c);
	put_typed(&b, 'Q', opt.sql, strlen(opt.sql) + 1);
	put_all(&c, b.data, b.len);
	free(b.data);
	printf("query sent\n");

	wait_usr1(&old, 1);
	int unread = 0;
	if (ioctl(c.fd, FIONREAD, &unread) < 0)
		die("FIONREAD: %s", strerror(errno));
	struct pollfd p = { .fd = c.fd, .events = POLLRDHUP };
	bool closed = poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
	printf("unread: %d bytes\npeer: %s\n", unread, closed ? "closed" : "open");

	/* What was held back must still be a well-formed result. */
	struct msg m = { 0 };
	get_msg(&c, &m, false);
	if (m.type == 'E')
		server_error(&m);
	if (m.type != 'T')
		refused("expected RowDescription first, got '%c' (0x%02x)", m.type, (unsigned char)m.type);
	for (int i = 1; i <= opt.rows; i++) {
		get_msg(&c, &m, false);
		if (m.type == 'E')
			server_error(&m);
		if (m.type != 'D')
			refused("expected DataRow #%d, got '%c' (0x%02x)", i, m.type, (unsigned char)m.type);
		uint16_t nf = 0;
		if (m.len >= 2)
			memcpy(&nf, m.body, 2);
		if (m.len < 6 || ntohs(nf) != 1 || body_u32(&m, 2) != m.len - 6)
			refused("DataRow #%d is malformed (%u bytes)", i, m.len);
	}
	free(m.body);
	printf("read: %d rows ok\n", opt.rows);

	alarm(0);
	wait_usr1(&old, 2);
	/* Vanish mid-result: no Terminate, no close_notify. */
	close(c.fd);
	wolfSSL_free(c.ssl);
	wolfSSL_CTX_free(ctx);
	return 0;
}

/* inject mode, once the server has said S and then nothing: the handshake, then
 * whatever the server sends within 1.5 s. */
static int inject_after_handshake(WOLFSSL *ssl, int fd)
{
	wolfSSL_set_fd(ssl, fd);
	if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS) {
		printf("result: closed (the TLS handshake after the injected bytes failed)\n");
		return 0;
	}
	struct timeval tv = { .tv_sec = 1, .tv_usec = 500000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char in[4096];
	int n = 0, got = 0;
	while (n < (int)sizeof in - 1 && (got = wolfSSL_read(ssl, in + n, (int)sizeof in - 1 - n)) > 0)
		n += got;
	if (n > 0 && in[0] == 'R') {
		printf("result: ANSWERED the injected plaintext startup over TLS (as if it had been encrypted)\n");
		return 1;
	}
	if (n >= 5 && in[0] == 'E') {
		/* PostgreSQL 15 finishes the handshake, then refuses over TLS. */
		in[n] = 0;
		struct msg m = { .type = 'E', .len = (uint32_t)n - 5, .body = in + 5 };
		char e[1024];
		error_fields(&m, e, sizeof e);
		printf("result: error %s (over TLS, after the handshake)\n", e);
		return 0;
	}
	if (n == 0) {
		int e = wolfSSL_get_error(ssl, got);
		if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E || e == WOLFSSL_ERROR_SYSCALL) {
			printf("result: closed (after the TLS handshake)\n");
			return 0;
		}
		printf("result: ignored (TLS handshake done, nothing answered within 1.5 s)\n");
		return 3;
	}
	printf("result: unexpected message 0x%02x over TLS\n", (unsigned char)in[0]);
	return 3;
}

/* SSLRequest + plaintext StartupMessage in one write. */
static int mode_inject(void)
{
	struct conn c = { .fd = tcp_connect() };
	struct buf b = { 0 };
	put_ssl_request(&b);
	put_startup(&b);
	if (send(c.fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
		refused("could not send SSLRequest and the injected startup in one write: %s", strerror(errno));
	free(b.data);

	char r;
	if (!get_exact(&c, &r, 1, true)) {
		printf("reply: closed\nresult: closed (before answering SSLRequest)\n");
		return 0;
	}
	if (r == 'E') {
		/* Error instead of an SSLRequest answer. */
		char rest[4096];
		ssize_t n = recv(c.fd, rest, sizeof rest - 1, 0);
		struct msg m = { .type = 'E', .len = n > 4 ? (uint32_t)(n - 4) : 0, .body = rest + 4 };
		rest[n > 0 ? n : 0] = 0;
		char e[1024];
		error_fields(&m, e, sizeof e);
		printf("reply: E\nresult: error %s\n", e);
		return 0;
	}
	if (r != 'S') {
		printf("reply: %c\n", r == 'N' ? 'N' : '?');
		printf("result: not-tls (answered 0x%02x to SSLRequest; the plaintext startup that follows is legitimate then)\n",
		       (unsigned char)r);
		return 3;
	}
	printf("reply: S\n");

	/* What comes next, in plaintext, within 1.5 s? */
	struct pollfd p = { .fd = c.fd, .events = POLLIN };
	int pr = poll(&p, 1, 1500);
	if (pr > 0) {
		unsigned char in[8192];
		ssize_t n = recv(c.fd, in, sizeof in, 0);
		if (n <= 0) {
			printf("result: closed\n");
			return 0;
		}
		if (in[0] == 'E' && n >= 5) {
			struct msg m = { .type = 'E', .len = (uint32_t)n - 5, .body = (char *)in + 5 };
			in[n < (ssize_t)sizeof in ? n : (ssize_t)sizeof in - 1] = 0;
			char e[1024];
			error_fields(&m, e, sizeof e);
			/* Then the server must close. */
			poll(&p, 1, 1500);
			char more[64];
			ssize_t after = recv(c.fd, more, sizeof more, MSG_DONTWAIT);
			printf("result: error %s%s\n", e, after == 0 ? "" : " (and the connection stayed open)");
			return 0;
		}
		if (in[0] == 0x15 && n >= 7) {
			printf("result: closed after TLS alert level %d: %s (%d)\n", in[5],
			       wolfSSL_alert_desc_string_long(in[6]), in[6]);
			return 0;
		}
		if (in[0] == 'R') {
			uint32_t code = 0;
			if (n >= 9)
				memcpy(&code, in + 5, 4);
			printf("result: ANSWERED the injected startup in plaintext (AuthenticationRequest %u)\n", ntohl(code));
			return 1;
		}
		printf("result: unexpected plaintext 0x%02x (%zd bytes)\n", in[0], n);
		return 3;
	}
	/* Nothing: the server waits for a ClientHello. Give it one; if the handshake
	 * works, the injected startup must not be answered over TLS either. */
	WOLFSSL_CTX *ctx = make_ctx();
	WOLFSSL *ssl = wolfSSL_new(ctx);
	if (!ssl)
		die("wolfSSL_new failed");
	int rc = inject_after_handshake(ssl, c.fd);
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
	close(c.fd);
	return rc;
}

int main(int argc, char **argv)
{
	enum { OPT_CA = 256, OPT_VERIFY_NAME, OPT_SNI, OPT_CERT, OPT_KEY, OPT_NO_ALPN, OPT_ALPN, OPT_TLS12, OPT_TLS13, OPT_DIRECT, OPT_HS_ONLY, OPT_GSS_FIRST, OPT_ROWS };
	static const struct option longopts[] = {
		{ "ca", required_argument, 0, OPT_CA },
		{ "verify-name", required_argument, 0, OPT_VERIFY_NAME },
		{ "sni", required_argument, 0, OPT_SNI },
		{ "cert", required_argument, 0, OPT_CERT },
		{ "key", required_argument, 0, OPT_KEY },
		{ "no-alpn", no_argument, 0, OPT_NO_ALPN },
		{ "alpn", required_argument, 0, OPT_ALPN },
		{ "tls12", no_argument, 0, OPT_TLS12 },
		{ "tls13", no_argument, 0, OPT_TLS13 },
		{ "direct", no_argument, 0, OPT_DIRECT },
		{ "handshake-only", no_argument, 0, OPT_HS_ONLY },
		{ "gss-first", no_argument, 0, OPT_GSS_FIRST },
		{ "rows", required_argument, 0, OPT_ROWS },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	if (argc < 2 || argv[1][0] == '-') {
		fputs(usage_text, stderr);
		return 2;
	}
	opt.mode = argv[1];
	argv[1] = argv[0];
	argc--;
	argv++;
	int ch;
	while ((ch = getopt_long(argc, argv, "U:d:W:c:n:t:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'U': opt.user = optarg; break;
		case 'd': opt.db = optarg; break;
		case 'W': opt.password = optarg; break;
		case 'c': opt.sql = optarg; break;
		case 'n': opt.count = atoi(optarg); break;
		case 't': opt.timeout = atoi(optarg); break;
		case OPT_CA: opt.ca = optarg; break;
		case OPT_VERIFY_NAME: opt.verify_name = optarg; break;
		case OPT_SNI: opt.sni = optarg; break;
		case OPT_CERT: opt.cert = optarg; break;
		case OPT_KEY: opt.key = optarg; break;
		case OPT_NO_ALPN: opt.alpn = NULL; break;
		case OPT_ALPN: opt.alpn = optarg; break;
		case OPT_TLS12: opt.tls_version = 12; break;
		case OPT_TLS13: opt.tls_version = 13; break;
		case OPT_DIRECT: opt.direct = true; break;
		case OPT_HS_ONLY: opt.handshake_only = true; break;
		case OPT_GSS_FIRST: opt.gss_first = true; break;
		case OPT_ROWS: opt.rows = atoi(optarg); break;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	opt.host = argv[optind];
	opt.port = argv[optind + 1];
	if (opt.verify_name && !opt.ca)
		die("--verify-name needs --ca");
	if (!!opt.cert != !!opt.key)
		die("--cert and --key go together");
	if (opt.count < 1 || opt.timeout < 1 || opt.rows < 0)
		die("-n and -t must be positive, --rows not negative");

	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)opt.timeout);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		die("wolfSSL_Init failed");

	int rc;
	if (strcmp(opt.mode, "direct") == 0)
		rc = mode_query(true);
	else if (strcmp(opt.mode, "query") == 0)
		rc = mode_query(false);
	else if (strcmp(opt.mode, "inject") == 0)
		rc = mode_inject();
	else if (strcmp(opt.mode, "resume") == 0)
		rc = mode_resume();
	else if (strcmp(opt.mode, "noread") == 0)
		rc = mode_noread();
	else {
		fputs(usage_text, stderr);
		return 2;
	}
	wolfSSL_Cleanup();
	return rc;
}
