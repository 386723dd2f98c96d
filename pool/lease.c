/* pool/lease.c: one client's turn on a server (see pool/lease.h). Requests
 * arrive framed once from the client's framer: counted (ReadyForQuery owed,
 * Sync state), routed, then either sent to the server, rewritten where named
 * statements take their shared server-side names and a statement the server
 * lacks is prepared first, or held, framed, until a server is attached. The
 * replies the server owes are queued in order, so that what pgring hides, or
 * answers itself, keeps its place; a ReadyForQuery that leaves nothing owed
 * ends the lease. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "pool/admit.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/pool.h"
#include "pool/route.h"
#include "pool/server.h"
#include "pool/session.h"

#define RF_CLIENT_NAME 1   /* P: the client's name was bound when it was sent; undone on failure */
#define RF_IGNORED     4   /* S: sent while the server was in COPY FROM STDIN, which ignores it */
#define RF_UNNAMED     8   /* P: the client's own unnamed Parse */
#define RF_UNNAMED_AGAIN 16 /* P: the client's unnamed statement prepared again on this server (hidden) */
#define RF_REPLACING   32  /* P: a shared statement prepared where a stale copy was just closed */
#define RF_STALE_ERROR 64  /* E: what fails here stands for the statement's stale error (st->err) */
#define RF_COPY_END    128 /* c, f: where the client ended a COPY FROM STDIN (owes no reply) */

/* Held requests this small are copied, so that a waiting client does not pin
 * a whole receive buffer per message. */
#define HELD_COPY_MAX 512

struct fx_list {
	int n;
	struct proto_sql_stmt s[];
};

static struct shard *shard_of(const struct lease *l) { return l->client->conn.shard; }

static void oom(struct client *cl)
{
	client_fail(cl, "53200", "out of memory");
}

/* ---- the queue of replies owed ---- */

static struct reply *rq_head(struct lease *l)
{
	return l->rq.n ? &l->rq.r[l->rq.head] : NULL;
}

static void fx_free(struct fx_list *fxl)
{
	if (!fxl)
		return;
	proto_sql_free(fxl->s, fxl->n);
	free(fxl);
}

static void entry_release(struct lease *l, struct reply *r)
{
	if (r->flags & RF_UNNAMED)
		l->unnamed_inflight--;
	if (r->st)
		stmt_unref(pool_shard(shard_of(l))->stmts, r->st);
	r->st = NULL;
	if (!r->extra)
		return;   /* most entries: nothing to free */
	if ((r->type == 'Q' || r->type == 'E') && r->kind == RP_PASS)
		fx_free(r->extra);
	else
		free(r->extra);
	r->extra = NULL;
}

/* The request got no answer (skipped after an error) or failed: take back what
 * was assumed when it was sent. */
static void entry_undo(struct lease *l, struct reply *r, bool skipped)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	if (r->type == 'P' && r->st) {
		if (r->flags & RF_REPLACING)   /* the stale copy's Close may have been skipped too */
			stmt_cache_add(&sv->stmts, r->st->digest, STMT_GEN_UNKNOWN);
		else
			stmt_cache_remove(&sv->stmts, r->st->digest);
	}
	if (r->type == 'C' && r->kind == RP_HIDE && r->extra)
		stmt_cache_add(&sv->stmts, r->extra, STMT_GEN_UNKNOWN);   /* the eviction did not happen */
	if ((r->flags & RF_UNNAMED) && l->unnamed_inflight == 1) {
		/* the client's latest unnamed Parse failed (PostgreSQL drops the
		 * old unnamed statement before it parses) or was skipped */
		if (cl && cl->sess)
			stmt_map_drop_unnamed(&cl->sess->stmts);
		l->unnamed_here = false;
	}
	if (r->flags & RF_UNNAMED_AGAIN)
		l->unnamed_here = false;   /* this server has none: prepared again at the next use */
	if ((r->flags & RF_CLIENT_NAME) && cl && cl->sess) {
		struct pstmt *st = stmt_map_get(&cl->sess->stmts, r->extra);
		if (st == r->st) {
			stmt_map_take(&cl->sess->stmts, r->extra);
			stmt_unref(pool_shard(shard_of(l))->stmts, st);
		}
	}
	if (skipped && r->kind == RP_PASS && (r->type == 'Q' || r->type == 'F') && l->expect)
		l->expect--;   /* its ReadyForQuery will not come */
	if (skipped && r->kind == RP_HIDE && r->type == 'Q')
		l->need_sync = true;   /* the replay did not run */
}

static void rq_pop(struct lease *l)
{
	struct replyq *q = &l->rq;
	entry_release(l, &q->r[q->head]);
	q->head = (q->head + 1) & (q->cap - 1);
	q->n--;
	if (__builtin_expect(l->copy_data_owed, 0) && --l->copy_data_owed == 0)
		l->copy_data = false;   /* what came before the CopyData is over: so is any COPY it fed */
}

/* Room for one more entry: the queue doubles (false: no memory). */
static __attribute__((noinline)) bool rq_grow(struct replyq *q)
{
	uint32_t cap = q->cap ? q->cap * 2 : 16;
	struct reply *r = malloc(cap * sizeof *r);
	if (!r)
		return false;
	for (uint32_t i = 0; i < q->n; i++)
		r[i] = q->r[(q->head + i) & (q->cap - 1)];
	free(q->r);
	q->r = r;
	q->cap = cap;
	q->head = 0;
	return true;
}

/* The entry not queued after all (skipping to a Sync, or no memory): what it
 * held goes back. */
static __attribute__((noinline)) struct reply *rq_refuse(struct lease *l, uint8_t kind, uint8_t type,
							  struct pstmt *st, void *extra, uint32_t flags, bool skipped)
{
	struct reply tmp = { .kind = kind, .type = type, .flags = flags, .st = st, .extra = extra };
	if (skipped)
		entry_undo(l, &tmp, true);
	entry_release(l, &tmp);
	if (!skipped && l->client)
		oom(l->client);
	return NULL;
}

/* Queue what the server (or pgring) owes for one request. While the server
 * skips to the next Sync, nothing but a Sync is answered. Once per request
 * message: the rare cases are out of line. */
static inline struct reply *rq_push(struct lease *l, uint8_t kind, uint8_t type, struct pstmt *st, void *extra,
				    uint32_t flags)
{
	struct replyq *q = &l->rq;
	if (st)
		st->refs++;
	if (flags & RF_UNNAMED)
		l->unnamed_inflight++;
	if (type == 'S')
		l->skipping = false;
	else if (__builtin_expect(l->skipping, 0))
		return rq_refuse(l, kind, type, st, extra, flags, true);
	if (__builtin_expect(q->n == q->cap, 0) && !rq_grow(q))
		return rq_refuse(l, kind, type, st, extra, flags, false);
	struct reply *r = &q->r[(q->head + q->n++) & (q->cap - 1)];
	*r = (struct reply){ .kind = kind, .type = type, .flags = flags, .st = st, .extra = extra };
	return r;
}

/* Answers pgring gives itself go out once everything before them is answered. */
static void pump(struct lease *l)
{
	struct reply *h;
	while ((h = rq_head(l)) && (h->kind == RP_SYNTH || (h->flags & RF_IGNORED))) {
		uint8_t msg[5] = { h->type, 0, 0, 0, 4 };
		if (h->kind == RP_SYNTH && l->client->state != CL_CLOSED &&
		    !conn_queue(&l->client->conn, msg, sizeof msg, PROTO_BUF_NONE))
			oom(l->client);
		rq_pop(l);
	}
}

static void synth(struct lease *l, uint8_t type)
{
	if (rq_push(l, RP_SYNTH, type, NULL, NULL, 0))
		pump(l);
}

/* After an error in the extended protocol the server ignores everything up to
 * the next Sync: so do the replies owed for it. */
static void skip_until_sync(struct lease *l)
{
	struct reply *h;
	/* a Sync the server read inside a COPY (RF_IGNORED) does not end it */
	while ((h = rq_head(l)) && (h->type != 'S' || (h->flags & RF_IGNORED))) {
		entry_undo(l, h, true);
		rq_pop(l);
	}
	if (!h)
		l->skipping = true;
}

/* A request the server reads inside a COPY FROM STDIN: PostgreSQL fails the
 * COPY with an ERROR and drops the request unanswered. pgring closes the
 * client instead: in general it cannot tell which requests the server will
 * read inside the COPY (see copy_refuses), and so which replies are owed. */
static void copy_misuse(struct lease *l, uint8_t type)
{
	stat_add(&shard_of(l)->stats->protocol_errors, 1);
	/* the server ends its session on reading it ("protocol synchronization
	 * was lost"), maybe after its replies so far let the client's lease end:
	 * it must not go back to the pool meanwhile */
	if (l->server)
		l->server->close_when_idle = true;
	client_fail(l->client, "08P01", "unexpected message type 0x%02X during COPY from stdin", type);
}

/* Requests between a CopyData and its CopyDone or CopyFail: the server reads
 * one inside the COPY (a Sync or Flush ignored, anything else failing the COPY
 * unanswered) or, if a row before it failed the COPY, as a request of its own,
 * answered. Which one cannot be known here, so neither can the replies owed:
 * only a Flush passes. Once the server is known to be in the COPY with no data
 * sent yet, a Sync's fate is known too (ignored, see send_whole). */
static bool copy_refuses(struct lease *l, uint8_t type)
{
	if (type == 'H' || (!l->copy_data && type == 'S'))
		return false;
	copy_misuse(l, type);
	return true;
}

static inline bool terminal(uint8_t request, uint8_t reply)
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

/* Nothing owed and no request half sent: the server may go back. */
static bool lease_idle(const struct lease *l)
{
	return l->rq.n == 0 && !(l->sending && !proto_framer_idle(&l->client->conn.fr));
}

