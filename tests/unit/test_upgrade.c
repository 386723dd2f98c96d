/* tests/unit/test_upgrade.c: pool/upgrade.c's client record for pgring -R and
 * core/takeover.c's records on the hand-over socket. A record packed from a
 * client reads back into an equal one (user, database, cancel key, target,
 * address, startup and session parameters, SQL PREPAREs, statement names with
 * their Parse bodies, the unnamed statement); every truncation of it, every
 * single-byte change in its checked parts and random garbage are refused or
 * read without crashing (run under ASan in make test-asan). An idle server
 * connection's record reads back the same (its pool's names, backend key,
 * address, settings, SQL PREPAREs, statement digests with their age flag);
 * every truncation is refused, every byte changed read safely. On the socket:
 * records with one descriptor pass, two descriptors or an over-long record
 * are refused with every descriptor closed. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "core/takeover.h"
#include "core/registry.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "pool/server.h"
#include "pool/upgrade.h"

static uint32_t body(uint8_t *out, const char *query, int ntypes)
{
	uint32_t k = (uint32_t)strlen(query) + 1;
	memcpy(out, query, k);
	out[k++] = 0;
	out[k++] = (uint8_t)ntypes;
	for (int i = 0; i < ntypes; i++) {
		out[k++] = 0;
		out[k++] = 0;
		out[k++] = 0;
		out[k++] = 23;   /* int4 */
	}
	return k;
}

static void make_client(struct client *cl, struct stmt_registry **reg)
{
	memset(cl, 0, sizeof *cl);
	cr_assert(client_set_names(cl, "app", "appdb"));
	cl->key_pid = 0x01020304;
	cl->key_secret = 0x80706050;
	cl->key_long = true;
	cl->extra = calloc(1, sizeof *cl->extra);
	for (size_t i = 0; i < sizeof cl->extra->key_tail; i++)
		cl->extra->key_tail[i] = (uint8_t)(i * 7);
	cl->target = 2;
	cl->addr_family = 10;
	cl->addr[15] = 1;
	cl->connect_us = 1000;
	params_set(&cl->startup, "application_name", "before");
	params_set(&cl->startup, "DateStyle", "ISO, MDY");
	params_set(&cl->params, "application_name", "after");
	params_set(&cl->params, "search_path", "a, \"b c\"");
	cl->sess = calloc(1, sizeof *cl->sess);
	params_set(&cl->sess->sqlprep, "q1", "PREPARE q1 AS SELECT 1");
	uint8_t b[256];
	const char *names[] = { "s1", "s2", "P0_1" };
	const char *queries[] = { "SELECT $1::int + 1", "SELECT now()", "UPDATE t SET a = $1 WHERE b = $2" };
	const int ntypes[] = { 1, 0, 2 };
	for (int i = 0; i < 3; i++) {
		uint32_t n = body(b, queries[i], ntypes[i]);
		struct pstmt *st = stmt_intern(reg, b, n);
		cr_assert(st && stmt_map_put(&cl->sess->stmts, names[i], st));
	}
	uint32_t n = body(b, "SELECT 42", 0);
	cr_assert(stmt_map_set_unnamed(&cl->sess->stmts, b, n));
}

static void same_params(const struct params *a, const struct params *b)
{
	cr_assert_eq(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const char *v = params_get(b, a->v[i].name);
		cr_assert(v, "parameter %s missing", a->v[i].name);
		cr_assert_str_eq(v, a->v[i].value);
	}
}

static bool pack(const struct client *cl, struct strbuf *sb)
{
	strbuf_reset(sb);
	return upgrade_pack(cl, 5000, sb);
}

