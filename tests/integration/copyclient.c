/* tests/integration/copyclient.c: COPY edge cases over one libpq connection,
 * printing a deterministic transcript (diffed between a direct run against
 * PostgreSQL and a run through the pooler).
 *
 *   copyclient CONNINFO DIRECT_CONNINFO [STEP]...   (default: every step)
 *
 * Uses table copy_c (id int, v text), which it truncates first. DIRECT_CONNINFO
 * (a superuser, straight to PostgreSQL) is used only to print the state of the
 * user's backends from pg_stat_activity ("  backends: idle/nx"): with the client
 * alone on the server that is its own backend directly and the pooled server
 * through a pooler, so a pooler leaving a transaction open (or a COPY unfinished)
 * shows up as a difference. Steps (setup, which truncates copy_c, always runs):
 *   copyfail        COPY FROM STDIN, 1000 rows, PQputCopyEnd(errormsg): 57014
 *   copyfail-big    the same after 20 MB of rows
 *   copyfail-xact   inside BEGIN: the block is failed until ROLLBACK
 *   copy-xact       COPY FROM inside BEGIN ... COMMIT
 *   copy-ext        COPY FROM STDIN through the extended protocol (PQexecParams:
 *                   its Sync arrives before the data), ending well and with CopyFail
 *   copy-out-ext    COPY TO STDOUT through the extended protocol
 *   copy-out-error  COPY TO STDOUT failing after 299999 rows
 *   badrow          COPY FROM of 100000 rows with a non-integer at row 50000
 * With COPYCLIENT_HOLD=SECONDS it stays connected (idle) that long after "== end".
 * Exit: 0 transcript written, 2 connection failed, 3 broken (message printed). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#include "tests/integration/transcript.h"

static PGconn *conn, *direct;

static void print_result(PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	printf("%s\n", PQresStatus(s));
	if (s == PGRES_TUPLES_OK)
		for (int row = 0; row < PQntuples(r); row++) {
			printf("  row: ");
			for (int f = 0; f < PQnfields(r); f++)
				printf("%s%s", f ? "|" : "", PQgetvalue(r, row, f));
			printf("\n");
		}
	if (s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR) {
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);
		printf("  error: %s ", code ? code : "none");
		one_line(msg ? msg : PQresultErrorMessage(r));
		printf("\n");
		if (ctx) {
			printf("  context: ");
			one_line(ctx);
			printf("\n");
		}
	} else if (*PQcmdStatus(r)) {
		printf("  tag: %s\n", PQcmdStatus(r));
	}
}

static void xact(void)
{
	static const char *names[] = { "IDLE", "ACTIVE", "INTRANS", "INERROR", "UNKNOWN" };
	printf("  xact: %s\n", names[PQtransactionStatus(conn)]);
}

/* The user's backends as PostgreSQL sees them: state and whether a transaction is open. */
static void backends(void)
{
	const char *user = PQuser(conn);
	PGresult *r = PQexecParams(direct,
		"SELECT coalesce(string_agg(state || '/' || CASE WHEN backend_xid IS NULL AND xact_start IS NULL "
		"THEN 'nx' ELSE 'XACT' END, ',' ORDER BY state), 'none') FROM pg_stat_activity "
		"WHERE usename = $1 AND backend_type = 'client backend'", 1, NULL, &user, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die("direct: %s", PQerrorMessage(direct));
	printf("  backends: %s\n", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static void drain(void)
{
	PGresult *r;
	while ((r = PQgetResult(conn))) {
		ExecStatusType s = PQresultStatus(r);
		print_result(r);
		PQclear(r);
		if (PQstatus(conn) == CONNECTION_BAD)
			die("connection lost: %s", PQerrorMessage(conn));
		if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT)
			return;   /* the caller goes on with the COPY */
	}
}

static void ex(const char *sql)
{
	if (!PQsendQuery(conn, sql))
		die("PQsendQuery: %s", PQerrorMessage(conn));
	drain();
}

static void ex_params(const char *sql)
{
	if (!PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0))
		die("PQsendQueryParams: %s", PQerrorMessage(conn));
}

/* Expect PGRES_COPY_IN from the last send. */
static void expect_copy_in(void)
{
	PGresult *r = PQgetResult(conn);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		print_result(r);
		die("expected COPY_IN");
	}
	printf("PGRES_COPY_IN\n");
	PQclear(r);
}

/* Send rows first..last; row `bad` (if in range) has a non-integer id. */
static void put_rows(long first, long last, long bad, int pad)
{
	char line[512];
	for (long i = first; i <= last; i++) {
		int n;
		if (i == bad)
			n = snprintf(line, sizeof line, "x%ld\tbad row\n", i);
		else
			n = snprintf(line, sizeof line, "%ld\t%0*ld\n", i, pad, i);
		if (PQputCopyData(conn, line, n) != 1)
			die("PQputCopyData: %s", PQerrorMessage(conn));
	}
}

static void end_copy(const char *err)
{
	if (PQputCopyEnd(conn, err) != 1)
		die("PQputCopyEnd: %s", PQerrorMessage(conn));
	drain();
}

static void st_setup(void)
{
	ex("TRUNCATE copy_c");
	backends();
}

static void st_copyfail(void)
{
	ex("COPY copy_c FROM STDIN");
	put_rows(1, 1000, 0, 10);
	end_copy("pgring-test: the client gave up");
	xact();
	backends();
	ex("SELECT count(*) FROM copy_c");
}

