/* pool/session.c: transaction pooling's record of a client's session, so that
 * it follows the client from server to server: what each statement did to it
 * (SET, RESET, PREPARE, DEALLOCATE, DISCARD, LISTEN, temporary objects, WITH
 * HOLD cursors, advisory locks, savepoints), applied when the server confirms
 * it and kept only if the transaction commits; and the one hidden query that
 * makes a server's session the client's (settings, SQL PREPAREs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/listen.h"
#include "pool/pool.h"
#include "pool/server.h"
#include "pool/session.h"

#define UNKNOWN_VALUE "\001unknown"   /* a server setting pgring cannot vouch for */

static void oom(struct client *cl)
{
	client_fail(cl, "53200", "out of memory");
}

/* The bytes the client's session record holds (max_client_session_size). */
static uint64_t session_bytes(const struct client *cl)
{
	const struct client_sess *cs = cl->sess;
	uint64_t n = cl->params.bytes;
	if (cs)
		n += (uint64_t)cs->txn_forced.bytes + cs->sp_bytes + cs->sqlprep.bytes + cs->holds.bytes +
		     cs->listen.bytes + (cs->txn_params ? cs->txn_params->bytes : 0) +
		     (cs->txn_listen ? cs->txn_listen->bytes : 0);
	return n;
}

/* A record of the client's session lost an update, or grew past
 * max_client_session_size: what pgring would replay on the next server is no
 * longer what the client set, or more than it keeps for one client, so it
 * cannot go on (the statement that did it has run on the server). */
static void check_memory(struct client *cl)
{
	const struct client_sess *cs = cl->sess;
	if (cl->state == CL_CLOSED)
		return;
	const struct params *const rec[] = {
		&cl->params, cs ? cs->txn_params : NULL, cs ? &cs->txn_forced : NULL, cs ? &cs->sqlprep : NULL,
		cs ? &cs->holds : NULL, cs ? cs->txn_listen : NULL,
	};
	bool failed = false, full = false;
	for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++)
		if (rec[i] && rec[i]->failed) {
			failed = true;
			full |= rec[i]->full;
		}
	uint64_t bytes = session_bytes(cl);
	int max = cl->conn.shard->cfg->max_client_session_size;
	if (bytes > (uint64_t)max) {
		LOGF(LOG_WARNING, cl->conn.id, "session state of %llu bytes is over max_client_session_size (%d)",
		     (unsigned long long)bytes, max);
		client_fail(cl, "54000", "session state too large: its settings, savepoints, SQL PREPAREs and LISTENs "
			    "take %llu bytes, more than max_client_session_size (%d)", (unsigned long long)bytes, max);
	} else if (full) {
		LOGF(LOG_WARNING, cl->conn.id, "more than %d session settings, SQL PREPAREs or LISTENs", PARAMS_MAX);
		client_fail(cl, "54000", "too many session settings, SQL PREPAREs or LISTENs (at most %d of each)",
			    PARAMS_MAX);
	} else if (failed) {
		client_fail(cl, "53200", "out of memory");
	}
}

struct client_sess *session_get(struct client *cl)
{
	if (!cl->sess)
		cl->sess = calloc(1, sizeof *cl->sess);
	return cl->sess;
}

static bool reported(const struct client *cl, const char *name)
{
	return params_get(&cl->pool->defaults, name) != NULL;
}

void session_set_pins(struct client *cl, uint8_t pins)
{
	bool held = false, listening = false;
	for (int i = 0; i < cl->sess->holds.n; i++) {
		if (cl->sess->holds.v[i].name[0] == 'l')
			listening = true;
		else
			held = true;
	}
	pins = (uint8_t)((pins & ~(PIN_LISTEN | PIN_CURSOR)) | (listening ? PIN_LISTEN : 0) | (held ? PIN_CURSOR : 0));
	if (!cl->pins != !pins && cl->pool)
		gauge_add(&cl->pool->stats->cl_pinned, pins ? 1 : -1);
	if (pins != cl->pins)
		LOGF(LOG_DEBUG, cl->conn.id, "pins 0x%x -> 0x%x", cl->pins, pins);
	cl->pins = pins;
}

static void held_remove_all(struct client *cl, char kind)
{
	for (int i = cl->sess->holds.n - 1; i >= 0; i--)
		if (cl->sess->holds.v[i].name[0] == kind)
			params_remove(&cl->sess->holds, cl->sess->holds.v[i].name);
}

