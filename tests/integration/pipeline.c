/* tests/integration/pipeline.c: pipelines, flushes, cursors and portals over one
 * connection, printing a deterministic transcript of everything received, so that
 * the same run directly against PostgreSQL and through a pooler can be diffed.
 *
 *   pipeline CONNINFO [SCENARIO]...        (default: all of them, in this order)
 *     many       pipeline mode: 600 queries in 120 sync segments, all sent before
 *                anything is read (every 10th segment has an error in its middle)
 *     error      an error in the middle of a segment: the rest of it is
 *                PIPELINE_ABORTED, the next segment works; the same inside BEGIN
 *                (the block stays failed across Syncs until ROLLBACK)
 *     flush      PQsendFlushRequest without Sync, reading results before the Sync;
 *                shows the statements before the Sync share one transaction
 *     cursor     BEGIN; DECLARE c CURSOR; FETCH 10 FROM c until empty; errors
 *     singlerow  PQsetSingleRowMode, also with an error after two rows
 *     raw        the extended protocol written by hand on libpq's socket (after
 *                libpq has logged in): a named portal, Execute with a row limit
 *                (PortalSuspended), across Syncs inside BEGIN, with Flush, errors
 *     split      (not in the default run; needs table rt(a int) and a cluster
 *                with read_write_split) reads and writes pipelined behind each
 *                other, each written in one send: every value names its step and
 *                inet_server_port(), so the test sees which node ran it
 *   pipeline CONNINFO terminate DIRECT_CONNINFO [PART]
 *                (pooler only, transaction mode) the server under the client is
 *                killed with pg_terminate_backend through DIRECT_CONNINFO (a
 *                superuser): while idle (always first), then the PARTs (default
 *                all): running (a simple query runs), running-extended,
 *                running-pipeline (more Sync segments queued behind it),
 *                running-flush (behind a Flush, no Sync), idle-unsynced (between
 *                two statements of one implicit transaction); prints what the
 *                client sees
 *
 * Transcript lines: "== name" per scenario; one line per result: its status name,
 * then rows ("  row: a|b", NULL as \N), command tags ("  tag: ..."), errors
 * ("  error: SQLSTATE primary message"); "-- null" where PQgetResult returns NULL;
 * "  xact: IDLE|INTRANS|INERROR|ACTIVE|UNKNOWN" after syncs and statements where
 * the transaction status is meaningful. Raw protocol messages print as
 * "< X ..." (X the message type). ParameterStatus messages (which a server may
 * send at any time) are not printed. An alarm (PIPELINE_TIMEOUT seconds, default
 * 20) prints "TIMEOUT" and exits 3, so a hang shows where it hung.
 * Exit: 0 when the transcript was written (whatever it says), 2 connection
 * failed, 3 timeout or broken connection, 1 usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

#include "tests/integration/transcript.h"

static PGconn *conn;

static const char *xact_name(PGTransactionStatusType t)
{
	switch (t) {
	case PQTRANS_IDLE: return "IDLE";
	case PQTRANS_ACTIVE: return "ACTIVE";
	case PQTRANS_INTRANS: return "INTRANS";
	case PQTRANS_INERROR: return "INERROR";
	default: return "UNKNOWN";
	}
}

static void print_xact(void) { printf("  xact: %s\n", xact_name(PQtransactionStatus(conn))); }

/* Print one result; returns its status. */
static ExecStatusType print_result(PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	printf("%s\n", PQresStatus(s));
	if (s == PGRES_TUPLES_OK || s == PGRES_SINGLE_TUPLE) {
		printf("  cols:");
		for (int f = 0; f < PQnfields(r); f++)
			printf(" %s", PQfname(r, f));
		printf("\n");
		for (int row = 0; row < PQntuples(r); row++) {
			printf("  row: ");
			for (int f = 0; f < PQnfields(r); f++) {
				if (f)
					putchar('|');
				if (PQgetisnull(r, row, f))
					printf("\\N");
				else
					printf("%s", PQgetvalue(r, row, f));
			}
			printf("\n");
		}
	}
	if (s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR) {
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		printf("  error: %s ", code ? code : "none");
		one_line(msg ? msg : PQresultErrorMessage(r));
		printf("\n");
	} else if (PQcmdStatus(r) && *PQcmdStatus(r)) {
		printf("  tag: %s\n", PQcmdStatus(r));
	}
	return s;
}

