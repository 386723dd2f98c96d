/* cancel: run "SELECT pg_sleep(30)" through the pooler and cancel it with
 * PQcancel after 300 ms, N times (each cancel opens a new connection, so with
 * SO_REUSEPORT they land on either shard). Prints how long each cancel took and
 * exits 0 only if every query ended with SQLSTATE 57014 within 3 s, and a
 * cancel with a wrong key did nothing. (A cancel takes milliseconds; but it
 * opens two TCP connections, client to pooler and pooler to server, and one
 * SYN lost on a loaded machine costs Linux's 1 s retransmission: CI saw
 * 1.03 s once. A cancel held or lost takes the query's 30 s.)
 * usage: cancel CONNINFO N */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one(const char *conninfo, int i)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect %d: %s", i, PQerrorMessage(c));
		return 1;
	}
	if (!PQsendQuery(c, "SELECT pg_sleep(30)")) {
		fprintf(stderr, "send %d: %s", i, PQerrorMessage(c));
		return 1;
	}
	usleep(300000);
	char err[256];
	PGcancel *cn = PQgetCancel(c);
	double t0 = now();
	if (!PQcancel(cn, err, sizeof err)) {
		fprintf(stderr, "cancel %d: %s\n", i, err);
		return 1;
	}
	PQfreeCancel(cn);
	PGresult *r = PQgetResult(c);
	double took = now() - t0;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	printf("cancel %d: %.3f s sqlstate=%s\n", i, took, state ? state : "none");
	int bad = !state || strcmp(state, "57014") != 0 || took > 3.0;
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	/* the session is usable afterwards */
	r = PQexec(c, "SELECT 41 + 1");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "42") != 0) {
		fprintf(stderr, "after cancel %d: %s", i, PQerrorMessage(c));
		bad = 1;
	}
	PQclear(r);
	PQfinish(c);
	return bad;
}

/* A cancel with a wrong key must not cancel anything. PGcancel is opaque, so send
 * a raw CancelRequest with a made-up key through a second libpq-free socket is
 * overkill here: instead cancel a *different* session and check ours survives. */
static int wrong_key(const char *conninfo)
{
	PGconn *a = PQconnectdb(conninfo), *b = PQconnectdb(conninfo);
	if (PQstatus(a) != CONNECTION_OK || PQstatus(b) != CONNECTION_OK)
		return 1;
	PQsendQuery(a, "SELECT pg_sleep(1), 'survived'");
	usleep(200000);
	char err[256];
	PGcancel *cn = PQgetCancel(b);   /* b is idle: its cancel must not touch a */
	PQcancel(cn, err, sizeof err);
	PQfreeCancel(cn);
	PGresult *r = PQgetResult(a);
	int bad = PQresultStatus(r) != PGRES_TUPLES_OK;
	if (bad)
		fprintf(stderr, "another session's cancel hit ours: %s", PQresultErrorMessage(r));
	PQclear(r);
	while ((r = PQgetResult(a)))
		PQclear(r);
	PQfinish(a);
	PQfinish(b);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cancel CONNINFO N\n");
		return 2;
	}
	int n = atoi(argv[2]), bad = 0;
	for (int i = 0; i < n; i++)
		bad |= one(argv[1], i);
	bad |= wrong_key(argv[1]);
	return bad ? 1 : 0;
}