Test(upgrade, round_trip)
{
	struct stmt_registry *reg = NULL, *reg2 = NULL;
	struct client a, b;
	make_client(&a, &reg);
	struct strbuf sb = STRBUF_INIT;
	cr_assert(pack(&a, &sb));
	memset(&b, 0, sizeof b);
	uint64_t age = 0, id = 0;
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id));
	cr_assert_eq(age, 4000);
	cr_assert_str_eq(b.user, "app");
	cr_assert_str_eq(b.database, "appdb");
	cr_assert_eq(b.key_pid, a.key_pid);
	cr_assert_eq(b.key_secret, a.key_secret);
	cr_assert(b.key_long);
	cr_assert(b.extra);
	cr_assert_arr_eq(b.extra->key_tail, a.extra->key_tail, sizeof a.extra->key_tail);
	cr_assert_eq(b.target, 2);
	cr_assert_eq(b.addr_family, 10);
	cr_assert_arr_eq(b.addr, a.addr, sizeof a.addr);
	same_params(&a.startup, &b.startup);
	same_params(&a.params, &b.params);
	same_params(&a.sess->sqlprep, &b.sess->sqlprep);
	cr_assert_eq(b.sess->stmts.n, 3);
	const char *names[] = { "s1", "s2", "P0_1" };
	for (int i = 0; i < 3; i++) {
		struct pstmt *x = stmt_map_get(&a.sess->stmts, names[i]), *y = stmt_map_get(&b.sess->stmts, names[i]);
		cr_assert(x && y, "statement %s", names[i]);
		cr_assert_eq(x->body_len, y->body_len);
		cr_assert_arr_eq(x->body, y->body, x->body_len);
		cr_assert_str_eq(x->sname, y->sname);   /* the same server-side name in the new process */
	}
	cr_assert(b.sess->stmts.unnamed);
	cr_assert_eq(b.sess->stmts.unnamed_len, a.sess->stmts.unnamed_len);
	cr_assert_arr_eq(b.sess->stmts.unnamed_body, a.sess->stmts.unnamed_body, a.sess->stmts.unnamed_len);
	/* packed again, the copy gives the same bytes but its age */
	struct strbuf sb2 = STRBUF_INIT;
	b.connect_us = a.connect_us;
	b.conn.id = a.conn.id;
	cr_assert(pack(&b, &sb2));
	cr_assert_eq(sb2.len, sb.len);
	uint32_t secret;
	cr_assert(upgrade_peek_secret((const uint8_t *)sb.buf, sb.len, &secret));
	cr_assert_eq(secret, a.key_secret);
	upgrade_release(&a, reg);
	upgrade_release(&b, reg2);
	cr_assert_eq(stmt_registry_count(reg), 0);
	cr_assert_eq(stmt_registry_count(reg2), 0);
	stmt_registry_free(reg);
	stmt_registry_free(reg2);
	strbuf_free(&sb);
	strbuf_free(&sb2);
}

Test(upgrade, no_session_record)
{
	struct client a, b;
	memset(&a, 0, sizeof a);
	a.user = "u";
	a.database = "d";
	a.key_pid = 7;
	struct strbuf sb = STRBUF_INIT;
	cr_assert(pack(&a, &sb));
	memset(&b, 0, sizeof b);
	struct stmt_registry *reg = NULL;
	uint64_t age, id;
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg, &age, &id));
	cr_assert_eq(b.sess->stmts.n, 0);
	cr_assert(!b.sess->stmts.unnamed);
	upgrade_release(&b, reg);
	stmt_registry_free(reg);
	strbuf_free(&sb);
}

/* Whatever the bytes, unpack answers and leaves nothing behind once released. */
static bool try_unpack(const uint8_t *p, size_t n)
{
	struct client b;
	memset(&b, 0, sizeof b);
	struct stmt_registry *reg = NULL;
	uint64_t age, id;
	bool ok = upgrade_unpack(&b, p, n, &reg, &age, &id);
	upgrade_release(&b, reg);
	cr_assert_eq(reg ? stmt_registry_count(reg) : 0, 0, "statement records left after release");
	stmt_registry_free(reg);
	return ok;
}

/* Its pool's login secrets (SCRAM pass-through key, auth_query's answer) ride
 * along, and so do its pins with what its server holds by name; version 1
 * and 2 records (without them) still read. */
