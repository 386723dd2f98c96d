/* pool/server.c: a server connection: connect, startup and authentication as a
 * PostgreSQL client (cleartext, md5, SCRAM, or SCRAM with keys passed through
 * from a client's login); while leased, its replies go to the lease
 * (pool/lease.c); between leases, the queries pgring runs itself (reset,
 * rollback, session restore) with their results swallowed; cancels; close. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/listen.h"
#include "pool/pool.h"
#include "pool/repl.h"
#include "pool/server.h"
#include "pool/session.h"
#include "tls/tls.h"

static const struct proto_frame_ops server_ops;
static const struct conn_ops server_conn_ops;

static struct shard *shard_of(struct server *sv) { return sv->conn.shard; }

/* Which of its pool's lists a server in state st is on. */
static struct list *list_of(struct pool *p, enum server_state st)
{
	switch (st) {
	case SV_IDLE: return &p->idle;
	case SV_CONNECTING:
	case SV_LOGIN:
	case SV_ACTIVE:
	case SV_RESETTING: return &p->used;
	default: return NULL;
	}
}

static gauge_t *state_gauge(struct stats_pool *ps, enum server_state st)
{
	switch (st) {
	case SV_CONNECTING:
	case SV_LOGIN: return &ps->sv_login;
	case SV_IDLE: return &ps->sv_idle;
	case SV_ACTIVE: return &ps->sv_active;
	case SV_RESETTING: return &ps->sv_resetting;
	default: return NULL;
	}
}

void server_set_state(struct server *sv, enum server_state st)
{
	struct pool *p = sv->pool;
	INVARIANT(st == SV_ACTIVE || st == SV_CLOSED || !sv->lease);
	if (sv->replication || sv->listener) {
		/* outside the pool: on none of its lists, counted apart */
		if ((sv->state == SV_CLOSED) != (st == SV_CLOSED))
			gauge_add(sv->listener ? &p->stats->sv_listener : &p->stats->sv_replication, st == SV_CLOSED ? -1 : 1);
		sv->state = st;
		return;
	}
	gauge_t *old = state_gauge(p->stats, sv->state), *new = state_gauge(p->stats, st);
	if (old != new) {
		if (old)
			gauge_add(old, -1);
		if (new)
			gauge_add(new, 1);
	}
	if (p->node && (sv->state == SV_ACTIVE) != (st == SV_ACTIVE)) {
		/* the node's load, for routing: this shard's own line */
		_Atomic int64_t *active = &p->node->shard[p->shard->id].active;
		atomic_store_explicit(active, atomic_load_explicit(active, memory_order_relaxed) + (st == SV_ACTIVE ? 1 : -1),
				      memory_order_relaxed);
	}
	struct list *from = list_linked(&sv->link) ? list_of(p, sv->state) : NULL, *to = list_of(p, st);
	if (from != to) {
		if (from) {
			list_del(&sv->link);
			*(from == &p->idle ? &p->n_idle : &p->n_used) -= 1;
		}
		if (to) {
			list_prepend(to, &sv->link);   /* most recently used first */
			*(to == &p->idle ? &p->n_idle : &p->n_used) += 1;
		}
	}
	sv->state = st;
}

/* ---- connect ---- */

static int resolve(struct server *sv, const struct config_db *db)
{
	/* a host name's addresses rotate: one that refused a connection moves
	 * addr_next on to the next one */
	return addr_resolve(sv->pool->shard->topo, db->host, db->port > 0 ? db->port : 5432, "/var/run/postgresql",
			    sv->pool->addr_next, &sv->addr, &sv->addrlen);
}

struct server *server_connect(struct pool *p, struct client *repl, bool listener)
{
	struct shard *s = p->shard;
	struct server *sv = calloc(1, sizeof *sv);
	if (!sv)
		return NULL;
	list_init(&sv->link);
	sv->pool = p;
	if (repl) {
		sv->replication = repl->replication;
		sv->repl_client = repl;
	}
	sv->listener = listener;
	sv->connect_us = s->now_us;
	sv->txn_status = 'I';
	int fam = resolve(sv, p->db);
	if (fam < 0) {
		snprintf(p->last_error, sizeof p->last_error, "could not resolve host name \"%s\"", p->db->host);
		strcpy(p->last_sqlstate, "08001");
		free(sv);
		return NULL;
	}
	int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		bool limit = errno == EMFILE || errno == ENFILE;
		snprintf(p->last_error, sizeof p->last_error, "cannot open a server connection: %s", strerror(errno));
		strcpy(p->last_sqlstate, limit ? "53300" : "08001");
		free(sv);
		return NULL;
	}
	if (fam != AF_UNIX)
		shard_tcp_options(s->cfg, fd);
	conn_init(&sv->conn, s, fd, &server_conn_ops, BUF_GROUP_SERVER);
	proto_framer_init(&sv->conn.fr, false, (uint32_t)s->cfg->max_packet_size);
	sv->state = SV_CLOSED;
	server_set_state(sv, SV_CONNECTING);
	conn_connect(&sv->conn, (struct sockaddr *)&sv->addr, sv->addrlen);
	gauge_add(&s->stats->servers, 1);
	stat_add(&p->stats->server_connects, 1);
	LOGF(LOG_DEBUG, sv->conn.id, "connecting to %s for %s/%s", p->db->host ? p->db->host : "unix socket",
	     p->db_name, p->user);
	return sv;
}

static const char *server_user(struct server *sv)
{
	return sv->pool->db->user ? sv->pool->db->user : sv->pool->user;
}

static void login_failed(struct server *sv, const char *sqlstate, const char *msg);

/* A replication client's own startup parameters (application_name names a
 * standby for synchronous_standby_names), after the entry's. */
