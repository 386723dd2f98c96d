/* proto/sqlroute.c: routing hints and read-only proofs (see proto/sqlroute.h).
 * One pass over proto/sqllex.c's tokens; a statement is judged by its first
 * keyword and by the words and calls inside it. */
#include "proto/sqlroute.h"
#include "proto/sqllex.h"

#include <string.h>
#include <strings.h>

/* The shared lexer's next token, with what a proof cannot read turned into
 * SQLLEX_BAD: a backslash in a plain string (with standard_conforming_strings
 * off it would escape, and we cannot know), a U&"..." name (its escapes hide
 * what it names: U&"nextv\0061l"(...)), a '$' that opens nothing. */
static inline __attribute__((always_inline)) struct proto_sqllex_tok next_tok(struct proto_sqllex *lx)
{
	struct proto_sqllex_tok t = proto_sqllex_next(lx);
	if (__builtin_expect(t.flags != 0, 0) &&   /* most tokens have none: one test */
	    ((t.flags & (SQLLEX_F_BACKSLASH | SQLLEX_F_STRAY)) ||
	     (t.type == SQLLEX_QIDENT && (t.flags & SQLLEX_F_UNICODE))))
		t.type = SQLLEX_BAD;
	return t;
}

static bool is_word(const struct proto_sqllex_tok *t, const char *w) { return proto_sqllex_kw(t, w); }
static bool is_punct(const struct proto_sqllex_tok *t, char c) { return proto_sqllex_op(t, c); }

/* ---- hints ---- */

int proto_target_parse(const char *s, size_t len)
{
	static const struct { const char *name; int target; } names[] = {
		{ "primary", PROTO_TARGET_PRIMARY }, { "read-write", PROTO_TARGET_PRIMARY },
		{ "replica", PROTO_TARGET_REPLICA }, { "standby", PROTO_TARGET_REPLICA },
		{ "read-only", PROTO_TARGET_REPLICA }, { "prefer-standby", PROTO_TARGET_REPLICA },
		{ "prefer-replica", PROTO_TARGET_REPLICA }, { "any", PROTO_TARGET_ANY },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0)
			return names[i].target;
	return PROTO_TARGET_NONE;
}

int proto_sql_target_hint(const char *sql, size_t len)
{
	const char *p = sql, *end = sql + len;
	while (p < end && sqllex_blank((unsigned char)*p))
		p++;
	bool line = end - p >= 9 && memcmp(p, "--!pgring", 9) == 0;
	bool block = end - p >= 9 && memcmp(p, "/*!pgring", 9) == 0;
	if (!line && !block)
		return PROTO_TARGET_NONE;
	p += 9;
	if (p < end && !sqllex_blank((unsigned char)*p))
		return PROTO_TARGET_NONE;   /* "--!pgringfoo" is some other comment */
	/* the hint ends where proto/sqllex.c ends the comment: a -- line at \n or \r */
	const char *stop = end;
	for (const char *q = p; q < end; q++)
		if ((line && (*q == '\n' || *q == '\r')) || (block && end - q >= 2 && q[0] == '*' && q[1] == '/')) {
			stop = q;
			break;
		}
	if (block && stop == end)
		return PROTO_TARGET_NONE;   /* unterminated */
	int target = PROTO_TARGET_NONE;
	while (p < stop) {
		while (p < stop && sqllex_blank((unsigned char)*p))
			p++;
		const char *w = p;
		while (p < stop && !sqllex_blank((unsigned char)*p))
			p++;
		if (p - w > 7 && strncasecmp(w, "target=", 7) == 0)
			target = proto_target_parse(w + 7, (size_t)(p - w - 7));
	}
	return target;
}

/* ---- read-only proofs ---- */

/* Functions that write, or whose effect stays with the session's node. */
static bool writing_function(const char *name, size_t n)
{
	static const char *const exact[] = {
		"nextval", "setval", "currval", "lastval", "txid_current", "txid_current_if_assigned",
		"pg_current_xact_id", "pg_current_xact_id_if_assigned", "pg_notify", "set_config", "setseed",
		"pg_switch_wal", "pg_drop_replication_slot", "pg_terminate_backend", "pg_cancel_backend",
		"pg_reload_conf", "pg_rotate_logfile", "pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume",
		"pg_backup_start", "pg_backup_stop", "pg_import_system_collations", "pg_logical_emit_message",
		"pg_export_snapshot", "pg_log_backend_memory_contexts", "pg_copy_physical_replication_slot",
		"pg_copy_logical_replication_slot", "pg_replication_slot_advance", "pg_log_standby_snapshot",
		"pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes", "pg_file_write",
		"pg_file_unlink", "pg_file_rename", "pg_read_file", "pg_stat_clear_snapshot",
	};
	static const char *const prefix[] = {
		"pg_advisory", "pg_try_advisory", "lo_", "dblink", "pg_create_", "pg_replication_origin_",
		"pg_stat_reset",
	};
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (strlen(exact[i]) == n && strncasecmp(name, exact[i], n) == 0)
			return true;
	for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
		if (n >= strlen(prefix[i]) && strncasecmp(name, prefix[i], strlen(prefix[i])) == 0)
			return true;
	return false;
}

