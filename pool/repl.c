/* pool/repl.c: replication connections pass through (pool/repl.h). A client
 * and its own server are linked once the server has logged in; from then on
 * every message goes across as it arrives, in pieces, never looked into, with
 * the same back-pressure as pooled traffic. */
#include "pool/repl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "pool/server.h"
#include "proto/proto.h"

int repl_parse_mode(const char *value)
{
	static const char *const off[] = { "false", "off", "no", "0" }, *const on[] = { "true", "on", "yes", "1" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(value, off[i]) == 0)
			return REPL_NONE;
		if (strcasecmp(value, on[i]) == 0)
			return REPL_PHYSICAL;
	}
	return strcasecmp(value, "database") == 0 ? REPL_LOGICAL : -1;
}

const char *repl_mode_value(int mode)
{
	return mode == REPL_LOGICAL ? "database" : "true";
}

static bool linked(const struct client *cl)
{
	return client_repl(cl) && client_repl(cl)->state == SV_ACTIVE;
}

void repl_start(struct client *cl)
{
	struct pool *p = cl->pool;
	if (!client_extra(cl)) {
		client_fail(cl, "53200", "out of memory");
		return;
	}
	if (!registry_take_limits(p->shared)) {
		client_fail(cl, "53300", "too many connections for database \"%s\" or user \"%s\" (max_db_connections, max_user_connections)",
			    p->db_name, p->user);
		return;
	}
	struct server *sv = server_connect(p, cl, false);
	if (!sv) {
		registry_give_limits(p->shared);
		client_fail(cl, p->last_sqlstate[0] ? p->last_sqlstate : "08006", "%s",
			    p->last_error[0] ? p->last_error : "could not connect to the server");
		return;
	}
	cl->extra->repl = sv;
	client_set_state(cl, CL_REPL);
	stat_add(&p->stats->replication_connects, 1);
	LOGF(LOG_INFO, cl->conn.id, "replication connection (%s): its own server, connection %llu",
	     cl->replication == REPL_LOGICAL ? "logical" : "physical", (unsigned long long)sv->conn.id);
}

void repl_server_ready(struct server *sv)
{
	struct client *cl = sv->repl_client;
	if (!cl) {
		server_close(sv, "its replication client left");
		return;
	}
	server_set_state(sv, SV_ACTIVE);
	sv->ready_once = true;
	if (!client_welcome_server(cl, sv))
		return;   /* the client failed: repl_client_gone closes the server */
	if (!cl->conn.recv_wanted)
		conn_recv_on(&cl->conn);
}

int repl_client_begin(struct client *cl, uint8_t type)
{
	if (!linked(cl)) {
		/* a client does not speak before ReadyForQuery */
		client_fail(cl, "08P01", "replication connection sent message type %d before its login completed", type);
		return PROTO_STOP;
	}
	return PROTO_STREAM;
}

/* Queue bytes for the peer; stop reading the sender while the peer's queue is
 * over max_pending_bytes (its drained callback reads again). false: no memory. */
static bool pass(struct conn *from, struct conn *to, const uint8_t *p, uint32_t n, uint32_t buf)
{
	if (!conn_queue(to, p, n, buf))
		return false;
	if (to->out_bytes > (uint32_t)from->shard->cfg->max_pending_bytes)
		conn_recv_off(from);
	return true;
}

void repl_client_bytes(struct client *cl, const uint8_t *p, uint32_t n, uint32_t buf)
{
	if (linked(cl) && !pass(&cl->conn, &client_repl(cl)->conn, p, n, buf))
		client_fail(cl, "53200", "out of memory");
}

void repl_server_bytes(struct server *sv, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct client *cl = sv->repl_client;
	if (!cl || cl->state != CL_REPL)
		return;
	stat_add(&sv->pool->stats->bytes_out, n);
	if (!pass(&sv->conn, &cl->conn, p, n, buf))
		client_fail(cl, "53200", "out of memory");
}

void repl_client_gone(struct client *cl)
{
	struct server *sv = client_repl(cl);
	if (!sv)
		return;
	cl->extra->repl = NULL;
	sv->repl_client = NULL;
	server_close(sv, "its replication client left");
}

void repl_server_gone(struct server *sv)
{
	struct pool *p = sv->pool;
	registry_give_limits(p->shared);
	struct client *cl = sv->repl_client;
	if (!cl)
		return;
	sv->repl_client = NULL;
	cl->extra->repl = NULL;   /* repl_client is set only with it */
	if (sv->ready_once) {
		/* it has what the server sent (a FATAL, the end of a stream) */
		client_close_quietly(cl, "its replication server closed the connection");
		return;
	}
	if (sv->fatal_state[0])
		client_fail(cl, sv->fatal_state, "%s", sv->fatal_msg);
	else
		client_fail(cl, p->last_sqlstate[0] ? p->last_sqlstate : "08006", "%s",
			    p->last_error[0] ? p->last_error : "could not connect to the server");
}
