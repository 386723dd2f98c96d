/* pool/admin_show.c: the admin console's SHOW commands: their columns (in
 * PgBouncer 1.25's order and types, src/admin.c and src/stats.c), what each
 * shard collects for them on its own thread, and how the origin shard turns
 * the shards' parts into rows. Each shard's part is taken in one go on its
 * thread, so it is a consistent snapshot of that shard. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/control/health.h"
#include "core/control/metrics.h"
#include "core/registry.h"
#include "core/shard.h"
#include "pool/admin_int.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/peer.h"
#include "pool/pool.h"
#include "pool/server.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- encoding ---- */

static void put_u16(struct strbuf *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	strbuf_append(o, b, 2);
}

static void put_u32(struct strbuf *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	strbuf_append(o, b, 4);
}

static void put_str(struct strbuf *o, const char *s) { strbuf_append(o, s, strlen(s) + 1); }

size_t admin_msg_begin(struct strbuf *o, char type)
{
	strbuf_putc(o, type);
	size_t at = o->len;
	put_u32(o, 0);
	return at;
}

void admin_msg_end(struct strbuf *o, size_t at)
{
	if (o->failed)
		return;
	uint32_t len = (uint32_t)(o->len - at);
	uint8_t *p = (uint8_t *)o->buf + at;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

void admin_rowdesc(struct strbuf *o, const char *types, const char *const *names)
{
	size_t at = admin_msg_begin(o, 'T');
	size_t n = strlen(types);
	put_u16(o, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		uint32_t oid = 25;
		int16_t size = -1;
		switch (types[i]) {
		case 'i': oid = 23; size = 4; break;
		case 'q': oid = 20; size = 8; break;
		case 'N': oid = 1700; break;
		case 'b': oid = 17; break;
		default: break;
		}
		put_str(o, names[i]);
		put_u32(o, 0);
		put_u16(o, 0);
		put_u32(o, oid);
		put_u16(o, (uint16_t)size);
		put_u32(o, UINT32_MAX);   /* typmod -1 */
		put_u16(o, 0);            /* text */
	}
	admin_msg_end(o, at);
}

static void cell(struct strbuf *o, const char *v)
{
	if (!v) {
		put_u32(o, UINT32_MAX);
		return;
	}
	size_t n = strlen(v);
	put_u32(o, (uint32_t)n);
	strbuf_append(o, v, n);
}

void admin_row(struct strbuf *o, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	size_t at = admin_msg_begin(o, 'D');
	size_t n = strlen(types);
	put_u16(o, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		char tmp[32];
		switch (types[i]) {
		case 'i':
			snprintf(tmp, sizeof tmp, "%d", va_arg(ap, int));
			cell(o, tmp);
			break;
		case 'q':
			snprintf(tmp, sizeof tmp, "%" PRId64, va_arg(ap, int64_t));
			cell(o, tmp);
			break;
		case 'N':
			snprintf(tmp, sizeof tmp, "%" PRIu64, va_arg(ap, uint64_t));
			cell(o, tmp);
			break;
		default:
			cell(o, va_arg(ap, const char *));
			break;
		}
	}
	admin_msg_end(o, at);
	va_end(ap);
}

void admin_complete(struct strbuf *o, const char *tag)
{
	size_t at = admin_msg_begin(o, 'C');
	put_str(o, tag);
	admin_msg_end(o, at);
}

void admin_error_msg(struct strbuf *o, const char *severity, const char *sqlstate, const char *msg)
{
	size_t at = admin_msg_begin(o, 'E');
	strbuf_putc(o, 'S');
	put_str(o, severity);
	strbuf_putc(o, 'V');
	put_str(o, severity);
	strbuf_putc(o, 'C');
	put_str(o, sqlstate);
	strbuf_putc(o, 'M');
	put_str(o, msg);
	strbuf_putc(o, 0);
	admin_msg_end(o, at);
}

void admin_notice_msg(struct strbuf *o, const char *msg, const char *detail)
{
	size_t at = admin_msg_begin(o, 'N');
	strbuf_putc(o, 'S');
	put_str(o, "NOTICE");
	strbuf_putc(o, 'V');
	put_str(o, "NOTICE");
	strbuf_putc(o, 'C');
	put_str(o, "00000");
	strbuf_putc(o, 'M');
	put_str(o, msg);
	if (detail) {
		strbuf_putc(o, 'D');
		put_str(o, detail);
	}
	strbuf_putc(o, 0);
	admin_msg_end(o, at);
}

/* PgBouncer's format_time_s: local time with the zone's abbreviation. */
void admin_format_time(uint64_t wall_us, char *out, size_t n)
{
	time_t t = (time_t)(wall_us / 1000000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S %Z", &tm);
}

/* ---- columns ---- */

#define SOCK_TYPES "ssssssisiTTiiississii"
#define SOCK_DEBUG_TYPES SOCK_TYPES "iiiiiii"
static const char *const sock_names[] = {
	"type", "user", "database", "replication", "state", "addr", "port", "local_addr", "local_port",
	"connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "tls",
	"application_name", "prepared_statements", "id",
	/* debug */
	"recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail",
};

static const char *const stats_names[] = {
	"database", "total_server_assignment_count", "total_xact_count", "total_query_count", "total_received",
	"total_sent", "total_xact_time", "total_query_time", "total_wait_time", "total_client_parse_count",
	"total_server_parse_count", "total_bind_count", "total_client_login_count", "avg_server_assignment_count",
	"avg_xact_count", "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
	"avg_wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
	"avg_client_login_count",
};
static const char *const stats_totals_names[] = {
	"database", "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
	"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count",
	"client_login_count",
};
static const char *const stats_averages_names[] = {
	"database", "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
	"xact_time", "query_time", "wait_time", "avg_client_parse_count", "avg_server_parse_count",
	"avg_bind_count", "avg_client_login_count",
};

static const struct show_def {
	const char *types;
	const char *const *names;
	bool shards, control;            /* collected from every shard / from the control thread */
} show_defs[SHOW_N] = {
	[SHOW_HELP] = { NULL, NULL, false, false },
	[SHOW_VERSION] = { "s", (const char *const[]){ "version" }, false, false },
	[SHOW_CONFIG] = { "ssss", (const char *const[]){ "key", "value", "default", "changeable" }, false, false },
	[SHOW_DATABASES] = { "ssissiiiissiiiiii", (const char *const[]){ "name", "host", "port", "database",
		"force_user", "pool_size", "min_pool_size", "reserve_pool_size", "server_lifetime", "pool_mode",
		"load_balance_hosts", "max_connections", "current_connections", "max_client_connections",
		"current_client_connections", "paused", "disabled" }, true, false },
	[SHOW_POOLS] = { "ssiiiiiiiiiiiiiss", (const char *const[]){ "database", "user", "cl_active", "cl_waiting",
		"cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled",
		"sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode",
		"load_balance_hosts" }, true, false },
	[SHOW_CLIENTS] = { SOCK_TYPES, sock_names, true, false },
	[SHOW_SERVERS] = { SOCK_TYPES, sock_names, true, false },
	[SHOW_STATS] = { "sNNNNNNNNNNNNNNNNNNNNNNNN", stats_names, true, false },
	[SHOW_STATS_TOTALS] = { "sNNNNNNNNNNNN", stats_totals_names, true, false },
	[SHOW_STATS_AVERAGES] = { "sNNNNNNNNNNNN", stats_averages_names, true, false },
	[SHOW_TOTALS] = { "sN", (const char *const[]){ "name", "value" }, true, false },
	[SHOW_LISTS] = { "si", (const char *const[]){ "list", "items" }, true, false },
	[SHOW_USERS] = { "ssssiiii", (const char *const[]){ "name", "pool_size", "reserve_pool_size", "pool_mode",
		"max_user_connections", "current_connections", "max_user_client_connections",
		"current_client_connections" }, true, false },
	[SHOW_MEM] = { "siiii", (const char *const[]){ "name", "size", "used", "free", "memtotal" }, true, false },
	[SHOW_DNS_HOSTS] = { "sqs", (const char *const[]){ "hostname", "ttl", "addrs" }, false, false },
	[SHOW_DNS_ZONES] = { "sqi", (const char *const[]){ "zonename", "serial", "count" }, false, false },
	[SHOW_STATE] = { "ss", (const char *const[]){ "key", "value" }, false, false },
	[SHOW_PEERS] = { "isii", (const char *const[]){ "peer_id", "host", "port", "pool_size" }, false, false },
	[SHOW_PEER_POOLS] = { "iiiii", (const char *const[]){ "peer_id", "cl_active_cancel_req",
		"cl_waiting_cancel_req", "sv_active_cancel", "sv_login" }, true, false },
	[SHOW_SOCKETS] = { SOCK_DEBUG_TYPES, sock_names, true, false },
	[SHOW_ACTIVE_SOCKETS] = { SOCK_DEBUG_TYPES, sock_names, true, false },
	[SHOW_FDS] = { "issssiqisssssbb", (const char *const[]){ "fd", "task", "user", "database", "addr", "port",
		"cancel", "link", "client_encoding", "std_strings", "datestyle", "timezone", "password",
		"scram_client_key", "scram_server_key" }, true, false },
	[SHOW_STATUS] = { "s", (const char *const[]){ "status" }, false, true },
	[SHOW_SHARDS] = { "iiiiiiiiqqqii", (const char *const[]){ "shard", "cpu", "tid", "clients", "login_clients",
		"servers", "pools", "buffers_in_use", "topology_version", "loops", "accepts", "active", "busy_permille" },
		true, false },
	[SHOW_NODES] = { "sssissqsqqqqqss", (const char *const[]){ "cluster", "node", "host", "port", "role", "state",
		"lag_bytes", "check_seconds", "active_backends", "transactions", "servers_active", "checks",
		"check_failures", "last_error", "source" }, false, true },
	[SHOW_TOPOLOGY] = { "sqsiiii", (const char *const[]){ "cluster", "topology_version", "primary", "nodes", "up",
		"lagging", "down" }, false, false },
	[SHOW_PINS] = { "issssis", (const char *const[]){ "id", "user", "database", "state", "pins", "server_pid",
		"application_name" }, true, false },
	[SHOW_PARAM] = { "s", NULL, false, false },
	[SHOW_SETTING] = { "s", NULL, false, false },
};

bool admin_show_needs_shards(int show) { return show_defs[show].shards; }
bool admin_show_needs_control(int show) { return show_defs[show].control; }

bool admin_show_rowdesc(const struct admin_cmd *cmd, struct strbuf *o)
{
	const struct show_def *d = &show_defs[cmd->show];
	if (!d->types)
		return false;
	if (cmd->show == SHOW_PARAM || cmd->show == SHOW_SETTING) {
		const char *name = cmd->arg;
		admin_rowdesc(o, "s", &name);
	} else {
		admin_rowdesc(o, d->types, d->names);
	}
	return true;
}

const char *admin_version_string(void)
{
	/* tools that parse PgBouncer's version string (exporters choosing their
	 * columns) find the version whose columns these are */
	return "PgBouncer 1.25.2 (pgring 0.1.0)";
}

void admin_help(struct strbuf *o)
{
	admin_notice_msg(o, "Console usage",
			 "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
			 "\tSHOW PEERS|PEER_POOLS\n"
			 "\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
			 "\tSHOW DNS_HOSTS|DNS_ZONES\n"
			 "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
			 "\tSHOW STATUS|SHARDS|NODES|TOPOLOGY|PINS\n"
			 "\tSHOW <setting>\n"
			 "\tSET key = arg\n"
			 "\tRESET key|ALL\n"
			 "\tRELOAD\n"
			 "\tPAUSE [<db>]\n"
			 "\tRESUME [<db>]\n"
			 "\tDISABLE <db>\n"
			 "\tENABLE <db>\n"
			 "\tDISABLE USER <user>\n"
			 "\tENABLE USER <user>\n"
			 "\tRECONNECT [<db>]\n"
			 "\tKILL [<db>]\n"
			 "\tKILL_CLIENT <client_id>\n"
			 "\tSUSPEND\n"
			 "\tSHUTDOWN\n"
			 "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
			 "\tWAIT_CLOSE [<db>]");
}

/* ---- collecting on a shard ---- */

static const char *mode_name(int mode)
{
	switch (mode) {
	case POOL_TRANSACTION: return "transaction";
	case POOL_STATEMENT: return "statement";
	default: return "session";
	}
}

static struct admin_agg *agg_add(struct admin_part *part, const char *db, const char *user, int mode)
{
	for (int i = 0; i < part->nagg; i++)
		if (!strcmp(part->agg[i].db, db) && !strcmp(part->agg[i].user, user))
			return &part->agg[i];
	if (part->nagg == part->capagg) {
		int cap = part->capagg ? part->capagg * 2 : 16;
		struct admin_agg *a = realloc(part->agg, (size_t)cap * sizeof *a);
		if (!a)
			return NULL;
		part->agg = a;
		part->capagg = cap;
	}
	struct admin_agg *a = &part->agg[part->nagg++];
	memset(a, 0, sizeof *a);
	snprintf(a->db, sizeof a->db, "%s", db);
	snprintf(a->user, sizeof a->user, "%s", user);
	a->mode = mode;
	return a;
}

static int64_t g(const gauge_t *x) { return gauge_get(x); }
static int64_t c(const stat_t *x) { return (int64_t)stat_get(x); }

/* The pools of shard s, added up per (database, user); and the console's
 * own pseudo-pool, which PgBouncer shows as pgbouncer/pgbouncer. */
static void collect_pools(struct shard *s, const struct admin_job *job, struct admin_part *part)
{
	struct pool_shard *ps = pool_shard(s);
	for (struct pool *p = ps->pools; p; p = p->next) {
		struct admin_agg *a = agg_add(part, p->db_name, p->user, p->mode);
		if (!a)
			return;
		const struct stats_pool *st = p->stats;
		a->v[AGG_CL_ACTIVE] += g(&st->cl_active) + g(&st->cl_idle) + g(&st->cl_replication);
		a->v[AGG_CL_WAITING] += g(&st->cl_waiting) + g(&st->cl_login);
		a->v[AGG_SV_ACTIVE] += g(&st->sv_active) + g(&st->sv_replication);
		a->v[AGG_SV_IDLE] += g(&st->sv_idle);
		a->v[AGG_SV_USED] += g(&st->sv_resetting);
		a->v[AGG_SV_LOGIN] += g(&st->sv_login);
		struct client *first = list_first(&p->waiting, struct client, wait);
		int64_t wait = first ? (int64_t)(s->now_us - first->wait_start_us) : 0;
		if (wait > a->v[AGG_MAXWAIT_US])
			a->v[AGG_MAXWAIT_US] = wait;
		a->v[AGG_ASSIGNS] += c(&st->server_assignments);
		a->v[AGG_XACTS] += c(&st->xact_count);
		a->v[AGG_QUERIES] += c(&st->query_count);
		a->v[AGG_RECV] += c(&st->bytes_in);
		a->v[AGG_SENT] += c(&st->bytes_out);
		a->v[AGG_XACT_US] += c(&st->xact_time_us);
		a->v[AGG_QUERY_US] += c(&st->query_time_us);
		a->v[AGG_WAIT_US] += c(&st->wait_time_us);
		a->v[AGG_SERVER_PARSES] += c(&st->prepares_injected);
		a->v[AGG_LOGINS] += c(&st->client_logins);
		struct server *sv, *next;
		list_for_each_safe(&p->used, sv, next, link)
			a->v[AGG_CLOSE_NEEDED] += sv->close_when_idle;
	}
	struct admin_agg *a = agg_add(part, "pgbouncer", "pgbouncer", POOL_STATEMENT);
	if (a)
		a->v[AGG_CL_ACTIVE] += part->v[PV_ADMIN_CLIENTS];
	(void)job;
}

static const char *client_state_name(const struct client *cl)
{
	switch (cl->state) {
	case CL_LOGIN_WAIT:
	case CL_WAITING:
	case CL_THROTTLED:
	case CL_ROUTING: return "waiting";
	case CL_ACTIVE:
	case CL_REPL: return "active";
	default: return cl->admin ? "active" : "idle";
	}
}

static const char *server_state_name(const struct server *sv)
{
	switch (sv->state) {
	case SV_ACTIVE: return "active";
	case SV_IDLE: return "idle";
	case SV_RESETTING: return "used";
	case SV_CONNECTING:
	case SV_LOGIN: return "new";
	default: return "used";
	}
}

static void sock_addr(int fd, bool local, char *addr, size_t n, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	*port = 0;
	snprintf(addr, n, "%s", "");
	if (fd < 0 || (local ? getsockname(fd, (struct sockaddr *)&ss, &len) : getpeername(fd, (struct sockaddr *)&ss, &len)))
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)n);
		*port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], addr, (socklen_t)n);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)n);
		*port = ntohs(in6->sin6_port);
	} else if (ss.ss_family == AF_UNIX) {
		snprintf(addr, n, "unix");
	}
}

