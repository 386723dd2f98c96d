/* tests/integration/quickquit.c: clients that leave at once, and a session-mode
 * check of the backend PID a client is given.
 *
 *   quickquit [-n CONNS] [-t THREADS] [-U USER] [-d DB] [-W PASSWORD] [-V VARIANTS]
 *             [-T TIMEOUT_S] [-v] HOST PORT
 *
 *   Opens CONNS connections (default 2000) over THREADS threads (default 4, one
 *   socket open per thread at a time), each sending a StartupMessage and then a
 *   Terminate at once, in one of these ways (cycled over VARIANTS, default
 *   "abcdef"):
 *     a  StartupMessage and Terminate in one write
 *     b  StartupMessage, then Terminate in a second write right after
 *     c  StartupMessage, then Terminate after a random 0-2 ms pause
 *     d  StartupMessage, then Terminate as soon as the first bytes came back
 *     e  StartupMessage and Terminate in one write, then shutdown(SHUT_WR)
 *     f  SSLRequest, its one-byte answer, then StartupMessage and Terminate in one write
 *     g  StartupMessage, PasswordMessage (-W, cleartext) and Terminate in one write
 *     x  Terminate, then StartupMessage, in one write (what node-postgres sends when
 *        Client.end() comes before the socket connected: net.Socket queues the
 *        Terminate, and the 'connect' handler writes the StartupMessage after it)
 *     y  Terminate, then StartupMessage in a second write right after
 *   (PostgreSQL answers x and y with nothing: a bad startup length is only logged.)
 *   and reads everything that comes back until the peer closes. Every byte must
 *   parse as backend messages: a known type byte, a length of at least 4 and at
 *   most 1 MiB, a body that is well formed for the types whose layout is fixed
 *   (R K Z S E N v), and the stream must end on a message boundary.
 *   Prints one summary line:
 *     conns=N ok=N malformed=N truncated=N timeouts=N connect_errors=N resets=N bytes=N msgs=N
 *   then one line per distinct last message ("last: COUNT E FATAL 08P01 text" or
 *   "last: COUNT none"), and for each malformed stream (the first 5) its hex dump.
 *   Exit 0: every stream well formed and closed; 1: some malformed, truncated or
 *   hung (no close within TIMEOUT_S, default 10); 2: usage or no connection at all.
 *
 *   quickquit pid CONNINFO [WAIT_S [SQL]]
 *
 *   Connects with libpq and prints "key_pid=P backend_pid=B" (P: the PID in the
 *   BackendKeyData, PQbackendPID; B: SELECT pg_backend_pid()); runs SQL if given
 *   ("sql: ok" or "sql: error SQLSTATE MESSAGE"). Then, with WAIT_S,
 *   waits up to WAIT_S seconds for the server to say something on its own (a
 *   FATAL after pg_terminate_backend or a timeout), reads it, and prints what
 *   libpq saw, one line each, then tries "SELECT 1":
 *     notice: SEVERITY SQLSTATE MESSAGE     (an error or notice that came unasked)
 *     select: ok | error SQLSTATE|none MESSAGE  (the first line of libpq's message)
 *     status: ok | bad                       (PQstatus afterwards)
 *   or "wait: timeout" when nothing came. Exit 0 after a connection, 2 when the
 *   connection failed ("connect: MESSAGE").
 *
 *   quickquit script HOST PORT USER PASSWORD DB < SCRIPT
 *
 *   Several raw connections driven by a script read from stdin, one step a line
 *   (fields separated by tabs; blank lines and lines starting with # ignored):
 *     connect N [NAME=VALUE]...   open connection N with these StartupMessage
 *                                 parameters besides user and database (any
 *                                 name, "options" included, sent as given);
 *                                 cleartext and md5 passwords, no SCRAM
 *     N SQL                       one simple Query on connection N, answered in full
 *     close N                     Terminate and close
 *   Prints, per step, lines starting with "N: ": "connected", each row's fields
 *   joined by '|' (NULL as \N), "ERROR SQLSTATE MESSAGE", "FATAL SQLSTATE
 *   MESSAGE", "closed" (the server closed the connection; every later step on it
 *   prints "closed" again). Notices and ParameterStatus are not printed. Exit 0. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
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

#define MAX_MSG (1u << 20)
#define MAX_STREAM (64u * 1024)
#define MAX_LAST 64
#define MAX_DUMPS 5

static const char *opt_host, *opt_user = "app", *opt_db = "app", *opt_pass, *opt_variants = "abcdef";
static int opt_port, opt_conns = 2000, opt_threads = 4, opt_timeout = 10, verbose;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int next_conn;
static long n_ok, n_malformed, n_truncated, n_timeouts, n_connect_errors, n_resets, n_bytes, n_msgs;
static struct {
	char text[200];
	long count;
} lasts[MAX_LAST];
static int n_lasts, n_dumps;

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static size_t build_startup(uint8_t *b, size_t cap, int i)
{
	char appname[64];
	snprintf(appname, sizeof appname, "quickquit-%d", i);
	const char *kv[] = { "user", opt_user, "database", opt_db, "application_name", appname, NULL };
	size_t n = 8;
	for (int k = 0; kv[k]; k++) {
		size_t l = strlen(kv[k]) + 1;
		if (n + l + 1 > cap)
			return 0;
		memcpy(b + n, kv[k], l);
		n += l;
	}
	b[n++] = 0;
	put_u32(b, (uint32_t)n);
	put_u32(b + 4, 3u << 16);
	return n;
}

static size_t build_password(uint8_t *b, const char *pw)
{
	size_t l = strlen(pw) + 1;
	b[0] = 'p';
	put_u32(b + 1, (uint32_t)(4 + l));
	memcpy(b + 5, pw, l);
	return 5 + l;
}

static const uint8_t terminate_msg[5] = { 'X', 0, 0, 0, 4 };

static bool write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	while (n) {
		ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		q += w;
		n -= (size_t)w;
	}
	return true;
}

/* Strings inside a body: each NUL-terminated within [p, end). */
static bool read_cstr(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
	if (!z)
		return false;
	*p = z + 1;
	return true;
}

