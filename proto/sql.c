/* proto/sql.c: splits a query string into statements (on proto/sqllex.c's
 * tokens) and recognises the few statement shapes that change session state.
 * Anything it does not recognise is SQL_NONE: the caller then treats the
 * statement as one that leaves the session alone. */
#include "proto/sql.h"
#include "proto/sqllex.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static bool is_kw(const struct proto_sqllex_tok *t, const char *kw) { return proto_sqllex_kw(t, kw); }
static bool is_op(const struct proto_sqllex_tok *t, char c) { return proto_sqllex_op(t, c); }

/* Identifier as PostgreSQL folds it (unquoted: lower case; quoted: as written),
 * cut to NAMEDATALEN - 1 bytes at a character boundary as the server cuts it. */
static void tok_ident(const struct proto_sqllex_tok *t, char *out, size_t cap)
{
	size_t k = 0;
	unsigned char next = 0;   /* the first byte that did not fit */
	if (cap > SQL_NAME_MAX)
		cap = SQL_NAME_MAX;
	if (t->type == SQLLEX_QIDENT) {
		const char *p = t->p, *e = t->p + t->n - 1;
		while (p < e && *p != '"')
			p++;
		for (p++; p < e; p++) {
			if (*p == '"' && p + 1 < e && p[1] == '"')
				p++;
			if (k + 1 >= cap) {
				next = (unsigned char)*p;
				break;
			}
			out[k++] = *p;
		}
	} else {
		for (uint32_t i = 0; i < t->n; i++) {
			if (k + 1 >= cap) {
				next = (unsigned char)t->p[i];
				break;
			}
			out[k++] = sqllex_lower(t->p[i]);   /* tolower() in the C locale, inline */
		}
	}
	if ((next & 0xc0) == 0x80) {
		/* the cut fell inside a multi-byte character: drop all of it */
		while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0)
			k--;
	}
	out[k] = 0;
}

/* A setting's name, `part [. part ...]` from t[i], folded as PostgreSQL folds
 * it, into out[cap]. Returns the index of the token after it; -1 when t[i]
 * does not start a name (the server rejects the statement), -2 when the name
 * does not fit (the caller cannot follow the statement). */
static int setting_name(const struct proto_sqllex_tok *t, int n, int i, char *out, size_t cap)
{
	size_t k = 0;
	for (;;) {
		if (i >= n || (t[i].type != SQLLEX_IDENT && t[i].type != SQLLEX_QIDENT))
			return -1;
		char part[SQL_NAME_MAX];
		tok_ident(&t[i], part, sizeof part);
		size_t len = strlen(part);
		if (k + len + 1 >= cap)
			return -2;
		memcpy(out + k, part, len + 1);
		k += len;
		i++;
		if (i + 1 >= n || !is_op(&t[i], '.'))
			return i;
		out[k++] = '.';
		i++;
	}
}

/* A string literal's value; false for the forms not decoded (dollar quotes, U&,
 * B'', X'', N'') and for an unterminated one (SQLLEX_BAD). */
static bool tok_string(const struct proto_sqllex_tok *t, char *out, size_t cap)
{
	if (t->type != SQLLEX_STRING || (t->flags & (SQLLEX_F_DOLLAR | SQLLEX_F_UNICODE | SQLLEX_F_PREFIX)))
		return false;
	bool escape = t->flags & SQLLEX_F_ESCAPE;
	const char *p = t->p + escape + 1, *e = t->p + t->n - 1;   /* inside the quotes */
	size_t k = 0;
	while (p < e) {
		char c = *p++;
		if (c == '\'' && p < e && *p == '\'') {
			p++;
		} else if (escape && c == '\\' && p < e) {
			c = *p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			default:
				if (c >= '0' && c <= '7')
					return false;   /* octal and hex escapes: leave them to the server */
				if (c == 'x' || c == 'u' || c == 'U')
					return false;
			}
		}
		if (k + 1 >= cap)
			return false;
		out[k++] = c;
	}
	out[k] = 0;
	return true;
}

/* ---- SET values ---- */

static bool list_quoted(const char *name)
{
	return strcmp(name, "search_path") == 0 || strcmp(name, "temp_tablespaces") == 0 ||
	       strcmp(name, "session_preload_libraries") == 0 || strcmp(name, "local_preload_libraries") == 0;
}

/* PostgreSQL 15's keywords that quote_identifier() quotes: every category but
 * the unreserved one (reserved, column-name and type/function-name keywords). */
static const char *const quoted_keywords[] = {
	"all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
	"between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character",
	"check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
	"cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
	"current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc",
	"distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float",
	"for", "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having",
	"ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into",
	"is", "isnull", "join", "lateral", "leading", "least", "left", "like", "limit", "localtime",
	"localtimestamp", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null",
	"numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay",
	"placing", "position", "precision", "primary", "real", "references", "returning", "right",
	"row", "select", "session_user", "setof", "similar", "smallint", "some", "substring",
	"symmetric", "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat",
	"trim", "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose",
	"when", "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
	"xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
};

