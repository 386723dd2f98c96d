/* pool/admin.c: the admin console's sessions and commands. A console client
 * is an ordinary client of the shard that accepted it (same listeners, same
 * authentication) whose messages come here instead of to a lease. Commands
 * that need what other shards own go to every shard as a job through the
 * shards' inboxes; each shard answers with its part, taken on its own thread,
 * and the asking shard renders the answer. PAUSE and DISABLE are flags every
 * shard reads without locks (admin_db_paused). */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <strings.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/log.h"
#include "core/shard.h"
#include "pool/admin_int.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/pool.h"
#include "pool/server.h"

/* ---- pause and disable flags: written by console commands (rare, under a
 * mutex that only writers take), read by every shard without locks ---- */

enum { DBF_PAUSED = 1, DBF_DISABLED = 2 };
#define ADMIN_MAX_DB_FLAGS 1024

static struct db_flag {
	char name[ADMIN_ARG_MAX];
	bool user;                     /* a user's flags (DISABLE USER), not a database's */
	_Atomic int flags;
} db_flags[ADMIN_MAX_DB_FLAGS];
static _Atomic int n_db_flags;     /* entries published (release after the name is written) */
static _Atomic int pause_all;      /* PAUSE or KILL without a database */
static _Atomic int any_flag;       /* some flag may be set: the data path's one load when none is */
static pthread_mutex_t flags_lock = PTHREAD_MUTEX_INITIALIZER;

static struct db_flag *flag_find(bool user, const char *name)
{
	int n = atomic_load_explicit(&n_db_flags, memory_order_acquire);
	for (int i = 0; i < n; i++)
		if (db_flags[i].user == user && strcmp(db_flags[i].name, name) == 0)
			return &db_flags[i];
	return NULL;
}

static bool flag_get(bool user, const char *name, int bit)
{
	if (!atomic_load_explicit(&any_flag, memory_order_relaxed))
		return false;
	const struct db_flag *f = flag_find(user, name);
	return f && (atomic_load_explicit(&f->flags, memory_order_relaxed) & bit);
}

bool admin_paused_all(void) { return atomic_load_explicit(&pause_all, memory_order_relaxed) != 0; }
bool admin_db_flag_paused(const char *db) { return flag_get(false, db, DBF_PAUSED); }

bool admin_db_paused(const char *db)
{
	if (!atomic_load_explicit(&any_flag, memory_order_relaxed))
		return false;
	return admin_paused_all() || flag_get(false, db, DBF_PAUSED);
}

bool admin_db_disabled(const char *db) { return flag_get(false, db, DBF_DISABLED); }
bool admin_user_disabled(const char *user) { return flag_get(true, user, DBF_DISABLED); }
bool admin_any_flag(void) { return atomic_load_explicit(&any_flag, memory_order_relaxed) != 0; }

/* Set or clear a flag of a database or user ("" with DBF_PAUSED: every
 * database). false: no room. */
static bool flag_set_of(bool user, const char *name, int bit, bool on)
{
	bool ok = true;
	pthread_mutex_lock(&flags_lock);
	if (!*name && bit == DBF_PAUSED) {
		atomic_store(&pause_all, on);
	} else {
		struct db_flag *f = flag_find(user, name);
		int n = atomic_load(&n_db_flags);
		if (!f && on && n < ADMIN_MAX_DB_FLAGS) {
			f = &db_flags[n];
			snprintf(f->name, sizeof f->name, "%s", name);
			f->user = user;
			atomic_store_explicit(&n_db_flags, n + 1, memory_order_release);
		}
		if (f && on)
			atomic_fetch_or(&f->flags, bit);
		else if (f)
			atomic_fetch_and(&f->flags, ~bit);
		else
			ok = !on;
	}
	int any = atomic_load(&pause_all) != 0;
	for (int i = 0; i < atomic_load(&n_db_flags); i++)
		any |= atomic_load(&db_flags[i].flags) != 0;
	atomic_store(&any_flag, any);
	pthread_mutex_unlock(&flags_lock);
	return ok;
}

static bool flag_set(const char *db, int bit, bool on) { return flag_set_of(false, db, bit, on); }

static bool any_db_paused(void)
{
	for (int i = 0; i < atomic_load(&n_db_flags); i++)
		if (!db_flags[i].user && (atomic_load(&db_flags[i].flags) & DBF_PAUSED))
			return true;
	return false;
}

/* ---- per connection ---- */

struct named {
	char *name, *query;
};

struct admin_conn {
	bool admin_user;                 /* admin_users: every command; else SHOW only */
	bool ext_failed;                 /* an error in an extended batch: skip to Sync */
	struct admin_job *job;           /* a command in flight */
	/* PAUSE and WAIT_CLOSE wait for servers: asked again every tick */
	struct admin_cmd waiting;
	bool waiting_extended;
	uint64_t wait_started_us;
	/* messages that arrived while a command was in flight, replayed after */
	struct strbuf backlog;
	size_t backlog_off;
	bool replaying;
	/* extended protocol: prepared statements and portals, by name */
	struct named *stmts, *portals;
	int nstmts, nportals;
};

