/* tests/integration/etcdprobe.c: core/control/etcd.c driven from a poll loop of
 * its own against a real etcd, one command a run (t_etcdclient).
 *
 *   etcdprobe [-t SECONDS] ENDPOINTS COMMAND ARGS...     ENDPOINTS: host:port[,host:port...]
 *
 *   put KEY VALUE               prints ok
 *   del KEY                     prints ok
 *   get PREFIX                  prints "KEY=VALUE" per key (raw bytes), then "revision R" on stderr
 *   cas KEY VALUE               put if absent: prints created or exists
 *   watch PREFIX COUNT SECONDS  reads PREFIX (prints "watching from R" on stderr), watches from
 *                               there, prints "PUT KEY=VALUE" or "DELETE KEY" per event; exits
 *                               after COUNT of them, or fails after SECONDS
 *   lease TTL KEY VALUE SECONDS grants a lease (prints "lease ID ttl TTL"), puts KEY with it,
 *                               keeps it alive for SECONDS, exits without revoking it
 *   keepalive ID                prints "ttl N" (0: the lease is gone)
 *   revoke ID                   prints ok
 *
 * -t: each request's timeout (default 2). Exit 0, or 1 with "etcdprobe: ..." on
 * stderr (etcd_last_error), 2 usage. */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/control/etcd.h"

static struct etcd *e;
static bool finished;
static int status;
static double until;            /* the watch's or the lease's end, CLOCK_MONOTONIC s; 0: none */
static double next_keepalive;
static int64_t lease_id;
static int lease_ttl, want;
static const char *arg_key, *arg_value;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void end(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "etcdprobe: %s failed: %s\n", what, etcd_last_error(e));
		status = 1;
	}
	finished = true;
}

static void print_ok(void *ctx, bool ok)
{
	if (ok)
		puts("ok");
	end(ok, ctx);
}

static void got(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision)
{
	(void)ctx;
	for (int i = 0; ok && i < n; i++) {
		fwrite(kvs[i].key, 1, kvs[i].key_len, stdout);
		putchar('=');
		fwrite(kvs[i].value, 1, kvs[i].value_len, stdout);
		putchar('\n');
	}
	if (ok)
		fprintf(stderr, "revision %" PRId64 "\n", revision);
	end(ok, "get");
}

static void swapped(void *ctx, bool ok, bool created)
{
	(void)ctx;
	if (ok)
		puts(created ? "created" : "exists");
	end(ok, "cas");
}

static void event(void *ctx, bool is_put, const struct etcd_kv *kv, int64_t revision)
{
	(void)ctx;
	(void)revision;
	printf("%s %.*s", is_put ? "PUT" : "DELETE", (int)kv->key_len, kv->key);
	if (is_put)
		printf("=%.*s", (int)kv->value_len, kv->value);
	putchar('\n');
	fflush(stdout);
	if (--want == 0)
		end(true, NULL);
}

static void broken(void *ctx)
{
	(void)ctx;
	end(false, "watch");
}

static void watch_from(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision)
{
	(void)kvs;
	(void)n;
	if (!ok) {
		end(false, "get");
		return;
	}
	fprintf(stderr, "watching from %" PRId64 "\n", revision + 1);
	if (!etcd_watch_prefix(e, ctx, revision + 1, event, broken, NULL))
		end(false, "watch");
}

static void kept(void *ctx, bool ok, int ttl)
{
	if (ctx) {   /* the keepalive command */
		if (ok)
			printf("ttl %d\n", ttl);
		end(ok, "keepalive");
	} else if (!ok || ttl == 0) {
		fprintf(stderr, "etcdprobe: the lease is %s\n", ok ? "gone" : "not kept alive");
		end(false, "keepalive");
	}
}

static void leased_put(void *ctx, bool ok)
{
	(void)ctx;
	if (!ok)
		end(false, "put");
}