static struct server *detach(struct lease *l);
static void forget_server_state(struct lease *l);

bool lease_at_rest(const struct lease *l)
{
	return lease_idle(l) && !l->sending && !l->rerouting && !l->held.n && !l->later.n && !l->expect &&
	       !l->unsynced && !l->sent_unsynced && !l->skipping && !l->need_sync && !l->copy_in && !l->copy_data &&
	       !l->unnamed_inflight && !l->reply_passing && !l->reply_left && !l->cur_hide;
}

struct server *lease_give_up_server(struct lease *l)
{
	return detach(l);
}

void lease_adopt_server(struct lease *l, struct server *sv)
{
	struct client *cl = l->client;
	INVARIANT(!l->server && !sv->lease && sv->state == SV_ACTIVE && l->rq.n == 0);
	l->server = sv;
	sv->lease = l;
	client_set_state(cl, CL_ACTIVE);
	l->clock = sv->stmts.clock;
	forget_server_state(l);
	l->unnamed_here = true;   /* the session's own: whatever it holds is the client's */
}

/* ---- replies from the server ---- */

/* Whether the server may send this now: a ReadyForQuery only ends a Sync,
 * Query or FunctionCall, and with nothing owed only a notice, a notification,
 * a parameter's new value or a FATAL may come. */
static bool reply_in_step(struct lease *l, uint8_t type, const uint8_t *msg, uint32_t len)
{
	struct reply *h = rq_head(l);
	if (type == 'N' || type == 'A' || type == 'S')
		return true;
	if (h)
		return type != 'Z' || h->type == 'S' || h->type == 'Q' || h->type == 'F';
	if (type != 'E' || !msg)
		return false;
	struct proto_error_fields f;
	proto_parse_error(msg + 5, len - 5, &f);
	return proto_error_fatal(&f);
}

/* The server answered something nobody asked: pgring and the server are out
 * of step (a bug in pgring's accounting, or a server gone wrong). Nothing it
 * sends can be trusted to reach the right client any more, nor can anything
 * already passed: the server is closed and its client with it. */
static void out_of_step(struct lease *l, uint8_t type)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	struct reply *h = rq_head(l);
	LOGF(LOG_ERROR, sv->conn.id, "server sent '%c' while %s%c%s was owed: out of step, closing it and its client", type,
	     h ? "a reply to '" : "", h ? h->type : '-', h ? "'" : " (nothing)");
	stat_add(&shard_of(l)->stats->protocol_errors, 1);
	snprintf(sv->fatal_state, sizeof sv->fatal_state, "08P01");
	snprintf(sv->fatal_msg, sizeof sv->fatal_msg, "server connection out of step with pgring");
	server_close(sv, NULL);
	client_fail(cl, "08P01", "server connection out of step with pgring");
}

int lease_reply_begin(struct lease *l, uint8_t type, uint32_t len)
{
	bool small = len <= BUF_SCRATCH_SIZE / 2;
	if (type == 'D' || type == 'd' || ((type == 'N' || type == 'A' || type == 'V') && !small)) {
		struct reply *h = rq_head(l);
		if (__builtin_expect(!h, 0) && !reply_in_step(l, type, NULL, 0)) {
			out_of_step(l, type);
			return PROTO_STOP;
		}
		l->cur_hide = h && h->kind == RP_HIDE && type != 'A';
		l->reply_passing = !l->cur_hide && l->client->state != CL_CLOSED;
		l->reply_left = len;
		return PROTO_STREAM;
	}
	l->cur_hide = false;
	return PROTO_WHOLE;   /* everything that ends a request is looked at whole */
}

static bool reply_passes(struct lease *l, const uint8_t *msg, uint32_t len)
{
	struct server *sv = l->server;
	(void)len;
	struct reply *h = rq_head(l);
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

/* A COMMIT or ROLLBACK completed: what its transaction did to the session is
 * settled now rather than at the ReadyForQuery, because what follows it in the
 * same Query or extended-protocol batch runs in a transaction of its own, whose
 * failure does not undo it (and whose settings a ROLLBACK before it does not).
 * Every CommandComplete is looked at: the first letter spares the calls (a
 * libc strcmp is ~46 instructions on this path, measured by callgrind). */
static void txn_end_tag(struct lease *l, const char *tag, bool to_savepoint)
{
	if (tag[0] == 'R' && !to_savepoint && strcmp(tag, "ROLLBACK") == 0) {
		l->txn_rolled = true;
		session_ready(l, 'I');
	} else if ((tag[0] == 'C' && strcmp(tag, "COMMIT") == 0) ||
		   (tag[0] == 'P' && strcmp(tag, "PREPARE TRANSACTION") == 0)) {
		session_ready(l, 'I');
	}
}

static void command_complete(struct lease *l, struct reply *h, const uint8_t *msg, uint32_t len)
{
	struct client *cl = l->client;
	const char *tag = len > 5 ? (const char *)msg + 5 : "";
	uint16_t index = h->ncc++;
	if (h->kind != RP_PASS || !cl)
		return;
	struct fx_list *fxl = h->extra;
	bool to_savepoint = false;
	for (int i = 0; fxl && i < fxl->n; i++) {
		if (fxl->s[i].index == index) {
			to_savepoint |= fxl->s[i].kind == SQL_ROLLBACK_TO;
			session_apply(l, &fxl->s[i], tag);
		}
	}
	txn_end_tag(l, tag, to_savepoint);
}

/* A Bind or Describe of a shared statement failed: if the server's copy is
 * stale, every copy of the shard is (stmt_mark_stale). Only errors get here,
 * so the common path costs nothing. Cross-shard: each shard has its own
 * records and learns on its own first error. */
static void stale_check(struct lease *l, struct pstmt *st, const uint8_t *msg, uint32_t len)
{
	struct proto_error_fields f;
	proto_parse_error(msg + 5, len - 5, &f);
	enum stmt_stale kind = stmt_stale_kind(f.sqlstate);
	if (kind == STMT_STALE_NO || !stmt_mark_stale(pool_shard(shard_of(l))->stmts, st, &l->server->stmts, kind, msg, len))
		return;
	if (kind == STMT_STALE_FIXED)
		LOGF(LOG_INFO, l->server->conn.id, "prepared statement %s is stale (%s %s): prepared again where it is next used",
		     st->sname, f.sqlstate, f.message);
	else
		LOGF(LOG_DEBUG, l->server->conn.id, "prepared statement %s may be stale (%s %s): its next Parse gets a fresh copy",
		     st->sname, f.sqlstate, f.message);
}

static void reply_done(struct lease *l, const uint8_t *msg, uint32_t len)
{
	struct server *sv = l->server;
	struct reply *h = rq_head(l);
	uint8_t t = msg[0];
	struct client *cl = l->client;
	if (!h || t == 'A' || t == 'N' || t == 'S')
		return;
	if (__builtin_expect(t == 'C' && cl && cl->adm && cl->adm->rows, 0))
		admit_rows(cl, msg, len);
	if (t == 'C' && h->type == 'Q') {
		command_complete(l, h, msg, len);
		return;
	}
	if (t == 'G' && (h->type == 'E' || h->type == 'Q')) {
		/* COPY FROM STDIN: the server ignores Syncs until the client's
		 * CopyDone or CopyFail, so those sent before it get no answer (and
		 * those sent after it do) */
		l->copy_in = true;
		for (uint32_t i = 1; i < l->rq.n; i++) {
			struct reply *r = &l->rq.r[(l->rq.head + i) & (l->rq.cap - 1)];
			if (r->flags & RF_COPY_END) {
				l->copy_in = false;   /* the client has ended it already */
				break;
			}
			if (r->kind == RP_SYNTH || (r->flags & RF_IGNORED))
				continue;
			if (r->type != 'S') {
				/* read inside the COPY, it fails it unanswered (copy_refuses) */
				copy_misuse(l, r->type);
				return;
			}
			r->flags |= RF_IGNORED;
			if (r->kind == RP_PASS && l->expect)
				l->expect--;
		}
		return;
	}
	if ((h->type == 'E' || h->type == 'Q') && (t == 'C' || t == 'E'))
		l->copy_in = false;
	if (t == 'E') {
		if (h->kind == RP_PASS || h->type == 'P')
			l->txn_error = true;
		if (h->type == 'Q' || h->type == 'S' || h->type == 'F')
			return;   /* ReadyForQuery ends these */
		if ((h->type == 'B' || h->type == 'D') && h->st && h->kind == RP_PASS && !(h->flags & RF_STALE_ERROR))
			stale_check(l, h->st, msg, len);
		entry_undo(l, h, false);
		rq_pop(l);
		skip_until_sync(l);
		pump(l);
		return;
	}
	if (!terminal(h->type, t))
		return;
	if (h->type == 'E' && t == 'C' && cl && h->kind == RP_PASS) {
		const char *tag = len > 5 ? (const char *)msg + 5 : "";
		struct fx_list *fxl = h->extra;
		if (fxl)
			session_apply(l, &fxl->s[0], tag);
		txn_end_tag(l, tag, fxl && fxl->s[0].kind == SQL_ROLLBACK_TO);
	}
	if (t == '3' && h->type == 'C' && h->kind == RP_PASS && h->extra)
		session_sqlprep_closed(l, h->extra);
	bool restored = t == 'Z' && h->kind == RP_HIDE && h->type == 'Q';
	if (t == 'Z' && h->kind == RP_HIDE) {
		sv->txn_status = len >= 6 ? (char)msg[5] : 'I';
		sv->last_rfq_us = sv->conn.shard->now_us;
	}
	rq_pop(l);
	pump(l);
	if (restored && cl && cl->cancel_held)
		client_cancel_due(cl);   /* a restore between requests is over: the client's runs now */
}

/* ---- requests on their way to the server ---- */

static inline bool send_bytes(struct lease *l, const void *p, uint32_t n, uint32_t buf)
{
	if (__builtin_expect(conn_queue(&l->server->conn, p, n, buf), 1))
		return true;
	oom(l->client);
	return false;
}

/* A message with one name replaced: head (type, the parts before the name),
 * the new name, then the untouched rest from the client's buffer. */
static bool send_renamed(struct lease *l, uint8_t type, const char *before, size_t before_len,
			 const char *name, const uint8_t *rest, uint32_t rest_len, uint32_t buf)
{
	uint8_t hdr[5 + SQL_NAME_MAX + STMT_SNAME_LEN + 4];
	size_t nlen = strlen(name) + 1;
	if (before_len + nlen + 5 > sizeof hdr)
		return send_bytes(l, NULL, 0, PROTO_BUF_NONE);
	uint32_t total = (uint32_t)(4 + before_len + nlen + rest_len);
	hdr[0] = type;
	hdr[1] = (uint8_t)(total >> 24);
	hdr[2] = (uint8_t)(total >> 16);
	hdr[3] = (uint8_t)(total >> 8);
	hdr[4] = (uint8_t)total;
	if (before_len)
		memcpy(hdr + 5, before, before_len);
	memcpy(hdr + 5 + before_len, name, nlen);
	return send_bytes(l, hdr, (uint32_t)(5 + before_len + nlen), PROTO_BUF_NONE) &&
	       (rest_len == 0 || send_bytes(l, rest, rest_len, buf));
}

/* A whole message built here. */
static bool send_built(struct lease *l, struct proto_out *o)
{
	struct client *cl = l->client;
	if (o->overflow) {
		oom(cl);
		return false;
	}
	return send_bytes(l, o->p, (uint32_t)o->len, PROTO_BUF_NONE);
}

/* Room for one more statement on the server: close the least recently used
 * one that this lease has not touched. */
static void make_room(struct lease *l)
{
	struct server *sv = l->server;
	int max = sv->conn.shard->cfg->max_prepared_statements;
	uint8_t d[STMT_DIGEST_LEN];
	while (sv->stmts.n >= (uint32_t)max && stmt_cache_victim(&sv->stmts, l->clock, d)) {
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
		if (!keep || !send_built(l, &o)) {
			free(keep);
			return;
		}
		memcpy(keep, d, STMT_DIGEST_LEN);
		stmt_cache_remove(&sv->stmts, d);
		rq_push(l, RP_HIDE, 'C', NULL, keep, 0);
		LOGF(LOG_DEBUG, sv->conn.id, "evicting prepared statement %s (max_prepared_statements)", sname);
	}
}

/* The server's copy of st is of an older generation: close it, hidden, so
 * that st can be prepared again under the same name. */
static bool close_stale(struct lease *l, struct pstmt *st)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'C');
	proto_put_u8(&o, 'S');
	proto_put_str(&o, st->sname);
	proto_end(&o);
	if (!send_built(l, &o))
		return false;
	rq_push(l, RP_HIDE, 'C', NULL, NULL, 0);
	LOGF(LOG_DEBUG, l->server->conn.id, "closing stale prepared statement %s", st->sname);
	return true;
}