/* Per shard: posts that found the target's inbox full, retried every tick. */
struct admin_shard {
	struct retry {
		int to;                          /* shard, or -1: the control thread */
		struct shard_msg m;
	} *retry;
	int nretry, cap;
};

enum { MSG_DO = 1, MSG_DONE };

static struct admin_shard *admin_of(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	if (!ps->admin)
		ps->admin = calloc(1, sizeof *ps->admin);
	return ps->admin;
}

static void control_do(void *arg);

static bool post_now(struct shard *s, int to, const struct shard_msg *m)
{
	if (to < 0)
		return control_call(s->id, control_do, m->ptr);
	return shard_post(s->id, to, m);
}

/* Post, or keep it to post on the next tick (an inbox is full). */
static void post(struct shard *s, int to, const struct shard_msg *m)
{
	struct admin_shard *as = admin_of(s);
	if (as && !as->nretry && post_now(s, to, m))
		return;
	if (!as || (as->nretry == as->cap && !(as->retry = realloc(as->retry, (size_t)(as->cap = as->cap ? as->cap * 2 : 8) * sizeof *as->retry)))) {
		/* out of memory for the retry list: wait in this thread instead */
		while (!post_now(s, to, m))
			usleep(1000);
		return;
	}
	as->retry[as->nretry++] = (struct retry){ to, *m };
}

static void retry_posts(struct shard *s)
{
	struct admin_shard *as = pool_shard(s)->admin;
	if (!as || !as->nretry)
		return;
	int k = 0;
	while (k < as->nretry && post_now(s, as->retry[k].to, &as->retry[k].m))
		k++;
	memmove(as->retry, as->retry + k, (size_t)(as->nretry - k) * sizeof *as->retry);
	as->nretry -= k;
}

/* ---- sending ---- */

static void send_buf(struct client *cl, struct strbuf *o)
{
	if (o->failed) {
		client_fail(cl, "53200", "out of memory");
		return;
	}
	if (o->len && !conn_queue(&cl->conn, o->buf, (uint32_t)o->len, PROTO_BUF_NONE))
		client_fail(cl, "53200", "out of memory");
}

static void ready(struct strbuf *o)
{
	size_t at = admin_msg_begin(o, 'Z');
	strbuf_putc(o, 'I');
	admin_msg_end(o, at);
}

/* The end of a command: ReadyForQuery after a simple query; after an
 * extended one, nothing (its Sync says it). */
static void finish(struct client *cl, struct strbuf *o, bool extended)
{
	if (!extended)
		ready(o);
	send_buf(cl, o);
	strbuf_free(o);
}

static void error_out(struct client *cl, bool extended, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void error_out(struct client *cl, bool extended, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	LOGF(LOG_INFO, cl->conn.id, "admin console: %s", msg);
	struct strbuf o = STRBUF_INIT;
	admin_error_msg(&o, "ERROR", sqlstate, msg);
	if (extended)
		cl->admin->ext_failed = true;
	finish(cl, &o, extended);
}

static void complete_out(struct client *cl, bool extended, const char *tag)
{
	struct strbuf o = STRBUF_INIT;
	admin_complete(&o, tag);
	finish(cl, &o, extended);
}

/* ---- login ---- */

bool admin_user_is(const char *list, const char *user)
{
	if (!list || !user)
		return false;
	size_t n = strlen(user);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		if ((size_t)(e - p) == n && !strncmp(p, user, n))
			return true;
		p = e;
	}
	return false;
}

/* Peer authentication on the Unix socket: a client running as the process's
 * own OS user, logging in as "pgbouncer" (PgBouncer's rule) or as that OS
 * user's name, is an admin without a password. */
static bool peer_is_owner(struct client *cl)
{
	uid_t uid;
	char name[256];
	if (!client_peer_user(cl, &uid, name, sizeof name) || uid != geteuid())
		return false;
	return !strcmp(cl->user, "pgbouncer") || !strcmp(name, cl->user);
}

bool admin_startup(struct client *cl)
{
	if (!(cl->admin = calloc(1, sizeof *cl->admin))) {
		client_fail(cl, "53200", "out of memory");
		return true;
	}
	if (peer_is_owner(cl)) {
		LOGF(LOG_INFO, cl->conn.id, "admin console: %s by peer on the Unix socket", cl->user);
		cl->admin->admin_user = true;
		admin_login(cl);
		return true;
	}
	return false;
}

