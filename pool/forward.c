/* pool/forward.c: transaction pooling between a client and the server it has
 * for now. The client's requests are framed a second time on their way out, so
 * that named statements take their shared server-side names and a statement the
 * server lacks is prepared first; the replies the server owes are queued in
 * order, so that what pgring hides, or answers itself, keeps its place. What a
 * statement does to the session (SET, PREPARE, LISTEN, ...) is applied when the
 * server confirms it with its CommandComplete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/strbuf.h"
#include "pool/pool.h"

#define RF_CLIENT_NAME 1   /* P: the client's name was bound when it was sent; undone on failure */
#define RF_IGNORED     4   /* S: sent while the server was in COPY FROM STDIN, which ignores it */

#define UNKNOWN_VALUE "\001unknown"   /* a server setting pgring cannot vouch for */

struct fx_list {
	int n;
	struct proto_sql_stmt s[];
};

static const struct proto_frame_ops fwd_ops;

static struct shard *shard_of(struct server *sv) { return sv->conn.shard; }

static void oom(struct client *cl)
{
	client_fail(cl, "53200", "out of memory");
}

/* ---- the queue of replies owed ---- */

static struct reply *rq_head(struct server *sv)
{
	return sv->rq.n ? &sv->rq.r[sv->rq.head] : NULL;
}

static void fx_free(struct fx_list *l)
{
	if (!l)
		return;
	proto_sql_free(l->s, l->n);
	free(l);
}

static void entry_release(struct server *sv, struct reply *r)
{
	if (r->st)
		stmt_unref(pool_shard(shard_of(sv))->stmts, r->st);
	if ((r->type == 'Q' || r->type == 'E') && r->kind == RP_PASS)
		fx_free(r->extra);
	else
		free(r->extra);
	r->st = NULL;
	r->extra = NULL;
}

/* The request got no answer (skipped after an error) or failed: take back what
 * was assumed when it was sent. */
static void entry_undo(struct server *sv, struct reply *r, bool skipped)
{
	struct client *cl = sv->client;
	if (r->type == 'P' && r->st)
		stmt_cache_remove(&sv->stmts, r->st->digest);
	if (r->type == 'C' && r->kind == RP_HIDE && r->extra)
		stmt_cache_add(&sv->stmts, r->extra);   /* the eviction did not happen */
	if ((r->flags & RF_CLIENT_NAME) && cl && cl->sess) {
		struct pstmt *st = stmt_map_get(&cl->sess->stmts, r->extra);
		if (st == r->st) {
			stmt_map_take(&cl->sess->stmts, r->extra);
			stmt_unref(pool_shard(shard_of(sv))->stmts, st);
		}
	}
	if (skipped && r->kind == RP_PASS && (r->type == 'Q' || r->type == 'F') && cl && cl->expect)
		cl->expect--;   /* its ReadyForQuery will not come */
	if (skipped && r->kind == RP_HIDE && r->type == 'Q')
		sv->need_sync = true;   /* the replay did not run */
}

static void rq_pop(struct server *sv)
{
	struct replyq *q = &sv->rq;
	entry_release(sv, &q->r[q->head]);
	q->head = (q->head + 1) & (q->cap - 1);
	q->n--;
}

/* Queue what the server (or pgring) owes for one request. While the server
 * skips to the next Sync, nothing but a Sync is answered. */
static struct reply *rq_push(struct server *sv, uint8_t kind, uint8_t type, struct pstmt *st, void *extra,
			     uint32_t flags)
{
	struct replyq *q = &sv->rq;
	if (st)
		st->refs++;
	struct reply tmp = { .kind = kind, .type = type, .flags = flags, .st = st, .extra = extra };
	if (type == 'S')
		sv->skipping = false;
	else if (sv->skipping) {
		entry_undo(sv, &tmp, true);
		entry_release(sv, &tmp);
		return NULL;
	}
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 16;
		struct reply *r = malloc(cap * sizeof *r);
		if (!r) {
			entry_release(sv, &tmp);
			if (sv->client)
				oom(sv->client);
			return NULL;
		}
		for (uint32_t i = 0; i < q->n; i++)
			r[i] = q->r[(q->head + i) & (q->cap - 1)];
		free(q->r);
		q->r = r;
		q->cap = cap;
		q->head = 0;
	}
	struct reply *r = &q->r[(q->head + q->n) & (q->cap - 1)];
	q->n++;
	*r = tmp;
	return r;
}

/* Answers pgring gives itself go out once everything before them is answered. */
static void pump(struct server *sv)
{
	struct reply *h;
	while ((h = rq_head(sv)) && (h->kind == RP_SYNTH || (h->flags & RF_IGNORED))) {
		uint8_t msg[5] = { h->type, 0, 0, 0, 4 };
		if (h->kind == RP_SYNTH && sv->client && !conn_queue(&sv->client->conn, msg, sizeof msg, PROTO_BUF_NONE))
			oom(sv->client);
		rq_pop(sv);
	}
}