static bool quoted_keyword(const char *v)
{
	for (size_t i = 0; i < sizeof quoted_keywords / sizeof quoted_keywords[0]; i++)
		if (strcmp(v, quoted_keywords[i]) == 0)
			return true;
	return false;
}

/* As quote_identifier() does for the elements of a list setting. */
static bool append_identifier(char *out, size_t cap, size_t *k, const char *v)
{
	bool plain = *v && (islower((unsigned char)*v) || *v == '_');
	for (const char *c = v; *c && plain; c++)
		plain = islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_';
	plain = plain && !quoted_keyword(v);
	size_t need = strlen(v) + 3;
	for (const char *c = v; *c; c++)
		need += *c == '"';
	if (*k + need >= cap)
		return false;
	if (plain) {
		*k += (size_t)sprintf(out + *k, "%s", v);
		return true;
	}
	out[(*k)++] = '"';
	for (const char *c = v; *c; c++) {
		if (*c == '"')
			out[(*k)++] = '"';
		out[(*k)++] = *c;
	}
	out[(*k)++] = '"';
	out[*k] = 0;
	return true;
}

/* Flatten "a, 'b', 3" the way the server's SET does (flatten_set_variable_args):
 * the result is what current_setting() reports and set_config() accepts. */
static char *flatten_value(const char *name, const struct proto_sqllex_tok *v, int n)
{
	size_t cap = 16;
	for (int i = 0; i < n; i++)
		cap += v[i].n * 2 + 4;
	char *out = malloc(cap), *tmp = malloc(cap);
	if (!out || !tmp) {
		free(out);
		free(tmp);
		return NULL;
	}
	size_t k = 0;
	out[0] = 0;
	bool want_value = true, ok = true, neg = false;
	for (int i = 0; i < n && ok; i++) {
		const struct proto_sqllex_tok *t = &v[i];
		if (is_op(t, ',') && !want_value) {
			k += (size_t)sprintf(out + k, ", ");
			want_value = true;
			continue;
		}
		if (!want_value) {
			ok = false;
			break;
		}
		if (is_op(t, '-') || is_op(t, '+')) {
			neg = is_op(t, '-');
			if (i + 1 >= n || v[i + 1].type != SQLLEX_NUMBER)
				ok = false;
			continue;
		}
		switch (t->type) {
		case SQLLEX_NUMBER: {
			/* an integer that fits in int4 is printed back as the server parses it
			 * (007 -> 7, -0 -> 0); anything else is kept as written */
			bool digits = t->n <= 10;
			for (uint32_t d = 0; d < t->n && digits; d++)
				digits = isdigit((unsigned char)t->p[d]);
			long long v = 0;
			if (digits) {
				for (uint32_t d = 0; d < t->n; d++)
					v = v * 10 + (t->p[d] - '0');
				if (neg)
					v = -v;
			}
			if (digits && v >= -2147483648LL && v <= 2147483647LL)
				k += (size_t)snprintf(out + k, cap - k, "%lld", v);
			else
				k += (size_t)snprintf(out + k, cap - k, "%s%.*s", neg ? "-" : "", (int)t->n, t->p);
			neg = false;
			break;
		}
		case SQLLEX_STRING:
			if (!tok_string(t, tmp, cap))
				ok = false;
			else if (list_quoted(name))
				ok = append_identifier(out, cap, &k, tmp);
			else
				k += (size_t)snprintf(out + k, cap - k, "%s", tmp);
			break;
		case SQLLEX_IDENT:
		case SQLLEX_QIDENT:
			tok_ident(t, tmp, cap);
			if (strlen(tmp) >= SQL_NAME_MAX) {   /* as the server truncates identifiers */
				size_t cut = SQL_NAME_MAX - 1;
				while (cut > 0 && ((unsigned char)tmp[cut] & 0xc0) == 0x80)
					cut--;
				tmp[cut] = 0;
			}
			if (list_quoted(name))
				ok = append_identifier(out, cap, &k, tmp);
			else
				k += (size_t)snprintf(out + k, cap - k, "%s", tmp);
			break;
		default:
			ok = false;
		}
		want_value = false;
	}
	free(tmp);
	if (!ok || want_value) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- statement shapes ---- */

#define STMT_TOKS 96

struct stmt_scan {
	int n;                  /* tokens stored (at most STMT_TOKS) */
	int total;              /* tokens seen */
	const char *start, *end;
	uint8_t flags;
	bool into_temp, with_hold, on_commit_drop;
	bool routine;           /* CREATE FUNCTION / PROCEDURE: BEGIN ... END may hold semicolons */
	int set_configs;        /* set_config( calls seen */
	int depth;              /* BEGIN / CASE ... END nesting inside it */
	struct proto_sqllex_tok prev, prev2;   /* the two tokens before the one being watched */
	struct proto_sqllex_tok t[STMT_TOKS];  /* last: a new statement clears only what comes before */
};

static void classify_set(struct stmt_scan *st, int i, struct proto_sql_stmt *out)
{
	const struct proto_sqllex_tok *t = st->t;
	int n = st->n;
	if (i < n && is_kw(&t[i], "local")) {
		out->flags |= SQL_F_SET_LOCAL;
		return;
	}
	if (i < n && is_kw(&t[i], "session")) {
		i++;
		if (i < n && (is_kw(&t[i], "authorization") || is_kw(&t[i], "characteristics"))) {
			out->kind = SQL_PIN;
			return;
		}
	}
	if (i >= n || is_kw(&t[i], "transaction") || is_kw(&t[i], "constraints"))
		return;
	const char *name = NULL;
	int vstart;
	if (is_kw(&t[i], "time") && i + 1 < n && is_kw(&t[i + 1], "zone")) {
		name = "timezone";
		vstart = i + 2;
		if (vstart < n && (is_kw(&t[vstart], "local") || is_kw(&t[vstart], "default"))) {
			out->kind = SQL_RESET;
			out->flags |= SQL_F_SET_FORM;
			snprintf(out->name, sizeof out->name, "%s", name);
			return;
		}
		if (vstart < n && is_kw(&t[vstart], "interval")) {
			out->kind = SQL_PIN;   /* SET TIME ZONE INTERVAL: reported anyway; rare */
			return;
		}
	} else if (is_kw(&t[i], "schema")) {
		name = "search_path";
		vstart = i + 1;
	} else if (is_kw(&t[i], "names")) {
		name = "client_encoding";
		vstart = i + 1;
	} else if (is_kw(&t[i], "role")) {
		name = "role";
		vstart = i + 1;
		if (vstart < n && is_kw(&t[vstart], "none")) {
			out->kind = SQL_RESET;
			out->flags |= SQL_F_SET_FORM;
			snprintf(out->name, sizeof out->name, "role");
			return;
		}
	} else if (is_kw(&t[i], "xml") && i + 1 < n && is_kw(&t[i + 1], "option")) {
		name = "xmloption";
		vstart = i + 2;
	} else {
		/* name [. name ...] {TO | =} value [, ...]; a form not followed (a
		 * name too long, FROM CURRENT) keeps the client on its server, one
		 * the server rejects changes nothing */
		i = setting_name(t, n, i, out->name, sizeof out->name);
		if (i == -2 || (i >= 0 && i < n && is_kw(&t[i], "from"))) {
			out->name[0] = 0;
			out->kind = SQL_PIN;
			return;
		}
		if (i < 0 || i >= n || !(is_kw(&t[i], "to") || is_op(&t[i], '='))) {
			out->name[0] = 0;
			return;
		}
		vstart = i + 1;
		if (vstart < n && is_kw(&t[vstart], "default") && vstart + 1 == n) {
			out->kind = SQL_RESET;
			out->flags |= SQL_F_SET_FORM;
			return;
		}
	}
	if (name)
		snprintf(out->name, sizeof out->name, "%s", name);
	if (st->total > st->n || vstart >= n) {
		out->kind = SQL_PIN;   /* a value too long to follow: keep the client where it is */
		return;
	}
	out->value = flatten_value(out->name, &t[vstart], n - vstart);
	out->kind = out->value ? SQL_SET : SQL_PIN;
}

/* set_config('name', 'value', false) changes the session like SET: a call with
 * literal arguments is followed; any other form pins the client. */
static void classify_set_config(struct stmt_scan *st, struct proto_sql_stmt *out)
{
	const struct proto_sqllex_tok *t = st->t;
	out->kind = SQL_PIN;
	if (st->set_configs != 1 || st->total > st->n)
		return;
	for (int j = 0; j + 7 < st->n; j++) {
		char w[16];
		if (t[j].type != SQLLEX_IDENT || t[j].n != 10)
			continue;
		tok_ident(&t[j], w, sizeof w);
		if (strcmp(w, "set_config"))
			continue;
		if (!is_op(&t[j + 1], '(') || t[j + 2].type != SQLLEX_STRING ||
		    !is_op(&t[j + 3], ',') || t[j + 4].type != SQLLEX_STRING || !is_op(&t[j + 5], ',') ||
		    !is_op(&t[j + 7], ')'))
			return;
		bool local;
		if (is_kw(&t[j + 6], "true"))
			local = true;
		else if (is_kw(&t[j + 6], "false"))
			local = false;
		else
			return;
		char name[SQL_QNAME_MAX];
		size_t cap = t[j + 4].n + 1;
		char *value = malloc(cap);
		if (!value || !tok_string(&t[j + 2], name, sizeof name) || !tok_string(&t[j + 4], value, cap)) {
			free(value);
			return;
		}
		if (local) {
			free(value);
			out->kind = SQL_NONE;
			return;
		}
		for (char *c = name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		memcpy(out->name, name, sizeof name);
		out->value = value;
		out->kind = SQL_SET;
		out->flags |= SQL_F_SET_CONFIG;
		return;
	}
}

static void classify(struct stmt_scan *st, struct proto_sql_stmt *out)
{
	const struct proto_sqllex_tok *t = st->t;
	int n = st->n;
	out->kind = SQL_NONE;
	out->flags = st->flags;
	out->name[0] = 0;
	out->value = NULL;
	out->text = st->start;
	out->text_len = (uint32_t)(st->end - st->start);
	if (n == 0)
		return;
	if (is_kw(&t[0], "set")) {
		classify_set(st, 1, out);
	} else if (is_kw(&t[0], "reset")) {
		if (n >= 2 && is_kw(&t[1], "all"))
			out->kind = SQL_RESET_ALL;
		else if (n >= 3 && is_kw(&t[1], "time") && is_kw(&t[2], "zone"))
			out->kind = SQL_RESET, snprintf(out->name, sizeof out->name, "timezone");
		else if (n >= 2 && is_kw(&t[1], "session"))
			;   /* RESET SESSION AUTHORIZATION: a pin, if any, stays until DISCARD ALL */
		else if (n >= 2 && (is_kw(&t[1], "transaction")))
			;
		else if (n >= 2 && (t[1].type == SQLLEX_IDENT || t[1].type == SQLLEX_QIDENT)) {
			int end = setting_name(t, n, 1, out->name, sizeof out->name);
			out->kind = end == -2 ? SQL_PIN : end == n ? SQL_RESET : SQL_NONE;
			if (out->kind != SQL_RESET)
				out->name[0] = 0;
		}
	} else if (is_kw(&t[0], "prepare") && n >= 2 && !is_kw(&t[1], "transaction")) {
		out->kind = SQL_PREPARE;
		tok_ident(&t[1], out->name, sizeof out->name);
	} else if (is_kw(&t[0], "deallocate") && n >= 2) {
		int i = is_kw(&t[1], "prepare") ? 2 : 1;
		if (i < n && is_kw(&t[i], "all"))
			out->kind = SQL_DEALLOCATE_ALL;
		else if (i < n) {
			out->kind = SQL_DEALLOCATE;
			tok_ident(&t[i], out->name, sizeof out->name);
		}
	} else if (is_kw(&t[0], "discard") && n >= 2) {
		if (is_kw(&t[1], "all"))
			out->kind = SQL_DISCARD_ALL;
		else if (is_kw(&t[1], "temp") || is_kw(&t[1], "temporary"))
			out->kind = SQL_DISCARD_TEMP;
	} else if (is_kw(&t[0], "listen") && n >= 2) {
		out->kind = SQL_LISTEN;
		tok_ident(&t[1], out->name, sizeof out->name);
	} else if (is_kw(&t[0], "unlisten") && n >= 2) {
		if (is_op(&t[1], '*'))
			out->kind = SQL_UNLISTEN_ALL;
		else {
			out->kind = SQL_UNLISTEN;
			tok_ident(&t[1], out->name, sizeof out->name);
		}
	} else if (is_kw(&t[0], "create")) {
		int i = 1;
		if (i + 1 < n && is_kw(&t[i], "or") && is_kw(&t[i + 1], "replace"))
			i += 2;
		if (i < n && (is_kw(&t[i], "global") || is_kw(&t[i], "local")))
			i++;
		if (i < n && (is_kw(&t[i], "temp") || is_kw(&t[i], "temporary")) && !st->on_commit_drop)
			out->kind = SQL_TEMP_OBJECT;
	} else if (is_kw(&t[0], "declare") && n >= 2) {
		if (st->with_hold) {
			out->kind = SQL_HOLD_CURSOR;
			tok_ident(&t[1], out->name, sizeof out->name);
		}
	} else if (is_kw(&t[0], "close") && n >= 2) {
		if (is_kw(&t[1], "all"))
			out->kind = SQL_CLOSE_ALL;
		else {
			out->kind = SQL_CLOSE;
			tok_ident(&t[1], out->name, sizeof out->name);
		}
	} else if (is_kw(&t[0], "load")) {
		out->kind = SQL_PIN;
	} else if (is_kw(&t[0], "savepoint") && n >= 2) {
		out->kind = SQL_SAVEPOINT;
		tok_ident(&t[1], out->name, sizeof out->name);
	} else if ((is_kw(&t[0], "rollback") || is_kw(&t[0], "abort")) && n >= 3) {
		int i = 1;
		if (is_kw(&t[i], "work") || is_kw(&t[i], "transaction"))
			i++;
		if (i < n && is_kw(&t[i], "to")) {
			i++;
			if (i < n && is_kw(&t[i], "savepoint"))
				i++;
			if (i < n) {
				out->kind = SQL_ROLLBACK_TO;
				tok_ident(&t[i], out->name, sizeof out->name);
			}
		}
	} else if (is_kw(&t[0], "release") && n >= 2) {
		int i = is_kw(&t[1], "savepoint") ? 2 : 1;
		if (i < n) {
			out->kind = SQL_RELEASE;
			tok_ident(&t[i], out->name, sizeof out->name);
		}
	}
	if (out->kind == SQL_NONE && st->into_temp)
		out->kind = SQL_TEMP_OBJECT;
	if (out->kind == SQL_NONE && st->set_configs)
		classify_set_config(st, out);
}

/* Watch every token of a statement for what can hide anywhere in it. */
static void watch(struct stmt_scan *st, const struct proto_sqllex_tok *t)
{
	if ((t->type == SQLLEX_IDENT || t->type == SQLLEX_QIDENT) && t->n >= 16 && t->n <= 30) {
		char w[32];
		tok_ident(t, w, sizeof w);
		if (!strcmp(w, "pg_advisory_lock") || !strcmp(w, "pg_advisory_lock_shared") ||
		    !strcmp(w, "pg_try_advisory_lock") || !strcmp(w, "pg_try_advisory_lock_shared"))
			st->flags |= SQL_F_ADVISORY_LOCK;
		else if (!strcmp(w, "pg_advisory_unlock_all"))
			st->flags |= SQL_F_ADVISORY_UNLOCK_ALL;
	}
	if ((t->type == SQLLEX_IDENT || t->type == SQLLEX_QIDENT) && t->n >= 10 && t->n <= 12) {
		char w[16];
		tok_ident(t, w, sizeof w);
		if (!strcmp(w, "set_config"))
			st->set_configs++;
	}
	if (t->type == SQLLEX_IDENT) {
		/* SELECT ... INTO [LOCAL | GLOBAL] TEMP[ORARY] [TABLE] name */
		bool selecting = st->n > 0 && (is_kw(&st->t[0], "select") || is_kw(&st->t[0], "with"));
		if (selecting && (is_kw(t, "temp") || is_kw(t, "temporary")) &&
		    (is_kw(&st->prev, "into") ||
		     ((is_kw(&st->prev, "local") || is_kw(&st->prev, "global")) && is_kw(&st->prev2, "into"))))
			st->into_temp = true;
		if (is_kw(t, "hold") && is_kw(&st->prev, "with"))
			st->with_hold = true;
		if (is_kw(t, "drop") && is_kw(&st->prev, "commit") && is_kw(&st->prev2, "on"))
			st->on_commit_drop = true;
		/* CREATE FUNCTION ... BEGIN ATOMIC ... END: its semicolons are its own */
		if (st->routine) {
			if (is_kw(t, "begin") || (st->depth && is_kw(t, "case")))
				st->depth++;
			else if (st->depth && is_kw(t, "end"))
				st->depth--;
		} else if (st->n > 0 && st->n <= 6 && is_kw(&st->t[0], "create") &&
			   (is_kw(t, "function") || is_kw(t, "procedure"))) {
			st->routine = true;
		}
	}
	st->prev2 = st->prev;
	st->prev = *t;
}

/* Most queries are one plain SELECT, INSERT, UPDATE or DELETE that cannot touch
 * session state: tell those apart in one pass over the bytes, before lexing.
 * Conservative: anything unusual (a second statement, a comment first, an
 * advisory-lock call, SELECT ... INTO) goes to the full scan. */
/* One byte the fast scan stopped at: 1 = the query is plain (a final ';'),
 * -1 = it needs the lexer, 0 = carry on. */
static int plain_look(const char *sql, const char *c, const char *e, bool selecting)
{
	switch (*c) {
	case ';':
		for (const char *r = c + 1; r < e; r++)
			if (!isspace((unsigned char)*r) && *r != ';')
				return -1;   /* a second statement */
		return 1;
	case '-':
		return c + 1 < e && c[1] == '-' ? -1 : 0;   /* comments: lex them */
	case '/':
		return c + 1 < e && c[1] == '*' ? -1 : 0;
	case 'v':
	case 'V':   /* pg_advisory_... */
		return c - sql >= 2 && (c[-1] | 0x20) == 'd' && (c[-2] | 0x20) == 'a' ? -1 : 0;
	case '_':   /* set_config(...) */
		return c - sql >= 3 && (c[-1] | 0x20) == 't' && (c[-2] | 0x20) == 'e' && (c[-3] | 0x20) == 's' ? -1 : 0;
	case 'n':
	case 'N':   /* SELECT ... INTO [TEMP] */
		return selecting && c - sql >= 1 && e - c >= 3 && (c[-1] | 0x20) == 'i' && (c[1] | 0x20) == 't' &&
		       (c[2] | 0x20) == 'o' ? -1 : 0;
	}
	return 0;
}

/* Bytes worth a second look: what could start a second statement or a comment,
 * and the letter pairs of pg_advisory_* ("dv"), set_config ("t_") and, after
 * SELECT, INTO ("int"). This runs on every simple query in transaction mode, so
 * with SSE2 it tests 16 bytes at a time, pairs included (a byte-table loop cost
 * 12 instructions a byte: most of the pooler's own work in a pgbench -S
 * transaction). The scan starts after the first word, so c[-1] is readable. */
static int plain_rest(const char *sql, const char *c, const char *e, bool selecting)
{
#ifdef __SSE2__
	const __m128i fold = _mm_set1_epi8(0x20);
	const __m128i into = selecting ? _mm_set1_epi8(-1) : _mm_setzero_si128();
#define EQ(v, ch) _mm_cmpeq_epi8((v), _mm_set1_epi8(ch))
	for (; e - c >= 17; c += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)c);
		__m128i prev = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(c - 1)), fold);
		__m128i next = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(c + 1)), fold);
		__m128i lx = _mm_or_si128(x, fold);
		__m128i hit = _mm_or_si128(_mm_or_si128(EQ(x, ';'), EQ(x, '-')), EQ(x, '/'));
		hit = _mm_or_si128(hit, _mm_and_si128(EQ(prev, 'd'), EQ(lx, 'v')));
		hit = _mm_or_si128(hit, _mm_and_si128(EQ(prev, 't'), EQ(x, '_')));
		hit = _mm_or_si128(hit, _mm_and_si128(into, _mm_and_si128(_mm_and_si128(EQ(prev, 'i'), EQ(lx, 'n')),
									  EQ(next, 't'))));
		unsigned mask = (unsigned)_mm_movemask_epi8(hit);
		while (mask) {
			int r = plain_look(sql, c + __builtin_ctz(mask), e, selecting);
			if (r)
				return r;
			mask &= mask - 1;
		}
	}
