/* pool/admin_int.h: what pool/admin.c (sessions, jobs, commands) and
 * pool/admin_show.c (what a SHOW collects and how it is rendered) share:
 * the wire encoding of results and the job that gathers a command's answer
 * from every shard. Not for the rest of the pool layer. */
#ifndef PGRING_ADMIN_INT_H
#define PGRING_ADMIN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "pool/admin.h"

struct shard;
struct client;

/* ---- result encoding (protocol v3 messages appended to a strbuf) ---- */

size_t admin_msg_begin(struct strbuf *o, char type);   /* returns where its length goes */
void admin_msg_end(struct strbuf *o, size_t at);
/* RowDescription: types as PgBouncer's tupdesc ('s' text, 'i' int4, 'q' int8,
 * 'N' numeric, 'T' a time shown as text, 'b' bytea), one name each. */
void admin_rowdesc(struct strbuf *o, const char *types, const char *const *names);
/* DataRow: per type char one argument: 's'/'T' const char * (NULL: SQL NULL;
 * 'T' takes text already formatted), 'i' int, 'q' int64_t, 'N' uint64_t, 'b' NULL. */
void admin_row(struct strbuf *o, const char *types, ...);
void admin_complete(struct strbuf *o, const char *tag);
void admin_error_msg(struct strbuf *o, const char *severity, const char *sqlstate, const char *msg);
void admin_notice_msg(struct strbuf *o, const char *msg, const char *detail);
/* A wall-clock time (microseconds since the epoch) as PgBouncer shows it. */
void admin_format_time(uint64_t wall_us, char *out, size_t n);

/* ---- jobs: one command's answer gathered from every shard ---- */

/* Per (database, user): what SHOW POOLS, STATS*, DATABASES, USERS add up. */
enum admin_agg_value {
	AGG_CL_ACTIVE, AGG_CL_WAITING, AGG_SV_ACTIVE, AGG_SV_IDLE, AGG_SV_USED, AGG_SV_LOGIN, AGG_MAXWAIT_US,
	AGG_ASSIGNS, AGG_XACTS, AGG_QUERIES, AGG_RECV, AGG_SENT, AGG_XACT_US, AGG_QUERY_US, AGG_WAIT_US,
	AGG_SERVER_PARSES, AGG_LOGINS, AGG_CLOSE_NEEDED, AGG_N
};

struct admin_agg {
	char db[64], user[64];
	int mode;                       /* enum pool_mode */
	int64_t v[AGG_N];
};

/* Shard-wide numbers a part carries (SHOW LISTS, MEM, SHARDS, and the
 * answers of actions: found, busy). */
enum admin_part_value {
	PV_CLIENTS, PV_LOGIN_CLIENTS, PV_SERVERS, PV_POOLS, PV_FREE_LEASES, PV_ADMIN_CLIENTS, PV_FOUND, PV_BUSY,
	PV_N
};

/* One shard's share of the answer; written only by that shard (or by the
 * control thread, for the last part), read by the origin once it is back. */
struct admin_part {
	struct strbuf rows;             /* DataRow messages, in the shard's order */
	uint32_t nrows;
	struct admin_agg *agg;
	int nagg, capagg;
	int64_t v[PV_N];
	int status;                     /* control: 0 or -1 */
	char msg[256];                  /* control: why it failed (SET) */
};

enum admin_op {
	ADMIN_OP_SHOW = 1,              /* collect cmd.show */
	ADMIN_OP_KILL_CLIENT,           /* fail client cmd.id */
	ADMIN_OP_KILL,                  /* fail the database's clients, close its servers */
	ADMIN_OP_RECONNECT,             /* its servers close as they come free */
	ADMIN_OP_BUSY,                  /* count servers still in use (PAUSE) or to close (WAIT_CLOSE) */
	ADMIN_OP_CONTROL,               /* only the control thread: cmd.show, or RELOAD */
};

struct admin_job {
	struct client *client;          /* the asker; NULL once it left (origin's thread only) */
	int origin, nshards, pending;
	int op;
	struct admin_cmd cmd;
	bool extended;                  /* asked by Execute: no RowDescription, no ReadyForQuery */
	uint64_t wall_us, mono_us;      /* when it was asked (times in rows are shown in wall time) */
	struct admin_part part[];       /* [nshards + 1]: a shard's, then the control thread's */
};

/* pool/admin_show.c */
bool admin_show_needs_shards(int show);
bool admin_show_needs_control(int show);
/* RowDescription of a SHOW (for Describe too); false: it has none (HELP). */
bool admin_show_rowdesc(const struct admin_cmd *cmd, struct strbuf *o);
/* What shard s holds for the job, into part (on s's thread). */
void admin_show_collect(struct shard *s, struct admin_job *job, struct admin_part *part);
/* On the control thread. */
void admin_show_collect_control(struct admin_job *job, struct admin_part *part);
/* The rows (no RowDescription, no CommandComplete) of a SHOW, from the parts
 * gathered (job may be one with no parts for a SHOW that needs none). */
void admin_show_rows(struct shard *s, const struct admin_job *job, struct strbuf *o);
bool admin_user_is(const char *list, const char *user);
void admin_help(struct strbuf *o);
const char *admin_version_string(void);
bool admin_paused_all(void);
bool admin_db_flag_paused(const char *db);

#endif