static void put_client_params(struct server *sv, struct proto_out *o)
{
	if (!sv->repl_client)
		return;
	proto_put_str(o, "replication");
	proto_put_str(o, repl_mode_value(sv->replication));
	const struct params *cp = &sv->repl_client->startup;
	for (int i = 0; i < cp->n; i++) {
		proto_put_str(o, cp->v[i].name);
		proto_put_str(o, cp->v[i].value);
	}
}

static void send_startup(struct server *sv)
{
	const struct config_db *db = sv->pool->db;
	uint8_t local[2048], *mem = local;
	size_t cap = sizeof local;
	if (sv->repl_client) {
		for (int i = 0; i < sv->repl_client->startup.n; i++)
			cap += strlen(sv->repl_client->startup.v[i].name) + strlen(sv->repl_client->startup.v[i].value) + 2;
		if (cap > sizeof local && !(mem = malloc(cap))) {
			login_failed(sv, "53200", "out of memory");
			return;
		}
	}
	struct proto_out o;
	proto_out_init(&o, mem, cap);
	proto_begin(&o, 0);
	proto_put_u32(&o, PROTO_VERSION_30);
	proto_put_str(&o, "user");
	proto_put_str(&o, server_user(sv));
	proto_put_str(&o, "database");
	proto_put_str(&o, db->dbname ? db->dbname : sv->pool->db_name);
	const char *extra[][2] = {
		{ "client_encoding", db->client_encoding }, { "DateStyle", db->datestyle },
		{ "TimeZone", db->timezone },
		{ "application_name", sv->listener ? "pgring listener" : db->application_name },
	};
	for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
		if (extra[i][1] && !(sv->repl_client && params_get(&sv->repl_client->startup, extra[i][0]))) {
			proto_put_str(&o, extra[i][0]);
			proto_put_str(&o, extra[i][1]);
		}
	}
	put_client_params(sv, &o);
	proto_put_u8(&o, 0);
	proto_end(&o);
	if (o.overflow)
		login_failed(sv, "08P01", "startup packet too long");
	else
		conn_queue_out(&sv->conn, &o);
	if (mem != local)
		free(mem);
}

/* ---- TLS to the server (PgBouncer's server_tls_sslmode, per entry and node) ---- */

static int server_sslmode(struct server *sv)
{
	const struct pool *p = sv->pool;
	const struct shard *s = p->shard;
	const struct config_node *node = NULL;
	if (p->ci >= 0 && p->ni >= 0 && s->topo && p->ci < s->topo->nclusters)
		node = &s->topo->clusters[p->ci].cc->nodes[p->ni];
	return config_server_sslmode(s->cfg, p->db, node);
}

/* As libpq and PgBouncer: TLS is asked for over TCP only; allow is prefer. */
static bool wants_tls(struct server *sv)
{
	return sv->addr.un.sun_family != AF_UNIX && shard_of(sv)->cfg->server_tls &&
	       server_sslmode(sv) != SSLMODE_DISABLE;
}

static void ask_tls(struct server *sv)
{
	uint8_t mem[8];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 0);
	proto_put_u32(&o, PROTO_SSL_REQUEST);
	proto_end(&o);
	conn_queue_out(&sv->conn, &o);
	sv->tls_asked = true;
}

static void send_startup(struct server *sv);
static void login_failed(struct server *sv, const char *sqlstate, const char *msg);

/* The server's one-byte answer to SSLRequest. Anything after it was sent in
 * the clear and is not read (the class of CVE-2021-23222). */
static void tls_answer(struct server *sv, const uint8_t *data, uint32_t n)
{
	sv->tls_asked = false;
	int mode = server_sslmode(sv);
	char msg[120];
	if (data[0] == 'S' && n == 1) {
		struct tls_session *t = conn_tls_new(&sv->conn, shard_of(sv)->cfg->server_tls, false);
		if (!t) {
			login_failed(sv, "53200", "out of memory");
			return;
		}
		enum tls_verify v = mode == SSLMODE_VERIFY_FULL ? TLS_VERIFY_FULL
				  : mode == SSLMODE_VERIFY_CA ? TLS_VERIFY_CA : TLS_VERIFY_NONE;
		tls_session_set_peer(t, v, sv->pool->db->host);
		conn_tls_start(&sv->conn, false);
		send_startup(sv);   /* encrypted once the handshake is done */
	} else if (data[0] == 'N' && n == 1) {
		if (mode >= SSLMODE_REQUIRE)
			login_failed(sv, "08001", "server does not support SSL, but SSL was required (server_tls_sslmode)");
		else
			send_startup(sv);
	} else if (data[0] == 'E') {
		login_failed(sv, "08001", "server sent an error response during SSL exchange");
	} else {
		snprintf(msg, sizeof msg, "%s", n > 1 && (data[0] == 'S' || data[0] == 'N')
			 ? "server sent unencrypted data after its answer to SSLRequest"
			 : "received invalid response to SSL negotiation");
		login_failed(sv, "08P01", msg);
	}
}

static void server_connected(struct server *sv, int res)
{
	if (sv->state != SV_CONNECTING)
		return;
	if (res < 0) {
		struct pool *p = sv->pool;
		snprintf(p->last_error, sizeof p->last_error, "could not connect to server: %s", strerror(-res));
		p->addr_next++;   /* a host name with several addresses: try the next */
		strcpy(p->last_sqlstate, "08001");
		stat_add(&p->stats->server_connect_errors, 1);
		LOGF(LOG_INFO, sv->conn.id, "%s", p->last_error);   /* the pool reports failures, a line a second */
		sv->conn.eof = true;
		server_close(sv, NULL);
	} else {
		server_set_state(sv, SV_LOGIN);
		conn_recv_on(&sv->conn);
		if (wants_tls(sv))
			ask_tls(sv);
		else
			send_startup(sv);
	}
}

