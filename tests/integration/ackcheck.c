/* tests/integration/ackcheck.c: nothing acknowledged is lost, nothing is applied twice.
 *
 *   ackcheck -c CONNINFO -r VERIFY_CONNINFO [-R RESOLVE_CONNINFO] -k RUN
 *            [-n CLIENTS=16] [-d SECONDS=8] [-s SEED] [-l LOGFILE] [-S]
 *            [-g GRACE_S=60] [-X lose|dup|phantom|wrong]
 *
 * CLIENTS threads, each with its own connection through CONNINFO (the pooler),
 * loop for SECONDS (or until SIGUSR1): BEGIN; INSERT INTO ackcheck (run, client, seq, attempt,
 * payload) VALUES (...) RETURNING pg_backend_pid(), pg_current_xact_id()::xid
 * (extended protocol); COMMIT. An attempt is
 *   acked    when COMMIT came back COMMAND_OK with the tag COMMIT: it must be in
 *            the database afterwards, exactly once, with its payload;
 *   unsent   when the transaction failed before its COMMIT was sent (an error, a
 *            lost connection): it must never appear (nothing commits a block
 *            whose client did not say COMMIT);
 *   unknown  when COMMIT was sent and no COMMIT tag came back (an error or a lost
 *            connection): it may or may not have committed.
 * After a failure the client reconnects if it must (every 50 ms until it gets
 * in) and retries the same (client, seq) key as a new attempt: right away for an
 * unsent attempt; for an unknown one only once its outcome is settled: it waits,
 * through RESOLVE_CONNINFO (a direct connection as a superuser; default
 * VERIFY_CONNINFO; may name several hosts, libpq takes the first that answers),
 * until the backend that ran it (its pid and xid, from the INSERT's RETURNING)
 * no longer holds that transaction, then looks the key up there: found means it
 * committed (no retry, "unknown, found"), absent means it did not (retry). The
 * table has no unique constraint, so a transaction applied twice (by a pooler
 * that replays, or that delivers a COMMIT late after the retry) shows as a
 * second row for the key.
 *
 * At the end ackcheck reads the run's rows from VERIFY_CONNINFO (a direct
 * connection to PostgreSQL) and prints one line:
 *   acked= unknown= unknown_found= lost= duplicated= phantom= wrong= retries=
 *   reconnects= errors= max_gap_ms= gap_client= gap_at_ms= tail_acks=
 *   recovered= tps= rows=
 * lost: acked attempts with no row; duplicated: keys with more than one row;
 * phantom: rows of an unsent attempt or of an attempt never made; wrong: a row
 * whose payload is not the one its attempt sent. max_gap_ms is the longest time
 * a client went without an acknowledged COMMIT (between two, or from its last
 * one to the end), gap_at_ms when it began: the recovery time from the
 * client's side. tail_acks counts COMMITs acknowledged in the last second,
 * recovered the clients with one in the last two (the workload recovered).
 * Exit 0 when lost, duplicated, phantom and wrong are all 0; 1 when not; 3 when
 * a client hangs (still running GRACE_S after the end: its state is printed);
 * 2 for usage and setup errors.
 *
 * The table (created by the test): ackcheck (run text, client int, seq int,
 * attempt int, payload bigint), writable by the pooler's user.
 * -S sends BEGIN as "BEGIN; SET LOCAL synchronous_commit = on" (for servers that
 * run with synchronous_commit = off). -l logs every attempt's outcome as it
 * happens ("A|U|N client seq attempt payload": acked, unknown, unsent).
 * -X corrupts the table before verifying (self-test: one acked row deleted, one
 * duplicated, one row of an attempt never made, one payload changed) so that
 * the test proves each count can fail. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
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

enum att_state { AT_STARTED, AT_UNSENT, AT_COMMIT_SENT, AT_ACKED, AT_UNKNOWN, AT_UNKNOWN_FOUND };

struct attempt {
	int seq, attempt;
	int64_t payload;
	float t;             /* when its COMMIT was acknowledged (s since the start) */
	uint8_t state;
	uint8_t rows;        /* rows found for this attempt (verification) */
};

