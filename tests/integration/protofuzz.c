/* tests/integration/protofuzz.c: a protocol fuzzer against a running pgring (issue 17,
 * point 2). For SECONDS it runs, all at once:
 *
 *  - BAD raw-socket clients (no libpq on the wire; pgring must use auth_type = trust),
 *    each looping: log in, build a valid message stream (simple Query, Parse/Bind/
 *    Describe/Execute/Sync/Flush/Close, COPY FROM STDIN with CopyData/CopyDone/
 *    CopyFail, SET, PREPARE/EXECUTE, BEGIN/COMMIT), mutate it (flip bytes, truncate,
 *    duplicate or drop messages, insert junk, lengths 0/3/huge/off by a few, COPY
 *    messages outside COPY), send it in random pieces and then either (a) add a
 *    marker query and wait for it, (b) half-close, or (c) reset mid-message. Whatever
 *    comes back must be well-formed backend messages (known type, sane length,
 *    ReadyForQuery/ErrorResponse bodies parsed), nothing after a FATAL, and the
 *    connection must end with the marker answered, an ErrorResponse or a close:
 *    when the marker is not answered within 1 s the client half-closes and pgring
 *    must close within 10 s (a hang is a failure).
 *  - a cancel storm: CancelRequests with random keys and with the real keys of the
 *    bad clients (past and present); pgring must close each within 5 s.
 *  - GOOD libpq clients (15 s without progress is a hang), each with an id, looping a self-checking transcript whose
 *    expected answers come from the client's id and from a direct connection to
 *    PostgreSQL (-r PORT): its own application_name (SET) and the server defaults of
 *    statement_timeout/search_path/DateStyle (which bad clients SET otherwise), a
 *    protocol prepared statement "s1" and an SQL one "q1" whose texts differ per
 *    client (bad clients prepare the same names), 50 rows tagged with its id, and
 *    rows it inserts into pf_rows (in a transaction, except in statement mode)
 *    counted against its own tally. Any mismatch or error is a failure, printed;
 *    the client then logs in again (its tally re-read directly) and goes on. A
 *    client stuck 15 s is a hang: the servers' pg_stat_activity rows are shown,
 *    its socket is shut down so its thread goes on, and the run continues.
 *  - with -P PID: pgring's VmRSS sampled every 100 ms; over -R MB is a failure, and
 *    pgring gone is a failure.
 *
 *   protofuzz [-h HOST] -p PORT -r DIRECT_PORT [-U USER] [-W PASSWORD] [-d DB] [-m MODE] [-s SECONDS]
 *             [-S SEED] [-b BAD] [-g GOOD] [-P PID] [-R RSS_MB] [-M MAX_PACKET] [-v]
 *
 * MODE (session|transaction|statement) shapes the good transcript. The seed is
 * printed; each bad connection's stream is a function of (seed, thread, connection
 * number), printed with any failure. Exit 0: no failure; 1: failures (listed). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

static const char *opt_host = "127.0.0.1";
static int opt_port, opt_direct_port;
static const char *opt_user = "app", *opt_pass = "app", *opt_db = "app", *opt_mode = "transaction";
static int opt_seconds = 10, opt_bad = 8, opt_good = 4, opt_pid, opt_rss_mb, verbose;
static long opt_max_packet = 1 << 20;
static uint64_t opt_seed;
static int one_thread = -1;
static bool no_real_keys; /* -K: the cancel storm uses random keys only */
static long one_conn = -1; /* -1 T:C: only that bad connection, its replies shown */

static uint64_t t_end_ms;
static atomic_int failures;
static atomic_bool stop_all;

/* outcome counters of bad connections */
enum { O_MARKER, O_ERROR_CLOSE, O_CLOSE, O_HALFCLOSE_CLOSE, O_RST, O_CANCEL, O_N };
static const char *o_name[O_N] = { "marker answered", "error then close", "closed", "closed after half-close",
				   "reset by us", "cancel requests" };
static atomic_long outcomes[O_N];
static atomic_long good_iters, bad_conns, bad_errors_seen;
static atomic_long rss_max_kb;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&out_mu);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	va_end(ap);
}
#define FAILURE(...)                                                                                          \
	do {                                                                                                  \
		if (atomic_fetch_add(&failures, 1) < 30)                                                      \
			report("FAILURE: " __VA_ARGS__);                                                      \
	} while (0)

/* ---- PRNG: xorshift64*, one per thread/connection ---- */
struct rng {
	uint64_t s;
};
static uint64_t rnd(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ULL;
}
static uint32_t rn(struct rng *r, uint32_t n) { return n ? (uint32_t)(rnd(r) % n) : 0; }
static void rng_seed(struct rng *r, uint64_t a, uint64_t b, uint64_t c)
{
	r->s = (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL) ^ (c * 0x165667B19E3779F9ULL) ^ 0x5DEECE66DULL;
	if (!r->s)
		r->s = 1;
	for (int i = 0; i < 4; i++)
		rnd(r);
}

/* ---- byte buffers and messages ---- */
struct buf {
	uint8_t *p;
	size_t n, cap;
};
static void b_put(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}
static void b_u32(struct buf *b, uint32_t v)
{
	uint32_t be = htonl(v);
	b_put(b, &be, 4);
}
static void b_u16(struct buf *b, uint16_t v)
{
	uint16_t be = htons(v);
	b_put(b, &be, 2);
}
static void b_str(struct buf *b, const char *s) { b_put(b, s, strlen(s) + 1); }

/* A stream is a list of messages (each type + length + body) so that mutations can
 * work per message; it is flattened before sending. */