Test(upgrade, pool_secrets_ride_along)
{
	struct stmt_registry *reg = NULL, *reg2 = NULL;
	struct client a, b;
	make_client(&a, &reg);
	struct pool p = { .have_client_key = true, .authq_secret = "SCRAM-SHA-256$4096:c2FsdA==$a:b" };
	memset(p.scram_client_key, 0x5c, sizeof p.scram_client_key);
	a.pool = &p;
	struct strbuf sb = STRBUF_INIT;
	cr_assert(pack(&a, &sb));
	memset(&b, 0, sizeof b);
	uint64_t age = 0, id = 0;
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id));
	cr_assert(b.scram && b.scram->have_client_key);
	cr_assert_arr_eq(b.scram->client_key, p.scram_client_key, AUTH_SCRAM_KEY_LEN);
	cr_assert(b.secret_looked_up);
	cr_assert_str_eq(b.secret, p.authq_secret);
	upgrade_release(&b, reg2);
	/* its pins (those its server, moving with it, holds) come along, with
	 * the names of the channels it listens to and the cursors it holds */
	a.pool = NULL;
	a.pins = PIN_TEMP | PIN_ADVISORY | PIN_LISTEN | PIN_CURSOR;
	params_set(&a.sess->holds, "l:jobs", "");
	params_set(&a.sess->holds, "c:big cursor", "");
	cr_assert(pack(&a, &sb));
	memset(&b, 0, sizeof b);
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id));
	cr_assert_eq(b.moved_pins, PIN_TEMP | PIN_ADVISORY | PIN_LISTEN | PIN_CURSOR);
	same_params(&a.sess->holds, &b.sess->holds);
	cr_assert(b.extra && !b.extra->moved_listen);   /* a's key is long: b has its tail */
	upgrade_release(&b, reg2);
	/* the channels its pool's listener listens to for it */
	params_set(&a.sess->listen, "jobs", "");
	params_set(&a.sess->listen, "Other \"one\"", "");
	cr_assert(pack(&a, &sb));
	memset(&b, 0, sizeof b);
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id));
	cr_assert(b.extra && b.extra->moved_listen);
	same_params(&a.sess->listen, b.extra->moved_listen);
	upgrade_release(&b, reg2);
	params_clear(&a.sess->listen);
	/* a hold that is neither a channel nor a cursor, or a pin unknown, is refused */
	params_clear(&a.sess->holds);
	params_set(&a.sess->holds, "x:jobs", "");
	cr_assert(pack(&a, &sb));
	memset(&b, 0, sizeof b);
	cr_assert_not(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id));
	upgrade_release(&b, reg2);
	params_clear(&a.sess->holds);
	cr_assert(pack(&a, &sb));
	((uint8_t *)sb.buf)[sb.len - 5] = 0x40;   /* the pins byte, before empty holds and channels */
	memset(&b, 0, sizeof b);
	cr_assert_not(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id));
	upgrade_release(&b, reg2);
	/* without secrets, pins, holds or channels: 1 (no key) + 4 (an empty
	 * string) + 1 (no pins) + 2 (no holds) + 2 (no channels) bytes at the end;
	 * as version 1 without those bytes it reads the same, and as version 2
	 * without the holds and channels */
	a.pins = 0;
	cr_assert(pack(&a, &sb));
	((uint8_t *)sb.buf)[4] = 1;
	memset(&b, 0, sizeof b);
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len - 10, &reg2, &age, &id));
	cr_assert_null(b.scram);
	cr_assert_null(b.secret);
	cr_assert_eq(b.sess->stmts.n, 3);
	upgrade_release(&b, reg2);
	((uint8_t *)sb.buf)[4] = 2;
	memset(&b, 0, sizeof b);
	cr_assert(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len - 4, &reg2, &age, &id));
	cr_assert_eq(b.sess->holds.n, 0);
	upgrade_release(&b, reg2);
	((uint8_t *)sb.buf)[4] = 4;
	memset(&b, 0, sizeof b);
	cr_assert_not(upgrade_unpack(&b, (const uint8_t *)sb.buf, sb.len, &reg2, &age, &id), "an unknown version");
	upgrade_release(&b, reg2);
	upgrade_release(&a, reg);
	stmt_registry_free(reg);
	stmt_registry_free(reg2);
	strbuf_free(&sb);
}

Test(upgrade, truncated_refused)
{
	struct stmt_registry *reg = NULL;
	struct client a;
	make_client(&a, &reg);
	struct strbuf sb = STRBUF_INIT;
	cr_assert(pack(&a, &sb));
	for (size_t n = 0; n < sb.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);   /* exactly n bytes: ASan sees any read past them */
		memcpy(copy, sb.buf, n);
		cr_assert(!try_unpack(copy, n), "a record cut to %zu of %zu bytes was accepted", n, sb.len);
		free(copy);
	}
	/* and one byte too many */
	uint8_t *longer = malloc(sb.len + 1);
	memcpy(longer, sb.buf, sb.len);
	longer[sb.len] = 0;
	cr_assert(!try_unpack(longer, sb.len + 1));
	free(longer);
	upgrade_release(&a, reg);
	stmt_registry_free(reg);
	strbuf_free(&sb);
}