static void notice_printer(void *arg, const PGresult *r)
{
	(void)arg;
	const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	printf("  notice: %s ", code ? code : "none");
	one_line(msg);
	printf("\n");
}

/* Read and print results until NULL (one query's worth, outside pipeline mode). */
static void drain(void)
{
	PGresult *r;
	while ((r = PQgetResult(conn))) {
		print_result(r);
		PQclear(r);
		if (PQstatus(conn) == CONNECTION_BAD)
			die("connection lost: %s", PQerrorMessage(conn));
	}
}

static void exec_print(const char *sql)
{
	if (!PQsendQuery(conn, sql))
		die("PQsendQuery: %s", PQerrorMessage(conn));
	drain();
}

/* In pipeline mode: read results until `syncs` PIPELINE_SYNC results were seen,
 * printing everything (NULLs too: libpq returns one after each query's results). */
static void read_pipeline(int syncs)
{
	int nulls = 0;
	while (syncs > 0) {
		PGresult *r = PQgetResult(conn);
		if (!r) {
			if (PQstatus(conn) == CONNECTION_BAD)
				die("connection lost: %s", PQerrorMessage(conn));
			printf("-- null\n");
			if (++nulls > 2)
				die("libpq has nothing more to return (%d sync(s) missing)", syncs);
			continue;
		}
		nulls = 0;
		if (print_result(r) == PGRES_PIPELINE_SYNC) {
			print_xact();
			syncs--;
		}
		PQclear(r);
		if (PQstatus(conn) == CONNECTION_BAD)
			die("connection lost: %s", PQerrorMessage(conn));
	}
}

/* Read one query's results in pipeline mode (until the NULL that ends them). */
static void read_one(void)
{
	PGresult *r;
	int n = 0;
	while ((r = PQgetResult(conn))) {
		print_result(r);
		PQclear(r);
		n++;
		if (PQstatus(conn) == CONNECTION_BAD)
			die("connection lost: %s", PQerrorMessage(conn));
	}
	printf("-- null\n");
	if (!n)
		die("no result where one was expected");
}

/* Push out everything buffered without blocking on a peer that is itself
 * blocked writing to us: read what arrives meanwhile into libpq's buffer. */
static void flush_all(void)
{
	for (;;) {
		int f = PQflush(conn);
		if (f < 0)
			die("PQflush: %s", PQerrorMessage(conn));
		if (f == 0)
			return;
		struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN | POLLOUT };
		if (poll(&p, 1, 10000) <= 0)
			die("poll while flushing");
		if ((p.revents & POLLIN) && !PQconsumeInput(conn))
			die("PQconsumeInput: %s", PQerrorMessage(conn));
	}
}

static void send_params(const char *sql, int n, const char *const *vals)
{
	if (!PQsendQueryParams(conn, sql, n, NULL, vals, NULL, NULL, 0))
		die("PQsendQueryParams: %s", PQerrorMessage(conn));
}

static void send_sql(const char *sql) { send_params(sql, 0, NULL); }

static void psync(void)
{
	if (!PQpipelineSync(conn))
		die("PQpipelineSync: %s", PQerrorMessage(conn));
}

static void enter_pipeline(void)
{
	if (!PQenterPipelineMode(conn))
		die("PQenterPipelineMode: %s", PQerrorMessage(conn));
	if (PQsetnonblocking(conn, 1))
		die("PQsetnonblocking");
}

static void exit_pipeline(void)
{
	if (!PQexitPipelineMode(conn))
		die("PQexitPipelineMode: %s", PQerrorMessage(conn));
	if (PQsetnonblocking(conn, 0))
		die("PQsetnonblocking");
}

/* ------------------------------------------------------------------ scenarios */

