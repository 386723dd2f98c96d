/* bench/tlshs.c: TLS handshakes per second against a PostgreSQL server or pooler, and
 * what each handshake costs the server process.
 *
 *   tlshs [-h host] [-p port] [-j threads] [-c inflight] [-T seconds] [-w warmup_s]
 *         [-P server_pid] [-t target_name] [-U user] [-d db] [-W timeout_s]
 *         [--resume] [--startup] [--probe] [--ciphers LIST] [--groups LIST]
 *         [--tls12 | --tls13]
 *
 * Every connection, -c of them in flight per thread, -j threads (default 2), each thread
 * with its own epoll loop: TCP connect, SSLRequest, the server's 'S', a TLS handshake
 * (wolfSSL, non-blocking), then close_notify and close. With --startup it then also
 * sends a StartupMessage (user, database) over TLS and waits for the server's first
 * reply (an authentication request, or an error), so the server's whole pre-login work
 * counts: that is what a client costs a pooler before its password. Sockets are bound to
 * 127.0.0.X (X = 1..250, cycling) when the target is on 127.0.0.0/8, so the closed
 * connections' TIME_WAITs never exhaust the ports.
 *
 * --resume: each thread keeps a session (a TLS 1.3 ticket, or a TLS 1.2 session) and
 * offers it on every connection; the handshakes the server resumes are counted apart
 * (resumed=K). A thread without a usable session (the first connection, or after the
 * server refused one) takes the ticket the next connection gets: with --startup it comes
 * before the server's reply; without, the connection waits for it (up to 1 s) before
 * closing. A server that sends no ticket within 1 s is not asked again (no_ticket=1):
 * its handshakes are all full ones.
 *
 * The client mimics libpq 15 on OpenSSL 3 by default: TLS 1.2-1.3, key share X25519
 * (groups X25519, P-256, P-384), TLS 1.3 suites in OpenSSL's order (AES-256-GCM,
 * ChaCha20-Poly1305, AES-128-GCM), no certificate verification (sslmode=require). The
 * server picks the suite (libpq cannot restrict TLS 1.3 suites either); --ciphers
 * changes what this client offers.
 *
 * Measurement: -w seconds of warm-up (not counted), then -T seconds counted. Over the
 * counted window: handshakes completed (connections that reached the end of their
 * loop), per second; the server's CPU time from /proc/PID/stat (utime + stime + cutime
 * + cstime: with -P the postmaster of a direct PostgreSQL, this includes the backends it
 * forked and reaped) per handshake; this process's own CPU per handshake (getrusage);
 * latency from connect() to the end (p50, p99, ms).
 *
 * Output (one line):
 *   tlshs target=NAME mode=full|resume startup=0|1 threads=J inflight=C seconds=S
 *   handshakes=N hs_per_sec=R resumed=K failed=F server_cpu_s=.. server_cpu_us_per_hs=..
 *   client_cpu_us_per_hs=.. lat_p50_ms=.. lat_p99_ms=.. version=.. cipher=.. group=..
 *   no_ticket=0|1 errors="reason:count ..." first_error=".."
 * then one "error reason=.. count=.. message=.." line per failure reason.
 *
 * --probe: one connection with --startup, prints
 *   probe target=NAME ok=1 version=.. cipher=.. group=.. reply=R<code>|E<sqlstate> resumable=0|1
 * or probe target=NAME ok=0 reason=.. message=".." and exits 0 (ok), 3 (the server
 * answered 'N' to SSLRequest: no TLS), 1 (anything else). Exit status otherwise: 0 if
 * at least one handshake was counted and none failed, 1 if some failed, 2 usage.
 *
 * --crypto-speed: no connection; this wolfSSL's AEAD encryption speed on this CPU
 * (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; 16 KiB and 128-byte records, ~0.5 s
 * each), one line per suite and size:
 *   crypto lib=wolfssl aead=NAME bytes=N MBps=.. ns_per_record=.. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>

#include "bench/benchkit.h"

#define MAX_THREADS 64
#define TICKET_WAIT 1.0

static const char *o_host = "127.0.0.1", *o_port = "6432", *o_user = "app", *o_db = "app",
		  *o_target = "server", *o_ciphers = NULL, *o_groups = "X25519:P-256:P-384";
static int o_threads = 2, o_inflight = 8, o_version = 0; /* 0: 1.2-1.3, 12, 13 */
static double o_seconds = 5, o_warmup = 1, o_timeout = 10;
static long o_pid = 0;
static bool o_resume = false, o_startup = false, o_probe = false;