/* Room for st on the server, or its stale copy gone: false if the client failed. */
static bool make_way(struct lease *l, struct pstmt *st, enum stmt_copy have)
{
	if (have == STMT_COPY_STALE)
		return close_stale(l, st);
	make_room(l);
	return l->client->state != CL_CLOSED;
}

/* Make sure the server has st prepared under its shared name. */
static bool ensure(struct lease *l, struct pstmt *st)
{
	struct server *sv = l->server;
	enum stmt_copy have = stmt_cache_copy(&sv->stmts, st);
	if (have == STMT_COPY_CURRENT)
		return true;
	if (!make_way(l, st, have))
		return false;
	uint32_t len = (uint32_t)(4 + strlen(st->sname) + 1 + st->body_len);
	uint8_t hdr[5];
	hdr[0] = 'P';
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
	if (!send_bytes(l, hdr, 5, PROTO_BUF_NONE) ||
	    !send_bytes(l, st->sname, (uint32_t)strlen(st->sname) + 1, PROTO_BUF_NONE) ||
	    !send_bytes(l, st->body, st->body_len, PROTO_BUF_NONE))
		return false;
	stmt_cache_add(&sv->stmts, st->digest, stmt_gen_now());
	rq_push(l, RP_HIDE, 'P', st, NULL, have == STMT_COPY_STALE ? RF_REPLACING : 0);
	stat_add(&sv->pool->stats->prepares_injected, 1);
	return true;
}

/* What the unnamed statement does to the session: forgotten. */
static void unnamed_fx_clear(struct lease *l)
{
	if (l->unnamed_fx)
		proto_sql_free(l->unnamed_fx, 1);
	free(l->unnamed_fx);
	l->unnamed_fx = NULL;
}

/* An error pgring finds itself in the client's extended-protocol stream: the
 * server raises it, so that the transaction is aborted and the rest up to Sync
 * is skipped exactly as PostgreSQL would. With st, the error stands for st's
 * stale error, which the client gets instead, byte for byte. */
static void raise_as(struct lease *l, const char *sqlstate, const char *fmt, const char *arg, struct pstmt *st)
{
	struct client *cl = l->client;
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
	if (!send_built(l, &o))
		return;
	unnamed_fx_clear(l);
	l->unnamed_here = false;   /* the server's unnamed statement is now the raise */
	l->portal_gone = false;    /* ... and its unnamed portal */
	rq_push(l, RP_HIDE, 'P', NULL, NULL, 0);
	rq_push(l, RP_HIDE, 'B', NULL, NULL, 0);
	rq_push(l, RP_PASS, 'E', st, NULL, st ? RF_STALE_ERROR : 0);
	LOGF(LOG_DEBUG, cl->conn.id, "client error: %s (%s)", msg, sqlstate);
}

static void raise_error(struct lease *l, const char *sqlstate, const char *fmt, const char *arg)
{
	raise_as(l, sqlstate, fmt, arg, NULL);
}

/* The client's name was bound before its statement went stale: it fails as
 * the client's own statement would on PostgreSQL, with the error the first
 * stale copy gave. */
static void raise_stale(struct lease *l, struct pstmt *st)
{
	struct proto_error_fields f;
	proto_parse_error(st->err + 5, st->err_len - 5, &f);
	char code[6];
	snprintf(code, sizeof code, "%s", *f.sqlstate ? f.sqlstate : "0A000");
	for (char *c = code; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z')))
			*c = '0';   /* it goes into SQL */
	raise_as(l, code, "%s", "cached plan must not change result type", st);
}

/* Protocol-level names are shared and renamed in transaction and statement
 * pooling; a session-mode server is the client's alone. */
static bool renaming(const struct server *sv)
{
	return sv->pool->mode != POOL_SESSION && sv->conn.shard->cfg->max_prepared_statements > 0;
}

/* What the unnamed statement (body: its Parse after the name) does to the
 * session, for the Binds of it. false: the client failed. */
static bool unnamed_fx_scan(struct lease *l, const uint8_t *body, uint32_t body_len)
{
	unnamed_fx_clear(l);
	struct proto_sql_stmt fx;
	const char *sql = (const char *)body;
	size_t sql_len = strnlen(sql, body_len);
	/* the pre-check first, as for a Query: the scan costs ~2,400
	 * instructions for pgbench's SELECT, the pre-check ~300 (callgrind) */
	if (proto_sql_plain(sql, sql_len) || proto_sql_scan(sql, sql_len, &fx, 1, NULL) != 1)
		return true;
	if (!(l->unnamed_fx = malloc(sizeof fx))) {
		proto_sql_free(&fx, 1);
		oom(l->client);
		return false;
	}
	*l->unnamed_fx = fx;
	return true;
}

/* The client's unnamed statement is gone (simple Query, Close). */
static void unnamed_gone(struct lease *l)
{
	struct client *cl = l->client;
	if (cl->sess)
		stmt_map_drop_unnamed(&cl->sess->stmts);
	unnamed_fx_clear(l);
}

/* A Bind or Describe of the unnamed statement is about to go: the server must
 * hold the client's, prepared again (hidden) if this lease has not sent it
 * here, or none at all, so that the server's own "does not exist" answers,
 * never what another client left there. false: the client failed. */
static bool unnamed_ready(struct lease *l)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	if (l->unnamed_here)
		return true;
	const struct stmt_map *m = cl->sess ? &cl->sess->stmts : NULL;
	if (!m || !m->unnamed) {
		uint8_t mem[16];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_begin(&o, 'C');
		proto_put_u8(&o, 'S');
		proto_put_str(&o, "");
		proto_end(&o);
		if (!send_built(l, &o))
			return false;
		rq_push(l, RP_HIDE, 'C', NULL, NULL, 0);
		l->unnamed_here = true;
		return true;
	}
	uint32_t total = (uint32_t)(4 + 1 + m->unnamed_len);
	uint8_t hdr[6] = { 'P', (uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8), (uint8_t)total, 0 };
	if (!send_bytes(l, hdr, sizeof hdr, PROTO_BUF_NONE) ||
	    !send_bytes(l, m->unnamed_body, m->unnamed_len, PROTO_BUF_NONE))
		return false;
	rq_push(l, RP_HIDE, 'P', NULL, NULL, RF_UNNAMED_AGAIN);
	l->unnamed_here = true;
	stat_add(&sv->pool->stats->prepares_injected, 1);
	LOGF(LOG_DEBUG, sv->conn.id, "the client's unnamed statement prepared again");
	if (m->unnamed_plain) {
		unnamed_fx_clear(l);
		return true;
	}
	return unnamed_fx_scan(l, m->unnamed_body, m->unnamed_len);
}

