/* proto/sqllex.c: the SQL tokenizer of proto/sqllex.h. It splits text where
 * PostgreSQL's scan.l splits it (strings, identifiers, comments, dollar quotes)
 * and decodes nothing: its users read the raw text of the tokens they need. */
#include "proto/sqllex.h"

#include <string.h>

/* By hand rather than <ctype.h> (a call and a locale table per byte); bytes
 * >= 0x80 are letters to PostgreSQL. */
static bool digit(unsigned char c) { return (unsigned char)(c - '0') < 10; }
static bool word_start(unsigned char c) { return (unsigned char)((c | 0x20) - 'a') < 26 || c == '_' || c >= 0x80; }

/* The bytes that continue a word (and a dollar quote's tag, '$' aside), by
 * table: the word loop is most of the cost of a read-only proof, and a table
 * takes a third of the instructions of the tests above per byte. */
static const bool word_char[256] = {
	['$'] = true, ['0' ... '9'] = true, ['A' ... 'Z'] = true, ['_'] = true, ['a' ... 'z'] = true,
	[0x80 ... 0xff] = true,
};

/* The end of a block comment opened at p, or NULL if the input ends inside
 * it. PostgreSQL nests them: each opening needs its own closing. */
static const char *comment_end(const char *p, const char *end)
{
	size_t depth = 0;
	while (end - p >= 2) {
		if (p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			p += 2;
			if (--depth == 0)
				return p;
		} else {
			p++;
		}
	}
	return NULL;
}

/* Past blanks and comments from *s. False when a block comment is still open
 * at the end; *s is then at its start. A -- comment ends at \n or \r, as in
 * scan.l: text after a lone \r is SQL again. */
static bool skip_space(const char **s, const char *end)
{
	const char *p = *s;
	for (;;) {
		while (p < end && sqllex_blank((unsigned char)*p))
			p++;
		if (end - p < 2) {
			break;
		} else if (p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n' && *p != '\r')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			const char *c = comment_end(p, end);
			if (!c) {
				*s = p;
				return false;
			}
			p = c;
		} else {
			break;
		}
	}
	*s = p;
	return true;
}

/* Past the closing quote q of a run whose opening quote is at p, or NULL if the
 * input ends first. A doubled quote stands for itself; with escape (E''), a
 * backslash takes the next byte. *flags gets SQLLEX_F_BACKSLASH for a backslash
 * that does not escape. */
static const char *quote_end(const char *p, const char *end, char q, bool escape, uint8_t *flags)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (escape) {
				if (++p == end)
					return NULL;
			} else {
				*flags |= SQLLEX_F_BACKSLASH;
			}
		} else if (*p == q) {
			if (end - p < 2 || p[1] != q)
				return p + 1;
			p++;
		}
	}
	return NULL;
}

/* The length of the $tag$ at p ("$$" included), or 0 if this '$' opens no
 * dollar quote: a tag is an identifier without '$' that does not start with a
 * digit (p[1] is not a digit here: $1 is a parameter). */
static size_t dollar_tag(const char *p, const char *end)
{
	const char *t = p + 1;
	while (t < end && *t != '$' && word_char[(unsigned char)*t])
		t++;
	return t < end && *t == '$' ? (size_t)(t - p) + 1 : 0;
}

/* Past the first "$tag$" after the opening one at p (tag bytes long), or NULL.
 * The first occurrence is the one scan.l ends the quote at. */
static const char *dollar_end(const char *p, const char *end, size_t tag)
{
	for (const char *c = p + tag; (size_t)(end - c) >= tag; c++) {
		c = memchr(c, '$', (size_t)(end - c) - tag + 1);
		if (!c)
			return NULL;
		if (memcmp(c, p, tag) == 0)
			return c + tag;
	}
	return NULL;
}

/* Past a number at p: digits [. digits] [e [+-] digits], or . digits [...].
 * What follows starts a new token (0x1F is 0 then x1F, 1_000 is 1 then _000,
 * 1into is 1 then into), as servers before 15 read it; 15 and later reject it,
 * and 16 reads 0x1F and 1_000 as numbers. Splitting keeps the words seen. */
