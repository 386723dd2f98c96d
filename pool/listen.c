/* pool/listen.c: the listening server connection of a pool on a shard, its
 * channels and their subscribers, and the delivery of notifications to
 * clients (pool/listen.h). Channels are few and change rarely: a small hash
 * of names, each with an array of subscribed clients. */
#include "pool/listen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/strbuf.h"
#include "pool/client.h"
#include "pool/params.h"
#include "pool/pool.h"
#include "pool/server.h"
#include "proto/proto.h"

#define HUB_BUCKETS 64
#define RETRY_MIN_US 100000u
#define RETRY_MAX_US 5000000u

struct listen_chan {
	struct listen_chan *next;
	struct client **subs;
	uint32_t n, cap;
	char name[];
};

struct listen_hub {
	struct server *sv;             /* the listening connection, if any */
	bool ready;                    /* it logged in and LISTENs on every channel */
	bool lost_told;                /* the clients were warned of the last loss */
	bool adopting;                 /* pgring -R: its connection came listening on its clients' channels */
	uint32_t nchan;
	uint32_t backoff_us;
	uint64_t retry_at_us;
	struct listen_chan *bucket[HUB_BUCKETS];
};

bool listen_pooled(const struct pool *p)
{
	return p && p->mode != POOL_SESSION && !p->cluster;
}

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % HUB_BUCKETS;
}

static struct listen_chan **chan_slot(struct listen_hub *h, const char *name)
{
	struct listen_chan **c = &h->bucket[name_hash(name)];
	while (*c && strcmp((*c)->name, name) != 0)
		c = &(*c)->next;
	return c;
}

/* "LISTEN \"name\"" or UNLISTEN, the name quoted as an identifier. */
static bool put_listen(struct strbuf *sb, const char *verb, const char *name)
{
	if (sb->len)
		strbuf_putc(sb, ';');
	strbuf_puts(sb, verb);
	strbuf_puts(sb, " \"");
	for (const char *c = name; *c; c++) {
		if (*c == '"')
			strbuf_putc(sb, '"');
		strbuf_putc(sb, *c);
	}
	strbuf_putc(sb, '"');
	return !sb->failed;
}

static void send_hidden(struct listen_hub *h, struct strbuf *sb)
{
	if (!h->sv || !h->ready || !sb->len)
		return;
	LOGF(LOG_DEBUG, h->sv->conn.id, "listener: %s", strbuf_str(sb));
	if (sb->failed || !server_hidden_query(h->sv, strbuf_str(sb)))
		server_close(h->sv, "listener: cannot queue its LISTEN (out of memory)");
}

/* The next try after a failure: first after `first` (0: at once), then
 * doubling up to RETRY_MAX_US. */
static void back_off(struct listen_hub *h, uint64_t now_us, uint32_t first)
{
	h->backoff_us = h->backoff_us ? (h->backoff_us * 2 > RETRY_MAX_US ? RETRY_MAX_US : h->backoff_us * 2) : first;
	h->retry_at_us = now_us + h->backoff_us;
}

static void connect_listener(struct pool *p)
{
	struct listen_hub *h = p->hub;
	if (h->sv || p->shard->now_us < h->retry_at_us)
		return;
	h->ready = false;
	h->sv = server_connect(p, NULL, true);
	if (!h->sv)
		back_off(h, p->shard->now_us, RETRY_MIN_US);
}

static struct listen_hub *hub_of(struct pool *p)
{
	if (!p->hub)
		p->hub = calloc(1, sizeof *p->hub);
	return p->hub;
}

static bool subscribe(struct client *cl, const char *name)
{
	struct pool *p = cl->pool;
	struct listen_hub *h = hub_of(p);
	if (!h)
		return false;
	struct listen_chan **slot = chan_slot(h, name), *c = *slot;
	if (!c) {
		size_t len = strlen(name);
		if (!(c = calloc(1, sizeof *c + len + 1)))
			return false;
		memcpy(c->name, name, len + 1);
		*slot = c;
		h->nchan++;
		gauge_add(&p->stats->listen_channels, 1);
		if (!h->adopting) {
			struct strbuf sb = STRBUF_INIT;
			put_listen(&sb, "LISTEN", name);
			send_hidden(h, &sb);
			strbuf_free(&sb);
			connect_listener(p);
		}
	}
	if (c->n == c->cap) {
		uint32_t cap = c->cap ? c->cap * 2 : 4;
		struct client **subs = realloc(c->subs, cap * sizeof *subs);
		if (!subs)
			return false;
		c->subs = subs;
		c->cap = cap;
	}
	c->subs[c->n++] = cl;
	return true;
}

