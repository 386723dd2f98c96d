/* pool/admin.h: the admin console, PgBouncer's virtual database "pgbouncer"
 * (also "pgring") on the normal listeners: its command parser, its sessions
 * (simple and extended protocol), and the hooks the rest of the pool layer
 * calls. What a SHOW collects on each shard lives in pool/admin_show.c. */
#ifndef PGRING_ADMIN_H
#define PGRING_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct shard;
struct shard_msg;

/* ---- the command language (pool/admin_cmd.c; pure, no I/O) ---- */

enum admin_verb {
	ADMIN_EMPTY = 0,      /* nothing but blanks and semicolons */
	ADMIN_SHOW, ADMIN_SET, ADMIN_PAUSE, ADMIN_RESUME, ADMIN_SUSPEND, ADMIN_DISABLE, ADMIN_ENABLE,
	ADMIN_RECONNECT, ADMIN_KILL, ADMIN_KILL_CLIENT, ADMIN_RELOAD, ADMIN_SHUTDOWN, ADMIN_WAIT_CLOSE,
	ADMIN_RESET,          /* RESET key | RESET ALL (arg "all"): drop the console's SETs */
};

/* What SHOW shows; SHOW_PARAM: one of the session settings PgBouncer fakes
 * for drivers (client_encoding, ...), arg names it. */
enum admin_show {
	SHOW_HELP = 0, SHOW_VERSION, SHOW_CONFIG, SHOW_DATABASES, SHOW_POOLS, SHOW_CLIENTS, SHOW_SERVERS,
	SHOW_STATS, SHOW_STATS_TOTALS, SHOW_STATS_AVERAGES, SHOW_TOTALS, SHOW_LISTS, SHOW_USERS, SHOW_MEM,
	SHOW_DNS_HOSTS, SHOW_DNS_ZONES, SHOW_STATE, SHOW_PEERS, SHOW_PEER_POOLS, SHOW_SOCKETS,
	SHOW_ACTIVE_SOCKETS, SHOW_FDS, SHOW_STATUS, SHOW_SHARDS, SHOW_NODES, SHOW_TOPOLOGY, SHOW_PINS,
	SHOW_PARAM,
	SHOW_SETTING,         /* SHOW <a [pgring] setting>: its value in force, arg names it */
	SHOW_N
};

enum admin_shutdown_mode { ADMIN_SHUTDOWN_NOW = 0, ADMIN_SHUTDOWN_WAIT_FOR_SERVERS, ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS };

#define ADMIN_ARG_MAX 64      /* a database name, a client id, a setting's name */
#define ADMIN_VALUE_MAX 256   /* a SET value */

struct admin_cmd {
	int verb;                 /* enum admin_verb */
	int show;                 /* enum admin_show, for ADMIN_SHOW */
	int mode;                 /* enum admin_shutdown_mode, for ADMIN_SHUTDOWN */
	uint64_t id;              /* KILL_CLIENT */
	bool of_user;             /* DISABLE USER name, ENABLE USER name: arg is a user */
	char arg[ADMIN_ARG_MAX];  /* the database (PAUSE db, ...), SHOW's word, SET's key */
	char value[ADMIN_VALUE_MAX]; /* SET's value, unquoted */
};

/* Parse one console command (PgBouncer's grammar: `WORD [WORD] [;]`, words
 * bare [0-9A-Za-z_] or "double quoted"; `SET key =|TO word|'string'`).
 * Returns 0, or -1 with PgBouncer's message in err and the SQLSTATE in
 * sqlstate[6] (42601: no such command or bad arguments). */
int admin_parse(const char *q, struct admin_cmd *out, char *err, size_t errlen, char sqlstate[6]);
const char *admin_show_name(int show);   /* "POOLS", ... */
bool admin_console_db(const char *name); /* "pgbouncer" or "pgring" */

/* ---- pause, disable: read on the data path without locks ---- */

/* New transactions of db (or of every database) wait: PAUSE or KILL. */
bool admin_db_paused(const char *db);
/* New clients of db are refused: DISABLE. */
bool admin_db_disabled(const char *db);
/* New logins of user are refused: DISABLE USER. */
bool admin_user_disabled(const char *user);
/* Some pause or disable flag may be set (one relaxed load). */
bool admin_any_flag(void);

/* ---- hooks for pool/client.c and pool/layer.c (the shard's thread) ---- */

/* The client asked for the console database: it gets its console state.
 * true: it was let in by peer (the Unix socket, the process owner's user)
 * or it failed; false: authenticate it as any client, then admin_login. */
bool admin_startup(struct client *cl);
/* Authenticated: let it in if admin_users or stats_users name it. */
void admin_login(struct client *cl);
int admin_begin(struct client *cl, uint8_t type, uint32_t len);   /* the framer's begin */
bool admin_whole(struct client *cl, const uint8_t *msg, uint32_t len);
void admin_client_free(struct client *cl);
void admin_message(struct shard *s, const struct shard_msg *m);  /* POOL_MSG_ADMIN */
void admin_tick(struct shard *s);

#endif