static struct sockaddr_in dst;
static bool loopback;
static atomic_int phase; /* 0 warm-up, 1 counted, 2 stop */

/* ---- one thread ---- */

enum cstate { S_IDLE, S_CONNECTING, S_SSLREQ, S_HANDSHAKE, S_STARTUP, S_TICKET };

struct conn {
	int fd;
	enum cstate state;
	WOLFSSL *ssl;
	double t0;
	bool offered; /* a session was offered */
	char buf[512];
	int len;
};

struct worker {
	int id;
	pthread_t th;
	WOLFSSL_CTX *ctx;
	int ep;
	struct conn *c;
	WOLFSSL_SESSION *sess;
	bool need_ticket, no_ticket;
	unsigned long seq;
	/* counted window */
	atomic_long done, resumed;
	long failed;
	double *lat;
	long nlat, caplat;
	struct reasons fails; /* per thread, merged at the end */
	/* first successful connection's parameters */
	char version[32], cipher[64], group[32];
	/* probe */
	char reply[32];
	int probe_rc;
	char probe_reason[48], probe_msg[200];
};

static void arm(struct worker *w, struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.u64 = (uint64_t)(c - w->c) };
	epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void conn_reset(struct conn *c)
{
	close_conn(&c->ssl, &c->fd);
	c->state = S_IDLE;
	c->len = 0;
	c->offered = false;
}