#undef EQ
#endif
	static const bool look[256] = { [';'] = 1, ['-'] = 1, ['/'] = 1, ['v'] = 1, ['V'] = 1,
					['_'] = 1, ['n'] = 1, ['N'] = 1 };
	for (; c < e; c++) {
		if (!look[(unsigned char)*c])
			continue;
		int r = plain_look(sql, c, e, selecting);
		if (r)
			return r;
	}
	return 1;
}

/* Up to 8 letters, lowercased, one per byte, first letter lowest. */
#define W8(a, b, c, d, e, f, g, h)                                                                   \
	((uint64_t)(a) | (uint64_t)(b) << 8 | (uint64_t)(c) << 16 | (uint64_t)(d) << 24 |           \
	 (uint64_t)(e) << 32 | (uint64_t)(f) << 40 | (uint64_t)(g) << 48 | (uint64_t)(h) << 56)

/* First words of statements that leave the session alone. */
static bool plain_word(uint64_t w)
{
	switch (w & 0xff) {
	case 'b': return w == W8('b', 'e', 'g', 'i', 'n', 0, 0, 0);
	case 'c': return w == W8('c', 'o', 'm', 'm', 'i', 't', 0, 0) || w == W8('c', 'o', 'p', 'y', 0, 0, 0, 0) ||
			 w == W8('c', 'a', 'l', 'l', 0, 0, 0, 0);
	case 'd': return w == W8('d', 'e', 'l', 'e', 't', 'e', 0, 0);
	case 'e': return w == W8('e', 'n', 'd', 0, 0, 0, 0, 0) || w == W8('e', 'x', 'p', 'l', 'a', 'i', 'n', 0);
	case 'f': return w == W8('f', 'e', 't', 'c', 'h', 0, 0, 0);
	case 'i': return w == W8('i', 'n', 's', 'e', 'r', 't', 0, 0);
	case 'l': return w == W8('l', 'o', 'c', 'k', 0, 0, 0, 0);
	case 'm': return w == W8('m', 'o', 'v', 'e', 0, 0, 0, 0) || w == W8('m', 'e', 'r', 'g', 'e', 0, 0, 0);
	case 's': return w == W8('s', 'e', 'l', 'e', 'c', 't', 0, 0) || w == W8('s', 't', 'a', 'r', 't', 0, 0, 0) ||
			 w == W8('s', 'h', 'o', 'w', 0, 0, 0, 0);
	case 't': return w == W8('t', 'a', 'b', 'l', 'e', 0, 0, 0) || w == W8('t', 'r', 'u', 'n', 'c', 'a', 't', 'e');
	case 'u': return w == W8('u', 'p', 'd', 'a', 't', 'e', 0, 0);
	case 'v': return w == W8('v', 'a', 'l', 'u', 'e', 's', 0, 0);
	}
	return false;
}