static void on_parse(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	const char *name = (const char *)msg + 5;
	size_t nlen = strnlen(name, len - 5);
	if (nlen == len - 5u) {
		client_fail(cl, "08P01", "invalid Parse message");
		return;
	}
	const uint8_t *body = msg + 5 + nlen + 1;
	uint32_t body_len = len - 5 - (uint32_t)nlen - 1;
	if (!*name || !renaming(sv)) {
		uint32_t flags = 0;
		if (!*name && renaming(sv) &&
		    (cl->sess ? cl->sess->stmts.bytes : 0) + body_len > (uint64_t)sv->conn.shard->cfg->max_client_prepared_size) {
			/* kept as long as the client's other statements are */
			LOGF(LOG_INFO, cl->conn.id, "unnamed Parse of %u bytes refused: over max_client_prepared_size (%d)",
			     len, sv->conn.shard->cfg->max_client_prepared_size);
			raise_error(l, "53400", "prepared statements too large: this one would bring the client's to more "
				    "than max_client_prepared_size%s", "");
			return;
		}
		/* a client that parses the same text again (pgbench -M extended,
		 * most drivers' unnamed statements): what it does is known */
		struct stmt_map *m = !*name && renaming(sv) && cl->sess ? &cl->sess->stmts : NULL;
		bool again = m && m->unnamed && m->unnamed_plain && m->unnamed_len == body_len &&
			     memcmp(m->unnamed_body, body, body_len) == 0;
		if (again)
			unnamed_fx_clear(l);
		else if (!*name && !unnamed_fx_scan(l, body, body_len))
			return;
		if (!*name && renaming(sv)) {
			/* kept for the servers this client's later requests land on */
			if (!again && (!session_get(cl) || !stmt_map_set_unnamed(&cl->sess->stmts, body, body_len))) {
				oom(cl);
				return;
			}
			cl->sess->stmts.unnamed_plain = !l->unnamed_fx;
			l->unnamed_here = true;
			flags = RF_UNNAMED;
		}
		if (send_bytes(l, msg, len, buf))
			rq_push(l, RP_PASS, 'P', NULL, NULL, flags);
		return;
	}
	if (!session_get(cl)) {
		oom(cl);
		return;
	}
	if (stmt_map_get(&cl->sess->stmts, name) || params_get(&cl->sess->sqlprep, name)) {
		raise_error(l, "42P05", "prepared statement \"%s\" already exists", name);
		return;
	}
	if (cl->sess->stmts.n >= (uint32_t)sv->conn.shard->cfg->max_client_prepared_statements) {
		raise_error(l, "53400", "too many prepared statements (max_client_prepared_statements)%s", "");
		return;
	}
	if (cl->sess->stmts.bytes + nlen + 1 + body_len > (uint64_t)sv->conn.shard->cfg->max_client_prepared_size) {
		LOGF(LOG_INFO, cl->conn.id, "Parse of %u bytes refused: over max_client_prepared_size (%d)", len,
		     sv->conn.shard->cfg->max_client_prepared_size);
		raise_error(l, "53400", "prepared statements too large: this one would bring the client's to more "
			    "than max_client_prepared_size%s", "");
		return;
	}
	struct pstmt *st = stmt_intern(&pool_shard(shard_of(l))->stmts, body, body_len);
	char *keep = strdup(name);
	if (!st || !keep || !stmt_map_put(&cl->sess->stmts, name, st)) {
		free(keep);
		if (st)
			stmt_unref(pool_shard(shard_of(l))->stmts, st);
		oom(cl);
		return;
	}
	enum stmt_copy have = stmt_cache_copy(&sv->stmts, st);
	if (have == STMT_COPY_CURRENT) {
		free(keep);
		stat_add(&sv->pool->stats->prepares_shared, 1);
		synth(l, '1');
		return;
	}
	/* a stale copy is replaced: the client's Parse gets a fresh plan, as
	 * its own new statement would on PostgreSQL */
	if (!make_way(l, st, have) || !send_renamed(l, 'P', NULL, 0, st->sname, body, body_len, buf)) {
		free(keep);
		return;
	}
	stmt_cache_add(&sv->stmts, st->digest, stmt_gen_now());
	rq_push(l, RP_PASS, 'P', st, keep, RF_CLIENT_NAME | (have == STMT_COPY_STALE ? RF_REPLACING : 0));
}

/* The client's statement `name` as the server knows it: NULL and an error
 * raised if it has none. *sql_level: a SQL PREPARE, named as the client named it. */
/* An SQL PREPARE of the name is on its way, not answered yet (the record of it
 * is made at its CommandComplete): the server has it when it reads what the
 * client sent behind it. */
static bool sqlprep_in_flight(const struct lease *l, const char *name)
{
	for (uint32_t i = 0; i < l->rq.n; i++) {
		const struct reply *r = &l->rq.r[(l->rq.head + i) & (l->rq.cap - 1)];
		const struct fx_list *fxl = r->extra;
		if (r->kind != RP_PASS || (r->type != 'Q' && r->type != 'E') || !fxl)
			continue;
		for (int k = 0; k < fxl->n; k++)
			if (fxl->s[k].kind == SQL_PREPARE && strcmp(fxl->s[k].name, name) == 0)
				return true;
	}
	return false;
}

static struct pstmt *lookup(struct lease *l, const char *name, bool *sql_level)
{
	struct client *cl = l->client;
	*sql_level = false;
	const struct stmt_entry *e = cl->sess ? stmt_map_entry(&cl->sess->stmts, name) : NULL;
	if (e) {
		struct pstmt *st = e->st;
		if (stmt_entry_stale(e)) {
			raise_stale(l, st);
			return NULL;
		}
		return ensure(l, st) ? st : NULL;
	}
	if ((cl->sess && params_get(&cl->sess->sqlprep, name)) || sqlprep_in_flight(l, name)) {
		*sql_level = true;
		return NULL;
	}
	raise_error(l, "26000", "prepared statement \"%s\" does not exist", name);
	return NULL;
}

/* A statement's effect kept beyond the message it came in; false: no memory. */
static bool fx_keep(struct proto_sql_stmt *dst, const struct proto_sql_stmt *src)
{
	*dst = *src;
	dst->text = NULL;
	dst->index = 0;
	dst->value = src->value ? strdup(src->value) : NULL;
	return !src->value || dst->value;
}

/* The unnamed portal takes the effect of the statement it was bound to. */
static bool keep_portal_fx(struct lease *l, const struct proto_sql_stmt *fx)
{
	l->portal_fx = malloc(sizeof *l->portal_fx);
	if (l->portal_fx && fx_keep(l->portal_fx, fx))
		return true;
	free(l->portal_fx);
	l->portal_fx = NULL;
	oom(l->client);
	return false;
}

static void on_bind(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
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
	if (!*portal)
		l->portal_gone = false;
	if (!*portal && l->portal_fx) {
		proto_sql_free(l->portal_fx, 1);
		free(l->portal_fx);
		l->portal_fx = NULL;
	}
	if (!*name || !renaming(sv)) {
		if (!*name && renaming(sv) && !unnamed_ready(l))
			return;
		if (!*portal && !*name && l->unnamed_fx && !keep_portal_fx(l, l->unnamed_fx))
			return;
		if (send_bytes(l, msg, len, buf))
			rq_push(l, RP_PASS, 'B', NULL, NULL, 0);
		return;
	}
	bool sql_level;
	struct pstmt *st = lookup(l, name, &sql_level);
	if (!st && !sql_level)
		return;
	bool ok = st ? send_renamed(l, 'B', portal, plen + 1, st->sname, rest, rest_len, buf)
		     : send_bytes(l, msg, len, buf);
	if (!ok)
		return;
	if (st && !*portal && st->fx && !keep_portal_fx(l, st->fx))
		return;
	rq_push(l, RP_PASS, 'B', st, NULL, 0);   /* st: its error may say the plan is stale */
}

/* An Execute or Describe of the unnamed portal after a simple Query and before
 * a Bind of it: the Query destroyed that portal (the protocol says so), but
 * PostgreSQL 15 keeps one whose Query failed inside a transaction block, its
 * plan in memory already freed, and executing it crashes the backend and with
 * it every session of the cluster (e.g. BEGIN; DISCARD ALL; SELECT 1; then
 * Execute ""). The client gets what the protocol promises instead. */
static bool portal_gone(struct lease *l, const char *portal)
{
	if (*portal || !l->portal_gone)
		return false;
	raise_error(l, "34000", "portal \"%s\" does not exist", "");
	return true;
}

static void on_describe(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct server *sv = l->server;
	const char *name = len > 6 ? (const char *)msg + 6 : "";
	if (len >= 7 && msg[5] == 'P' && portal_gone(l, name))
		return;
	if (len < 7 || msg[5] != 'S' || !*name || !renaming(sv)) {
		if (len >= 7 && msg[5] == 'S' && !*name && renaming(sv) && !unnamed_ready(l))
			return;
		if (send_bytes(l, msg, len, buf))
			rq_push(l, RP_PASS, 'D', NULL, NULL, 0);
		return;
	}
	bool sql_level;
	struct pstmt *st = lookup(l, name, &sql_level);
	if (!st && !sql_level)
		return;
	bool ok = st ? send_renamed(l, 'D', "S", 1, st->sname, NULL, 0, PROTO_BUF_NONE)
		     : send_bytes(l, msg, len, buf);
	if (ok)
		rq_push(l, RP_PASS, 'D', st, NULL, 0);
}