/* ---- login ---- */

static void login_failed(struct server *sv, const char *sqlstate, const char *msg)
{
	struct pool *p = sv->pool;
	snprintf(p->last_error, sizeof p->last_error, "%s", msg);
	snprintf(p->last_sqlstate, sizeof p->last_sqlstate, "%s", sqlstate);
	snprintf(sv->fatal_state, sizeof sv->fatal_state, "%s", sqlstate);
	snprintf(sv->fatal_msg, sizeof sv->fatal_msg, "%s", msg);
	stat_add(&p->stats->server_connect_errors, 1);
	LOGF(LOG_WARNING, sv->conn.id, "server login failed: %s", msg);
	server_close(sv, NULL);
}

/* auth_query's secret for p's user, learned at a client's login: by p, or by
 * another pool of the same (database, user) here (a cluster's are one per
 * node, and a client logs in through one of them). */
static const char *authq_secret(const struct pool *p)
{
	if (p->authq_secret)
		return p->authq_secret;
	for (const struct pool *o = pool_shard(p->shard)->pools; o; o = o->next)
		if (o->authq_secret && !strcmp(o->db_name, p->db_name) && !strcmp(o->user, p->user))
			return o->authq_secret;
	return NULL;
}

static const char *server_secret(struct server *sv)
{
	if (sv->pool->db->password)
		return sv->pool->db->password;
	const char *s = config_find_secret(shard_of(sv)->cfg, server_user(sv));
	if (!s && !sv->pool->db->user)
		s = authq_secret(sv->pool);   /* the client's own user, looked up by auth_query */
	return s;
}

static void login_auth(struct server *sv, const uint8_t *msg, uint32_t len)
{
	struct pool *p = sv->pool;
	struct proto_reader r;
	proto_reader_init(&r, msg + 5, len - 5);
	uint32_t code = proto_read_u32(&r);
	const char *secret = server_secret(sv);
	uint8_t mem[1024];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	switch (code) {
	case 0:
		return;
	case 3:
		if (!secret || auth_is_md5_secret(secret) || auth_is_scram_secret(secret)) {
			login_failed(sv, "28P01", "server asks for a cleartext password, and none is configured");
			return;
		}
		proto_password(&o, secret);
		break;
	case 5: {
		const uint8_t *salt = proto_read_bytes(&r, 4);
		if (!salt || !secret || auth_is_scram_secret(secret)) {
			login_failed(sv, "28P01", "server asks for md5, and no password or md5 secret is configured");
			return;
		}
		char resp[AUTH_MD5_LEN + 1];
		auth_md5_response(secret, server_user(sv), salt, resp);
		proto_password(&o, resp);
		break;
	}
	case 10: {
		bool offered = false, plus = false;
		for (;;) {
			const char *mech = proto_read_str(&r);
			if (r.bad || !*mech)
				break;
			if (strcmp(mech, AUTH_SCRAM_MECH) == 0)
				offered = true;
			else if (strcmp(mech, AUTH_SCRAM_PLUS_MECH) == 0)
				plus = true;
		}
		if (!offered) {
			login_failed(sv, "28000", "server offers no SASL mechanism pgring supports");
			return;
		}
		free(sv->scram);
		sv->scram = calloc(1, sizeof *sv->scram);
		static _Thread_local struct auth_scram_secret passthrough;
		int rc = -1;
		if (sv->scram && secret && !auth_is_scram_secret(secret) && !auth_is_md5_secret(secret))
			rc = auth_scram_client_init(sv->scram, secret, NULL, NULL);
		else if (sv->scram && secret && auth_is_scram_secret(secret) && p->have_client_key &&
			 auth_scram_parse_secret(secret, &passthrough) == 0)
			rc = auth_scram_client_init(sv->scram, NULL, p->scram_client_key, &passthrough);
		if (!rc)
			sv->scram->max_iterations = shard_of(sv)->cfg->max_server_scram_iterations;
		if (rc) {
			login_failed(sv, "28P01", "server asks for SCRAM, and pgring has no password for it "
				     "(a SCRAM secret in auth_file works once a client logged in with SCRAM)");
			return;
		}
		/* As libpq's channel_binding=prefer: over TLS, bind to the server's
		 * certificate when it offers PLUS, else say we could have ('y'). */
		uint8_t cb[64];
		size_t cb_len = sv->conn.tls && plus ? tls_session_peer_endpoint(sv->conn.tls->session, cb) : 0;
		if (cb_len)
			auth_scram_client_channel_binding(sv->scram, 'p', cb, cb_len);
		else if (sv->conn.tls)
			auth_scram_client_channel_binding(sv->scram, 'y', NULL, 0);
		LOGF(LOG_DEBUG, sv->conn.id, "server login: %s, channel binding %s",
		     cb_len ? AUTH_SCRAM_PLUS_MECH : AUTH_SCRAM_MECH,
		     cb_len ? "tls-server-end-point" : sv->conn.tls ? "supported, not offered" : "none");
		char out[512];
		int k = auth_scram_client_first(sv->scram, out, sizeof out);
		proto_sasl_initial(&o, cb_len ? AUTH_SCRAM_PLUS_MECH : AUTH_SCRAM_MECH, out, (size_t)(k > 0 ? k : 0));
		break;
	}
	case 11: {
		char out[1024];
		int k = sv->scram ? auth_scram_client_final(sv->scram, (const char *)msg + 9, len - 9, out, sizeof out) : -1;
		if (k < 0) {
			login_failed(sv, sv->scram && sv->scram->over_limit ? "54000" : "28P01",
				     sv->scram ? sv->scram->error : "unexpected SASL continue");
			return;
		}
		proto_sasl_response(&o, out, (size_t)k);
		break;
	}
	case 12:
		if (!sv->scram || auth_scram_client_verify(sv->scram, (const char *)msg + 9, len - 9)) {
			login_failed(sv, "28P01", "server's SCRAM signature does not verify");
			return;
		}
		free(sv->scram);
		sv->scram = NULL;
		return;
	default: {
		char why[96];
		snprintf(why, sizeof why, "server asks for an authentication method pgring does not support (%u)", code);
		login_failed(sv, "28000", why);
		return;
	}
	}
	conn_queue_out(&sv->conn, &o);
}