struct client {
	int id;
	pthread_t th;
	unsigned seed;
	struct attempt *att;
	size_t natt, cap;
	long acked, unknown, retries, reconnects, errors;
	volatile int done;
	volatile const char *where;   /* what it is doing (for a hang report) */
	PGconn *resolver;
};

static const char *conninfo, *verify_conninfo, *resolve_conninfo, *run_label, *logpath, *corrupt;
static int nclients = 16, sync_on;
static double duration = 8, grace = 60;
static double t_start, t_end;
static volatile sig_atomic_t stop_now;

static void on_usr1(int sig)
{
	(void)sig;
	stop_now = 1;
}

static double now(void);
static int ended(void) { return stop_now || now() >= t_end; }
static FILE *logf;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int printed_errors;
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
	}
}

static void say_error(struct client *c, const char *what, const char *msg)
{
	pthread_mutex_lock(&err_mu);
	if (printed_errors++ < 12) {
		size_t n = msg ? strlen(msg) : 0;
		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			n--;
		fprintf(stderr, "ackcheck: client %d at +%.0f ms: %s: %.*s\n", c->id,
			(now() - t_start) * 1000, what, (int)n, msg ? msg : "");
	}
	pthread_mutex_unlock(&err_mu);
}

static void logline(char kind, struct client *c, const struct attempt *a)
{
	if (!logf)
		return;
	pthread_mutex_lock(&log_mu);
	fprintf(logf, "%c %d %d %d %" PRId64 " +%.0f\n", kind, c->id, a->seq, a->attempt, a->payload, (now() - t_start) * 1000);
	pthread_mutex_unlock(&log_mu);
}

/* Other events: C client (re)connected, R client resolved an unknown attempt. */
static void logevent(char kind, struct client *c, const char *fmt, ...)
{
	if (!logf)
		return;
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	for (char *q = text; *q; q++)
		if (*q == '\n')
			*q = ' ';
	pthread_mutex_lock(&log_mu);
	fprintf(logf, "%c %d %s +%.0f\n", kind, c->id, text, (now() - t_start) * 1000);
	pthread_mutex_unlock(&log_mu);
}

static struct attempt *new_attempt(struct client *c, int seq, int attempt)
{
	if (c->natt == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		struct attempt *p = realloc(c->att, cap * sizeof *p);
		if (!p) {
			perror("realloc");
			exit(2);
		}
		c->att = p;
		c->cap = cap;
	}
	struct attempt *a = &c->att[c->natt++];
	memset(a, 0, sizeof *a);
	a->seq = seq;
	a->attempt = attempt;
	uint64_t r = ((uint64_t)rand_r(&c->seed) << 32) ^ ((uint64_t)rand_r(&c->seed) << 8) ^ (uint64_t)rand_r(&c->seed);
	a->payload = (int64_t)(r & INT64_MAX);
	a->state = AT_STARTED;
	return a;
}

/* Connect through the pooler, retrying every 50 ms until the run's end. */
static PGconn *connect_retry(struct client *c, const char *ci)
{
	double t0 = now();
	for (int tries = 1;; tries++) {
		c->where = "connecting";
		PGconn *conn = PQconnectdb(ci);
		if (PQstatus(conn) == CONNECTION_OK) {
			logevent('C', c, "tries %d in %.0f ms", tries, (now() - t0) * 1000);
			return conn;
		}
		if (tries <= 2 || tries % 20 == 0)
			logevent('F', c, "try %d: %s", tries, PQerrorMessage(conn));
		PQfinish(conn);
		if (ended())
			return NULL;
		msleep(50);
	}
}

