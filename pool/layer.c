/* pool/layer.c: the pool layer as the shard loop runs it (struct shard_upper):
 * its per-shard state, accepted clients, the messages shards send each other
 * about clients and servers, the tick, draining on SIGTERM, and handing
 * clients over to a successor (pgring -R, pool/upgrade.c). */
#include <stdlib.h>

#include "core/control/authq.h"
#include "core/log.h"
#include "pool/admin.h"
#include "pool/admit.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/migrate.h"
#include "pool/pool.h"
#include "pool/route.h"
#include "pool/upgrade.h"

static int layer_start(struct shard *s)
{
	struct pool_shard *ps = calloc(1, sizeof *ps);
	if (!ps)
		return -1;
	list_init(&ps->clients);
	list_init(&ps->routing);
	list_init(&ps->prelogin);
	list_init(&ps->closing);
	list_init(&ps->cancel_waits);
	list_init(&ps->upgrade_due);
	s->upper = ps;
	return 0;
}

static void layer_accept(struct shard *s, int fd, bool is_unix, bool passed)
{
	if (passed || !migrate_pass(s, fd, is_unix))
		client_accept(s, fd, is_unix);
}

static void layer_message(struct shard *s, const struct shard_msg *m)
{
	switch (m->type) {
	case POOL_MSG_CANCEL: {
		struct pool_cancel_ask *ask = m->ptr;
		client_cancel(s, m->a, m->b, ask->long_key ? ask->tail : NULL, &ask->waiter, ask->hops);
		free(ask);
		break;
	}
	case POOL_MSG_CANCEL_DONE:
		client_cancel_done(s, (uint64_t)m->a | (uint64_t)m->b << 32);
		break;
	case POOL_MSG_WAKE:
		pool_retry_waiters(s);
		break;
	case POOL_MSG_ADOPT_SERVER:
		pool_adopt_server(s, m->ptr);
		break;
	case POOL_MSG_ADMIN:
		admin_message(s, m);
		break;
	case POOL_MSG_AUTHQ:
		client_authq_answer(s, m->ptr);
		break;
	case POOL_MSG_MOVE_CLIENT:
		migrate_adopt(s, m->ptr);
		break;
	default:
		log_warning("unknown shard message %d", m->type);
		break;
	}
}

static void layer_topology(struct shard *s, bool cfg_changed)
{
	if (cfg_changed) {
		/* a reload drops the looked-up secrets, here as on the control shard */
		authq_cache_free(pool_shard(s)->authq);
		pool_shard(s)->authq = NULL;
		admit_configure(s);
	}
	pool_refresh_all(s, cfg_changed);
}

static void layer_tick(struct shard *s)
{
	pool_tick_disabled(s);
	client_tick(s);
	route_tick(s);
	pool_tick(s);
	migrate_tick(s);
	admin_tick(s);
	if (pool_shard(s)->admit)
		admit_run(s);   /* throttle_wait_timeout */
}

/* Clients with nothing in flight and no open block go now; the others once
 * they are done, or when the shutdown timeout is over. */
static bool layer_drain(struct shard *s, bool overdue)
{
	struct pool_shard *ps = pool_shard(s);
	if (!s->draining)   /* SHUTDOWN WAIT_FOR_CLIENTS: every shard stops once none is left in any */
		return list_empty(&ps->clients) && pool_active_servers(s) == 0 && client_total() == 0;
	if (s->handing_over)
		return upgrade_shard_step(s);   /* pgring -R: clients move instead */
	struct client *cl, *next;
	list_for_each_safe(&ps->clients, cl, next, all)
		if (cl->state != CL_CLOSED && (overdue || !client_busy(cl)))
			client_fail(cl, "57P01", "pgring is shutting down");
	return list_empty(&ps->clients) && pool_active_servers(s) == 0;
}

/* The end of a batch of completions: clients failed during it close now. */
static void layer_batch_end(struct shard *s)
{
	if (s->upper_wake_us <= s->now_us)
		admit_run(s);   /* throttled clients whose turn may have come */
	if (s->handing_over)
		upgrade_batch_end(s);   /* first: a client it moves is closed just below */
	if (!list_empty(&pool_shard(s)->closing))
		client_close_pending(s);
}

const struct shard_upper pool_layer = {
	.start = layer_start,
	.accept = layer_accept,
	.message = layer_message,
	.topology = layer_topology,
	.tick = layer_tick,
	.drain = layer_drain,
	.batch_end = layer_batch_end,
	.adopt = upgrade_adopt,
};