static void sc_many(void)
{
	enum { SEGMENTS = 120, PER = 5 };
	enter_pipeline();
	for (int s = 0; s < SEGMENTS; s++) {
		for (int k = 0; k < PER; k++) {
			int i = s * PER + k;
			char a[32], b[32];
			snprintf(a, sizeof a, "%d", i);
			snprintf(b, sizeof b, "%d", i % 4);
			const char *v[] = { a, b };
			if (s % 10 == 7 && k == 2)
				send_params("SELECT $1::int / ($2::int - $2::int) AS boom", 2, v);
			else if (k == 1)
				send_params("SELECT g, md5(($1::int * 1000 + g)::text) FROM generate_series(1, $2::int) g", 2, v);
			else if (k == 3)
				send_params("SELECT $1::int AS n WHERE false", 1, v);
			else if (k == 4 && s % 3 == 0)
				send_sql("SET LOCAL statement_timeout = '30s'");
			else
				send_params("SELECT $1::int AS n, repeat('p', $1::int % 37) AS pad, $2::text AS b", 2, v);
		}
		psync();
	}
	flush_all();
	read_pipeline(SEGMENTS);
	exit_pipeline();
	/* the connection is in a sane state afterwards */
	exec_print("SELECT 'after-many' AS done");
	print_xact();
}

static void sc_error(void)
{
	enter_pipeline();
	send_sql("SELECT 1 AS one");
	send_sql("SELECT 1/0 AS boom");
	send_sql("SELECT 2 AS two");                           /* aborted */
	send_sql("SELECT 'x'::int");                           /* aborted too */
	psync();
	send_sql("SELECT 3 AS three");                         /* the next segment works */
	psync();
	/* inside an explicit block: the block stays failed across Syncs */
	send_sql("BEGIN");
	send_sql("SELECT 4 AS four");
	send_sql("SELECT no_such_column FROM pg_class");       /* 42703 */
	send_sql("SELECT 5 AS five");                          /* aborted */
	psync();
	send_sql("SELECT 6 AS six");                           /* 25P02 */
	psync();
	send_sql("ROLLBACK");
	psync();
	send_sql("SELECT 7 AS seven");
	psync();
	flush_all();
	read_pipeline(6);
	/* a block that succeeds across several Syncs */
	send_sql("BEGIN");
	psync();
	send_sql("SELECT 8 AS eight");
	psync();
	send_sql("COMMIT");
	psync();
	flush_all();
	read_pipeline(3);
	exit_pipeline();
	exec_print("SELECT 'after-error' AS done");
	print_xact();
}

static void sc_flush(void)
{
	enter_pipeline();
	send_sql("SELECT 'f1' AS a");
	send_sql("SELECT txid_current() AS x");
	if (!PQsendFlushRequest(conn))
		die("PQsendFlushRequest: %s", PQerrorMessage(conn));
	flush_all();
	/* read the first two results before any Sync */
	PGresult *r;
	read_one();
	char xid[64] = "";
	int n = 0;
	while ((r = PQgetResult(conn))) {
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			snprintf(xid, sizeof xid, "%s", PQgetvalue(r, 0, 0));
		printf("%s (xid not shown)\n", PQresStatus(PQresultStatus(r)));
		PQclear(r);
		n++;
	}
	printf("-- null\n");
	if (!n || !*xid)
		die("no txid");
	/* still in the same (implicit) transaction: no Sync was sent */
	const char *v[] = { xid };
	send_params("SELECT txid_current() = $1::bigint AS same_xact", 1, v);
	if (!PQsendFlushRequest(conn))
		die("PQsendFlushRequest: %s", PQerrorMessage(conn));
	flush_all();
	read_one();
	/* an error before the Sync, read through a Flush */
	send_sql("SELECT 1/0 AS boom");
	if (!PQsendFlushRequest(conn))
		die("PQsendFlushRequest: %s", PQerrorMessage(conn));
	flush_all();
	read_one();
	send_sql("SELECT 'aborted' AS a");                     /* PIPELINE_ABORTED */
	psync();
	send_sql("SELECT 'after-sync' AS a");
	if (!PQsendFlushRequest(conn))
		die("PQsendFlushRequest: %s", PQerrorMessage(conn));
	flush_all();
	read_pipeline(1);
	read_one();
	psync();
	flush_all();
	read_pipeline(1);
	/* a new transaction after the Sync */
	send_params("SELECT txid_current() = $1::bigint AS same_xact", 1, v);
	psync();
	flush_all();
	read_pipeline(1);
	exit_pipeline();
}