/* One command; returns the result (caller clears), or NULL on a failed send. */
static PGresult *run(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	if (nparams == 0)
		return PQexec(conn, sql);
	return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* The resolver: a direct connection (re)made as needed. SQL with params, one
 * integer result; -1 when the connection failed (reconnect and retry). */
static long resolver_int(struct client *c, const char *sql, int nparams, const char *const *params)
{
	if (!c->resolver || PQstatus(c->resolver) != CONNECTION_OK) {
		if (c->resolver)
			PQfinish(c->resolver);
		c->resolver = PQconnectdb(resolve_conninfo);
		if (PQstatus(c->resolver) != CONNECTION_OK)
			return -1;
	}
	PGresult *r = PQexecParams(c->resolver, sql, nparams, NULL, params, NULL, NULL, 0);
	long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	else
		say_error(c, "resolver", PQresultErrorMessage(r));
	PQclear(r);
	return v;
}

/* Log what the backend still holding an unknown attempt's transaction does. */
static void log_backend(struct client *c, const char *pid)
{
	const char *p[1] = {pid};
	PGresult *r = PQexecParams(c->resolver,
				   "SELECT concat_ws(' ', state, wait_event_type || ':' || wait_event, 'query=' || query, "
				   "'xact_age=' || (now() - xact_start), 'state_age=' || (clock_timestamp() - state_change), "
				   "'client_port=' || client_port) FROM pg_stat_activity WHERE pid = $1::int", 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		logevent('B', c, "backend %s: %s", pid, PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* Settle an unknown attempt: wait until the backend that ran it no longer holds
 * its transaction, then look the key up. 1 found, 0 absent, -1 unsettled. */
static int resolve(struct client *c, const struct attempt *a, const char *pid, const char *xid)
{
	char cl[16], sq[16];
	snprintf(cl, sizeof cl, "%d", c->id);
	snprintf(sq, sizeof sq, "%d", a->seq);
	double until = now() + grace / 2;
	int polls = 0;
	c->where = "resolving";
	for (;;) {
		if (now() > until)
			return -1;
		if (pid[0] && xid[0]) {
			const char *p[2] = {pid, xid};
			long busy = resolver_int(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND backend_xid = $2::xid", 2, p);
			if (busy != 0) {
				if (busy > 0 && polls++ % 25 == 0)
					log_backend(c, pid);
				msleep(busy < 0 ? 100 : 20);
				continue;
			}
		}
		const char *p[3] = {run_label, cl, sq};
		long n = resolver_int(c, "SELECT count(*) FROM ackcheck WHERE run = $1 AND client = $2::int AND seq = $3::int", 3, p);
		if (n < 0) {
			msleep(100);
			continue;
		}
		return n > 0;
	}
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char cl[16], sq[16], at[16], pl[24], pid[16], xid[24];
	const char *begin = sync_on ? "BEGIN; SET LOCAL synchronous_commit = on" : "BEGIN";
	PGconn *conn = connect_retry(c, conninfo);
	int seq = 1, attempt = 0;
	snprintf(cl, sizeof cl, "%d", c->id);
	while (conn && !ended()) {
		struct attempt *a = new_attempt(c, seq, ++attempt);
		snprintf(sq, sizeof sq, "%d", a->seq);
		snprintf(at, sizeof at, "%d", a->attempt);
		snprintf(pl, sizeof pl, "%" PRId64, a->payload);
		pid[0] = xid[0] = 0;
		const char *what = "BEGIN";
		c->where = what;
		PGresult *r = run(conn, begin, 0, NULL);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			PQclear(r);
			const char *p[5] = {run_label, cl, sq, at, pl};
			what = "INSERT";
			c->where = what;
			r = run(conn, "INSERT INTO ackcheck (run, client, seq, attempt, payload) VALUES ($1, $2::int, $3::int, $4::int, $5::bigint) "
				      "RETURNING pg_backend_pid(), pg_current_xact_id()::xid", 5, p);
			if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
				snprintf(pid, sizeof pid, "%s", PQgetvalue(r, 0, 0));
				snprintf(xid, sizeof xid, "%s", PQgetvalue(r, 0, 1));
				PQclear(r);
				what = "COMMIT";
				c->where = what;
				a->state = AT_COMMIT_SENT;
				r = run(conn, "COMMIT", 0, NULL);
				if (PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0) {
					a->t = (float)(now() - t_start);
					a->state = AT_ACKED;
					c->acked++;
					logline('A', c, a);
					PQclear(r);
					seq++;
					attempt = 0;
					continue;
				}
			}
		}
		/* the attempt failed */
		c->errors++;
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			say_error(c, what, PQcmdStatus(r)); /* COMMIT answered ROLLBACK */
		else
			say_error(c, what, PQresultErrorMessage(r) && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(conn));
		PQclear(r);
		if (PQstatus(conn) != CONNECTION_OK) {
			PQfinish(conn);
			c->reconnects++;
			conn = connect_retry(c, conninfo);
		} else if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
			c->where = "ROLLBACK";
			PQclear(PQexec(conn, "ROLLBACK"));
		}
		if (a->state == AT_COMMIT_SENT) {
			a->state = AT_UNKNOWN;
			c->unknown++;
			logline('U', c, a);
			double t0 = now();
			int found = resolve(c, a, pid, xid);
			logevent('R', c, "%d %d: %s in %.0f ms (backend %s xid %s)", a->seq, a->attempt,
				 found > 0 ? "committed" : found == 0 ? "absent" : "unsettled", (now() - t0) * 1000, pid, xid);
			if (found == 1) {
				a->state = AT_UNKNOWN_FOUND;
				seq++;
				attempt = 0;
				continue;
			}
			if (found < 0) /* unsettled: leave the key, go on with the next */
			{
				say_error(c, "resolve", "outcome not settled; key abandoned");
				seq++;
				attempt = 0;
				continue;
			}
		} else {
			a->state = AT_UNSENT;
			logline('N', c, a);
		}
		c->retries++;
	}
	if (!conn)
		say_error(c, "connect", "gave up reconnecting");
	c->where = "done";
	if (conn)
		PQfinish(conn);
	if (c->resolver)
		PQfinish(c->resolver);
	c->resolver = NULL;
	c->done = 1;
	return NULL;
}

static struct attempt *find_attempt(struct client *c, int seq, int attempt)
{
	size_t lo = 0, hi = c->natt;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct attempt *a = &c->att[mid];
		if (a->seq < seq || (a->seq == seq && a->attempt < attempt))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->natt && c->att[lo].seq == seq && c->att[lo].attempt == attempt)
		return &c->att[lo];
	return NULL;
}

static void must(PGconn *v, const char *sql)
{
	PGresult *r = PQexec(v, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "ackcheck: %s: %s", sql, PQresultErrorMessage(r));
		exit(2);
	}
	PQclear(r);
}