static void fail(struct worker *w, struct conn *c, const char *key, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	format_msg(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (o_probe) {
		snprintf(w->probe_reason, sizeof w->probe_reason, "%s", key);
		snprintf(w->probe_msg, sizeof w->probe_msg, "%s", msg);
		w->probe_rc = strcmp(key, "ssl-refused") == 0 ? 3 : 1;
	}
	if (atomic_load(&phase) == 1 || o_probe) {
		reason_add(&w->fails, key, msg, 1);
		w->failed++;
	}
	conn_reset(c);
}

static void ssl_fail(struct worker *w, struct conn *c, const char *where, int ret)
{
	int e = wolfSSL_get_error(c->ssl, ret);
	char es[160], key[48];
	wolfSSL_ERR_error_string_n((unsigned long)e, es, sizeof es);
	snprintf(key, sizeof key, "%s-%d", where, e);
	fail(w, c, key, "%s: %s", where, es);
}

/* the end of a successful loop */
static void finish(struct worker *w, struct conn *c)
{
	bool reused = wolfSSL_session_reused(c->ssl) == 1;
	if (!w->version[0]) {
		snprintf(w->version, sizeof w->version, "%s", wolfSSL_get_version(c->ssl));
		snprintf(w->cipher, sizeof w->cipher, "%s", wolfSSL_get_cipher_name(c->ssl));
		const char *g = wolfSSL_get_curve_name(c->ssl);
		snprintf(w->group, sizeof w->group, "%s", g ? g : "?");
	}
	if ((o_resume || o_probe) && w->need_ticket) {
		WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
		if (s && wolfSSL_SESSION_is_resumable(s)) {
			if (w->sess)
				wolfSSL_SESSION_free(w->sess);
			w->sess = s;
			w->need_ticket = false;
		} else if (s) {
			wolfSSL_SESSION_free(s);
		}
	}
	if (atomic_load(&phase) == 1) {
		atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
		if (reused)
			atomic_fetch_add_explicit(&w->resumed, 1, memory_order_relaxed);
		if (w->nlat == w->caplat) {
			long nc = w->caplat ? 2 * w->caplat : 4096;
			double *nl = realloc(w->lat, (size_t)nc * sizeof *nl);
			if (nl) {
				w->lat = nl;
				w->caplat = nc;
			}
		}
		if (w->nlat < w->caplat)
			w->lat[w->nlat++] = (now() - c->t0) * 1e3;
	}
	wolfSSL_shutdown(c->ssl); /* close_notify, not waiting for the peer's */
	conn_reset(c);
}

static void send_startup(struct worker *w, struct conn *c)
{
	char m[512];
	const char *kv[] = { "user", o_user, "database", o_db, "application_name", "tlshs" };
	size_t o = pg_startup_message(m, sizeof m, kv, 6);
	if (!o) {
		fail(w, c, "usage", "startup message too long");
		return;
	}
	int r = wolfSSL_write(c->ssl, m, (int)o);
	if (r != (int)o) {
		ssl_fail(w, c, "write", r);
		return;
	}
	c->state = S_STARTUP;
	c->len = 0;
	arm(w, c, EPOLLIN);
}

/* after the handshake: the reply to the StartupMessage, or a ticket */
static void on_tls_readable(struct worker *w, struct conn *c)
{
	for (;;) {
		int r = wolfSSL_read(c->ssl, c->buf + c->len, (int)sizeof c->buf - c->len);
		if (r > 0) {
			if (c->state == S_TICKET)
				continue; /* a server talking first: ignore */
			c->len += r;
			if (c->len >= 5 || c->len == (int)sizeof c->buf)
				break;
			continue;
		}
		int e = wolfSSL_get_error(c->ssl, r);
		if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
			if (c->state == S_TICKET) {
				WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
				bool ok = s && wolfSSL_SESSION_is_resumable(s);
				if (s)
					wolfSSL_SESSION_free(s);
				if (ok)
					finish(w, c);
			}
			return;
		}
		if (e == WOLFSSL_ERROR_ZERO_RETURN || r == 0) {
			fail(w, c, c->state == S_TICKET ? "eof-ticket" : "eof-startup",
			     "server closed the connection %s",
			     c->state == S_TICKET ? "while waiting for a ticket" : "before replying to the StartupMessage");
			return;
		}
		ssl_fail(w, c, "read", r);
		return;
	}
	/* the first message's type and, for 'R', its code */
	char t = c->buf[0];
	if (t == 'R' && c->len >= 9)
		snprintf(w->reply, sizeof w->reply, "R%u", get32(c->buf + 5));
	else if (t == 'E') {
		char code[8]; /* fields from byte 5 */
		bool have = pg_error_fields(c->buf + 5, (uint32_t)(c->len - 5), code, NULL, 0);
		snprintf(w->reply, sizeof w->reply, "E%s", have ? code : "?");
	} else
		snprintf(w->reply, sizeof w->reply, "%c", t);
	finish(w, c);
}

static void handshake_step(struct worker *w, struct conn *c)
{
	int r = wolfSSL_connect(c->ssl);
	if (r == WOLFSSL_SUCCESS) {
		if (o_resume && c->offered && wolfSSL_session_reused(c->ssl) != 1)
			w->need_ticket = true; /* the server did not take it: take its new one */
		if (o_startup) {
			send_startup(w, c);
			return;
		}
		if (o_resume && w->need_ticket && !w->no_ticket) {
			WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
			bool ok = s && wolfSSL_SESSION_is_resumable(s); /* TLS 1.2: already */
			if (s)
				wolfSSL_SESSION_free(s);
			if (!ok) {
				c->state = S_TICKET;
				arm(w, c, EPOLLIN);
				on_tls_readable(w, c);
				return;
			}
		}
		finish(w, c);
		return;
	}
	int e = wolfSSL_get_error(c->ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ) {
		arm(w, c, EPOLLIN);
		return;
	}
	if (e == WOLFSSL_ERROR_WANT_WRITE) {
		arm(w, c, EPOLLOUT);
		return;
	}
	ssl_fail(w, c, "handshake", r);
}