static void on_close(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	const char *name = len > 6 ? (const char *)msg + 6 : "";
	struct client_sess *cs = cl->sess;
	bool sql_level = len >= 7 && msg[5] == 'S' && *name &&
			 ((cs && params_get(&cs->sqlprep, name)) || sqlprep_in_flight(l, name));
	if (len >= 7 && msg[5] == 'S' && *name && renaming(sv) && !sql_level) {
		/* the server keeps the shared statement for others; the name is gone */
		struct pstmt *st = cs ? stmt_map_take(&cs->stmts, name) : NULL;
		if (st)
			stmt_unref(pool_shard(shard_of(l))->stmts, st);
		synth(l, '3');
		return;
	}
	char *sql_name = NULL;
	if (sql_level && !(sql_name = strdup(name))) {
		oom(cl);
		return;
	}
	if (len >= 7 && msg[5] == 'S' && !*name && renaming(sv)) {
		/* the server's unnamed statement, whoever's, goes: so does the client's */
		unnamed_gone(l);
		l->unnamed_here = true;
	}
	/* an SQL PREPARE's name is gone at the CloseComplete, in the server's
	 * order: a PREPARE of it still running completes first */
	if (send_bytes(l, msg, len, buf))
		rq_push(l, RP_PASS, 'C', NULL, sql_name, 0);
	else
		free(sql_name);
}

static void on_execute(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	if (len > 5 && portal_gone(l, (const char *)msg + 5))
		return;
	if (!send_bytes(l, msg, len, buf))
		return;
	struct fx_list *fxl = NULL;
	if (len > 5 && msg[5] == 0 && l->portal_fx) {
		/* what the unnamed portal's statement does, applied when it completes */
		fxl = malloc(sizeof *fxl + sizeof fxl->s[0]);
		if (!fxl || !fx_keep(&fxl->s[0], l->portal_fx)) {
			free(fxl);
			oom(l->client);
			return;
		}
		fxl->n = 1;
	}
	rq_push(l, RP_PASS, 'E', NULL, fxl, 0);
}

/* The most statements changing session state (SET, PREPARE, LISTEN, ...) one
 * simple Query may carry: each costs a record until it completes, and the
 * session records hold PARAMS_MAX entries anyway. */
#define QUERY_EFFECTS_MAX PARAMS_MAX

/* Answer a simple Query with an ERROR (and ReadyForQuery) from the server,
 * instead of running it. */
static void raise_query(struct lease *l, const char *sqlstate, const char *msg)
{
	char sql[512];
	snprintf(sql, sizeof sql, "DO $pgring$BEGIN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = '%s'; END$pgring$",
		 sqlstate, msg);
	uint8_t mem[sizeof sql + 16];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, sql);
	if (send_built(l, &o))
		rq_push(l, RP_PASS, 'Q', NULL, NULL, 0);
	LOGF(LOG_DEBUG, l->client->conn.id, "client error: %s (%s)", msg, sqlstate);
}

static void on_query(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	const char *sql = (const char *)msg + 5;
	/* a simple Query destroys the unnamed statement, the server's and so
	 * the client's, as on PostgreSQL, and the unnamed portal */
	unnamed_gone(l);
	l->portal_gone = true;
	l->unnamed_here = true;
	struct proto_sql_stmt local[16], *fx = local;
	int nstmts = 0, n = 0;
	size_t qlen = 0;
	/* The pre-check reads the whole string up to the message's final NUL,
	 * without a strnlen first (~35 instructions): with a NUL inside, the
	 * server runs nothing ("invalid message format"), and the bytes after
	 * it only make the pre-check more careful. The scan reads up to the
	 * first NUL, as the server would. */
	if (len < 6 || msg[len - 1] != 0 || !proto_sql_plain(sql, len - 6)) {
		qlen = strnlen(sql, len - 5);
		n = proto_sql_scan(sql, qlen, fx, 16, &nstmts);
	}
	if (n == 16 && nstmts > 16) {
		/* rare: more statements that change the session than the stack
		 * takes; every one must be followed, up to QUERY_EFFECTS_MAX */
		int cap = nstmts > QUERY_EFFECTS_MAX ? QUERY_EFFECTS_MAX + 1 : nstmts;
		proto_sql_free(fx, n);
		if (!(fx = malloc((size_t)cap * sizeof *fx))) {
			oom(cl);
			return;
		}
		n = proto_sql_scan(sql, qlen, fx, cap, NULL);
		if (n > QUERY_EFFECTS_MAX) {
			proto_sql_free(fx, n);
			free(fx);
			LOGF(LOG_INFO, cl->conn.id, "Query with more than %d statements changing session state refused",
			     QUERY_EFFECTS_MAX);
			raise_query(l, "54000", "too many statements changing session state in one query (at most 4096)");
			return;
		}
	}
	if (n == 0) {
		if (send_bytes(l, msg, len, buf))
			rq_push(l, RP_PASS, 'Q', NULL, NULL, 0);
		return;
	}
	struct fx_list *fxl = malloc(sizeof *fxl + (size_t)n * sizeof fxl->s[0]);
	if (!fxl) {
		proto_sql_free(fx, n);
		if (fx != local)
			free(fx);
		oom(cl);
		return;
	}
	fxl->n = n;
	memcpy(fxl->s, fx, (size_t)n * sizeof fx[0]);
	for (int i = 0; i < n; i++) {
		fxl->s[i].text = NULL;
		if (fx[i].kind == SQL_PREPARE && !fxl->s[i].value)
			fxl->s[i].value = strndup(fx[i].text, fx[i].text_len);
	}
	if (fx != local) {
		free(fx);
		fx = fxl->s;   /* the records are fxl's now (kind and name unchanged) */
	}
	struct pstmt *st;
	if (nstmts == 1 && fx[0].kind == SQL_DEALLOCATE && renaming(sv) && cl->sess &&
	    (st = stmt_map_get(&cl->sess->stmts, fx[0].name))) {
		/* DEALLOCATE of a protocol-level statement: it has the shared name here */
		if (!ensure(l, st)) {
			fx_free(fxl);
			return;
		}
		char q[64];
		snprintf(q, sizeof q, "DEALLOCATE %s", st->sname);
		uint8_t mem[96];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_query(&o, q);
		if (!send_built(l, &o)) {
			fx_free(fxl);
			return;
		}
	} else if (!send_bytes(l, msg, len, buf)) {
		fx_free(fxl);
		return;
	}
	rq_push(l, RP_PASS, 'Q', NULL, fxl, 0);
}

/* ---- a request on its way to the server ---- */

/* pgring's own query in order with the client's requests (a session restore
 * between them): its results are hidden. */
bool lease_hidden_query(struct lease *l, const char *sql)
{
	if (!server_queue_query(l->server, sql))
		return false;
	l->unnamed_here = false;   /* it destroyed the server's unnamed statement */
	l->portal_gone = true;
	rq_push(l, RP_HIDE, 'Q', NULL, NULL, 0);
	return true;
}

/* Before a request goes out: a server whose session may differ from the
 * client's gets it restored, in order, between two requests. Not inside an
 * extended-protocol batch: behind a message that failed, the server would skip
 * the restore up to the batch's Sync, and the record of its session (updated
 * when a restore goes out) would be wrong. The rest of such a batch runs as
 * the server's session is; the restore goes before the next batch. */
static void before_request(struct lease *l, uint8_t type)
{
	if (l->need_sync && !l->sent_unsynced && l->server->txn_status == 'I' && type != 'S' && type != 'H' &&
	    type != 'd' && type != 'c' && type != 'f')
		session_restore(l->client, l->server, l);
}

/* A whole request (P B D C E S Q) to the server. */
static void send_whole(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	if (__builtin_expect(l->copy_in || l->copy_data, 0) && copy_refuses(l, msg[0]))
		return;
	if (l->copy_in && msg[0] == 'S') {
		/* ignored by the server in COPY FROM STDIN: no answer comes */
		if (l->expect)
			l->expect--;
		send_bytes(l, msg, len, buf);
		return;
	}
	before_request(l, msg[0]);
	LOGF(LOG_TRACE, l->client->conn.id, "to server %llu: %c (%u bytes)%s%.*s", (unsigned long long)l->server->conn.id, msg[0], len,
	     msg[0] == 'Q' ? ": " : "", msg[0] == 'Q' ? (int)(len > 85 ? 80 : len - 5) : 0, (const char *)msg + 5);
	switch (msg[0]) {
	case 'P': on_parse(l, msg, len, buf); break;
	case 'B': on_bind(l, msg, len, buf); break;
	case 'D': on_describe(l, msg, len, buf); break;
	case 'C': on_close(l, msg, len, buf); break;
	case 'E': on_execute(l, msg, len, buf); break;
	case 'Q': on_query(l, msg, len, buf); break;
	case 'S':
		if (send_bytes(l, msg, len, buf))
			rq_push(l, RP_PASS, 'S', NULL, NULL, 0);
		l->sent_unsynced = false;
		return;
	default:
		send_bytes(l, msg, len, buf);
	}
	if (msg[0] != 'Q')
		l->sent_unsynced = true;
}

/* A streamed request (CopyData, CopyDone, CopyFail, Flush, FunctionCall)
 * begins; its bytes follow through send_bytes. */
static void send_begin(struct lease *l, uint8_t type)
{
	LOGF(LOG_TRACE, l->client->conn.id, "to server %llu: %c (streamed)", (unsigned long long)l->server->conn.id, type);
	if (type == 'd' && l->rq.n) {
		l->copy_data = true;
		l->copy_data_owed = l->rq.n;
	}
	if (type == 'F' && (l->copy_in || l->copy_data) && copy_refuses(l, type))
		return;
	if (type == 'c' || type == 'f') {
		/* the end of a COPY the server may not have announced yet: Syncs
		 * behind it are answered (see the CopyInResponse in reply_done) */
		l->copy_in = l->copy_data = false;
		if (l->rq.n && rq_push(l, RP_PASS, type, NULL, NULL, RF_IGNORED | RF_COPY_END))
			pump(l);
	}
	before_request(l, type);
	if (type == 'F')
		rq_push(l, RP_PASS, 'F', NULL, NULL, 0);
	else if (type == 'H')
		l->sent_unsynced = true;
}

/* ---- requests held for a server ---- */

