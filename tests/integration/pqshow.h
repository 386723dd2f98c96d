/* tests/integration/pqshow.h: what the transcript helpers that compare a run
 * through pgring with a direct one (prepared.c, stale.c) share: their clients'
 * connections, bailing out, and one-line printing of libpq results (the same
 * result must print the same line). Define PQSHOW_NAME before including. */
#ifndef PGRING_TEST_PQSHOW_H
#define PGRING_TEST_PQSHOW_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

static PGconn **conns;
static int nconn;

static void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", PQSHOW_NAME);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	fflush(stdout);
	exit(code);
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* n connections in conns[], notices silenced. */
static void open_conns(const char *conninfo, int n)
{
	nconn = n;
	conns = calloc((size_t)n, sizeof *conns);
	if (!conns)
		die(3, "out of memory");
	for (int i = 0; i < n; i++) {
		conns[i] = PQconnectdb(conninfo);
		if (PQstatus(conns[i]) != CONNECTION_OK)
			die(2, "connection %d: %s", i, PQerrorMessage(conns[i]));
		PQsetNoticeProcessor(conns[i], quiet_notice, NULL);
	}
}

/* msg on one line (newlines as spaces, no trailing blanks) into out[cap]. */
static void one_line(const char *msg, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = msg ? msg : ""; *p && n + 1 < cap; p++)
		out[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = 0;
}

/* Print "c<i> WHAT: RESULT" (rows, with their column types if types) and free
 * the result; c is the connection, for an error without a result. */
static void pq_show(int i, PGconn *c, const char *what, PGresult *r, bool types)
{
	char line[1024];
	printf("c%d %s: ", i, what);
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_TUPLES_OK) {
		printf("rows=%d", PQntuples(r));
		if (types) {
			printf(" types=(");
			for (int f = 0; f < PQnfields(r); f++)
				printf("%s%u", f ? "," : "", PQftype(r, f));
			printf(")");
		}
		for (int row = 0; row < PQntuples(r); row++) {
			printf(" [");
			for (int f = 0; f < PQnfields(r); f++)
				printf("%s%s", f ? "|" : "", PQgetisnull(r, row, f) ? "NULL" : PQgetvalue(r, row, f));
			printf("]");
		}
	} else if (s == PGRES_COMMAND_OK) {
		printf("OK %s", PQcmdStatus(r));
	} else if (s == PGRES_EMPTY_QUERY) {
		printf("EMPTY");
	} else if (s == PGRES_PIPELINE_SYNC) {
		printf("SYNC");
	} else if (s == PGRES_PIPELINE_ABORTED) {
		printf("ABORTED");
	} else {
		const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		one_line(r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(c), line, sizeof line);
		printf("ERROR %s %s", code ? code : "none", line);
	}
	printf("\n");
	PQclear(r);
}

/* Describe the prepared statement name and print "c<i> WHAT: params=..(types)
 * fields=..(name:type)", or the error as pq_show does. */
static void pq_describe(int i, PGconn *c, const char *what, const char *name, bool types)
{
	PGresult *r = PQdescribePrepared(c, name);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pq_show(i, c, what, r, types);
		return;
	}
	printf("c%d %s: params=%d(", i, what, PQnparams(r));
	for (int p = 0; p < PQnparams(r); p++)
		printf("%s%u", p ? "," : "", PQparamtype(r, p));
	printf(") fields=%d(", PQnfields(r));
	for (int f = 0; f < PQnfields(r); f++)
		printf("%s%s:%u", f ? "," : "", PQfname(r, f), PQftype(r, f));
	printf(")\n");
	PQclear(r);
}

#endif