static void welcome(struct client *cl)
{
	static const char *const params[][2] = {
		{ "server_version", "1.25.2/bouncer" }, { "client_encoding", "UTF8" }, { "server_encoding", "UTF8" },
		{ "DateStyle", "ISO" }, { "TimeZone", "GMT" }, { "standard_conforming_strings", "on" },
		{ "is_superuser", "on" },
	};
	struct strbuf o = STRBUF_INIT;
	size_t at = admin_msg_begin(&o, 'R');
	strbuf_append(&o, "\0\0\0\0", 4);
	admin_msg_end(&o, at);
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
		at = admin_msg_begin(&o, 'S');
		strbuf_append(&o, params[i][0], strlen(params[i][0]) + 1);
		strbuf_append(&o, params[i][1], strlen(params[i][1]) + 1);
		admin_msg_end(&o, at);
	}
	/* a key no cancel matches: ^C in psql cancels nothing here */
	at = admin_msg_begin(&o, 'K');
	uint8_t key[8] = { 0, 0, 0, 1, 0, 0, 0, 0 };
	if (cl->key_long) {
		uint8_t long_key[4 + PROTO_KEY_LONG] = { 0, 0, 0, 1 };
		strbuf_append(&o, long_key, sizeof long_key);
	} else {
		strbuf_append(&o, key, sizeof key);
	}
	admin_msg_end(&o, at);
	ready(&o);
	send_buf(cl, &o);
	strbuf_free(&o);
}

void admin_login(struct client *cl)
{
	const struct config *cfg = cl->conn.shard->cfg;
	struct admin_conn *ac = cl->admin;
	free(cl->scram);
	cl->scram = NULL;
	free(cl->secret);
	cl->secret = NULL;
	if (!ac->admin_user) {
		if (admin_user_is(cfg->admin_users, cl->user))
			ac->admin_user = true;
		else if (!admin_user_is(cfg->stats_users, cl->user) && cfg->auth_type != AUTH_ANY) {
			LOGF(LOG_WARNING, cl->conn.id, "admin console: user \"%s\" is in neither admin_users nor stats_users",
			     cl->user);
			client_fail(cl, "28000", "not allowed");
			return;
		}
	}
	LOGF(LOG_INFO, cl->conn.id, "login: user=%s database=%s (admin console, %s)", cl->user, cl->database,
	     ac->admin_user ? "admin" : "stats");
	welcome(cl);
	client_set_state(cl, CL_IDLE);
}

/* ---- jobs ---- */

static struct admin_job *job_new(struct client *cl, int op, const struct admin_cmd *cmd, bool extended)
{
	struct shard *s = cl->conn.shard;
	struct admin_job *job = calloc(1, sizeof *job + (size_t)(s->nshards + 1) * sizeof job->part[0]);
	if (!job)
		return NULL;
	job->client = cl;
	job->origin = s->id;
	job->nshards = s->nshards;
	job->op = op;
	job->cmd = *cmd;
	job->extended = extended;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	job->wall_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	job->mono_us = s->now_us;
	return job;
}

static void job_free(struct admin_job *job)
{
	for (int i = 0; i <= job->nshards; i++) {
		strbuf_free(&job->part[i].rows);
		free(job->part[i].agg);
	}
	free(job);
}

/* Send the job to every shard (control: to the control thread alone). */
static void job_start(struct client *cl, struct admin_job *job, bool control)
{
	struct shard *s = cl->conn.shard;
	cl->admin->job = job;
	struct shard_msg m = { .type = POOL_MSG_ADMIN, .a = MSG_DO, .ptr = job };
	if (control) {
		job->pending = 1;
		post(s, -1, &m);
		return;
	}
	job->pending = job->nshards;
	for (int i = 0; i < job->nshards; i++)
		post(s, i, &m);
}

/* On the control thread. */
static void control_do(void *arg)
{
	struct admin_job *job = arg;
	struct admin_part *part = &job->part[job->nshards];
	if (job->cmd.verb == ADMIN_RELOAD)
		part->status = control_reload();
	else if (job->cmd.verb == ADMIN_SET)
		part->status = control_set(job->cmd.arg, job->cmd.value, part->msg, sizeof part->msg);
	else if (job->cmd.verb == ADMIN_RESET)
		part->status = control_reset(strcmp(job->cmd.arg, "all") ? job->cmd.arg : NULL, part->msg, sizeof part->msg);
	else
		admin_show_collect_control(job, part);
	struct shard_msg m = { .type = POOL_MSG_ADMIN, .a = MSG_DONE, .b = (uint32_t)job->nshards, .ptr = job };
	while (!shard_post(-1, job->origin, &m))
		usleep(1000);   /* the control thread may wait: nothing of the data path runs on it */
}

static bool same_db(const struct pool *p, const char *db) { return !*db || !strcmp(p->db_name, db); }

