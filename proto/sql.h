/* proto/sql.h: just enough SQL to see what a statement does to a session:
 * SET/RESET, PREPARE/DEALLOCATE, DISCARD, LISTEN, temporary objects, WITH HOLD
 * cursors, session advisory locks. A lexer that knows quoting, comments and
 * dollar quotes splits a query string into statements; nothing else is parsed. */
#ifndef PGRING_SQL_H
#define PGRING_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proto_sql_kind {
	SQL_NONE = 0,
	SQL_SET,            /* name = value (the string set_config() would take) */
	SQL_RESET,          /* name back to its session default */
	SQL_RESET_ALL,
	SQL_PREPARE,        /* name; text is the whole PREPARE statement */
	SQL_DEALLOCATE,     /* name */
	SQL_DEALLOCATE_ALL,
	SQL_DISCARD_ALL,
	SQL_DISCARD_TEMP,
	SQL_LISTEN,         /* name */
	SQL_UNLISTEN,       /* name */
	SQL_UNLISTEN_ALL,
	SQL_TEMP_OBJECT,    /* CREATE TEMP ..., SELECT ... INTO TEMP */
	SQL_HOLD_CURSOR,    /* DECLARE name ... WITH HOLD */
	SQL_CLOSE,          /* CLOSE name */
	SQL_CLOSE_ALL,
	SQL_PIN,            /* session state pgring cannot restore elsewhere (SET SESSION AUTHORIZATION, LOAD, ...) */
	SQL_SAVEPOINT,      /* name */
	SQL_ROLLBACK_TO,    /* ROLLBACK TO [SAVEPOINT] name */
	SQL_RELEASE,        /* RELEASE [SAVEPOINT] name */
};

#define SQL_F_ADVISORY_LOCK       1   /* takes a session-level advisory lock */
#define SQL_F_ADVISORY_UNLOCK_ALL 2   /* pg_advisory_unlock_all() */
#define SQL_F_SET_LOCAL           4   /* SET LOCAL: lasts until the transaction ends */
#define SQL_F_SET_FORM            8   /* SQL_RESET written as SET (TO DEFAULT, ROLE NONE, TIME ZONE LOCAL) */
#define SQL_F_SET_CONFIG         16   /* SQL_SET by a set_config(name, value, false) call */

#define SQL_NAME_MAX 64               /* NAMEDATALEN */
#define SQL_QNAME_MAX (2 * SQL_NAME_MAX + 2) /* a setting's name may be qualified: "ext.name" */

struct proto_sql_stmt {
	uint16_t index;                /* among the non-empty statements of the string */
	uint8_t kind;                  /* enum proto_sql_kind */
	uint8_t flags;                 /* SQL_F_* */
	char name[SQL_QNAME_MAX];      /* identifier as PostgreSQL folds it */
	char *value;                   /* SQL_SET: malloc'd; free with proto_sql_free */
	const char *text;              /* the statement inside the scanned string */
	uint32_t text_len;
};

/* Scan sql[0..len) and fill out[] with the statements that touch session state
 * (kind or flags set), at most max of them. Returns how many were filled;
 * *nstmts (may be NULL) gets the number of non-empty statements. */
int proto_sql_scan(const char *sql, size_t len, struct proto_sql_stmt *out, int max, int *nstmts);
void proto_sql_free(struct proto_sql_stmt *s, int n);
/* True when sql is certainly one statement that leaves the session alone (a
 * plain SELECT, INSERT, ...): proto_sql_scan would find nothing. Cheap. */
bool proto_sql_plain(const char *sql, size_t len);

/* True when the string's first statement (after blanks, comments and empty
 * statements) ends a transaction block: ROLLBACK, ABORT, COMMIT or END, with
 * WORK, TRANSACTION or AND NO CHAIN at most. Not ROLLBACK TO [SAVEPOINT], AND
 * CHAIN or the PREPARED forms. False when the string does not lex (an
 * unterminated quote or comment): the server runs none of it. */
bool proto_sql_ends_block(const char *sql, size_t len);
/* The same, when that statement is COMMIT or END (it asks for a commit). */
bool proto_sql_commits_block(const char *sql, size_t len);

/* True when a statement of the string is DISCARD ALL or RESET ALL (quotes and
 * comments respected: SELECT 'discard all' is not); false when it does not lex. */
bool proto_sql_resets_session(const char *sql, size_t len);

/* The CommandComplete tag the statement's kind produces, or NULL if any will do. */
const char *proto_sql_tag(const struct proto_sql_stmt *s);

/* Write s as a single-quoted SQL literal into out (cap bytes with the NUL);
 * returns the length, or -1 if it does not fit. */
int proto_sql_quote(const char *s, char *out, size_t cap);

#endif
