/* pool/session.h: what transaction pooling remembers of a client's session so
 * that it follows the client from server to server (pool/session.c). */
#ifndef PGRING_SESSION_H
#define PGRING_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/sql.h"

struct client;
struct client_sess;
struct lease;
struct server;

/* The client's record beyond its settings, allocated on first use; NULL: no memory. */
struct client_sess *session_get(struct client *cl);
/* A statement the lease's server completed (tag: its CommandComplete): what it did. */
void session_apply(struct lease *l, const struct proto_sql_stmt *fx, const char *tag);
void session_sqlprep_closed(struct lease *l, const char *name);
/* A ReadyForQuery reached the client: settings changed in a transaction become
 * the client's if it committed. */
void session_ready(struct lease *l, char status);
/* Make sv's session the client's (settings, SQL PREPAREs) with one hidden
 * query: at attach (in_stream NULL: before any request, counted in
 * sv->hidden) or between the client's requests on lease in_stream. */
void session_restore(struct client *cl, struct server *sv, struct lease *in_stream);
void session_set_pins(struct client *cl, uint8_t pins);
/* The transaction died with its server: its pending settings go. */
void session_lost(struct client *cl);
/* sv ran DISCARD ALL (or RESET ALL): its record of settings and statements goes. */
void session_forget_server(struct server *sv);
void session_free(struct client *cl);

#endif
