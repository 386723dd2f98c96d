/* pool/migrate.c: clients moving between shards (pool/migrate.h): which move
 * and where, and the two ends of a move. A move is a park, a record and a
 * message per client, off the data path: a client moves when the count of
 * shards taking clients changes, not per request. */
#include "pool/migrate.h"

#include "core/balance.h"
#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/strbuf.h"
#include "core/takeover.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "pool/upgrade.h"

/* Whether cl can go now: logged in, at rest, nothing of ours owed to it, and
 * nothing that ties it to this shard's servers or this shard's TLS state. */
static bool movable(const struct client *cl)
{
	const char *why;
	return !cl->migrating && !cl->upgrade_moving && cl->pool && cl->pool->mode != POOL_SESSION && !cl->pins &&
	       !cl->lease && upgrade_fit(cl, &why) == UPGRADE_MOVES && !conn_has_output(&cl->conn);
}

static int64_t clients_on(int shard) { return gauge_get(&stats_shard(shard)->clients); }

/* How many of this shard's clients should go, and to which shard (-1: none). */
static int64_t excess(struct shard *s, int *to)
{
	int k = balance_active();
	int64_t mine = gauge_get(&s->stats->clients);
	*to = -1;
	if (s->id >= k) {
		*to = balance_pick(s);
		return mine;
	}
	int64_t total = 0, fewest = INT64_MAX;
	for (int i = 0; i < k; i++) {
		int64_t n = clients_on(i);
		total += n;
		if (i != s->id && n < fewest) {
			fewest = n;
			*to = i;
		}
	}
	int64_t share = (total + k - 1) / k, slack = 2 + share / 16;
	if (*to < 0 || mine <= share + slack || fewest >= share)
		return 0;
	int64_t give = mine - share, room = share - fewest;
	return give < room ? give : room;
}

static int64_t logging_in(int shard) { return gauge_get(&stats_shard(shard)->logging_in); }

bool migrate_pass(struct shard *s, int fd, bool is_unix)
{
	int k = balance_active();
	int to = balance_pick(s);   /* an active shard: this one if it is */
	int limit = s->cfg->max_client_logins, share = balance_share(to, s->nshards, limit);
	if (s->id < k) {
		/* a burst over this shard's share of max_client_logins goes to
		 * the active shard with the fewest logging in, if it has room */
		if (limit <= 0 || k < 2 || logging_in(s->id) < share)
			return false;
		for (int i = 0; i < k; i++)
			if (logging_in(i) < logging_in(to))
				to = i;
		return logging_in(to) < share && shard_pass_client(s, to, fd, is_unix);
	}
	if (limit > 0 && logging_in(to) >= share / 2)
		return false;   /* it logs in here, and moves at rest */
	return shard_pass_client(s, to, fd, is_unix);
}

void migrate_tick(struct shard *s)
{
	if (s->nshards < 2 || s->draining || s->waiting_clients)
		return;
	int to;
	int64_t n = excess(s, &to);
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all) {
		if (n <= 0)
			break;
		if (!movable(cl))
			continue;
		cl->migrating = true;
		cl->migrate_to = (int16_t)(s->id >= balance_active() ? balance_pick(s) : to);
		n--;
		conn_park(&cl->conn);   /* migrate_client_parked, at once or from the loop */
	}
}

void migrate_client_parked(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	cl->migrating = false;
	if (cl->state == CL_CLOSED)
		return;
	int to = cl->migrate_to;
	struct strbuf sb = STRBUF_INIT;
	struct takeover_rec *rec = NULL;
	/* it may have become busy while parking: it stays, and tries later */
	if (movable(cl) && to != s->id && upgrade_pack(cl, s->now_us, &sb) &&
	    (rec = takeover_rec_new(sb.buf, (uint32_t)sb.len, cl->conn.fd))) {
		struct shard_msg m = { .type = POOL_MSG_MOVE_CLIENT, .ptr = rec };
		if (shard_post(s->id, to, &m)) {
			cl->conn.fd = -1;   /* the socket is the other shard's now */
			stat_add(&s->stats->clients_moved_out, 1);
			strbuf_free(&sb);
			client_moved_away(cl, to);
			return;
		}
		rec->fd = -1;   /* the client keeps it */
		takeover_rec_free(rec);
	}
	strbuf_free(&sb);
	conn_recv_on(&cl->conn);
}

void migrate_adopt(struct shard *s, struct takeover_rec *rec)
{
	int fd = rec->fd;
	rec->fd = -1;
	if (client_move_in(s, fd, rec->data, rec->len, NULL, true))
		stat_add(&s->stats->clients_moved_in, 1);
	takeover_rec_free(rec);
}
