/* tests/integration/holdclients.c: clients that stay connected across something
 * (an upgrade) and must still work after it, on the same connection.
 *
 *   holdclients CONNINFO N GOFILE [TIMEOUT_S=120]
 *
 * Opens N connections; on each sets application_name to hold<i> and prepares
 * (protocol level, PQprepare) "s" as SELECT $1::int + 1. Prints "ready N" and
 * waits until GOFILE exists; then on every connection runs the prepared
 * statement with i (must answer i+1) and SHOW application_name (must be
 * hold<i>); then on the first 4 it runs SELECT pg_sleep(20) and cancels it
 * with the cancel key libpq got at connect time (from the old process): it
 * must end with 57014 within 3 s. Exit 0 only if every connection answered
 * right and every cancel worked; prints one summary line. libpq never reconnects by itself, so a connection that was
 * dropped shows up as a failure here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

static int check(PGconn *c, int i)
{
	char arg[16], want[16], app[32];
	snprintf(arg, sizeof arg, "%d", i);
	snprintf(want, sizeof want, "%d", i + 1);
	snprintf(app, sizeof app, "hold%d", i);
	const char *vals[1] = { arg };
	PGresult *r = PQexecPrepared(c, "s", 1, vals, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), want) == 0;
	if (!ok && i < 5)
		fprintf(stderr, "client %d: prepared: %s", i, PQresultErrorMessage(r));
	PQclear(r);
	if (!ok)
		return 0;
	r = PQexec(c, "SHOW application_name");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), app) == 0;
	if (!ok && i < 5)
		fprintf(stderr, "client %d: application_name: %s%s\n", i,
			PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The key the client was given at login still cancels its query. */
static int cancel_works(PGconn *c, int i)
{
	if (!PQsendQuery(c, "SELECT pg_sleep(20)"))
		return 0;
	usleep(300000);
	double t0 = now();
	PGcancel *k = PQgetCancel(c);
	char err[256];
	int sent = k && PQcancel(k, err, sizeof err);
	PQfreeCancel(k);
	int ok = 0;
	PGresult *r;
	while ((r = PQgetResult(c))) {
		const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (st && strcmp(st, "57014") == 0)
			ok = 1;
		PQclear(r);
	}
	double took = now() - t0;
	if (!sent || !ok || took > 3)
		fprintf(stderr, "client %d: cancel %s, %s, %.2fs\n", i, sent ? "sent" : err, ok ? "57014" : "no 57014",
			took);
	return sent && ok && took <= 3;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: holdclients CONNINFO N GOFILE [TIMEOUT_S]\n");
		return 2;
	}
	int n = atoi(argv[2]);
	int timeout = argc > 4 ? atoi(argv[4]) : 120;
	PGconn **c = calloc((size_t)n, sizeof *c);
	if (!c)
		return 2;
	for (int i = 0; i < n; i++) {
		c[i] = PQconnectdb(argv[1]);
		if (PQstatus(c[i]) != CONNECTION_OK) {
			fprintf(stderr, "client %d: connect: %s", i, PQerrorMessage(c[i]));
			return 1;
		}
		char sql[64];
		snprintf(sql, sizeof sql, "SET application_name = 'hold%d'", i);
		PGresult *r = PQexec(c[i], sql);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		r = PQprepare(c[i], "s", "SELECT $1::int + 1", 1, NULL);
		ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok) {
			fprintf(stderr, "client %d: set up: %s", i, PQerrorMessage(c[i]));
			return 1;
		}
		PQclear(r);
	}
	printf("ready %d\n", n);
	fflush(stdout);
	time_t deadline = time(NULL) + timeout;
	while (access(argv[3], F_OK) != 0) {
		if (time(NULL) > deadline) {
			fprintf(stderr, "no %s within %d s\n", argv[3], timeout);
			return 1;
		}
		usleep(50000);
	}
	int good = 0;
	for (int i = 0; i < n; i++)
		good += check(c[i], i);
	int cancels = 0, ncancel = n < 4 ? n : 4;
	for (int i = 0; i < ncancel; i++)
		cancels += cancel_works(c[i], i);
	printf("holdclients: %d of %d connections still work, %d of %d cancels with the old key worked\n", good, n,
	       cancels, ncancel);
	for (int i = 0; i < n; i++)
		PQfinish(c[i]);
	free(c);
	return good == n && cancels == ncancel ? 0 : 1;
}