Test(upgrade, garbage_refused_or_harmless)
{
	struct stmt_registry *reg = NULL;
	struct client a;
	make_client(&a, &reg);
	struct strbuf sb = STRBUF_INIT;
	cr_assert(pack(&a, &sb));
	uint8_t *copy = malloc(sb.len);
	/* every byte changed in turn: refused, or still a well-formed record */
	for (size_t i = 0; i < sb.len; i++) {
		for (int v = 0; v < 3; v++) {
			memcpy(copy, sb.buf, sb.len);
			copy[i] = v == 0 ? 0 : v == 1 ? 0xff : (uint8_t)(copy[i] ^ 0x80);
			try_unpack(copy, sb.len);
		}
	}
	/* the magic and the version are checked */
	memcpy(copy, sb.buf, sb.len);
	copy[0] = 'X';
	cr_assert(!try_unpack(copy, sb.len));
	memcpy(copy, sb.buf, sb.len);
	copy[4] = 4;   /* versions 1 to 3 are read */
	cr_assert(!try_unpack(copy, sb.len));
	copy[4] = 2;   /* a version 2 record has no holds at its end */
	cr_assert(!try_unpack(copy, sb.len));
	copy[4] = 1;   /* a version 1 record has no secrets at its end */
	cr_assert(!try_unpack(copy, sb.len));
	free(copy);
	/* random bytes, some behind a valid header */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t junk[512];
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(x % sizeof junk);
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			junk[i] = (uint8_t)x;
		}
		if (round & 1 && n > 5) {
			memcpy(junk, "PGRC", 4);
			junk[4] = (uint8_t)(1 + round / 2 % 3);
		}
		try_unpack(junk, n);
	}
	upgrade_release(&a, reg);
	stmt_registry_free(reg);
	strbuf_free(&sb);
}

Test(upgrade, bad_parse_body_refused)
{
	/* a statement whose body does not end where its type count says */
	struct client a;
	memset(&a, 0, sizeof a);
	a.user = "u";
	a.database = "d";
	a.key_pid = 1;
	struct strbuf sb = STRBUF_INIT;
	cr_assert(pack(&a, &sb));
	/* the record ends with u32 0 (no statements) and u8 0 (no unnamed one):
	 * put one statement with a broken body in their place */
	sb.len -= 5;
	const uint8_t tail[] = { 0, 0, 0, 1, 0, 0, 0, 1, 's', 0, 0, 0, 4, 'x', 0, 0, 1, 0 };
	strbuf_append(&sb, tail, sizeof tail);
	cr_assert(!try_unpack((const uint8_t *)sb.buf, sb.len));
	strbuf_free(&sb);
}

static bool fd_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

