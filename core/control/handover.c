/* core/control/handover.c: the control thread's side of pgring -R: the
 * conversation on the hand-over socket (core/takeover.h) in both roles, and
 * what it tells the shards (core/control/handover.h). Everything read from
 * the socket is checked; a peer that says something unexpected is dropped,
 * and before READY that leaves this process exactly as it was. */
#include "core/control/handover.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/control/health.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/strbuf.h"
#include "core/takeover.h"

enum peer_state {
	PEER_NONE = 0,
	PEER_HELLO_WAIT,     /* old: a successor connected, says who it is */
	PEER_READY_WAIT,     /* old: listeners sent, waiting for it to serve */
	PEER_HANDING,        /* old: it serves; our clients go to it */
	PEER_PRE_READY,      /* new: listeners received, not serving yet */
	PEER_RECEIVING,      /* new: READY sent; clients come */
};

static int port = -1;
static int my_port = -1;            /* kept to listen again after a failed successor */
static int lfd = -1;                 /* listening for a successor */
static uint64_t next_listen_try_us;
static int peer = -1;
static enum peer_state state;
static int next_shard;                /* new: where the next client record goes first */
static uint64_t sent, lost, received;
static uint64_t servers_sent, servers_lost, servers_received;
static struct takeover_rec *paired;   /* new: a PAIRED record waiting for its CLIENT */
static struct takeover_rec *group;    /* new: a GROUP record gathering its clients */
static struct takeover_rec **group_tail;
static uint32_t group_left;           /* its clients still to come */

#define GROUP_MAX 1000000u            /* clients in one GROUP: more is no record of ours */

static void drop_group(const char *why)
{
	if (!group)
		return;
	log_warning("upgrade: a LISTEN connection and its clients from the predecessor are lost: %s", why);
	takeover_rec_free(group);   /* their sockets close: the clients see the connection go */
	group = NULL;
	group_left = 0;
}

/* The group complete: its clients and their LISTEN connection go to one
 * shard together (the shard sends it on to the clients' owner). */
static void post_group(void)
{
	struct shard_msg m = { .type = SHARD_MSG_ADOPT, .ptr = group };
	int to = next_shard++ % shard_count();
	while (!shard_post(-1, to, &m))
		usleep(1000);
	group = NULL;
}

/* New: a GROUP record (its client count first) or one of its clients. */
static bool group_record(uint8_t type, const uint8_t *p, uint32_t n, int fd)
{
	if (type == TAKEOVER_GROUP) {
		drop_group("a second group began before the first was complete");
		uint32_t k = n >= 8 ? (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7] : 0;
		if (fd < 0 || !k || k > GROUP_MAX || !(group = takeover_rec_new(p, n, fd))) {
			log_warning("upgrade: a malformed LISTEN group from the predecessor: its connection is closed");
			if (fd >= 0)
				close(fd);
			return true;
		}
		group_left = k;
		group_tail = &group->next;
		servers_received++;
		return true;
	}
	if (!group)
		return false;
	if (type != TAKEOVER_CLIENT || fd < 0) {
		drop_group("the group was cut short");
		return false;
	}
	struct takeover_rec *r = takeover_rec_new(p, n, fd);
	if (!r) {
		close(fd);
		drop_group("out of memory");
		return true;
	}
	*group_tail = r;
	group_tail = &r->next;
	received++;
	if (!--group_left)
		post_group();
	return true;
}


static void try_listen(void)
{
	if (lfd >= 0 || port < 0 || shard_now_us() < next_listen_try_us)
		return;
	lfd = takeover_listen(port);
	if (lfd < 0) {
		next_listen_try_us = shard_now_us() + 1000000;   /* a predecessor still holds the name */
		if (errno != EADDRINUSE)
			log_warning("upgrade: cannot listen for a successor: %s", strerror(errno));
	}
}

void handover_start(int listen_port)
{
	port = my_port = listen_port;
	try_listen();
}

void handover_set_predecessor(int sock)
{
	peer = sock;
	state = PEER_PRE_READY;
}