static void on_sslreq_reply(struct worker *w, struct conn *c)
{
	char b;
	ssize_t r = recv(c->fd, &b, 1, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		fail(w, c, r == 0 ? "eof-sslrequest" : "recv-sslrequest", "no reply to SSLRequest: %s",
		     r == 0 ? "EOF" : strerror(errno));
		return;
	}
	if (b == 'N') {
		fail(w, c, "ssl-refused", "the server answered 'N' to SSLRequest (no TLS)");
		return;
	}
	if (b != 'S') {
		fail(w, c, "sslrequest-reply", "unexpected reply '%c' (0x%02x) to SSLRequest", b > 31 && b < 127 ? b : '?',
		     (unsigned char)b);
		return;
	}
	c->ssl = wolfSSL_new(w->ctx);
	if (!c->ssl) {
		fail(w, c, "client-nomem", "wolfSSL_new failed");
		return;
	}
	wolfSSL_set_fd(c->ssl, c->fd);
	if (o_resume && w->sess && !w->no_ticket) {
		if (wolfSSL_set_session(c->ssl, w->sess) == WOLFSSL_SUCCESS)
			c->offered = true;
	}
	c->state = S_HANDSHAKE;
	handshake_step(w, c);
}

static void on_connected(struct worker *w, struct conn *c)
{
	int err = connect_result(c->fd);
	if (err) {
		char key[48], msg[200];
		errno_reason("connect", err, key, msg);
		fail(w, c, key, "%s", msg);
		return;
	}
	ssize_t r = send(c->fd, pg_sslrequest, 8, MSG_NOSIGNAL);
	if (r != 8) {
		fail(w, c, "send-sslrequest", "send: %s", r < 0 ? strerror(errno) : "short");
		return;
	}
	c->state = S_SSLREQ;
	arm(w, c, EPOLLIN);
}

static void start_conn(struct worker *w, struct conn *c)
{
	char key[48], msg[200];
	c->t0 = now();
	c->fd = client_socket(loopback, w->seq++ * 7 + (unsigned long)w->id, key, msg);
	if (c->fd < 0) {
		fail(w, c, key, "%s", msg);
		return;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)(c - w->c) };
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		fail(w, c, "epoll-error", "epoll_ctl: %s", strerror(errno));
		return;
	}
	c->state = S_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) == 0) {
		on_connected(w, c);
		return;
	}
	if (errno != EINPROGRESS) {
		errno_reason("connect", errno, key, msg);
		fail(w, c, key, "%s", msg);
	}
}

static void dispatch(struct worker *w, struct conn *c)
{
	switch (c->state) {
	case S_CONNECTING: on_connected(w, c); break;
	case S_SSLREQ: on_sslreq_reply(w, c); break;
	case S_HANDSHAKE: handshake_step(w, c); break;
	case S_STARTUP: case S_TICKET: on_tls_readable(w, c); break;
	default: break;
	}
}