static void tls_info(const struct shard *s, const struct conn *c, int side, char *out, size_t n)
{
	out[0] = 0;
	if (c->tls && c->tls->kind >= 0) {
		const struct stats_tls_kind *k = &s->stats->tls_kinds[side][c->tls->kind];
		snprintf(out, n, "%s/%s", k->version, k->cipher);
	}
}

struct sock_row {
	const char *type, *user, *db, *state;
	const char *app;
	int fd, link_fd;
	const void *ptr, *link;
	uint64_t connect_us, request_us, wait_us;   /* monotonic; wait: how long it has waited */
	int close_needed, remote_pid, prepared, tls_side;
	uint64_t id;
	const struct conn *conn;
	bool is_unix;
};

static void put_sock_row(struct shard *s, const struct admin_job *job, struct admin_part *part,
			 const struct sock_row *r, bool debug)
{
	char addr[64], laddr[64], ct[64], rt[64], ptr[32], link[32], tls[80];
	int port, lport;
	sock_addr(r->fd, false, addr, sizeof addr, &port);
	sock_addr(r->fd, true, laddr, sizeof laddr, &lport);
	if (r->is_unix) {
		snprintf(addr, sizeof addr, "unix");
		port = lport = s->cfg->listen_port;
		snprintf(laddr, sizeof laddr, "unix");
	}
	/* monotonic -> wall clock, through the job's pair of clocks */
	admin_format_time(job->wall_us - (job->mono_us - r->connect_us), ct, sizeof ct);
	admin_format_time(job->wall_us - (job->mono_us - r->request_us), rt, sizeof rt);
	snprintf(ptr, sizeof ptr, "%p", r->ptr);
	if (r->link)
		snprintf(link, sizeof link, "%p", r->link);
	else
		link[0] = 0;
	tls_info(s, r->conn, r->tls_side, tls, sizeof tls);
	int wait_s = (int)(r->wait_us / 1000000), wait_us = (int)(r->wait_us % 1000000);
	if (debug)
		admin_row(&part->rows, SOCK_DEBUG_TYPES, r->type, r->user, r->db, "none", r->state, addr, port, laddr,
			  lport, ct, rt, wait_s, wait_us, r->close_needed, ptr, link, r->remote_pid, tls, r->app,
			  r->prepared, (int)r->id, 0, 0, 0, 0, 0, 0, (int)r->conn->out_bytes);
	else
		admin_row(&part->rows, SOCK_TYPES, r->type, r->user, r->db, "none", r->state, addr, port, laddr, lport,
			  ct, rt, wait_s, wait_us, r->close_needed, ptr, link, r->remote_pid, tls, r->app, r->prepared,
			  (int)r->id);
	part->nrows++;
}

