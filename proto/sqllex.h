/* proto/sqllex.h: the one SQL tokenizer of proto/, shared by proto/sql.c
 * (session effects) and proto/sqlroute.c (read-only proofs): PostgreSQL's
 * quoting, comments and dollar quotes, by one set of rules. Internal to proto/. */
#ifndef PGRING_SQLLEX_H
#define PGRING_SQLLEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum proto_sqllex_type {
	SQLLEX_END = 0,   /* no more input */
	SQLLEX_IDENT,     /* a word: keyword or unquoted identifier (a$b, _x1, ü) */
	SQLLEX_QIDENT,    /* "quoted identifier" or U&"..." */
	SQLLEX_STRING,    /* '...', E'...', U&'...', B'...', X'...', N'...', $tag$...$tag$ */
	SQLLEX_NUMBER,    /* 1, 1.5, .5, 5., 1e-3 */
	SQLLEX_PARAM,     /* $1 */
	SQLLEX_OP,        /* one byte of an operator or punctuation: ; ( ) , . = + - * ... */
	SQLLEX_BAD,       /* a string, identifier, dollar quote or block comment the input
			   * ends inside: it runs from its start to the end of the input */
};

/* What a token's text holds beyond its type. */
#define SQLLEX_F_ESCAPE    1   /* E'...': backslashes escape */
#define SQLLEX_F_BACKSLASH 2   /* a string other than E'...' holds a backslash: it would
				* escape if standard_conforming_strings were off */
#define SQLLEX_F_UNICODE   4   /* U&'...' or U&"...": backslash escapes name code points */
#define SQLLEX_F_PREFIX    8   /* B'...', X'...' or N'...' */
#define SQLLEX_F_DOLLAR   16   /* $tag$...$tag$ */
#define SQLLEX_F_COMMENT  32   /* SQLLEX_BAD: the unclosed thing is a block comment */
#define SQLLEX_F_STRAY    64   /* SQLLEX_OP '$' that opens nothing ($a): the server rejects it */

/* 16 bytes, returned in two registers: the lexer runs on every routed query. */
struct proto_sqllex_tok {
	const char *p;    /* the raw text: prefix and quotes included */
	uint32_t n;       /* query strings are below 1 GB (the protocol's limit) */
	uint8_t type;     /* enum proto_sqllex_type */
	uint8_t flags;    /* SQLLEX_F_* */
};

struct proto_sqllex {
	const char *s, *end;   /* next byte to read; the end of the input (not read) */
};

static inline void proto_sqllex_init(struct proto_sqllex *lx, const char *sql, size_t len)
{
	lx->s = sql;
	lx->end = sql + len;
}

/* The next token after blanks and comments; SQLLEX_END at the end of the input
 * (and from then on). Never reads at or past lx->end; no allocation. */
struct proto_sqllex_tok proto_sqllex_next(struct proto_sqllex *lx);

/* ASCII by hand rather than <ctype.h>: isspace() and tolower() are calls and
 * locale tables per byte, and PostgreSQL's lexer rules are ASCII. */
static inline bool sqllex_blank(unsigned char c) { return c == ' ' || (unsigned char)(c - '\t') < 5; }
static inline char sqllex_lower(char c) { return (unsigned char)(c - 'A') < 26 ? (char)(c | 0x20) : c; }

/* t is the word kw (lower case), in any case. Inlined, strlen(kw) is a constant. */
static inline bool proto_sqllex_kw(const struct proto_sqllex_tok *t, const char *kw)
{
	size_t n = strlen(kw);
	if (t->type != SQLLEX_IDENT || t->n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (sqllex_lower(t->p[i]) != kw[i])
			return false;
	return true;
}

/* t is the one-byte operator or punctuation c. */
static inline bool proto_sqllex_op(const struct proto_sqllex_tok *t, char c)
{
	return t->type == SQLLEX_OP && t->p[0] == c;
}

#endif