static void synth(struct server *sv, uint8_t type)
{
	if (rq_push(sv, RP_SYNTH, type, NULL, NULL, 0))
		pump(sv);
}

/* After an error in the extended protocol the server ignores everything up to
 * the next Sync: so do the replies owed for it. */
static void skip_until_sync(struct server *sv)
{
	struct reply *h;
	while ((h = rq_head(sv)) && h->type != 'S') {
		entry_undo(sv, h, true);
		rq_pop(sv);
	}
	if (!h)
		sv->skipping = true;
}

static bool terminal(uint8_t request, uint8_t reply)
{
	switch (request) {
	case 'P': return reply == '1';
	case 'B': return reply == '2';
	case 'D': return reply == 'T' || reply == 'n';
	case 'E': return reply == 'C' || reply == 'I' || reply == 's';
	case 'C': return reply == '3';
	default: return reply == 'Z';   /* S, Q, F */
	}
}

bool fwd_idle(const struct server *sv)
{
	return sv->rq.n == 0 && proto_framer_idle(&sv->cfr);
}

/* ---- session state ---- */

static struct client_sess *sess_get(struct client *cl)
{
	if (!cl->sess)
		cl->sess = calloc(1, sizeof *cl->sess);
	return cl->sess;
}

static bool reported(const struct client *cl, const char *name)
{
	return params_get(&cl->pool->defaults, name) != NULL;
}

static void set_pins(struct client *cl, uint8_t pins)
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

/* Savepoints: settings are transactional per savepoint too. */
static void savepoints_pop_to(struct client *cl, uint16_t n)
{
	while (cl->sess->nsp > n)
		params_free(cl->sess->sp[--cl->sess->nsp].params);
}

static int savepoint_find(const struct client *cl, const char *name)
{
	for (int i = cl->sess->nsp - 1; i >= 0; i--)
		if (strcmp(cl->sess->sp[i].name, name) == 0)
			return i;
	return -1;
}

