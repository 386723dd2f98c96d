/* tests/integration/pqtry.c: connect with libpq and run statements, printing
 * SQLSTATEs, which psql does not show for connection failures.
 *
 *   pqtry [-x] [-k] [-H SECONDS] CONNINFO [SQL]...
 *
 * Connects (verbose error messages, so the server's SQLSTATE is in the text), runs
 * each SQL with PQexec (-x: PQexecParams, the extended protocol: Parse, Bind,
 * Describe, Execute, Sync) and prints every row as fields joined by '|'. A failed
 * statement ends the run unless -k (keep going: the next statements still run). With
 * -H, keeps the connection open that many seconds afterwards (or until stdin reaches
 * EOF when SECONDS is 0), then runs the statements once more (to check the
 * connection survived).
 *
 * Output on failure, one line:  ERROR <SQLSTATE> <message>
 * (SQLSTATE "none" when the failure did not come from a server, e.g. refused or EOF.)
 * The login must complete within PGCONNECT_TIMEOUT seconds (default 30).
 * Exit: 0 all good, 2 connection failed, 3 a statement failed, 1 usage. */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>   /* Debian: /usr/include/postgresql */
#endif

#include "pqerr.h"

static int timed_out, extended, keep_going;

static PGconn *connect_verbose(const char *conninfo)
{
	const char *keys[] = { "dbname", NULL };
	const char *vals[] = { conninfo, NULL };
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	if (!c)
		return NULL;
	PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
	if (PQstatus(c) == CONNECTION_BAD)
		return c;
	/* The whole login must finish within PGCONNECT_TIMEOUT seconds (default 30). */
	const char *env = getenv("PGCONNECT_TIMEOUT");
	int limit_ms = (env && atoi(env) > 0 ? atoi(env) : 30) * 1000;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd pfd = { .fd = PQsocket(c), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT };
		if (pfd.fd < 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = limit_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			timed_out = 1;
			break;
		}
		st = PQconnectPoll(c);
	}
	return c;
}

static int run(PGconn *c, int nsql, char **sql)
{
	char line[4096];
	int rc = 0;
	for (int i = 0; i < nsql; i++) {
		PGresult *r = extended ? PQexecParams(c, sql[i], 0, NULL, NULL, NULL, NULL, 0) : PQexec(c, sql[i]);
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_TUPLES_OK) {
			for (int row = 0; row < PQntuples(r); row++) {
				for (int f = 0; f < PQnfields(r); f++)
					printf("%s%s", f ? "|" : "", PQgetvalue(r, row, f));
				printf("\n");
			}
		} else if (s != PGRES_COMMAND_OK && s != PGRES_EMPTY_QUERY) {
			const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			char st[6];
			if (!code) {
				pqerr_sqlstate(PQerrorMessage(c), st);
				code = st;
			}
			const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
			pqerr_one_line(m ? m : PQerrorMessage(c), line, sizeof line);
			printf("ERROR %s %s\n", code, line);
			PQclear(r);
			rc = 3;
			if (!keep_going || PQstatus(c) != CONNECTION_OK)
				return rc;
			continue;
		}
		PQclear(r);
	}
	return rc;
}

int main(int argc, char **argv)
{
	int hold = -1, opt;
	while ((opt = getopt(argc, argv, "xkH:")) != -1) {
		if (opt == 'H')
			hold = atoi(optarg);
		else if (opt == 'x')
			extended = 1;
		else if (opt == 'k')
			keep_going = 1;
		else
			return 1;
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: pqtry [-x] [-k] [-H SECONDS] CONNINFO [SQL]...\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	PGconn *c = connect_verbose(argv[optind]);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		char st[6], line[4096];
		const char *m = !c ? "out of memory" : timed_out ? "timeout: no answer to the login" : PQerrorMessage(c);
		pqerr_sqlstate(m, st);
		pqerr_one_line(m, line, sizeof line);
		printf("ERROR %s %s\n", st, line);
		PQfinish(c);
		return 2;
	}
	int nsql = argc - optind - 1;
	char **sql = argv + optind + 1;
	int rc = run(c, nsql, sql);
	if ((rc == 0 || (keep_going && PQstatus(c) == CONNECTION_OK)) && hold >= 0) {
		printf("HOLDING\n");
		if (hold > 0) {
			sleep((unsigned)hold);
		} else {
			char buf[256];
			while (fgets(buf, sizeof buf, stdin))
				;
		}
		rc |= run(c, nsql, sql);
	}
	PQfinish(c);
	return rc;
}
