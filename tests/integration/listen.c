/* tests/integration/listen.c: LISTEN on a channel and wait, idle, for notifications.
 *
 *   listen CONNINFO CHANNEL COUNT TIMEOUT_SECONDS
 *
 * Runs "LISTEN CHANNEL" and notes the backend pid, prints "listening", then waits
 * without sending anything for notifications (poll on the socket, PQconsumeInput,
 * PQnotifies). For each one it prints "notify CHANNEL PAYLOAD", then runs
 * SELECT pg_backend_pid() and prints "pid same" or "pid changed" (a client pinned
 * by its LISTEN stays on its server). Exits 0 after COUNT notifications; 4 when
 * TIMEOUT_SECONDS pass first (printing "timeout: got N of COUNT"); 2 when the
 * connection fails or breaks; 3 when a statement fails; 1 on usage errors. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

static char *backend_pid(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		printf("ERROR %s", PQerrorMessage(c));
		exit(3);
	}
	char *pid = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return pid;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: listen CONNINFO CHANNEL COUNT TIMEOUT_SECONDS\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *channel = argv[2];
	int want = atoi(argv[3]);
	long deadline = now_ms() + atol(argv[4]) * 1000L;

	PGconn *c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		printf("ERROR connect: %s", PQerrorMessage(c));
		return 2;
	}
	char sql[256];
	char *quoted = PQescapeIdentifier(c, channel, strlen(channel));
	snprintf(sql, sizeof sql, "LISTEN %s", quoted);
	PQfreemem(quoted);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		printf("ERROR %s", PQerrorMessage(c));
		return 3;
	}
	PQclear(r);
	char *pid0 = backend_pid(c);
	printf("listening\n");

	int got = 0;
	while (got < want) {
		PGnotify *n;
		while (got < want && (n = PQnotifies(c)) != NULL) {
			printf("notify %s %s\n", n->relname, n->extra);
			PQfreemem(n);
			got++;
			char *pid = backend_pid(c);
			printf("pid %s\n", strcmp(pid, pid0) == 0 ? "same" : "changed");
			free(pid);
		}
		if (got >= want)
			break;
		long left = deadline - now_ms();
		if (left <= 0) {
			printf("timeout: got %d of %d\n", got, want);
			return 4;
		}
		struct pollfd p = { .fd = PQsocket(c), .events = POLLIN };
		if (poll(&p, 1, (int)(left > 200 ? 200 : left)) > 0 && !PQconsumeInput(c)) {
			printf("ERROR connection: %s", PQerrorMessage(c));
			return 2;
		}
	}
	free(pid0);
	PQfinish(c);
	return 0;
}
