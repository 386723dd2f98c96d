/* tests/integration/manyclients.c: many concurrent clients in one process (libpq async).
 *
 *   manyclients CONNINFO [NCLIENTS=500] [ROUNDS=6] [MAXPIDS=5] [TIMEOUT_S=120]
 *
 * Opens NCLIENTS connections (at most 64 handshakes at a time) and keeps every one
 * open until the end. Each client runs ROUNDS rounds, cycling through:
 *   0: simple query    SELECT <id>::int, pg_backend_pid(), pg_sleep(0.00x)
 *   1: extended query  SELECT $1::int, pg_backend_pid(), pg_sleep($2)   (PQsendQueryParams)
 *   2: a transaction   BEGIN; SELECT <id>, pid; SELECT pg_sleep(0.00x); SELECT <id>, pid; COMMIT
 *                      (each its own round trip; both pids must be the same backend)
 * and checks every answer carries its own id. Exit 0 only if every client finished
 * every round with the right answers, no error happened, and at most MAXPIDS distinct
 * backend pids were seen (MAXPIDS 0: no limit). Prints one summary line. */
#include <errno.h>
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

enum state { ST_NEW, ST_CONNECTING, ST_IDLE, ST_BUSY, ST_DONE, ST_FAILED };
enum pid_check { PID_NONE, PID_RECORD, PID_SAME };

struct step {
	char sql[128];
	int extended;        /* send with PQsendQueryParams, params id and sleep */
	int expect_id;       /* result's first column must be the client's id */
	enum pid_check pid;
	char sleep[16];
};

struct client {
	int id;
	PGconn *conn;
	enum state st;
	PostgresPollingStatusType poll;
	int want_write;
	struct step *steps;
	int nsteps, cur;
	int recorded_pid;
	int got_rows;        /* rows seen for the current step */
	unsigned seed;
};

static int max_pids;
static int pids[4096], npids;
static long n_queries, n_wrong, n_errors, n_connect_errors;
static int printed_errors;

static void note_pid(int pid)
{
	for (int i = 0; i < npids; i++)
		if (pids[i] == pid)
			return;
	if (npids < (int)(sizeof pids / sizeof pids[0]))
		pids[npids++] = pid;
}

static void report(struct client *c, const char *what, const char *msg)
{
	if (printed_errors++ < 10)
		fprintf(stderr, "client %d step %d: %s: %s\n", c->id, c->cur, what, msg ? msg : "");
}

static void build_steps(struct client *c, int rounds)
{
	c->steps = calloc((size_t)rounds * 5, sizeof *c->steps);
	if (!c->steps) {
		perror("calloc");
		exit(2);
	}
	int n = 0;
	for (int r = 0; r < rounds; r++) {
		int ms = 1 + (int)(rand_r(&c->seed) % 5);
		struct step *s;
		switch (r % 3) {
		case 0:
			s = &c->steps[n++];
			snprintf(s->sql, sizeof s->sql, "SELECT %d::int, pg_backend_pid(), pg_sleep(0.00%d)", c->id, ms);
			s->expect_id = 1;
			break;
		case 1:
			s = &c->steps[n++];
			snprintf(s->sql, sizeof s->sql, "SELECT $1::int, pg_backend_pid(), pg_sleep($2::float8)");
			snprintf(s->sleep, sizeof s->sleep, "0.00%d", ms);
			s->extended = 1;
			s->expect_id = 1;
			break;
		default:
			snprintf(c->steps[n++].sql, sizeof s->sql, "BEGIN");
			s = &c->steps[n++];
			snprintf(s->sql, sizeof s->sql, "SELECT %d::int, pg_backend_pid()", c->id);
			s->expect_id = 1;
			s->pid = PID_RECORD;
			snprintf(c->steps[n++].sql, sizeof s->sql, "SELECT pg_sleep(0.00%d)", ms);
			s = &c->steps[n++];
			snprintf(s->sql, sizeof s->sql, "SELECT %d::int, pg_backend_pid()", c->id);
			s->expect_id = 1;
			s->pid = PID_SAME;
			snprintf(c->steps[n++].sql, sizeof s->sql, "COMMIT");
			break;
		}
	}
	c->nsteps = n;
}