static bool ascii_letter(unsigned char c) { return (unsigned char)((c | 0x20) - 'a') < 26; }

bool proto_sql_plain(const char *sql, size_t len)
{
	const char *p = sql, *e = sql + len;
	while (p < e && (unsigned char)*p <= ' ' && isspace((unsigned char)*p))
		p++;
	uint64_t w = 0;
	size_t k = 0;
#ifdef __SSE2__
	if (e - p >= 16) {
		/* the first word's letters 16 bytes at a time: a byte loop cost ~100
		 * instructions of the ~330 this takes for pgbench's SELECT */
		__m128i x = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)p), _mm_set1_epi8(0x20));
		__m128i letter = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('a' - 1)),
					       _mm_cmplt_epi8(x, _mm_set1_epi8('z' + 1)));
		k = (size_t)__builtin_ctz(~(unsigned)_mm_movemask_epi8(letter));
		if (k > 8)
			return false;   /* no plain word is that long */
		memcpy(&w, p, sizeof w);   /* little-endian, as W8 */
		w |= 0x2020202020202020ull;
		if (k < 8)
			w &= (1ull << (8 * k)) - 1;
	} else
#endif
	{
		for (; p + k < e && ascii_letter((unsigned char)p[k]); k++) {
			if (k == 8)
				return false;   /* no plain word is that long */
			w |= (uint64_t)((unsigned char)p[k] | 0x20) << (8 * k);
		}
	}
	/* p[k] is no letter: a digit, '_' or a byte of a multibyte letter would
	 * carry the word on */
	if (k == 0 || (p + k < e && ((unsigned char)(p[k] - '0') < 10 || p[k] == '_' || (unsigned char)p[k] >= 0x80)) ||
	    !plain_word(w))
		return false;
	return plain_rest(sql, p + k, e, w == W8('s', 'e', 'l', 'e', 'c', 't', 0, 0)) > 0;
}
#undef W8