static void held_set(struct client *cl, char kind, const char *name, bool on)
{
	char key[SQL_QNAME_MAX + 3];
	snprintf(key, sizeof key, "%c:%s", kind, name);
	if (on)
		params_set(&cl->sess->holds, key, "");
	else
		params_remove(&cl->sess->holds, key);
}

static struct params *txn_params(struct client *cl)
{
	if (!cl->sess->txn_params) {
		cl->sess->txn_params = calloc(1, sizeof *cl->sess->txn_params);
		if (cl->sess->txn_params && !params_copy(cl->sess->txn_params, &cl->params)) {
			params_clear(cl->sess->txn_params);
			free(cl->sess->txn_params);
			cl->sess->txn_params = NULL;
		}
	}
	return cl->sess->txn_params;
}

static struct params *params_dup(const struct params *src)
{
	struct params *p = calloc(1, sizeof *p);
	if (p && !params_copy(p, src)) {
		params_clear(p);
		free(p);
		return NULL;
	}
	return p;
}

static void params_free(struct params *p)
{
	if (p) {
		params_clear(p);
		free(p);
	}
}

/* Savepoints: settings are transactional per savepoint too. What one holds,
 * for max_client_session_size: */
static uint32_t savepoint_bytes(const struct savepoint *sp)
{
	return (uint32_t)sizeof *sp + (sp->params ? sp->params->bytes : 0);
}

static void savepoints_pop_to(struct client *cl, uint16_t n)
{
	while (cl->sess->nsp > n) {
		struct savepoint *sp = &cl->sess->sp[--cl->sess->nsp];
		cl->sess->sp_bytes -= savepoint_bytes(sp);
		params_free(sp->params);
	}
}

static int savepoint_find(const struct client *cl, const char *name)
{
	for (int i = cl->sess->nsp - 1; i >= 0; i--)
		if (strcmp(cl->sess->sp[i].name, name) == 0)
			return i;
	return -1;
}

static void savepoint_effect(struct lease *l, const struct proto_sql_stmt *fx)
{
	struct client *cl = l->client;
	int i;
	switch (fx->kind) {
	case SQL_SAVEPOINT:
		if (cl->sess->nsp == cl->sess->sp_cap) {
			uint16_t cap = cl->sess->sp_cap ? (uint16_t)(cl->sess->sp_cap * 2) : 4;
			struct savepoint *sp = cap > cl->sess->sp_cap ? realloc(cl->sess->sp, cap * sizeof *sp) : NULL;
			if (!sp) {
				l->txn_uncertain = cl->sess->txn_params != NULL;   /* cannot follow: replay after */
				return;
			}
			cl->sess->sp = sp;
			cl->sess->sp_cap = cap;
		}
		snprintf(cl->sess->sp[cl->sess->nsp].name, sizeof cl->sess->sp[cl->sess->nsp].name, "%s", fx->name);
		cl->sess->sp[cl->sess->nsp].params = cl->sess->txn_params ? params_dup(cl->sess->txn_params) : NULL;
		if (cl->sess->txn_params && !cl->sess->sp[cl->sess->nsp].params)
			l->txn_uncertain = true;
		cl->sess->sp_bytes += savepoint_bytes(&cl->sess->sp[cl->sess->nsp]);
		cl->sess->nsp++;
		break;
	case SQL_ROLLBACK_TO:
		if ((i = savepoint_find(cl, fx->name)) < 0)
			break;
		savepoints_pop_to(cl, (uint16_t)(i + 1));
		params_free(cl->sess->txn_params);
		cl->sess->txn_params = cl->sess->sp[i].params ? params_dup(cl->sess->sp[i].params) : NULL;
		if (cl->sess->sp[i].params && !cl->sess->txn_params)
			l->txn_uncertain = true;
		l->txn_error = false;   /* the transaction is usable again, its settings known */
		break;
	case SQL_RELEASE:
		if ((i = savepoint_find(cl, fx->name)) >= 0)
			savepoints_pop_to(cl, (uint16_t)i);
		break;
	default:
		break;
	}
}