static void sc_cursor(void)
{
	exec_print("DECLARE c CURSOR FOR SELECT 1");           /* 25P01 outside a block */
	print_xact();
	exec_print("BEGIN");
	exec_print("DECLARE c CURSOR FOR SELECT g, md5(g::text) AS h FROM generate_series(1, 35) g");
	for (int i = 0; i < 10; i++) {
		PGresult *r = PQexec(conn, "FETCH 10 FROM c");
		ExecStatusType s = print_result(r);
		int n = PQntuples(r);
		PQclear(r);
		if (s != PGRES_TUPLES_OK || n == 0)
			break;
	}
	print_xact();
	exec_print("CLOSE c");
	exec_print("COMMIT");
	print_xact();
	exec_print("FETCH 1 FROM c");                          /* 34000: gone with the block */
	/* an error inside the block */
	exec_print("BEGIN");
	exec_print("DECLARE d CURSOR FOR SELECT g FROM generate_series(1, 5) g");
	exec_print("FETCH 2 FROM d");
	exec_print("FETCH 2 FROM no_such_cursor");             /* 34000 */
	print_xact();
	exec_print("FETCH 2 FROM d");                          /* 25P02 */
	exec_print("ROLLBACK");
	print_xact();
	/* a WITH HOLD-less cursor over several statements in one multi-statement query */
	exec_print("BEGIN; DECLARE e CURSOR FOR SELECT g FROM generate_series(1, 4) g; FETCH 3 FROM e; FETCH 3 FROM e; COMMIT");
	print_xact();
}

static void sc_singlerow(void)
{
	send_sql("SELECT g, 'v' || g AS v FROM generate_series(1, 5) g");
	if (!PQsetSingleRowMode(conn))
		die("PQsetSingleRowMode");
	drain();
	send_sql("SELECT 10 / (3 - g) AS q FROM generate_series(1, 5) g");
	if (!PQsetSingleRowMode(conn))
		die("PQsetSingleRowMode");
	drain();
	print_xact();
	/* single-row mode inside a pipeline */
	enter_pipeline();
	send_sql("SELECT g FROM generate_series(1, 3) g");
	send_sql("SELECT 'second' AS s");
	psync();
	flush_all();
	if (!PQsetSingleRowMode(conn))
		die("PQsetSingleRowMode (pipeline)");
	read_pipeline(1);
	exit_pipeline();
	exec_print("SELECT 'after-singlerow' AS done");
}

/* ------------------------------------------------------------------ raw protocol
 *
 * Once libpq has logged in (and read up to the first ReadyForQuery), nothing else
 * arrives unasked, so we may write frontend messages to PQsocket() ourselves and
 * read the answers, as long as we leave the connection idle (after a
 * ReadyForQuery) before handing it back to libpq. Messages built here: Query (Q),
 * Parse (P), Bind (B), Describe (D), Execute (E), Close (C), Flush (H), Sync (S). */

static char out[65536];
static size_t outlen;

static void put_byte(char c) { out[outlen++] = c; }
static void put_u32(uint32_t v) { v = htonl(v); memcpy(out + outlen, &v, 4); outlen += 4; }
static void put_u16(uint16_t v) { v = htons(v); memcpy(out + outlen, &v, 2); outlen += 2; }
static void put_str(const char *s) { size_t n = strlen(s) + 1; memcpy(out + outlen, s, n); outlen += n; }
static size_t msg_start(char type) { put_byte(type); size_t at = outlen; put_u32(0); return at; }
static void msg_end(size_t at)
{
	uint32_t len = htonl((uint32_t)(outlen - at));
	memcpy(out + at, &len, 4);
}

static void m_query(const char *sql) { size_t a = msg_start('Q'); put_str(sql); msg_end(a); }
static void m_parse(const char *stmt, const char *sql)
{
	size_t a = msg_start('P'); put_str(stmt); put_str(sql); put_u16(0); msg_end(a);
}
static void m_bind(const char *portal, const char *stmt)
{
	size_t a = msg_start('B'); put_str(portal); put_str(stmt);
	put_u16(0); put_u16(0); put_u16(0);                    /* formats, params, result formats */
	msg_end(a);
}
static void m_describe(char what, const char *name) { size_t a = msg_start('D'); put_byte(what); put_str(name); msg_end(a); }
static void m_execute(const char *portal, uint32_t rows) { size_t a = msg_start('E'); put_str(portal); put_u32(rows); msg_end(a); }
static void m_close(char what, const char *name) { size_t a = msg_start('C'); put_byte(what); put_str(name); msg_end(a); }
static void m_flush(void) { size_t a = msg_start('H'); msg_end(a); }
static void m_sync(void) { size_t a = msg_start('S'); msg_end(a); }

