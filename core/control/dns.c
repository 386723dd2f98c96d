/* core/control/dns.c: host name lookups for the control shard (see core/control/dns.h). One
 * entry per configured name; getaddrinfo_a runs each lookup on a glibc
 * thread, polled from the control loop. A lookup that fails keeps the last
 * good addresses, so a resolver hiccup does not take a server away. */
#include "core/control/dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/topology.h"

/* glibc writes into a lookup until it completes, so one nobody waits for any
 * more (a reload dropped its name) stays on the abandoned list until then. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	struct lookup *next;
	char name[];
};

struct entry {
	struct topo_addr a;           /* a.host: name */
	char *name;
	struct lookup *pending;
	int err;                      /* the last lookup's EAI_ code, 0: it answered */
	uint64_t due_us;              /* the next lookup */
	bool looked;                  /* a lookup finished at least once */
};

static struct entry *entries;
static int nentries;
static struct lookup *abandoned;
static double ttl = 15;


bool dns_is_name(const char *host)
{
	return addr_is_name(host);   /* one reading of a host, with the connecting side's (core/addr.c) */
}

static void lookup_free(struct lookup *l)
{
	if (gai_error(&l->cb) == 0 && l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

static void lookup_abandon(struct lookup *l)
{
	if (gai_cancel(&l->cb) == EAI_NOTCANCELED) {
		l->next = abandoned;
		abandoned = l;
		return;
	}
	lookup_free(l);
}

static void reap_abandoned(bool wait)
{
	for (struct lookup **pl = &abandoned; *pl;) {
		struct lookup *l = *pl;
		if (wait && gai_error(&l->cb) == EAI_INPROGRESS) {
			const struct gaicb *list[1] = { &l->cb };
			gai_suspend(list, 1, &(struct timespec){ .tv_sec = 1 });
		}
		if (gai_error(&l->cb) == EAI_INPROGRESS) {
			pl = &l->next;
			continue;
		}
		*pl = l->next;
		lookup_free(l);
	}
}

static void start_lookup(struct entry *e)
{
	size_t n = strlen(e->name) + 1;
	struct lookup *l = calloc(1, sizeof *l + n);
	if (!l) {
		e->err = EAI_MEMORY;
		return;
	}
	memcpy(l->name, e->name, n);
	l->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	l->cb = (struct gaicb){ .ar_name = l->name, .ar_request = &l->hints };
	struct gaicb *list[1] = { &l->cb };
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &none);
	if (rc) {
		free(l);
		e->err = rc;
		return;
	}
	e->pending = l;
}

/* A finished lookup: true when the entry's addresses changed. */
static bool finish_lookup(struct entry *e, uint64_t now)
{
	struct lookup *l = e->pending;
	int rc = gai_error(&l->cb);
	if (rc == EAI_INPROGRESS)
		return false;
	e->pending = NULL;
	e->looked = true;
	e->due_us = now + (uint64_t)(ttl * 1e6);
	bool changed = false;
	if (rc == 0) {
		struct topo_addr a = { .host = e->a.host };
		for (const struct addrinfo *ai = l->cb.ar_result; ai && a.n < TOPO_MAX_ADDRS; ai = ai->ai_next) {
			if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof a.addr[0])
				continue;
			memcpy(&a.addr[a.n], ai->ai_addr, ai->ai_addrlen);
			a.len[a.n++] = ai->ai_addrlen;
		}
		if (a.n == 0)
			rc = EAI_NODATA;
		else if (a.n != e->a.n || memcmp(a.addr, e->a.addr, sizeof a.addr) || memcmp(a.len, e->a.len, sizeof a.len)) {
			e->a = a;
			changed = true;
		}
	}
	if (rc && rc != e->err)
		log_warning("could not look up host name \"%s\": %s%s", e->name, gai_strerror(rc),
			    e->a.n ? " (keeping its last addresses)" : "");
	e->err = rc;
	lookup_free(l);
	return changed;
}

static struct entry *find(struct entry *in, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (in[i].name && strcmp(in[i].name, name) == 0)
			return &in[i];
	return NULL;
}

static int add_name(struct entry *nn, int *k, const char *host, struct entry *old, int nold)
{
	if (!dns_is_name(host) || find(nn, *k, host))
		return 0;
	struct entry *o = find(old, nold, host);
	if (o) {
		nn[*k] = *o;
		memset(o, 0, sizeof *o);   /* moved */
	} else {
		memset(&nn[*k], 0, sizeof nn[*k]);
		if (!(nn[*k].name = strdup(host)))
			return -1;
	}
	nn[*k].a.host = nn[*k].name;
	(*k)++;
	return 0;
}