static void check_timeouts(struct worker *w, int n)
{
	double t = now();
	for (int i = 0; i < n; i++) {
		struct conn *c = &w->c[i];
		if (c->state == S_TICKET && t - c->t0 > TICKET_WAIT) {
			w->no_ticket = true; /* never ask again */
			w->need_ticket = false;
			finish(w, c);
		} else if (c->state != S_IDLE && t - c->t0 > o_timeout) {
			static const char *names[] = { "idle", "connect", "sslrequest", "handshake", "startup", "ticket" };
			char key[48];
			snprintf(key, sizeof key, "timeout-%s", names[c->state]);
			fail(w, c, key, "no progress within %.0f s", o_timeout);
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int n = o_probe ? 1 : o_inflight;
	struct epoll_event evs[256];
	double last_scan = now();
	bool started = false;
	w->need_ticket = true;
	for (int i = 0; i < n; i++) {
		w->c[i].fd = -1;
		w->c[i].state = S_IDLE;
	}
	for (;;) {
		int ph = atomic_load(&phase);
		if (ph == 2)
			break;
		bool busy = false;
		for (int i = 0; i < n; i++) {
			if (w->c[i].state == S_IDLE) {
				if (o_probe && started)
					continue;
				start_conn(w, &w->c[i]);
				started = true;
			}
			if (w->c[i].state != S_IDLE)
				busy = true;
		}
		if (o_probe && started && !busy)
			break;
		int k = epoll_wait(w->ep, evs, 256, 20);
		for (int i = 0; i < k; i++)
			dispatch(w, &w->c[evs[i].data.u64]);
		if (now() - last_scan > 0.05) {
			check_timeouts(w, n);
			last_scan = now();
		}
	}
	for (int i = 0; i < n; i++)
		conn_reset(&w->c[i]);
	return NULL;
}

/* ---- the parent ---- */

static int read_cpu_ticks(long pid, unsigned long long *ticks)
{
	char p[64], b[2048];
	snprintf(p, sizeof p, "/proc/%ld/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	size_t n = fread(b, 1, sizeof b - 1, f);
	fclose(f);
	b[n] = 0;
	char *s = strrchr(b, ')');
	if (!s)
		return -1;
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime cutime cstime */
	unsigned long long v[15] = { 0 };
	char *q = s + 2;
	for (int i = 0; i < 15 && *q; i++) {
		char *end;
		v[i] = strtoull(q, &end, 10);
		if (i == 0) /* state is a letter */
			end = q + 1;
		q = end;
		while (*q == ' ')
			q++;
	}
	/* v[0] = state, v[1] = ppid ... v[11] = utime, v[12] = stime, v[13] = cutime, v[14] = cstime */
	*ticks = v[11] + v[12] + v[13] + v[14];
	return 0;
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tlshs [-h host] [-p port] [-j threads] [-c inflight] [-T seconds] [-w warmup_s]\n"
		"             [-P server_pid] [-t target_name] [-U user] [-d db] [-W timeout_s]\n"
		"             [--resume] [--startup] [--probe] [--ciphers LIST] [--groups LIST] [--tls12|--tls13]\n"
		"       tlshs --crypto-speed\n");
	exit(2);
}

/* --crypto-speed */
static int crypto_speed(void)
{
	static unsigned char in[16384], out[16384];
	unsigned char key[32] = { 1, 2, 3 }, iv[12] = { 4, 5, 6 }, tag[16], aad[13] = { 7 };
	static const char *names[] = { "aes-128-gcm", "aes-256-gcm", "chacha20-poly1305" };
	static const int sizes[] = { 16384, 128 };
	for (int a = 0; a < 3; a++) {
		for (int z = 0; z < 2; z++) {
			int sz = sizes[z];
			Aes aes;
			if (a < 2) {
				if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0 || wc_AesGcmSetKey(&aes, key, a == 0 ? 16 : 32) != 0) {
					printf("crypto lib=wolfssl aead=%s error=setkey\n", names[a]);
					continue;
				}
			}
			long n = 0;
			double t0 = now(), t = t0;
			while (t - t0 < 0.5) {
				for (int k = 0; k < 16; k++, n++) {
					int r = a < 2 ? wc_AesGcmEncrypt(&aes, out, in, (word32)sz, iv, 12, tag, 16, aad, 13)
						      : wc_ChaCha20Poly1305_Encrypt(key, iv, aad, 13, in, (word32)sz, out, tag);
					if (r != 0) {
						printf("crypto lib=wolfssl aead=%s error=%d\n", names[a], r);
						return 1;
					}
				}
				t = now();
			}
			if (a < 2)
				wc_AesFree(&aes);
			printf("crypto lib=wolfssl aead=%s bytes=%d MBps=%.0f ns_per_record=%.0f\n", names[a], sz,
			       (double)n * sz / (t - t0) / 1e6, (t - t0) * 1e9 / (double)n);
		}
	}
	fflush(stdout);
	return 0;
}

static WOLFSSL_CTX *make_ctx(void)
{
	char err[4096];
	WOLFSSL_CTX *ctx = tls_client_ctx(o_version, o_ciphers ? o_ciphers : default_ciphers, o_groups, err, sizeof err);
	if (!ctx && err[0]) {
		fprintf(stderr, "tlshs: %s\n", err);
		exit(2);
	}
	return ctx;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "resume", no_argument, NULL, 'r' },	  { "startup", no_argument, NULL, 's' },
		{ "probe", no_argument, NULL, 'b' },	  { "ciphers", required_argument, NULL, 'C' },
		{ "groups", required_argument, NULL, 'G' }, { "tls12", no_argument, NULL, '2' },
		{ "tls13", no_argument, NULL, '3' },	  { "crypto-speed", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "h:p:j:c:T:w:P:t:U:d:W:", lo, NULL)) != -1) {
		switch (opt) {
		case 'h': o_host = optarg; break;
		case 'p': o_port = optarg; break;
		case 'j': o_threads = atoi(optarg); break;
		case 'c': o_inflight = atoi(optarg); break;
		case 'T': o_seconds = atof(optarg); break;
		case 'w': o_warmup = atof(optarg); break;
		case 'P': o_pid = atol(optarg); break;
		case 't': o_target = optarg; break;
		case 'U': o_user = optarg; break;
		case 'd': o_db = optarg; break;
		case 'W': o_timeout = atof(optarg); break;
		case 'r': o_resume = true; break;
		case 's': o_startup = true; break;
		case 'b': o_probe = true; break;
		case 'C': o_ciphers = optarg; break;
		case 'G': o_groups = optarg; break;
		case '2': o_version = 12; break;
		case '3': o_version = 13; break;
		case 'k': wolfSSL_Init(); return crypto_speed();
		default: usage();
		}
	}
	if (optind != argc || o_threads < 1 || o_threads > MAX_THREADS || o_inflight < 1 || o_seconds <= 0 ||
	    o_warmup < 0)
		usage();
	if (o_probe) {
		o_threads = 1;
		o_startup = true;
	}

	if (resolve_target("tlshs", o_host, o_port, &dst, &loopback))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	wolfSSL_Init();

	struct worker *ws = calloc((size_t)o_threads, sizeof *ws);
	for (int i = 0; i < o_threads; i++) {
		struct worker *w = &ws[i];
		w->id = i;
		w->ctx = make_ctx();
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->c = calloc((size_t)o_inflight, sizeof *w->c);
		if (!w->ctx || w->ep < 0 || !w->c) {
			fprintf(stderr, "tlshs: set-up failed\n");
			return 3;
		}
	}

	if (o_probe) {
		atomic_store(&phase, 1);
		worker_main(&ws[0]);
		struct worker *w = &ws[0];
		if (w->probe_rc) {
			printf("probe target=%s ok=0 reason=%s message=\"%s\"\n", o_target, w->probe_reason, w->probe_msg);
		} else {
			printf("probe target=%s ok=1 version=%s cipher=%s group=%s reply=%s resumable=%d\n", o_target,
			       w->version, w->cipher, w->group, w->reply, w->sess ? 1 : 0);
		}
		fflush(stdout);
		return w->probe_rc;
	}

	atomic_store(&phase, o_warmup > 0 ? 0 : 1);
	for (int i = 0; i < o_threads; i++)
		pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
	if (o_warmup > 0) {
		sleep_s(o_warmup);
		atomic_store(&phase, 1);
	}
	unsigned long long s0 = 0, s1 = 0;
	bool have_cpu = o_pid > 0 && read_cpu_ticks(o_pid, &s0) == 0;
	double c0 = self_cpu(), t0 = now();
	sleep_s(o_seconds);
	long done = 0, resumed = 0;
	for (int i = 0; i < o_threads; i++) {
		done += atomic_load(&ws[i].done);
		resumed += atomic_load(&ws[i].resumed);
	}
	double t1 = now(), c1 = self_cpu();
	if (have_cpu && read_cpu_ticks(o_pid, &s1) != 0)
		have_cpu = false;
	atomic_store(&phase, 2);
	for (int i = 0; i < o_threads; i++)
		pthread_join(ws[i].th, NULL);

	/* merge */
	struct reasons fr = { .n = 0 };
	long failed = 0, nlat = 0;
	bool no_ticket = false;
	const char *version = "?", *cipher = "?", *group = "?";
	for (int i = 0; i < o_threads; i++) {
		struct worker *w = &ws[i];
		failed += w->failed;
		nlat += w->nlat;
		no_ticket |= w->no_ticket;
		for (int k = 0; k < w->fails.n; k++)
			reason_add(&fr, w->fails.r[k].key, w->fails.r[k].msg, w->fails.r[k].count);
		if (w->version[0] && !strcmp(version, "?")) {
			version = w->version;
			cipher = w->cipher;
			group = w->group;
		}
	}
	double *lat = calloc((size_t)(nlat ? nlat : 1), sizeof *lat);
	long o = 0;
	for (int i = 0; i < o_threads; i++) {
		memcpy(lat + o, ws[i].lat, (size_t)ws[i].nlat * sizeof *lat);
		o += ws[i].nlat;
	}
	qsort(lat, (size_t)nlat, sizeof *lat, cmp_double);
