/* bench/benchkit.h: what the benchmark clients bench/tlshs.c and bench/idleconns.c
 * share: a monotonic clock, errno names, the failure-reason table, resolving the
 * target and opening a client socket to it (bound to 127.0.0.X on loopback), the
 * PostgreSQL pieces a client needs before its login (SSLRequest, StartupMessage,
 * ErrorResponse fields) and a wolfSSL client context that offers what libpq 15 on
 * OpenSSL 3 offers.
 *
 * A header of static functions rather than a library: each C file in bench/ is a
 * one-file program, built alone from that file (the Makefile's $(BUILD)/bench/% rule),
 * so the code they share is included into each. Every function here is used by each of
 * them (no unused-function warnings under -Werror). */
#ifndef PGRING_BENCHKIT_H
#define PGRING_BENCHKIT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_REASONS 32

/* what libpq 15 + OpenSSL 3 offers, in its order (TLS 1.3 first), in wolfSSL's names */
static const char default_ciphers[] =
	"TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
	"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

/* SSLRequest: length 8, code 80877103 */
static const unsigned char pg_sslrequest[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);
	return s ? s : "E?";
}

/* fmt and its arguments into msg ("" when fmt is NULL) */
static void format_msg(char *msg, size_t cap, const char *fmt, va_list ap)
{
	msg[0] = 0;
	if (fmt)
		vsnprintf(msg, cap, fmt, ap);
}

/* a failure reason from an errno: key "WHAT-ENAME", message "WHAT: strerror" */
static void errno_reason(const char *what, int e, char key[48], char msg[200])
{
	snprintf(key, 48, "%s-%s", what, errname(e));
	snprintf(msg, 200, "%s: %s", what, strerror(e));
}

/* ---- failure reasons: counted by key, each with its first message ---- */

struct reason {
	char key[48];
	long count;
	char msg[200];
};
struct reasons {
	struct reason r[MAX_REASONS];
	int n;
};

static void reason_add(struct reasons *rs, const char *key, const char *msg, long count)
{
	for (int i = 0; i < rs->n; i++) {
		if (strcmp(rs->r[i].key, key) == 0) {
			rs->r[i].count += count;
			return;
		}
	}
	if (rs->n == MAX_REASONS)
		key = "other";
	struct reason *r = rs->n < MAX_REASONS ? &rs->r[rs->n++] : &rs->r[MAX_REASONS - 1];
	snprintf(r->key, sizeof r->key, "%s", key);
	snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
	/* keep the message on one line, without quotes */
	for (char *p = r->msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '"' || *p == '\t')
			*p = ' ';
	r->count = count;
}

/* "key:count key:count ..." */
static void reasons_format(const struct reasons *rs, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < rs->n && o < cap; i++)
		o += snprintf(out + o, cap - o, "%s%s:%ld", i ? " " : "", rs->r[i].key, rs->r[i].count);
}

/* "key message" of the first reason with a message, or "" */
static void reasons_first(const struct reasons *rs, char *out, size_t cap)
{
	out[0] = 0;
	for (int i = 0; i < rs->n; i++) {
		if (rs->r[i].msg[0]) {
			snprintf(out, cap, "%s %s", rs->r[i].key, rs->r[i].msg);
			break;
		}
	}
}

/* ---- the target and a socket to it ---- */