bool handover_taking_over(void) { return peer >= 0 && (state == PEER_PRE_READY || state == PEER_RECEIVING); }
bool handover_handing_over(void) { return state == PEER_HANDING; }

static void drop_peer(void)
{
	if (peer >= 0)
		close(peer);
	peer = -1;
	state = PEER_NONE;
}

static void tell_shards(int type)
{
	struct shard_msg m = { .type = type };
	for (int i = 0; i < shard_count(); i++)
		while (!shard_post(-1, i, &m))
			usleep(1000);   /* inbox full: the shard drains it every loop */
}

void handover_ready(void)
{
	if (state != PEER_PRE_READY)
		return;
	if (takeover_send(peer, TAKEOVER_READY, NULL, 0, -1)) {
		log_error("upgrade: cannot tell the predecessor we serve (%s): it keeps its clients", strerror(errno));
		drop_peer();
	} else {
		state = PEER_RECEIVING;
	}
	/* the sockets are ours either way now: the predecessor stops accepting
	 * at READY, or has gone */
	tell_shards(SHARD_MSG_ACCEPT);
	if (state != PEER_RECEIVING)
		return;
	log_notice("upgrade: serving on the predecessor's sockets; its clients come over as they reach rest");
}

int handover_pollfds(struct pollfd *fds, int max)
{
	try_listen();
	int n = 0;
	if (lfd >= 0 && peer < 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	if (peer >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = peer, .events = POLLIN };
	return n;
}

/* Old: send every shard's listening sockets. */
static bool send_listeners(void)
{
	uint8_t p[3];
	for (int i = 0; i < shard_count(); i++) {
		int fds[SHARD_MAX_LISTEN];
		bool is_unix[SHARD_MAX_LISTEN];
		int k = shard_listeners(i, fds, is_unix, SHARD_MAX_LISTEN);
		for (int j = 0; j < k; j++) {
			p[0] = (uint8_t)(i >> 8);
			p[1] = (uint8_t)i;
			p[2] = is_unix[j];
			if (takeover_send(peer, TAKEOVER_LISTENER, p, 3, fds[j]))
				return false;
		}
	}
	/* the successor starts routing where this process's checks are, not
	 * from the configuration's word on roles */
	struct strbuf sb = STRBUF_INIT;
	health_pack(&sb);
	bool ok = !sb.failed && sb.len <= TAKEOVER_REC_MAX &&
		  takeover_send(peer, TAKEOVER_TOPOLOGY, sb.buf, (uint32_t)sb.len, -1) == 0;
	strbuf_free(&sb);
	if (!ok)
		return false;
	p[0] = (uint8_t)(shard_count() >> 8);
	p[1] = (uint8_t)shard_count();
	return takeover_send(peer, TAKEOVER_LISTENERS_END, p, 2, -1) == 0;
}

/* Old: one record from the successor. */
static void old_record(uint8_t type, const uint8_t *p, uint32_t n, bool shutting_down)
{
	switch (state) {
	case PEER_HELLO_WAIT:
		if (type != TAKEOVER_HELLO || n != sizeof TAKEOVER_MAGIC - 1 || memcmp(p, TAKEOVER_MAGIC, n)) {
			log_warning("upgrade: a hand-over connection that does not speak the protocol: dropped");
			drop_peer();
		} else if (shutting_down) {
			log_warning("upgrade: refused: this process is shutting down");
			drop_peer();
		} else if (!send_listeners()) {
			log_warning("upgrade: cannot send the listening sockets (%s): the successor is dropped",
				    strerror(errno));
			drop_peer();
		} else {
			state = PEER_READY_WAIT;
			log_notice("upgrade: a successor is starting; listening sockets sent, serving on until it is ready");
		}
		break;
	case PEER_READY_WAIT:
		if (type != TAKEOVER_READY) {
			log_warning("upgrade: the successor said '%c' before READY: dropped, still serving", type);
			drop_peer();
			break;
		}
		state = PEER_HANDING;
		if (lfd >= 0)
			close(lfd);   /* the name is the successor's now, for its own successor */
		lfd = -1;
		port = -1;
		shard_listeners_handed(true);
		tell_shards(SHARD_MSG_HANDOVER);
		log_notice("upgrade: the successor serves: no more accepts here; clients move as they reach rest, "
			   "this process exits once it holds none");
		break;
	default:
		log_warning("upgrade: unexpected record '%c' from the successor: ignored", type);
		break;
	}
}

/* New: one record from the predecessor. */
static void new_record(uint8_t type, const uint8_t *p, uint32_t n, int fd)
{
	if (state == PEER_RECEIVING && type == TAKEOVER_STATS && fd < 0) {
		/* shard 0 adds them to its own blocks: only it writes them */
		struct takeover_rec *r = takeover_rec_new(p, n, -1);
		struct shard_msg m = { .type = SHARD_MSG_STATS, .ptr = r };
		while (r && !shard_post(-1, 0, &m))
			usleep(1000);
		return;
	}
	if (state == PEER_RECEIVING && group_record(type, p, n, fd))
		return;
	if (paired && type != TAKEOVER_CLIENT) {
		log_warning("upgrade: a session's server connection came without its client: closed");
		takeover_rec_free(paired);
		paired = NULL;
	}
	if (state == PEER_RECEIVING && type == TAKEOVER_PAIRED && fd >= 0) {
		if (!(paired = takeover_rec_new(p, n, fd))) {
			log_warning("upgrade: a session's server connection is lost: out of memory");
			close(fd);
		}
		servers_received++;
		return;
	}
	if (state != PEER_RECEIVING || (type != TAKEOVER_CLIENT && type != TAKEOVER_SERVER) || fd < 0) {
		log_warning("upgrade: unexpected record '%c' from the predecessor: ignored", type);
		if (fd >= 0)
			close(fd);
		return;
	}
	struct takeover_rec *r = takeover_rec_new(p, n, fd);
	if (!r) {
		log_warning("upgrade: a %s from the predecessor is lost: out of memory",
			    type == TAKEOVER_CLIENT ? "client" : "server connection");
		close(fd);
		return;
	}
	if (type == TAKEOVER_CLIENT) {
		r->pair = paired;   /* its session's server, if it has one */
		paired = NULL;
	}
	/* the shard tells a client's record from a server's by its magic */
	struct shard_msg m = { .type = SHARD_MSG_ADOPT, .ptr = r };
	int to = next_shard++ % shard_count();
	while (!shard_post(-1, to, &m))
		usleep(1000);
	if (type == TAKEOVER_CLIENT)
		received++;
	else
		servers_received++;
}

enum handover_event handover_process(const struct pollfd *fds, int n, bool shutting_down)
{
	enum handover_event ev = HANDOVER_NOTHING;
	for (int i = 0; i < n; i++) {
		if (!fds[i].revents)
			continue;
		if (fds[i].fd == lfd && peer < 0) {
			if ((peer = takeover_accept(lfd)) >= 0) {
				state = PEER_HELLO_WAIT;
				/* counted per successor: one that died took its share along */
				sent = lost = servers_sent = servers_lost = 0;
			}
			continue;
		}
		if (fds[i].fd != peer)
			continue;
		static uint8_t buf[TAKEOVER_REC_MAX];
		/* a bounded batch per turn, so the rest of the loop still runs */
		for (int k = 0; k < 256 && peer >= 0; k++) {
			uint8_t type = 0;
			uint32_t len = 0;
			int fd = -1;
			int r = takeover_recv(peer, &type, buf, sizeof buf, &len, &fd, false);
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (r <= 0) {
				enum peer_state was = state;
				if (r < 0)
					log_warning("upgrade: hand-over socket: %s", strerror(errno));
				drop_peer();
				switch (was) {
				case PEER_HELLO_WAIT:
				case PEER_READY_WAIT:
					log_warning("upgrade: the new process went away before it was ready: this one "
						    "goes on serving");
					break;
				case PEER_HANDING:
					log_warning("upgrade: the new process went away while taking over (%llu clients "
						    "sent): accepting and serving here again",
						    (unsigned long long)sent);
					shard_listeners_handed(false);
					tell_shards(SHARD_MSG_TAKEBACK);
					port = my_port;   /* a later successor may try again */
					ev = HANDOVER_SUCCESSOR_GONE;
					break;
				case PEER_PRE_READY:
				case PEER_RECEIVING:
					takeover_rec_free(paired);
					paired = NULL;
					drop_group("the predecessor left in the middle of it");
					log_notice("upgrade: the predecessor has exited (%llu clients taken over)",
						   (unsigned long long)received);
					log_notice("upgrade: %llu server connections taken over",
						   (unsigned long long)servers_received);
					ev = HANDOVER_PREDECESSOR_GONE;
					break;
				case PEER_NONE:
					break;
				}
				break;
			}
			if (state == PEER_PRE_READY || state == PEER_RECEIVING) {
				new_record(type, buf, len, fd);
			} else {
				if (fd >= 0)
					close(fd);   /* the successor sends no descriptors */
				enum peer_state was = state;
				old_record(type, buf, len, shutting_down);
				if (was == PEER_READY_WAIT && state == PEER_HANDING)
					ev = HANDOVER_SUCCESSOR_READY;
			}
		}
	}
	return ev;
}

/* Send one record (and free it); counted as a client's or a server's. */
static bool send_record(struct takeover_rec *r, uint8_t type)
{
	bool client = type == TAKEOVER_CLIENT, ok = state == PEER_HANDING &&
		      takeover_send(peer, type, r->data, r->len, r->fd) == 0;
	if (!ok)
		/* its socket was ours alone to keep: closing it is all that is left */
		log_warning("upgrade: a %s could not be handed over (%s): it is disconnected",
			    client ? "client" : "server connection",
			    state != PEER_HANDING ? "the successor is gone" : strerror(errno));
	if (client)
		++*(ok ? &sent : &lost);
	else
		++*(ok ? &servers_sent : &servers_lost);
	takeover_rec_free(r);   /* our copy of the socket: the successor has its own */
	return ok;
}

void handover_send_client(void *arg)
{
	struct takeover_rec *r = arg, *sv = r->pair;
	r->pair = NULL;
	/* its session's server first: the successor keeps it for this client,
	 * which without it cannot go on */
	if (sv && !send_record(sv, TAKEOVER_PAIRED)) {
		takeover_rec_free(r);
		lost++;
		return;
	}
	send_record(r, TAKEOVER_CLIENT);
}
void handover_send_server(void *arg) { send_record(arg, TAKEOVER_SERVER); }

void handover_send_group(void *arg)
{
	struct takeover_rec *r = arg, *cl = r->next;
	r->next = NULL;
	bool ok = send_record(r, TAKEOVER_GROUP);
	while (cl) {
		struct takeover_rec *next = cl->next;
		cl->next = NULL;
		if (ok) {
			ok = send_record(cl, TAKEOVER_CLIENT);
		} else {
			takeover_rec_free(cl);   /* without their group they are lost: disconnected */
			lost++;
		}
		cl = next;
	}
}

void handover_stop(void)
{
	if (state == PEER_HANDING) {
		/* every shard has stopped: the totals are final */
		struct strbuf sb = STRBUF_INIT;
		takeover_pack_stats(&sb);
		if (sb.failed || takeover_send(peer, TAKEOVER_STATS, sb.buf, (uint32_t)sb.len, -1))
			log_warning("upgrade: the pools' counters could not be sent (%s)",
				    sb.failed ? "out of memory" : strerror(errno));
		strbuf_free(&sb);
	}
	if (sent || lost || servers_sent || servers_lost)
		log_notice("upgrade: %llu clients handed over, %llu lost; %llu server connections handed over, "
			   "%llu lost", (unsigned long long)sent, (unsigned long long)lost,
			   (unsigned long long)servers_sent, (unsigned long long)servers_lost);
	drop_peer();
	if (lfd >= 0)
		close(lfd);
	lfd = -1;
}