#define MAXMSG 64
struct stream {
	struct buf m[MAXMSG];
	int n;
};
static struct buf *msg_begin(struct stream *st, char type)
{
	if (st->n >= MAXMSG)
		return NULL;
	struct buf *b = &st->m[st->n++];
	b->n = 0;
	b_put(b, &type, 1);
	b_u32(b, 0);
	return b;
}
static void msg_end(struct buf *b)
{
	if (!b)
		return;
	uint32_t be = htonl((uint32_t)(b->n - 1));
	memcpy(b->p + 1, &be, 4);
}
static void add_query(struct stream *st, const char *sql)
{
	struct buf *b = msg_begin(st, 'Q');
	if (!b)
		return;
	b_str(b, sql);
	msg_end(b);
}
static void add_parse(struct stream *st, const char *name, const char *sql, int nparams)
{
	struct buf *b = msg_begin(st, 'P');
	if (!b)
		return;
	b_str(b, name);
	b_str(b, sql);
	b_u16(b, (uint16_t)nparams);
	for (int i = 0; i < nparams; i++)
		b_u32(b, 23); /* int4 */
	msg_end(b);
}
static void add_bind(struct stream *st, const char *portal, const char *stmt, int nparams, int value)
{
	struct buf *b = msg_begin(st, 'B');
	if (!b)
		return;
	b_str(b, portal);
	b_str(b, stmt);
	b_u16(b, 0);
	b_u16(b, (uint16_t)nparams);
	for (int i = 0; i < nparams; i++) {
		char v[16];
		int n = snprintf(v, sizeof v, "%d", value);
		b_u32(b, (uint32_t)n);
		b_put(b, v, (size_t)n);
	}
	b_u16(b, 0);
	msg_end(b);
}
static void add_named(struct stream *st, char type, char kind, const char *name)
{
	struct buf *b = msg_begin(st, type);
	if (!b)
		return;
	b_put(b, &kind, 1);
	b_str(b, name);
	msg_end(b);
}
static void add_execute(struct stream *st, const char *portal, uint32_t maxrows)
{
	struct buf *b = msg_begin(st, 'E');
	if (!b)
		return;
	b_str(b, portal);
	b_u32(b, maxrows);
	msg_end(b);
}
static void add_empty(struct stream *st, char type) { msg_end(msg_begin(st, type)); }
static void add_copydata(struct stream *st, const char *row)
{
	struct buf *b = msg_begin(st, 'd');
	if (!b)
		return;
	b_put(b, row, strlen(row));
	msg_end(b);
}
static void add_copyfail(struct stream *st) { struct buf *b = msg_begin(st, 'f'); if (b) { b_str(b, "protofuzz says no"); msg_end(b); } }

/* ---- the bad clients' vocabulary ---- */
static const char *bad_sql[] = {
	"SELECT 1",
	"SELECT pg_sleep(0.05)",
	"SELECT pg_sleep(0.3)",
	"BEGIN",
	"COMMIT",
	"ROLLBACK",
	"SET application_name = 'protofuzz_bad'",
	"SET statement_timeout = 1",
	"SET search_path = nowhere",
	"SET DateStyle = 'SQL, DMY'",
	"SET LOCAL statement_timeout = 2",
	"RESET ALL",
	"PREPARE q1 AS SELECT 666",
	"EXECUTE q1",
	"DEALLOCATE q1",
	"DEALLOCATE ALL",
	/* not DISCARD ALL: PostgreSQL 15.18 crashes (SIGSEGV) when the unnamed
	 * portal of a Query that failed inside a block (DISCARD ALL, VACUUM:
	 * 25001 every time; others when the freed memory says so) is executed
	 * after another failed Query, e.g. BEGIN; DISCARD ALL; SELECT
	 * pg_sleep(0.05); then Execute "" and Sync. pgring no longer sends such
	 * an Execute (lease.c, portal_gone), but the vocabulary stays as it was
	 * run (README, Protocol fuzzing) */
	"DISCARD PLANS",
	"SELECT 1; SELECT 2",
	"SELECT * FROM generate_series(1, 300)",
	"SELECT repeat('x', 20000)",
	"SELECT 1/0",
	"INSERT INTO pf_bad VALUES (1, 'q')",
	"COPY pf_bad FROM STDIN",
	"COPY pf_bad TO STDOUT",
	"BEGIN; SELECT 1",
	"",
};
#define NBAD_SQL (sizeof bad_sql / sizeof bad_sql[0])
static const char *bad_names[] = { "", "s1", "q1", "pgring_0", "x" };
static const char *bad_parse_sql[] = { "SELECT $1::int + 1", "SELECT 666", "SELECT pg_sleep(0.05)",
				       "INSERT INTO pf_bad VALUES ($1, 'p')", "COPY pf_bad FROM STDIN", "SELECT $1",
				       "BEGIN", "COMMIT", "SET application_name = 'protofuzz_ext'" };

