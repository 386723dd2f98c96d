/* proto/sqlroute.c: routing hints and read-only proofs (see proto/sqlroute.h).
 * One pass of a small tokenizer that knows PostgreSQL's quoting (strings, E''
 * strings, quoted identifiers, dollar quotes, nested comments); a statement is
 * judged by its first keyword and by the words and calls inside it. */
#include "proto/sqlroute.h"
#include "proto/sqllex.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

enum tok_kind { T_END = 0, T_WORD, T_QIDENT, T_STRING, T_NUMBER, T_PUNCT, T_BAD };

struct tok {
	uint8_t kind;
	char punct;
	const char *p;        /* T_WORD, T_QIDENT (inside the quotes): the text */
	size_t n;
};

struct lexer {
	const char *s, *end;
};

/* By hand rather than <ctype.h>: glibc's isalnum() is a call and a locale
 * table per byte, and PostgreSQL's identifiers are ASCII rules anyway. */
static bool alpha(unsigned char c) { return (unsigned char)((c | 0x20) - 'a') < 26; }
static bool digit(unsigned char c) { return (unsigned char)(c - '0') < 10; }
static bool word_char(unsigned char c) { return alpha(c) || digit(c) || c == '_' || c == '$' || c >= 0x80; }
static bool word_start(unsigned char c) { return alpha(c) || c == '_' || c >= 0x80; }

/* Skip blanks and comments; false on an unterminated comment. */
static bool skip_space(struct lexer *lx)
{
	return proto_sql_skip_space(&lx->s, lx->end);
}

/* 'string' with '' for a quote; with escapes (E''), a backslash takes the next
 * byte. A backslash in a plain string is refused: with
 * standard_conforming_strings off it would escape, and we cannot know. */
static bool lex_string(struct lexer *lx, bool escapes)
{
	for (lx->s++; lx->s < lx->end; lx->s++) {
		if (*lx->s == '\\') {
			if (!escapes || ++lx->s == lx->end)
				return false;
		} else if (*lx->s == '\'') {
			if (lx->s + 1 < lx->end && lx->s[1] == '\'')
				lx->s++;
			else {
				lx->s++;
				return true;
			}
		}
	}
	return false;
}

/* $tag$ ... $tag$ (tag may be empty); lx->s at the first '$'. */
static bool lex_dollar(struct lexer *lx)
{
	const char *tag = lx->s;
	const char *p = lx->s + 1;
	while (p < lx->end && (alpha((unsigned char)*p) || digit((unsigned char)*p) || *p == '_' || (unsigned char)*p >= 0x80))
		p++;
	if (p == lx->end || *p != '$')
		return false;
	size_t tn = (size_t)(p - tag) + 1;
	for (p++; p + tn <= lx->end; p++)
		if (*p == '$' && memcmp(p, tag, tn) == 0) {
			lx->s = p + tn;
			return true;
		}
	return false;
}

static struct tok next_tok(struct lexer *lx)
{
	struct tok t = { 0 };
	if (!skip_space(lx)) {
		t.kind = T_BAD;
		return t;
	}
	if (lx->s >= lx->end)
		return t;
	unsigned char c = (unsigned char)*lx->s;
	if ((c == 'e' || c == 'E') && lx->s + 1 < lx->end && lx->s[1] == '\'') {
		lx->s++;
		t.kind = lex_string(lx, true) ? T_STRING : T_BAD;
	} else if (word_start(c)) {
		t.kind = T_WORD;
		t.p = lx->s;
		while (lx->s < lx->end && word_char((unsigned char)*lx->s))
			lx->s++;
		t.n = (size_t)(lx->s - t.p);
		if (lx->s < lx->end && *lx->s == '\'' && t.n == 1 && strchr("bBxXnNuU", *t.p)) {
			t.kind = lex_string(lx, false) ? T_STRING : T_BAD;   /* B'', X'', N'', U&'' */
		}
	} else if (c == '\'') {
		t.kind = lex_string(lx, false) ? T_STRING : T_BAD;
	} else if (c == '"') {
		t.kind = T_QIDENT;
		t.p = ++lx->s;
		for (;;) {
			if (lx->s >= lx->end) {
				t.kind = T_BAD;
				return t;
			}
			if (*lx->s == '"' && !(lx->s + 1 < lx->end && lx->s[1] == '"'))
				break;
			lx->s += *lx->s == '"' ? 2 : 1;
		}
		t.n = (size_t)(lx->s - t.p);
		lx->s++;
	} else if (c == '$' && lx->s + 1 < lx->end && digit((unsigned char)lx->s[1])) {
		t.kind = T_NUMBER;   /* a parameter, $1 */
		for (lx->s++; lx->s < lx->end && digit((unsigned char)*lx->s); lx->s++)
			;
	} else if (c == '$') {
		t.kind = lex_dollar(lx) ? T_STRING : T_BAD;
	} else if (digit(c) || (c == '.' && lx->s + 1 < lx->end && digit((unsigned char)lx->s[1]))) {
		t.kind = T_NUMBER;
		while (lx->s < lx->end && (alpha((unsigned char)*lx->s) || digit((unsigned char)*lx->s) || *lx->s == '.' || *lx->s == '_'))
			lx->s++;
	} else {
		t.kind = T_PUNCT;
		t.punct = (char)c;
		lx->s++;
	}
	return t;
}