/* Check one complete message's body; why gets a reason on failure. */
static bool body_ok(uint8_t type, const uint8_t *b, uint32_t n, const char **why)
{
	const uint8_t *p = b, *end = b + n;
	switch (type) {
	case 'R': {
		if (n < 4)
			return *why = "AuthenticationRequest without a code", false;
		uint32_t code = get_u32(b);
		bool ok = (code == 0 && n == 4) || (code == 3 && n == 4) || (code == 5 && n == 8) ||
			  (code == 10 && n >= 6 && b[n - 1] == 0) || ((code == 11 || code == 12) && n >= 5);
		if (!ok)
			*why = "AuthenticationRequest with an unknown code or a wrong length";
		return ok;
	}
	case 'K':
		if (n != 8)
			*why = "BackendKeyData not 8 bytes";
		return n == 8;
	case 'Z':
		if (n != 1 || (b[0] != 'I' && b[0] != 'T' && b[0] != 'E'))
			return *why = "ReadyForQuery malformed", false;
		return true;
	case 'S':
		if (!read_cstr(&p, end) || !read_cstr(&p, end) || p != end)
			return *why = "ParameterStatus not two strings", false;
		return true;
	case 'E':
	case 'N':
		while (p < end && *p) {
			p++;
			if (!read_cstr(&p, end))
				return *why = "Error/NoticeResponse field not terminated", false;
		}
		if (p + 1 != end)
			return *why = "Error/NoticeResponse not ending with its terminator", false;
		return true;
	case 'v':
		if (n < 8)
			return *why = "NegotiateProtocolVersion too short", false;
		return true;
	default:
		return true;
	}
}

static bool known_type(uint8_t t)
{
	return t && strchr("RSKZEN123CDTtnIsGHWdcAvV", t) != NULL;
}