static void gen_stream(struct rng *r, struct stream *st)
{
	st->n = 0;
	int steps = 1 + (int)rn(r, 12);
	for (int i = 0; i < steps && st->n < MAXMSG - 8; i++) {
		switch (rn(r, 10)) {
		case 0:
		case 1:
		case 2:
			add_query(st, bad_sql[rn(r, NBAD_SQL)]);
			break;
		case 3:
		case 4: { /* an extended-protocol round, with Sync or Flush */
			const char *name = bad_names[rn(r, 5)];
			const char *sql = bad_parse_sql[rn(r, sizeof bad_parse_sql / sizeof *bad_parse_sql)];
			int np = (strstr(sql, "$1") != NULL);
			if (rn(r, 4))
				add_parse(st, name, sql, np);
			const char *portal = rn(r, 3) ? "" : "p1";
			add_bind(st, portal, name, np, (int)rn(r, 100));
			if (rn(r, 2))
				add_named(st, 'D', rn(r, 2) ? 'P' : 'S', rn(r, 2) ? portal : name);
			add_execute(st, portal, rn(r, 3) ? 0 : rn(r, 3));
			if (rn(r, 4) == 0)
				add_named(st, 'C', rn(r, 2) ? 'S' : 'P', rn(r, 2) ? name : portal);
			add_empty(st, rn(r, 3) ? 'S' : 'H');
			break;
		}
		case 5: /* COPY, properly or not */
			if (rn(r, 2))
				add_query(st, "COPY pf_bad FROM STDIN");
			for (int k = (int)rn(r, 4); k > 0; k--)
				add_copydata(st, rn(r, 4) ? "7\tcopied\n" : "garbage line without tabs\n");
			switch (rn(r, 3)) {
			case 0: add_empty(st, 'c'); break;
			case 1: add_copyfail(st); break;
			default: break;
			}
			break;
		case 6: /* interleaved Sync/Flush */
			for (int k = 1 + (int)rn(r, 4); k > 0; k--)
				add_empty(st, rn(r, 2) ? 'S' : 'H');
			break;
		case 7: /* copy messages outside COPY */
			if (rn(r, 2))
				add_copydata(st, "1\tstray\n");
			else
				add_empty(st, rn(r, 2) ? 'c' : 'f');
			break;
		case 8:
			add_named(st, 'C', rn(r, 2) ? 'S' : 'P', bad_names[rn(r, 5)]);
			break;
		default:
			add_query(st, rn(r, 2) ? "BEGIN" : "SELECT pg_sleep(0.1)");
			break;
		}
	}
	if (rn(r, 10) == 0)
		add_empty(st, 'X');
}

/* Mutations; returns a description appended to desc. */
static void set_len(struct buf *b, uint32_t v)
{
	if (b->n >= 5) {
		uint32_t be = htonl(v);
		memcpy(b->p + 1, &be, 4);
	}
}
static void mutate(struct rng *r, struct stream *st, char *desc, size_t dn)
{
	int k = (int)rn(r, 4); /* 0: stays valid */
	size_t used = strlen(desc);
	for (int i = 0; i < k && st->n > 0; i++) {
		int m = (int)rn(r, st->n);
		struct buf *b = &st->m[m];
		const char *what = "";
		switch (rn(r, 9)) {
		case 0: {
			size_t at = rn(r, (uint32_t)b->n);
			b->p[at] ^= (uint8_t)(1u << rn(r, 8));
			what = "flip";
			break;
		}
		case 1: {
			static const uint32_t lens[] = { 0, 3, 4, 0x7fffffffu, 0xffffffffu, 0x40000000u, 0x00100001u };
			set_len(b, lens[rn(r, 7)]);
			what = "badlen";
			break;
		}
		case 2:
			set_len(b, (uint32_t)(b->n - 1) + 1 + rn(r, 8));
			what = "lenlong";
			break;
		case 3:
			if (b->n > 6)
				set_len(b, (uint32_t)(b->n - 1) - 1 - rn(r, (uint32_t)(b->n - 6)));
			what = "lenshort";
			break;
		case 4:
			if (st->n < MAXMSG) {
				struct buf *d = &st->m[st->n++];
				d->n = 0;
				b_put(d, b->p, b->n);
				what = "dup";
			}
			break;
		case 5:
			if (st->n > 1) {
				free(st->m[m].p);
				memmove(&st->m[m], &st->m[m + 1], sizeof(struct buf) * (size_t)(st->n - m - 1));
				st->n--;
				memset(&st->m[st->n], 0, sizeof(struct buf));
				what = "drop";
			}
			break;
		case 6: {
			uint8_t junk[8];
			for (int j = 0; j < 8; j++)
				junk[j] = (uint8_t)rnd(r);
			b_put(b, junk, 1 + rn(r, 8));
			what = "junk";
			break;
		}
		case 7:
			b->p[0] = (uint8_t)"QPBDESHCdcfXpzA\0"[rn(r, 16)];
			what = "type";
			break;
		default:
			if (b->n > 1)
				b->n = 1 + rn(r, (uint32_t)(b->n - 1));
			what = "trunc";
			break;
		}
		used += (size_t)snprintf(desc + used, used < dn ? dn - used : 0, " %s@%d", what, m);
		if (used >= dn)
			break;
	}
}

/* ---- sockets ---- */
static int tcp_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port) };
	inet_pton(AF_INET, opt_host, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
static void rst_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
}
static bool send_all(int fd, const void *p, size_t n)
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

/* A reader with its own buffer: read_msg returns 1 and a message, 0 on EOF/reset,
 * -1 on timeout (deadline in now_ms terms), -2 on a malformed message. */
struct reader {
	int fd;
	struct buf in;
	size_t off;
	char type;
	uint8_t *body;
	uint32_t blen;
	char why[160];
};
static int fill(struct reader *rd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return -1;
		struct pollfd pfd = { .fd = rd->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)(deadline - now));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return -1;
		uint8_t tmp[16384];
		ssize_t n = recv(rd->fd, tmp, sizeof tmp, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (rd->off > 0 && rd->off == rd->in.n) {
			rd->in.n = 0;
			rd->off = 0;
		}
		b_put(&rd->in, tmp, (size_t)n);
		return 1;
	}
}
static const char *backend_types = "123ACDEGHIKNRSTVWZcdnstv";
static int read_msg(struct reader *rd, uint64_t deadline)
{
	for (;;) {
		size_t avail = rd->in.n - rd->off;
		if (avail >= 5) {
			uint8_t *p = rd->in.p + rd->off;
			uint32_t len;
			memcpy(&len, p + 1, 4);
			len = ntohl(len);
			if (!p[0] || !strchr(backend_types, p[0])) {
				snprintf(rd->why, sizeof rd->why, "unknown backend message type 0x%02x", p[0]);
				return -2;
			}
			if (len < 4 || len > (64u << 20)) {
				snprintf(rd->why, sizeof rd->why, "backend message '%c' with length %u", p[0], len);
				return -2;
			}
			if (avail >= (size_t)len + 1) {
				rd->type = (char)p[0];
				rd->body = p + 5;
				rd->blen = len - 4;
				rd->off += (size_t)len + 1;
				return 1;
			}
		}
		int f = fill(rd, deadline);
		if (f <= 0) {
			if (f == 0 && rd->in.n - rd->off > 0) {
				snprintf(rd->why, sizeof rd->why, "connection closed inside a backend message (%zu bytes)",
					 rd->in.n - rd->off);
				return -2;
			}
			return f;
		}
	}
}
/* field of an ErrorResponse/NoticeResponse body, or NULL; sets *ok false if malformed */
static const char *err_field(const uint8_t *b, uint32_t n, char code, bool *ok)
{
	uint32_t i = 0;
	const char *found = NULL;
	while (i < n && b[i]) {
		char c = (char)b[i++];
		const uint8_t *e = memchr(b + i, 0, n - i);
		if (!e) {
			*ok = false;
			return NULL;
		}
		if (c == code && !found)
			found = (const char *)b + i;
		i = (uint32_t)(e - b) + 1;
	}
	if (i + 1 != n)
		*ok = false;
	return found;
}