/* A shard's part of an action, on its thread. */
static void do_action(struct shard *s, struct admin_job *job, struct admin_part *part)
{
	struct pool_shard *ps = pool_shard(s);
	const char *db = job->cmd.arg;
	struct client *cl, *next;
	switch (job->op) {
	case ADMIN_OP_KILL_CLIENT:
		list_for_each_safe(&ps->clients, cl, next, all)
			if (cl->conn.id == job->cmd.id && cl->state != CL_CLOSED && cl->state != CL_STARTUP &&
			    cl->state != CL_AUTH && cl->state != CL_AUTHQ && cl->state != CL_CANCEL) {
				client_fail(cl, "57P01", "admin forced disconnect");
				part->v[PV_FOUND]++;
			}
		break;
	case ADMIN_OP_KILL:
		list_for_each_safe(&ps->clients, cl, next, all)
			if (!cl->admin && cl->state != CL_CLOSED && cl->database && (!*db || !strcmp(cl->database, db)) &&
			    cl->state != CL_STARTUP && cl->state != CL_AUTH && cl->state != CL_AUTHQ)
				client_fail(cl, "57P01", "database killed by the admin console (KILL)");
		__attribute__((fallthrough));   /* and its servers go */
	case ADMIN_OP_RECONNECT:
		for (struct pool *p = ps->pools; p; p = p->next) {
			if (!same_db(p, db))
				continue;
			struct server *sv, *tmp;
			list_for_each_safe(&p->used, sv, tmp, link)
				sv->close_when_idle = true;   /* closed when its client is done with it */
			while ((sv = list_first(&p->idle, struct server, link)))
				server_close(sv, job->op == ADMIN_OP_KILL ? "KILL (admin console)" : "RECONNECT (admin console)");
		}
		break;
	case ADMIN_OP_BUSY:
		for (struct pool *p = ps->pools; p; p = p->next) {
			if (!same_db(p, db))
				continue;
			struct server *sv, *tmp;
			list_for_each_safe(&p->used, sv, tmp, link)
				part->v[PV_BUSY] += job->cmd.verb == ADMIN_WAIT_CLOSE ? sv->close_when_idle
						    : sv->state != SV_CONNECTING && sv->state != SV_LOGIN;
			if (job->cmd.verb == ADMIN_WAIT_CLOSE) {
				list_for_each_safe(&p->idle, sv, tmp, link)
					part->v[PV_BUSY] += sv->close_when_idle;
			}
		}
		break;
	default:
		admin_show_collect(s, job, part);
		break;
	}
}

static void replay_backlog(struct client *cl);
static void poll_wait(struct client *cl);

/* Every part is in: answer. */
static void job_done(struct shard *s, struct admin_job *job)
{
	struct client *cl = job->client;
	if (!cl) {
		job_free(job);
		return;
	}
	cl->admin->job = NULL;
	struct strbuf o = STRBUF_INIT;
	int64_t found = 0, busy = 0;
	for (int i = 0; i < job->nshards; i++) {
		found += job->part[i].v[PV_FOUND];
		busy += job->part[i].v[PV_BUSY];
	}
	switch (job->op) {
	case ADMIN_OP_SHOW:
	case ADMIN_OP_CONTROL:
		if (job->cmd.verb == ADMIN_RELOAD) {
			if (job->part[job->nshards].status)
				admin_error_msg(&o, "ERROR", "F0000", "RELOAD failed, see logs for additional details");
			else
				admin_complete(&o, "RELOAD");
			break;
		}
		if (job->cmd.verb == ADMIN_RESET) {
			if (job->part[job->nshards].status)
				admin_error_msg(&o, "ERROR", "22023", job->part[job->nshards].msg);
			else
				admin_complete(&o, "RESET");
			break;
		}
		if (job->cmd.verb == ADMIN_SET) {
			const char *why = job->part[job->nshards].msg;
			if (!strncmp(why, "SET:", 4) && strchr(why, ' '))
				why = strchr(why, ' ') + 1;   /* "SET:N: " names no file */
			if (job->part[job->nshards].status)
				admin_error_msg(&o, "ERROR", "22023", why);
			else
				admin_complete(&o, "SET");
			break;
		}
		if (!job->extended)
			admin_show_rowdesc(&job->cmd, &o);
		admin_show_rows(s, job, &o);
		admin_complete(&o, "SHOW");
		break;
	case ADMIN_OP_KILL_CLIENT:
		if (found)
			admin_complete(&o, "KILL_CLIENT");
		else
			admin_error_msg(&o, "ERROR", "42704", "client not found");
		break;
	case ADMIN_OP_KILL: admin_complete(&o, "KILL"); break;
	case ADMIN_OP_RECONNECT: admin_complete(&o, "RECONNECT"); break;
	case ADMIN_OP_BUSY:
		if (busy) {
			/* servers still in use: ask again on the next tick */
			job_free(job);
			strbuf_free(&o);
			return;
		}
		cl->admin->waiting.verb = ADMIN_EMPTY;
		admin_complete(&o, job->cmd.verb == ADMIN_PAUSE ? "PAUSE" : "WAIT_CLOSE");
		break;
	}
	if (o.len && o.buf[0] == 'E' && job->extended)
		cl->admin->ext_failed = true;
	finish(cl, &o, job->extended);
	job_free(job);
	replay_backlog(cl);
}

void admin_message(struct shard *s, const struct shard_msg *m)
{
	struct admin_job *job = m->ptr;
	if (m->a == MSG_DO) {
		do_action(s, job, &job->part[s->id]);
		struct shard_msg back = { .type = POOL_MSG_ADMIN, .a = MSG_DONE, .b = (uint32_t)s->id, .ptr = job };
		post(s, job->origin, &back);   /* the part is the origin's from here on */
		return;
	}
	if (--job->pending == 0)
		job_done(s, job);
}