static void track_parameter(struct server *sv, const uint8_t *msg, uint32_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, msg + 5, len - 5);
	const char *name = proto_read_str(&r);
	const char *value = proto_read_str(&r);
	if (r.bad)
		return;
	if (sv->state == SV_LOGIN) {
		params_set(&sv->params, name, value);
		return;
	}
	if (!params_is_session(name))
		return;
	params_set(&sv->params, name, value);
	/* the server's canonical spelling of a value the client asked for */
	if (sv->lease && sv->state == SV_ACTIVE && !params_set(&sv->lease->client->params, name, value))
		client_fail(sv->lease->client, "53200", "out of memory");
}

/* The [databases] entry's connect_query runs once on each new server of a
 * pool, before any client gets it (as in PgBouncer); its results are dropped
 * and an error it raises is logged, otherwise ignored (PgBouncer's documented
 * rule). Replication and listening connections skip it. */
static bool start_connect_query(struct server *sv)
{
	const char *q = sv->pool->db->connect_query;
	if (!q || !*q || sv->replication || sv->listener)
		return false;
	if (!server_queue_query(sv, q)) {
		login_failed(sv, "53200", "out of memory sending connect_query");
		return true;
	}
	sv->connect_query_sent = true;
	return true;
}

static void login_message(struct server *sv, const uint8_t *msg, uint32_t len)
{
	switch (msg[0]) {
	case 'R':
		login_auth(sv, msg, len);
		break;
	case 'S':
		track_parameter(sv, msg, len);
		break;
	case 'K':
		if (len >= 13) {
			sv->backend_pid = proto_get_u32(msg + 5);
			sv->backend_key = proto_get_u32(msg + 9);
		}
		break;
	case 'E': {
		struct proto_error_fields f;
		proto_parse_error(msg + 5, len - 5, &f);
		if (!sv->connect_query_sent) {
			login_failed(sv, *f.sqlstate ? f.sqlstate : "08P01", f.message);
			break;
		}
		/* PgBouncer's documented rule: logged, otherwise ignored */
		LOGF(LOG_WARNING, sv->conn.id, "connect_query failed: %s (%s); the server is used anyway", f.message,
		     f.sqlstate);
		break;
	}
	case 'Z':
		sv->txn_status = len >= 6 ? (char)msg[5] : 'I';
		if (!sv->connect_query_sent && start_connect_query(sv))
			break;   /* the server is ready once it has run */
		LOGF(LOG_DEBUG, sv->conn.id, "server login done, backend pid %u", sv->backend_pid);
		if (sv->replication)
			repl_server_ready(sv);
		else if (sv->listener)
			listen_server_ready(sv);
		else
			pool_server_ready(sv);
		break;
	default:   /* NoticeResponse, NegotiateProtocolVersion: nothing to do */
		break;
	}
}

/* ---- relaying ---- */

static void hidden_message(struct server *sv, const uint8_t *msg, uint32_t len)
{
	if (msg[0] == 'Z') {
		sv->hidden--;
		sv->txn_status = len >= 6 ? (char)msg[5] : 'I';
		sv->last_rfq_us = shard_of(sv)->now_us;
		if (!sv->hidden && sv->state == SV_RESETTING)
			pool_server_ready(sv);
		else if (!sv->hidden && sv->state == SV_ACTIVE && sv->lease)
			client_cancel_due(sv->lease->client);   /* the restore is over: the client's request runs */
		return;
	}
	if (msg[0] == 'E') {
		struct proto_error_fields f;
		proto_parse_error(msg + 5, len - 5, &f);
		LOGF(LOG_WARNING, sv->conn.id, "pgring's own query failed on the server: %s (%s)", f.message, f.sqlstate);
		if (sv->lease)
			client_fail(sv->lease->client, "08P01", "could not restore session state on the server: %s",
				    f.message);
		sv->close_when_idle = true;
	}
}

static int server_begin(void *ctx, uint8_t type, uint32_t len)
{
	struct server *sv = ctx;
	if (sv->state == SV_CLOSED)
		return PROTO_STOP;
	if (sv->state == SV_LOGIN) {
		if (len > BUF_SCRATCH_SIZE) {
			login_failed(sv, "08P01", "server sent an oversized message during login");
			return PROTO_STOP;
		}
		return PROTO_WHOLE;
	}
	if (!sv->hidden && sv->state == SV_ACTIVE && sv->lease)
		return lease_reply_begin(sv->lease, type, len);
	if (sv->replication && sv->state == SV_ACTIVE)
		return PROTO_STREAM;   /* to its client as it comes (repl_server_bytes) */
	if (sv->listener)
		return PROTO_WHOLE;    /* a notification is delivered whole */
	if (!sv->hidden && type != 'N' && type != 'S' && type != 'A' && type != 'E') {
		/* nothing was asked of it: it and pgring are out of step, and whatever
		 * it says next would reach the wrong client */
		LOGF(LOG_ERROR, sv->conn.id, "server sent '%c' with nothing asked of it: out of step, closing it", type);
		stat_add(&shard_of(sv)->stats->protocol_errors, 1);
		server_close(sv, NULL);
		return PROTO_STOP;
	}
	if (type == 'D' || type == 'd')
		return PROTO_STREAM;
	return len <= BUF_SCRATCH_SIZE / 2 ? PROTO_WHOLE : PROTO_STREAM;
}