/* The next token for the scan. An unclosed block comment ends the input: it
 * holds no statement (the server rejects the string anyway). */
static struct proto_sqllex_tok next_tok(struct proto_sqllex *l)
{
	struct proto_sqllex_tok t = proto_sqllex_next(l);
	if (t.type == SQLLEX_BAD && (t.flags & SQLLEX_F_COMMENT))
		t.type = SQLLEX_END;
	return t;
}

int proto_sql_scan(const char *sql, size_t len, struct proto_sql_stmt *out, int max, int *nstmts)
{
	struct proto_sqllex l;
	proto_sqllex_init(&l, sql, len);
	/* the scan state is big; one per thread */
	static _Thread_local struct stmt_scan st;
	int found = 0, index = 0;
	memset(&st, 0, offsetof(struct stmt_scan, t));
	for (;;) {
		struct proto_sqllex_tok t = next_tok(&l);
		bool end = t.type == SQLLEX_END || (is_op(&t, ';') && st.depth == 0);
		if (!end) {
			if (st.total == 0)
				st.start = t.p;
			st.end = t.p + t.n;
			if (st.n < STMT_TOKS)
				st.t[st.n++] = t;
			st.total++;
			watch(&st, &t);
			continue;
		}
		if (st.total > 0) {
			struct proto_sql_stmt s;
			classify(&st, &s);
			s.index = (uint16_t)index++;
			if ((s.kind != SQL_NONE || (s.flags & ~SQL_F_SET_LOCAL)) && found < max)
				out[found++] = s;
			else
				free(s.value);
		}
		if (t.type == SQLLEX_END)
			break;
		memset(&st, 0, offsetof(struct stmt_scan, t));
	}
	if (nstmts)
		*nstmts = index;
	return found;
}

