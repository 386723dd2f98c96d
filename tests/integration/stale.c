/* tests/integration/stale.c: prepared statements across a schema change, and
 * the unnamed statement across transactions, from many clients at once,
 * printing what the clients see, so that a run through the pooler can be
 * compared line by line with a run directly against PostgreSQL.
 *
 *   stale transcript CONNINFO NCONN
 *       NCONN connections (at least 2). Each step is done by every connection
 *       in turn; "spread" puts two connections in open transactions at once
 *       and runs a statement in both, so that over a pool of 2 servers both
 *       servers hold it. Cases:
 *         alter:    a named statement, ALTER COLUMN ... TYPE under it: every
 *                   connection gets 0A000 (twice: the statement stays broken),
 *                   Describe of it, then prepares again (DEALLOCATE + same name
 *                   in even connections, a new name in odd ones) and runs it
 *                   on every server.
 *                   The table made again with the same type: nothing fails.
 *         recreate: INSERT of an int[] and a SELECT of it, DROP/CREATE TABLE
 *                   with the column as bytea: 42804 and 0A000, prepared again
 *                   in a pipeline (Parse, Bind, Execute, Sync in one write),
 *                   bytea inserted and read back; the old names still fail
 *                   until prepared again.
 *         value_first: the same, but the first try sends a bytea value to
 *                   the old int[] parameter (22P02); a new name then works.
 *         unnamed:  PQprepare(""), then Describe and Bind of it in later
 *                   transactions while another connection holds the server
 *                   it was prepared on; a simple Query destroys it (26000); a
 *                   failed unnamed Parse leaves none; PQexecParams.
 *
 *   stale hop CONNINFO ROUNDS
 *       Two connections; ROUNDS times: connection 0 notes its backend's PID,
 *       prepares the unnamed statement "SELECT pg_backend_pid() + $1", and
 *       while connection 1 holds a server in an open transaction runs it.
 *       Prints "hops H of N ok K": the runs that came back from another
 *       backend than the one it was prepared on (0 directly), and how many
 *       gave the right kind of answer.
 *
 * Exit: 0 done (whatever the server answered; compare the output), 1 usage,
 * 2 connection failed, 3 protocol trouble. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#define PQSHOW_NAME "stale"
#include "pqshow.h"



/* ------------------------------------------------------------ libpq results */

static void show(int i, const char *what, PGresult *r)
{
	pq_show(i, conns[i], what, r, true);
}

static void describe(int i, const char *name)
{
	char what[128];
	snprintf(what, sizeof what, "describe '%s'", name);
	pq_describe(i, conns[i], what, name, true);
}

static void prep(int i, const char *name, const char *sql)
{
	char what[256];
	snprintf(what, sizeof what, "prepare '%s'", name);
	show(i, what, PQprepare(conns[i], name, sql, 0, NULL));
}

static void exec_n(int i, const char *name, int n, const char *const *vals)
{
	char what[256];
	int k = snprintf(what, sizeof what, "exec '%s'(", name);
	for (int p = 0; p < n && k < (int)sizeof what; p++)
		k += snprintf(what + k, sizeof what - (size_t)k, "%s%s", p ? "," : "", vals[p]);
	if (k < (int)sizeof what)
		snprintf(what + k, sizeof what - (size_t)k, ")");
	show(i, what, PQexecPrepared(conns[i], name, n, vals, NULL, NULL, 0));
}

static void exec0(int i, const char *name) { exec_n(i, name, 0, NULL); }
static void exec1(int i, const char *name, const char *v) { exec_n(i, name, 1, &v); }

static void sql(int i, const char *text)
{
	show(i, text, PQexec(conns[i], text));
}

/* Connections a and b in open transactions at once, each running `run`: over
 * a pool of two servers, both servers run it. */