static void granted(void *ctx, bool ok, int64_t id, int ttl)
{
	(void)ctx;
	if (!ok) {
		end(false, "lease grant");
		return;
	}
	printf("lease %" PRId64 " ttl %d\n", id, ttl);
	fflush(stdout);
	lease_id = id;
	lease_ttl = ttl;
	next_keepalive = now_s() + ttl / 3.0;
	if (!etcd_put(e, arg_key, arg_value, id, leased_put, NULL))
		end(false, "put");
}

static int usage(void)
{
	fprintf(stderr, "usage: etcdprobe [-t SECONDS] HOST:PORT[,...] put KEY VALUE | del KEY | get PREFIX |"
		" cas KEY VALUE | watch PREFIX COUNT SECONDS | lease TTL KEY VALUE SECONDS | keepalive ID | revoke ID\n");
	return 2;
}

static bool start(int argc, char **argv)
{
	const char *cmd = argv[0];
	int64_t id = argc > 1 ? strtoll(argv[1], NULL, 10) : 0;
	if (!strcmp(cmd, "put") && argc == 3)
		return etcd_put(e, argv[1], argv[2], 0, print_ok, "put");
	if (!strcmp(cmd, "del") && argc == 2)
		return etcd_delete(e, argv[1], print_ok, "del");
	if (!strcmp(cmd, "get") && argc == 2)
		return etcd_range_prefix(e, argv[1], got, NULL);
	if (!strcmp(cmd, "cas") && argc == 3)
		return etcd_put_if_absent(e, argv[1], argv[2], 0, swapped, NULL);
	if (!strcmp(cmd, "keepalive") && argc == 2)
		return etcd_lease_keepalive(e, id, kept, "keepalive");
	if (!strcmp(cmd, "revoke") && argc == 2)
		return etcd_lease_revoke(e, id, print_ok, "revoke");
	if (!strcmp(cmd, "watch") && argc == 4) {
		want = atoi(argv[2]);
		until = now_s() + atof(argv[3]);
		return want > 0 && etcd_range_prefix(e, argv[1], watch_from, argv[1]);
	}
	if (!strcmp(cmd, "lease") && argc == 5) {
		arg_key = argv[2];
		arg_value = argv[3];
		until = now_s() + atof(argv[4]);
		return etcd_lease_grant(e, atoi(argv[1]), granted, NULL);
	}
	return false;
}

/* The watch's end, or the lease's keepalives and end. */
static void tick(void)
{
	double now = now_s();
	if (until && now >= until) {
		if (lease_ttl) {
			finished = true;   /* the lease is left to expire */
			return;
		}
		fprintf(stderr, "etcdprobe: watch: %d event(s) missing after the time allowed\n", want);
		status = 1;
		finished = true;
	} else if (lease_ttl && now >= next_keepalive) {
		next_keepalive = now + lease_ttl / 3.0;
		if (!etcd_lease_keepalive(e, lease_id, kept, NULL))
			end(false, "keepalive");
	}
}

int main(int argc, char **argv)
{
	double timeout = 2;
	int a = 1;
	if (argc > 2 && !strcmp(argv[1], "-t")) {
		timeout = atof(argv[2]);
		a = 3;
	}
	if (argc - a < 2)
		return usage();
	const char *eps[16];
	int n = 0;
	for (char *s = strtok(argv[a], ","); s && n < 16; s = strtok(NULL, ","))
		eps[n++] = s;
	if (!(e = etcd_new(eps, n, timeout))) {
		fprintf(stderr, "etcdprobe: bad endpoints\n");
		return 2;
	}
	if (!start(argc - a - 1, argv + a + 1)) {
		etcd_free(e);
		return usage();
	}
	while (!finished) {
		struct pollfd fds[16];
		int nfds = etcd_pollfds(e, fds, 16);
		int t = etcd_next_timeout(e);
		if (until)
			t = t < 0 || t > 50 ? 50 : t;
		poll(fds, (nfds_t)nfds, t);
		etcd_process(e, fds, nfds);
		if (!finished)
			tick();
	}
	etcd_free(e);
	return status;
}
