/* tests/unit/test_dns.c: core/control/dns.c, the control shard's host name lookups:
 * which configured hosts are names, what a lookup of one gives, that a
 * reload keeps known results, and the snapshot layout the shards read. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/dns.h"
#include "core/topology.h"

static struct config *load(const char *text)
{
	char path[] = "/tmp/pgring-dns-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct config *cfg = NULL;
	char err[256];
	int rc = config_load(path, &cfg, err, sizeof err, NULL);
	unlink(path);
	cr_assert_eq(rc, 0, "config_load: %s", err);
	return cfg;
}

static const char conf[] = "[databases]\n"
			   "a = host=localhost port=5432\n"
			   "b = host=127.0.0.1\n"
			   "c = host=/var/run/postgresql\n"
			   "d = host=no-such-host.invalid\n"
			   "[cluster.main]\n"
			   "n1 = host=localhost port=5433\n"
			   "n2 = host=::1 port=5434\n"
			   "[pgring]\n"
			   "dns_max_ttl = 30\n";

Test(dns, names_and_addresses)
{
	cr_expect(dns_is_name("localhost"));
	cr_expect(dns_is_name("db.example.com"));
	cr_expect_not(dns_is_name("127.0.0.1"));
	cr_expect_not(dns_is_name("::1"));
	cr_expect_not(dns_is_name("/var/run/postgresql"));
	cr_expect_not(dns_is_name(""));
	cr_expect_not(dns_is_name(NULL));
}

Test(dns, lookups_and_snapshot)
{
	struct config *cfg = load(conf);
	cr_assert_eq(dns_configure(cfg), 0);
	dns_wait(5);
	int err = -1;
	const struct topo_addr *a = dns_get("localhost", &err);
	cr_assert_not_null(a, "localhost is configured twice, kept once");
	cr_expect_eq(err, 0);
	cr_assert_gt(a->n, 0, "localhost has an address");
	int fam = a->addr[0].ss_family;
	cr_expect(fam == AF_INET || fam == AF_INET6);
	cr_expect_null(dns_get("127.0.0.1", &err), "an address is not looked up");
	cr_expect_null(dns_get("/var/run/postgresql", &err));
	a = dns_get("no-such-host.invalid", &err);
	cr_assert_not_null(a);
	cr_expect_eq(a->n, 0);
	cr_expect_neq(err, 0, "a failed lookup says why");

	/* a snapshot carries the names that have addresses, and their text */
	size_t size = dns_topology_size();
	cr_assert_gt(size, sizeof(struct topo_addr));
	struct topology *t = calloc(1, sizeof *t + size);
	dns_fill(t, t + 1);
	cr_expect_eq(t->naddrs, 1);
	const struct topo_addr *f = topo_find_addr(t, "localhost");
	cr_assert_not_null(f);
	cr_expect_str_eq(f->host, "localhost");
	cr_expect((const char *)f->host >= (const char *)(t + 1) && (const char *)f->host < (const char *)(t + 1) + size,
		  "the name lives in the snapshot");
	cr_expect_null(topo_find_addr(t, "no-such-host.invalid"));

	/* a reload that keeps the name keeps its addresses at once */
	struct config *cfg2 = load("[databases]\nx = host=localhost\n");
	cr_assert_eq(dns_configure(cfg2), 0);
	a = dns_get("localhost", &err);
	cr_assert_not_null(a);
	cr_expect_gt(a->n, 0, "known addresses survive a reload");
	cr_expect_null(dns_get("no-such-host.invalid", &err), "a name the reload dropped is gone");
	free(t);
	dns_shutdown();
	config_free(cfg);
	config_free(cfg2);
}