/* PAUSE, WAIT_CLOSE: are the servers done? (a job on every shard) */
static void poll_wait(struct client *cl)
{
	struct admin_conn *ac = cl->admin;
	if (ac->job || ac->waiting.verb == ADMIN_EMPTY)
		return;
	struct admin_job *job = job_new(cl, ADMIN_OP_BUSY, &ac->waiting, ac->waiting_extended);
	if (job)
		job_start(cl, job, false);
}

void admin_tick(struct shard *s)
{
	retry_posts(s);
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all)
		if (cl->admin && cl->state == CL_IDLE && cl->admin->waiting.verb != ADMIN_EMPTY)
			poll_wait(cl);
}


/* ---- commands ---- */

static bool db_known(const struct shard *s, const char *db)
{
	const struct config_cluster *cc;
	size_t len;
	return config_resolve_db(s->cfg, db, &cc, &len) != NULL;
}

/* SET: PgBouncer's fake session settings are accepted and ignored; pgring's
 * configuration is a snapshot the control thread owns, changed by RELOAD. */
/* RELOAD, SET, RESET: a job for the control thread, which answers it. */
static void control_job(struct client *cl, const struct admin_cmd *cmd, bool extended)
{
	struct admin_job *job = job_new(cl, ADMIN_OP_CONTROL, cmd, extended);
	if (!job) {
		error_out(cl, extended, "53200", "out of memory");
		return;
	}
	job_start(cl, job, true);
}

