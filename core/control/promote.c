/* core/control/promote.c: failover's SQL, each job on a detached thread of
 * its own (core/control/promote.h). A job and its thread share one block; an
 * atomic state says who frees it: the thread if the caller let it go first,
 * else the caller. */
#include "core/control/promote.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"

struct promote_job {
	enum promote_kind kind;
	char conninfo[1536];
	char new_host[256];
	int new_port;
	_Atomic int state;          /* enum promote_state */
	_Atomic bool released;      /* the caller is done with it */
	char why[256];
};

static void conninfo_param(struct strbuf *sb, const char *key, const char *value)
{
	if (!value || !*value)
		return;
	strbuf_printf(sb, "%s%s='", sb->len ? " " : "", key);
	for (const char *c = value; *c; c++) {
		if (*c == '\'' || *c == '\\')
			strbuf_putc(sb, '\\');
		strbuf_putc(sb, *c);
	}
	strbuf_putc(sb, '\'');
}

/* One statement; its first value into out (if any). false: failed, why set. */
static bool run(struct promote_job *j, PGconn *c, const char *sql, char *out, size_t outlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(j->why, sizeof j->why, "%s", PQresultErrorMessage(r));
	else if (out)
		snprintf(out, outlen, "%s", PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return ok;
}

/* primary_conninfo with host and port replaced (the rest, user, password,
 * application_name, ..., kept). */
static bool repoint(struct promote_job *j, PGconn *c)
{
	char old[1024];
	if (!run(j, c, "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'primary_conninfo'", old, sizeof old))
		return false;
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(old, &err);
	if (!opts) {
		snprintf(j->why, sizeof j->why, "its primary_conninfo does not parse: %s", err ? err : "?");
		PQfreemem(err);
		return false;
	}
	struct strbuf sb = STRBUF_INIT;
	char port[16];
	snprintf(port, sizeof port, "%d", j->new_port);
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr") || !strcmp(o->keyword, "port"))
			continue;
		conninfo_param(&sb, o->keyword, o->val);
	}
	conninfo_param(&sb, "host", j->new_host);
	conninfo_param(&sb, "port", port);
	PQconninfoFree(opts);
	char *lit = sb.failed ? NULL : PQescapeLiteral(c, strbuf_str(&sb), sb.len);
	strbuf_free(&sb);
	if (!lit) {
		snprintf(j->why, sizeof j->why, "out of memory");
		return false;
	}
	char sql[2048];
	snprintf(sql, sizeof sql, "ALTER SYSTEM SET primary_conninfo = %s", lit);
	PQfreemem(lit);
	return run(j, c, sql, NULL, 0) && run(j, c, "SELECT pg_catalog.pg_reload_conf()", NULL, 0);
}

/* Read-only now (ALTER SYSTEM, so it stays so), a standby from its next
 * restart on (standby.signal in its data directory: it diverged from the new
 * primary, so it stays in recovery and takes no write until rebuilt), and its
 * client sessions ended. The file needs a superuser or pg_write_server_files:
 * without it the fence holds until an operator changes the setting, and why
 * says so. */
static bool fence(struct promote_job *j, PGconn *c)
{
	char dir[1024], n[32];
	if (!run(j, c, "ALTER SYSTEM SET default_transaction_read_only = on", NULL, 0) ||
	    !run(j, c, "SELECT pg_catalog.pg_reload_conf()", NULL, 0))
		return false;
	bool standby = run(j, c, "SELECT pg_catalog.current_setting('data_directory') || '/standby.signal'", dir,
			   sizeof dir);
	char *lit = standby ? PQescapeLiteral(c, dir, strlen(dir)) : NULL;
	if (lit) {
		char sql[1200];
		snprintf(sql, sizeof sql, "COPY (SELECT 1 WHERE false) TO %s", lit);
		standby = run(j, c, sql, NULL, 0);
		PQfreemem(lit);
	}
	char kept[sizeof j->why];
	snprintf(kept, sizeof kept, "%s", standby ? "" : j->why);
	if (!run(j, c, "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity "
		       "WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()", n, sizeof n))
		return false;
	if (!standby)
		snprintf(j->why, sizeof j->why, "no standby.signal, so a restart would make it writable again: %.180s", kept);
	return true;
}

static bool work(struct promote_job *j)
{
	PGconn *c = PQconnectdb(j->conninfo);
	bool ok = PQstatus(c) == CONNECTION_OK;
	char v[64];
	if (!ok)
		snprintf(j->why, sizeof j->why, "%s", PQerrorMessage(c));
	else if (j->kind == PROMOTE_PROMOTE) {
		ok = run(j, c, "SELECT pg_catalog.pg_promote(true, 60)", v, sizeof v);
		if (ok && strcmp(v, "t") != 0) {
			snprintf(j->why, sizeof j->why, "pg_promote() did not finish within 60 s");
			ok = false;
		}
	} else if (j->kind == PROMOTE_REPOINT) {
		ok = repoint(j, c);
	} else {
		ok = fence(j, c);
	}
	PQfinish(c);
	for (char *p = j->why; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return ok;
}

static void *thread_main(void *arg)
{
	struct promote_job *j = arg;
	atomic_store(&j->state, work(j) ? PROMOTE_OK : PROMOTE_FAILED);
	bool expect = false;
	/* whoever comes second frees it */
	if (!atomic_compare_exchange_strong(&j->released, &expect, true))
		free(j);
	return NULL;
}

struct promote_job *promote_start(enum promote_kind kind, const char *host, int port, const char *new_host,
				  int new_port, const char *user, const char *password, const char *dbname)
{
	struct promote_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->kind = kind;
	struct strbuf sb = STRBUF_INIT;
	char p[16];
	snprintf(p, sizeof p, "%d", port);
	conninfo_param(&sb, "host", host);
	conninfo_param(&sb, "port", p);
	conninfo_param(&sb, "user", user);
	conninfo_param(&sb, "password", password);
	conninfo_param(&sb, "dbname", dbname);
	conninfo_param(&sb, "application_name", "pgring failover");
	conninfo_param(&sb, "connect_timeout", "5");
	bool fits = !sb.failed && sb.len < sizeof j->conninfo;
	if (fits)
		memcpy(j->conninfo, strbuf_str(&sb), sb.len + 1);
	strbuf_free(&sb);
	snprintf(j->new_host, sizeof j->new_host, "%s", new_host ? new_host : "");
	j->new_port = new_port;
	atomic_store(&j->state, PROMOTE_RUNNING);
	pthread_attr_t a;
	pthread_t t;
	if (!fits || pthread_attr_init(&a)) {
		free(j);
		return NULL;
	}
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&t, &a, thread_main, j);
	pthread_attr_destroy(&a);
	if (r) {
		free(j);
		return NULL;
	}
	return j;
}

enum promote_state promote_state(const struct promote_job *j, char *why, size_t len)
{
	enum promote_state st = atomic_load(&j->state);
	snprintf(why, len, "%s", st == PROMOTE_RUNNING ? "" : j->why);
	return st;
}

void promote_release(struct promote_job *j)
{
	bool expect = false;
	if (j && !atomic_compare_exchange_strong(&j->released, &expect, true))
		free(j);   /* its thread was done first */
}