static void raw_send(void)
{
	size_t off = 0;
	while (off < outlen) {
		ssize_t n = send(PQsocket(conn), out + off, outlen - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("raw send: %s", strerror(errno));
		off += (size_t)n;
	}
	outlen = 0;
}

static char in[1 << 20];
static size_t inlen;

static void raw_fill(void)
{
	struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN };
	if (poll(&p, 1, 15000) <= 0)
		die("raw: nothing received for 15 s");
	ssize_t n = recv(PQsocket(conn), in + inlen, sizeof in - inlen, 0);
	if (n <= 0)
		die("raw recv: %s", n == 0 ? "EOF" : strerror(errno));
	inlen += (size_t)n;
}

static uint32_t get_u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }
static uint16_t get_u16(const char *p) { uint16_t v; memcpy(&v, p, 2); return ntohs(v); }

/* Print one backend message; returns its type. */
static char raw_print(char type, const char *body, uint32_t len)
{
	switch (type) {
	case 'S':                                              /* ParameterStatus: not printed */
		break;
	case '1': printf("< 1 ParseComplete\n"); break;
	case '2': printf("< 2 BindComplete\n"); break;
	case '3': printf("< 3 CloseComplete\n"); break;
	case 'n': printf("< n NoData\n"); break;
	case 's': printf("< s PortalSuspended\n"); break;
	case 'I': printf("< I EmptyQueryResponse\n"); break;
	case 'Z': printf("< Z ReadyForQuery %c\n", len ? body[0] : '?'); break;
	case 'C': printf("< C CommandComplete %.*s\n", (int)strnlen(body, len), body); break;
	case 'T': {
		uint16_t n = get_u16(body);
		const char *p = body + 2;
		printf("< T RowDescription");
		for (uint16_t i = 0; i < n && p < body + len; i++) {
			printf(" %s", p);
			p += strlen(p) + 1 + 18;
		}
		printf("\n");
		break;
	}
	case 'D': {
		uint16_t n = get_u16(body);
		const char *p = body + 2;
		printf("< D");
		for (uint16_t i = 0; i < n; i++) {
			int32_t l = (int32_t)get_u32(p);
			p += 4;
			if (l < 0) {
				printf("%s\\N", i ? "|" : " ");
			} else {
				printf("%s%.*s", i ? "|" : " ", l, p);
				p += l;
			}
		}
		printf("\n");
		break;
	}
	case 'E':
	case 'N': {
		const char *code = "?", *msg = "?", *sev = "?";
		for (const char *p = body; p < body + len && *p;) {
			char f = *p++;
			if (f == 'C') code = p;
			if (f == 'M') msg = p;
			if (f == 'V') sev = p;
			p += strlen(p) + 1;
		}
		printf("< %c %s %s %s\n", type, sev, code, msg);
		break;
	}
	default:
		printf("< %c (%u bytes)\n", type, len);
	}
	return type;
}

/* Read and print backend messages until one of type `stop` (and `count` of them). */
static void raw_read_until(char stop, int count)
{
	for (;;) {
		while (inlen >= 5) {
			uint32_t len = get_u32(in + 1);
			if (len < 4 || len > sizeof in - 1)
				die("raw: bad message length %u", len);
			if (inlen < 1 + len)
				break;
			char t = raw_print(in[0], in + 5, len - 4);
			memmove(in, in + 1 + len, inlen - 1 - len);
			inlen -= 1 + len;
			if (t == stop && --count == 0) {
				if (inlen)
					die("raw: %zu unexpected bytes after the last message", inlen);
				return;
			}
		}
		raw_fill();
	}
}