static void spread(int a, int b, void (*run)(int i))
{
	sql(a, "BEGIN");
	sql(b, "BEGIN");
	run(a);
	run(b);
	sql(a, "COMMIT");
	sql(b, "COMMIT");
}

/* ------------------------------------------------------------ alter */

static const char *const q_alter = "SELECT x FROM stale_a ORDER BY x";

static void run_sa(int i) { exec0(i, "sa"); }
static void run_again(int i) { exec0(i, i % 2 ? "sa2" : "sa"); }

static void alter(void)
{
	printf("== alter\n");
	sql(0, "DROP TABLE IF EXISTS stale_a");
	sql(0, "CREATE TABLE stale_a (x int)");
	sql(0, "INSERT INTO stale_a VALUES (1), (2)");
	for (int i = 0; i < nconn; i++) {
		prep(i, "sa", q_alter);
		exec0(i, "sa");
	}
	spread(0, 1, run_sa);
	sql(0, "ALTER TABLE stale_a ALTER COLUMN x TYPE text");
	for (int i = 0; i < nconn; i++)
		exec0(i, "sa");
	for (int i = 0; i < nconn; i++)
		exec0(i, "sa");   /* still the statement prepared before */
	for (int i = 0; i < nconn; i++)
		describe(i, "sa");
	/* prepared again: under the same name after DEALLOCATE, or a new one */
	for (int i = 0; i < nconn; i++) {
		if (i % 2 == 0) {
			sql(i, "DEALLOCATE sa");
			prep(i, "sa", q_alter);
		} else {
			prep(i, "sa2", q_alter);
		}
		exec0(i, i % 2 ? "sa2" : "sa");
	}
	for (int i = 0; i < nconn; i++)
		spread(i, (i + 1) % nconn, run_again);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < nconn; i++)
			run_again(i);
	for (int i = 0; i < nconn; i++)
		describe(i, i % 2 ? "sa2" : "sa");
	sql(0, "INSERT INTO stale_a VALUES ('three')");
	for (int i = 0; i < nconn; i++)
		run_again(i);
	/* and the other odd names, prepared before: still stale */
	for (int i = 1; i < nconn; i += 2)
		exec0(i, "sa");
	/* the table made again with the same type: PostgreSQL re-analyses by
	 * name, nothing fails */
	sql(0, "DROP TABLE stale_a");
	sql(0, "CREATE TABLE stale_a (x text)");
	sql(0, "INSERT INTO stale_a VALUES ('again')");
	for (int i = 0; i < nconn; i++)
		run_again(i);
	spread(0, 1, run_again);
}

/* ------------------------------------------------------------ recreate */

static const char *const q_ins = "INSERT INTO stale_b VALUES ($1, $2)";
static const char *const q_sel = "SELECT v FROM stale_b WHERE id = $1 ORDER BY v";

static void run_old(int i)
{
	char id[16], other[16];
	snprintf(id, sizeof id, "%d", i);
	snprintf(other, sizeof other, "%d", 100 + i);
	const char *vals[2] = { other, "{9}" };
	exec_n(i, "ib", 2, vals);
	exec1(i, "sb", id);
}