static void drop_txn_params(struct client *cl)
{
	if (!cl->sess)
		return;
	params_clear(&cl->sess->txn_forced);
	savepoints_pop_to(cl, 0);
	if (cl->sess->txn_params) {
		params_clear(cl->sess->txn_params);
		free(cl->sess->txn_params);
		cl->sess->txn_params = NULL;
	}
}

/* Forget what a server's record says of settings ParameterStatus does not
 * report (after a reset the server has its own defaults there). */
static void drop_unreported(struct server *sv)
{
	const struct params *d = &sv->pool->defaults;
	for (int i = sv->params.n - 1; i >= 0; i--)
		if (!params_get(d, sv->params.v[i].name))
			params_remove(&sv->params, sv->params.v[i].name);
}

/* The server's settings pgring does not see in ParameterStatus are, during a
 * lease, the client's: make the record say so. */
static void mirror_unreported(struct client *cl, struct server *sv)
{
	drop_unreported(sv);
	for (int i = 0; i < cl->params.n; i++)
		if (!reported(cl, cl->params.v[i].name))
			params_set(&sv->params, cl->params.v[i].name, cl->params.v[i].value);
}

void session_forget_server(struct server *sv)
{
	drop_unreported(sv);
	stmt_cache_clear(&sv->stmts);
	params_clear(&sv->sqlprep);
}

static void deallocate_all(struct client *cl, struct server *sv)
{
	params_clear(&cl->sess->sqlprep);
	params_clear(&sv->sqlprep);
	stmt_map_clear(&cl->sess->stmts, pool_shard(sv->conn.shard)->stmts);
	stmt_cache_clear(&sv->stmts);
}

/* A statement the server completed: what it did to the session. */
static void check_memory(struct client *cl);

/* LISTEN, UNLISTEN, UNLISTEN * in a pool with a listener: the channels the
 * client has if the transaction commits. */
static void listen_effect(struct lease *l, const struct proto_sql_stmt *fx)
{
	struct client *cl = l->client;
	struct client_sess *cs = cl->sess;
	l->server->listen_dirty = true;
	if (!cs->txn_listen && !(cs->txn_listen = params_dup(&cs->listen))) {
		oom(cl);
		return;
	}
	if (fx->kind == SQL_UNLISTEN_ALL)
		params_clear(cs->txn_listen);
	else if (fx->kind == SQL_UNLISTEN)
		params_remove(cs->txn_listen, fx->name);
	else if (!params_set(cs->txn_listen, fx->name, ""))
		oom(cl);
}