static int peer_pid(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 ? cr.pid : 0;
}

static void client_row(struct shard *s, const struct admin_job *job, struct admin_part *part,
		       struct client *cl, bool debug)
{
	struct server *sv = cl->state == CL_ACTIVE && cl->lease ? cl->lease->server
			    : cl->state == CL_REPL ? client_repl(cl) : NULL;
	struct sock_row r = {
		.type = "C", .user = cl->user ? cl->user : "(nouser)", .db = cl->database ? cl->database : "(nodb)",
		.state = client_state_name(cl), .app = params_get(&cl->params, "application_name"),
		.fd = cl->conn.fd, .ptr = cl, .link = sv, .connect_us = cl->connect_us,
		.request_us = cl->query_start_us ? cl->query_start_us : cl->connect_us,
		.remote_pid = cl->is_unix ? peer_pid(cl->conn.fd) : 0,
		.prepared = cl->sess ? (int)cl->sess->stmts.n : 0, .tls_side = 0, .id = cl->conn.id, .conn = &cl->conn,
		.is_unix = cl->is_unix,
	};
	if (cl->admin)
		r.db = "pgbouncer";
	if (!r.app)
		r.app = "";
	if (cl->state == CL_WAITING || cl->state == CL_ROUTING)
		r.wait_us = s->now_us - cl->wait_start_us;
	put_sock_row(s, job, part, &r, debug);
}