/* Session pooling: the client hears its server's FATAL as the server sent it
 * (the lease passes it on), and then nothing of pgring's own. */
static void note_relayed_fatal(struct server *sv, const uint8_t *msg, uint32_t len)
{
	struct proto_error_fields f;
	proto_parse_error(msg + 5, len - 5, &f);
	if (!proto_error_fatal(&f))
		return;
	snprintf(sv->fatal_state, sizeof sv->fatal_state, "%s", f.sqlstate);
	snprintf(sv->fatal_msg, sizeof sv->fatal_msg, "%s", f.message);
	sv->lease->client->server_fatal_relayed = true;
}

static bool server_whole(void *ctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct server *sv = ctx;
	if (sv->state == SV_LOGIN) {
		login_message(sv, msg, len);
		return sv->state != SV_CLOSED;
	}
	LOGF(LOG_TRACE, sv->conn.id, "from server: %c (%u bytes)%s%s", msg[0], len, sv->hidden ? " hidden" : "",
	     msg[0] == 'Z' && len >= 6 ? (msg[5] == 'I' ? " I" : msg[5] == 'T' ? " T" : " E") : "");
	if (msg[0] == 'S')
		track_parameter(sv, msg, len);
	if (sv->listener && (msg[0] == 'A' || msg[0] == 'E')) {
		if (!listen_server_message(sv, msg, len, buf) || msg[0] == 'A')
			return sv->state != SV_CLOSED;
	}
	if (msg[0] == 'A' && sv->lease && listen_pooled(sv->pool))
		return true;   /* the listener delivers it (a leased server listens for pg_listening_channels) */
	if (sv->hidden) {
		hidden_message(sv, msg, len);
		return sv->state != SV_CLOSED;
	}
	if (sv->state == SV_ACTIVE && sv->lease) {
		if (msg[0] == 'E' && sv->pool->mode == POOL_SESSION)
			note_relayed_fatal(sv, msg, len);
		lease_reply_whole(sv->lease, msg, len, buf);
		return sv->state != SV_CLOSED;
	}
	/* nobody is listening: an idle server only speaks to say it is going away */
	if (msg[0] == 'E') {
		struct proto_error_fields f;
		proto_parse_error(msg + 5, len - 5, &f);
		LOGF(LOG_INFO, sv->conn.id, "idle server says: %s (%s)", f.message, f.sqlstate);
		server_close(sv, NULL);
		return false;
	}
	return true;
}

static void server_bytes(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct server *sv = ctx;
	if (!sv->hidden && sv->state == SV_ACTIVE && sv->lease)
		lease_reply_bytes(sv->lease, p, n, buf);
	else if (sv->replication && sv->state == SV_ACTIVE)
		repl_server_bytes(sv, p, n, buf);
}

/* Replies of the client's own requests that pass unchanged: one slice. */
static uint32_t server_span(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct server *sv = ctx;
	if (sv->state != SV_ACTIVE || !sv->lease || sv->hidden || sv->listener)
		return 0;
	return lease_reply_span(sv->lease, p, n, buf, sv->conn.fr.max_len);
}

static const struct proto_frame_ops server_ops = {
	.begin = server_begin,
	.whole = server_whole,
	.bytes = server_bytes,
	.alloc = conn_frame_alloc,
	.release = conn_frame_release,
	.span = server_span,
};

static void server_data(struct server *sv, uint8_t *data, uint32_t n, uint32_t buf)
{
	if (sv->tls_asked) {
		tls_answer(sv, data, n);
		return;
	}
	int rc = proto_framer_feed(&sv->conn.fr, data, n, buf, &server_ops, sv);
	if (rc < 0 && sv->state != SV_CLOSED) {
		stat_add(&shard_of(sv)->stats->protocol_errors, 1);
		LOGF(LOG_WARNING, sv->conn.id, "server sent a malformed message (%s)",
		     rc == PROTO_BAD_LENGTH ? "bad length" : "out of memory");
		snprintf(sv->fatal_state, sizeof sv->fatal_state, "08P01");
		snprintf(sv->fatal_msg, sizeof sv->fatal_msg, "server sent a malformed message");
		server_close(sv, NULL);
		return;
	}
	/* back-pressure: a client that does not read stops its server */
	struct client *cl = sv->lease ? sv->lease->client : sv->repl_client;
	if (cl && sv->state == SV_ACTIVE && cl->conn.out_bytes > (uint32_t)shard_of(sv)->cfg->max_pending_bytes)
		conn_recv_off(&sv->conn);
}

static void server_drained(struct server *sv)
{
	struct client *cl = sv->lease ? sv->lease->client : sv->repl_client;
	if (cl && (cl->state == CL_ACTIVE || cl->state == CL_REPL) && !cl->conn.recv_wanted)
		client_drained(cl);
}

static void server_eof(struct server *sv, int err)
{
	struct pool *p = sv->pool;
	char why[200];
	if (err == EPROTO && sv->conn.tls)
		snprintf(why, sizeof why, "TLS handshake with server failed: %s", tls_session_error(sv->conn.tls->session));
	else
		snprintf(why, sizeof why, "server closed the connection unexpectedly%s%s", err ? ": " : "",
			 err ? strerror(err) : "");
	if (sv->state == SV_LOGIN || sv->state == SV_CONNECTING) {
		snprintf(p->last_error, sizeof p->last_error, "%s", why);
		strcpy(p->last_sqlstate, "08006");
	}
	LOGF(sv->lease ? LOG_WARNING : LOG_INFO, sv->conn.id, "%s%s%s", why, sv->fatal_msg[0] ? ": " : "",
	     sv->fatal_msg);
	server_close(sv, NULL);
}