static void entry_free(struct entry *e)
{
	if (e->pending)
		lookup_abandon(e->pending);
	free(e->name);
}

int dns_configure(const struct config *cfg)
{
	int total = cfg->ndbs + cfg->npeers;
	for (int i = 0; i < cfg->nclusters; i++)
		total += cfg->clusters[i].nnodes;
	struct entry *nn = calloc((size_t)total + 1, sizeof *nn);
	if (!nn)
		return -1;
	int k = 0, rc = 0;
	for (int i = 0; i < cfg->ndbs && rc == 0; i++)
		rc = add_name(nn, &k, cfg->dbs[i].host, entries, nentries);
	for (int i = 0; i < cfg->nclusters && rc == 0; i++)
		for (int j = 0; j < cfg->clusters[i].nnodes && rc == 0; j++)
			rc = add_name(nn, &k, cfg->clusters[i].nodes[j].host, entries, nentries);
	for (int i = 0; i < cfg->npeers && rc == 0; i++)
		rc = add_name(nn, &k, cfg->peers[i].host, entries, nentries);
	if (rc) {
		for (int i = 0; i < k; i++)
			entry_free(&nn[i]);
		free(nn);
		return -1;
	}
	for (int i = 0; i < nentries; i++)
		entry_free(&entries[i]);
	free(entries);
	entries = nn;
	nentries = k;
	ttl = cfg->dns_max_ttl > 0 ? cfg->dns_max_ttl : 15;
	dns_process();   /* the new names' lookups start now */
	return 0;
}

void dns_wait(double seconds)
{
	uint64_t until = shard_now_us() + (uint64_t)(seconds * 1e6);
	for (int i = 0; i < nentries; i++) {
		struct entry *e = &entries[i];
		while (e->pending && gai_error(&e->pending->cb) == EAI_INPROGRESS && shard_now_us() < until) {
			const struct gaicb *list[1] = { &e->pending->cb };
			uint64_t left = until - shard_now_us();
			struct timespec ts = { .tv_sec = (time_t)(left / 1000000u), .tv_nsec = (long)(left % 1000000u) * 1000 };
			gai_suspend(list, 1, &ts);
		}
	}
	dns_process();
}

bool dns_process(void)
{
	uint64_t now = shard_now_us();
	bool changed = false;
	for (int i = 0; i < nentries; i++) {
		struct entry *e = &entries[i];
		if (e->pending)
			changed |= finish_lookup(e, now);
		if (!e->pending && now >= e->due_us) {
			e->due_us = now + (uint64_t)(ttl * 1e6);   /* also when it cannot start: retried then */
			start_lookup(e);
		}
	}
	reap_abandoned(false);
	return changed;
}

int dns_next_timeout(void)
{
	uint64_t now = shard_now_us(), next = UINT64_MAX;
	for (int i = 0; i < nentries; i++) {
		uint64_t t = entries[i].pending ? now + 5000 : entries[i].due_us;   /* lookups are polled */
		if (t < next)
			next = t;
	}
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

const struct topo_addr *dns_get(const char *host, int *err)
{
	struct entry *e = find(entries, nentries, host);
	if (!e)
		return NULL;
	*err = e->a.n || !e->looked ? 0 : e->err;
	return &e->a;
}

size_t dns_topology_size(void)
{
	size_t total = 0;
	for (int i = 0; i < nentries; i++)
		if (entries[i].a.n)
			total += sizeof(struct topo_addr) + strlen(entries[i].name) + 1;
	return total;
}

void dns_fill(struct topology *t, void *mem)
{
	t->addrs = mem;
	t->naddrs = 0;
	int n = 0;
	for (int i = 0; i < nentries; i++)
		n += entries[i].a.n > 0;
	char *names = (char *)(t->addrs + n);
	for (int i = 0; i < nentries; i++) {
		if (!entries[i].a.n)
			continue;
		struct topo_addr *a = &t->addrs[t->naddrs++];
		*a = entries[i].a;
		a->host = strcpy(names, entries[i].name);
		names += strlen(names) + 1;
	}
}

void dns_shutdown(void)
{
	for (int i = 0; i < nentries; i++)
		entry_free(&entries[i]);
	free(entries);
	entries = NULL;
	nentries = 0;
	reap_abandoned(true);
}