static void server_row(struct shard *s, const struct admin_job *job, struct admin_part *part,
		       struct server *sv, bool debug)
{
	struct client *cl = sv->lease ? sv->lease->client : sv->repl_client;
	const char *app = cl ? params_get(&cl->params, "application_name") : NULL;
	const char *user = sv->pool->db && sv->pool->db->user ? sv->pool->db->user : sv->pool->user;
	struct sock_row r = {
		.type = "S", .user = user, .db = sv->pool->db_name, .state = server_state_name(sv), .app = app ? app : "",
		.fd = sv->conn.fd, .ptr = sv, .link = cl, .connect_us = sv->connect_us,
		.request_us = sv->lease_us ? sv->lease_us : sv->connect_us, .close_needed = sv->close_when_idle,
		.remote_pid = (int)sv->backend_pid, .prepared = (int)sv->stmts.n, .tls_side = 1, .id = sv->conn.id,
		.conn = &sv->conn,
	};
	put_sock_row(s, job, part, &r, debug);
}

static bool client_listed(const struct client *cl)
{
	return cl->state != CL_STARTUP && cl->state != CL_AUTH && cl->state != CL_AUTHQ && cl->state != CL_CLOSED &&
	       cl->state != CL_CANCEL;
}

static void collect_clients(struct shard *s, const struct admin_job *job, struct admin_part *part, bool debug,
			    bool active_only)
{
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all)
		if (client_listed(cl) && (!active_only || conn_has_output(&cl->conn)))
			client_row(s, job, part, cl, debug);
}

static void collect_servers(struct shard *s, const struct admin_job *job, struct admin_part *part, bool debug,
			    bool active_only)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		struct server *sv, *next;
		list_for_each_safe(&p->used, sv, next, link)
			if (!active_only || conn_has_output(&sv->conn))
				server_row(s, job, part, sv, debug);
		list_for_each_safe(&p->idle, sv, next, link)
			if (!active_only || conn_has_output(&sv->conn))
				server_row(s, job, part, sv, debug);
	}
}

/* SHOW FDS: the sockets, as PgBouncer lists them for its online restart; no
 * descriptor is passed (pgring's upgrade hands over its own way) and no
 * secret is shown. */
static void collect_fds(struct shard *s, struct admin_part *part)
{
	char addr[64];
	int port;
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all) {
		if (!client_listed(cl))
			continue;
		struct server *sv = cl->state == CL_ACTIVE && cl->lease ? cl->lease->server : NULL;
		sock_addr(cl->conn.fd, false, addr, sizeof addr, &port);
		admin_row(&part->rows, "issssiqisssssbb", cl->conn.fd, "client", cl->user,
			  cl->admin ? "pgbouncer" : cl->database, cl->is_unix ? "unix" : addr, port,
			  (int64_t)(((uint64_t)cl->key_pid << 32) | cl->key_secret), sv ? sv->conn.fd : 0,
			  params_get(&cl->params, "client_encoding"), params_get(&cl->params, "standard_conforming_strings"),
			  params_get(&cl->params, "DateStyle"), params_get(&cl->params, "TimeZone"), NULL, NULL, NULL);
		part->nrows++;
	}
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		struct list *lists[2] = { &p->used, &p->idle };
		for (int k = 0; k < 2; k++) {
			struct server *sv, *next2;
			list_for_each_safe(lists[k], sv, next2, link) {
				sock_addr(sv->conn.fd, false, addr, sizeof addr, &port);
				admin_row(&part->rows, "issssiqisssssbb", sv->conn.fd, "server", p->user, p->db_name, addr,
					  port, (int64_t)(((uint64_t)sv->backend_pid << 32) | sv->backend_key),
					  sv->lease ? sv->lease->client->conn.fd : 0, params_get(&sv->params, "client_encoding"),
					  params_get(&sv->params, "standard_conforming_strings"),
					  params_get(&sv->params, "DateStyle"), params_get(&sv->params, "TimeZone"), NULL, NULL,
					  NULL);
				part->nrows++;
			}
		}
	}
}

static void pin_names(uint8_t pins, char *out, size_t n)
{
	static const struct { uint8_t bit; const char *name; } names[] = {
		{ PIN_LISTEN, "listen" }, { PIN_ADVISORY, "advisory_lock" }, { PIN_TEMP, "temp_table" },
		{ PIN_CURSOR, "held_cursor" }, { PIN_OTHER, "session_state" },
	};
	out[0] = 0;
	for (size_t i = 0; i < NELEM(names); i++)
		if (pins & names[i].bit)
			snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "", names[i].name);
}

static void collect_pins(struct shard *s, struct admin_part *part)
{
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all) {
		if (!cl->pins || !client_listed(cl))
			continue;
		char why[96];
		pin_names(cl->pins, why, sizeof why);
		struct server *sv = cl->lease ? cl->lease->server : NULL;
		const char *app = params_get(&cl->params, "application_name");
		admin_row(&part->rows, "issssis", (int)cl->conn.id, cl->user, cl->database, client_state_name(cl), why,
			  sv ? (int)sv->backend_pid : 0, app ? app : "");
		part->nrows++;
	}
}