void session_apply(struct lease *l, const struct proto_sql_stmt *fx, const char *tag)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	if (!session_get(cl)) {
		oom(cl);
		return;
	}
	uint8_t pins = cl->pins;
	if (fx->flags & SQL_F_ADVISORY_LOCK)
		pins |= PIN_ADVISORY;
	if (fx->flags & SQL_F_ADVISORY_UNLOCK_ALL)
		pins &= (uint8_t)~PIN_ADVISORY;
	const char *want = proto_sql_tag(fx);
	if (want && strcmp(want, tag) != 0) {
		LOGF(LOG_DEBUG, cl->conn.id, "statement effect skipped: tag %s, expected %s", tag, want);
		session_set_pins(cl, pins);
		return;
	}
	struct params *p;
	switch (fx->kind) {
	case SQL_SET:
		if (reported(cl, fx->name))   /* ParameterStatus tells the value */
			params_remove(&cl->sess->txn_forced, fx->name);
		else if (fx->value && (p = txn_params(cl)))
			params_set(p, fx->name, fx->value);
		break;
	case SQL_RESET: {
		/* back to the session's own default: its startup value, if it had one;
		 * the server goes back to its own, so that one must be replayed */
		const char *orig = params_get(&cl->startup, fx->name);
		if (!(p = txn_params(cl)))
			break;
		if (reported(cl, fx->name)) {
			if (orig)
				params_set(&cl->sess->txn_forced, fx->name, orig);
		} else if (orig) {
			params_set(p, fx->name, orig);
			params_set(&cl->sess->txn_forced, fx->name, orig);
		} else {
			params_remove(p, fx->name);
		}
		break;
	}
	case SQL_RESET_ALL:
		if ((p = txn_params(cl))) {
			params_copy(p, &cl->startup);
			l->txn_reset_all = true;
		}
		break;
	case SQL_PREPARE:
		if (fx->value) {
			params_set(&cl->sess->sqlprep, fx->name, fx->value);
			params_set(&sv->sqlprep, fx->name, fx->value);
		}
		break;
	case SQL_DEALLOCATE: {
		struct pstmt *st = stmt_map_take(&cl->sess->stmts, fx->name);
		if (st) {
			/* rewritten to the shared name, which this server has now dropped */
			stmt_cache_remove(&sv->stmts, st->digest);
			stmt_unref(pool_shard(sv->conn.shard)->stmts, st);
		}
		params_remove(&cl->sess->sqlprep, fx->name);
		params_remove(&sv->sqlprep, fx->name);
		break;
	}
	case SQL_DEALLOCATE_ALL:
		deallocate_all(cl, sv);
		break;
	case SQL_DISCARD_ALL:
		/* settings as after RESET ALL, taken at the ReadyForQuery (after the
		 * ParameterStatus messages the reset causes); the rest at once */
		deallocate_all(cl, sv);
		if ((p = txn_params(cl))) {
			params_copy(p, &cl->startup);
			l->txn_reset_all = true;
		}
		session_forget_server(sv);
		params_clear(&cl->sess->holds);
		if (listen_pooled(cl->pool))
			listen_effect(l, &(struct proto_sql_stmt){ .kind = SQL_UNLISTEN_ALL });
		pins = 0;
		break;
	case SQL_DISCARD_TEMP:
		pins &= (uint8_t)~PIN_TEMP;
		break;
	case SQL_LISTEN:
	case SQL_UNLISTEN:
	case SQL_UNLISTEN_ALL:
		if (listen_pooled(cl->pool))
			listen_effect(l, fx);
		else if (fx->kind == SQL_UNLISTEN_ALL)
			held_remove_all(cl, 'l');
		else
			held_set(cl, 'l', fx->name, fx->kind == SQL_LISTEN);
		break;
	case SQL_TEMP_OBJECT:
		pins |= PIN_TEMP;
		break;
	case SQL_HOLD_CURSOR:
		held_set(cl, 'c', fx->name, true);
		break;
	case SQL_CLOSE:
		held_set(cl, 'c', fx->name, false);
		break;
	case SQL_CLOSE_ALL:
		held_remove_all(cl, 'c');
		break;
	case SQL_PIN:
		pins |= PIN_OTHER;
		break;
	case SQL_SAVEPOINT:
	case SQL_ROLLBACK_TO:
	case SQL_RELEASE:
		savepoint_effect(l, fx);
		break;
	default:
		break;
	}
	session_set_pins(cl, pins);
	check_memory(cl);
}

/* The server's value of p's unreported settings is not known: replay them. */
static void mark_unknown(struct client *cl, struct server *sv, const struct params *p)
{
	for (int i = 0; i < p->n; i++)
		if (!reported(cl, p->v[i].name))
			params_set(&sv->params, p->v[i].name, UNKNOWN_VALUE);
}

/* A ReadyForQuery reached the client: settings changed in a transaction
 * become the client's if it committed. */