static void sc_raw(void)
{
	const char *sel = "SELECT g, 'r' || g AS r FROM generate_series(1, 25) g";
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		die("raw: connection not idle");

	printf("-> Query BEGIN\n");
	m_query("BEGIN");
	raw_send();
	raw_read_until('Z', 1);

	printf("-> Parse, Bind p1, Describe p1, Execute p1 10, Sync\n");
	m_parse("", sel);
	m_bind("p1", "");
	m_describe('P', "p1");
	m_execute("p1", 10);
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	printf("-> Execute p1 10, Flush\n");
	m_execute("p1", 10);
	m_flush();
	raw_send();
	raw_read_until('s', 1);

	printf("-> Execute p1 0, Close p1, Sync\n");
	m_execute("p1", 0);
	m_close('P', "p1");
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	printf("-> Execute p1 1, Sync (closed portal)\n");
	m_execute("p1", 1);
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	printf("-> Parse, Bind p9, Sync (in a failed block)\n");
	m_parse("", "SELECT 1");
	m_bind("p9", "");
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	printf("-> Query ROLLBACK\n");
	m_query("ROLLBACK");
	raw_send();
	raw_read_until('Z', 1);

	printf("-> (implicit transaction) Parse, Bind p2, Execute p2 3 twice, Sync; Execute p2 3, Sync\n");
	m_parse("", sel);
	m_bind("p2", "");
	m_execute("p2", 3);
	m_execute("p2", 3);
	m_sync();
	m_execute("p2", 3);                                    /* 34000: the portal ended with the Sync */
	m_sync();
	raw_send();
	raw_read_until('Z', 2);

	printf("-> Parse, Bind p3, Execute p3 2, Flush; then Execute p3 2, Execute p3 0, Sync\n");
	m_parse("", "SELECT g FROM generate_series(1, 5) g");
	m_bind("p3", "");
	m_execute("p3", 2);
	m_flush();
	raw_send();
	raw_read_until('s', 1);
	m_execute("p3", 2);
	m_execute("p3", 0);
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	printf("-> Query BEGIN; two portals interleaved over three Syncs; COMMIT\n");
	m_query("BEGIN");
	m_parse("", "SELECT g AS a FROM generate_series(1, 4) g");
	m_bind("pa", "");
	m_parse("", "SELECT g * 100 AS b FROM generate_series(1, 4) g");
	m_bind("pb", "");
	m_execute("pa", 2);
	m_execute("pb", 2);
	m_sync();
	m_execute("pb", 2);
	m_execute("pa", 3);
	m_sync();
	m_execute("pb", 1);
	m_sync();
	m_query("COMMIT");
	raw_send();
	raw_read_until('Z', 5);

	printf("-> Parse with a syntax error, Bind, Execute, Sync\n");
	m_parse("", "SELEC 1");
	m_bind("", "");
	m_execute("", 0);
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	/* hand the (idle) connection back to libpq */
	exec_print("SELECT 'after-raw' AS done");
	print_xact();
}

/* Parse, Bind and Execute of an unnamed statement. */
static void m_run(const char *sql)
{
	m_parse("", sql);
	m_bind("", "");
	m_execute("", 0);
}

/* Reads and writes behind each other in one send (read_write_split): a write
 * must reach the primary whatever was routed before it. */
static void sc_split(void)
{
	const char *port = "' || inet_server_port()";
	char a[160], b[160], c[160];
	printf("-> Query read, Query write, Query read (one send)\n");
	snprintf(a, sizeof a, "SELECT 'q-r1:%s", port);
	snprintf(b, sizeof b, "INSERT INTO rt VALUES (10) RETURNING 'q-w1:%s", port);
	snprintf(c, sizeof c, "SELECT 'q-r2:%s", port);
	m_query(a);
	m_query(b);
	m_query(c);
	raw_send();
	raw_read_until('Z', 3);

	printf("-> read segment, write segment, read segment (one send)\n");
	snprintf(a, sizeof a, "SELECT 'x-r1:%s", port);
	snprintf(b, sizeof b, "INSERT INTO rt VALUES (11) RETURNING 'x-w1:%s", port);
	snprintf(c, sizeof c, "SELECT 'x-r2:%s", port);
	const char *seg[] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		m_run(seg[i]);
		m_sync();
	}
	raw_send();
	raw_read_until('Z', 3);

	printf("-> read and write in one segment\n");
	snprintf(a, sizeof a, "SELECT 'y-r1:%s", port);
	snprintf(b, sizeof b, "INSERT INTO rt VALUES (12) RETURNING 'y-w1:%s", port);
	m_run(a);
	m_run(b);
	m_sync();
	raw_send();
	raw_read_until('Z', 1);

	printf("-> read segment, then a segment opening with Close before its write\n");
	snprintf(a, sizeof a, "SELECT 'z-r1:%s", port);
	snprintf(b, sizeof b, "INSERT INTO rt VALUES (13) RETURNING 'z-w1:%s", port);
	m_run(a);
	m_sync();
	m_close('S', "nosuch");
	m_run(b);
	m_sync();
	raw_send();
	raw_read_until('Z', 2);

	printf("-> hinted BEGIN on a replica, a read and COMMIT (one send)\n");
	snprintf(a, sizeof a, "SELECT 'h-r1:%s", port);
	m_query("/*!pgring target=replica*/ BEGIN");
	m_query(a);
	m_query("COMMIT");
	raw_send();
	raw_read_until('Z', 3);

	printf("-> libpq pipeline: read, write, read, each with its Sync\n");
	enter_pipeline();
	snprintf(a, sizeof a, "SELECT 'p-r1:%s", port);
	snprintf(b, sizeof b, "INSERT INTO rt VALUES (14) RETURNING 'p-w1:%s", port);
	snprintf(c, sizeof c, "SELECT 'p-r2:%s", port);
	send_sql(a);
	psync();
	send_sql(b);
	psync();
	send_sql(c);
	psync();
	flush_all();
	read_pipeline(3);
	exit_pipeline();
	exec_print("SELECT 'after-split' AS done");
}