Test(upgrade, socket_records)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	cr_assert_eq(takeover_send(sv[0], TAKEOVER_CLIENT, "abc", 3, pipefd[0]), 0);
	uint8_t type, buf[64];
	uint32_t n;
	int fd;
	cr_assert_eq(takeover_recv(sv[1], &type, buf, sizeof buf, &n, &fd, false), 1);
	cr_assert_eq(type, TAKEOVER_CLIENT);
	cr_assert_eq(n, 3);
	cr_assert(fd >= 0 && fd_open(fd));
	close(fd);
	/* nothing waiting */
	cr_assert_eq(takeover_recv(sv[1], &type, buf, sizeof buf, &n, &fd, false), -1);
	/* longer than the receiver's room: refused */
	uint8_t big[128] = { 0 };
	cr_assert_eq(takeover_send(sv[0], TAKEOVER_CLIENT, big, sizeof big, pipefd[0]), 0);
	cr_assert_eq(takeover_recv(sv[1], &type, buf, sizeof buf, &n, &fd, false), -1);
	cr_assert_eq(fd, -1);
	/* two descriptors on one record: refused, both closed */
	int fds[2] = { pipefd[0], pipefd[1] };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	uint8_t t = TAKEOVER_CLIENT;
	struct iovec iov = { &t, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, sizeof fds);
	cr_assert_eq(sendmsg(sv[0], &mh, 0), 1);
	int before = dup(0);
	close(before);   /* the lowest free descriptor now */
	cr_assert_eq(takeover_recv(sv[1], &type, buf, sizeof buf, &n, &fd, false), -1);
	cr_assert_eq(fd, -1);
	int after = dup(0);
	cr_assert_eq(after, before, "a descriptor received with a refused record stayed open");
	close(after);
	/* the peer gone: 0 */
	close(sv[0]);
	cr_assert_eq(takeover_recv(sv[1], &type, buf, sizeof buf, &n, &fd, false), 0);
	close(sv[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* ---- an idle server connection's record ---- */

static void make_server(struct server *sv, struct pool *p, struct pool_shared *ps, struct node_shared *ni)
{
	memset(sv, 0, sizeof *sv);
	memset(p, 0, sizeof *p);
	p->db_name = "appdb";
	p->user = "app";
	p->shared = ps;
	ps->nodeinfo = ni;
	sv->pool = p;
	sv->backend_pid = 4242;
	sv->backend_key = 0xfeedbeef;
	sv->connect_us = 1000;
	sv->addr.in.sin_family = AF_INET;
	sv->addr.in.sin_port = htons(5432);
	sv->addr.in.sin_addr.s_addr = htonl(0x7f000001);
	sv->addrlen = sizeof sv->addr.in;
	params_set(&sv->params, "application_name", "x");
	params_set(&sv->params, "TimeZone", "UTC");
	params_set(&sv->sqlprep, "q1", "PREPARE q1 AS SELECT 1");
	uint8_t d[STMT_DIGEST_LEN];
	for (int i = 0; i < 3; i++) {
		memset(d, 0x10 + i, sizeof d);
		cr_assert(stmt_cache_add(&sv->stmts, d, i == 2 ? STMT_GEN_UNKNOWN : 7));
	}
}

static void free_server(struct server *sv)
{
	params_clear(&sv->params);
	params_clear(&sv->sqlprep);
	stmt_cache_free(&sv->stmts);
}

Test(upgrade, server_round_trip)
{
	static struct pool_shared ps;
	static struct node_shared ni = { .cluster = "main", .node = "n1" };
	struct server sv;
	struct pool p;
	make_server(&sv, &p, &ps, &ni);
	struct strbuf sb = STRBUF_INIT;
	cr_assert(upgrade_pack_server(&sv, 6000, &sb));
	struct server_record sr;
	struct upgrade_server_ids ids;
	cr_assert(upgrade_unpack_server((const uint8_t *)sb.buf, sb.len, &sr, &ids));
	cr_assert_str_eq(ids.db, "appdb");
	cr_assert_str_eq(ids.user, "app");
	cr_assert_str_eq(ids.cluster, "main");
	cr_assert_str_eq(ids.node, "n1");
	cr_assert_eq(sr.backend_pid, 4242);
	cr_assert_eq(sr.backend_key, 0xfeedbeef);
	cr_assert_eq(sr.age_us, 5000);
	cr_assert_eq(sr.addrlen, sv.addrlen);
	cr_assert(memcmp(&sr.addr, &sv.addr, sv.addrlen) == 0);
	same_params(&sv.params, &sr.params);
	same_params(&sv.sqlprep, &sr.sqlprep);
	cr_assert_eq(sr.ndigests, 3);
	int unknown = 0;
	for (uint32_t i = 0; i < 3; i++) {
		const uint8_t *d = sr.digests + i * (STMT_DIGEST_LEN + 1);
		cr_assert(stmt_cache_has(&sv.stmts, d), "digest %u", i);
		unknown += d[STMT_DIGEST_LEN] == 0;
		cr_assert_eq(d[STMT_DIGEST_LEN] == 0, d[0] == 0x12, "the copy of unknown age says so");
	}
	cr_assert_eq(unknown, 1);
	upgrade_server_release(&sr, &ids);
	strbuf_free(&sb);
	free_server(&sv);
}

Test(upgrade, server_record_truncated_or_garbled_refused)
{
	static struct pool_shared ps;
	struct server sv;
	struct pool p;
	make_server(&sv, &p, &ps, NULL);
	struct strbuf sb = STRBUF_INIT;
	cr_assert(upgrade_pack_server(&sv, 6000, &sb));
	struct server_record sr;
	struct upgrade_server_ids ids;
	cr_assert(upgrade_unpack_server((const uint8_t *)sb.buf, sb.len, &sr, &ids));
	cr_assert_str_eq(ids.cluster, "");
	upgrade_server_release(&sr, &ids);
	for (size_t n = 0; n < sb.len; n++) {
		cr_assert_not(upgrade_unpack_server((const uint8_t *)sb.buf, n, &sr, &ids), "cut at %zu", n);
		upgrade_server_release(&sr, &ids);
	}
	/* a statement's age flag that is neither 0 nor 1 */
	uint8_t *copy = malloc(sb.len);
	memcpy(copy, sb.buf, sb.len);
	copy[sb.len - 1] = 2;
	cr_assert_not(upgrade_unpack_server(copy, sb.len, &sr, &ids));
	upgrade_server_release(&sr, &ids);
	/* every byte changed once: refused or read, never a crash */
	for (size_t i = 0; i < sb.len; i++) {
		memcpy(copy, sb.buf, sb.len);
		copy[i] ^= 0xa5;
		upgrade_unpack_server(copy, sb.len, &sr, &ids);
		upgrade_server_release(&sr, &ids);
	}
	free(copy);
	strbuf_free(&sb);
	free_server(&sv);
}