/* ---- login (trust) ---- */
struct keyring { /* keys of bad clients for the cancel storm */
	pthread_mutex_t mu;
	uint32_t pid[256], key[256];
	int n;
} keys = { .mu = PTHREAD_MUTEX_INITIALIZER };

static __thread uint32_t last_key_pid; /* session pooling: the server's PID */

static int raw_login(struct reader *rd, uint64_t deadline, char *err, size_t en)
{
	struct buf s = { 0 };
	b_u32(&s, 0);
	b_u32(&s, 196608);
	b_str(&s, "user");
	b_str(&s, opt_user);
	b_str(&s, "database");
	b_str(&s, opt_db);
	b_str(&s, "application_name");
	b_str(&s, "protofuzz_bad");
	b_put(&s, "", 1);
	uint32_t be = htonl((uint32_t)s.n);
	memcpy(s.p, &be, 4);
	bool ok = send_all(rd->fd, s.p, s.n);
	free(s.p);
	if (!ok) {
		snprintf(err, en, "send startup failed");
		return -1;
	}
	for (;;) {
		int r = read_msg(rd, deadline);
		if (r != 1) {
			snprintf(err, en, "login: %s", r == -1 ? "timeout" : r == 0 ? "closed" : rd->why);
			return r == -2 ? -2 : -1;
		}
		if (rd->type == 'E') {
			bool fok = true;
			const char *m = err_field(rd->body, rd->blen, 'M', &fok);
			snprintf(err, en, "login error: %s", m ? m : "?");
			return -1;
		}
		if (rd->type == 'R' && (rd->blen < 4 || rd->body[3] != 0)) {
			snprintf(err, en, "login: auth request %u (run pgring with auth_type = trust)",
				 rd->blen >= 4 ? rd->body[3] : 999);
			return -1;
		}
		if (rd->type == 'K' && rd->blen == 8) {
			uint32_t pid, key;
			memcpy(&pid, rd->body, 4);
			memcpy(&key, rd->body + 4, 4);
			last_key_pid = ntohl(pid);
			pthread_mutex_lock(&keys.mu);
			int i = keys.n < 256 ? keys.n++ : (int)(now_ms() % 256);
			keys.pid[i] = pid;
			keys.key[i] = key;
			pthread_mutex_unlock(&keys.mu);
		}
		if (rd->type == 'Z')
			return 0;
	}
}

/* ---- one bad connection ---- */
static const char marker_sql[] = "SELECT 'pf_marker_' || 4242";
static const char marker_val[] = "pf_marker_4242";