/* The last message, for the summary: "E FATAL 08P01 message" or its type. */
static void describe(uint8_t type, const uint8_t *b, uint32_t n, char *out, size_t cap)
{
	if (type != 'E' && type != 'N') {
		snprintf(out, cap, "%c", type);
		return;
	}
	const char *sev = "?", *code = "?", *msg = "?";
	const uint8_t *p = b, *end = b + n;
	while (p < end && *p) {
		uint8_t f = *p++;
		const char *s = (const char *)p;
		if (!read_cstr(&p, end))
			break;
		if (f == 'V' || (f == 'S' && !strcmp(sev, "?")))
			sev = s;
		else if (f == 'C')
			code = s;
		else if (f == 'M')
			msg = s;
	}
	snprintf(out, cap, "%c %s %s %s", type, sev, code, msg);
}

static void dump(int i, char variant, const uint8_t *b, size_t n, size_t at, const char *why)
{
	if (n_dumps >= MAX_DUMPS)
		return;
	n_dumps++;
	fprintf(stdout, "malformed: conn %d variant %c: %s at byte %zu of %zu:", i, variant, why, at, n);
	for (size_t k = 0; k < n && k < 256; k++)
		fprintf(stdout, "%s%02x", k % 32 ? " " : "\n  ", b[k]);
	fprintf(stdout, "\n  text:");
	for (size_t k = 0; k < n && k < 256; k++)
		fputc(isprint(b[k]) ? b[k] : '.', stdout);
	fputc('\n', stdout);
}

static void count_last(const char *text)
{
	for (int k = 0; k < n_lasts; k++)
		if (!strcmp(lasts[k].text, text)) {
			lasts[k].count++;
			return;
		}
	if (n_lasts < MAX_LAST) {
		snprintf(lasts[n_lasts].text, sizeof lasts[n_lasts].text, "%s", text);
		lasts[n_lasts++].count = 1;
	}
}

static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port) };
	inet_pton(AF_INET, opt_host, &sa.sin_addr);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = { .tv_sec = opt_timeout };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One connection of the given variant. */