/* ---- whole statements: ending a block, resetting a session ---- */

static bool stmt_end(const struct proto_sqllex_tok *t) { return t->type == SQLLEX_END || is_op(t, ';'); }

/* The rest of the input lexes: an unterminated quote or comment anywhere makes
 * the server reject the whole string before it runs any statement of it. */
static bool lexes_to_end(struct proto_sqllex *l)
{
	for (;;) {
		struct proto_sqllex_tok t = proto_sqllex_next(l);
		if (t.type == SQLLEX_BAD)
			return false;
		if (t.type == SQLLEX_END)
			return true;
	}
}

/* The statement that starts with t is {ROLLBACK | ABORT | COMMIT | END} [WORK |
 * TRANSACTION] [AND NO CHAIN], all of it: ROLLBACK TO SAVEPOINT stays in the
 * block, AND CHAIN opens a new one, the PREPARED forms are not allowed in one. */
static bool block_end_stmt(struct proto_sqllex *l, struct proto_sqllex_tok t)
{
	if (!is_kw(&t, "rollback") && !is_kw(&t, "abort") && !is_kw(&t, "commit") && !is_kw(&t, "end"))
		return false;
	t = proto_sqllex_next(l);
	if (is_kw(&t, "work") || is_kw(&t, "transaction"))
		t = proto_sqllex_next(l);
	if (is_kw(&t, "and")) {
		t = proto_sqllex_next(l);
		if (!is_kw(&t, "no"))
			return false;
		t = proto_sqllex_next(l);
		if (!is_kw(&t, "chain"))
			return false;
		t = proto_sqllex_next(l);
	}
	return stmt_end(&t);
}

