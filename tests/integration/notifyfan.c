/* tests/integration/notifyfan.c: many idle listeners, notifications counted.
 *
 *   notifyfan CONNINFO CLIENTS CHANNELS PER_ROUND ROUNDS TIMEOUT_SECONDS
 *
 * Opens CLIENTS connections; client i runs "LISTEN ch_<i % CHANNELS>", then
 * "BEGIN; LISTEN gone_<i>; ROLLBACK" (which must leave nothing behind), and
 * checks that pg_listening_channels() answers exactly ch_<i % CHANNELS> for it.
 * Prints "ready", then waits, idle, for notifications: each client must get,
 * on its own channel only, payloads "<round>:<k>" for k = 1..PER_ROUND in
 * order, round after round. When every client has all of a round it prints
 * "round R done" (the test then sends the next one). Notices whose text says
 * notifications "may have been missed" are counted per client. At the end (or
 * at the timeout) it prints one line:
 *   clients=N complete=N missing=N extra=N wrong=N disorder=N notices=N pids=P1,P2...
 * where pids are the distinct sender PIDs seen. Exit 0 when every client got
 * exactly what it should (complete=CLIENTS and no missing, extra, wrong or
 * disorder), 4 on timeout or a wrong count, 2 when a connection fails, 3 when a
 * statement fails, 1 on usage errors. */
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

struct cl {
	PGconn *c;
	int channel;
	int got;            /* notifications in order so far, all rounds */
	int extra, wrong, disorder, notices;
};

static int per_round, rounds;
static int pids[64], npids;

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

static void notice(void *arg, const char *msg)
{
	struct cl *c = arg;
	if (strstr(msg, "may have been missed"))
		c->notices++;
}

static void run(PGconn *c, const char *sql, ExecStatusType want)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != want) {
		printf("ERROR %s: %s", sql, PQerrorMessage(c));
		exit(3);
	}
	PQclear(r);
}

static void note_pid(int pid)
{
	for (int i = 0; i < npids; i++)
		if (pids[i] == pid)
			return;
	if (npids < 64)
		pids[npids++] = pid;
}

static void take(struct cl *c, PGnotify *n)
{
	char want_ch[32];
	snprintf(want_ch, sizeof want_ch, "ch_%d", c->channel);
	note_pid(n->be_pid);
	if (strcmp(n->relname, want_ch) != 0) {
		c->wrong++;
		return;
	}
	if (c->got >= per_round * rounds) {
		c->extra++;
		return;
	}
	char want[32];
	snprintf(want, sizeof want, "%d:%d", c->got / per_round + 1, c->got % per_round + 1);
	if (strcmp(n->extra, want) != 0)
		c->disorder++;
	c->got++;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: notifyfan CONNINFO CLIENTS CHANNELS PER_ROUND ROUNDS TIMEOUT_SECONDS\n");
		return 1;
	}
	int n = atoi(argv[2]), nch = atoi(argv[3]);
	per_round = atoi(argv[4]);
	rounds = atoi(argv[5]);
	long deadline = now_ms() + atol(argv[6]) * 1000L;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct cl *cls = calloc((size_t)n, sizeof *cls);
	if (!cls || n <= 0 || nch <= 0 || per_round <= 0 || rounds <= 0)
		return 1;
	int bad_channels = 0;
	for (int i = 0; i < n; i++) {
		struct cl *c = &cls[i];
		c->channel = i % nch;
		c->c = PQconnectdb(argv[1]);
		if (PQstatus(c->c) != CONNECTION_OK) {
			printf("connect %d failed: %s", i, PQerrorMessage(c->c));
			return 2;
		}
		PQsetNoticeProcessor(c->c, notice, c);
		char sql[128];
		snprintf(sql, sizeof sql, "LISTEN ch_%d", c->channel);
		run(c->c, sql, PGRES_COMMAND_OK);
		snprintf(sql, sizeof sql, "BEGIN; LISTEN gone_%d; ROLLBACK", i);
		run(c->c, sql, PGRES_COMMAND_OK);
		PGresult *r = PQexec(c->c, "SELECT string_agg(c, ',' ORDER BY c) FROM pg_listening_channels() c");
		snprintf(sql, sizeof sql, "ch_%d", c->channel);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), sql) != 0) {
			if (bad_channels++ < 3)
				printf("client %d: pg_listening_channels() is [%s], not [%s]\n", i,
				       PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : PQerrorMessage(c->c), sql);
		}
		PQclear(r);
	}
	if (bad_channels) {
		printf("pg_listening_channels() wrong for %d clients\n", bad_channels);
		return 3;
	}
	printf("ready\n");
	struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
	int round_done = 0;
	while (now_ms() < deadline) {
		for (int i = 0; i < n; i++) {
			pfd[i].fd = PQsocket(cls[i].c);
			pfd[i].events = POLLIN;
		}
		poll(pfd, (nfds_t)n, 100);
		int min = per_round * rounds;
		for (int i = 0; i < n; i++) {
			struct cl *c = &cls[i];
			if (pfd[i].revents && !PQconsumeInput(c->c)) {
				printf("client %d: connection lost: %s", i, PQerrorMessage(c->c));
				return 2;
			}
			PGnotify *nt;
			while ((nt = PQnotifies(c->c))) {
				take(c, nt);
				PQfreemem(nt);
			}
			if (c->got < min)
				min = c->got;
		}
		while (round_done < rounds && min >= per_round * (round_done + 1))
			printf("round %d done\n", ++round_done);
		if (round_done == rounds) {
			/* everything came: a moment more for duplicates */
			long until = now_ms() + 500;
			if (deadline > until)
				deadline = until;
		}
	}
	int complete = 0, missing = 0, extra = 0, wrong = 0, disorder = 0, notices = 0;
	for (int i = 0; i < n; i++) {
		struct cl *c = &cls[i];
		complete += c->got == per_round * rounds;
		missing += per_round * rounds - c->got;
		extra += c->extra;
		wrong += c->wrong;
		disorder += c->disorder;
		notices += c->notices;
		PQfinish(c->c);
	}
	printf("clients=%d complete=%d missing=%d extra=%d wrong=%d disorder=%d notices=%d pids=", n, complete, missing,
	       extra, wrong, disorder, notices);
	for (int i = 0; i < npids; i++)
		printf("%s%d", i ? "," : "", pids[i]);
	printf("\n");
	return complete == n && !extra && !wrong && !disorder ? 0 : 4;
}
