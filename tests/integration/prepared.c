/* tests/integration/prepared.c: protocol-level prepared statements from many
 * clients at once, printing what the clients see, so that a run through the pooler
 * can be compared line by line with a run directly against PostgreSQL.
 *
 *   prepared transcript CONNINFO NCONN
 *       NCONN connections, each step done by every connection in turn (so that, over
 *       one server, consecutive transactions always come from different clients).
 *       Prints a deterministic transcript on stdout: the same text directly and
 *       through a transaction-mode pooler. Covers PQprepare / PQexecPrepared /
 *       PQdescribePrepared, the same name with different texts in different clients,
 *       the same text with different parameter types, another client's name (26000),
 *       duplicate names (42P05), errors in Parse and Bind, prepares in committed and
 *       rolled back transactions, Close (raw protocol message: libpq 15 has no
 *       PQclosePrepared), DEALLOCATE name, DEALLOCATE ALL, DISCARD ALL, unnamed
 *       statements within one Sync, Close+Parse of one name in one Sync, and
 *       Parse/Sync/Bind/Execute/Sync sent in one write (two transactions).
 *
 *   prepared shared CONNINFO NCONN
 *       NCONN connections prepare the same text (half under one name, half under
 *       their own names) and a second text with int4 in even and int8 in odd
 *       connections; each executes its statements; then connection 0 prints
 *         same_types <count> <names>
 *         two_types <count> <names>
 *       from pg_prepared_statements (statements with those texts on the backend it
 *       is on), names joined by ',' in order.
 *
 *   prepared many CONNINFO NCONN NSTMT ROUNDS
 *       Each connection prepares NSTMT distinct statements and executes all of them
 *       ROUNDS times (connections and statements interleaved), checking every result;
 *       after every execute it counts pg_prepared_statements on the backend.
 *       Prints "executes <n> wrong <n> max_prepared <n>".
 *
 * Raw messages (Close, pipelines) are written to libpq's socket while libpq is idle
 * and their answers read back before libpq looks again (no TLS: sslmode=disable).
 * Exit: 0 done (whatever the server answered; compare the output), 1 usage,
 * 2 connection failed, 3 protocol trouble (or, in "many", a wrong result). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#define PQSHOW_NAME "prepared"
#include "pqshow.h"

#define INT4OID 23
#define INT8OID 20
#define TEXTOID 25



/* ------------------------------------------------------------ libpq results */

static void show(int i, const char *what, PGresult *r)
{
	pq_show(i, conns[i], what, r, false);
}

static void describe(int i, const char *name)
{
	char what[128];
	snprintf(what, sizeof what, "describe %s", name);
	pq_describe(i, conns[i], what, name, false);
}

static void prep(int i, const char *name, const char *sql, int ntypes, const Oid *types)
{
	char what[128];
	snprintf(what, sizeof what, "prepare %s", name);
	show(i, what, PQprepare(conns[i], name, sql, ntypes, types));
}

static void exec1(int i, const char *name, const char *param)
{
	char what[128];
	snprintf(what, sizeof what, "exec %s(%s)", name, param ? param : "");
	const char *vals[1] = { param };
	show(i, what, PQexecPrepared(conns[i], name, param ? 1 : 0, vals, NULL, NULL, 0));
}

static void sql(int i, const char *text)
{
	show(i, text, PQexec(conns[i], text));
}

/* ------------------------------------------------------------ raw protocol */

struct wbuf {
	char b[8192];
	size_t n;
};

static void put(struct wbuf *w, const void *p, size_t n)
{
	if (w->n + n > sizeof w->b)
		die(3, "raw message too long");
	memcpy(w->b + w->n, p, n);
	w->n += n;
}
static void put32(struct wbuf *w, uint32_t v)
{
	unsigned char b[4] = { v >> 24, v >> 16, v >> 8, v };
	put(w, b, 4);
}
static void put16(struct wbuf *w, uint16_t v)
{
	unsigned char b[2] = { v >> 8, v };
	put(w, b, 2);
}
static void putstr(struct wbuf *w, const char *s) { put(w, s, strlen(s) + 1); }
static size_t begin(struct wbuf *w, char type)
{
	put(w, &type, 1);
	size_t at = w->n;
	put32(w, 0);
	return at;
}
static void end(struct wbuf *w, size_t at)
{
	uint32_t len = (uint32_t)(w->n - at);
	unsigned char b[4] = { len >> 24, len >> 16, len >> 8, len };
	memcpy(w->b + at, b, 4);
}