/* close a connection's TLS session (no close_notify) and its socket */
static void close_conn(WOLFSSL **ssl, int *fd)
{
	if (*ssl) {
		wolfSSL_free(*ssl);
		*ssl = NULL;
	}
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* host:port (IPv4) into *dst, *loopback when it is in 127.0.0.0/8; 0, or -1 after
 * saying why on stderr ("PROG: host:port: ...") */
static int resolve_target(const char *prog, const char *host, const char *port, struct sockaddr_in *dst,
			  bool *loopback)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	int gr = getaddrinfo(host, port, &hints, &ai);
	if (gr) {
		fprintf(stderr, "%s: %s:%s: %s\n", prog, host, port, gai_strerror(gr));
		return -1;
	}
	memcpy(dst, ai->ai_addr, sizeof *dst);
	freeaddrinfo(ai);
	*loopback = (ntohl(dst->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

/* A non-blocking TCP socket with TCP_NODELAY; when the target is on loopback, bound
 * first to 127.0.0.(1 + src % 250) with IP_BIND_ADDRESS_NO_PORT (the port is picked at
 * connect()), so the 4-tuples never run out. The socket, or -1 with the failure in key
 * ("socket-E*", "bind-E*") and msg. */
static int client_socket(bool loopback, unsigned long src, char key[48], char msg[200])
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		errno_reason("socket", errno, key, msg);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (loopback) {
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		struct sockaddr_in a = { .sin_family = AF_INET };
		a.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(src % 250));
		if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
			errno_reason("bind", errno, key, msg);
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* the outcome of a non-blocking connect() once the socket is writable: 0 or an errno */
static int connect_result(int fd)
{
	int err = 0;
	socklen_t l = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		err = errno;
	return err;
}

/* ---- PostgreSQL messages ---- */

static void put32(void *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static uint32_t get32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return ntohl(v);
}

/* a StartupMessage (protocol 3.0) with n strings, name and value in turn, into m; its
 * length, or 0 when it does not fit in cap bytes */
static size_t pg_startup_message(char *m, size_t cap, const char *const kv[], int n)
{
	size_t o = 8;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(kv[i]) + 1;
		if (o + l + 1 > cap)
			return 0;
		memcpy(m + o, kv[i], l);
		o += l;
	}
	m[o++] = 0;
	put32(m, (uint32_t)o);
	put32(m + 4, 196608);
	return o;
}

/* An ErrorResponse's fields (the n bytes after its length) -> SQLSTATE in code ("ERROR"
 * without one) and the message in msg (when msg is not NULL); whether there was a
 * SQLSTATE. */
static bool pg_error_fields(const char *p, uint32_t n, char code[8], char *msg, size_t msgcap)
{
	bool have_code = false;
	snprintf(code, 8, "ERROR");
	if (msg)
		msg[0] = 0;
	uint32_t i = 0;
	while (i < n && p[i]) {
		char t = p[i++];
		const char *v = p + i;
		size_t vl = strnlen(v, n - i);
		if (t == 'C') {
			snprintf(code, 8, "%.*s", (int)(vl < 7 ? vl : 7), v);
			have_code = true;
		} else if (t == 'M' && msg) {
			snprintf(msg, msgcap, "%.*s", (int)vl, v);
		}
		i += vl + 1;
	}
	return have_code;
}

/* ---- TLS ---- */

/* A wolfSSL client context as libpq's sslmode=require: no certificate verification;
 * version 0 for TLS 1.2-1.3, 12 or 13 for that one only; ciphers in wolfSSL's names;
 * groups "X25519:P-256:..." for supported_groups, the first one getting the TLS 1.3 key
 * share (as OpenSSL's X25519). NULL when it cannot be made: err says why ("" when
 * wolfSSL could not allocate it). */
static WOLFSSL_CTX *tls_client_ctx(int version, const char *ciphers, const char *groups, char *err, size_t errcap)
{
	static const struct { const char *name; int id; } gn[] = {
		{ "X25519", WOLFSSL_ECC_X25519 }, { "X448", WOLFSSL_ECC_X448 },
		{ "P-256", WOLFSSL_ECC_SECP256R1 }, { "P-384", WOLFSSL_ECC_SECP384R1 },
		{ "P-521", WOLFSSL_ECC_SECP521R1 },
	};
	err[0] = 0;
	WOLFSSL_METHOD *m = version == 12 ? wolfTLSv1_2_client_method()
			  : version == 13 ? wolfTLSv1_3_client_method()
					  : wolfSSLv23_client_method();
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(m);
	if (!ctx)
		return NULL;
	if (!version)
		wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2);
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	if (wolfSSL_CTX_set_cipher_list(ctx, ciphers) != WOLFSSL_SUCCESS) {
		snprintf(err, errcap, "cipher list not accepted by wolfSSL: %s", ciphers);
		wolfSSL_CTX_free(ctx);
		return NULL;
	}
	char list[128];
	int ids[8], nid = 0;
	snprintf(list, sizeof list, "%s", groups);
	for (char *save = NULL, *g = strtok_r(list, ":", &save); g; g = strtok_r(NULL, ":", &save)) {
		size_t k = 0;
		while (k < sizeof gn / sizeof gn[0] && strcasecmp(gn[k].name, g) != 0)
			k++;
		if (k == sizeof gn / sizeof gn[0] || nid == 8) {
			snprintf(err, errcap, "unknown group %s (X25519, X448, P-256, P-384, P-521)", g);
			wolfSSL_CTX_free(ctx);
			return NULL;
		}
		ids[nid++] = gn[k].id;
	}
	snprintf(list, sizeof list, "%s", groups);
	if (wolfSSL_CTX_set1_curves_list(ctx, list) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_groups(ctx, ids, nid) != WOLFSSL_SUCCESS) {
		snprintf(err, errcap, "groups not accepted by wolfSSL: %s", groups);
		wolfSSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

#endif