/* Shard-wide counts, for LISTS, MEM and SHARDS. */
static void count_shard(struct shard *s, struct admin_part *part)
{
	struct pool_shard *ps = pool_shard(s);
	struct client *cl, *next;
	list_for_each_safe(&ps->clients, cl, next, all) {
		if (cl->admin && client_listed(cl))
			part->v[PV_ADMIN_CLIENTS]++;
		if (client_listed(cl))
			part->v[PV_CLIENTS]++;
		else if (cl->state != CL_CLOSED)
			part->v[PV_LOGIN_CLIENTS]++;
	}
	for (struct pool *p = ps->pools; p; p = p->next) {
		part->v[PV_POOLS]++;
		part->v[PV_SERVERS] += p->n_idle + p->n_used;
	}
	for (struct lease *l = ps->free_leases; l; l = l->next_free)
		part->v[PV_FREE_LEASES]++;
}

static void collect_shard_row(struct shard *s, struct admin_part *part)
{
	const struct stats_shard *st = s->stats;
	admin_row(&part->rows, "iiiiiiiiqqqii", s->id, s->cpu, atomic_load(&st->tid), (int)part->v[PV_CLIENTS],
		  (int)part->v[PV_LOGIN_CLIENTS], (int)part->v[PV_SERVERS], (int)part->v[PV_POOLS], (int)s->bufs.in_use,
		  (int64_t)s->topo->version, (int64_t)stat_get(&st->loops), (int64_t)stat_get(&st->accepts),
		  (int)gauge_get(&st->active), (int)gauge_get(&st->busy_permille));
	part->nrows++;
}

/* Each peer's forwards on this shard, keyed "%05d" so that the merge's
 * string order is the ids' order. */
static void collect_peer_pools(struct shard *s, struct admin_part *part)
{
	const struct config *cfg = s->cfg;
	for (int i = 0; i < cfg->npeers; i++) {
		if (cfg->peers[i].id == cfg->peer_id)
			continue;
		char key[16];
		snprintf(key, sizeof key, "%05d", cfg->peers[i].id);
		struct admin_agg *a = agg_add(part, key, "", 0);
		if (!a)
			return;
		int active, waiting;
		peer_counts(s, cfg->peers[i].id, &active, &waiting);
		a->v[AGG_CL_ACTIVE] = active;
		a->v[AGG_CL_WAITING] = waiting;
		a->v[AGG_SV_ACTIVE] = active;
	}
}

void admin_show_collect(struct shard *s, struct admin_job *job, struct admin_part *part)
{
	count_shard(s, part);
	switch (job->cmd.show) {
	case SHOW_CLIENTS: collect_clients(s, job, part, false, false); break;
	case SHOW_SERVERS: collect_servers(s, job, part, false, false); break;
	case SHOW_SOCKETS:
		collect_clients(s, job, part, true, false);
		collect_servers(s, job, part, true, false);
		break;
	case SHOW_ACTIVE_SOCKETS:
		collect_clients(s, job, part, true, true);
		collect_servers(s, job, part, true, true);
		break;
	case SHOW_FDS: collect_fds(s, part); break;
	case SHOW_PINS: collect_pins(s, part); break;
	case SHOW_SHARDS: collect_shard_row(s, part); break;
	case SHOW_PEER_POOLS: collect_peer_pools(s, part); break;
	default: collect_pools(s, job, part); break;
	}
}

/* On the control thread: what only it knows (the nodes' health). */
void admin_show_collect_control(struct admin_job *job, struct admin_part *part)
{
	if (job->cmd.show == SHOW_STATUS) {
		struct strbuf text = STRBUF_INIT;
		metrics_status(&text);
		const char *p = strbuf_str(&text);
		while (*p) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			char *line = strndup(p, n);
			admin_row(&part->rows, "s", line ? line : "");
			free(line);
			part->nrows++;
			p += n + (nl ? 1 : 0);
		}
		strbuf_free(&text);
		return;
	}
	for (int i = 0; i < health_count(); i++) {
		const struct health_node *h = health_node_at(i);
		char secs[32];
		snprintf(secs, sizeof secs, "%.6f", h->check_seconds);
		admin_row(&part->rows, "sssissqsqqqqqss", h->cluster, h->name, h->host ? h->host : "", h->port,
			  topo_role_name(h->role), topo_state_name(h->state), h->lag, secs, h->active,
			  (int64_t)(h->shared ? registry_node_routed(h->shared) : 0),
			  h->shared ? registry_node_active(h->shared) : (int64_t)0, (int64_t)h->checks,
			  (int64_t)h->failures, h->last_error ? h->last_error : "", h->discovered ? "patroni" : "config");
		part->nrows++;
	}
}

/* ---- rendering on the origin ---- */

static int agg_cmp(const void *a, const void *b)
{
	const struct admin_agg *x = a, *y = b;
	int r = strcmp(x->db, y->db);
	return r ? r : strcmp(x->user, y->user);
}

/* Every part's (database, user) sums merged, sorted by database and user
 * (PgBouncer keeps its pool list in that order). by_db: merged per database. */
static struct admin_agg *merge(const struct admin_job *job, bool by_db, int *n)
{
	int total = 0;
	for (int i = 0; i < job->nshards; i++)
		total += job->part[i].nagg;
	struct admin_agg *all = calloc((size_t)total + 1, sizeof *all);
	if (!all) {
		*n = 0;
		return NULL;
	}
	int k = 0;
	for (int i = 0; i < job->nshards; i++)
		for (int j = 0; j < job->part[i].nagg; j++) {
			all[k] = job->part[i].agg[j];
			if (by_db)
				all[k].user[0] = 0;
			k++;
		}
	qsort(all, (size_t)k, sizeof *all, agg_cmp);
	int m = 0;
	for (int i = 0; i < k; i++) {
		if (m && !agg_cmp(&all[m - 1], &all[i])) {
			for (int v = 0; v < AGG_N; v++)
				if (v == AGG_MAXWAIT_US)
					all[m - 1].v[v] = all[i].v[v] > all[m - 1].v[v] ? all[i].v[v] : all[m - 1].v[v];
				else
					all[m - 1].v[v] += all[i].v[v];
		} else {
			all[m++] = all[i];
		}
	}
	*n = m;
	return all;
}