static void m_parse(struct wbuf *w, const char *name, const char *query, int ntypes, const Oid *types)
{
	size_t at = begin(w, 'P');
	putstr(w, name);
	putstr(w, query);
	put16(w, (uint16_t)ntypes);
	for (int k = 0; k < ntypes; k++)
		put32(w, types[k]);
	end(w, at);
}
static void m_bind(struct wbuf *w, const char *stmt, const char *param)
{
	size_t at = begin(w, 'B');
	putstr(w, "");
	putstr(w, stmt);
	put16(w, 0);                 /* parameter formats: all text */
	put16(w, param ? 1 : 0);
	if (param) {
		put32(w, (uint32_t)strlen(param));
		put(w, param, strlen(param));
	}
	put16(w, 0);                 /* result formats: all text */
	end(w, at);
}
static void m_execute(struct wbuf *w)
{
	size_t at = begin(w, 'E');
	putstr(w, "");
	put32(w, 0);
	end(w, at);
}
static void m_describe(struct wbuf *w, char what, const char *name)
{
	size_t at = begin(w, 'D');
	put(w, &what, 1);
	putstr(w, name);
	end(w, at);
}
static void m_close(struct wbuf *w, char what, const char *name)
{
	size_t at = begin(w, 'C');
	put(w, &what, 1);
	putstr(w, name);
	end(w, at);
}
static void m_sync(struct wbuf *w) { end(w, begin(w, 'S')); }

static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Send W on connection I, read the answers up to the NSYNC-th ReadyForQuery and
 * print them on one line "c<i> raw WHAT: ...". */
static void raw(int i, const char *what, struct wbuf *w, int nsync)
{
	int fd = PQsocket(conns[i]);
	size_t off = 0;
	while (off < w->n) {
		ssize_t k = write(fd, w->b + off, w->n - off);
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, 20000) <= 0)
				die(3, "c%d raw %s: write timeout", i, what);
			continue;
		}
		if (k <= 0)
			die(3, "c%d raw %s: write: %s", i, what, strerror(errno));
		off += (size_t)k;
	}
	static unsigned char in[1 << 16];
	size_t have = 0;
	int syncs = 0;
	printf("c%d raw %s:", i, what);
	while (syncs < nsync) {
		/* one whole message in `in`? */
		if (have >= 5 && have >= 1 + get32(in + 1)) {
			size_t len = 1 + get32(in + 1);
			unsigned char t = in[0], *body = in + 5;
			size_t blen = len - 5;
			switch (t) {
			case '1': printf(" ParseComplete"); break;
			case '2': printf(" BindComplete"); break;
			case '3': printf(" CloseComplete"); break;
			case 'n': printf(" NoData"); break;
			case 's': printf(" PortalSuspended"); break;
			case 't': {
				int np = get16(body);
				printf(" ParameterDescription(");
				for (int k = 0; k < np; k++)
					printf("%s%u", k ? "," : "", get32(body + 2 + 4 * k));
				printf(")");
				break;
			}
			case 'T': {
				int nf = get16(body);
				const unsigned char *p = body + 2;
				printf(" RowDescription(");
				for (int k = 0; k < nf; k++) {
					const char *name = (const char *)p;
					p += strlen(name) + 1;
					printf("%s%s:%u", k ? "," : "", name, get32(p + 6));
					p += 18;
				}
				printf(")");
				break;
			}
			case 'D': {
				int nf = get16(body);
				const unsigned char *p = body + 2;
				printf(" DataRow(");
				for (int k = 0; k < nf; k++) {
					int32_t l = (int32_t)get32(p);
					p += 4;
					if (l < 0)
						printf("%sNULL", k ? "|" : "");
					else
						printf("%s%.*s", k ? "|" : "", l, (const char *)p), p += l;
				}
				printf(")");
				break;
			}
			case 'C': printf(" CommandComplete(%.*s)", (int)blen - 1, (const char *)body); break;
			case 'E': {
				const char *code = "?", *msg = "";
				for (const unsigned char *p = body; p < body + blen && *p;) {
					char f = (char)*p++;
					if (f == 'C')
						code = (const char *)p;
					if (f == 'M')
						msg = (const char *)p;
					p += strlen((const char *)p) + 1;
				}
				printf(" Error(%s %s)", code, msg);
				break;
			}
			case 'Z': printf(" ReadyForQuery(%c)", body[0]); syncs++; break;
			case 'N': case 'S': case 'A': break; /* notices, parameter status, notifications */
			default: printf(" Message(%c)", t); break;
			}
			memmove(in, in + len, have - len);
			have -= len;
			continue;
		}
		if (have == sizeof in)
			die(3, "c%d raw %s: answer too long", i, what);
		ssize_t k = read(fd, in + have, sizeof in - have);
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, 20000) <= 0)
				die(3, "c%d raw %s: no answer within 20 s", i, what);
			continue;
		}
		if (k <= 0)
			die(3, "c%d raw %s: connection closed", i, what);
		have += (size_t)k;
	}
	if (have)
		die(3, "c%d raw %s: %zu bytes after the last ReadyForQuery", i, what, have);
	printf("\n");
}