static void one(int i, char variant, uint8_t *in, unsigned *seed)
{
	uint8_t out[1024];
	size_t n = build_startup(out, sizeof out, i);
	int fd = tcp_connect();
	if (fd < 0) {
		pthread_mutex_lock(&mu);
		n_connect_errors++;
		pthread_mutex_unlock(&mu);
		return;
	}
	size_t have = 0;
	bool sent = true;
	switch (variant) {
	case 'b':
		sent = write_all(fd, out, n) && write_all(fd, terminate_msg, 5);
		break;
	case 'c': {
		sent = write_all(fd, out, n);
		struct timespec ts = { 0, (long)(rand_r(seed) % 2000) * 1000 };
		nanosleep(&ts, NULL);
		sent = sent && write_all(fd, terminate_msg, 5);
		break;
	}
	case 'd': {
		sent = write_all(fd, out, n);
		ssize_t r = sent ? recv(fd, in, MAX_STREAM, 0) : -1;
		if (r > 0)
			have = (size_t)r;
		sent = sent && write_all(fd, terminate_msg, 5);
		break;
	}
	case 'f': {
		uint8_t ssl[8];
		put_u32(ssl, 8);
		put_u32(ssl + 4, 80877103);
		uint8_t a = 0;
		sent = write_all(fd, ssl, 8) && recv(fd, &a, 1, MSG_WAITALL) == 1 && a == 'N';
		if (!sent) {
			close(fd);
			pthread_mutex_lock(&mu);
			n_malformed++;
			dump(i, variant, &a, 1, 0, "SSLRequest not answered with N");
			pthread_mutex_unlock(&mu);
			return;
		}
		memcpy(out + n, terminate_msg, 5);
		sent = write_all(fd, out, n + 5);
		break;
	}
	case 'x':
		memmove(out + 5, out, n);
		memcpy(out, terminate_msg, 5);
		sent = write_all(fd, out, n + 5);
		break;
	case 'y':
		sent = write_all(fd, terminate_msg, 5) && write_all(fd, out, n);
		break;
	case 'g':
		n += build_password(out + n, opt_pass ? opt_pass : "");
		/* fall through */
	default: /* a, e */
		memcpy(out + n, terminate_msg, 5);
		sent = write_all(fd, out, n + 5);
		if (variant == 'e')
			shutdown(fd, SHUT_WR);
		break;
	}
	(void)sent;   /* a refused write still lets us read what was said */
	bool timeout = false, reset = false;
	for (;;) {
		if (have >= MAX_STREAM)
			break;
		ssize_t r = recv(fd, in + have, MAX_STREAM - have, 0);
		if (r > 0) {
			have += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			timeout = true;
		else
			reset = true;
		break;
	}
	close(fd);
	/* parse */
	size_t at = 0;
	long msgs = 0;
	const char *why = NULL;
	char last[200] = "none";
	while (at < have) {
		if (have - at < 5) {
			why = "stream ends inside a message header";
			break;
		}
		uint8_t type = in[at];
		uint32_t len = get_u32(in + at + 1);
		if (!known_type(type)) {
			why = "unknown message type";
			break;
		}
		if (len < 4 || len > MAX_MSG) {
			why = "message length below 4 or above 1 MiB";
			break;
		}
		if (have - at - 1 < len) {
			why = "stream ends inside a message body";
			break;
		}
		if (!body_ok(type, in + at + 5, len - 4, &why))
			break;
		describe(type, in + at + 5, len - 4, last, sizeof last);
		msgs++;
		at += 1 + len;
	}
	bool truncated = why && (!strcmp(why, "stream ends inside a message header") ||
				 !strcmp(why, "stream ends inside a message body"));
	pthread_mutex_lock(&mu);
	n_bytes += (long)have;
	n_msgs += msgs;
	if (reset)
		n_resets++;
	if (why) {
		if (truncated)
			n_truncated++;
		else
			n_malformed++;
		dump(i, variant, in, have, at, why);
	} else if (timeout) {
		n_timeouts++;
		if (verbose)
			fprintf(stdout, "timeout: conn %d variant %c, %zu bytes\n", i, variant, have);
	} else {
		n_ok++;
		count_last(last);
	}
	pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + (unsigned)time(NULL);
	uint8_t *in = malloc(MAX_STREAM);
	if (!in)
		return NULL;
	size_t nv = strlen(opt_variants);
	for (;;) {
		pthread_mutex_lock(&mu);
		int i = next_conn < opt_conns ? next_conn++ : -1;
		pthread_mutex_unlock(&mu);
		if (i < 0)
			break;
		one(i, opt_variants[(size_t)i % nv], in, &seed);
	}
	free(in);
	return NULL;
}

/* ---- pid mode (libpq) ---- */

static void first_line(const char *m, char *out, size_t cap)
{
	size_t k = 0;
	while (m && m[k] && m[k] != '\n' && k + 1 < cap) {
		out[k] = m[k];
		k++;
	}
	out[k] = 0;
}

static void on_notice(void *arg, const PGresult *r)
{
	(void)arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	printf("notice: %s %s %s\n", sev ? sev : "?", code ? code : "none", msg ? msg : "?");
}

static int pid_mode(const char *conninfo, int wait_s, const char *sql)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		char line[512];
		first_line(PQerrorMessage(c), line, sizeof line);
		printf("connect: %s\n", line);
		PQfinish(c);
		return 2;
	}
	PQsetNoticeReceiver(c, on_notice, NULL);
	PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
	printf("key_pid=%d backend_pid=%s\n", PQbackendPID(c),
	       PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "error");
	PQclear(r);
	if (sql) {
		r = PQexec(c, sql);
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			printf("sql: ok\n");
		} else {
			char line[512];
			const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			first_line(PQerrorMessage(c), line, sizeof line);
			printf("sql: error %s %s\n", code ? code : "none", line);
		}
		PQclear(r);
	}
	if (wait_s > 0) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int k = poll(&pfd, 1, wait_s * 1000);
		if (k <= 0) {
			printf("wait: timeout\n");
			PQfinish(c);
			return 0;
		}
		/* read what comes, and the close behind it (up to 3 s more) */
		for (int ms = 0; ms < 3000 && PQstatus(c) == CONNECTION_OK; ms += 50) {
			if (!PQconsumeInput(c))
				break;
			pfd.revents = 0;
			poll(&pfd, 1, 50);
		}
		r = PQexec(c, "SELECT 1");
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			printf("select: ok\n");
		} else {
			char line[512];
			const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			first_line(PQerrorMessage(c), line, sizeof line);
			printf("select: error %s %s\n", code ? code : "none", line);
		}
		PQclear(r);
		printf("status: %s\n", PQstatus(c) == CONNECTION_OK ? "ok" : "bad");
	}
	PQfinish(c);
	return 0;
}