bool proto_sql_ends_block(const char *sql, size_t len)
{
	struct proto_sqllex l;
	proto_sqllex_init(&l, sql, len);
	struct proto_sqllex_tok t;
	do   /* empty statements first run nothing */
		t = proto_sqllex_next(&l);
	while (is_op(&t, ';'));
	return block_end_stmt(&l, t) && lexes_to_end(&l);
}

bool proto_sql_commits_block(const char *sql, size_t len)
{
	struct proto_sqllex l;
	proto_sqllex_init(&l, sql, len);
	struct proto_sqllex_tok t;
	do
		t = proto_sqllex_next(&l);
	while (is_op(&t, ';'));
	return (is_kw(&t, "commit") || is_kw(&t, "end")) && block_end_stmt(&l, t) && lexes_to_end(&l);
}

/* The statement that starts with first is DISCARD ALL or RESET ALL, all of it.
 * Reads the statement to its end either way. */
static bool reset_stmt(struct proto_sqllex *l, struct proto_sqllex_tok first)
{
	struct proto_sqllex_tok all = proto_sqllex_next(l), t = all;
	int words = 1;
	for (; !stmt_end(&t); t = proto_sqllex_next(l))
		words++;
	return words == 2 && (is_kw(&first, "discard") || is_kw(&first, "reset")) && is_kw(&all, "all");
}