static void bad_conn(int thread, long conn)
{
	struct rng r;
	rng_seed(&r, opt_seed, (uint64_t)thread + 1, (uint64_t)conn + 1);
	char desc[512];
	int fd = tcp_connect();
	if (fd < 0) {
		FAILURE("bad %d/%ld: cannot connect to pgring: %s", thread, conn, strerror(errno));
		usleep(200000);
		return;
	}
	struct reader rd = { .fd = fd };
	char err[256];
	int lr = raw_login(&rd, now_ms() + 15000, err, sizeof err);
	if (lr < 0) {
		if (lr == -2)
			FAILURE("bad %d/%ld: malformed reply during login: %s", thread, conn, err);
		else if (!atomic_load(&stop_all))
			FAILURE("bad %d/%ld: %s", thread, conn, err);
		close(fd);
		free(rd.in.p);
		return;
	}
	struct stream st = { .n = 0 };
	gen_stream(&r, &st);
	snprintf(desc, sizeof desc, "seed %" PRIu64 " thread %d conn %ld: %d msgs", opt_seed, thread, conn, st.n);
	mutate(&r, &st, desc, sizeof desc);
	struct buf flat = { 0 };
	for (int i = 0; i < st.n; i++)
		b_put(&flat, st.m[i].p, st.m[i].n);
	int ending = (int)rn(&r, 10); /* 0-5 marker, 6-7 half-close, 8-9 reset mid-stream */
	if (ending < 6) {
		struct stream tail = { .n = 0 };
		add_empty(&tail, 'S');
		add_query(&tail, "ROLLBACK");
		add_query(&tail, marker_sql);
		for (int i = 0; i < tail.n; i++) {
			b_put(&flat, tail.m[i].p, tail.m[i].n);
			free(tail.m[i].p);
		}
	}
	size_t cut = flat.n;
	if (ending >= 8 && flat.n > 0)
		cut = rn(&r, (uint32_t)flat.n);
	if (verbose || one_thread >= 0)
		report("# %s ending %d (backend pid %u)", desc, ending, last_key_pid);
	if (one_thread >= 0 || verbose > 1)
		for (int i = 0; i < st.n; i++) {
			char line[200];
			size_t k = 0;
			for (size_t j = 0; j < st.m[i].n && k < sizeof line - 5; j++) {
				uint8_t c = st.m[i].p[j];
				k += (size_t)snprintf(line + k, sizeof line - k, c >= 32 && c < 127 ? "%c" : "\\x%02x", c);
			}
			report("#   -> %s", line);
		}
	/* send in random pieces, reading whatever comes meanwhile so neither side blocks */
	size_t sent = 0;
	bool send_ok = true;
	bool fatal_seen = false, error_seen = false, marker_row = false, marker_done = false;
	int result = 0; /* 0 running, 1 closed, -1 timeout, -2 malformed */
	while (sent < cut && send_ok) {
		size_t piece = 1 + rn(&r, (uint32_t)(cut - sent));
		if (rn(&r, 3) == 0 && piece > 5)
			piece = 1 + rn(&r, 5);
		send_ok = send_all(fd, flat.p + sent, piece);
		sent += piece;
		if (rn(&r, 4) == 0)
			usleep(rn(&r, 2000));
	}
	uint64_t deadline = now_ms() + 1000;
	bool half_closed = false;
	if (ending >= 8) {
		rst_close(fd);
		atomic_fetch_add(&outcomes[O_RST], 1);
		goto out_noclose;
	}
	if (ending >= 6) {
		shutdown(fd, SHUT_WR);
		half_closed = true;
		deadline = now_ms() + 10000;
	}
	for (;;) {
		int m = read_msg(&rd, deadline);
		if (m == 1 && (one_thread >= 0 || verbose)) {
			bool ok = true;
			const char *f = (rd.type == 'E' || rd.type == 'N') ? err_field(rd.body, rd.blen, 'M', &ok) : NULL;
			const char *sev = (rd.type == 'E' || rd.type == 'N') ? err_field(rd.body, rd.blen, 'V', &ok) : NULL;
			report("#   <- '%c' %u%s%s%s%s", rd.type, rd.blen, sev ? " " : "", sev ? sev : "", f ? ": " : "",
			       f ? f : "");
		}
		if (m == 1) {
			if (fatal_seen) {
				FAILURE("%s: backend message '%c' after a FATAL error", desc, rd.type);
				result = -2;
				break;
			}
			if (rd.type == 'E' || rd.type == 'N') {
				bool ok = true;
				const char *sev = err_field(rd.body, rd.blen, 'V', &ok);
				if (!sev)
					sev = err_field(rd.body, rd.blen, 'S', &ok);
				const char *code = err_field(rd.body, rd.blen, 'C', &ok);
				if (!ok || !sev || !code || strlen(code) != 5) {
					FAILURE("%s: malformed %s", desc, rd.type == 'E' ? "ErrorResponse" : "NoticeResponse");
					result = -2;
					break;
				}
				if (rd.type == 'E') {
					error_seen = true;
					atomic_fetch_add(&bad_errors_seen, 1);
					if (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"))
						fatal_seen = true;
				}
			} else if (rd.type == 'Z') {
				if (rd.blen != 1 || !strchr("ITE", rd.body[0])) {
					FAILURE("%s: malformed ReadyForQuery", desc);
					result = -2;
					break;
				}
				if (marker_row) {
					marker_done = true;
					break;
				}
			} else if (rd.type == 'D') {
				if (rd.blen == 2 + 4 + sizeof marker_val - 1 &&
				    !memcmp(rd.body + 6, marker_val, sizeof marker_val - 1))
					marker_row = true;
			} else if (rd.type == 'G') {
				/* CopyInResponse: our marker would be refused inside COPY; answer with
				 * CopyFail, as a client would, and go on waiting */
				struct stream cf = { .n = 0 };
				add_copyfail(&cf);
				if (cf.n) {
					send_ok = !half_closed && send_all(fd, cf.m[0].p, cf.m[0].n);
					free(cf.m[0].p);
				}
			}
			continue;
		}
		if (m == 0) {
			result = 1;
			break;
		}
		if (m == -2) {
			FAILURE("%s: %s", desc, rd.why);
			result = -2;
			break;
		}
		/* timeout */
		if (!half_closed) {
			shutdown(fd, SHUT_WR);
			half_closed = true;
			deadline = now_ms() + 10000;
			continue;
		}
		FAILURE("%s: no close 10 s after half-closing (pgring hangs on this client)", desc);
		result = -1;
		break;
	}
	if (marker_done)
		atomic_fetch_add(&outcomes[O_MARKER], 1);
	else if (result == 1 && error_seen)
		atomic_fetch_add(&outcomes[O_ERROR_CLOSE], 1);
	else if (result == 1 && half_closed)
		atomic_fetch_add(&outcomes[O_HALFCLOSE_CLOSE], 1);
	else if (result == 1)
		atomic_fetch_add(&outcomes[O_CLOSE], 1);
	/* a clean end: Terminate, or a reset now and then */
	if (rn(&r, 2))
		rst_close(fd);
	else {
		if (!half_closed)
			send_all(fd, "X\0\0\0\4", 5);
		close(fd);
	}
out_noclose:
	free(flat.p);
	for (int i = 0; i < MAXMSG; i++)
		free(st.m[i].p);
	free(rd.in.p);
}

static void *bad_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (long c = 0; now_ms() < t_end_ms && !atomic_load(&stop_all); c++) {
		bad_conn(t, c);
		atomic_fetch_add(&bad_conns, 1);
	}
	return NULL;
}