static void savepoint_effect(struct client *cl, const struct proto_sql_stmt *fx)
{
	int i;
	switch (fx->kind) {
	case SQL_SAVEPOINT:
		if (cl->sess->nsp == cl->sess->sp_cap) {
			uint16_t cap = cl->sess->sp_cap ? (uint16_t)(cl->sess->sp_cap * 2) : 4;
			struct savepoint *sp = cap > cl->sess->sp_cap ? realloc(cl->sess->sp, cap * sizeof *sp) : NULL;
			if (!sp) {
				cl->txn_uncertain = cl->sess->txn_params != NULL;   /* cannot follow: replay after */
				return;
			}
			cl->sess->sp = sp;
			cl->sess->sp_cap = cap;
		}
		snprintf(cl->sess->sp[cl->sess->nsp].name, sizeof cl->sess->sp[cl->sess->nsp].name, "%s", fx->name);
		cl->sess->sp[cl->sess->nsp].params = cl->sess->txn_params ? params_dup(cl->sess->txn_params) : NULL;
		if (cl->sess->txn_params && !cl->sess->sp[cl->sess->nsp].params)
			cl->txn_uncertain = true;
		cl->sess->nsp++;
		break;
	case SQL_ROLLBACK_TO:
		if ((i = savepoint_find(cl, fx->name)) < 0)
			break;
		savepoints_pop_to(cl, (uint16_t)(i + 1));
		params_free(cl->sess->txn_params);
		cl->sess->txn_params = cl->sess->sp[i].params ? params_dup(cl->sess->sp[i].params) : NULL;
		if (cl->sess->sp[i].params && !cl->sess->txn_params)
			cl->txn_uncertain = true;
		cl->txn_error = false;   /* the transaction is usable again, its settings known */
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

void fwd_forget_session(struct server *sv)
{
	drop_unreported(sv);
	stmt_cache_clear(&sv->stmts);
	params_clear(&sv->sqlprep);
}

static void deallocate_all(struct client *cl, struct server *sv)
{
	params_clear(&cl->sess->sqlprep);
	params_clear(&sv->sqlprep);
	stmt_map_clear(&cl->sess->stmts, pool_shard(shard_of(sv))->stmts);
	stmt_cache_clear(&sv->stmts);
}

/* A statement the server completed: what it did to the session. */
static void apply_effect(struct client *cl, struct server *sv, const struct proto_sql_stmt *fx, const char *tag)
{
	if (!sess_get(cl)) {
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
		set_pins(cl, pins);
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
			cl->txn_reset_all = true;
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
			stmt_unref(pool_shard(shard_of(sv))->stmts, st);
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
			cl->txn_reset_all = true;
		}
		fwd_forget_session(sv);
		params_clear(&cl->sess->holds);
		pins = 0;
		break;
	case SQL_DISCARD_TEMP:
		pins &= (uint8_t)~PIN_TEMP;
		break;
	case SQL_LISTEN:
		held_set(cl, 'l', fx->name, true);
		break;
	case SQL_UNLISTEN:
		held_set(cl, 'l', fx->name, false);
		break;
	case SQL_UNLISTEN_ALL:
		held_remove_all(cl, 'l');
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
		savepoint_effect(cl, fx);
		break;
	default:
		break;
	}
	set_pins(cl, pins);
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
void fwd_client_ready(struct client *cl, struct server *sv, char status)
{
	if (!cl->sess) {   /* nothing pending: no SET was ever seen */
		if (status != 'E')
			cl->txn_error = cl->txn_rolled = cl->txn_uncertain = cl->txn_reset_all = false;
		return;
	}
	if (status == 'T' && (cl->txn_error || cl->txn_rolled)) {
		/* usable again after an error or a ROLLBACK: back to a savepoint, which
		 * may or may not have undone the settings made in the block */
		if (cl->sess->txn_params)
			cl->txn_uncertain = true;
		cl->txn_error = cl->txn_rolled = false;
		return;
	}
	if (status != 'I')
		return;
	if (cl->sess->txn_params) {
		if (cl->txn_uncertain) {
			mark_unknown(cl, sv, cl->sess->txn_params);
			mark_unknown(cl, sv, &cl->params);
			sv->need_sync = true;
			LOGF(LOG_DEBUG, cl->conn.id, "settings after a savepoint rollback are uncertain: replaying");
			drop_txn_params(cl);
		} else if (cl->txn_error || cl->txn_rolled) {
			drop_txn_params(cl);
		} else {
			struct params *np = cl->sess->txn_params;
			cl->sess->txn_params = NULL;
			if (!cl->txn_reset_all)   /* reported values: as the server reported them meanwhile */
				for (int i = 0; i < cl->params.n; i++)
					if (reported(cl, cl->params.v[i].name))
						params_set(np, cl->params.v[i].name, cl->params.v[i].value);
			for (int i = 0; i < cl->sess->txn_forced.n; i++)
				params_set(np, cl->sess->txn_forced.v[i].name, cl->sess->txn_forced.v[i].value);
			params_clear(&cl->params);
			cl->params = *np;
			free(np);
			if (cl->txn_reset_all)   /* the server's unreported settings are its defaults now */
				drop_unreported(sv);
			else
				mirror_unreported(cl, sv);
			for (int i = 0; i < cl->sess->txn_forced.n; i++)   /* the server has its own default there */
				params_set(&sv->params, cl->sess->txn_forced.v[i].name, UNKNOWN_VALUE);
			if (cl->txn_reset_all || cl->sess->txn_forced.n)
				sv->need_sync = true;   /* the server went back to its own defaults */
		}
	}
	params_clear(&cl->sess->txn_forced);
	savepoints_pop_to(cl, 0);
	cl->txn_error = cl->txn_rolled = cl->txn_uncertain = cl->txn_reset_all = false;
}

/* ---- replies from the server ---- */

int fwd_reply_begin(struct server *sv, uint8_t type, uint32_t len)
{
	bool small = len <= BUF_SCRATCH_SIZE / 2;
	if (type == 'D' || type == 'd' || ((type == 'N' || type == 'A' || type == 'V') && !small)) {
		struct reply *h = rq_head(sv);
		sv->cur_hide = h && h->kind == RP_HIDE && type != 'A';
		return PROTO_STREAM;
	}
	sv->cur_hide = false;
	return PROTO_WHOLE;   /* everything that ends a request is looked at whole */
}

bool fwd_reply(struct server *sv, const uint8_t *msg, uint32_t len)
{
	(void)len;
	struct reply *h = rq_head(sv);
	uint8_t t = msg[0];
	if (!h || h->kind != RP_HIDE || t == 'A')
		return true;   /* notifications are the client's whatever is running */
	if (t == 'E') {
		if (h->type == 'P')
			return true;   /* the statement it needs cannot be prepared: its error */
		struct proto_error_fields f;
		proto_parse_error(msg + 5, len - 5, &f);
		LOGF(LOG_WARNING, sv->conn.id, "pgring's own request failed on the server: %s (%s)", f.message,
		     f.sqlstate);
		sv->close_when_idle = true;
	}
	return false;
}

static void command_complete(struct server *sv, struct reply *h, const uint8_t *msg, uint32_t len)
{
	struct client *cl = sv->client;
	const char *tag = len > 5 ? (const char *)msg + 5 : "";
	uint16_t index = h->ncc++;
	if (h->kind != RP_PASS || !cl)
		return;
	struct fx_list *l = h->extra;
	bool to_savepoint = false;
	for (int i = 0; l && i < l->n; i++) {
		if (l->s[i].index == index) {
			to_savepoint |= l->s[i].kind == SQL_ROLLBACK_TO;
			apply_effect(cl, sv, &l->s[i], tag);
		}
	}
	if (strcmp(tag, "ROLLBACK") == 0 && !to_savepoint)
		cl->txn_rolled = true;
}

void fwd_reply_done(struct server *sv, const uint8_t *msg, uint32_t len)
{
	struct reply *h = rq_head(sv);
	uint8_t t = msg[0];
	struct client *cl = sv->client;
	if (!h || t == 'A' || t == 'N' || t == 'S')
		return;
	if (t == 'C' && h->type == 'Q') {
		command_complete(sv, h, msg, len);
		return;
	}
	if (t == 'G' && h->type == 'E') {
		/* COPY FROM STDIN by an Execute: the server ignores Syncs until the
		 * client's CopyDone or CopyFail, so those already sent get no answer */
		sv->copy_in = true;
		for (uint32_t i = 1; i < sv->rq.n; i++) {
			struct reply *r = &sv->rq.r[(sv->rq.head + i) & (sv->rq.cap - 1)];
			if (r->type != 'S' || r->kind != RP_PASS)
				break;
			r->flags |= RF_IGNORED;
			if (cl && cl->expect)
				cl->expect--;
		}
		return;
	}
	if (h->type == 'E' && (t == 'C' || t == 'E'))
		sv->copy_in = false;
	if (t == 'E') {
		if (cl && (h->kind == RP_PASS || h->type == 'P'))
			cl->txn_error = true;
		if (h->type == 'Q' || h->type == 'S' || h->type == 'F')
			return;   /* ReadyForQuery ends these */
		entry_undo(sv, h, false);
		rq_pop(sv);
		skip_until_sync(sv);
		pump(sv);
		return;
	}
	if (!terminal(h->type, t))
		return;
	if (h->type == 'E' && t == 'C' && cl && h->kind == RP_PASS) {
		const char *tag = len > 5 ? (const char *)msg + 5 : "";
		struct fx_list *l = h->extra;
		if (l)
			apply_effect(cl, sv, &l->s[0], tag);
		if (strcmp(tag, "ROLLBACK") == 0 && !(l && l->s[0].kind == SQL_ROLLBACK_TO))
			cl->txn_rolled = true;
	}
	if (t == 'Z' && h->kind == RP_HIDE) {
		sv->txn_status = len >= 6 ? (char)msg[5] : 'I';
		sv->last_rfq_us = shard_of(sv)->now_us;
	}
	rq_pop(sv);
	pump(sv);
}

/* ---- requests on their way to the server ---- */

static bool send_bytes(struct client *cl, struct server *sv, const void *p, uint32_t n, uint32_t buf)
{
	if (conn_queue(&sv->conn, p, n, buf))
		return true;
	oom(cl);
	return false;
}

/* A message with one name replaced: head (type, the parts before the name),
 * the new name, then the untouched rest from the client's buffer. */
static bool send_renamed(struct client *cl, struct server *sv, uint8_t type, const char *before, size_t before_len,
			 const char *name, const uint8_t *rest, uint32_t rest_len, uint32_t buf)
{
	uint8_t hdr[5 + SQL_NAME_MAX + STMT_SNAME_LEN + 4];
	size_t nlen = strlen(name) + 1;
	if (before_len + nlen + 5 > sizeof hdr)
		return send_bytes(cl, sv, NULL, 0, PROTO_BUF_NONE);
	uint32_t total = (uint32_t)(4 + before_len + nlen + rest_len);
	hdr[0] = type;
	hdr[1] = (uint8_t)(total >> 24);
	hdr[2] = (uint8_t)(total >> 16);
	hdr[3] = (uint8_t)(total >> 8);
	hdr[4] = (uint8_t)total;
	if (before_len)
		memcpy(hdr + 5, before, before_len);
	memcpy(hdr + 5 + before_len, name, nlen);
	return send_bytes(cl, sv, hdr, (uint32_t)(5 + before_len + nlen), PROTO_BUF_NONE) &&
	       (rest_len == 0 || send_bytes(cl, sv, rest, rest_len, buf));
}

/* A whole message built here. */
static bool send_built(struct client *cl, struct server *sv, struct proto_out *o)
{
	if (o->overflow) {
		oom(cl);
		return false;
	}
	return send_bytes(cl, sv, o->p, (uint32_t)o->len, PROTO_BUF_NONE);
}

/* Room for one more statement on the server: close the least recently used
 * one that this lease has not touched. */
static void make_room(struct client *cl, struct server *sv)
{
	int max = shard_of(sv)->cfg->max_prepared_statements;
	uint8_t d[STMT_DIGEST_LEN];
	while (sv->stmts.n >= (uint32_t)max && stmt_cache_victim(&sv->stmts, sv->lease_clock, d)) {
		char sname[STMT_SNAME_LEN];
		stmt_sname(d, sname);
		uint8_t mem[64];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_begin(&o, 'C');
		proto_put_u8(&o, 'S');
		proto_put_str(&o, sname);
		proto_end(&o);
		uint8_t *keep = malloc(STMT_DIGEST_LEN);
		if (!keep || !send_built(cl, sv, &o)) {
			free(keep);
			return;
		}
		memcpy(keep, d, STMT_DIGEST_LEN);
		stmt_cache_remove(&sv->stmts, d);
		rq_push(sv, RP_HIDE, 'C', NULL, keep, 0);
		LOGF(LOG_DEBUG, sv->conn.id, "evicting prepared statement %s (max_prepared_statements)", sname);
	}
}

/* Make sure the server has st prepared under its shared name. */
static bool ensure(struct client *cl, struct server *sv, struct pstmt *st)
{
	if (stmt_cache_has(&sv->stmts, st->digest))
		return true;
	make_room(cl, sv);
	if (cl->state == CL_CLOSED)
		return false;
	uint32_t len = (uint32_t)(4 + strlen(st->sname) + 1 + st->body_len);
	uint8_t hdr[5];
	hdr[0] = 'P';
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
	if (!send_bytes(cl, sv, hdr, 5, PROTO_BUF_NONE) ||
	    !send_bytes(cl, sv, st->sname, (uint32_t)strlen(st->sname) + 1, PROTO_BUF_NONE) ||
	    !send_bytes(cl, sv, st->body, st->body_len, PROTO_BUF_NONE))
		return false;
	stmt_cache_add(&sv->stmts, st->digest);
	rq_push(sv, RP_HIDE, 'P', st, NULL, 0);
	stat_add(&sv->pool->stats->prepares_injected, 1);
	return true;
}

/* An error pgring finds itself in the client's extended-protocol stream: the
 * server raises it, so that the transaction is aborted and the rest up to Sync
 * is skipped exactly as PostgreSQL would. */
static void raise_error(struct client *cl, struct server *sv, const char *sqlstate, const char *fmt, const char *arg)
{
	char msg[SQL_NAME_MAX + 128], lit[2 * sizeof msg + 8], sql[sizeof lit + 160];
	snprintf(msg, sizeof msg, fmt, arg);
	for (char *c = msg; *c; c++)
		if (*c == '$')
			*c = '?';   /* keep the dollar quote closed */
	if (proto_sql_quote(msg, lit, sizeof lit) < 0)
		snprintf(lit, sizeof lit, "'%s'", sqlstate);
	snprintf(sql, sizeof sql, "DO $pgring$BEGIN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = %s; END$pgring$",
		 sqlstate, lit);
	uint8_t mem[sizeof sql + 64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'P');
	proto_put_str(&o, "");
	proto_put_str(&o, sql);
	proto_put_u16(&o, 0);
	proto_end(&o);
	proto_begin(&o, 'B');
	proto_put_str(&o, "");
	proto_put_str(&o, "");
	proto_put_u16(&o, 0);
	proto_put_u16(&o, 0);
	proto_put_u16(&o, 0);
	proto_end(&o);
	proto_begin(&o, 'E');
	proto_put_str(&o, "");
	proto_put_u32(&o, 0);
	proto_end(&o);
	if (!send_built(cl, sv, &o))
		return;
	if (sv->unnamed_fx)
		proto_sql_free(sv->unnamed_fx, 1);
	free(sv->unnamed_fx);
	sv->unnamed_fx = NULL;
	rq_push(sv, RP_HIDE, 'P', NULL, NULL, 0);
	rq_push(sv, RP_HIDE, 'B', NULL, NULL, 0);
	rq_push(sv, RP_PASS, 'E', NULL, NULL, 0);
	LOGF(LOG_DEBUG, cl->conn.id, "client error: %s (%s)", msg, sqlstate);
}

/* Protocol-level names are shared and renamed in transaction and statement
 * pooling; a session-mode server is the client's alone. */
static bool renaming(const struct server *sv)
{
	return sv->pool->mode != POOL_SESSION && shard_of((struct server *)sv)->cfg->max_prepared_statements > 0;
}

static void on_parse(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	const char *name = (const char *)msg + 5;
	size_t nlen = strnlen(name, len - 5);
	if (nlen == len - 5u) {
		client_fail(cl, "08P01", "invalid Parse message");
		return;
	}
	const uint8_t *body = msg + 5 + nlen + 1;
	uint32_t body_len = len - 5 - (uint32_t)nlen - 1;
	if (!*name || !renaming(sv)) {
		/* the unnamed statement lives on this server until the next Sync */
		if (sv->unnamed_fx)
			proto_sql_free(sv->unnamed_fx, 1);
		free(sv->unnamed_fx);
		sv->unnamed_fx = NULL;
		struct proto_sql_stmt fx;
		if (!*name && proto_sql_scan((const char *)body, strnlen((const char *)body, body_len), &fx, 1, NULL) == 1) {
			if ((sv->unnamed_fx = malloc(sizeof fx)))
				*sv->unnamed_fx = fx;
			else
				proto_sql_free(&fx, 1);
		}
		if (send_bytes(cl, sv, msg, len, buf))
			rq_push(sv, RP_PASS, 'P', NULL, NULL, 0);
		return;
	}
	if (!sess_get(cl)) {
		oom(cl);
		return;
	}
	if (stmt_map_get(&cl->sess->stmts, name) || params_get(&cl->sess->sqlprep, name)) {
		raise_error(cl, sv, "42P05", "prepared statement \"%s\" already exists", name);
		return;
	}
	if (cl->sess->stmts.n >= (uint32_t)shard_of(sv)->cfg->max_client_prepared_statements) {
		raise_error(cl, sv, "53400", "too many prepared statements (max_client_prepared_statements)%s", "");
		return;
	}
	struct pstmt *st = stmt_intern(&pool_shard(shard_of(sv))->stmts, body, body_len);
	char *keep = strdup(name);
	if (!st || !keep || !stmt_map_put(&cl->sess->stmts, name, st)) {
		free(keep);
		if (st)
			stmt_unref(pool_shard(shard_of(sv))->stmts, st);
		oom(cl);
		return;
	}
	if (stmt_cache_has(&sv->stmts, st->digest)) {
		free(keep);
		stat_add(&sv->pool->stats->prepares_shared, 1);
		synth(sv, '1');
		return;
	}
	make_room(cl, sv);
	if (cl->state == CL_CLOSED || !send_renamed(cl, sv, 'P', NULL, 0, st->sname, body, body_len, buf)) {
		free(keep);
		return;
	}
	stmt_cache_add(&sv->stmts, st->digest);
	rq_push(sv, RP_PASS, 'P', st, keep, RF_CLIENT_NAME);
}

/* The client's statement `name` as the server knows it: NULL and an error
 * raised if it has none. *sql_level: a SQL PREPARE, named as the client named it. */
static struct pstmt *lookup(struct client *cl, struct server *sv, const char *name, bool *sql_level)
{
	*sql_level = false;
	struct pstmt *st = cl->sess ? stmt_map_get(&cl->sess->stmts, name) : NULL;
	if (st)
		return ensure(cl, sv, st) ? st : NULL;
	if (cl->sess && params_get(&cl->sess->sqlprep, name)) {
		*sql_level = true;
		return NULL;
	}
	raise_error(cl, sv, "26000", "prepared statement \"%s\" does not exist", name);
	return NULL;
}

static struct proto_sql_stmt *fx_copy(const struct proto_sql_stmt *fx)
{
	struct proto_sql_stmt *c = malloc(sizeof *c);
	if (!c)
		return NULL;
	*c = *fx;
	c->text = NULL;
	c->index = 0;
	c->value = fx->value ? strdup(fx->value) : NULL;
	return c;
}

static void on_bind(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	const char *portal = (const char *)msg + 5;
	size_t plen = strnlen(portal, len - 5);
	const char *name = portal + plen + 1;
	if (plen + 1 >= len - 5u || strnlen(name, len - 5 - plen - 1) == len - 5 - plen - 1) {
		client_fail(cl, "08P01", "invalid Bind message");
		return;
	}
	size_t nlen = strlen(name);
	const uint8_t *rest = (const uint8_t *)name + nlen + 1;
	uint32_t rest_len = (uint32_t)(msg + len - rest);
	if (!*portal && sv->portal_fx) {
		proto_sql_free(sv->portal_fx, 1);
		free(sv->portal_fx);
		sv->portal_fx = NULL;
	}
	if (!*name || !renaming(sv)) {
		if (!*portal && !*name && sv->unnamed_fx)
			sv->portal_fx = fx_copy(sv->unnamed_fx);
		if (send_bytes(cl, sv, msg, len, buf))
			rq_push(sv, RP_PASS, 'B', NULL, NULL, 0);
		return;
	}
	bool sql_level;
	struct pstmt *st = lookup(cl, sv, name, &sql_level);
	if (!st && !sql_level)
		return;
	bool ok = st ? send_renamed(cl, sv, 'B', portal, plen + 1, st->sname, rest, rest_len, buf)
		     : send_bytes(cl, sv, msg, len, buf);
	if (!ok)
		return;
	if (st && !*portal && st->fx)
		sv->portal_fx = fx_copy(st->fx);
	rq_push(sv, RP_PASS, 'B', NULL, NULL, 0);
}

static void on_describe(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	const char *name = len > 6 ? (const char *)msg + 6 : "";
	if (len < 7 || msg[5] != 'S' || !*name || !renaming(sv)) {
		if (send_bytes(cl, sv, msg, len, buf))
			rq_push(sv, RP_PASS, 'D', NULL, NULL, 0);
		return;
	}
	bool sql_level;
	struct pstmt *st = lookup(cl, sv, name, &sql_level);
	if (!st && !sql_level)
		return;
	bool ok = st ? send_renamed(cl, sv, 'D', "S", 1, st->sname, NULL, 0, PROTO_BUF_NONE)
		     : send_bytes(cl, sv, msg, len, buf);
	if (ok)
		rq_push(sv, RP_PASS, 'D', NULL, NULL, 0);
}

static void on_close(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	const char *name = len > 6 ? (const char *)msg + 6 : "";
	struct client_sess *cs = cl->sess;
	if (len >= 7 && msg[5] == 'S' && *name && renaming(sv) && !(cs && params_get(&cs->sqlprep, name))) {
		/* the server keeps the shared statement for others; the name is gone */
		struct pstmt *st = cs ? stmt_map_take(&cs->stmts, name) : NULL;
		if (st)
			stmt_unref(pool_shard(shard_of(sv))->stmts, st);
		synth(sv, '3');
		return;
	}
	if (len >= 7 && msg[5] == 'S' && *name && cs) {
		params_remove(&cl->sess->sqlprep, name);
		params_remove(&sv->sqlprep, name);
	}
	if (send_bytes(cl, sv, msg, len, buf))
		rq_push(sv, RP_PASS, 'C', NULL, NULL, 0);
}

static void on_execute(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	if (!send_bytes(cl, sv, msg, len, buf))
		return;
	struct fx_list *l = NULL;
	if (len > 5 && msg[5] == 0 && sv->portal_fx && (l = malloc(sizeof *l + sizeof l->s[0]))) {
		/* what the unnamed portal's statement does, applied when it completes */
		l->n = 1;
		l->s[0] = *sv->portal_fx;
		l->s[0].value = sv->portal_fx->value ? strdup(sv->portal_fx->value) : NULL;
	}
	rq_push(sv, RP_PASS, 'E', NULL, l, 0);
}

static void on_query(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	const char *sql = (const char *)msg + 5;
	size_t qlen = strnlen(sql, len - 5);
	struct proto_sql_stmt fx[16];
	int nstmts = 0;
	int n = proto_sql_plain(sql, qlen) ? 0 : proto_sql_scan(sql, qlen, fx, 16, &nstmts);
	if (n == 0) {
		if (send_bytes(cl, sv, msg, len, buf))
			rq_push(sv, RP_PASS, 'Q', NULL, NULL, 0);
		return;
	}
	struct fx_list *l = malloc(sizeof *l + (size_t)n * sizeof l->s[0]);
	if (!l) {
		proto_sql_free(fx, n);
		oom(cl);
		return;
	}
	l->n = n;
	memcpy(l->s, fx, (size_t)n * sizeof fx[0]);
	for (int i = 0; i < n; i++) {
		l->s[i].text = NULL;
		if (fx[i].kind == SQL_PREPARE && !l->s[i].value)
			l->s[i].value = strndup(fx[i].text, fx[i].text_len);
	}
	struct pstmt *st;
	if (nstmts == 1 && fx[0].kind == SQL_DEALLOCATE && renaming(sv) && cl->sess &&
	    (st = stmt_map_get(&cl->sess->stmts, fx[0].name))) {
		/* DEALLOCATE of a protocol-level statement: it has the shared name here */
		if (!ensure(cl, sv, st)) {
			fx_free(l);
			return;
		}
		char q[64];
		snprintf(q, sizeof q, "DEALLOCATE %s", st->sname);
		uint8_t mem[96];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_query(&o, q);
		if (!send_built(cl, sv, &o)) {
			fx_free(l);
			return;
		}
	} else if (!send_bytes(cl, sv, msg, len, buf)) {
		fx_free(l);
		return;
	}
	if (!rq_push(sv, RP_PASS, 'Q', NULL, l, 0))
		return;
}

static int fwd_begin(void *ctx, uint8_t type, uint32_t len)
{
	struct client *cl = ctx;
	struct server *sv = cl->server;
	(void)len;
	if (!sv || cl->state != CL_ACTIVE)
		return PROTO_STOP;
	if (sv->copy_in) {
		if (type == 'S') {
			if (cl->expect)
				cl->expect--;   /* ignored by the server in COPY FROM STDIN */
			return PROTO_STREAM;
		}
		if (type == 'c' || type == 'f')
			sv->copy_in = false;
	}
	if (sv->need_sync && sv->txn_status == 'I' && type != 'S' && type != 'H' && type != 'd' && type != 'c' &&
	    type != 'f')
		fwd_restore_session(cl, sv, true);
	switch (type) {
	case 'P': case 'B': case 'D': case 'C': case 'E': case 'S': case 'Q':
		return PROTO_WHOLE;
	case 'F':
		rq_push(sv, RP_PASS, 'F', NULL, NULL, 0);
		return PROTO_STREAM;
	default:
		return PROTO_STREAM;   /* CopyData, CopyDone, CopyFail, Flush: nothing owed */
	}
}

static bool fwd_whole(void *ctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = ctx;
	struct server *sv = cl->server;
	if (!sv || cl->state != CL_ACTIVE)
		return false;
	switch (msg[0]) {
	case 'P': on_parse(cl, sv, msg, len, buf); break;
	case 'B': on_bind(cl, sv, msg, len, buf); break;
	case 'D': on_describe(cl, sv, msg, len, buf); break;
	case 'C': on_close(cl, sv, msg, len, buf); break;
	case 'E': on_execute(cl, sv, msg, len, buf); break;
	case 'Q': on_query(cl, sv, msg, len, buf); break;
	case 'S':
		if (send_bytes(cl, sv, msg, len, buf))
			rq_push(sv, RP_PASS, 'S', NULL, NULL, 0);
		break;
	default:
		send_bytes(cl, sv, msg, len, buf);
	}
	return cl->state == CL_ACTIVE && cl->server == sv;
}

static void fwd_bytes(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct client *cl = ctx;
	struct server *sv = cl->server;
	if (sv && cl->state == CL_ACTIVE)
		send_bytes(cl, sv, p, n, buf);
}

static const struct proto_frame_ops fwd_ops = {
	.begin = fwd_begin,
	.whole = fwd_whole,
	.bytes = fwd_bytes,
	.alloc = conn_frame_alloc,
	.release = conn_frame_release,
};

void fwd_feed(struct client *cl, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct server *sv = cl->server;
	int rc = proto_framer_feed(&sv->cfr, p, n, buf, &fwd_ops, cl);
	if (rc == PROTO_NO_MEMORY)
		oom(cl);
	else if (rc == PROTO_BAD_LENGTH)
		client_fail(cl, "08P01", "invalid message length");
}

static bool hidden_query(struct server *sv, const char *sql)
{
	if (!server_queue_query(sv, sql))
		return false;
	rq_push(sv, RP_HIDE, 'Q', NULL, NULL, 0);
	return true;
}

/* ---- SQL PREPAREs follow the client ---- */

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

static void sqlprep_sync(const struct client *cl, struct server *sv, struct strbuf *sb)
{
	static const struct params none;
	const struct params *mine = cl->sess ? &cl->sess->sqlprep : &none;
	if (!mine->n && !sv->sqlprep.n)
		return;
	for (int i = 0; i < sv->sqlprep.n; i++) {
		const char *text = params_get(mine, sv->sqlprep.v[i].name);
		if (text && strcmp(text, sv->sqlprep.v[i].value) == 0)
			continue;
		if (sb->len)
			strbuf_putc(sb, ';');
		strbuf_puts(sb, "DEALLOCATE ");
		append_ident(sb, sv->sqlprep.v[i].name);
	}
	for (int i = 0; i < mine->n; i++) {
		const char *have = params_get(&sv->sqlprep, mine->v[i].name);
		if (have && strcmp(have, mine->v[i].value) == 0)
			continue;
		if (sb->len)
			strbuf_putc(sb, ';');
		strbuf_puts(sb, mine->v[i].value);
	}
	params_copy(&sv->sqlprep, mine);
}

void fwd_restore_session(struct client *cl, struct server *sv, bool in_stream)
{
	sv->need_sync = false;
	struct strbuf sb = STRBUF_INIT;
	char sql[8192];
	int n = params_diff_sql(&cl->params, &sv->params, &sv->pool->defaults, sql, sizeof sql);
	if (n > 0)
		strbuf_append(&sb, sql, (size_t)n);
	else if (n < 0)
		LOGF(LOG_WARNING, cl->conn.id, "session settings too long to restore (over %zu bytes)", sizeof sql);
	sqlprep_sync(cl, sv, &sb);
	if (sb.len && !sb.failed) {
		LOGF(LOG_DEBUG, cl->conn.id, "restoring session state: %s", strbuf_str(&sb));
		stat_add(&sv->pool->stats->state_replays, 1);
		if (in_stream ? hidden_query(sv, strbuf_str(&sb)) : server_hidden_query(sv, strbuf_str(&sb)))
			params_copy(&sv->params, &cl->params);
	}
	strbuf_free(&sb);
}

/* ---- lease lifetime ---- */

void fwd_lease(struct server *sv)
{
	const struct config *cfg = shard_of(sv)->cfg;
	proto_framer_init(&sv->cfr, false, (uint32_t)cfg->max_packet_size);
	sv->lease_clock = sv->stmts.clock;
	sv->skipping = sv->need_sync = sv->cur_hide = sv->copy_in = false;
}

void fwd_end_lease(struct server *sv)
{
	while (sv->rq.n)
		rq_pop(sv);
	proto_framer_reset(&sv->cfr, &fwd_ops, sv);   /* release only needs the shard */
	if (sv->portal_fx)
		proto_sql_free(sv->portal_fx, 1);
	free(sv->portal_fx);
	sv->portal_fx = NULL;
	if (sv->unnamed_fx)
		proto_sql_free(sv->unnamed_fx, 1);
	free(sv->unnamed_fx);
	sv->unnamed_fx = NULL;
	sv->skipping = sv->need_sync = sv->cur_hide = sv->copy_in = false;
}

void fwd_server_free(struct server *sv)
{
	fwd_end_lease(sv);
	free(sv->rq.r);
	sv->rq.r = NULL;
	sv->rq.cap = 0;
	stmt_cache_free(&sv->stmts);
	params_clear(&sv->sqlprep);
}

void fwd_client_lost(struct client *cl)
{
	drop_txn_params(cl);
	cl->txn_error = cl->txn_rolled = cl->txn_uncertain = cl->txn_reset_all = false;
}

void fwd_client_free(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	params_clear(&cl->startup);
	if (cl->sess) {
		drop_txn_params(cl);
		stmt_map_clear(&cl->sess->stmts, pool_shard(s)->stmts);
		params_clear(&cl->sess->sqlprep);
		params_clear(&cl->sess->holds);
		free(cl->sess->sp);
		free(cl->sess);
		cl->sess = NULL;
	}
	if (cl->pins && cl->pool)
		gauge_add(&cl->pool->stats->cl_pinned, -1);
	cl->pins = 0;
}