/* ---- script mode: raw connections driven from stdin ---- */

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/md5.h>

#define SCRIPT_CONNS 32

struct sconn {
	int fd;
	bool open;
	uint8_t *in;
	size_t have, cap, consumed;   /* consumed: the message last handed out */
};

static struct sconn sconns[SCRIPT_CONNS];
static const char *s_host, *s_user, *s_pass, *s_db;
static int s_port;

static void md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	wc_Md5 md5;
	uint8_t d[16];
	wc_InitMd5(&md5);
	wc_Md5Update(&md5, a, (word32)alen);
	wc_Md5Update(&md5, b, (word32)blen);
	wc_Md5Final(&md5, d);
	wc_Md5Free(&md5);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* The next whole message of connection k into *type, *body, *len; false: closed. */
static bool s_next(int k, uint8_t *type, const uint8_t **body, uint32_t *len)
{
	struct sconn *c = &sconns[k];
	if (c->consumed) {
		memmove(c->in, c->in + c->consumed, c->have - c->consumed);
		c->have -= c->consumed;
		c->consumed = 0;
	}
	for (;;) {
		if (c->have >= 5) {
			uint32_t l = get_u32(c->in + 1);
			if (l < 4 || l > MAX_MSG) {
				printf("%d: MALFORMED length %u\n", k, l);
				return false;
			}
			if (c->have >= 1 + (size_t)l) {
				*type = c->in[0];
				*body = c->in + 5;
				*len = l - 4;
				c->consumed = 1 + l;
				return true;
			}
			if (c->cap < 1 + (size_t)l) {
				c->cap = 1 + (size_t)l;
				c->in = realloc(c->in, c->cap);
			}
		}
		if (c->cap - c->have < 4096) {
			c->cap = c->cap * 2 + 8192;
			c->in = realloc(c->in, c->cap);
		}
		ssize_t r = recv(c->fd, c->in + c->have, c->cap - c->have, 0);
		if (r > 0) {
			c->have += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			printf("%d: TIMEOUT\n", k);
		return false;
	}
}

static void s_error(int k, const char *what, const uint8_t *b, uint32_t n)
{
	const char *code = "?", *msg = "?";
	const uint8_t *p = b, *end = b + n;
	while (p < end && *p) {
		uint8_t f = *p++;
		const char *str = (const char *)p;
		if (!read_cstr(&p, end))
			break;
		if (f == 'C')
			code = str;
		else if (f == 'M')
			msg = str;
	}
	printf("%d: %s %s %s\n", k, what, code, msg);
}

static bool s_is_fatal(const uint8_t *b, uint32_t n)
{
	const uint8_t *p = b, *end = b + n;
	while (p < end && *p) {
		uint8_t f = *p++;
		const char *str = (const char *)p;
		if (!read_cstr(&p, end))
			return false;
		if (f == 'V' || f == 'S')
			return !strcmp(str, "FATAL") || !strcmp(str, "PANIC");
	}
	return false;
}

static void s_closed(int k)
{
	if (sconns[k].open)
		close(sconns[k].fd);
	sconns[k].open = false;
	printf("%d: closed\n", k);
}

/* Read until ReadyForQuery, printing rows and errors. */
static void s_until_ready(int k)
{
	uint8_t type;
	const uint8_t *b;
	uint32_t n;
	while (s_next(k, &type, &b, &n)) {
		switch (type) {
		case 'Z':
			return;
		case 'E':
			if (s_is_fatal(b, n)) {
				s_error(k, "FATAL", b, n);
				s_closed(k);
				return;
			}
			s_error(k, "ERROR", b, n);
			break;
		case 'D': {
			uint16_t nf = (uint16_t)(b[0] << 8 | b[1]);
			const uint8_t *p = b + 2;
			printf("%d: ", k);
			for (int f = 0; f < nf; f++) {
				int32_t l = (int32_t)get_u32(p);
				p += 4;
				if (f)
					putchar('|');
				if (l < 0) {
					fputs("\\N", stdout);
				} else {
					fwrite(p, 1, (size_t)l, stdout);
					p += l;
				}
			}
			putchar('\n');
			break;
		}
		default:
			break;
		}
	}
	s_closed(k);
}

static void s_connect(int k, char **params, int np)
{
	struct sconn *c = &sconns[k];
	if (c->open)
		close(c->fd);
	c->have = c->consumed = 0;
	c->open = false;
	opt_host = s_host;
	opt_port = s_port;
	opt_timeout = 30;
	c->fd = tcp_connect();
	if (c->fd < 0) {
		printf("%d: connect failed: %s\n", k, strerror(errno));
		return;
	}
	c->open = true;
	size_t cap = 64 + strlen(s_user) + strlen(s_db);
	for (int i = 0; i < np; i++)
		cap += strlen(params[i]) + 2;
	uint8_t *m = malloc(cap);
	size_t len = 8;
	const char *fixed[] = { "user", s_user, "database", s_db };
	for (int i = 0; i < 4; i++) {
		memcpy(m + len, fixed[i], strlen(fixed[i]) + 1);
		len += strlen(fixed[i]) + 1;
	}
	for (int i = 0; i < np; i++) {
		char *eq = strchr(params[i], '=');
		if (!eq)
			continue;
		memcpy(m + len, params[i], (size_t)(eq - params[i]));
		len += (size_t)(eq - params[i]);
		m[len++] = 0;
		memcpy(m + len, eq + 1, strlen(eq + 1) + 1);
		len += strlen(eq + 1) + 1;
	}
	m[len++] = 0;
	put_u32(m, (uint32_t)len);
	put_u32(m + 4, 3u << 16);
	write_all(c->fd, m, len);
	free(m);
	uint8_t type;
	const uint8_t *b;
	uint32_t n;
	while (s_next(k, &type, &b, &n)) {
		if (type == 'E') {
			s_error(k, "FATAL", b, n);
			s_closed(k);
			return;
		}
		if (type == 'Z') {
			printf("%d: connected\n", k);
			return;
		}
		if (type != 'R' || n < 4)
			continue;
		uint32_t code = get_u32(b);
		uint8_t out[512];
		if (code == 3) {
			write_all(c->fd, out, build_password(out, s_pass));
		} else if (code == 5 && n >= 8) {
			char inner[33], outer[36];
			md5_hex(s_pass, strlen(s_pass), s_user, strlen(s_user), inner);
			memcpy(outer, "md5", 3);
			md5_hex(inner, 32, b + 4, 4, outer + 3);
			write_all(c->fd, out, build_password(out, outer));
		} else if (code != 0) {
			printf("%d: unsupported authentication %u\n", k, code);
			s_closed(k);
			return;
		}
	}
	s_closed(k);
}

static int script_mode(char **argv)
{
	s_host = argv[0];
	s_port = atoi(argv[1]);
	s_user = argv[2];
	s_pass = argv[3];
	s_db = argv[4];
	setvbuf(stdout, NULL, _IOLBF, 0);
	char *line = NULL;
	size_t lcap = 0;
	ssize_t ll;
	while ((ll = getline(&line, &lcap, stdin)) > 0) {
		if (line[ll - 1] == '\n')
			line[--ll] = 0;
		if (!ll || line[0] == '#')
			continue;
		char *f[64];
		int nf = 0;
		for (char *p = line, *t; nf < 64; p = t + 1) {
			f[nf++] = p;
			if (!(t = strchr(p, '\t')))
				break;
			*t = 0;
		}
		if (!strcmp(f[0], "connect") && nf >= 2) {
			int k = atoi(f[1]);
			if (k >= 0 && k < SCRIPT_CONNS)
				s_connect(k, f + 2, nf - 2);
			continue;
		}
		if (!strcmp(f[0], "close") && nf >= 2) {
			int k = atoi(f[1]);
			if (k >= 0 && k < SCRIPT_CONNS && sconns[k].open) {
				write_all(sconns[k].fd, terminate_msg, 5);
				close(sconns[k].fd);
				sconns[k].open = false;
			}
			continue;
		}
		int k = atoi(f[0]);
		if (nf < 2 || k < 0 || k >= SCRIPT_CONNS) {
			printf("bad script line: %s\n", f[0]);
			continue;
		}
		if (!sconns[k].open) {
			printf("%d: closed\n", k);
			continue;
		}
		size_t ql = strlen(f[1]) + 1;
		uint8_t *m = malloc(5 + ql);
		m[0] = 'Q';
		put_u32(m + 1, (uint32_t)(4 + ql));
		memcpy(m + 5, f[1], ql);
		bool ok = write_all(sconns[k].fd, m, 5 + ql);
		free(m);
		if (!ok) {
			s_closed(k);
			continue;
		}
		s_until_ready(k);
	}
	free(line);
	for (int k = 0; k < SCRIPT_CONNS; k++)
		if (sconns[k].open) {
			write_all(sconns[k].fd, terminate_msg, 5);
			close(sconns[k].fd);
		}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 7 && !strcmp(argv[1], "script"))
		return script_mode(argv + 2);
	if (argc >= 3 && !strcmp(argv[1], "pid"))
		return pid_mode(argv[2], argc > 3 ? atoi(argv[3]) : 0, argc > 4 ? argv[4] : NULL);
	int opt;
	while ((opt = getopt(argc, argv, "n:t:U:d:W:V:T:v")) != -1) {
		switch (opt) {
		case 'n': opt_conns = atoi(optarg); break;
		case 't': opt_threads = atoi(optarg); break;
		case 'U': opt_user = optarg; break;
		case 'd': opt_db = optarg; break;
		case 'W': opt_pass = optarg; break;
		case 'V': opt_variants = optarg; break;
		case 'T': opt_timeout = atoi(optarg); break;
		case 'v': verbose = 1; break;
		default: goto usage;
		}
	}
	if (argc - optind != 2 || opt_threads < 1 || opt_threads > 256 || opt_conns < 1 || !*opt_variants)
		goto usage;
	for (const char *v = opt_variants; *v; v++)
		if (!strchr("abcdefgxy", *v))
			goto usage;
	opt_host = argv[optind];
	opt_port = atoi(argv[optind + 1]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t th[256];
	for (int k = 0; k < opt_threads; k++)
		if (pthread_create(&th[k], NULL, worker, (void *)(uintptr_t)k)) {
			fprintf(stderr, "quickquit: pthread_create failed\n");
			return 2;
		}
	for (int k = 0; k < opt_threads; k++)
		pthread_join(th[k], NULL);
	printf("conns=%d ok=%ld malformed=%ld truncated=%ld timeouts=%ld connect_errors=%ld resets=%ld bytes=%ld msgs=%ld\n",
	       opt_conns, n_ok, n_malformed, n_truncated, n_timeouts, n_connect_errors, n_resets, n_bytes, n_msgs);
	for (int k = 0; k < n_lasts; k++)
		printf("last: %ld %s\n", lasts[k].count, lasts[k].text);
	if (n_connect_errors == opt_conns)
		return 2;
	return n_malformed || n_truncated || n_timeouts ? 1 : 0;
usage:
	fprintf(stderr, "usage: quickquit [-n CONNS] [-t THREADS] [-U USER] [-d DB] [-W PASSWORD] [-V abcdefgxy] "
			"[-T TIMEOUT_S] [-v] HOST PORT\n       quickquit pid CONNINFO [WAIT_S [SQL]]\n"
			"       quickquit script HOST PORT USER PASSWORD DB < SCRIPT\n");
	return 2;
}