bool proto_sql_resets_session(const char *sql, size_t len)
{
	struct proto_sqllex l;
	proto_sqllex_init(&l, sql, len);
	if (!lexes_to_end(&l))
		return false;
	proto_sqllex_init(&l, sql, len);
	for (;;) {
		struct proto_sqllex_tok t = proto_sqllex_next(&l);
		if (t.type == SQLLEX_END)
			return false;
		if (!is_op(&t, ';') && reset_stmt(&l, t))
			return true;
	}
}

void proto_sql_free(struct proto_sql_stmt *s, int n)
{
	for (int i = 0; i < n; i++) {
		free(s[i].value);
		s[i].value = NULL;
	}
}

const char *proto_sql_tag(const struct proto_sql_stmt *s)
{
	switch (s->kind) {
	case SQL_SET: return s->flags & SQL_F_SET_CONFIG ? NULL : "SET";
	case SQL_RESET: return s->flags & SQL_F_SET_FORM ? "SET" : "RESET";
	case SQL_RESET_ALL: return "RESET";
	case SQL_PREPARE: return "PREPARE";
	case SQL_DEALLOCATE: return "DEALLOCATE";
	case SQL_DEALLOCATE_ALL: return "DEALLOCATE ALL";
	case SQL_DISCARD_ALL: return "DISCARD ALL";
	case SQL_DISCARD_TEMP: return "DISCARD TEMP";
	case SQL_LISTEN: return "LISTEN";
	case SQL_UNLISTEN:
	case SQL_UNLISTEN_ALL: return "UNLISTEN";
	case SQL_HOLD_CURSOR: return "DECLARE CURSOR";
	case SQL_CLOSE: return "CLOSE CURSOR";
	case SQL_CLOSE_ALL: return "CLOSE CURSOR ALL";
	case SQL_SAVEPOINT: return "SAVEPOINT";
	case SQL_ROLLBACK_TO: return "ROLLBACK";
	case SQL_RELEASE: return "RELEASE";
	default: return NULL;
	}
}

int proto_sql_quote(const char *s, char *out, size_t cap)
{
	bool backslash = strchr(s, '\\') != NULL;
	size_t need = (backslash ? 1 : 0) + 2 + 1;   /* E, the quotes, the NUL */
	for (const char *c = s; *c; c++)
		need += (*c == '\'' || (*c == '\\' && backslash)) ? 2 : 1;
	if (need > cap)
		return -1;
	size_t k = 0;
	if (backslash)
		out[k++] = 'E';
	out[k++] = '\'';
	for (const char *c = s; *c; c++) {
		if (*c == '\'' || (*c == '\\' && backslash))
			out[k++] = *c;
		out[k++] = *c;
	}
	out[k++] = '\'';
	out[k] = 0;
	return (int)k;
}