/* ---- cancel storm ---- */
static void *cancel_thread(void *arg)
{
	(void)arg;
	struct rng r;
	rng_seed(&r, opt_seed, 999, 1);
	while (now_ms() < t_end_ms && !atomic_load(&stop_all)) {
		int burst = 1 + (int)rn(&r, 20);
		int fds[20];
		for (int i = 0; i < burst; i++) {
			uint32_t pid = (uint32_t)rnd(&r), key = (uint32_t)rnd(&r);
			pthread_mutex_lock(&keys.mu);
			if (keys.n && rn(&r, 3) && !no_real_keys) {
				int k = (int)rn(&r, (uint32_t)keys.n);
				pid = keys.pid[k];
				key = keys.key[k];
				if (rn(&r, 5) == 0)
					key ^= 1; /* real pid, wrong key */
			}
			pthread_mutex_unlock(&keys.mu);
			uint8_t pkt[16];
			uint32_t v[4] = { htonl(16), htonl(80877102), pid, key };
			memcpy(pkt, v, 16);
			fds[i] = tcp_connect();
			if (fds[i] >= 0) {
				size_t n = rn(&r, 8) ? 16 : rn(&r, 16); /* sometimes cut */
				send_all(fds[i], pkt, n);
				if (n < 16)
					shutdown(fds[i], SHUT_WR);
			}
		}
		for (int i = 0; i < burst; i++) {
			if (fds[i] < 0)
				continue;
			struct reader rd = { .fd = fds[i] };
			int m = read_msg(&rd, now_ms() + 5000);
			if (m == 1)
				FAILURE("cancel request answered with a '%c' message", rd.type);
			else if (m == -1)
				FAILURE("cancel request not closed within 5 s");
			atomic_fetch_add(&outcomes[O_CANCEL], 1);
			free(rd.in.p);
			close(fds[i]);
		}
		usleep(20000 + rn(&r, 50000));
	}
	return NULL;
}

/* ---- good clients ---- */
struct expect {
	char statement_timeout[64], search_path[128], datestyle[64];
} expect;
static bool statement_mode;

static char *conninfo(int port, const char *appname)
{
	static __thread char s[256];
	snprintf(s, sizeof s, "host=%s port=%d dbname=%s user=%s password=%s application_name=%s connect_timeout=10",
		 opt_host, port, opt_db, opt_user, opt_pass, appname);
	return s;
}

struct good {
	int id;
	long iter, committed;
	_Atomic uint64_t last_progress;
	atomic_int fd;
	atomic_bool unblocked; /* the monitor cut its connection after a hang */
	PGconn *c;
};

static bool good_fail(struct good *g, const char *step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool good_fail(struct good *g, const char *step, const char *fmt, ...)
{
	char m[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	if (atomic_exchange(&g->unblocked, false))
		return false; /* the hang is already counted */
	FAILURE("good client %d, iteration %ld, %s: %s", g->id, g->iter, step, m);
	return false;
}
/* run sql, expect exactly `want` (rows joined by '|' per field and '\n' per row), or
 * a command status when want is NULL */
static bool gq(struct good *g, const char *step, const char *sql, const char *want)
{
	PGresult *res = PQexec(g->c, sql);
	ExecStatusType s = PQresultStatus(res);
	bool ok = true;
	if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
		ok = good_fail(g, step, "%s -> %s %s", sql, PQresStatus(s), PQerrorMessage(g->c));
	} else if (want) {
		char got[4096];
		size_t n = 0;
		got[0] = 0;
		for (int i = 0; i < PQntuples(res); i++)
			for (int j = 0; j < PQnfields(res); j++)
				n += (size_t)snprintf(got + n, n < sizeof got ? sizeof got - n : 0, "%s%s",
						      PQgetvalue(res, i, j),
						      j + 1 < PQnfields(res) ? "|" : i + 1 < PQntuples(res) ? "\n" : "");
		if (n >= sizeof got || strcmp(got, want))
			ok = good_fail(g, step, "%s -> [%.300s] (%s, tag %s), expected [%.300s]", sql, got,
				       PQresStatus(s), PQcmdStatus(res), want);
	}
	PQclear(res);
	return ok;
}

/* after a failure: how many rows of its own are committed, read directly */
static bool good_recount(struct good *g)
{
	PGconn *d = PQconnectdb(conninfo(opt_direct_port, "protofuzz_direct"));
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM pf_rows WHERE client = %d", g->id);
	PGresult *res = PQexec(d, sql);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (ok)
		g->committed = atol(PQgetvalue(res, 0, 0));
	else
		good_fail(g, "recount", "%s", PQerrorMessage(d));
	PQclear(res);
	PQfinish(d);
	return ok;
}

static bool good_connect(struct good *g)
{
	char app[64];
	snprintf(app, sizeof app, "pf_good_%d", g->id);
	g->c = PQconnectdb(conninfo(opt_port, app));
	g->fd = PQsocket(g->c);
	if (PQstatus(g->c) != CONNECTION_OK)
		return good_fail(g, "connect", "%s", PQerrorMessage(g->c));
	char sql[256], want[64];
	/* protocol prepared statement "s1" and SQL "q1", with this client's own texts */
	snprintf(sql, sizeof sql, "SELECT $1::int + %d", g->id * 1000);
	PGresult *res = PQprepare(g->c, "s1", sql, 1, NULL);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		good_fail(g, "prepare s1", "%s", PQerrorMessage(g->c));
	PQclear(res);
	snprintf(sql, sizeof sql, "PREPARE q1 AS SELECT %d * 7", g->id);
	ok = ok && gq(g, "prepare q1", sql, NULL);
	snprintf(want, sizeof want, "pf_good_%d", g->id);
	ok = ok && gq(g, "startup application_name", "SELECT current_setting('application_name')", want);
	return ok;
}

static bool good_iteration(struct good *g)
{
	char sql[256], want[1024];
	long it = g->iter;
	/* a session setting of its own */
	snprintf(sql, sizeof sql, "SET application_name = 'pf_good_%d_%ld'", g->id, it);
	if (!gq(g, "SET", sql, NULL))
		return false;
	snprintf(want, sizeof want, "pf_good_%d_%ld|%s|%s|%s", g->id, it, expect.statement_timeout, expect.search_path,
		 expect.datestyle);
	if (!gq(g, "settings",
		"SELECT current_setting('application_name'), current_setting('statement_timeout'), "
		"current_setting('search_path'), current_setting('DateStyle')",
		want))
		return false;
	/* prepared statements of its own */
	char arg[16];
	snprintf(arg, sizeof arg, "%ld", it % 1000);
	const char *vals[1] = { arg };
	PGresult *res = PQexecPrepared(g->c, "s1", 1, vals, NULL, NULL, 0);
	snprintf(want, sizeof want, "%ld", it % 1000 + g->id * 1000);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), want)) {
		good_fail(g, "execute s1", "%s / got [%s], expected [%s]", PQresStatus(PQresultStatus(res)),
			  PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) ? PQgetvalue(res, 0, 0)
										   : PQerrorMessage(g->c),
			  want);
		PQclear(res);
		return false;
	}
	PQclear(res);
	snprintf(want, sizeof want, "%d", g->id * 7);
	if (!gq(g, "EXECUTE q1", "EXECUTE q1", want))
		return false;
	/* rows tied to its id */
	size_t n = 0;
	for (int i = 1; i <= 20; i++)
		n += (size_t)snprintf(want + n, sizeof want - n, "%s%d|%d", i > 1 ? "\n" : "", g->id, i);
	snprintf(sql, sizeof sql, "SELECT %d, g FROM generate_series(1, 20) g", g->id);
	if (!gq(g, "rows", sql, want))
		return false;
	/* its own rows in pf_rows */
	bool commit = statement_mode || (it % 4) != 3;
	if (!statement_mode && !gq(g, "BEGIN", "BEGIN", NULL))
		return false;
	snprintf(sql, sizeof sql, "INSERT INTO pf_rows (client, n) VALUES (%d, %ld)", g->id, it);
	if (!gq(g, "INSERT", sql, NULL))
		return false;
	snprintf(sql, sizeof sql, "SELECT count(*), coalesce(max(n), -1) FROM pf_rows WHERE client = %d", g->id);
	snprintf(want, sizeof want, "%ld|%ld", g->committed + 1, it);
	if (!gq(g, "count own rows", sql, want))
		return false;
	if (!statement_mode && !gq(g, commit ? "COMMIT" : "ROLLBACK", commit ? "COMMIT" : "ROLLBACK", NULL))
		return false;
	if (commit)
		g->committed++;
	return true;
}