static void raw_close(int i, const char *name)
{
	struct wbuf w = { .n = 0 };
	char what[128];
	snprintf(what, sizeof what, "close %s", name);
	m_close(&w, 'S', name);
	m_sync(&w);
	raw(i, what, &w, 1);
}

/* ------------------------------------------------------------ transcript */

#define EACH(i) for (int i = 0; i < nconn; i++)

static void transcript(void)
{
	const Oid t_int4[1] = { INT4OID }, t_int8[1] = { INT8OID }, t_text[1] = { TEXTOID };
	char buf[256], name[64];

	printf("== prepare: one text everywhere, one name with a different text per client, one text with two parameter types\n");
	EACH(i) prep(i, "common", "SELECT $1::int + 1000 AS common", 1, t_int4);
	EACH(i) {
		snprintf(buf, sizeof buf, "SELECT $1::int * %d AS mine", i + 1);
		prep(i, "mine", buf, 1, t_int4);
	}
	EACH(i) prep(i, "typed", "SELECT pg_typeof($1)::text AS t, $1 AS v", 1, i % 2 ? t_text : t_int8);
	EACH(i) prep(i, "untyped", "SELECT $1 AS u", 0, NULL);
	EACH(i) {
		snprintf(name, sizeof name, "only_c%d", i);
		snprintf(buf, sizeof buf, "SELECT 'only for c%d' AS who", i);
		prep(i, name, buf, 0, NULL);
	}

	printf("== describe\n");
	EACH(i) describe(i, "common");
	EACH(i) describe(i, "mine");
	EACH(i) describe(i, "typed");
	EACH(i) describe(i, "untyped");

	printf("== execute, interleaved\n");
	for (int round = 0; round < 3; round++) {
		EACH(i) {
			snprintf(buf, sizeof buf, "%d", 10 * round + i);
			exec1(i, "common", buf);
			exec1(i, "mine", buf);
			exec1(i, "typed", buf);
			exec1(i, "untyped", buf);
			snprintf(name, sizeof name, "only_c%d", i);
			exec1(i, name, NULL);
		}
	}

	printf("== another client's statement name is not visible\n");
	EACH(i) {
		snprintf(name, sizeof name, "only_c%d", (i + 1) % nconn);
		exec1(i, name, NULL);
		describe(i, name);
	}

	printf("== duplicate names: 42P05, and the old statement stays\n");
	EACH(i) prep(i, "common", "SELECT $1::int + 1000 AS common", 1, t_int4);
	EACH(i) prep(i, "mine", "SELECT 'other text' AS mine", 0, NULL);
	EACH(i) exec1(i, "mine", "7");

	printf("== errors in Parse and in Bind/Execute\n");
	EACH(i) prep(i, "bad", "SELEC 1", 0, NULL);
	EACH(i) exec1(i, "bad", NULL);
	EACH(i) prep(i, "bad", "SELECT 'good now' AS bad", 0, NULL);
	EACH(i) exec1(i, "bad", NULL);
	EACH(i) exec1(i, "common", "not a number");
	EACH(i) exec1(i, "common", "1");
	EACH(i) prep(i, "divzero", "SELECT 1 / $1::int AS q", 0, NULL);
	EACH(i) exec1(i, "divzero", "0");
	EACH(i) exec1(i, "divzero", "1");

	printf("== in transactions\n");
	EACH(i) {
		sql(i, "BEGIN");
		prep(i, "in_tx", "SELECT 'prepared in a committed transaction' AS in_tx", 0, NULL);
		exec1(i, "in_tx", NULL);
		exec1(i, "common", "2");
		exec1(i, "mine", "3");
		sql(i, "COMMIT");
	}
	EACH(i) exec1(i, "in_tx", NULL);
	EACH(i) {
		sql(i, "BEGIN");
		prep(i, "in_rb", "SELECT 'prepared in a rolled back transaction' AS in_rb", 0, NULL);
		exec1(i, "in_rb", NULL);
		sql(i, "ROLLBACK");
	}
	EACH(i) exec1(i, "in_rb", NULL);
	EACH(i) {
		sql(i, "BEGIN");
		exec1(i, "common", "4");
		prep(i, "in_failed", "SELEC 'syntax error in a transaction'", 0, NULL);
		exec1(i, "common", "5");
		sql(i, "ROLLBACK");
		exec1(i, "in_failed", NULL);
		exec1(i, "common", "6");
	}

	printf("== Close (protocol message), then the name is gone and can be prepared again\n");
	EACH(i) raw_close(i, "mine");
	EACH(i) exec1(i, "mine", "1");
	EACH(i) describe(i, "mine");
	EACH(i) raw_close(i, "never_prepared");
	EACH(i) {
		snprintf(buf, sizeof buf, "SELECT $1::int - %d AS mine_again", i);
		prep(i, "mine", buf, 1, t_int4);
	}
	EACH(i) exec1(i, "mine", "100");
	EACH(i) exec1(i, "common", "7");

	printf("== DEALLOCATE name\n");
	EACH(i) sql(i, "DEALLOCATE typed");
	EACH(i) exec1(i, "typed", "1");
	EACH(i) sql(i, "DEALLOCATE typed");
	EACH(i) prep(i, "typed", "SELECT pg_typeof($1)::text AS t2", 1, i % 2 ? t_int8 : t_text);
	EACH(i) exec1(i, "typed", "1");
	EACH(i) {
		sql(i, "BEGIN");
		sql(i, "DEALLOCATE untyped");
		exec1(i, "untyped", "x");
		sql(i, "ROLLBACK");
		exec1(i, "untyped", "y");
	}

	printf("== raw pipelines: Close+Parse of one name in one Sync; unnamed statements; two Syncs in one write\n");
	EACH(i) {
		struct wbuf w = { .n = 0 };
		snprintf(buf, sizeof buf, "SELECT $1::int + %d AS reparsed", 500 + i);
		m_close(&w, 'S', "mine");
		m_parse(&w, "mine", buf, 1, t_int4);
		m_bind(&w, "mine", "1");
		m_execute(&w);
		m_sync(&w);
		raw(i, "close+parse+bind+execute mine", &w, 1);
	}
	EACH(i) exec1(i, "mine", "2");
	EACH(i) {
		struct wbuf w = { .n = 0 };
		m_parse(&w, "", "SELECT $1::int * 3 AS unnamed1", 1, t_int4);
		m_describe(&w, 'S', "");
		m_bind(&w, "", "14");
		m_execute(&w);
		m_bind(&w, "", "15");
		m_execute(&w);
		m_parse(&w, "", "SELECT 'unnamed2' AS u2", 0, NULL);
		m_bind(&w, "", NULL);
		m_execute(&w);
		m_sync(&w);
		raw(i, "unnamed", &w, 1);
	}
	EACH(i) {
		struct wbuf w = { .n = 0 };
		snprintf(name, sizeof name, "piped_c%d", i);
		snprintf(buf, sizeof buf, "SELECT $1::text || ' piped %d' AS piped", i);
		m_parse(&w, name, buf, 0, NULL);
		m_sync(&w);
		m_describe(&w, 'S', name);
		m_bind(&w, name, "a");
		m_execute(&w);
		m_sync(&w);
		m_bind(&w, "common", "8");
		m_execute(&w);
		m_sync(&w);
		raw(i, "parse/sync/describe+bind+execute/sync/bind+execute/sync", &w, 3);
	}
	EACH(i) {
		struct wbuf w = { .n = 0 };
		m_describe(&w, 'S', "common");
		m_bind(&w, "common", "9");
		m_describe(&w, 'P', "");
		m_execute(&w);
		m_bind(&w, "no_such_statement", NULL);
		m_execute(&w);
		m_sync(&w);
		m_bind(&w, "common", "10");
		m_execute(&w);
		m_sync(&w);
		raw(i, "describe+bind+execute, error, sync, bind+execute", &w, 2);
	}
	EACH(i) {
		snprintf(name, sizeof name, "piped_c%d", i);
		exec1(i, name, "b");
	}

	printf("== DEALLOCATE ALL\n");
	EACH(i) sql(i, "DEALLOCATE ALL");
	EACH(i) exec1(i, "common", "1");
	EACH(i) exec1(i, "mine", "1");
	EACH(i) exec1(i, "in_tx", NULL);
	EACH(i) prep(i, "common", "SELECT $1::int + 2000 AS common_after_deallocate_all", 1, t_int4);
	EACH(i) prep(i, "mine", "SELECT $1::int + 1000 AS common", 1, t_int4);
	EACH(i) exec1(i, "common", "1");
	EACH(i) exec1(i, "mine", "1");

	printf("== DISCARD ALL\n");
	EACH(i) sql(i, "DISCARD ALL");
	EACH(i) exec1(i, "common", "1");
	EACH(i) exec1(i, "mine", "1");
	EACH(i) describe(i, "common");
	EACH(i) prep(i, "common", "SELECT $1::int + 3000 AS common_after_discard_all", 1, t_int4);
	EACH(i) exec1(i, "common", "1");
	EACH(i) exec1(i, "common", "2");

	printf("== done\n");
}