static void run_set(struct client *cl, const struct admin_cmd *cmd, bool extended)
{
	static const char *const fake[] = { "client_encoding", "default_transaction_isolation",
					    "standard_conforming_strings", "datestyle", "timezone" };
	for (size_t i = 0; i < sizeof fake / sizeof fake[0]; i++)
		if (!strcasecmp(cmd->arg, fake[i])) {
			struct strbuf o = STRBUF_INIT;
			admin_notice_msg(&o, "SET ignored", NULL);
			admin_complete(&o, "SET");
			finish(cl, &o, extended);
			return;
		}
	if (!cl->admin->admin_user) {
		error_out(cl, extended, "42501", "admin access needed");
		return;
	}
	if (!config_is_setting(cmd->arg)) {
		error_out(cl, extended, "42704", "unrecognized configuration parameter \"%s\"", cmd->arg);
		return;
	}
	if (!config_runtime_setting(cmd->arg)) {
		error_out(cl, extended, "55P02", "parameter \"%s\" cannot be changed without restarting pgring", cmd->arg);
		return;
	}
	/* as a reload with the setting over the file, on the control thread */
	struct admin_cmd set = *cmd;
	for (char *p = set.arg; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	log_notice("SET %s = '%s' command issued", set.arg, set.value);
	control_job(cl, &set, extended);
}

static void run(struct client *cl, const struct admin_cmd *cmd, bool extended)
{
	struct admin_conn *ac = cl->admin;
	struct shard *s = cl->conn.shard;
	const char *db = cmd->arg;
	if (cmd->verb == ADMIN_EMPTY) {
		struct strbuf o = STRBUF_INIT;
		size_t at = admin_msg_begin(&o, 'I');
		admin_msg_end(&o, at);
		finish(cl, &o, extended);
		return;
	}
	if (cmd->verb == ADMIN_SET) {
		run_set(cl, cmd, extended);
		return;
	}
	if (!ac->admin_user && (cmd->verb != ADMIN_SHOW || cmd->show == SHOW_FDS)) {
		error_out(cl, extended, "42501", "admin access needed");
		return;
	}
	if ((cmd->verb == ADMIN_PAUSE || cmd->verb == ADMIN_RECONNECT || cmd->verb == ADMIN_KILL ||
	     cmd->verb == ADMIN_WAIT_CLOSE || cmd->verb == ADMIN_DISABLE || cmd->verb == ADMIN_ENABLE ||
	     cmd->verb == ADMIN_RESUME) && *db && !cmd->of_user) {
		if (admin_console_db(db)) {
			error_out(cl, extended, "55000", "cannot %s admin db: %s",
				  cmd->verb == ADMIN_PAUSE ? "pause" : cmd->verb == ADMIN_KILL ? "kill"
				  : cmd->verb == ADMIN_RECONNECT ? "reconnect" : cmd->verb == ADMIN_WAIT_CLOSE ? "wait in"
				  : cmd->verb == ADMIN_DISABLE ? "disable" : "enable", db);
			return;
		}
		if (!db_known(s, db)) {
			error_out(cl, extended, "3D000", "no such database: %s", db);
			return;
		}
	}
	int op = 0;
	switch (cmd->verb) {
	case ADMIN_SHOW:
		if (cmd->show == SHOW_HELP) {
			struct strbuf o = STRBUF_INIT;
			admin_help(&o);
			admin_complete(&o, "SHOW");
			finish(cl, &o, extended);
			return;
		}
		if (admin_show_needs_shards(cmd->show) || admin_show_needs_control(cmd->show)) {
			bool control = admin_show_needs_control(cmd->show);
			struct admin_job *job = job_new(cl, control ? ADMIN_OP_CONTROL : ADMIN_OP_SHOW, cmd, extended);
			if (!job) {
				error_out(cl, extended, "53200", "out of memory");
				return;
			}
			job_start(cl, job, control);
			return;
		}
		struct admin_job *job = job_new(cl, ADMIN_OP_SHOW, cmd, extended);   /* no parts: shown from here */
		if (!job) {
			error_out(cl, extended, "53200", "out of memory");
			return;
		}
		job->nshards = 0;
		struct strbuf o = STRBUF_INIT;
		if (!extended)
			admin_show_rowdesc(cmd, &o);
		admin_show_rows(s, job, &o);
		admin_complete(&o, "SHOW");
		finish(cl, &o, extended);
		job_free(job);
		return;
	case ADMIN_PAUSE:
		if (admin_paused_all() || (*db && admin_db_flag_paused(db))) {
			error_out(cl, extended, "55000", "already suspended/paused");
			return;
		}
		if (!flag_set(db, DBF_PAUSED, true)) {
			error_out(cl, extended, "54000", "too many paused or disabled databases");
			return;
		}
		log_notice("PAUSE%s%s command issued", *db ? " " : "", db);
		__attribute__((fallthrough));   /* it answers once the database's servers are released */
	case ADMIN_WAIT_CLOSE:
		if (cmd->verb == ADMIN_WAIT_CLOSE)
			log_notice("WAIT_CLOSE%s%s command issued", *db ? " " : "", db);
		ac->waiting = *cmd;
		ac->waiting_extended = extended;
		ac->wait_started_us = s->now_us;
		poll_wait(cl);
		return;
	case ADMIN_RESUME: {
		if (control_shutting_down()) {
			error_out(cl, extended, "55000", "pooler is shutting down");
			return;
		}
		if (*db ? !admin_db_flag_paused(db) : !admin_paused_all() && !any_db_paused()) {
			error_out(cl, extended, "55000", *db ? "database %s is not paused" : "pooler is not paused/suspended%s",
				  db);
			return;
		}
		if (*db) {
			flag_set(db, DBF_PAUSED, false);
		} else {
			/* PgBouncer's RESUME without a database ends the global pause only;
			 * pgring also lifts every database's, so that RESUME after KILL works */
			flag_set("", DBF_PAUSED, false);
			for (int i = 0; i < atomic_load(&n_db_flags); i++)
				if (!db_flags[i].user)
					flag_set(db_flags[i].name, DBF_PAUSED, false);
		}
		log_notice("RESUME%s%s command issued", *db ? " " : "", db);
		struct shard_msg m = { .type = POOL_MSG_WAKE };
		for (int i = 0; i < s->nshards; i++)
			post(s, i, &m);   /* waiting clients get servers again */
		complete_out(cl, extended, "RESUME");
		return;
	}
	case ADMIN_SUSPEND:
		error_out(cl, extended, "0A000",
			  "SUSPEND is not supported: pgring does not hand its sockets to a new process this way "
			  "(use PAUSE to hold transactions, SHUTDOWN WAIT_FOR_CLIENTS to drain)");
		return;
	case ADMIN_DISABLE:
	case ADMIN_ENABLE:
		if (!flag_set_of(cmd->of_user, db, DBF_DISABLED, cmd->verb == ADMIN_DISABLE)) {
			error_out(cl, extended, "54000", "too many paused or disabled databases and users");
			return;
		}
		/* the shards' pools see it at their next tick (pool_tick_disabled) */
		log_notice("%s %s%s command issued", cmd->verb == ADMIN_DISABLE ? "DISABLE" : "ENABLE",
			   cmd->of_user ? "USER " : "", db);
		complete_out(cl, extended, cmd->verb == ADMIN_DISABLE ? "DISABLE" : "ENABLE");
		return;
	case ADMIN_KILL:
		if (admin_paused_all()) {
			error_out(cl, extended, "55000", "already suspended/paused");
			return;
		}
		/* a killed database stays paused: new clients wait until RESUME */
		if (!flag_set(db, DBF_PAUSED, true)) {
			error_out(cl, extended, "54000", "too many paused or disabled databases");
			return;
		}
		log_notice("KILL%s%s command issued", *db ? " " : "", db);
		op = ADMIN_OP_KILL;
		break;
	case ADMIN_RECONNECT:
		log_notice("RECONNECT%s%s command issued", *db ? " " : "", db);
		op = ADMIN_OP_RECONNECT;
		break;
	case ADMIN_KILL_CLIENT:
		log_notice("KILL_CLIENT %llu command issued", (unsigned long long)cmd->id);
		op = ADMIN_OP_KILL_CLIENT;
		break;
	case ADMIN_RESET:
		if (strcmp(cmd->arg, "all") && !config_is_setting(cmd->arg)) {
			error_out(cl, extended, "42704", "unrecognized configuration parameter \"%s\"", cmd->arg);
			return;
		}
		log_notice("RESET %s command issued", cmd->arg);
		control_job(cl, cmd, extended);
		return;
	case ADMIN_RELOAD:
		log_notice("RELOAD command issued");
		control_job(cl, cmd, extended);
		return;
	case ADMIN_SHUTDOWN:
		/* the control thread does the rest: SIGINT stops at once, SIGTERM
		 * drains (transactions finish; WAIT_FOR_SERVERS), and WAIT_FOR_CLIENTS
		 * stops accepting and waits for every client to leave */
		log_notice("SHUTDOWN%s%s command issued", cmd->mode ? " " : "", cmd->mode ? cmd->arg : "");
		if (cmd->mode == ADMIN_SHUTDOWN_NOW) {
			kill(getpid(), SIGINT);
			return;   /* as PgBouncer: no answer, the connection ends with the process */
		}
		if (cmd->mode == ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS && !control_call(s->id, control_wait_for_clients, NULL)) {
			error_out(cl, extended, "53200", "out of memory");
			return;
		}
		complete_out(cl, extended, "SHUTDOWN");
		if (cmd->mode == ADMIN_SHUTDOWN_WAIT_FOR_SERVERS)
			kill(getpid(), SIGTERM);   /* transactions finish, then it stops */
		return;
	default:
		error_out(cl, extended, "42601", "invalid command");
		return;
	}
	struct admin_job *job = job_new(cl, op, cmd, extended);
	if (!job) {
		error_out(cl, extended, "53200", "out of memory");
		return;
	}
	job_start(cl, job, false);
}

/* ---- messages ---- */

static const char *named_get(struct named *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].query;
	return NULL;
}