/* Prepare a new name for each text, run it, all in one pipeline. */
static void pipelined(int i, int round, const char *value)
{
	char ins[32], sel[32], id[16];
	snprintf(ins, sizeof ins, "ib_%d", round);
	snprintf(sel, sizeof sel, "sb_%d", round);
	snprintf(id, sizeof id, "%d", i);
	PGconn *c = conns[i];
	if (!PQenterPipelineMode(c))
		die(3, "c%d: pipeline mode: %s", i, PQerrorMessage(c));
	const char *vals[2] = { id, value };
	if (!PQsendPrepare(c, ins, q_ins, 0, NULL) || !PQsendQueryPrepared(c, ins, 2, vals, NULL, NULL, 0) ||
	    !PQsendPrepare(c, sel, q_sel, 0, NULL) || !PQsendQueryPrepared(c, sel, 1, vals, NULL, NULL, 0) ||
	    !PQpipelineSync(c))
		die(3, "c%d: pipeline: %s", i, PQerrorMessage(c));
	const char *what[] = { "pipeline prepare ins", "pipeline exec ins", "pipeline prepare sel", "pipeline exec sel",
			       "pipeline sync" };
	for (int k = 0; k < 5; k++) {
		PGresult *r = PQgetResult(c);
		if (!r)
			die(3, "c%d: %s: no result", i, what[k]);
		ExecStatusType s = PQresultStatus(r);
		show(i, what[k], r);
		if (s != PGRES_PIPELINE_SYNC && (r = PQgetResult(c)) != NULL)
			die(3, "c%d: %s: more than one result", i, what[k]);
	}
	if (!PQexitPipelineMode(c))
		die(3, "c%d: leaving pipeline mode: %s", i, PQerrorMessage(c));
}

static int rounds[64];
static void run_pipelined(int i) { pipelined(i, 10 + rounds[i % 64]++, "\\x0909"); }

static void recreate(void)
{
	printf("== recreate\n");
	sql(0, "DROP TABLE IF EXISTS stale_b");
	sql(0, "CREATE TABLE stale_b (id int, v int[])");
	for (int i = 0; i < nconn; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *vals[2] = { id, "{1,2}" };
		prep(i, "ib", q_ins);
		exec_n(i, "ib", 2, vals);
		prep(i, "sb", q_sel);
		exec1(i, "sb", id);
	}
	spread(0, 1, run_old);
	sql(0, "DROP TABLE stale_b");
	sql(0, "CREATE TABLE stale_b (id int, v bytea)");
	/* the parameter's type was fixed at the Parse: int[] into bytea is 42804;
	 * the result's: 0A000 */
	for (int i = 0; i < nconn; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *vals[2] = { id, "{1,2}" };
		exec_n(i, "ib", 2, vals);
		exec1(i, "sb", id);
	}
	for (int i = 0; i < nconn; i++)
		pipelined(i, 1, "\\x0102");
	for (int i = 0; i < nconn; i++)
		spread(i, (i + 1) % nconn, run_pipelined);
	/* the names prepared before the change still fail, until prepared again */
	for (int i = 0; i < nconn; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *old[2] = { id, "{3,4}" }, *vals[2] = { id, "\\x0304" };
		exec_n(i, "ib", 2, old);
		exec1(i, "sb", id);
		sql(i, "DEALLOCATE ib");
		prep(i, "ib", q_ins);
		exec_n(i, "ib", 2, vals);
		sql(i, "DEALLOCATE sb");
		prep(i, "sb", q_sel);
		exec1(i, "sb", id);
	}
}

static void run_ic(int i)
{
	char id[16];
	snprintf(id, sizeof id, "%d", 10 + i);
	const char *vals[2] = { id, "{6}" };
	exec_n(i, "ic", 2, vals);
}

/* A value in the new type's format for a parameter whose type was fixed
 * before: 22P02 at Bind, before the statement is even looked at; a new Parse
 * must then get the new type. */
static void value_first(void)
{
	printf("== value_first\n");
	sql(0, "DROP TABLE IF EXISTS stale_c");
	sql(0, "CREATE TABLE stale_c (id int, v int[])");
	for (int i = 0; i < nconn; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *vals[2] = { id, "{5}" };
		prep(i, "ic", "INSERT INTO stale_c VALUES ($1, $2)");
		exec_n(i, "ic", 2, vals);
	}
	spread(0, 1, run_ic);
	sql(0, "DROP TABLE stale_c");
	sql(0, "CREATE TABLE stale_c (id int, v bytea)");
	for (int i = 0; i < nconn; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *vals[2] = { id, "\\x05" };
		exec_n(i, "ic", 2, vals);
	}
	for (int i = 0; i < nconn; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *vals[2] = { id, "\\x05" };
		prep(i, "ic2", "INSERT INTO stale_c VALUES ($1, $2)");
		exec_n(i, "ic2", 2, vals);
		describe(i, "ic2");
	}
	sql(0, "SELECT count(*), min(v), max(v) FROM stale_c");
}