/* ------------------------------------------------------------ shared */

static void shared(void)
{
	const Oid t_int4[1] = { INT4OID }, t_int8[1] = { INT8OID };
	const char *same = "SELECT $1::int + 7 AS shared_text";
	const char *two = "SELECT $1 AS two_types";
	char name[64];
	int bad = 0;
	EACH(i) {
		if (i % 2)
			snprintf(name, sizeof name, "own_name_%d", i);
		else
			snprintf(name, sizeof name, "shared_name");
		PGresult *r = PQprepare(conns[i], name, same, 1, t_int4);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			printf("c%d prepare %s: %s", i, name, PQerrorMessage(conns[i])), bad = 1;
		PQclear(r);
		r = PQprepare(conns[i], "two", two, 1, i % 2 ? t_int8 : t_int4);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			printf("c%d prepare two: %s", i, PQerrorMessage(conns[i])), bad = 1;
		PQclear(r);
	}
	EACH(i) {
		if (i % 2)
			snprintf(name, sizeof name, "own_name_%d", i);
		else
			snprintf(name, sizeof name, "shared_name");
		const char *v[1] = { "1" };
		PGresult *r = PQexecPrepared(conns[i], name, 1, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "8") != 0)
			printf("c%d exec %s: %s", i, name, PQerrorMessage(conns[i])), bad = 1;
		PQclear(r);
		r = PQexecPrepared(conns[i], "two", 1, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "1") != 0)
			printf("c%d exec two: %s", i, PQerrorMessage(conns[i])), bad = 1;
		PQclear(r);
	}
	const char *q[2][2] = {
		{ "same_types", "SELECT count(*), coalesce(string_agg(name, ',' ORDER BY name), '-') FROM pg_prepared_statements"
		                " WHERE statement = 'SELECT $1::int + 7 AS shared_text'" },
		{ "two_types", "SELECT count(*), coalesce(string_agg(name, ',' ORDER BY name), '-') FROM pg_prepared_statements"
		               " WHERE statement = 'SELECT $1 AS two_types'" },
	};
	for (int k = 0; k < 2; k++) {
		PGresult *r = PQexec(conns[0], q[k][1]);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die(3, "%s: %s", q[k][0], PQerrorMessage(conns[0]));
		printf("%s %s %s\n", q[k][0], PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
		PQclear(r);
	}
	if (bad)
		exit(3);
}