static const struct admin_agg *find_agg(const struct admin_agg *a, int n, const char *db, const char *user)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(a[i].db, db) && (!user || !strcmp(a[i].user, user)))
			return &a[i];
	return NULL;
}

static void rows_pools(const struct admin_job *job, struct strbuf *o)
{
	int n;
	struct admin_agg *a = merge(job, false, &n);
	for (int i = 0; i < n; i++) {
		const int64_t *v = a[i].v;
		admin_row(o, "ssiiiiiiiiiiiiiss", a[i].db, a[i].user, (int)v[AGG_CL_ACTIVE], (int)v[AGG_CL_WAITING], 0, 0,
			  (int)v[AGG_SV_ACTIVE], 0, 0, (int)v[AGG_SV_IDLE], (int)v[AGG_SV_USED], 0, (int)v[AGG_SV_LOGIN],
			  (int)(v[AGG_MAXWAIT_US] / 1000000), (int)(v[AGG_MAXWAIT_US] % 1000000), mode_name(a[i].mode),
			  NULL);
	}
	free(a);
}

/* Averages: PgBouncer's are per stats_period; pgring's are over its whole
 * run (rates per second since start, times per transaction or query). */
static void averages(const int64_t *v, double secs, uint64_t *avg)
{
	double d = secs > 0 ? secs : 1;
	avg[0] = (uint64_t)((double)v[AGG_ASSIGNS] / d);
	avg[1] = (uint64_t)((double)v[AGG_XACTS] / d);
	avg[2] = (uint64_t)((double)v[AGG_QUERIES] / d);
	avg[3] = (uint64_t)((double)v[AGG_RECV] / d);
	avg[4] = (uint64_t)((double)v[AGG_SENT] / d);
	avg[5] = v[AGG_XACTS] ? (uint64_t)(v[AGG_XACT_US] / v[AGG_XACTS]) : 0;
	avg[6] = v[AGG_QUERIES] ? (uint64_t)(v[AGG_QUERY_US] / v[AGG_QUERIES]) : 0;
	avg[7] = v[AGG_ASSIGNS] ? (uint64_t)(v[AGG_WAIT_US] / v[AGG_ASSIGNS]) : 0;
	avg[8] = 0;
	avg[9] = (uint64_t)((double)v[AGG_SERVER_PARSES] / d);
	avg[10] = 0;
	avg[11] = (uint64_t)((double)v[AGG_LOGINS] / d);
}

static void rows_stats(const struct admin_job *job, struct strbuf *o)
{
	int n;
	struct admin_agg *a = merge(job, true, &n);
	double secs = control_uptime();
	for (int i = 0; i < n; i++) {
		const int64_t *v = a[i].v;
		uint64_t t[12] = { (uint64_t)v[AGG_ASSIGNS], (uint64_t)v[AGG_XACTS], (uint64_t)v[AGG_QUERIES],
				   (uint64_t)v[AGG_RECV], (uint64_t)v[AGG_SENT], (uint64_t)v[AGG_XACT_US],
				   (uint64_t)v[AGG_QUERY_US], (uint64_t)v[AGG_WAIT_US], 0,
				   (uint64_t)v[AGG_SERVER_PARSES], 0, (uint64_t)v[AGG_LOGINS] }, avg[12];
		averages(v, secs, avg);
		switch (job->cmd.show) {
		case SHOW_STATS:
			admin_row(o, "sNNNNNNNNNNNNNNNNNNNNNNNN", a[i].db, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7],
				  t[8], t[9], t[10], t[11], avg[0], avg[1], avg[2], avg[3], avg[4], avg[5], avg[6], avg[7],
				  avg[8], avg[9], avg[10], avg[11]);
			break;
		case SHOW_STATS_TOTALS:
			admin_row(o, "sNNNNNNNNNNNN", a[i].db, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9],
				  t[10], t[11]);
			break;
		default:
			admin_row(o, "sNNNNNNNNNNNN", a[i].db, avg[0], avg[1], avg[2], avg[3], avg[4], avg[5], avg[6],
				  avg[7], avg[8], avg[9], avg[10], avg[11]);
			break;
		}
	}
	free(a);
}

static void rows_totals(const struct admin_job *job, struct strbuf *o)
{
	static const char *const names[12] = {
		"server_assignment_count", "xact_count", "query_count", "client_bytes", "server_bytes", "xact_time",
		"query_time", "wait_time", "ps_client_parse_count", "ps_server_parse_count", "ps_bind_count",
		"client_login_count",
	};
	int n;
	struct admin_agg *a = merge(job, true, &n);
	int64_t sum[AGG_N] = { 0 };
	for (int i = 0; i < n; i++)
		for (int v = 0; v < AGG_N; v++)
			sum[v] += a[i].v[v];
	free(a);
	uint64_t t[12] = { (uint64_t)sum[AGG_ASSIGNS], (uint64_t)sum[AGG_XACTS], (uint64_t)sum[AGG_QUERIES],
			   (uint64_t)sum[AGG_RECV], (uint64_t)sum[AGG_SENT], (uint64_t)sum[AGG_XACT_US],
			   (uint64_t)sum[AGG_QUERY_US], (uint64_t)sum[AGG_WAIT_US], 0, (uint64_t)sum[AGG_SERVER_PARSES], 0,
			   (uint64_t)sum[AGG_LOGINS] }, avg[12];
	averages(sum, control_uptime(), avg);
	char name[64];
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof name, "total_%s", names[i]);
		admin_row(o, "sN", name, t[i]);
	}
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof name, "avg_%s", names[i]);
		admin_row(o, "sN", name, avg[i]);
	}
}

static int db_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct config_db *const *)a)->name, (*(const struct config_db *const *)b)->name);
}

static int64_t servers_of(const struct admin_agg *a)
{
	return a ? a->v[AGG_SV_ACTIVE] + a->v[AGG_SV_IDLE] + a->v[AGG_SV_USED] + a->v[AGG_SV_LOGIN] : 0;
}

static int64_t clients_of(const struct admin_agg *a)
{
	return a ? a->v[AGG_CL_ACTIVE] + a->v[AGG_CL_WAITING] : 0;
}