static bool heldq_note(struct heldq *q, uint8_t type, uint32_t len, bool whole)
{
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 8;
		struct held_msg *m = realloc(q->m, cap * sizeof *m);
		if (!m)
			return false;
		q->m = m;
		q->cap = cap;
	}
	q->m[q->n++] = (struct held_msg){ .type = type, .whole = whole, .len = len };
	return true;
}

static void heldq_drop(struct shard *s, struct heldq *q)
{
	if (q->bytes.head)
		sendq_drop(s, &q->bytes);
	q->n = 0;
}

static void heldq_free(struct shard *s, struct heldq *q)
{
	heldq_drop(s, q);
	free(q->m);
	q->m = NULL;
	q->cap = 0;
}

static bool hold_bytes(struct lease *l, struct heldq *q, const uint8_t *p, uint32_t n, uint32_t buf)
{
	if (n <= HELD_COPY_MAX)
		buf = PROTO_BUF_NONE;
	return sendq_append(shard_of(l), &q->bytes, p, n, buf);
}

/* Requests go to `later` while the server must first answer what it got. */
static struct heldq *holding(struct lease *l)
{
	return l->rerouting ? &l->later : &l->held;
}

/* Is the lease's server taking requests now? */
static bool sending_now(const struct lease *l)
{
	return l->server && l->client->state == CL_ACTIVE && !l->rerouting;
}

/* Step a cursor over a held queue's bytes past n bytes of its current iovec. */
struct cursor {
	struct sendbuf *b;
	uint32_t i, off;
};

static const uint8_t *cursor_at(const struct cursor *c, uint32_t *have, uint32_t *buf)
{
	*have = (uint32_t)c->b->iov[c->i].iov_len - c->off;
	*buf = c->b->buf[c->i];
	return (const uint8_t *)c->b->iov[c->i].iov_base + c->off;
}

static void cursor_skip(struct cursor *c, uint32_t n)
{
	c->off += n;
	if (c->off == c->b->iov[c->i].iov_len) {
		c->off = 0;
		if (++c->i == c->b->n) {
			c->b = c->b->next;
			c->i = 0;
		}
	}
}

/* Feed q's messages, in order, to the server through the same path as live
 * requests; the last one, if its bytes are not all here yet, goes on live. */
static void replay(struct lease *l, struct heldq *q)
{
	struct client *cl = l->client;
	struct cursor c = { .b = q->bytes.head };
	uint32_t left = 0, have, buf;
	if (!q->n) {
		l->sending = false;
		return;   /* the common case: nothing waited */
	}
	for (uint32_t k = 0; k < q->n && l->server && cl->state == CL_ACTIVE; k++) {
		const struct held_msg *m = &q->m[k];
		if (m->whole) {
			/* queued as one piece, so it lies in one iovec */
			const uint8_t *p = cursor_at(&c, &have, &buf);
			INVARIANT(have >= m->len);
			send_whole(l, p, m->len, buf);
			cursor_skip(&c, m->len);
			continue;
		}
		send_begin(l, m->type);
		for (left = m->len; left && c.b && l->server;) {
			const uint8_t *p = cursor_at(&c, &have, &buf);
			uint32_t take = have < left ? have : left;
			send_bytes(l, p, take, buf);
			cursor_skip(&c, take);
			left -= take;
		}
	}
	l->sending = left > 0;   /* the rest of the last message follows live */
	heldq_drop(shard_of(l), q);
}

/* ---- requests from the client's framer ---- */

int lease_frame_kind(uint8_t type, uint32_t len)
{
	(void)len;
	switch (type) {
	case 'P': case 'B': case 'D': case 'C': case 'E': case 'S': case 'Q':
		return PROTO_WHOLE;   /* rewritten, routed or answered: looked at whole */
	default:
		return PROTO_STREAM;   /* CopyData, CopyDone, CopyFail, Flush, FunctionCall */
	}
}

struct lease *lease_open(struct client *cl)
{
	struct pool_shard *ps = pool_shard(cl->conn.shard);
	struct lease *l = ps->free_leases;
	if (l)
		ps->free_leases = l->next_free;
	else if (!(l = calloc(1, sizeof *l)))
		return NULL;
	l->next_free = NULL;
	l->client = cl;
	cl->lease = l;
	return l;
}

/* Entries of a lease's queues whose room a free lease keeps (24 kB of replies). */
#define LEASE_KEEP_MAX 1024

/* The lease is over: back to the shard's free list, with its queues' room. */
static void lease_close(struct lease *l)
{
	struct client *cl = l->client;
	struct pool_shard *ps = pool_shard(cl->conn.shard);
	INVARIANT(!l->server && l->rq.n == 0 && !l->portal_fx && !l->unnamed_fx);
	LOGF(LOG_TRACE, cl->conn.id, "lease over (expect %u)", l->expect);
	if (cl->adm && cl->adm->held)
		admit_end(cl);
	heldq_drop(cl->conn.shard, &l->held);
	heldq_drop(cl->conn.shard, &l->later);
	/* room a long pipeline grew is not kept for the next lease */
	if (l->rq.cap > LEASE_KEEP_MAX) {
		free(l->rq.r);
		l->rq = (struct replyq){ 0 };
	}
	if (l->held.cap > LEASE_KEEP_MAX)
		heldq_free(cl->conn.shard, &l->held);
	if (l->later.cap > LEASE_KEEP_MAX)
		heldq_free(cl->conn.shard, &l->later);
	cl->lease = NULL;
	memset(l, 0, LEASE_RESET_SIZE);
	l->next_free = ps->free_leases;
	ps->free_leases = l;
}

void lease_free_all(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	while (ps->free_leases) {
		struct lease *l = ps->free_leases;
		ps->free_leases = l->next_free;
		heldq_free(s, &l->held);
		heldq_free(s, &l->later);
		free(l->rq.r);
		free(l);
	}
}

/* Requests pipelined behind a transaction routed off the primary start a
 * segment that must go to the primary: they wait in `later` until the
 * server has answered what it got (rerouted). */
static void start_rerouting(struct lease *l, uint8_t type)
{
	l->rerouting = true;
	l->later_expect = type == 'Q' || type == 'F' ? 1 : 0;
	LOGF(LOG_DEBUG, l->client->conn.id, "pipelined request held for the primary");
}

/* A request that opens a segment behind owed replies, while the client's
 * transaction is on a node its default would not pick. */
static bool guarded_start(const struct lease *l, uint8_t type)
{
	const struct client *cl = l->client;
	return !l->unsynced && !l->rerouting && type != 'S' && l->expect > 0 &&
	       (cl->state == CL_ACTIVE || cl->state == CL_WAITING || cl->state == CL_ROUTING) && route_guarded(cl);
}

/* A whole request: to the server, or held. */
static void deliver_whole(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	if (sending_now(l)) {
		send_whole(l, msg, len, buf);
		return;
	}
	struct heldq *q = holding(l);
	if (!heldq_note(q, msg[0], len, true) || !hold_bytes(l, q, msg, len, buf))
		oom(l->client);
}

/* Session pooling under admission control: the first message of a
 * transaction is admitted as transaction pooling admits it before it asks
 * for a server; false: refused (answered, its bytes are dropped). */
static bool session_admit(struct client *cl, uint8_t type, int take)
{
	struct admit_client *a = admit_of(cl);
	if (!a) {
		lease_refuse(cl, "53200", "pgring: out of memory");
		return false;
	}
	a->open = true;
	if (take == PROTO_STREAM) {
		admit_force(cl, type);   /* a stream message cannot be held back: charged */
		return true;
	}
	return admit_request(cl, type) != ADMIT_REFUSED;
}

/* What a request owes: a ReadyForQuery for each Query, Sync and FunctionCall;
 * an extended-protocol message leaves the batch unsynced until its Sync. */
static inline void count_request(struct lease *l, uint8_t type)
{
	if (type == 'Q' || type == 'S' || type == 'F') {
		if (l->expect++ == 0)
			l->client->query_start_us = shard_of(l)->now_us;
		if (type == 'S')
			l->unsynced = false;
		if (l->rerouting)
			l->later_expect++;
	} else if (type == 'P' || type == 'B' || type == 'E' || type == 'D' || type == 'C' || type == 'H') {
		l->unsynced = true;
	}
}

int lease_request_begin(struct client *cl, uint8_t type, uint32_t len)
{
	struct lease *l = cl->lease;
	if (!l && !(l = lease_open(cl))) {
		oom(cl);
		return PROTO_STOP;
	}
	struct shard *s = cl->conn.shard;
	bool guarded = guarded_start(l, type);
	bool peekable = (type == 'Q' || type == 'P' || type == 'B') && len <= route_peek_max();
	/* session pooling: does this message start a transaction admission must pass? */
	bool session_start = __builtin_expect(s->cfg->admission, 0) && cl->state == CL_ACTIVE && !(cl->adm && cl->adm->open) &&
			     cl->pool->mode == POOL_SESSION && !cl->in_txn && !l->expect && !l->unsynced &&
			     !l->sending && !l->rerouting;
	count_request(l, type);
	int take = lease_frame_kind(type, len);
	if (cl->state == CL_IDLE) {
		cl->xact_start_us = s->now_us;
		if (take == PROTO_WHOLE) {
			/* routed, and given a server, once it is all here: its text may
			 * say where it goes, and a client trickling its first message
			 * holds no server meanwhile */
			l->route_peek = true;
			return PROTO_WHOLE;
		}
		cl->txn_target = (uint8_t)route_target(cl, NULL, 0, NULL, 0);
		if (s->cfg->admission)
			admit_force(cl, type);   /* a stream message cannot be held back: charged */
		pool_request_server(cl);
		if (cl->state == CL_CLOSED)
			return PROTO_STOP;
	} else {
		if (__builtin_expect(session_start, 0)) {
			if (!session_admit(cl, type, take))
				return cl->state == CL_CLOSED ? PROTO_STOP : PROTO_STREAM;   /* dropped (drop_msg) */
		} else if (__builtin_expect(cl->adm && cl->adm->any, 0) && (type == 'Q' || type == 'E'))
			admit_query(cl);   /* a query inside an admitted transaction */
		if (guarded) {
			if (peekable) {
				l->route_peek = true;
				return PROTO_WHOLE;
			}
			start_rerouting(l, type);   /* a function call or a long message: not proven */
		}
	}
	/* in CL_LOGIN_WAIT it is held until the login finishes */
	l->sending = take == PROTO_STREAM && sending_now(l);
	if (l->sending)
		send_begin(l, type);
	else if (take == PROTO_STREAM && !heldq_note(holding(l), type, len, false))
		oom(cl);
	return cl->state == CL_CLOSED ? PROTO_STOP : take;
}