static void named_drop(struct named *v, int *n, const char *name)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(v[i].name, name)) {
			free(v[i].name);
			free(v[i].query);
			v[i] = v[--*n];
			return;
		}
}

static bool named_put(struct named **v, int *n, const char *name, const char *query)
{
	named_drop(*v, n, name);
	struct named *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
	if (!nv)
		return false;
	*v = nv;
	nv[*n].name = strdup(name);
	nv[*n].query = strdup(query);
	if (!nv[*n].name || !nv[*n].query) {
		free(nv[*n].name);
		free(nv[*n].query);
		return false;
	}
	(*n)++;
	return true;
}

static void named_free(struct named *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].query);
	}
	free(v);
}

/* A message body's NUL-terminated string at *off; NULL when malformed. */
static const char *body_str(const uint8_t *msg, uint32_t len, uint32_t *off)
{
	const char *s = (const char *)msg + *off;
	size_t room = len > *off ? len - *off : 0;
	size_t n = strnlen(s, room);
	if (n == room)
		return NULL;
	*off += (uint32_t)n + 1;
	return s;
}

static void simple_out(struct client *cl, char type)
{
	struct strbuf o = STRBUF_INIT;
	size_t at = admin_msg_begin(&o, type);
	admin_msg_end(&o, at);
	send_buf(cl, &o);
	strbuf_free(&o);
}

static bool parse_or_error(struct client *cl, const char *q, struct admin_cmd *cmd, bool extended)
{
	char err[512], state[6];
	if (admin_parse(q, cmd, err, sizeof err, state) == 0)
		return true;
	error_out(cl, extended, state, "%s", err);
	return false;
}

static void describe(struct client *cl, const char *q, bool statement)
{
	struct admin_cmd cmd;
	char err[512], state[6];
	struct strbuf o = STRBUF_INIT;
	if (statement) {
		size_t at = admin_msg_begin(&o, 't');
		strbuf_append(&o, "\0\0", 2);
		admin_msg_end(&o, at);
	}
	if (admin_parse(q, &cmd, err, sizeof err, state) || cmd.verb != ADMIN_SHOW || !admin_show_rowdesc(&cmd, &o)) {
		size_t at = admin_msg_begin(&o, 'n');
		admin_msg_end(&o, at);
	}
	send_buf(cl, &o);
	strbuf_free(&o);
}