void session_ready(struct lease *l, char status)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	if (!cl->sess) {   /* nothing pending: no SET was ever seen */
		if (status != 'E')
			l->txn_error = l->txn_rolled = l->txn_uncertain = l->txn_reset_all = false;
		return;
	}
	if (status == 'T' && (l->txn_error || l->txn_rolled)) {
		/* usable again after an error or a ROLLBACK: back to a savepoint, which
		 * may or may not have undone the settings made in the block */
		if (cl->sess->txn_params)
			l->txn_uncertain = true;
		l->txn_error = l->txn_rolled = false;
		return;
	}
	if (status != 'I')
		return;
	/* only what a transaction's end merges into the client's records can
	 * grow them here (each statement's own effects were checked as they
	 * came): a transaction that set nothing skips the check */
	bool grew = cl->sess->txn_listen || cl->sess->txn_params;
	if (cl->sess->txn_listen) {
		/* LISTEN takes effect at commit; after a savepoint rollback pgring
		 * cannot tell, and keeps what the statements said */
		struct params *tl = cl->sess->txn_listen;
		cl->sess->txn_listen = NULL;
		bool ok = (l->txn_error || l->txn_rolled) ? true : listen_set(cl, tl);
		params_clear(tl);
		free(tl);
		if (!ok)
			return;
	}
	listen_flush(cl);
	if (cl->sess->txn_params) {
		if (l->txn_uncertain) {
			mark_unknown(cl, sv, cl->sess->txn_params);
			mark_unknown(cl, sv, &cl->params);
			l->need_sync = true;
			LOGF(LOG_DEBUG, cl->conn.id, "settings after a savepoint rollback are uncertain: replaying");
			drop_txn_params(cl);
		} else if (l->txn_error || l->txn_rolled) {
			drop_txn_params(cl);
		} else {
			struct params *np = cl->sess->txn_params;
			cl->sess->txn_params = NULL;
			if (!l->txn_reset_all)   /* reported values: as the server reported them meanwhile */
				for (int i = 0; i < cl->params.n; i++)
					if (reported(cl, cl->params.v[i].name))
						params_set(np, cl->params.v[i].name, cl->params.v[i].value);
			for (int i = 0; i < cl->sess->txn_forced.n; i++)
				params_set(np, cl->sess->txn_forced.v[i].name, cl->sess->txn_forced.v[i].value);
			params_clear(&cl->params);
			cl->params = *np;
			free(np);
			if (l->txn_reset_all)   /* the server's unreported settings are its defaults now */
				drop_unreported(sv);
			else
				mirror_unreported(cl, sv);
			for (int i = 0; i < cl->sess->txn_forced.n; i++)   /* the server has its own default there */
				params_set(&sv->params, cl->sess->txn_forced.v[i].name, UNKNOWN_VALUE);
			if (l->txn_reset_all || cl->sess->txn_forced.n)
				l->need_sync = true;   /* the server went back to its own defaults */
		}
	}
	params_clear(&cl->sess->txn_forced);
	savepoints_pop_to(cl, 0);
	l->txn_error = l->txn_rolled = l->txn_uncertain = l->txn_reset_all = false;
	if (grew)
		check_memory(cl);
}

/* ---- SQL PREPAREs follow the client ---- */

/* A protocol Close of an SQL PREPARE's name completed. */
void session_sqlprep_closed(struct lease *l, const char *name)
{
	struct client *cl = l->client;
	if (cl && cl->sess)
		params_remove(&cl->sess->sqlprep, name);
	params_remove(&l->server->sqlprep, name);
}

static void append_ident(struct strbuf *sb, const char *name)
{
	strbuf_putc(sb, '"');
	for (const char *c = name; *c; c++) {
		if (*c == '"')
			strbuf_putc(sb, '"');
		strbuf_putc(sb, *c);
	}
	strbuf_putc(sb, '"');
}

static bool hidden_query(struct server *sv, struct lease *in_stream, const char *sql)
{
	LOGF(LOG_DEBUG, sv->conn.id, "restoring session state: %s", sql);
	return in_stream ? lease_hidden_query(in_stream, sql) : server_hidden_query(sv, sql);
}

/* The server's SQL PREPAREs the client lacks: DEALLOCATEs, sent with the settings. */
static void sqlprep_drop(const struct params *mine, const struct server *sv, struct strbuf *sb)
{
	for (int i = 0; i < sv->sqlprep.n; i++) {
		const char *text = params_get(mine, sv->sqlprep.v[i].name);
		if (text && strcmp(text, sv->sqlprep.v[i].value) == 0)
			continue;
		if (sb->len)
			strbuf_putc(sb, ';');
		strbuf_puts(sb, "DEALLOCATE ");
		append_ident(sb, sv->sqlprep.v[i].name);
	}
}

/* The client's SQL PREPAREs the server lacks by pgring's record: should the
 * record be wrong (a statement it did not see complete), a PREPARE of the same
 * name would fail with 42P05 and cost the client its connection, so such names
 * are deallocated first if the server has them, sent with the settings. */