/* ------------------------------------------------------------------ terminate */

static PGconn *direct;
static const char *term_only;   /* run only this part (after the idle one) */
#define PART(name) (!term_only || !strcmp(term_only, name))

static char *direct_value(const char *sql)
{
	static char v[256];
	PGresult *r = PQexec(direct, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die("direct: %s: %s", sql, PQerrorMessage(direct));
	snprintf(v, sizeof v, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return v;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Kill the backend running a query containing `tag` (waiting up to 5 s for it). */
static void kill_running(const char *tag)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%%%s%%' "
	         "AND pid <> pg_backend_pid()", tag);
	for (int i = 0; i < 100; i++) {
		char *pid = direct_value(sql);
		if (*pid) {
			char k[128];
			snprintf(k, sizeof k, "SELECT pg_terminate_backend(%s)", pid);
			direct_value(k);
			printf("  (killed the server running %s)\n", tag);
			return;
		}
		sleep_ms(50);
	}
	die("no backend runs %s", tag);
}

static void sc_terminate(void)
{
	/* 1. idle: the next query (extended protocol) and a pipeline just work */
	PGresult *r = PQexec(conn, "SELECT pg_backend_pid()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die("pid: %s", PQerrorMessage(conn));
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", PQgetvalue(r, 0, 0));
	PQclear(r);
	direct_value(sql);
	printf("== idle\n  (killed the idle server)\n");
	sleep_ms(300);
	const char *v[] = { "42" };
	send_params("SELECT $1::int AS v", 1, v);
	drain();
	enter_pipeline();
	send_sql("SELECT 'p1' AS a");
	send_sql("SELECT 'p2' AS a");
	psync();
	flush_all();
	read_pipeline(1);
	exit_pipeline();

	/* 2. a query running: its error, then the session works (same and new block) */
	if (PART("running")) {
	printf("== running\n");
	send_sql("SELECT pg_sleep(30) /* pipeline-term-1 */");
	kill_running("pipeline-term-1 *");
	drain();
	print_xact();
	exec_print("SELECT 'after-running-kill' AS a");
	exec_print("BEGIN");
	exec_print("SELECT 'in-block' AS a");
	exec_print("COMMIT");
	print_xact();

	}
	/* 3. extended protocol, query running */
	if (PART("running-extended")) {
	printf("== running-extended\n");
	send_params("SELECT pg_sleep(30) /* pipeline-term-2 */, $1::int", 1, v);
	kill_running("pipeline-term-2 *");
	drain();
	print_xact();
	send_params("SELECT $1::int AS after_ext", 1, v);
	drain();

	}
	/* 4. inside a pipeline with more segments queued behind the running one */
	if (PART("running-pipeline")) {
	printf("== running-pipeline\n");
	enter_pipeline();
	send_sql("SELECT 'seg1' AS a");
	send_sql("SELECT pg_sleep(30) /* pipeline-term-3 */");
	send_sql("SELECT 'seg1-after' AS a");
	psync();
	send_sql("SELECT 'seg2' AS a");
	psync();
	flush_all();
	kill_running("pipeline-term-3 *");
	read_pipeline(2);
	exit_pipeline();
	exec_print("SELECT 'after-pipeline-kill' AS a");
	print_xact();

	}
	/* 5. a query running behind a Flush (no Sync sent): the client waits for its
	 * result, so it must hear the error */
	if (PART("running-flush")) {
	printf("== running-flush\n");
	enter_pipeline();
	send_sql("SELECT pg_sleep(30) /* pipeline-term-4 */");
	if (!PQsendFlushRequest(conn))
		die("PQsendFlushRequest: %s", PQerrorMessage(conn));
	flush_all();
	kill_running("pipeline-term-4 *");
	read_one();
	psync();
	flush_all();
	read_pipeline(1);
	exit_pipeline();
	exec_print("SELECT 'after-flush-kill' AS a");
	print_xact();
	}
	/* 6. killed between two statements of one implicit transaction (results read
	 * through a Flush, no Sync yet): the statements after it must not silently
	 * run in a new transaction, the client must hear that the first part is gone */
	if (PART("idle-unsynced")) {
	printf("== idle-unsynced\n");
	enter_pipeline();
	send_sql("SELECT pg_backend_pid()::text AS pid, txid_current()::text AS x");
	if (!PQsendFlushRequest(conn))
		die("PQsendFlushRequest: %s", PQerrorMessage(conn));
	flush_all();
	PGresult *pr = PQgetResult(conn);
	if (PQresultStatus(pr) != PGRES_TUPLES_OK)
		die("pid/xid: %s", PQerrorMessage(conn));
	char xid[64];
	snprintf(xid, sizeof xid, "%s", PQgetvalue(pr, 0, 1));
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", PQgetvalue(pr, 0, 0));
	PQclear(pr);
	if ((pr = PQgetResult(conn)))
		die("more than one result");
	printf("PGRES_TUPLES_OK (pid, xid not shown)\n-- null\n");
	direct_value(sql);
	printf("  (killed the server inside the implicit transaction)\n");
	sleep_ms(300);
	const char *xv[] = { xid };
	send_params("SELECT txid_current() = $1::bigint AS same_xact", 1, xv);
	psync();
	flush_all();
	read_pipeline(1);
	exit_pipeline();
	exec_print("SELECT 'after-unsynced-kill' AS a");
	print_xact();
	}
}

/* ------------------------------------------------------------------ main */

static void connect_or_exit(PGconn **c, const char *ci)
{
	*c = PQconnectdb(ci);
	if (PQstatus(*c) != CONNECTION_OK) {
		printf("CONNECT FAILED: ");
		one_line(PQerrorMessage(*c));
		printf("\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pipeline CONNINFO [many|error|flush|cursor|singlerow|raw|split]...\n"
		                "       pipeline CONNINFO terminate DIRECT_CONNINFO\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	const char *tmo = getenv("PIPELINE_TIMEOUT");
	unsigned secs = tmo && atoi(tmo) > 0 ? (unsigned)atoi(tmo) : 20;
	alarm(secs);
	connect_or_exit(&conn, argv[1]);
	PQsetNoticeReceiver(conn, notice_printer, NULL);

	if (argc >= 3 && !strcmp(argv[2], "terminate")) {
		if (argc != 4 && argc != 5)
			return 1;
		term_only = argc == 5 ? argv[4] : NULL;
		connect_or_exit(&direct, argv[3]);
		sc_terminate();
		PQfinish(direct);
		PQfinish(conn);
		fflush(stdout);
		return 0;
	}

	static const struct { const char *name; void (*fn)(void); } all[] = {
		{ "many", sc_many }, { "error", sc_error }, { "flush", sc_flush },
		{ "cursor", sc_cursor }, { "singlerow", sc_singlerow }, { "raw", sc_raw },
		{ "split", sc_split },   /* last: the default run stops before it */
	};
	size_t nall = sizeof all / sizeof all[0];
	for (size_t i = 0; i < nall; i++) {
		int want = argc == 2 && i + 1 < nall;
		for (int a = 2; a < argc; a++)
			if (!strcmp(argv[a], all[i].name))
				want = 1;
		if (!want)
			continue;
		printf("== %s\n", all[i].name);
		all[i].fn();
		fflush(stdout);
	}
	for (int a = 2; a < argc; a++) {
		int known = 0;
		for (size_t i = 0; i < nall; i++)
			known |= !strcmp(argv[a], all[i].name);
		if (!known) {
			fprintf(stderr, "pipeline: unknown scenario %s\n", argv[a]);
			return 1;
		}
	}
	PQfinish(conn);
	printf("== end\n");
	fflush(stdout);
	return 0;
}