static void handle(struct client *cl, const uint8_t *msg, uint32_t len)
{
	struct admin_conn *ac = cl->admin;
	uint8_t type = msg[0];
	uint32_t off = 5;
	if (type == 'S') {
		ac->ext_failed = false;
		struct strbuf o = STRBUF_INIT;
		ready(&o);
		send_buf(cl, &o);
		strbuf_free(&o);
		return;
	}
	if (type == 'H')
		return;
	if (type == 'Q') {
		ac->ext_failed = false;
		const char *q = body_str(msg, len, &off);
		struct admin_cmd cmd;
		if (!q) {
			client_fail(cl, "08P01", "invalid Query message");
			return;
		}
		LOGF(LOG_DEBUG, cl->conn.id, "admin query: %s", q);
		if (parse_or_error(cl, q, &cmd, false))
			run(cl, &cmd, false);
		return;
	}
	if (ac->ext_failed)
		return;   /* ignored until Sync, as PostgreSQL does after an error */
	switch (type) {
	case 'P': {
		const char *name = body_str(msg, len, &off), *q = name ? body_str(msg, len, &off) : NULL;
		struct admin_cmd cmd;
		if (!q) {
			client_fail(cl, "08P01", "invalid Parse message");
			return;
		}
		if (!parse_or_error(cl, q, &cmd, true))
			return;
		if (!named_put(&ac->stmts, &ac->nstmts, name, q)) {
			error_out(cl, true, "53200", "out of memory");
			return;
		}
		simple_out(cl, '1');
		return;
	}
	case 'B': {
		const char *portal = body_str(msg, len, &off), *name = portal ? body_str(msg, len, &off) : NULL;
		if (!name) {
			client_fail(cl, "08P01", "invalid Bind message");
			return;
		}
		const char *q = named_get(ac->stmts, ac->nstmts, name);
		if (!q) {
			error_out(cl, true, "26000", "prepared statement \"%s\" does not exist", name);
			return;
		}
		if (!named_put(&ac->portals, &ac->nportals, portal, q)) {
			error_out(cl, true, "53200", "out of memory");
			return;
		}
		simple_out(cl, '2');
		return;
	}
	case 'D': {
		char what = len > 5 ? (char)msg[5] : 0;
		off = 6;
		const char *name = body_str(msg, len, &off);
		const char *q = !name ? NULL : what == 'S' ? named_get(ac->stmts, ac->nstmts, name)
					 : named_get(ac->portals, ac->nportals, name);
		if (!q) {
			error_out(cl, true, what == 'S' ? "26000" : "34000", "%s \"%s\" does not exist",
				  what == 'S' ? "prepared statement" : "portal", name ? name : "");
			return;
		}
		describe(cl, q, what == 'S');
		return;
	}
	case 'E': {
		const char *portal = body_str(msg, len, &off);
		const char *q = portal ? named_get(ac->portals, ac->nportals, portal) : NULL;
		struct admin_cmd cmd;
		if (!q) {
			error_out(cl, true, "34000", "portal \"%s\" does not exist", portal ? portal : "");
			return;
		}
		if (parse_or_error(cl, q, &cmd, true))
			run(cl, &cmd, true);
		return;
	}
	case 'C': {
		char what = len > 5 ? (char)msg[5] : 0;
		off = 6;
		const char *name = body_str(msg, len, &off);
		if (name && what == 'S')
			named_drop(ac->stmts, &ac->nstmts, name);
		else if (name)
			named_drop(ac->portals, &ac->nportals, name);
		simple_out(cl, '3');
		return;
	}
	default:
		error_out(cl, true, "08P01", "unsupported message type for admin console: %c", type);
		return;
	}
}

/* Messages that came while a command ran, in order, until one starts another. */
static void replay_backlog(struct client *cl)
{
	struct admin_conn *ac = cl->admin;
	if (ac->replaying)
		return;
	ac->replaying = true;
	while (!ac->job && ac->waiting.verb == ADMIN_EMPTY && cl->state == CL_IDLE &&
	       ac->backlog_off < ac->backlog.len) {
		const uint8_t *m = (const uint8_t *)ac->backlog.buf + ac->backlog_off;
		uint32_t len = 1 + (((uint32_t)m[1] << 24) | ((uint32_t)m[2] << 16) | ((uint32_t)m[3] << 8) | m[4]);
		ac->backlog_off += len;
		handle(cl, m, len);
	}
	if (ac->backlog_off == ac->backlog.len) {
		strbuf_reset(&ac->backlog);
		ac->backlog_off = 0;
		if (!cl->conn.recv_wanted && cl->state == CL_IDLE && !cl->conn.closing)
			conn_recv_on(&cl->conn);
	}
	ac->replaying = false;
}

#define ADMIN_MSG_MAX (1u << 20)      /* a console message bigger than this is no command */
#define ADMIN_BACKLOG_MAX (1u << 20)  /* stop reading a client that sends faster than it is answered */

int admin_begin(struct client *cl, uint8_t type, uint32_t len)
{
	(void)type;
	if (len > ADMIN_MSG_MAX) {
		client_fail(cl, "08P01", "admin console message too long (%u bytes)", len);
		return PROTO_STOP;
	}
	return PROTO_WHOLE;
}

bool admin_whole(struct client *cl, const uint8_t *msg, uint32_t len)
{
	struct admin_conn *ac = cl->admin;
	if (ac->job || ac->waiting.verb != ADMIN_EMPTY || ac->backlog_off < ac->backlog.len) {
		strbuf_append(&ac->backlog, msg, len);
		if (ac->backlog.failed) {
			client_fail(cl, "53200", "out of memory");
			return false;
		}
		if (ac->backlog.len - ac->backlog_off > ADMIN_BACKLOG_MAX)
			conn_recv_off(&cl->conn);
		return true;
	}
	handle(cl, msg, len);
	return cl->state != CL_CLOSED;
}

void admin_client_free(struct client *cl)
{
	struct admin_conn *ac = cl->admin;
	if (!ac)
		return;
	if (ac->job)
		ac->job->client = NULL;   /* its parts still come back; the job is freed then */
	strbuf_free(&ac->backlog);
	named_free(ac->stmts, ac->nstmts);
	named_free(ac->portals, ac->nportals);
	free(ac);
	cl->admin = NULL;
}
