/* pool/params.h: a session's parameter settings (startup parameters, -c options,
 * what ParameterStatus reports). Clients keep what they asked for, servers what
 * they are set to; on lease pgring replays the difference as SET statements. */
#ifndef PGRING_PARAMS_H
#define PGRING_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Settings per record; more is refused (p->full). Not a key: PostgreSQL has
 * some 400 settings of its own, and the memory a client can make pgring keep
 * is bounded in bytes by max_client_session_size (pool/session.c). */
#define PARAMS_MAX 4096

struct param {
	char *name;
	char *value;
};

struct params {
	struct param *v;
	uint64_t hash;      /* order-independent digest of (name, value) pairs */
	uint32_t bytes;     /* strlen(name) + strlen(value) + 2 of each: what it holds */
	uint16_t n;
	/* bit fields: a client holds two of these, and idle clients are their struct */
	uint16_t cap : 14;  /* up to PARAMS_MAX */
	uint16_t failed : 1; /* an update was lost (no memory, or PARAMS_MAX): the record
			      * cannot be trusted; its owner checks at its next step */
	uint16_t full : 1;  /* ... because of PARAMS_MAX */
};
_Static_assert(PARAMS_MAX < (1 << 14), "struct params: cap holds PARAMS_MAX");

/* Set (or replace) name=value. Names compare case-insensitively. false: no
 * memory or PARAMS_MAX reached; p->failed then stays set until params_clear. */
bool params_set(struct params *p, const char *name, const char *value);
const char *params_get(const struct params *p, const char *name);
void params_remove(struct params *p, const char *name);
void params_clear(struct params *p);
bool params_copy(struct params *dst, const struct params *src);
/* Is this a parameter a client may set and a server must carry (not read-only
 * facts like server_version, not pgring's own "pgring." settings)? */
bool params_is_session(const char *name);
/* Write "SET a TO 'x';SET b TO 'y'" making `have` match `want`, where a name
 * missing from either side stands for its value in `defaults`. Returns the
 * length (0: nothing differs), or -1 if cap is too small. */
int params_diff_sql(const struct params *want, const struct params *have,
		    const struct params *defaults, char *out, size_t cap);
/* A statement_timeout value ("250", "1ms", '0.5s', "2min") in milliseconds,
 * PostgreSQL's units and its default unit (ms); -1 if it cannot be read. */
int64_t params_timeout_ms(const char *value);
/* Parse a startup "options" value ("-c a=b --c=d -c x=y\ z") into p. false on syntax error. */
bool params_parse_options(struct params *p, const char *options);

#endif
