/* pool/repl.h: replication connections (startup parameter replication=true or
 * database). Each gets a server connection of its own, opened with the same
 * parameter and the client's startup parameters, never pooled nor reused; once
 * the server has logged in, the client is welcomed with the server's own
 * parameters and PID, and messages pass both ways untouched (the walsender's
 * protocol: replication commands, CopyBoth, base backups), whatever the pool
 * mode. They count against max_db_connections and max_user_connections, not
 * the pool's size. */
#ifndef PGRING_REPL_H
#define PGRING_REPL_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct server;

enum repl_mode {
	REPL_NONE = 0,
	REPL_PHYSICAL,   /* replication=true: pg_basebackup, pg_receivewal, a standby */
	REPL_LOGICAL,    /* replication=database: pg_recvlogical, a subscription */
};

/* The startup parameter's value, as PostgreSQL reads it; -1: not a valid value. */
int repl_parse_mode(const char *value);
/* The value the server is sent for a mode. */
const char *repl_mode_value(int mode);

/* The client authenticated: open its server (the client is CL_REPL, or failed). */
void repl_start(struct client *cl);
/* Its server logged in: welcome the client, and from now on pass messages. */
void repl_server_ready(struct server *sv);
/* Framer callbacks once linked: how a message travels, and its bytes. */
int repl_client_begin(struct client *cl, uint8_t type);
void repl_client_bytes(struct client *cl, const uint8_t *p, uint32_t n, uint32_t buf);
void repl_server_bytes(struct server *sv, const uint8_t *p, uint32_t n, uint32_t buf);
/* The client is closing: its server goes too. */
void repl_client_gone(struct client *cl);
/* The server closed (server_close): the client is told, or simply closed if it
 * was already streaming (it got whatever the server sent, as directly). */
void repl_server_gone(struct server *sv);

#endif