static void fail_client(struct client *c, const char *what)
{
	report(c, what, c->conn ? PQerrorMessage(c->conn) : "");
	c->st = ST_FAILED;
}

static void send_step(struct client *c)
{
	if (c->cur >= c->nsteps) {
		c->st = ST_DONE;
		return;
	}
	struct step *s = &c->steps[c->cur];
	int ok;
	c->got_rows = 0;
	if (s->extended) {
		char idbuf[16];
		snprintf(idbuf, sizeof idbuf, "%d", c->id);
		const char *vals[2] = { idbuf, s->sleep };
		ok = PQsendQueryParams(c->conn, s->sql, 2, NULL, vals, NULL, NULL, 0);
	} else {
		ok = PQsendQuery(c->conn, s->sql);
	}
	if (!ok) {
		n_errors++;
		fail_client(c, "send");
		return;
	}
	c->st = ST_BUSY;
	int f = PQflush(c->conn);
	if (f < 0) {
		n_errors++;
		fail_client(c, "flush");
		return;
	}
	c->want_write = f == 1;
}

static void check_result(struct client *c, PGresult *r)
{
	struct step *s = &c->steps[c->cur];
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY)
		return;
	if (st != PGRES_TUPLES_OK) {
		n_errors++;
		report(c, "error", PQresultErrorMessage(r));
		c->st = ST_FAILED;
		return;
	}
	c->got_rows += PQntuples(r);
	if (!s->expect_id)
		return;
	if (PQntuples(r) != 1 || PQnfields(r) < 2) {
		n_wrong++;
		report(c, "wrong shape", s->sql);
		return;
	}
	int id = atoi(PQgetvalue(r, 0, 0));
	int pid = atoi(PQgetvalue(r, 0, 1));
	note_pid(pid);
	if (id != c->id) {
		n_wrong++;
		char m[64];
		snprintf(m, sizeof m, "got id %d", id);
		report(c, "wrong answer", m);
	}
	if (s->pid == PID_RECORD)
		c->recorded_pid = pid;
	else if (s->pid == PID_SAME && pid != c->recorded_pid) {
		n_wrong++;
		char m[96];
		snprintf(m, sizeof m, "transaction moved from backend %d to %d", c->recorded_pid, pid);
		report(c, "wrong backend", m);
	}
}