/* Self-test: make one of each kind of fault the verification must find. */
static void corrupt_table(PGconn *v, struct client *cs)
{
	char sql[512], *lit = PQescapeLiteral(v, run_label, strlen(run_label));
	struct attempt *acked[3] = {NULL, NULL, NULL};
	int who[3] = {0, 0, 0}, k = 0;
	for (int i = 0; i < nclients && k < 3; i++)
		for (size_t j = 0; j < cs[i].natt && k < 3; j++)
			if (cs[i].att[j].state == AT_ACKED) {
				acked[k] = &cs[i].att[j];
				who[k++] = i;
				break;
			}
	if (k < 3) {
		fprintf(stderr, "ackcheck: -X needs acked rows from three clients\n");
		exit(2);
	}
	if (strstr(corrupt, "lose")) {
		snprintf(sql, sizeof sql, "DELETE FROM ackcheck WHERE run = %s AND client = %d AND seq = %d", lit, who[0], acked[0]->seq);
		must(v, sql);
	}
	if (strstr(corrupt, "dup")) {
		snprintf(sql, sizeof sql, "INSERT INTO ackcheck SELECT * FROM ackcheck WHERE run = %s AND client = %d AND seq = %d", lit, who[1], acked[1]->seq);
		must(v, sql);
	}
	if (strstr(corrupt, "phantom")) {
		snprintf(sql, sizeof sql, "INSERT INTO ackcheck (run, client, seq, attempt, payload) VALUES (%s, %d, 1000000, 1, 7)", lit, who[0]);
		must(v, sql);
	}
	if (strstr(corrupt, "wrong")) {
		snprintf(sql, sizeof sql, "UPDATE ackcheck SET payload = payload + 1 WHERE run = %s AND client = %d AND seq = %d", lit, who[2], acked[2]->seq);
		must(v, sql);
	}
	PQfreemem(lit);
}