/* Unlink from everything and close; the budget slot goes back to the pool.
 * A client leased the server loses it (with the FATAL it sent, if any). */
void server_close(struct server *sv, const char *why)
{
	if (sv->state == SV_CLOSED)
		return;
	if (why)
		LOGF(LOG_INFO, sv->conn.id, "closing server connection: %s", why);
	if (!sv->conn.eof && sv->state != SV_CONNECTING && sv->conn.fd >= 0) {
		uint8_t mem[8];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_terminate(&o);
		conn_queue_out(&sv->conn, &o);
	}
	server_set_state(sv, SV_CLOSED);
	if (!sv->replication && !sv->listener)
		pool_server_gone(sv);
	proto_framer_reset(&sv->conn.fr, &server_ops, sv);
	conn_close(&sv->conn);
	if (sv->replication) {
		repl_server_gone(sv);
		return;
	}
	if (sv->listener) {
		listen_server_gone(sv);
		return;
	}
	if (sv->lease)
		lease_server_lost(sv->lease, sv->fatal_state[0] ? sv->fatal_state : "08006",
				  sv->fatal_msg[0] ? sv->fatal_msg : "server closed the connection unexpectedly");
}

void server_free(struct server *sv)
{
	gauge_add(&shard_of(sv)->stats->servers, -1);
	stmt_cache_free(&sv->stmts);
	params_clear(&sv->sqlprep);
	params_clear(&sv->params);
	free(sv->scram);
	free(sv);
}

/* ---- between leases: reset ---- */

/* What undoes a departed client's pins on its server. */
static bool release_pins(struct server *sv, uint8_t pins)
{
	char sql[160] = "";
	if (pins & PIN_OTHER) {
		snprintf(sql, sizeof sql, "DISCARD ALL");
	} else {
		if (pins & PIN_LISTEN)
			strcat(sql, "UNLISTEN *;");
		if (pins & PIN_ADVISORY)
			strcat(sql, "SELECT pg_catalog.pg_advisory_unlock_all();");
		if (pins & PIN_TEMP)
			strcat(sql, "DISCARD TEMP;");
		if (pins & PIN_CURSOR)
			strcat(sql, "CLOSE ALL;");
	}
	if (!server_hidden_query(sv, sql))
		return false;
	if (pins & PIN_OTHER)
		session_forget_server(sv);
	return true;
}

/* server_reset_query; one that discards everything leaves nothing prepared. */
static bool reset_query(struct server *sv, const char *sql)
{
	if (!server_hidden_query(sv, sql))
		return false;
	if (proto_sql_resets_session(sql, strlen(sql)))
		session_forget_server(sv);
	return true;
}

/* Below this a statement_timeout a client left on the server is put back at
 * release: the next client's restore would run its first statement under it
 * (pool/params.c) and, timed out, cost that client its connection; here a
 * timeout costs only this server. A longer one is left to the restore, which
 * saves the round trip for the common SET statement_timeout = '30s'. */
#define SHORT_TIMEOUT_MS 1000

/* Timeouts a client may leave on its server that would strike after it has
 * gone: statement_timeout (short ones: above) and idle_session_timeout (any:
 * the server would end itself idle in the pool, or just as the next client
 * got it). Put back with RESET before the server is idle again. */
enum { LEFT_STMT_TIMEOUT = 1, LEFT_IDLE_TIMEOUT = 2 };

static unsigned timeouts_left(struct server *sv)
{
	if (!sv->params.n || sv->pool->mode == POOL_SESSION)
		return 0;
	if (sv->timeouts_n == sv->params.n && sv->timeouts_hash == sv->params.hash)
		return sv->timeouts_memo;   /* two lookups by name saved on most releases (callgrind) */
	unsigned left = 0;
	const char *v = params_get(&sv->params, "statement_timeout");
	int64_t ms = v ? params_timeout_ms(v) : 0;
	if (v && ms != 0 && ms < SHORT_TIMEOUT_MS)
		left |= LEFT_STMT_TIMEOUT;
	v = params_get(&sv->params, "idle_session_timeout");
	if (v && params_timeout_ms(v) != 0)
		left |= LEFT_IDLE_TIMEOUT;
	sv->timeouts_hash = sv->params.hash;
	sv->timeouts_n = sv->params.n;
	sv->timeouts_memo = left;
	return left;
}

static bool reset_client_timeouts(struct server *sv, unsigned left)
{
	char sql[64] = "";
	if (left & LEFT_STMT_TIMEOUT)
		strcat(sql, "RESET statement_timeout;");
	if (left & LEFT_IDLE_TIMEOUT)
		strcat(sql, "RESET idle_session_timeout;");
	if (!sql[0] || !server_hidden_query(sv, sql))
		return false;
	if (left & LEFT_STMT_TIMEOUT)
		params_remove(&sv->params, "statement_timeout");
	if (left & LEFT_IDLE_TIMEOUT)
		params_remove(&sv->params, "idle_session_timeout");
	return true;
}

