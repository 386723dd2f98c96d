/* proto/sqlroute.h: what routing needs to know of a query string: whether a
 * leading comment asks for a target (`--!pgring target=replica`), and whether
 * every statement in it is certainly read-only, so that a read/write split may
 * send it to a streaming replica. A "no" only costs a trip to the primary; a
 * wrong "yes" fails on the replica: when in doubt, the answer is no. */
#ifndef PGRING_SQLROUTE_H
#define PGRING_SQLROUTE_H

#include <stdbool.h>
#include <stddef.h>

enum proto_target { PROTO_TARGET_NONE = 0, PROTO_TARGET_PRIMARY, PROTO_TARGET_REPLICA, PROTO_TARGET_ANY };

/* "primary", "read-write" -> PRIMARY; "replica", "standby", "read-only",
 * "prefer-standby", "prefer-replica" -> REPLICA; "any" -> ANY (any case);
 * anything else -> NONE. */
int proto_target_parse(const char *s, size_t len);

/* The target named by a hint comment at the very start of sql (after
 * whitespace): `--!pgring target=replica` up to the end of the line, or
 * `/\*!pgring target=primary*\/`. Other key=value words may appear; NONE when
 * there is no hint or its value is unknown. */
int proto_sql_target_hint(const char *sql, size_t len);

/* True only when sql holds at least one statement and every one is certainly
 * read-only: SELECT (WITH, parentheses, set operations) without locking
 * clauses, INTO, data-modifying CTEs or calls of functions that write or are
 * bound to the session's node (nextval, advisory locks, set_config, ...);
 * VALUES; TABLE; SHOW; EXPLAIN without ANALYZE of such a statement. False for
 * anything else, and for text it cannot fully read (unterminated quotes or
 * comments, backslashes in plain strings, U&"..." names). No allocation. */
bool proto_sql_read_only(const char *sql, size_t len);

#endif