/* ------------------------------------------------------------ unnamed */

static void unnamed(void)
{
	printf("== unnamed\n");
	for (int i = 0; i < nconn; i++) {
		int o = (i + 1) % nconn;
		char q[128], want[16];
		snprintf(q, sizeof q, "SELECT $1::int + %d AS n", i);
		snprintf(want, sizeof want, "%d", 10 * i);
		prep(i, "", q);
		/* another connection takes the server it was prepared on */
		sql(o, "BEGIN");
		sql(o, "SELECT 'held'");
		describe(i, "");
		exec1(i, "", want);
		sql(o, "COMMIT");
		exec1(i, "", want);
		describe(i, "");
		/* a simple Query destroys it */
		sql(i, "SELECT 'simple'");
		exec1(i, "", want);
		describe(i, "");
		/* a failed unnamed Parse leaves none either */
		prep(i, "", q);
		prep(i, "", "SELEC broken");
		sql(o, "BEGIN");
		sql(o, "SELECT 'held'");
		exec1(i, "", want);
		sql(o, "COMMIT");
		/* one in a transaction block, used after it */
		sql(i, "BEGIN");
		prep(i, "", "SELECT 'in block ' || $1::text AS t");
		sql(i, "COMMIT");
		exec1(i, "", "after");
		/* PQexecParams: Parse, Bind, Execute, Sync at once */
		const char *v = want;
		show(i, "exec params", PQexecParams(conns[i], "SELECT $1::int * 2 AS d", 1, NULL, &v, NULL, NULL, 0));
		exec1(i, "", "params replaced it");
	}
}

/* ------------------------------------------------------------ hop */

static long pid_of(int i)
{
	PGresult *r = PQexec(conns[i], "SELECT pg_backend_pid()");
	long pid = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	return pid;
}

static int hop(int rounds)
{
	int hops = 0, ok = 0;
	for (int k = 0; k < rounds; k++) {
		long before = pid_of(0);
		PGresult *r = PQprepare(conns[0], "", "SELECT pg_backend_pid() + $1::int", 0, NULL);
		bool prepared = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		r = PQexec(conns[1], "BEGIN");
		PQclear(r);
		pid_of(1);
		const char *zero = "0";
		r = PQexecPrepared(conns[0], "", 1, &zero, NULL, NULL, 0);
		if (prepared && PQresultStatus(r) == PGRES_TUPLES_OK) {
			ok++;
			hops += atol(PQgetvalue(r, 0, 0)) != before;
		} else {
			char line[512];
			one_line(PQresultErrorMessage(r), line, sizeof line);
			fprintf(stderr, "round %d: %s\n", k, line);
		}
		PQclear(r);
		r = PQexec(conns[1], "COMMIT");
		PQclear(r);
	}
	printf("hops %d of %d ok %d\n", hops, rounds, ok);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && strcmp(argv[1], "transcript") == 0) {
		open_conns(argv[2], atoi(argv[3]));
		if (nconn < 2)
			die(1, "at least 2 connections");
		alter();
		recreate();
		value_first();
		unnamed();
		sql(0, "DROP TABLE stale_a, stale_b, stale_c");
		printf("== done\n");
	} else if (argc >= 4 && strcmp(argv[1], "hop") == 0) {
		open_conns(argv[2], 2);
		hop(atoi(argv[3]));
	} else {
		fprintf(stderr, "usage: stale transcript CONNINFO NCONN | hop CONNINFO ROUNDS\n");
		return 1;
	}
	for (int i = 0; i < nconn; i++)
		PQfinish(conns[i]);
	return 0;
}
