/* tests/integration/pqgroup.c: a group of libpq clients in one process, each
 * connecting and running the same statements, as COUNT pqtry processes would
 * without forking COUNT processes (a fork storm of hundreds of clients on two
 * CPUs starves the pooler and the fault proxies under test of CPU for
 * seconds, and the timings measured become the scheduler's).
 *
 *   pqgroup OUTDIR COUNT CONNINFO [SQL]...
 *
 * Every client starts at once, connects (verbose errors, so the SQLSTATE is in
 * the text) and runs each SQL in turn, stopping at the first that fails. When
 * it ends it writes OUTDIR/I (I from 0) holding one line "RC MS OUTPUT": RC as
 * pqtry's exit status (0 all good, 2 connection failed, 3 a statement
 * failed; 124 when it was still running after PQGROUP_TIMEOUT seconds,
 * default 90, as timeout(1) says), MS the milliseconds from the start of its
 * connection to its end, OUTPUT pqtry's output with newlines as spaces (rows
 * as fields joined by '|'; a failure as "ERROR <SQLSTATE> <message>"). The
 * login must complete within PGCONNECT_TIMEOUT seconds (default 30).
 * Exit: 0 when every client wrote its line, 1 otherwise. */
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#include "pqerr.h"

enum phase { P_CONNECTING, P_SENDING, P_WAITING, P_DONE };

struct member {
	PGconn *conn;
	enum phase phase;
	PostgresPollingStatusType poll;   /* while connecting: what libpq waits for */
	int stmt;                         /* the statement running */
	bool unsent;                      /* PQflush left bytes to send: poll for writing */
	int rc;
	bool written;
	long long start_ms;
	char out[4096];
	size_t len;
};

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Append to a member's output, newlines as spaces, trailing spaces dropped
 * when its line is written. */
static void put(struct member *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct member *m, const char *fmt, ...)
{
	if (m->len + 1 >= sizeof m->out)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(m->out + m->len, sizeof m->out - m->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t end = m->len + (size_t)n < sizeof m->out ? m->len + (size_t)n : sizeof m->out - 1;
	for (size_t i = m->len; i < end; i++)
		if (m->out[i] == '\n' || m->out[i] == '\r')
			m->out[i] = ' ';
	m->len = end;
}

static void finish(struct member *m, int rc)
{
	m->rc = rc;
	m->phase = P_DONE;
}

static void connection_failed(struct member *m, const char *why)
{
	char st[6];
	pqerr_sqlstate(why, st);
	put(m, "ERROR %s %s", st, why);
	finish(m, 2);
}

/* One result of the running statement; false once the statement is over. */
static bool take_result(struct member *m, int nsql)
{
	PGresult *r = PQgetResult(m->conn);
	if (!r) {
		if (++m->stmt == nsql)
			finish(m, 0);
		else
			m->phase = P_SENDING;
		return false;
	}
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_TUPLES_OK) {
		for (int row = 0; row < PQntuples(r); row++) {
			for (int f = 0; f < PQnfields(r); f++)
				put(m, "%s%s", f ? "|" : "", PQgetvalue(r, row, f));
			put(m, "\n");
		}
	} else if (s != PGRES_COMMAND_OK && s != PGRES_EMPTY_QUERY) {
		char st[6];
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (!code) {
			pqerr_sqlstate(PQerrorMessage(m->conn), st);
			code = st;
		}
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		put(m, "ERROR %s %s\n", code, msg ? msg : PQerrorMessage(m->conn));
		PQclear(r);
		finish(m, 3);
		return false;
	}
	PQclear(r);
	return true;
}