/* Words that make a query statement do more than read (a first-letter switch:
 * this runs on every word of every split-routed query). */
static bool writing_word(const struct proto_sqllex_tok *t)
{
	if (t->type != SQLLEX_IDENT || t->n < 2 || t->n > 6)
		return false;
	switch (t->p[0] | 0x20) {
	case 'i': return is_word(t, "insert") || is_word(t, "into");
	case 'u': return is_word(t, "update");
	case 'd': return is_word(t, "delete") || is_word(t, "do");
	case 'm': return is_word(t, "merge");
	case 'c': return is_word(t, "copy") || is_word(t, "call");
	default: return false;
	}
}

enum verdict { V_NO = 0, V_YES, V_EMPTY };

/* A called function's name: a word, or a quoted identifier without its quotes. */
static bool call_name(const struct proto_sqllex_tok *t, const char **p, size_t *n)
{
	if (t->type == SQLLEX_IDENT) {
		*p = t->p;
		*n = t->n;
		return true;
	}
	if (t->type == SQLLEX_QIDENT) {   /* U&"..." is SQLLEX_BAD here */
		*p = t->p + 1;
		*n = t->n - 2;
		return true;
	}
	return false;
}

static bool stmt_end(const struct proto_sqllex_tok *t) { return t->type == SQLLEX_END || is_punct(t, ';'); }

/* The statement's first token is in *t; the rest comes from lx up to ';' or the
 * end. SELECT-like statements are read to their end: every word and call in
 * them is looked at. */
static enum verdict judge(struct proto_sqllex *lx, struct proto_sqllex_tok t)
{
	if (stmt_end(&t))
		return V_EMPTY;
	if (is_word(&t, "show")) {
		for (t = next_tok(lx); !stmt_end(&t); t = next_tok(lx))
			if (t.type == SQLLEX_BAD)
				return V_NO;
		return V_YES;
	}
	if (is_word(&t, "explain")) {
		t = next_tok(lx);
		if (is_punct(&t, '(')) {
			/* options: ANALYZE in any form runs the statement */
			for (t = next_tok(lx); !is_punct(&t, ')'); t = next_tok(lx))
				if (t.type == SQLLEX_END || t.type == SQLLEX_BAD || is_word(&t, "analyze") ||
				    is_word(&t, "analyse"))
					return V_NO;
			t = next_tok(lx);
		}
		while (is_word(&t, "verbose"))
			t = next_tok(lx);
		if (is_word(&t, "analyze") || is_word(&t, "analyse"))
			return V_NO;
	}
	bool query = is_word(&t, "select") || is_word(&t, "with") || is_word(&t, "values") || is_word(&t, "table") ||
		     is_punct(&t, '(');
	if (!query)
		return V_NO;
	struct proto_sqllex_tok prev = { 0 };
	for (; !stmt_end(&t); prev = t, t = next_tok(lx)) {
		if (t.type == SQLLEX_BAD || writing_word(&t))
			return V_NO;
		if (is_word(&prev, "for") && (is_word(&t, "share") || is_word(&t, "key") || is_word(&t, "no")))
			return V_NO;   /* FOR SHARE, FOR KEY SHARE, FOR NO KEY UPDATE */
		const char *name;
		size_t n;
		if (is_punct(&t, '(') && call_name(&prev, &name, &n) && writing_function(name, n))
			return V_NO;
	}
	return V_YES;
}

bool proto_sql_read_only(const char *sql, size_t len)
{
	struct proto_sqllex lx;
	proto_sqllex_init(&lx, sql, len);
	bool any = false;
	for (;;) {
		struct proto_sqllex_tok t = next_tok(&lx);
		if (t.type == SQLLEX_BAD)
			return false;
		if (t.type == SQLLEX_END)
			return any;
		switch (judge(&lx, t)) {
		case V_NO:
			return false;
		case V_YES:
			any = true;
			break;
		case V_EMPTY:
			break;
		}
		if (lx.s >= lx.end)
			return any;
	}
}