static void unsubscribe(struct client *cl, const char *name)
{
	struct pool *p = cl->pool;
	struct listen_hub *h = p->hub;
	struct listen_chan **slot = h ? chan_slot(h, name) : NULL, *c = slot ? *slot : NULL;
	if (!c)
		return;
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->subs[i] == cl) {
			c->subs[i] = c->subs[--c->n];
			break;
		}
	}
	if (c->n)
		return;
	*slot = c->next;
	h->nchan--;
	gauge_add(&p->stats->listen_channels, -1);
	struct strbuf sb = STRBUF_INIT;
	put_listen(&sb, "UNLISTEN", name);
	send_hidden(h, &sb);
	strbuf_free(&sb);
	free(c->subs);
	free(c);
	if (!h->nchan && h->sv)
		server_close(h->sv, "listener: no channel left");
}

bool listen_set(struct client *cl, const struct params *want)
{
	struct params *have = &cl->sess->listen;
	bool was = have->n > 0;
	for (int i = have->n - 1; i >= 0; i--) {
		if (!params_get(want, have->v[i].name)) {
			unsubscribe(cl, have->v[i].name);
			params_remove(have, have->v[i].name);
		}
	}
	for (int i = 0; i < want->n; i++) {
		if (params_get(have, want->v[i].name))
			continue;
		if (!subscribe(cl, want->v[i].name) || !params_set(have, want->v[i].name, "")) {
			client_fail(cl, "53200", "out of memory (listening to \"%s\")", want->v[i].name);
			return false;
		}
	}
	if (was != (have->n > 0))
		gauge_add(&cl->pool->stats->listeners, have->n ? 1 : -1);
	return true;
}

void listen_client_gone(struct client *cl)
{
	static const struct params none;
	if (cl->sess && cl->sess->listen.n && cl->pool)
		listen_set(cl, &none);
	free(cl->nq);
	cl->nq = NULL;
}

/* Keep a copy for later, within max_pending_bytes; beyond, the client is
 * told that some were dropped. */
static void hold(struct client *cl, const uint8_t *msg, uint32_t len)
{
	uint32_t max = (uint32_t)cl->conn.shard->cfg->max_pending_bytes;
	uint32_t have = cl->nq ? cl->nq->len : 0;
	if (cl->nq_lost || have + len > max) {
		cl->nq_lost = true;
		return;
	}
	if (!cl->nq || have + len > cl->nq->cap) {
		uint32_t cap = cl->nq ? cl->nq->cap : 256;
		while (cap < have + len)
			cap *= 2;
		struct client_nq *nq = realloc(cl->nq, sizeof *nq + cap);
		if (!nq) {
			cl->nq_lost = true;
			return;
		}
		nq->len = have;
		nq->cap = cap;
		cl->nq = nq;
	}
	memcpy(cl->nq->data + have, msg, len);
	cl->nq->len += len;
}

void listen_warn(struct client *cl, const char *what)
{
	uint8_t mem[512];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_notice(&o, "01000", "%s", what);
	hold(cl, o.p, (uint32_t)o.len);
}

void listen_flush(struct client *cl)
{
	if (cl->state == CL_CLOSED || (!cl->nq && !cl->nq_lost))
		return;
	if (cl->nq_lost) {
		cl->nq_lost = false;
		uint8_t mem[512];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_notice(&o, "01000", "notifications were dropped: more than max_pending_bytes of them waited "
					  "for this client to end its transaction");
		conn_queue_out(&cl->conn, &o);
	}
	/* copied out: the memory is not kept for a client that may stay idle */
	struct client_nq *nq = cl->nq;
	cl->nq = NULL;
	if (nq && !conn_queue(&cl->conn, nq->data, nq->len, PROTO_BUF_NONE))
		client_fail(cl, "53200", "out of memory");
	free(nq);
}

static void deliver(struct client *cl, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	if (cl->state == CL_CLOSED)
		return;
	stat_add(&cl->pool->stats->notifications, 1);
	if (cl->state == CL_IDLE && !cl->nq && !cl->nq_lost) {
		if (!conn_queue(&cl->conn, msg, len, buf))
			client_fail(cl, "53200", "out of memory");
		return;
	}
	hold(cl, msg, len);
}

bool listen_server_message(struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct listen_hub *h = sv->pool->hub;
	if (msg[0] == 'E') {
		/* a FATAL before it goes away (57P01 when terminated): for the log */
		struct proto_error_fields f;
		proto_parse_error(msg + 5, len - 5, &f);
		snprintf(sv->fatal_state, sizeof sv->fatal_state, "%s", f.sqlstate);
		snprintf(sv->fatal_msg, sizeof sv->fatal_msg, "%s", f.message);
		return true;
	}
	if (msg[0] != 'A' || !h || h->sv != sv)
		return true;   /* its LISTENs' replies: counted as hidden by the server */
	struct proto_reader r;
	proto_reader_init(&r, msg + 5, len - 5);
	proto_read_u32(&r);   /* the sender's PID: passed on as it is */
	const char *channel = proto_read_str(&r);
	if (r.bad)
		return true;
	struct listen_chan *c = *chan_slot(h, channel);
	for (uint32_t i = 0; c && i < c->n; i++)
		deliver(c->subs[i], msg, len, buf);
	return sv->state != SV_CLOSED;
}