/* Move a member on after poll said its socket is ready (or at the start). */
static void step(struct member *m, int nsql, char **sql)
{
	switch (m->phase) {
	case P_CONNECTING:
		m->poll = PQconnectPoll(m->conn);
		if (m->poll == PGRES_POLLING_FAILED)
			connection_failed(m, PQerrorMessage(m->conn));
		else if (m->poll == PGRES_POLLING_OK)
			m->phase = nsql ? P_SENDING : P_DONE;
		if (m->phase != P_SENDING)
			return;
		PQsetnonblocking(m->conn, 1);
		/* fall through */
	case P_SENDING:
		if (!PQsendQuery(m->conn, sql[m->stmt])) {
			put(m, "ERROR none %s\n", PQerrorMessage(m->conn));
			finish(m, 3);
			return;
		}
		m->phase = P_WAITING;
		/* fall through */
	case P_WAITING:
		/* a lost connection is not the end of it: what came before the
		 * loss (a FATAL and its SQLSTATE) is still a result to take, and
		 * libpq is no longer busy once the connection is bad */
		m->unsent = PQflush(m->conn) == 1;
		(void)PQconsumeInput(m->conn);
		while (m->phase == P_WAITING && !PQisBusy(m->conn) && take_result(m, nsql))
			;
		if (m->phase == P_SENDING)
			step(m, nsql, sql);
		return;
	case P_DONE:
		return;
	}
}

static short wanted_events(const struct member *m)
{
	if (m->phase == P_CONNECTING)
		return m->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	return (short)(POLLIN | (m->unsent ? POLLOUT : 0));
}

static bool write_line(const char *dir, int i, const struct member *m, long long end_ms)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%d", dir, i);
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	size_t len = m->len;
	while (len && m->out[len - 1] == ' ')
		len--;
	fprintf(f, "%d %lld %.*s\n", m->rc, end_ms - m->start_ms, (int)len, m->out);
	return fclose(f) == 0;
}

int main(int argc, char **argv)
{
	if (argc < 4 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: pqgroup OUTDIR COUNT CONNINFO [SQL]...\n");
		return 1;
	}
	const char *dir = argv[1];
	int n = atoi(argv[2]), nsql = argc - 4;
	char **sql = argv + 4;
	const char *env = getenv("PGCONNECT_TIMEOUT");
	long long login_ms = (env && atoi(env) > 0 ? atoi(env) : 30) * 1000LL;
	env = getenv("PQGROUP_TIMEOUT");
	long long limit_ms = (env && atoi(env) > 0 ? atoi(env) : 90) * 1000LL;
	struct member *ms = calloc((size_t)n, sizeof *ms);
	struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
	if (!ms || !pfd)
		return 1;
	const char *keys[] = { "dbname", NULL };
	const char *vals[] = { argv[3], NULL };
	for (int i = 0; i < n; i++) {
		struct member *m = &ms[i];
		m->start_ms = now_ms();
		m->conn = PQconnectStartParams(keys, vals, 1);
		if (!m->conn) {
			connection_failed(m, "out of memory");
			continue;
		}
		PQsetErrorVerbosity(m->conn, PQERRORS_VERBOSE);
		if (PQstatus(m->conn) == CONNECTION_BAD)
			connection_failed(m, PQerrorMessage(m->conn));
		else
			m->poll = PGRES_POLLING_WRITING;
	}
	int failures = 0, left = n;
	while (left > 0) {
		long long now = now_ms();
		int np = 0;
		for (int i = 0; i < n; i++) {
			struct member *m = &ms[i];
			pfd[i].fd = -1;
			if (m->phase == P_DONE)
				continue;
			if (now - m->start_ms >= limit_ms) {
				put(m, "pqgroup: still running after %lld s", limit_ms / 1000);
				finish(m, 124);
			} else if (m->phase == P_CONNECTING && now - m->start_ms >= login_ms) {
				connection_failed(m, "timeout: no answer to the login");
			} else {
				pfd[i] = (struct pollfd){ .fd = PQsocket(m->conn), .events = wanted_events(m) };
				np++;
			}
		}
		if (np && poll(pfd, (nfds_t)n, 100) < 0)
			continue;
		for (int i = 0; i < n; i++)
			if (pfd[i].fd >= 0 && pfd[i].revents)
				step(&ms[i], nsql, sql);
		now = now_ms();
		for (int i = 0; i < n; i++) {
			struct member *m = &ms[i];
			if (m->phase != P_DONE || m->written)
				continue;
			if (!write_line(dir, i, m, now))
				failures++;
			PQfinish(m->conn);
			m->conn = NULL;
			m->written = true;
			left--;
		}
	}
	free(ms);
	free(pfd);
	return failures ? 1 : 0;
}