#define PCT(p) (nlat ? lat[(long)ceil((p) * nlat) - 1 < 0 ? 0 : (long)ceil((p) * nlat) - 1] : NAN)
	double secs = t1 - t0, hz = (double)sysconf(_SC_CLK_TCK);
	char scpu[32] = "na", sper[32] = "na", cper[32] = "na";
	if (have_cpu) {
		snprintf(scpu, sizeof scpu, "%.3f", (double)(s1 - s0) / hz);
		if (done > 0)
			snprintf(sper, sizeof sper, "%.1f", (double)(s1 - s0) / hz * 1e6 / (double)done);
	}
	if (done > 0)
		snprintf(cper, sizeof cper, "%.1f", (c1 - c0) * 1e6 / (double)done);
	char errs[1024], first[300];
	reasons_format(&fr, errs, sizeof errs);
	reasons_first(&fr, first, sizeof first);
	printf("tlshs target=%s mode=%s startup=%d threads=%d inflight=%d seconds=%.2f handshakes=%ld hs_per_sec=%.1f "
	       "resumed=%ld failed=%ld server_cpu_s=%s server_cpu_us_per_hs=%s client_cpu_us_per_hs=%s "
	       "lat_p50_ms=%.3f lat_p99_ms=%.3f version=%s cipher=%s group=%s no_ticket=%d errors=\"%s\" first_error=\"%s\"\n",
	       o_target, o_resume ? "resume" : "full", o_startup, o_threads, o_inflight, secs, done, done / secs, resumed,
	       failed, scpu, sper, cper, PCT(0.5), PCT(0.99), version, cipher, group, no_ticket, errs, first);
	for (int i = 0; i < fr.n; i++)
		printf("error target=%s reason=%s count=%ld message=\"%s\"\n", o_target, fr.r[i].key, fr.r[i].count,
		       fr.r[i].msg);
	fflush(stdout);
	return done > 0 && failed == 0 ? 0 : 1;
}