void listen_server_ready(struct server *sv)
{
	struct pool *p = sv->pool;
	struct listen_hub *h = p->hub;
	server_set_state(sv, SV_ACTIVE);
	sv->ready_once = true;
	if (!h || h->sv != sv || !h->nchan) {
		server_close(sv, "listener: no channel left");
		return;
	}
	h->ready = true;
	h->lost_told = false;
	h->backoff_us = 0;
	struct strbuf sb = STRBUF_INIT;
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (struct listen_chan *c = h->bucket[b]; c; c = c->next)
			put_listen(&sb, "LISTEN", c->name);
	send_hidden(h, &sb);
	strbuf_free(&sb);
	LOGF(LOG_INFO, sv->conn.id, "listener for %s/%s: %u channel%s", p->db_name, p->user, h->nchan,
	     h->nchan == 1 ? "" : "s");
}

void listen_server_gone(struct server *sv)
{
	struct pool *p = sv->pool;
	struct listen_hub *h = p->hub;
	if (!h || h->sv != sv)
		return;
	bool was_ready = h->ready;
	h->sv = NULL;
	h->ready = false;
	if (!h->nchan)
		return;
	stat_add(&p->stats->listener_losses, 1);
	LOGF(LOG_WARNING, sv->conn.id, "listener for %s/%s lost%s%s: listening again", p->db_name, p->user,
	     sv->fatal_msg[0] ? ": " : "", sv->fatal_msg);
	if (was_ready && !h->lost_told) {
		/* each subscribed client once, even if it listens on several channels */
		h->lost_told = true;
		for (int b = 0; b < HUB_BUCKETS; b++)
			for (struct listen_chan *c = h->bucket[b]; c; c = c->next)
				for (uint32_t i = 0; i < c->n; i++)
					c->subs[i]->nq_warned = false;
		for (int b = 0; b < HUB_BUCKETS; b++)
			for (struct listen_chan *c = h->bucket[b]; c; c = c->next)
				for (uint32_t i = 0; i < c->n; i++) {
					struct client *cl = c->subs[i];
					if (cl->nq_warned)
						continue;
					cl->nq_warned = true;
					listen_warn(cl, "the connection pgring listens on for this client's channels was lost; "
						 "notifications sent meanwhile may have been missed");
					if (cl->state == CL_IDLE)
						listen_flush(cl);
				}
	}
	back_off(h, p->shard->now_us, was_ready ? 0 : RETRY_MIN_US);
	if (!h->backoff_us)
		connect_listener(p);   /* it was serving: try again at once */
}

/* ---- pgring -R ---- */

struct server *listen_server(const struct pool *p)
{
	return p->hub && p->hub->ready ? p->hub->sv : NULL;
}

struct server *listen_connection(const struct pool *p) { return p->hub ? p->hub->sv : NULL; }

void listen_detach(struct pool *p)
{
	struct listen_hub *h = p->hub;
	if (!h)
		return;
	/* gone with its clients: nothing to warn of, nothing to listen again to */
	h->sv = NULL;
	h->ready = false;
}

bool listen_adopt(struct pool *p, struct server *sv)
{
	struct listen_hub *h = hub_of(p);
	if (!h || h->sv)
		return false;
	h->sv = sv;
	h->ready = h->adopting = true;
	h->lost_told = false;
	h->backoff_us = 0;
	return true;
}

void listen_adopted(struct pool *p, const struct params *listened)
{
	struct listen_hub *h = p->hub;
	if (!h || !h->adopting)
		return;
	h->adopting = false;
	/* what its clients that could not come listened to alone */
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < listened->n; i++)
		if (!*chan_slot(h, listened->v[i].name))
			put_listen(&sb, "UNLISTEN", listened->v[i].name);
	send_hidden(h, &sb);
	strbuf_free(&sb);
	if (h->sv && !h->nchan)
		server_close(h->sv, "listener: no channel left");
	else if (h->sv)
		LOGF(LOG_NOTICE, h->sv->conn.id, "listener for %s/%s taken over from the predecessor: %u channel%s", p->db_name, p->user,
		     h->nchan, h->nchan == 1 ? "" : "s");
}

void listen_tick(struct pool *p)
{
	if (p->hub && p->hub->nchan && !p->hub->sv)
		connect_listener(p);
}