static const char *number_end(const char *p, const char *end)
{
	while (p < end && digit((unsigned char)*p))
		p++;
	if (p < end && *p == '.')
		for (p++; p < end && digit((unsigned char)*p); p++)
			;
	if (p < end && (*p | 0x20) == 'e') {
		const char *q = p + 1;
		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q < end && digit((unsigned char)*q))
			for (p = q; p < end && digit((unsigned char)*p); p++)
				;
	}
	return p;
}

/* A quoted token opened at q (after its prefix, if any). */
static const char *quoted(struct proto_sqllex_tok *t, const char *q, const char *end, uint8_t flags)
{
	t->flags = flags;
	t->type = *q == '"' ? SQLLEX_QIDENT : SQLLEX_STRING;
	return quote_end(q, end, *q, flags & SQLLEX_F_ESCAPE, &t->flags);
}

/* A token at p that starts with a letter: a word, or a prefixed quote (E'',
 * U&'', U&"", B'', X'', N''). Returns its end, NULL if unterminated. */
static const char *word(struct proto_sqllex_tok *t, const char *p, const char *end)
{
	if (end - p >= 2 && p[1] == '\'') {
		switch (*p | 0x20) {
		case 'e': return quoted(t, p + 1, end, SQLLEX_F_ESCAPE);
		case 'b':
		case 'x':
		case 'n': return quoted(t, p + 1, end, SQLLEX_F_PREFIX);
		}
	} else if ((*p | 0x20) == 'u' && end - p >= 3 && p[1] == '&' && (p[2] == '\'' || p[2] == '"')) {
		return quoted(t, p + 2, end, SQLLEX_F_UNICODE);
	}
	t->type = SQLLEX_IDENT;
	for (p++; p < end && word_char[(unsigned char)*p]; p++)
		;
	return p;
}

/* A token at p that starts with '$': $1, $tag$...$tag$ or a lone '$'. */
static const char *dollar(struct proto_sqllex_tok *t, const char *p, const char *end)
{
	if (end - p >= 2 && digit((unsigned char)p[1])) {
		t->type = SQLLEX_PARAM;
		for (p++; p < end && digit((unsigned char)*p); p++)
			;
		return p;
	}
	size_t tag = dollar_tag(p, end);
	if (!tag) {
		t->type = SQLLEX_OP;   /* scan.l returns the '$' alone; the parser rejects it */
		t->flags = SQLLEX_F_STRAY;
		return p + 1;
	}
	t->type = SQLLEX_STRING;
	t->flags = SQLLEX_F_DOLLAR;
	return dollar_end(p, end, tag);
}

struct proto_sqllex_tok proto_sqllex_next(struct proto_sqllex *lx)
{
	struct proto_sqllex_tok t = { 0 };
	const char *p = lx->s, *end = lx->end, *e;
	bool closed = skip_space(&p, end);
	t.p = p;
	if (!closed) {
		t.flags = SQLLEX_F_COMMENT;
		e = NULL;
	} else if (p >= end) {
		lx->s = p;
		return t;   /* SQLLEX_END */
	} else if (word_start((unsigned char)*p)) {
		e = word(&t, p, end);
	} else if (*p == '\'' || *p == '"') {
		e = quoted(&t, p, end, 0);
	} else if (*p == '$') {
		e = dollar(&t, p, end);
	} else if (digit((unsigned char)*p) || (*p == '.' && end - p >= 2 && digit((unsigned char)p[1]))) {
		t.type = SQLLEX_NUMBER;
		e = number_end(p, end);
	} else {
		t.type = SQLLEX_OP;
		e = p + 1;
	}
	if (!e) {
		t.type = SQLLEX_BAD;   /* the rest of the input is inside it */
		e = end;
	}
	t.n = (uint32_t)(e - p);
	lx->s = e;
	return t;
}
