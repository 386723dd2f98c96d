/* cancelrace: a canceled statement's cancel must not reach the statement the
 * client runs next. PostgreSQL signals a backend twice for one cancel
 * (kill(pid), then kill(-pid) for its process group) and closes the cancel
 * connection only after both; libpq's PQcancel returns once that connection
 * is closed, so on a direct connection the next statement is safe. A pooler
 * that closes the client's cancel connection as soon as it has read the
 * request lets the client's next statement meet the late second SIGINT.
 *
 * N times on one connection: "SELECT pg_sleep(10)" async, PQcancel after
 * DELAY_MS, its result must be 57014; then at once NEXT (default
 * "SELECT pg_sleep(0.2)", long enough for a late signal to land inside it)
 * must succeed. Prints one line per failure and a summary; exit 0 only if
 * every round was right.
 * usage: cancelrace CONNINFO N [DELAY_MS] [NEXT] */
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

static const char *sqlstate(const PGresult *r)
{
	const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return s ? s : "none";
}

static void drain(PGconn *c)
{
	PGresult *r;
	while ((r = PQgetResult(c)))
		PQclear(r);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cancelrace CONNINFO N [DELAY_MS] [NEXT]\n");
		return 2;
	}
	int n = atoi(argv[2]);
	int delay_ms = argc > 3 ? atoi(argv[3]) : 100;
	const char *next = argc > 4 ? argv[4] : "SELECT pg_sleep(0.2)";
	PGconn *c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s", PQerrorMessage(c));
		return 1;
	}
	int not_canceled = 0, next_canceled = 0, other = 0;
	double max_cancel = 0;
	for (int i = 0; i < n; i++) {
		if (!PQsendQuery(c, "SELECT pg_sleep(10)")) {
			fprintf(stderr, "round %d: send: %s", i, PQerrorMessage(c));
			return 1;
		}
		usleep((useconds_t)delay_ms * 1000);
		char err[256];
		PGcancel *cn = PQgetCancel(c);
		double t0 = now();
		if (!cn || !PQcancel(cn, err, sizeof err)) {
			fprintf(stderr, "round %d: PQcancel: %s\n", i, cn ? err : "no cancel object");
			return 1;
		}
		double took = now() - t0;
		if (took > max_cancel)
			max_cancel = took;
		PQfreeCancel(cn);
		PGresult *r = PQgetResult(c);
		if (strcmp(sqlstate(r), "57014") != 0) {
			printf("round %d: the pg_sleep was not canceled (sqlstate %s)\n", i, sqlstate(r));
			not_canceled++;
		}
		PQclear(r);
		drain(c);
		r = PQexec(c, next);
		if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
			if (strcmp(sqlstate(r), "57014") == 0) {
				printf("round %d: the next statement was canceled too: %s", i, PQresultErrorMessage(r));
				next_canceled++;
			} else {
				printf("round %d: the next statement failed: %s", i, PQerrorMessage(c));
				other++;
			}
		}
		PQclear(r);
		drain(c);
		if (PQstatus(c) != CONNECTION_OK) {
			fprintf(stderr, "round %d: connection lost: %s", i, PQerrorMessage(c));
			return 1;
		}
	}
	PQfinish(c);
	printf("rounds %d, pg_sleep not canceled %d, next statement canceled %d, other failures %d, "
	       "slowest PQcancel %.3f s\n", n, not_canceled, next_canceled, other, max_cancel);
	return not_canceled || next_canceled || other ? 1 : 0;
}