static void st_copyfail_big(void)
{
	ex("COPY copy_c FROM STDIN");
	put_rows(1, 200000, 0, 90);                           /* ~20 MB */
	end_copy("pgring-test: gave up after 20 MB");
	xact();
	backends();
	ex("SELECT count(*) FROM copy_c");
}

static void st_copyfail_xact(void)
{
	ex("BEGIN");
	ex("INSERT INTO copy_c VALUES (-1, 'in block')");
	ex("COPY copy_c FROM STDIN");
	put_rows(1, 1000, 0, 10);
	end_copy("pgring-test: abort inside a block");
	xact();
	backends();
	ex("SELECT 1");
	ex("ROLLBACK");
	xact();
	backends();
	ex("SELECT count(*) FROM copy_c");
}

static void st_copy_xact(void)
{
	ex("BEGIN");
	ex("COPY copy_c FROM STDIN");
	put_rows(1, 1000, 0, 10);
	end_copy(NULL);
	xact();
	backends();
	ex("COMMIT");
	ex("SELECT count(*), sum(id) FROM copy_c");
	backends();
}

static void st_copy_ext(void)
{
	ex_params("COPY copy_c FROM STDIN");
	expect_copy_in();
	put_rows(1001, 1500, 0, 10);
	end_copy(NULL);
	xact();
	ex_params("SELECT count(*) FROM copy_c");
	drain();
	ex_params("COPY copy_c FROM STDIN");
	expect_copy_in();
	put_rows(2001, 2500, 0, 10);
	end_copy("pgring-test: extended CopyFail");
	xact();
	backends();
	ex_params("SELECT count(*) FROM copy_c");
	drain();
	ex_params("COPY copy_c FROM STDIN");
	expect_copy_in();
	put_rows(3001, 3500, 3200, 10);
	end_copy(NULL);
	xact();
	backends();
	ex_params("SELECT count(*) FROM copy_c");
	drain();
}

static void st_copy_out_ext(void)
{
	ex_params("COPY (SELECT g, 'o' || g FROM generate_series(1, 5) g) TO STDOUT");
	{
		PGresult *r = PQgetResult(conn);
		printf("%s\n", PQresStatus(PQresultStatus(r)));
		PQclear(r);
		char *buf;
		int n;
		while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
			printf("  data: %.*s", n, buf);
			PQfreemem(buf);
		}
		if (n != -1)
			die("PQgetCopyData: %s", PQerrorMessage(conn));
		drain();
	}
	ex("SELECT 'after-copy-out' AS a");
}

static void st_copy_out_error(void)
{
	ex("COPY (SELECT g, 1000000 / (300000 - g) FROM generate_series(1, 400000) g) TO STDOUT");
	{
		char *buf;
		int n;
		long rows = 0, bytes = 0;
		while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
			rows++;
			bytes += n;
			PQfreemem(buf);
		}
		printf("  received %ld rows, %ld bytes, then %d\n", rows, bytes, n);
		drain();
	}
	xact();
	backends();
	ex("SELECT 'after-copy-out-error' AS a");
}

static void st_badrow(void)
{
	ex("COPY copy_c FROM STDIN");
	put_rows(10001, 110000, 60000, 40);                   /* row 50000 of 100000 */
	end_copy(NULL);
	xact();
	backends();
	ex("SELECT count(*) FROM copy_c");
	ex("BEGIN");
	ex("COPY copy_c FROM STDIN");
	put_rows(10001, 110000, 60000, 40);
	end_copy(NULL);
	xact();
	backends();
	ex("SELECT 1");
	ex("ROLLBACK");
	ex("SELECT count(*) FROM copy_c");
	backends();
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: copyclient CONNINFO DIRECT_CONNINFO [STEP]...\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	signal(SIGALRM, on_alarm);
	alarm(60);
	conn = PQconnectdb(argv[1]);
	direct = PQconnectdb(argv[2]);
	if (PQstatus(conn) != CONNECTION_OK || PQstatus(direct) != CONNECTION_OK) {
		printf("CONNECT FAILED: ");
		one_line(PQerrorMessage(PQstatus(conn) != CONNECTION_OK ? conn : direct));
		printf("\n");
		return 2;
	}

	static const struct { const char *name; void (*fn)(void); } steps[] = {
		{ "setup", st_setup },
		{ "copyfail", st_copyfail },
		{ "copyfail-big", st_copyfail_big },
		{ "copyfail-xact", st_copyfail_xact },
		{ "copy-xact", st_copy_xact },
		{ "copy-ext", st_copy_ext },
		{ "copy-out-ext", st_copy_out_ext },
		{ "copy-out-error", st_copy_out_error },
		{ "badrow", st_badrow },
	};
	size_t nsteps = sizeof steps / sizeof steps[0];
	for (int a = 3; a < argc; a++) {
		int known = 0;
		for (size_t i = 0; i < nsteps; i++)
			known |= !strcmp(argv[a], steps[i].name);
		if (!known) {
			fprintf(stderr, "copyclient: unknown step %s\n", argv[a]);
			return 1;
		}
	}
	for (size_t i = 0; i < nsteps; i++) {
		int want = argc == 3 || i == 0;   /* setup always */
		for (int a = 3; a < argc; a++)
			want |= !strcmp(argv[a], steps[i].name);
		if (!want)
			continue;
		printf("== %s\n", steps[i].name);
		steps[i].fn();
	}

	printf("== end\n");
	fflush(stdout);
	const char *hold = getenv("COPYCLIENT_HOLD");   /* stay connected, idle, that long */
	if (hold && atoi(hold) > 0) {
		alarm(0);
		sleep((unsigned)atoi(hold));
	}
	PQfinish(conn);
	PQfinish(direct);
	return 0;
}