static void usage(void)
{
	fprintf(stderr, "usage: ackcheck -c CONNINFO -r VERIFY_CONNINFO [-R RESOLVE_CONNINFO] -k RUN [-n CLIENTS] [-d SECONDS] "
			"[-s SEED] [-l LOGFILE] [-S] [-g GRACE_S] [-X lose,dup,phantom,wrong]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	int opt;
	while ((opt = getopt(argc, argv, "c:r:R:k:n:d:s:l:Sg:X:")) != -1) {
		switch (opt) {
		case 'c': conninfo = optarg; break;
		case 'r': verify_conninfo = optarg; break;
		case 'R': resolve_conninfo = optarg; break;
		case 'k': run_label = optarg; break;
		case 'n': nclients = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 's': seed = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': logpath = optarg; break;
		case 'S': sync_on = 1; break;
		case 'g': grace = atof(optarg); break;
		case 'X': corrupt = optarg; break;
		default: usage();
		}
	}
	if (!conninfo || !verify_conninfo || !run_label || nclients < 1 || nclients > 1000 || duration <= 0)
		usage();
	if (!resolve_conninfo)
		resolve_conninfo = verify_conninfo;
	if (logpath && !(logf = fopen(logpath, "w"))) {
		perror(logpath);
		return 2;
	}
	fprintf(stderr, "ackcheck: run %s, %d clients, %.1f s, seed %u\n", run_label, nclients, duration, seed);

	struct client *cs = calloc((size_t)nclients, sizeof *cs);
	if (!cs) {
		perror("calloc");
		return 2;
	}
	signal(SIGUSR1, on_usr1);
	t_start = now();
	t_end = t_start + duration;
	for (int i = 0; i < nclients; i++) {
		cs[i].id = i;
		cs[i].seed = seed * 2654435761u + (unsigned)i * 40503u + 1;
		if (pthread_create(&cs[i].th, NULL, client_main, &cs[i]) != 0) {
			perror("pthread_create");
			return 2;
		}
	}
	/* Wait for every client; one still busy GRACE_S after the end hangs. */
	double t_stop = 0, deadline = 0;
	for (;;) {
		if (t_stop == 0 && ended()) {
			t_stop = now() < t_end ? now() : t_end;
			deadline = t_stop + grace;
		}
		int busy = 0;
		for (int i = 0; i < nclients; i++)
			busy += !cs[i].done;
		if (!busy)
			break;
		if (t_stop > 0 && now() > deadline) {
			printf("hung=%d", busy);
			for (int i = 0; i < nclients; i++)
				if (!cs[i].done)
					printf(" client%d:%s", i, (const char *)cs[i].where);
			printf("\n");
			fflush(stdout);
			_exit(3);
		}
		msleep(50);
	}
	for (int i = 0; i < nclients; i++)
		pthread_join(cs[i].th, NULL);
	if (logf)
		fclose(logf);

	/* Verify against PostgreSQL itself. */
	PGconn *v = NULL;
	for (int tries = 0; tries < 300; tries++) {
		v = PQconnectdb(verify_conninfo);
		if (PQstatus(v) == CONNECTION_OK)
			break;
		PQfinish(v);
		v = NULL;
		msleep(100);
	}
	if (!v) {
		fprintf(stderr, "ackcheck: cannot connect to verify (%s)\n", verify_conninfo);
		return 2;
	}
	if (corrupt)
		corrupt_table(v, cs);
	const char *p[1] = {run_label};
	PGresult *r = PQexecParams(v, "SELECT client, seq, attempt, payload, count(*) OVER (PARTITION BY client, seq) "
				      "FROM ackcheck WHERE run = $1", 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "ackcheck: reading the table: %s", PQresultErrorMessage(r));
		return 2;
	}
	long lost = 0, dup = 0, phantom = 0, wrong = 0, nrows = PQntuples(r);
	for (long i = 0; i < nrows; i++) {
		int cl = atoi(PQgetvalue(r, (int)i, 0)), sq = atoi(PQgetvalue(r, (int)i, 1)), at = atoi(PQgetvalue(r, (int)i, 2));
		int64_t pl = strtoll(PQgetvalue(r, (int)i, 3), NULL, 10);
		long cnt = strtol(PQgetvalue(r, (int)i, 4), NULL, 10);
		struct attempt *a = (cl >= 0 && cl < nclients) ? find_attempt(&cs[cl], sq, at) : NULL;
		if (cnt > 1) { /* rows of duplicated keys; made a count of keys below */
			dup++;
			if (dup <= 10)
				fprintf(stderr, "ackcheck: DUPLICATED client %d seq %d (attempt %d, %ld rows)\n", cl, sq, at, cnt);
		}
		if (!a || a->state == AT_UNSENT || a->state == AT_STARTED) {
			phantom++;
			if (phantom <= 10)
				fprintf(stderr, "ackcheck: PHANTOM client %d seq %d attempt %d (%s)\n", cl, sq, at,
					!a ? "never attempted" : "its COMMIT was never sent");
			continue;
		}
		if (a->payload != pl) {
			wrong++;
			if (wrong <= 10)
				fprintf(stderr, "ackcheck: WRONG payload client %d seq %d attempt %d: %" PRId64 ", sent %" PRId64 "\n",
					cl, sq, at, pl, a->payload);
		}
		a->rows++;
	}
	PQclear(r);
	if (dup > 0) {
		r = PQexecParams(v, "SELECT count(*) FROM (SELECT 1 FROM ackcheck WHERE run = $1 GROUP BY client, seq HAVING count(*) > 1) d",
				 1, NULL, p, NULL, NULL, 0);
		dup = PQresultStatus(r) == PGRES_TUPLES_OK ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : dup;
		PQclear(r);
	}
	PQfinish(v);

	long acked = 0, unknown = 0, unknown_found = 0, retries = 0, reconnects = 0, errors = 0, tail = 0, recovered = 0;
	double max_gap = 0, gap_at = 0, stop = t_stop - t_start;
	int gap_client = -1;
	for (int i = 0; i < nclients; i++) {
		struct client *c = &cs[i];
		double last = -1;   /* last acknowledged COMMIT (s since the start) */
		for (size_t j = 0; j < c->natt; j++) {
			struct attempt *a = &c->att[j];
			if (a->state == AT_ACKED) {
				if (last >= 0 && a->t - last > max_gap) {
					max_gap = a->t - last;
					gap_at = last;
					gap_client = i;
				}
				last = a->t;
				tail += a->t >= stop - 1;
			}
			if (a->state == AT_ACKED && a->rows == 0) {
				lost++;
				if (lost <= 10)
					fprintf(stderr, "ackcheck: LOST client %d seq %d attempt %d payload %" PRId64 "\n", i, a->seq, a->attempt, a->payload);
			}
			if ((a->state == AT_UNKNOWN || a->state == AT_UNKNOWN_FOUND) && a->rows > 0)
				unknown_found++;
		}
		acked += c->acked;
		unknown += c->unknown;
		retries += c->retries;
		reconnects += c->reconnects;
		errors += c->errors;
		recovered += last >= stop - 2;
		double end_gap = stop - (last >= 0 ? last : 0);
		if (end_gap > max_gap) {
			max_gap = end_gap;
			gap_at = last >= 0 ? last : 0;
			gap_client = i;
		}
	}
	printf("acked=%ld unknown=%ld unknown_found=%ld lost=%ld duplicated=%ld phantom=%ld wrong=%ld retries=%ld "
	       "reconnects=%ld errors=%ld max_gap_ms=%.0f gap_client=%d gap_at_ms=%.0f tail_acks=%ld recovered=%ld tps=%.0f rows=%ld\n",
	       acked, unknown, unknown_found, lost, dup, phantom, wrong, retries, reconnects, errors, max_gap * 1000,
	       gap_client, gap_at * 1000, tail, recovered, (double)acked / stop, nrows);
	return (lost || dup || phantom || wrong) ? 1 : 0;
}