/* A whole request (P B D C E S Q) of a client with its server, straight to
 * send_whole: what lease_request_begin and lease_request_whole do for it when
 * nothing routes, admits or holds it. false: not so (nothing was done); it
 * takes the framer's way. */
bool lease_request_direct(struct client *cl, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct lease *l = cl->lease;
	uint8_t type = msg[0];
	if (!l || !sending_now(l) || l->route_peek || l->sending || (cl->adm && cl->adm->any) || shard_of(l)->cfg->admission ||
	    guarded_start(l, type) || lease_frame_kind(type, len) != PROTO_WHOLE || type == 'X')
		return false;
	count_request(l, type);
	send_whole(l, msg, len, buf);
	return true;
}

bool lease_request_whole(struct client *cl, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct lease *l = cl->lease;
	INVARIANT(l);   /* lease_request_begin opened it */
	if (!l->route_peek) {
		deliver_whole(l, msg, len, buf);
		return cl->state != CL_CLOSED;
	}
	/* the first message of a segment, whole: it (and what is behind it) says
	 * where it goes */
	l->route_peek = false;
	bool peekable = (msg[0] == 'Q' || msg[0] == 'P' || msg[0] == 'B') && len <= route_peek_max();
	int target = peekable ? route_target(cl, msg, len, cl->conn.fr.ahead, cl->conn.fr.ahead_len)
			      : route_target(cl, NULL, 0, NULL, 0);
	if (cl->state == CL_IDLE) {
		/* a server first: with one idle, the message goes straight to it
		 * instead of through the held queue */
		cl->txn_target = (uint8_t)target;
		enum admit_verdict v = __builtin_expect(shard_of(l)->cfg->admission, 0) ? admit_request(cl, msg[0])
											     : ADMIT_GO;
		if (__builtin_expect(v == ADMIT_REFUSED, 0))
			return cl->state != CL_CLOSED;   /* answered; the lease is over */
		if (__builtin_expect(v == ADMIT_GO, 1))
			pool_request_server(cl);
		if (cl->state != CL_CLOSED)
			deliver_whole(l, msg, len, buf);
	} else {
		if (target == TARGET_PRIMARY)
			start_rerouting(l, msg[0]);
		deliver_whole(l, msg, len, buf);
	}
	return cl->state != CL_CLOSED;
}

void lease_request_bytes(struct client *cl, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct lease *l = cl->lease;
	INVARIANT(l);
	if (l->sending)
		send_bytes(l, p, n, buf);
	else if (!hold_bytes(l, holding(l), p, n, buf))
		oom(cl);
}

bool lease_restoring(const struct lease *l)
{
	if (!l->server)
		return false;
	if (l->server->hidden)
		return true;   /* the restore at attach */
	const struct reply *h = l->rq.n ? &l->rq.r[l->rq.head] : NULL;
	return h && h->kind == RP_HIDE && h->type == 'Q';   /* one between two requests (lease_hidden_query) */
}

bool lease_running(const struct lease *l)
{
	return l->server && l->rq.n > 0;
}

uint32_t lease_pending(const struct lease *l)
{
	return l->held.bytes.bytes + l->later.bytes.bytes + (l->server ? l->server->conn.out_bytes : 0);
}

/* ---- the pairing ---- */

/* The server takes the requests held while the client waited for it (or for
 * admission); then the client reads again and a cancel held meanwhile is due
 * (unless a restore runs first). */
static void run_held(struct lease *l)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	replay(l, &l->held);
	if (l->server == sv && cl->state == CL_ACTIVE && !cl->conn.recv_wanted)
		client_drained(cl);
	if (l->server == sv && cl->cancel_held)
		client_cancel_due(cl);
}

/* What the lease knew of one server's protocol state, dropped when the
 * server comes or goes. */
static void forget_server_state(struct lease *l)
{
	l->skipping = l->need_sync = l->cur_hide = l->copy_in = l->copy_data = false;
	l->copy_data_owed = 0;
	l->unnamed_here = l->portal_gone = false;
}

void lease_attach(struct lease *l, struct server *sv)
{
	struct client *cl = l->client;
	struct shard *s = cl->conn.shard;
	INVARIANT(!l->server && !sv->lease && sv->state == SV_ACTIVE && l->rq.n == 0);
	l->server = sv;
	sv->lease = l;
	client_set_state(cl, CL_ACTIVE);
	if (cl->wait_start_us) {
		stat_add(&cl->pool->stats->wait_time_us, s->now_us - cl->wait_start_us);
		stats_hist_add(&cl->pool->stats->wait_hist, s->now_us - cl->wait_start_us);
		stat_add(&cl->pool->stats->wait_count, 1);
		cl->wait_start_us = 0;
	}
	LOGF(LOG_DEBUG, cl->conn.id, "leased server %llu (backend pid %u)", (unsigned long long)sv->conn.id, sv->backend_pid);
	l->clock = sv->stmts.clock;
	forget_server_state(l);
	session_restore(cl, sv, NULL);
	run_held(l);
}

/* Take the server off the lease, forgetting what it owed. */
static struct server *detach(struct lease *l)
{
	struct server *sv = l->server;
	while (l->rq.n)
		rq_pop(l);
	if (l->portal_fx)
		proto_sql_free(l->portal_fx, 1);
	free(l->portal_fx);
	l->portal_fx = NULL;
	unnamed_fx_clear(l);
	forget_server_state(l);
	l->sending = l->sent_unsynced = false;
	sv->lease = NULL;
	l->server = NULL;
	return sv;
}

/* The server answered all it was sent before the requests in `later`. If it
 * stays (a transaction block, a pin), they are its after all; if it went back,
 * they are a new transaction for the primary on this same lease. */
static void rerouted(struct lease *l, bool released)
{
	struct client *cl = l->client;
	l->rerouting = false;
	l->later_expect = 0;
	if (!released) {
		replay(l, &l->later);
		return;
	}
	struct heldq t = l->held;
	l->held = l->later;
	l->later = t;
	heldq_drop(shard_of(l), &l->later);
	cl->xact_start_us = shard_of(l)->now_us;
	cl->txn_target = TARGET_PRIMARY;
	pool_request_server(cl);
}

/* The transaction is over and nothing is owed: the server goes back. */
static void release(struct lease *l)
{
	struct client *cl = l->client;
	bool more = l->rerouting;
	struct server *sv = detach(l);
	LOGF(LOG_DEBUG, cl->conn.id, "released server %llu", (unsigned long long)sv->conn.id);
	conn_recv_on(&sv->conn);   /* back-pressure belongs to the pairing */
	client_set_state(cl, CL_IDLE);
	client_drained(cl);
	server_reset(sv, NULL);
	if (more)
		rerouted(l, true);
	else
		lease_close(l);
}

void lease_client_gone(struct client *cl)
{
	struct lease *l = cl->lease;
	if (!l)
		return;
	if (l->server) {
		/* what the server was sent and has not answered is still running;
		 * a request the client had not finished sending never reached it
		 * (nor did a Sync still being framed: what the server got counts) */
		struct server_leftover left = {
			.running = l->rq.n > 0,
			.dirty = !lease_idle(l),
			.unsynced = l->sent_unsynced,
			.in_txn = cl->in_txn,
			.pins = cl->pins,
		};
		struct server *sv = detach(l);
		LOGF(LOG_DEBUG, cl->conn.id, "left server %llu: running %d dirty %d unsynced %d in_txn %d pins %d",
		     (unsigned long long)sv->conn.id, left.running, left.dirty, left.unsynced, left.in_txn, left.pins);
		conn_recv_on(&sv->conn);
		server_reset(sv, &left);
	}
	lease_close(l);
}

void lease_refuse(struct client *cl, const char *sqlstate, const char *why)
{
	struct lease *l = cl->lease;
	INVARIANT(l);
	uint32_t owed = l->expect;
	bool unsynced = l->unsynced;
	if (!proto_framer_idle(&cl->conn.fr))
		cl->drop_msg = true;   /* the rest of a request half received fails with it */
	if (!l->server) {
		lease_close(l);
		client_server_lost(cl, sqlstate, why, owed, unsynced);
		return;
	}
	/* session pooling: the server never saw these requests, and stays */
	INVARIANT(!l->rq.n && !l->rerouting);
	heldq_drop(shard_of(l), &l->held);
	l->expect = 0;
	l->unsynced = l->sending = false;
	admit_end(cl);
	client_set_state(cl, CL_ACTIVE);
	client_fail_requests(cl, sqlstate, why, owed, unsynced);
	if (cl->state == CL_ACTIVE && !cl->conn.recv_wanted)
		client_drained(cl);   /* what it held may have paused its reading */
}

void lease_admitted(struct client *cl)
{
	struct lease *l = cl->lease;
	if (!l->server) {
		pool_request_server(cl);   /* CL_WAITING, CL_ROUTING or CL_ACTIVE */
		return;
	}
	client_set_state(cl, CL_ACTIVE);
	run_held(l);   /* session pooling: to the server it keeps */
}