static void *good_thread(void *arg)
{
	struct good *g = arg;
	g->last_progress = now_ms();
	bool ok = good_connect(g);
	while (now_ms() < t_end_ms && !atomic_load(&stop_all)) {
		if (!ok || !good_iteration(g)) {
			/* counted as a failure; start again with a new connection (and a
			 * tally of its own rows read directly) so the run goes on */
			g->fd = -1;
			PQfinish(g->c);
			g->c = NULL;
			usleep(100000);
			if (!(ok = good_recount(g)))
				break;
			ok = good_connect(g);
			g->iter++;
			continue;
		}
		g->iter++;
		g->last_progress = now_ms();
		atomic_fetch_add(&good_iters, 1);
		if (g->iter % 40 == 0) { /* log in again now and then */
			PQfinish(g->c);
			if (!good_connect(g))
				break;
		}
	}
	g->fd = -1;
	PQfinish(g->c);
	g->c = NULL;
	g->last_progress = 0;
	return NULL;
}

/* ---- monitor: pgring alive, its RSS, good clients progressing ---- */
static long rss_kb(void)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", opt_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

static struct good *goods;

static void *monitor_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_all)) {
		if (opt_pid) {
			long kb = rss_kb();
			if (kb < 0) {
				FAILURE("pgring (pid %d) is gone", opt_pid);
				atomic_store(&stop_all, true);
				break;
			}
			if (kb > atomic_load(&rss_max_kb))
				atomic_store(&rss_max_kb, kb);
			if (opt_rss_mb && kb > (long)opt_rss_mb * 1024) {
				FAILURE("pgring's RSS %ld kB is over the bound of %d MB", kb, opt_rss_mb);
				atomic_store(&stop_all, true);
				break;
			}
		}
		uint64_t now = now_ms();
		for (int i = 0; i < opt_good; i++) {
			uint64_t lp = goods[i].last_progress;
			if (lp && now > lp + 15000) {
				FAILURE("good client %d made no progress for 15 s (iteration %ld): pgring hangs",
					goods[i].id, goods[i].iter);
				static atomic_int shown;
				if (atomic_fetch_add(&shown, 1) < 3) {
					PGconn *d = PQconnectdb(conninfo(opt_direct_port, "protofuzz_direct"));
					PGresult *res = PQexec(d, "SELECT pid, application_name, state, wait_event, "
								  "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) FROM "
								  "pg_stat_activity WHERE usename = current_user AND "
								  "pid <> pg_backend_pid()");
					for (int k = 0; PQresultStatus(res) == PGRES_TUPLES_OK && k < PQntuples(res); k++)
						report("#   server %s [%s] %s %s: %s", PQgetvalue(res, k, 0),
						       PQgetvalue(res, k, 1), PQgetvalue(res, k, 2), PQgetvalue(res, k, 3),
						       PQgetvalue(res, k, 4));
					PQclear(res);
					PQfinish(d);
				}
				/* unblock it: its query fails, it logs in again and goes on */
				goods[i].last_progress = now;
				int fd = goods[i].fd;
				if (fd >= 0) {
					goods[i].unblocked = true;
					shutdown(fd, SHUT_RDWR);
				}
			}
		}
		usleep(100000);
	}
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: protofuzz [-h HOST] -p PORT -r DIRECT_PORT [-U USER] [-W PASSWORD] [-d DB] [-m MODE] [-s SECONDS]\n"
			"                 [-S SEED] [-b BAD] [-g GOOD] [-P PID] [-R RSS_MB] [-M MAX_PACKET] [-v] [-K] [-1 THREAD:CONN]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int o;
	opt_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	while ((o = getopt(argc, argv, "h:p:r:U:W:d:m:s:S:b:g:P:R:M:v1:K")) != -1) {
		switch (o) {
		case 'h': opt_host = optarg; break;
		case 'p': opt_port = atoi(optarg); break;
		case 'r': opt_direct_port = atoi(optarg); break;
		case 'U': opt_user = optarg; break;
		case 'W': opt_pass = optarg; break;
		case 'd': opt_db = optarg; break;
		case 'm': opt_mode = optarg; break;
		case 's': opt_seconds = atoi(optarg); break;
		case 'S': opt_seed = strtoull(optarg, NULL, 10); break;
		case 'b': opt_bad = atoi(optarg); break;
		case 'g': opt_good = atoi(optarg); break;
		case 'P': opt_pid = atoi(optarg); break;
		case 'R': opt_rss_mb = atoi(optarg); break;
		case 'M': opt_max_packet = atol(optarg); break;
		case 'v': verbose++; break;
		case 'K': no_real_keys = true; break;
		case '1':
			if (sscanf(optarg, "%d:%ld", &one_thread, &one_conn) != 2)
				return usage();
			break;
		default: return usage();
		}
	}
	if (!opt_port || !opt_direct_port || opt_bad < 0 || opt_bad > 200 || opt_good < 0 || opt_good > 100)
		return usage();
	(void)opt_max_packet;
	statement_mode = !strcmp(opt_mode, "statement");
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# protofuzz: seed %" PRIu64 ", mode %s, %d s, %d bad and %d good clients\n", opt_seed, opt_mode,
	       opt_seconds, opt_bad, opt_good);

	/* what a direct connection says */
	PGconn *d = PQconnectdb(conninfo(opt_direct_port, "protofuzz_direct"));
	if (PQstatus(d) != CONNECTION_OK) {
		printf("FAILURE: direct connection: %s", PQerrorMessage(d));
		return 1;
	}
	PGresult *res = PQexec(d, "SELECT current_setting('statement_timeout'), current_setting('search_path'), "
				  "current_setting('DateStyle')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		printf("FAILURE: direct: %s", PQerrorMessage(d));
		return 1;
	}
	snprintf(expect.statement_timeout, sizeof expect.statement_timeout, "%s", PQgetvalue(res, 0, 0));
	snprintf(expect.search_path, sizeof expect.search_path, "%s", PQgetvalue(res, 0, 1));
	snprintf(expect.datestyle, sizeof expect.datestyle, "%s", PQgetvalue(res, 0, 2));
	PQclear(res);
	res = PQexec(d, "SELECT count(*) FROM pf_rows");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || strcmp(PQgetvalue(res, 0, 0), "0")) {
		printf("FAILURE: table pf_rows must exist and be empty: %s", PQerrorMessage(d));
		return 1;
	}
	PQclear(res);

	if (one_thread >= 0) { /* replay one bad connection (its rng state needs no others) */
		bad_conn(one_thread, one_conn);
		printf("%s: %d failure(s)\n", failures ? "FAILED" : "OK", atomic_load(&failures));
		return failures ? 1 : 0;
	}
	t_end_ms = now_ms() + (uint64_t)opt_seconds * 1000;
	goods = calloc((size_t)opt_good + 1, sizeof *goods);
	pthread_t mon, can, th[300];
	int nth = 0;
	pthread_create(&mon, NULL, monitor_thread, NULL);
	for (int i = 0; i < opt_good; i++) {
		goods[i].id = i + 1;
		goods[i].fd = -1;
		pthread_create(&th[nth++], NULL, good_thread, &goods[i]);
	}
	for (int i = 0; i < opt_bad; i++)
		pthread_create(&th[nth++], NULL, bad_thread, (void *)(intptr_t)i);
	pthread_create(&can, NULL, cancel_thread, NULL);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_join(can, NULL);
	atomic_store(&stop_all, true);
	pthread_join(mon, NULL);

	/* afterwards, directly: each good client's committed rows are all there, once */
	for (int i = 0; i < opt_good; i++) {
		char sql[128], want[32];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM pf_rows WHERE client = %d", goods[i].id);
		snprintf(want, sizeof want, "%ld", goods[i].committed);
		res = PQexec(d, sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || strcmp(PQgetvalue(res, 0, 0), want))
			FAILURE("good client %d: %s rows in pf_rows, it committed %s", goods[i].id,
				PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?", want);
		PQclear(res);
	}
	PQfinish(d);

	printf("# good clients: %ld iterations", atomic_load(&good_iters));
	for (int i = 0; i < opt_good; i++)
		printf("%s%ld", i ? "/" : " (", goods[i].iter);
	printf("%s\n", opt_good ? ")" : "");
	printf("# bad connections: %ld, ErrorResponses seen: %ld\n", atomic_load(&bad_conns),
	       atomic_load(&bad_errors_seen));
	for (int i = 0; i < O_N; i++)
		printf("#   %-24s %ld\n", o_name[i], atomic_load(&outcomes[i]));
	if (opt_pid)
		printf("# pgring max RSS: %ld kB\n", atomic_load(&rss_max_kb));
	int f = atomic_load(&failures);
	printf("%s: %d failure(s), seed %" PRIu64 "\n", f ? "FAILED" : "OK", f, opt_seed);
	return f ? 1 : 0;
}