void server_reset(struct server *sv, const struct server_leftover *left)
{
	struct pool *p = sv->pool;
	const struct config *cfg = p->shard->cfg;
	const char *rq = cfg->server_reset_query && *cfg->server_reset_query ? cfg->server_reset_query : NULL;
	bool reset = false;
	if (sv->fatal_state[0]) {
		/* it said FATAL to a client that then went away: it is on its way out */
		server_close(sv, "the server is terminating its session (FATAL)");
		return;
	}
	if (left && left->running) {
		/* a query is still running for nobody: cancel it (PostgreSQL does not
		 * notice a closed socket mid-query, and would keep its locks), then close */
		server_send_cancel(sv, NULL);
		server_close(sv, "client left while its query was running");
		return;
	}
	if (left && left->dirty) {
		/* replies still owed, or half a message sent: what the server holds
		 * is uncertain (which statements it prepared), so it goes */
		server_close(sv, "client left in the middle of a request");
		return;
	}
	if (left && left->unsynced) {
		/* a Sync now would commit what the client never synced; PostgreSQL
		 * rolls it back when its client goes, and so does closing */
		server_close(sv, "client left in the middle of an extended-protocol batch");
		return;
	}
	/* what bringing it back sends, decided once */
	bool rollback = left && (sv->txn_status != 'I' || left->in_txn);
	unsigned pins = left && p->mode != POOL_SESSION ? left->pins : 0;
	bool run_rq = rq && (left ? p->mode == POOL_SESSION : cfg->server_reset_query_always);
	unsigned timeouts = timeouts_left(sv);
	/* the client's channels were listened to here for pg_listening_channels() */
	bool unlisten = sv->listen_dirty && !(left && left->pins & PIN_OTHER);
	if (sv->cancels && (rollback || pins || run_rq || timeouts || unlisten)) {
		/* PostgreSQL may still signal the backend for a cancel on its way:
		 * a reset query run now could be what it cancels, leaving the
		 * server's state unknown (a client that canceled and left at once) */
		server_close(sv, "client left with a cancel request to its server on its way");
		return;
	}
	if (rollback)
		reset |= server_hidden_query(sv, "ROLLBACK");
	if (pins)
		reset |= release_pins(sv, pins);
	if (run_rq)
		reset |= reset_query(sv, rq);
	if (timeouts)
		reset |= reset_client_timeouts(sv, timeouts);
	if (unlisten)
		reset |= server_hidden_query(sv, "UNLISTEN *");
	sv->listen_dirty = false;
	if (reset)
		server_set_state(sv, SV_RESETTING);
	else
		pool_server_ready(sv);
}

bool server_queue_query(struct server *sv, const char *sql)
{
	size_t n = strlen(sql) + 6;
	uint32_t buf;
	uint8_t *mem = bufs_scratch(&shard_of(sv)->bufs, (uint32_t)n, &buf);
	if (!mem)
		return false;
	struct proto_out o;
	proto_out_init(&o, mem, n);
	proto_query(&o, sql);
	bool ok = conn_queue(&sv->conn, o.p, (uint32_t)o.len, buf);
	bufs_unref(&shard_of(sv)->bufs, buf);
	return ok;
}

bool server_hidden_query(struct server *sv, const char *sql)
{
	if (!server_queue_query(sv, sql))
		return false;
	sv->hidden++;
	return true;
}

/* ---- pgring -R: an idle server of the predecessor ---- */

/* A record's server for p: none (why) if p's entry points elsewhere now (an
 * edit of the file): such a connection is not this pool's server any more. */
static struct server *adoptable(struct pool *p, struct server_record *r, const char **why)
{
	struct server *sv = calloc(1, sizeof *sv);
	*why = NULL;
	if (!sv) {
		*why = "out of memory";
		return NULL;
	}
	list_init(&sv->link);
	sv->pool = p;
	if (resolve(sv, p->db) < 0 || sv->addrlen != r->addrlen || memcmp(&sv->addr, &r->addr, r->addrlen) != 0) {
		*why = "its database entry points elsewhere now";
		free(sv);
		return NULL;
	}
	return sv;
}

/* The record's session, as the backend has it, and the socket: counted, not
 * yet in a state, not receiving. */
static void take_record(struct server *sv, int fd, struct server_record *r)
{
	struct shard *s = sv->pool->shard;
	sv->backend_pid = r->backend_pid;
	sv->backend_key = r->backend_key;
	sv->connect_us = s->now_us > r->age_us ? s->now_us - r->age_us : 0;
	sv->idle_since_us = sv->last_rfq_us = s->now_us;
	sv->txn_status = 'I';
	sv->ready_once = true;
	sv->params = r->params;
	sv->sqlprep = r->sqlprep;
	memset(&r->params, 0, sizeof r->params);
	memset(&r->sqlprep, 0, sizeof r->sqlprep);
	/* the copies are trusted as a server's from another shard are: an old
	 * one fails where it is used, and the shard learns from it */
	for (uint32_t i = 0; i < r->ndigests; i++) {
		const uint8_t *d = r->digests + (size_t)i * (STMT_DIGEST_LEN + 1);
		if (!stmt_cache_add(&sv->stmts, d, d[STMT_DIGEST_LEN] ? stmt_gen_now() : STMT_GEN_UNKNOWN))
			sv->params.failed = true;   /* an incomplete record: pool_server_ready closes it */
	}
	conn_init(&sv->conn, s, fd, &server_conn_ops, BUF_GROUP_SERVER);
	proto_framer_init(&sv->conn.fr, false, (uint32_t)s->cfg->max_packet_size);
	gauge_add(&s->stats->servers, 1);
	sv->state = SV_CLOSED;
}