static bool is_word(const struct tok *t, const char *w)
{
	return t->kind == T_WORD && t->n == strlen(w) && strncasecmp(t->p, w, t->n) == 0;
}

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
	while (p < end && isspace((unsigned char)*p))
		p++;
	bool line = end - p >= 9 && memcmp(p, "--!pgring", 9) == 0;
	bool block = end - p >= 9 && memcmp(p, "/*!pgring", 9) == 0;
	if (!line && !block)
		return PROTO_TARGET_NONE;
	p += 9;
	if (p < end && !isspace((unsigned char)*p))
		return PROTO_TARGET_NONE;   /* "--!pgringfoo" is some other comment */
	const char *stop = end;
	for (const char *q = p; q < end; q++)
		if ((line && *q == '\n') || (block && end - q >= 2 && q[0] == '*' && q[1] == '/')) {
			stop = q;
			break;
		}
	if (block && stop == end)
		return PROTO_TARGET_NONE;   /* unterminated */
	int target = PROTO_TARGET_NONE;
	while (p < stop) {
		while (p < stop && isspace((unsigned char)*p))
			p++;
		const char *w = p;
		while (p < stop && !isspace((unsigned char)*p))
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
static bool writing_word(const struct tok *t)
{
	if (t->kind != T_WORD || t->n < 2 || t->n > 6)
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

/* The statement's first token is in *t; the rest comes from lx up to ';' or the
 * end. SELECT-like statements are read to their end: every word and call in
 * them is looked at. */
static enum verdict judge(struct lexer *lx, struct tok t)
{
	if (t.kind == T_END || (t.kind == T_PUNCT && t.punct == ';'))
		return V_EMPTY;
	if (is_word(&t, "show")) {
		for (t = next_tok(lx); t.kind != T_END && !(t.kind == T_PUNCT && t.punct == ';'); t = next_tok(lx))
			if (t.kind == T_BAD)
				return V_NO;
		return V_YES;
	}
	if (is_word(&t, "explain")) {
		t = next_tok(lx);
		if (t.kind == T_PUNCT && t.punct == '(') {
			/* options: ANALYZE in any form runs the statement */
			for (t = next_tok(lx); !(t.kind == T_PUNCT && t.punct == ')'); t = next_tok(lx))
				if (t.kind == T_END || t.kind == T_BAD || is_word(&t, "analyze") || is_word(&t, "analyse"))
					return V_NO;
			t = next_tok(lx);
		}
		while (is_word(&t, "verbose"))
			t = next_tok(lx);
		if (is_word(&t, "analyze") || is_word(&t, "analyse"))
			return V_NO;
	}
	bool query = is_word(&t, "select") || is_word(&t, "with") || is_word(&t, "values") || is_word(&t, "table") ||
		     (t.kind == T_PUNCT && t.punct == '(');
	if (!query)
		return V_NO;
	struct tok prev = { 0 };
	for (; t.kind != T_END && !(t.kind == T_PUNCT && t.punct == ';'); prev = t, t = next_tok(lx)) {
		if (t.kind == T_BAD || writing_word(&t))
			return V_NO;
		if (is_word(&prev, "for") && (is_word(&t, "share") || is_word(&t, "key") || is_word(&t, "no")))
			return V_NO;   /* FOR SHARE, FOR KEY SHARE, FOR NO KEY UPDATE */
		if (t.kind == T_PUNCT && t.punct == '(' && (prev.kind == T_WORD || prev.kind == T_QIDENT) &&
		    writing_function(prev.p, prev.n))
			return V_NO;
	}
	return V_YES;
}

bool proto_sql_read_only(const char *sql, size_t len)
{
	struct lexer lx = { sql, sql + len };
	bool any = false;
	for (;;) {
		struct tok t = next_tok(&lx);
		if (t.kind == T_BAD)
			return false;
		if (t.kind == T_END)
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