static void rows_databases(struct shard *s, const struct admin_job *job, struct strbuf *o)
{
	const struct config *cfg = s->cfg;
	int n;
	struct admin_agg *a = merge(job, true, &n);
	const struct config_db **dbs = calloc((size_t)cfg->ndbs + 1, sizeof *dbs);
	int k = 0;
	static const struct config_db admin_db = { .name = "pgbouncer" };
	dbs[k++] = &admin_db;
	for (int i = 0; dbs && i < cfg->ndbs; i++)
		if (strcmp(cfg->dbs[i].name, "*") != 0 && !admin_console_db(cfg->dbs[i].name))
			dbs[k++] = &cfg->dbs[i];
	if (!dbs)
		k = 0;
	qsort(dbs, (size_t)k, sizeof *dbs, db_cmp);
	for (int i = 0; i < k; i++) {
		const struct config_db *d = dbs[i];
		const struct admin_agg *ag = find_agg(a, n, d->name, NULL);
		if (d == &admin_db) {
			admin_row(o, "ssissiiiissiiiiii", "pgbouncer", NULL, cfg->listen_port, "pgbouncer", "pgbouncer", 2,
				  0, 0, (int)cfg->server_lifetime, "statement", NULL, 0, 0, 0, (int)clients_of(ag), 0, 0);
			continue;
		}
		const char *host = d->host;
		int port = d->port > 0 ? d->port : 5432;
		if (d->cluster) {
			/* a cluster's servers are its nodes: the primary now, else the first */
			const struct config_cluster *cc = config_find_cluster(cfg, d->cluster);
			host = NULL;
			for (int ci = 0; cc && ci < s->topo->nclusters; ci++)
				if (s->topo->clusters[ci].cc == cc && cc->nnodes) {
					int pi = s->topo->clusters[ci].primary >= 0 ? s->topo->clusters[ci].primary : 0;
					host = cc->nodes[pi].host;
					port = cc->nodes[pi].port;
				}
		}
		double lifetime = cfg->server_lifetime;
		int maxc = d->max_db_connections >= 0 ? d->max_db_connections : cfg->max_db_connections;
		admin_row(o, "ssissiiiissiiiiii", d->name, host, port, d->dbname ? d->dbname : d->name, d->user,
			  d->pool_size >= 0 ? d->pool_size : cfg->default_pool_size,
			  d->min_pool_size >= 0 ? d->min_pool_size : cfg->min_pool_size,
			  d->reserve_pool_size >= 0 ? d->reserve_pool_size : cfg->reserve_pool_size, (int)lifetime,
			  d->pool_mode >= 0 ? mode_name(d->pool_mode) : NULL, NULL, maxc, (int)servers_of(ag),
			  d->max_db_client_connections >= 0 ? d->max_db_client_connections : cfg->max_db_client_connections,
			  (int)clients_of(ag), admin_db_flag_paused(d->name), admin_db_disabled(d->name) || d->disabled == 1);
	}
	free(dbs);
	free(a);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void rows_users(struct shard *s, const struct admin_job *job, struct strbuf *o)
{
	const struct config *cfg = s->cfg;
	int n;
	struct admin_agg *all = merge(job, false, &n);
	/* per user: fold the (database, user) sums */
	const char **names = calloc((size_t)cfg->nsecrets + (size_t)cfg->nusers + 1, sizeof *names);
	if (!names) {
		free(all);
		return;
	}
	int k = 0;
	names[k++] = "pgbouncer";
	for (int i = 0; i < cfg->nsecrets; i++)
		names[k++] = cfg->secrets[i].user;
	for (int i = 0; i < cfg->nusers; i++)
		names[k++] = cfg->users[i].name;
	qsort(names, (size_t)k, sizeof *names, str_cmp);
	for (int i = 0; i < k; i++) {
		if (i && !strcmp(names[i], names[i - 1]))
			continue;
		const struct config_user *u = config_find_user(cfg, names[i]);
		char size[16] = "", reserve[16] = "";
		if (u && u->pool_size >= 0)
			snprintf(size, sizeof size, "%9d", u->pool_size);
		if (u && u->reserve_pool_size >= 0)
			snprintf(reserve, sizeof reserve, "%9d", u->reserve_pool_size);
		int64_t servers = 0, clients = 0;
		for (int j = 0; j < n; j++)
			if (!strcmp(all[j].user, names[i])) {
				servers += servers_of(&all[j]);
				clients += clients_of(&all[j]);
			}
		int maxu = u && u->max_user_connections >= 0 ? u->max_user_connections : cfg->max_user_connections;
		int maxc = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
								      : cfg->max_user_client_connections;
		admin_row(o, "ssssiiii", names[i], size, reserve, u && u->pool_mode >= 0 ? mode_name(u->pool_mode) : NULL,
			  maxu, (int)servers, maxc, (int)clients);
	}
	free(names);
	free(all);
}

static int64_t part_sum(const struct admin_job *job, int v)
{
	int64_t sum = 0;
	for (int i = 0; i < job->nshards; i++)
		sum += job->part[i].v[v];
	return sum;
}

static void rows_lists(struct shard *s, const struct admin_job *job, struct strbuf *o)
{
	const struct config *cfg = s->cfg;
	int n;
	struct admin_agg *a = merge(job, false, &n);
	free(a);
	int dbs = 1;
	for (int i = 0; i < cfg->ndbs; i++)
		dbs += strcmp(cfg->dbs[i].name, "*") != 0;
	admin_row(o, "si", "databases", dbs);
	admin_row(o, "si", "users", cfg->nsecrets + 1);
	admin_row(o, "si", "peers", 0);
	admin_row(o, "si", "pools", n);
	admin_row(o, "si", "peer_pools", 0);
	admin_row(o, "si", "free_clients", 0);
	admin_row(o, "si", "used_clients", (int)part_sum(job, PV_CLIENTS));
	admin_row(o, "si", "login_clients", (int)part_sum(job, PV_LOGIN_CLIENTS));
	admin_row(o, "si", "free_servers", 0);
	admin_row(o, "si", "used_servers", (int)part_sum(job, PV_SERVERS));
	admin_row(o, "si", "dns_names", s->topo->naddrs);
	admin_row(o, "si", "dns_zones", 0);
	admin_row(o, "si", "dns_queries", 0);
	admin_row(o, "si", "dns_pending", 0);
}

/* What pgring allocates per object, as PgBouncer's slab caches: no free
 * lists but the leases', so "free" is 0 for the others. */
static void rows_mem(const struct admin_job *job, struct strbuf *o)
{
	int64_t clients = part_sum(job, PV_CLIENTS) + part_sum(job, PV_LOGIN_CLIENTS);
	int64_t servers = part_sum(job, PV_SERVERS), pools = part_sum(job, PV_POOLS);
	int64_t leases = part_sum(job, PV_FREE_LEASES);
	admin_row(o, "siiii", "client_cache", (int)sizeof(struct client), (int)clients, 0,
		  (int)(clients * (int64_t)sizeof(struct client)));
	admin_row(o, "siiii", "server_cache", (int)sizeof(struct server), (int)servers, 0,
		  (int)(servers * (int64_t)sizeof(struct server)));
	admin_row(o, "siiii", "pool_cache", (int)sizeof(struct pool), (int)pools, 0,
		  (int)(pools * (int64_t)sizeof(struct pool)));
	admin_row(o, "siiii", "lease_cache", (int)sizeof(struct lease), 0, (int)leases,
		  (int)(leases * (int64_t)sizeof(struct lease)));
}

static void rows_config(struct shard *s, struct strbuf *o)
{
	struct strbuf list = STRBUF_INIT;
	config_settings(s->cfg, &list);
	/* key \t value \t default \t changeable \n, one setting a line */
	const char *p = strbuf_str(&list);
	while (*p) {
		char *f[4] = { NULL, NULL, NULL, NULL };
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *line = strndup(p, len);
		if (!line)
			break;
		char *save = NULL, *t = line;
		for (int i = 0; i < 4; i++) {
			char *tab = strchr(t, '\t');
			if (tab)
				*tab = 0;
			f[i] = t;
			if (!tab)
				break;
			t = tab + 1;
		}
		(void)save;
		if (f[3])
			admin_row(o, "ssss", f[0], f[1], f[2], f[3]);
		free(line);
		p += len + (nl ? 1 : 0);
	}
	strbuf_free(&list);
}

static void rows_topology(struct shard *s, struct strbuf *o)
{
	const struct topology *t = s->topo;
	for (int i = 0; i < t->nclusters; i++) {
		const struct topo_cluster *c = &t->clusters[i];
		int up = 0, lagging = 0, down = 0;
		for (int j = 0; j < c->cc->nnodes; j++) {
			up += c->nodes[j].state == NODE_UP;
			lagging += c->nodes[j].state == NODE_LAGGING;
			down += c->nodes[j].state == NODE_DOWN;
		}
		admin_row(o, "sqsiiii", c->cc->name, (int64_t)t->version, c->primary >= 0 ? c->cc->nodes[c->primary].name : NULL,
			  c->cc->nnodes, up, lagging, down);
	}
}

static void rows_dns(struct shard *s, struct strbuf *o)
{
	const struct topology *t = s->topo;
	for (int i = 0; i < t->naddrs; i++) {
		const struct topo_addr *a = &t->addrs[i];
		char list[512] = "";
		for (int k = 0; k < a->n; k++) {
			char ip[64] = "";
			const struct sockaddr *sa = (const struct sockaddr *)&a->addr[k];
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? "," : "", ip);
		}
		admin_row(o, "sqs", a->host, (int64_t)s->cfg->dns_max_ttl, list);
	}
}