void lease_server_lost(struct lease *l, const char *sqlstate, const char *why)
{
	struct client *cl = l->client;
	uint32_t owed = l->expect;
	bool unsynced = l->unsynced;
	/* the rest of a request half received was counted in what fails */
	if (!proto_framer_idle(&cl->conn.fr))
		cl->drop_msg = true;
	detach(l);
	lease_close(l);
	client_server_lost(cl, sqlstate, why, owed, unsynced);
}

/* ---- replies ---- */

static void ready_for_query(struct lease *l, uint8_t status)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	INVARIANT(sv->lease == l && cl->lease == l && (cl->state == CL_ACTIVE || cl->state == CL_CLOSED));
	struct shard *s = shard_of(l);
	struct stats_pool *ps = sv->pool->stats;
	sv->txn_status = (char)status;
	sv->last_rfq_us = s->now_us;
	cl->in_txn = status != 'I';
	stat_add(&ps->query_count, 1);
	stat_add(&ps->query_time_us, s->now_us - cl->query_start_us);
	stats_hist_add(&ps->query_hist, s->now_us - cl->query_start_us);
	cl->query_start_us = s->now_us;
	if (l->expect)
		l->expect--;
	if (cl->state == CL_CLOSED) {
		/* closing at the end of the batch, with requests it had sent still
		 * completing: what they did to the session stays in the server's
		 * record for its reset (a SET committed after a statement-mode
		 * client was refused its BEGIN went back with the server, unknown) */
		session_ready(l, (char)status);
		return;
	}
	if (status != 'I' && sv->pool->mode == POOL_STATEMENT) {
		/* as PgBouncer: the server goes back after every statement, so a
		 * transaction block cannot work; the release rolls it back */
		client_fail(cl, "08P01", "transaction blocks not allowed in statement pooling mode");
		return;
	}
	session_ready(l, (char)status);
	/* requests rerouted for the primary are not this server's to answer */
	if (l->rerouting ? l->expect > l->later_expect : (l->expect || l->unsynced))
		return;
	if (status == 'I' && cl->adm && cl->adm->open && lease_idle(l))
		admit_end(cl);   /* session pooling: its admitted transaction is over */
	if (status == 'I') {
		stat_add(&ps->xact_count, 1);
		stat_add(&ps->xact_time_us, s->now_us - cl->xact_start_us);
		stats_hist_add(&ps->xact_hist, s->now_us - cl->xact_start_us);
		cl->xact_start_us = s->now_us;
	}
	if (__builtin_expect(s->handing_over, 0) && status == 'I' && (sv->pool->mode == POOL_SESSION || cl->pins) &&
	    lease_idle(l) && !cl->upgrade_told && !list_linked(&cl->wait))
		list_append(&pool_shard(s)->upgrade_due, &cl->wait);   /* moves with its server at the batch's end */
	if (status != 'I' || cl->pins || !lease_idle(l)) {
		/* in a block, pinned to this server, or more replies are owed: it stays,
		 * and requests held for the primary belong to it after all */
		if (l->rerouting)
			rerouted(l, false);
		return;
	}
	/* handing over (pgring -R), the client moves once at rest, and the
	 * server stays for the clients still here */
	if (sv->pool->mode != POOL_SESSION && (!s->draining || s->handing_over))
		release(l);
	else if (s->draining && !s->handing_over)
		client_fail(cl, "57P01", "pgring is shutting down");
}

void lease_reply_whole(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	if (__builtin_expect(!reply_in_step(l, msg[0], msg, len), 0)) {
		out_of_step(l, msg[0]);
		return;
	}
	if (msg[0] == 'E' && sv->pool->mode != POOL_SESSION) {
		struct proto_error_fields f;
		proto_parse_error(msg + 5, len - 5, &f);
		if (proto_error_fatal(&f)) {
			/* the server is going away, the client's session is not: keep it
			 * and pass it on as an ERROR when the connection closes */
			snprintf(sv->fatal_state, sizeof sv->fatal_state, "%s", f.sqlstate);
			snprintf(sv->fatal_msg, sizeof sv->fatal_msg, "%s", f.message);
			return;
		}
	}
	bool theirs = reply_passes(l, msg, len);
	if (theirs && cl->state != CL_CLOSED) {
		struct reply *h;
		if (msg[0] == 'E' && (h = rq_head(l)) && (h->flags & RF_STALE_ERROR) && h->st && h->st->err) {
			/* the client's statement's stale error, not pgring's raise */
			msg = h->st->err;
			len = h->st->err_len;
			buf = PROTO_BUF_NONE;
		}
		stat_add(&sv->pool->stats->bytes_out, len);
		if (!conn_queue(&cl->conn, msg, len, buf))
			oom(cl);
	}
	reply_done(l, msg, len);
	if (msg[0] == 'Z' && theirs && l->server == sv)
		ready_for_query(l, len >= 6 ? msg[5] : 'I');
}

/* Whether reply_done on this reply may put something before the client's
 * next bytes (an answer pgring gives itself, an error) or end the lease: the
 * span of replies read so far must go out first. */
static bool reply_may_speak(const struct lease *l, const struct reply *h, const uint8_t *msg, uint32_t len)
{
	uint8_t t = msg[0];
	if (t == 'D' || t == 'N')
		return false;   /* reply_done does nothing for them */
	if (t == 'Z' || h->extra || (l->client->adm && l->client->adm->rows))
		return true;    /* the lease may end; session effects; row limits */
	if (t == 'C' && len > 5 && (msg[5] == 'C' || msg[5] == 'R' || msg[5] == 'P'))
		return true;    /* COMMIT, ROLLBACK, PREPARE TRANSACTION (txn_end_tag): the session settles,
				 * and notifications held for the transaction's end go out */
	if (!terminal(h->type, t) || l->rq.n < 2)
		return false;
	const struct reply *next = &l->rq.r[(l->rq.head + 1) & (l->rq.cap - 1)];
	return next->kind == RP_SYNTH || (next->flags & RF_IGNORED);   /* pump answers it */
}

static bool span_type(uint8_t t)
{
	switch (t) {
	case 'T': case 'D': case 'C': case 'Z': case 'n': case '1': case '2': case '3':
	case 's': case 'I': case 't': case 'N':
		return true;
	default:
		return false;   /* E, S, A, copy, function results: lease_reply_whole */
	}
}

/* The replies at the front of data[0..n) that go to the client unchanged
 * (rows, descriptions, completions of its own requests), forwarded as one
 * slice of the buffer: only their headers are read, and reply_done sees those
 * that settle something. Returns the bytes taken; the rest, from the first
 * reply that needs more (an error, a ParameterStatus, pgring's own request's
 * answer, a message cut by the buffer's end), goes through the framer. Same
 * effect as lease_reply_whole for each, at a fifth of the instructions. */
uint32_t lease_reply_span(struct lease *l, const uint8_t *data, uint32_t n, uint32_t buf, uint32_t max_len)
{
	struct client *cl = l->client;
	struct server *sv = l->server;
	const uint8_t *p = data, *end = data + n, *from = data;
	if (cl->state == CL_CLOSED || log_enabled(LOG_TRACE))
		return 0;
	while (end - p >= 5) {
		uint8_t t = p[0];
		uint32_t len = proto_get_u32(p + 1) + 1;
		struct reply *h = rq_head(l);
		if (len < 5 || len > max_len || len > (uint32_t)(end - p) || !span_type(t) || !h || h->kind != RP_PASS ||
		    (t == 'Z' && h->type != 'S' && h->type != 'Q' && h->type != 'F'))
			break;
		const uint8_t *msg = p;
		p += len;
		if (!reply_may_speak(l, h, msg, len)) {
			if (t == 'D' || t == 'N' || (t != 'C' && !terminal(h->type, t)))
				continue;   /* they settle nothing there */
			if (t != 'C' && !h->st && !h->extra && !(h->flags & ~RF_UNNAMED) && !l->copy_data_owed) {
				/* a ParseComplete, BindComplete, description or
				 * suspension ends its request, and that is all
				 * (reply_done's rq_pop, with nothing to release) */
				if (h->flags & RF_UNNAMED)
					l->unnamed_inflight--;
				l->rq.head = (l->rq.head + 1) & (l->rq.cap - 1);
				l->rq.n--;
				continue;
			}
			reply_done(l, msg, len);
			continue;
		}
		stat_add(&sv->pool->stats->bytes_out, (uint64_t)(p - from));
		if (!conn_queue(&cl->conn, from, (uint32_t)(p - from), buf)) {
			oom(cl);
			return (uint32_t)(p - data);
		}
		from = p;
		reply_done(l, msg, len);
		if (t == 'Z') {
			if (l->server == sv)
				ready_for_query(l, len >= 6 ? msg[5] : 'I');
			return (uint32_t)(p - data);   /* the lease may be over: the rest is the framer's */
		}
		if (cl->state == CL_CLOSED || sv->lease != l)
			return (uint32_t)(p - data);
	}
	if (p > from) {
		stat_add(&sv->pool->stats->bytes_out, (uint64_t)(p - from));
		if (!conn_queue(&cl->conn, from, (uint32_t)(p - from), buf))
			oom(cl);
	}
	return (uint32_t)(p - data);
}

void lease_reply_bytes(struct lease *l, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct client *cl = l->client;
	bool pass = l->reply_passing;
	l->reply_left -= n < l->reply_left ? n : l->reply_left;
	if (!l->reply_left)
		l->reply_passing = false;
	if (!pass)
		return;
	/* a message begun goes out whole, even to a client closed meanwhile:
	 * its close (and FATAL) waits for the end (client_reply_done) */
	stat_add(&l->server->pool->stats->bytes_out, n);
	if (!conn_queue(&cl->conn, p, n, buf))
		oom(cl);
	if (!l->reply_left && cl->state == CL_CLOSED)
		client_reply_done(cl);
}