/* ------------------------------------------------------------ many */

static int many(int nstmt, int rounds)
{
	const Oid t_int4[1] = { INT4OID };
	char name[64], text[128], param[32], want[32];
	long executes = 0, wrong = 0, maxp = 0;
	EACH(i) for (int k = 0; k < nstmt; k++) {
		snprintf(name, sizeof name, "m%d", k);
		snprintf(text, sizeof text, "SELECT $1::int + %d AS many_c%d_s%d", 1000 * i + k, i, k);
		PGresult *r = PQprepare(conns[i], name, text, 1, t_int4);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			printf("c%d prepare %s: %s", i, name, PQerrorMessage(conns[i]));
			wrong++;
		}
		PQclear(r);
	}
	for (int round = 0; round < rounds; round++) {
		for (int k0 = 0; k0 < nstmt; k0++) {
			/* a different order each round: k = (k0 * 7 + round) mod nstmt when 7 is coprime */
			int k = (nstmt % 7) ? (k0 * 7 + round) % nstmt : (k0 + round) % nstmt;
			EACH(i) {
				snprintf(name, sizeof name, "m%d", k);
				snprintf(param, sizeof param, "%d", round);
				snprintf(want, sizeof want, "%d", round + 1000 * i + k);
				const char *v[1] = { param };
				PGresult *r = PQexecPrepared(conns[i], name, 1, v, NULL, NULL, 0);
				executes++;
				if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), want) != 0) {
					if (wrong < 5)
						printf("c%d exec %s(%s): expected %s, got %s%s", i, name, param, want,
						       PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "",
						       PQresultStatus(r) == PGRES_TUPLES_OK ? "\n" : PQerrorMessage(conns[i]));
					wrong++;
				}
				PQclear(r);
				r = PQexec(conns[i], "SELECT count(*) FROM pg_prepared_statements");
				if (PQresultStatus(r) != PGRES_TUPLES_OK)
					die(3, "count: %s", PQerrorMessage(conns[i]));
				long n = atol(PQgetvalue(r, 0, 0));
				if (n > maxp)
					maxp = n;
				PQclear(r);
			}
		}
	}
	printf("executes %ld wrong %ld max_prepared %ld\n", executes, wrong, maxp);
	return wrong ? 3 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && strcmp(argv[1], "transcript") == 0) {
		open_conns(argv[2], atoi(argv[3]));
		transcript();
	} else if (argc >= 4 && strcmp(argv[1], "shared") == 0) {
		open_conns(argv[2], atoi(argv[3]));
		shared();
	} else if (argc >= 6 && strcmp(argv[1], "many") == 0) {
		open_conns(argv[2], atoi(argv[3]));
		int rc = many(atoi(argv[4]), atoi(argv[5]));
		for (int i = 0; i < nconn; i++)
			PQfinish(conns[i]);
		return rc;
	} else {
		fprintf(stderr, "usage: prepared transcript CONNINFO NCONN | shared CONNINFO NCONN | many CONNINFO NCONN NSTMT ROUNDS\n");
		return 1;
	}
	for (int i = 0; i < nconn; i++)
		PQfinish(conns[i]);
	return 0;
}