/* The [peers] lines but this node's own, as PgBouncer lists them. */
static void rows_peers(struct shard *s, struct strbuf *o)
{
	const struct config *cfg = s->cfg;
	for (int i = 0; i < cfg->npeers; i++) {
		const struct config_peer *pe = &cfg->peers[i];
		if (pe->id != cfg->peer_id)
			admin_row(o, "isii", pe->id, pe->host, pe->port, config_peer_pool_size(cfg, pe));
	}
}

static void rows_peer_pools(const struct admin_job *job, struct strbuf *o)
{
	int n;
	struct admin_agg *a = merge(job, false, &n);
	for (int i = 0; i < n; i++)
		admin_row(o, "iiiii", atoi(a[i].db), (int)a[i].v[AGG_CL_ACTIVE], (int)a[i].v[AGG_CL_WAITING],
			  (int)a[i].v[AGG_SV_ACTIVE], 0);
	free(a);
}

static void rows_parts(const struct admin_job *job, struct strbuf *o)
{
	for (int i = 0; i <= job->nshards; i++)
		if (job->part[i].nrows)
			strbuf_append(o, job->part[i].rows.buf, job->part[i].rows.len);
}

void admin_show_rows(struct shard *s, const struct admin_job *job, struct strbuf *o)
{
	switch (job->cmd.show) {
	case SHOW_VERSION: admin_row(o, "s", admin_version_string()); break;
	case SHOW_CONFIG: rows_config(s, o); break;
	case SHOW_DATABASES: rows_databases(s, job, o); break;
	case SHOW_POOLS: rows_pools(job, o); break;
	case SHOW_STATS:
	case SHOW_STATS_TOTALS:
	case SHOW_STATS_AVERAGES: rows_stats(job, o); break;
	case SHOW_TOTALS: rows_totals(job, o); break;
	case SHOW_LISTS: rows_lists(s, job, o); break;
	case SHOW_USERS: rows_users(s, job, o); break;
	case SHOW_MEM: rows_mem(job, o); break;
	case SHOW_DNS_HOSTS: rows_dns(s, o); break;
	case SHOW_STATE:
		admin_row(o, "ss", "active", admin_paused_all() ? "no" : "yes");
		admin_row(o, "ss", "paused", admin_paused_all() ? "yes" : "no");
		admin_row(o, "ss", "suspended", "no");
		break;
	case SHOW_TOPOLOGY: rows_topology(s, o); break;
	case SHOW_PEERS: rows_peers(s, o); break;
	case SHOW_PEER_POOLS: rows_peer_pools(job, o); break;
	case SHOW_PARAM: {
		static const char *const values[][2] = {
			{ "client_encoding", "UTF-8" }, { "default_transaction_isolation", "read committed" },
			{ "standard_conforming_strings", "on" }, { "datestyle", "ISO" }, { "timezone", "GMT" },
		};
		for (size_t i = 0; i < NELEM(values); i++)
			if (!strcmp(values[i][0], job->cmd.arg))
				admin_row(o, "s", values[i][1]);
		break;
	}
	case SHOW_SETTING: {
		/* the value this shard runs with, as SHOW CONFIG prints it */
		struct strbuf all = STRBUF_INIT;
		config_settings(s->cfg, &all);
		size_t n = strlen(job->cmd.arg);
		for (const char *line = all.buf; line && *line;) {
			const char *end = strchr(line, '\n');
			if (!strncmp(line, job->cmd.arg, n) && line[n] == '\t') {
				const char *v = line + n + 1;
				char value[1024];
				snprintf(value, sizeof value, "%.*s", (int)strcspn(v, "\t\n"), v);
				admin_row(o, "s", value);
				break;
			}
			line = end ? end + 1 : NULL;
		}
		strbuf_free(&all);
		break;
	}
	default: rows_parts(job, o); break;   /* lists the shards made, and the control thread's */
	}
}