static void on_readable(struct client *c)
{
	if (!PQconsumeInput(c->conn)) {
		n_errors++;
		fail_client(c, "consume");
		return;
	}
	while (c->st == ST_BUSY && !PQisBusy(c->conn)) {
		PGresult *r = PQgetResult(c->conn);
		if (!r) {
			/* step complete */
			struct step *s = &c->steps[c->cur];
			if (s->expect_id && c->got_rows == 0 && c->st == ST_BUSY) {
				n_wrong++;
				report(c, "no rows", s->sql);
			}
			n_queries++;
			c->cur++;
			send_step(c);
			return;
		}
		check_result(c, r);
		PQclear(r);
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: manyclients CONNINFO [NCLIENTS] [ROUNDS] [MAXPIDS] [TIMEOUT_S]\n");
		return 2;
	}
	const char *conninfo = argv[1];
	int n = argc > 2 ? atoi(argv[2]) : 500;
	int rounds = argc > 3 ? atoi(argv[3]) : 6;
	max_pids = argc > 4 ? atoi(argv[4]) : 5;
	double timeout = argc > 5 ? atof(argv[5]) : 120;
	if (n <= 0 || rounds <= 0)
		return 2;

	struct client *cl = calloc((size_t)n, sizeof *cl);
	struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
	int *idx = calloc((size_t)n, sizeof *idx);
	if (!cl || !pfd || !idx)
		return 2;
	for (int i = 0; i < n; i++) {
		cl[i].id = 1000 + i;
		cl[i].seed = (unsigned)(i * 7919 + 17);
		build_steps(&cl[i], rounds);
	}

	double start = now(), deadline = start + timeout;
	int next = 0, connecting = 0, connected = 0, max_open = 0;
	const int window = 64;
	for (;;) {
		/* start new handshakes */
		while (next < n && connecting < window) {
			struct client *c = &cl[next++];
			const char *keys[] = { "dbname", NULL };
			const char *vals[] = { conninfo, NULL };
			c->conn = PQconnectStartParams(keys, vals, 1);
			if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
				n_connect_errors++;
				fail_client(c, "connect");
				continue;
			}
			c->st = ST_CONNECTING;
			c->poll = PGRES_POLLING_WRITING;
			connecting++;
		}
		int np = 0, active = 0, open_now = 0;
		for (int i = 0; i < n; i++) {
			struct client *c = &cl[i];
			if (c->st == ST_CONNECTING || c->st == ST_BUSY || c->st == ST_IDLE || c->st == ST_DONE)
				open_now++;
			if (c->st == ST_CONNECTING) {
				pfd[np].fd = PQsocket(c->conn);
				pfd[np].events = c->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			} else if (c->st == ST_BUSY) {
				pfd[np].fd = PQsocket(c->conn);
				pfd[np].events = POLLIN | (c->want_write ? POLLOUT : 0);
			} else {
				continue;
			}
			pfd[np].revents = 0;
			idx[np++] = i;
			active++;
		}
		if (open_now > max_open)
			max_open = open_now;
		if (active == 0 && next >= n)
			break;
		if (now() > deadline) {
			fprintf(stderr, "timeout after %.0f s with %d clients still busy\n", timeout, active);
			break;
		}
		int rc = poll(pfd, (nfds_t)np, 1000);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 2;
		}
		for (int k = 0; k < np; k++) {
			if (!pfd[k].revents)
				continue;
			struct client *c = &cl[idx[k]];
			if (c->st == ST_CONNECTING) {
				c->poll = PQconnectPoll(c->conn);
				if (c->poll == PGRES_POLLING_OK) {
					connecting--;
					connected++;
					if (PQsetnonblocking(c->conn, 1) != 0) {
						n_errors++;
						fail_client(c, "nonblocking");
						continue;
					}
					send_step(c);
				} else if (c->poll == PGRES_POLLING_FAILED) {
					connecting--;
					n_connect_errors++;
					fail_client(c, "connect");
				}
			} else if (c->st == ST_BUSY) {
				if (pfd[k].revents & POLLOUT) {
					int f = PQflush(c->conn);
					if (f < 0) {
						n_errors++;
						fail_client(c, "flush");
						continue;
					}
					c->want_write = f == 1;
				}
				if (pfd[k].revents & (POLLIN | POLLERR | POLLHUP))
					on_readable(c);
			}
		}
	}

	int done = 0;
	for (int i = 0; i < n; i++)
		if (cl[i].st == ST_DONE)
			done++;
	printf("clients=%d connected=%d max_open=%d completed=%d queries=%ld wrong=%ld errors=%ld "
	       "connect_errors=%ld distinct_pids=%d seconds=%.1f\n",
	       n, connected, max_open, done, n_queries, n_wrong, n_errors, n_connect_errors, npids,
	       now() - start);
	for (int i = 0; i < n; i++) {
		if (cl[i].conn)
			PQfinish(cl[i].conn);
		free(cl[i].steps);
	}
	free(cl);
	free(pfd);
	free(idx);
	int ok = done == n && n_wrong == 0 && n_errors == 0 && n_connect_errors == 0 &&
		 (max_pids == 0 || npids <= max_pids);
	if (!ok && max_pids && npids > max_pids)
		fprintf(stderr, "saw %d distinct backends, more than the pool size %d\n", npids, max_pids);
	return ok ? 0 : 1;
}