static void sqlprep_guard(const struct params *mine, const struct server *sv, struct strbuf *sb)
{
	bool any = false;
	for (int i = 0; i < mine->n; i++) {
		if (params_get(&sv->sqlprep, mine->v[i].name))
			continue;   /* a different text was deallocated by sqlprep_drop */
		if (!any) {
			if (sb->len)
				strbuf_putc(sb, ';');
			strbuf_puts(sb, "DO $pgring$DECLARE n text; BEGIN FOR n IN SELECT name FROM "
					"pg_catalog.pg_prepared_statements WHERE name IN (");
		} else {
			strbuf_putc(sb, ',');
		}
		any = true;
		strbuf_putc(sb, '\'');
		for (const char *c = mine->v[i].name; *c; c++) {
			if (*c == '\'')
				strbuf_putc(sb, '\'');
			strbuf_putc(sb, *c);
		}
		strbuf_putc(sb, '\'');
	}
	if (any)
		strbuf_puts(sb, ") LOOP EXECUTE pg_catalog.format('DEALLOCATE %I', n); END LOOP; END$pgring$");
}

/* The client's SQL PREPAREs the server lacks: each goes alone, since the server
 * keeps the whole query string as the statement's text (what
 * pg_prepared_statements shows the client). */
static bool sqlprep_add(const struct params *mine, struct server *sv, struct lease *in_stream, int *sent)
{
	for (int i = 0; i < mine->n; i++) {
		const char *have = params_get(&sv->sqlprep, mine->v[i].name);
		if (have && strcmp(have, mine->v[i].value) == 0)
			continue;
		if (!hidden_query(sv, in_stream, mine->v[i].value))
			return false;
		(*sent)++;
	}
	return true;
}

void session_restore(struct client *cl, struct server *sv, struct lease *in_stream)
{
	static const struct params none;
	const struct params *mine = cl->sess ? &cl->sess->sqlprep : &none;
	if (in_stream)
		in_stream->need_sync = false;
	if (cl->params.hash == sv->params.hash && cl->params.n == sv->params.n && !mine->n && !sv->sqlprep.n &&
	    !(cl->sess && cl->sess->listen.n))
		return;   /* the usual case, at every lease: nothing to restore */
	struct strbuf sb = STRBUF_INIT;
	char sql[8192];
	int n = params_diff_sql(&cl->params, &sv->params, &sv->pool->defaults, sql, sizeof sql);
	if (n > 0)
		strbuf_append(&sb, sql, (size_t)n);
	else if (n < 0)
		LOGF(LOG_WARNING, cl->conn.id, "session settings too long to restore (over %zu bytes)", sizeof sql);
	sqlprep_drop(mine, sv, &sb);
	sqlprep_guard(mine, sv, &sb);
	if (cl->sess && cl->sess->listen.n && listen_pooled(cl->pool)) {
		/* for pg_listening_channels(); the listener delivers (UNLISTEN * at release) */
		for (int i = 0; i < cl->sess->listen.n; i++) {
			if (sb.len)
				strbuf_putc(&sb, ';');
			strbuf_puts(&sb, "LISTEN ");
			append_ident(&sb, cl->sess->listen.v[i].name);
		}
		sv->listen_dirty = true;
	}
	int sent = 0;
	bool ok = !sb.failed;
	if (ok && sb.len) {
		ok = hidden_query(sv, in_stream, strbuf_str(&sb));
		sent += ok;
	}
	if (ok && n > 0)
		params_copy(&sv->params, &cl->params);
	if (ok && (mine->n || sv->sqlprep.n) && sqlprep_add(mine, sv, in_stream, &sent))
		params_copy(&sv->sqlprep, mine);
	if (sent)
		stat_add(&sv->pool->stats->state_replays, 1);
	strbuf_free(&sb);
}

static void drop_txn_listen(struct client *cl)
{
	if (cl->sess && cl->sess->txn_listen) {
		params_clear(cl->sess->txn_listen);
		free(cl->sess->txn_listen);
		cl->sess->txn_listen = NULL;
	}
}

void session_lost(struct client *cl)
{
	drop_txn_params(cl);
	drop_txn_listen(cl);
}

void session_free(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	params_clear(&cl->startup);
	if (cl->sess) {
		drop_txn_params(cl);
		stmt_map_clear(&cl->sess->stmts, pool_shard(s)->stmts);
		params_clear(&cl->sess->sqlprep);
		params_clear(&cl->sess->holds);
		drop_txn_listen(cl);
		params_clear(&cl->sess->listen);
		free(cl->sess->sp);
		free(cl->sess);
		cl->sess = NULL;
	}
	if (cl->pins && cl->pool)
		gauge_add(&cl->pool->stats->cl_pinned, -1);
	cl->pins = 0;
}