bool server_adopt(struct pool *p, int fd, struct server_record *r, struct lease *l, const char **why)
{
	struct server *sv = adoptable(p, r, why);
	if (sv && l)
		registry_force_slot(p->shared);   /* the session's own: it moves, it is not opened */
	else if (sv && !registry_take_slot(p->shared, false))
		*why = "the pool is full here";
	if (*why) {
		free(sv);
		close(fd);
		return false;
	}
	take_record(sv, fd, r);
	/* enters the gauges and the used list: its session's, or the pool's */
	server_set_state(sv, l ? SV_ACTIVE : SV_RESETTING);
	conn_recv_on(&sv->conn);
	LOGF(LOG_INFO, sv->conn.id, "server connection taken over from the predecessor: %s/%s, backend %u, "
	     "%u prepared statements%s", p->db_name, p->user, sv->backend_pid, sv->stmts.n,
	     l ? ", with its session's client" : "");
	if (l)
		lease_adopt_server(l, sv);
	else
		pool_server_ready(sv);
	return true;
}

struct server *server_adopt_listener(struct pool *p, int fd, struct server_record *r, const char **why)
{
	struct server *sv = adoptable(p, r, why);
	if (!sv) {
		close(fd);
		return NULL;
	}
	sv->listener = true;   /* outside the pool's budget, as one it opens */
	take_record(sv, fd, r);
	server_set_state(sv, SV_ACTIVE);
	LOGF(LOG_INFO, sv->conn.id, "LISTEN connection taken over from the predecessor: %s/%s, backend %u",
	     p->db_name, p->user, sv->backend_pid);
	return sv;
}

/* ---- cancel: a short connection of its own, connect -> send -> close linked ---- */

struct cancel_req {
	struct shard_call call;
	struct server *sv;
	struct pool_cancel_waiter waiter;   /* the client's cancel connection, answered at the end */
	int fd;
	uint64_t start_us;
	struct __kernel_timespec limit;   /* server_connect_timeout (15 s when 0) */
	uint8_t msg[16];
};

static void cancel_done(struct shard_call *call, int res);

void server_send_cancel(struct server *sv, const struct pool_cancel_waiter *w)
{
	struct shard *s = shard_of(sv);
	struct cancel_req *cr = calloc(1, sizeof *cr);
	if (cr && (cr->fd = socket(sv->addr.in.sin_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		free(cr);
		cr = NULL;
	}
	if (!cr) {
		LOGF(LOG_WARNING, sv->conn.id, "cannot send a cancel request to backend %u (out of memory or descriptors)",
		     sv->backend_pid);
		if (w)
			client_cancel_answer(s, w);
		return;
	}
	if (w)
		cr->waiter = *w;
	struct proto_out o;
	proto_out_init(&o, cr->msg, sizeof cr->msg);
	proto_cancel_request(&o, sv->backend_pid, sv->backend_key);
	cr->call.done = cancel_done;
	cr->sv = sv;
	cr->start_us = shard_now_us();
	/* without a bound, a peer that accepts and never closes (a stopped
	 * postmaster, a black-holing middlebox) would hold the server and this
	 * socket for the process's life */
	double limit = s->cfg->server_connect_timeout > 0 ? s->cfg->server_connect_timeout : 15;
	cr->limit.tv_sec = (long long)limit;
	cr->limit.tv_nsec = (long long)((limit - (double)cr->limit.tv_sec) * 1e9);
	sv->cancels++;
	conn_hold(&sv->conn);   /* keeps the server object alive until the cancel is out */
	/* done once the server closed its end, so the cancel has landed before
	 * the server can be handed to another client */
	conn_exchange(s, &cr->call, cr->fd, (struct sockaddr *)&sv->addr, sv->addrlen, cr->msg, sizeof cr->msg, &cr->limit);
	LOGF(LOG_INFO, sv->conn.id, "forwarding cancel request to backend %u", sv->backend_pid);
}

static void cancel_done(struct shard_call *call, int res)
{
	struct cancel_req *cr = (struct cancel_req *)call;
	struct server *sv = cr->sv;
	if (res < 0) {
		uint64_t took = shard_now_us() - cr->start_us;
		LOGF(LOG_WARNING, sv->conn.id, "cancel request to backend %u %s after %.1f s", sv->backend_pid,
		     took + 50000 >= (uint64_t)cr->limit.tv_sec * 1000000 + (uint64_t)cr->limit.tv_nsec / 1000
			     ? "not confirmed (no close from the server)" : "failed", (double)took / 1e6);
	}
	close(cr->fd);
	/* the postmaster has signalled the backend (both times) and closed, or
	 * the exchange failed or timed out: the client's PQcancel may return */
	if (cr->waiter.conn_id)
		client_cancel_answer(shard_of(sv), &cr->waiter);
	free(cr);
	sv->cancels--;
	if (!sv->cancels && sv->state == SV_RESETTING && !sv->hidden)
		pool_server_ready(sv);   /* it was parked until every cancel landed */
	conn_unhold(&sv->conn);
}

/* ---- the server's socket, as core/conn.c reports on it ---- */

static void conn_data(struct conn *c, uint8_t *data, uint32_t n, uint32_t buf)
{
	server_data(conn_owner(c, struct server), data, n, buf);
}

static void conn_eof(struct conn *c, int err) { server_eof(conn_owner(c, struct server), err); }
static void conn_drained(struct conn *c) { server_drained(conn_owner(c, struct server)); }
static void conn_connected(struct conn *c, int res) { server_connected(conn_owner(c, struct server), res); }
static void conn_parked(struct conn *c) { pool_server_parked(conn_owner(c, struct server)); }
static void conn_free(struct conn *c) { server_free(conn_owner(c, struct server)); }

static const struct conn_ops server_conn_ops = {
	.data = conn_data,
	.eof = conn_eof,
	.drained = conn_drained,
	.connected = conn_connected,
	.parked = conn_parked,
	.free = conn_free,
};
