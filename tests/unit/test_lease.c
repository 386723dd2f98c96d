/* tests/unit/test_lease.c: pool/lease.c fed message transcripts. A shard runs
 * the real pool layer on the test's thread (tests/unit/harness.h); a client
 * talks to it over a socketpair and the test plays the PostgreSQL server on the
 * Unix socket the pool connects to, answering with the message sequences
 * PostgreSQL 15 sends for each request, written out from the protocol chapter
 * ("Extended Query", "COPY Operations"; the integration tests pipeline.c and
 * t_copy.sh run the same cases against a real server). Each test checks what
 * reaches the server (renamed, injected, held and replayed in order) and what
 * reaches the client (hidden, synthesised, errors where they belong). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "pool/pool.h"
#include "pool/client.h"
#include "proto/proto.h"

#define PORT 5999
#define WAIT 3000

static const char settings[] =
	"[pgring]\n"
	"auth_type = trust\n"
	"pool_mode = transaction\n"
	"default_pool_size = 4\n"
	"[databases]\n"
	"db = host={dir} port=5999\n";

struct msg {
	uint8_t type;
	uint32_t len;          /* of the body */
	uint8_t body[16384];
};

static struct harness *h;
static int listen_fd;

static void setup(void)
{
	h = harness_open(&pool_layer, settings);
	listen_fd = harness_listen_unix(h, PORT);
}

static void teardown(void)
{
	harness_close(h);
}

TestSuite(lease, .init = setup, .fini = teardown, .timeout = 30);

/* ---- wire helpers ---- */

static void send_out(int fd, const struct proto_out *o)
{
	cr_assert(!o->overflow);
	cr_assert_eq(harness_write_all(&h->shard, fd, o->p, o->len, WAIT), o->len);
}

static bool read_msg(int fd, struct msg *m)
{
	uint8_t hdr[5];
	if (harness_read_all(&h->shard, fd, hdr, 5, WAIT) != 5)
		return false;
	m->type = hdr[0];
	m->len = proto_get_u32(hdr + 1) - 4;
	cr_assert_leq(m->len, sizeof m->body, "message too long for the test: %u", m->len);
	return harness_read_all(&h->shard, fd, m->body, m->len, WAIT) == m->len;
}

/* Read one message and check its type. */
static void expect(int fd, uint8_t type, struct msg *m)
{
	cr_assert(read_msg(fd, m), "no message (expected '%c')", type);
	cr_assert_eq(m->type, type, "got '%c', expected '%c'", m->type, type);
}

/* The types of the messages that arrive until a ReadyForQuery (included). */
static void expect_seq(int fd, const char *types)
{
	struct msg m;
	for (const char *t = types; *t; t++)
		expect(fd, (uint8_t)*t, &m);
}

static void nothing_more(int fd)
{
	harness_run_for(&h->shard, 50);
	cr_assert_eq(harness_pending(fd), 0, "unexpected bytes: %d", harness_pending(fd));
}

/* ---- PostgreSQL, as the test plays it ---- */

/* Accept the pool's connection and log it in as PostgreSQL 15 does. */
static int server_login(void)
{
	int be = harness_accept(&h->shard, listen_fd, WAIT);
	cr_assert_geq(be, 0, "the pool did not connect");
	uint8_t len[4], body[1024];
	cr_assert_eq(harness_read_all(&h->shard, be, len, 4, WAIT), 4);
	uint32_t n = proto_get_u32(len) - 4;
	cr_assert_leq(n, sizeof body);
	cr_assert_eq(harness_read_all(&h->shard, be, body, n, WAIT), n);
	cr_assert_eq(proto_get_u32(body), PROTO_VERSION_30);
	uint8_t mem[1024];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_auth_request(&o, 0, NULL, 0);
	static const char *const params[][2] = {
		{ "server_version", "15.18" }, { "server_encoding", "UTF8" }, { "client_encoding", "UTF8" },
		{ "DateStyle", "ISO, MDY" }, { "TimeZone", "UTC" }, { "integer_datetimes", "on" },
		{ "standard_conforming_strings", "on" }, { "application_name", "" },
	};
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
		proto_parameter_status(&o, params[i][0], params[i][1]);
	proto_backend_key(&o, 4242, 77);
	proto_ready(&o, 'I');
	send_out(be, &o);
	return be;
}

/* The BackendKeyData the last client_login got (pgring's, for cancels). */
static uint32_t key_pid, key_secret;

/* A client logged in through pgring (the first one brings the first server),
 * with an application_name in its startup packet unless app is NULL. */
static int client_login_as(int *be, const char *app)
{
	int fds[2];
	harness_socketpair(fds);
	client_accept(&h->shard, fds[0], true);
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	if (app) {
		proto_begin(&o, 0);
		proto_put_u32(&o, PROTO_VERSION_30);
		const char *kv[] = { "user", "app", "database", "db", "application_name", app };
		for (size_t i = 0; i < 6; i++)
			proto_put_str(&o, kv[i]);
		proto_put_u8(&o, 0);
		proto_end(&o);
	} else {
		harness_put_startup(&o, "app", "db");
	}
	send_out(fds[1], &o);
	if (be)
		*be = server_login();
	struct msg m;
	expect(fds[1], 'R', &m);
	do
		cr_assert(read_msg(fds[1], &m));
	while (m.type == 'S');
	cr_assert_eq(m.type, 'K');
	key_pid = proto_get_u32(m.body);
	key_secret = proto_get_u32(m.body + 4);
	expect(fds[1], 'Z', &m);
	return fds[1];
}

static int client_login(int *be)
{
	return client_login_as(be, NULL);
}

static void put_parse(struct proto_out *o, const char *name, const char *sql)
{
	proto_begin(o, 'P');
	proto_put_str(o, name);
	proto_put_str(o, sql);
	proto_put_u16(o, 0);
	proto_end(o);
}

static void put_bind(struct proto_out *o, const char *portal, const char *stmt)
{
	proto_begin(o, 'B');
	proto_put_str(o, portal);
	proto_put_str(o, stmt);
	proto_put_u16(o, 0);
	proto_put_u16(o, 0);
	proto_put_u16(o, 0);
	proto_end(o);
}

static void put_execute(struct proto_out *o)
{
	proto_begin(o, 'E');
	proto_put_str(o, "");
	proto_put_u32(o, 0);
	proto_end(o);
}

static void put_empty(struct proto_out *o, uint8_t type)
{
	proto_begin(o, type);
	proto_end(o);
}

static void put_close(struct proto_out *o, const char *name)
{
	proto_begin(o, 'C');
	proto_put_u8(o, 'S');
	proto_put_str(o, name);
	proto_end(o);
}

/* One row of one int column, as PostgreSQL sends SELECT 1's. */
static void put_row(struct proto_out *o)
{
	proto_begin(o, 'D');
	proto_put_u16(o, 1);
	proto_put_u32(o, 1);
	proto_put_u8(o, '1');
	proto_end(o);
}

/* ---- the tests ---- */

Test(lease, named_statement_renamed_and_replies_passed)
{
	int be, cl = client_login(&be);
	uint8_t mem[1024];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "s1", "SELECT 1");
	put_bind(&o, "", "s1");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);

	struct msg m;
	expect(be, 'P', &m);
	const char *name = (const char *)m.body;
	cr_assert(strncmp(name, "pgring_", 7) == 0 && strlen(name) == 39, "server-side name %s", name);
	char sname[40];   /* "pgring_" + 32 hex digits + NUL, checked above */
	memcpy(sname, name, sizeof sname);
	cr_assert_str_eq((const char *)m.body + strlen(name) + 1, "SELECT 1");
	expect(be, 'B', &m);
	cr_assert_str_eq((const char *)m.body + 1, sname, "Bind names the shared statement");
	expect(be, 'E', &m);
	expect(be, 'S', &m);

	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	put_empty(&o, '2');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "12DCZ");
	nothing_more(cl);
}

Test(lease, pipeline_written_while_waiting_reaches_the_server_framed_once)
{
	/* login of the first client: the server logs in while the client's
	 * pipelined requests (sent behind the startup packet) are held */
	int fds[2];
	harness_socketpair(fds);
	client_accept(&h->shard, fds[0], true);
	uint8_t mem[2048];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	harness_put_startup(&o, "app", "db");
	put_parse(&o, "a", "SELECT 1");
	put_bind(&o, "", "a");
	put_execute(&o);
	put_empty(&o, 'S');
	proto_query(&o, "SELECT 2");
	send_out(fds[1], &o);
	int be = server_login();

	struct msg m;
	expect(be, 'P', &m);
	cr_assert(strncmp((const char *)m.body, "pgring_", 7) == 0);
	expect_seq(be, "BES");
	expect(be, 'Q', &m);
	cr_assert_str_eq((const char *)m.body, "SELECT 2");

	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	put_empty(&o, '2');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	/* the welcome, then both answers in order */
	expect(fds[1], 'R', &m);
	do
		cr_assert(read_msg(fds[1], &m));
	while (m.type == 'S');
	cr_assert_eq(m.type, 'K');
	expect_seq(fds[1], "Z12DCZDCZ");
	nothing_more(fds[1]);
}

Test(lease, statement_injected_on_a_server_that_lacks_it)
{
	int be, cl = client_login(&be);
	uint8_t mem[1024];
	struct proto_out o;
	struct msg m;
	/* prepared on the first server */
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "s1", "SELECT 1");
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect_seq(be, "PS");
	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "1Z");
	/* that server goes away between transactions */
	close(be);
	harness_run_for(&h->shard, 50);
	/* the next transaction gets a new server, which is given the statement first */
	proto_out_init(&o, mem, sizeof mem);
	put_bind(&o, "", "s1");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	be = server_login();
	expect(be, 'P', &m);
	cr_assert(strncmp((const char *)m.body, "pgring_", 7) == 0, "injected Parse");
	cr_assert_str_eq((const char *)m.body + strlen((const char *)m.body) + 1, "SELECT 1");
	expect_seq(be, "BES");
	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');   /* the injected Parse's answer: hidden */
	put_empty(&o, '2');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "2DCZ");
	nothing_more(cl);
}

Test(lease, close_of_a_shared_statement_is_answered_by_pgring_in_its_turn)
{
	int be, cl = client_login(&be);
	uint8_t mem[1024];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "s1", "SELECT 1");
	put_bind(&o, "", "s1");
	put_execute(&o);
	put_close(&o, "s1");
	put_empty(&o, 'S');
	send_out(cl, &o);
	/* the server keeps the statement for other clients: no Close reaches it */
	expect_seq(be, "PBES");
	nothing_more(be);
	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	put_empty(&o, '2');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	/* CloseComplete comes after the Execute's answer, before ReadyForQuery */
	expect_seq(cl, "12DC3Z");
	nothing_more(cl);
}

Test(lease, error_mid_pipeline_skips_to_sync_and_undoes_the_name)
{
	int be, cl = client_login(&be);
	uint8_t mem[2048];
	struct proto_out o;
	struct msg m;
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "bad", "SELEC 1");
	put_bind(&o, "", "bad");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect_seq(be, "PBES");
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "ERROR", "42601", "syntax error at or near \"SELEC\"");
	proto_ready(&o, 'I');   /* Bind and Execute were skipped by the server */
	send_out(be, &o);
	expect(cl, 'E', &m);
	expect(cl, 'Z', &m);
	nothing_more(cl);
	/* the failed Parse bound no name: a Bind of it is PostgreSQL's 26000,
	 * raised on the server so that the batch aborts as it would directly */
	proto_out_init(&o, mem, sizeof mem);
	put_bind(&o, "", "bad");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect(be, 'P', &m);
	const char *sql = (const char *)m.body + strlen((const char *)m.body) + 1;
	cr_assert(strstr(sql, "26000") && strstr(sql, "does not exist"), "raised on the server: %s", sql);
	expect_seq(be, "BEES");   /* the DO block's Bind/Execute, then the client's Execute */
	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	put_empty(&o, '2');
	proto_error(&o, "ERROR", "26000", "prepared statement \"bad\" does not exist");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect(cl, 'E', &m);
	expect(cl, 'Z', &m);
	nothing_more(cl);
}

Test(lease, copy_from_stdin_streams_through)
{
	int be, cl = client_login(&be);
	uint8_t mem[4096];
	struct proto_out o;
	struct msg m;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "COPY t FROM STDIN");
	send_out(cl, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'G');
	proto_put_u8(&o, 0);
	proto_put_u16(&o, 1);
	proto_put_u16(&o, 0);
	proto_end(&o);
	send_out(be, &o);
	expect(cl, 'G', &m);
	/* rows larger than a receive buffer (1 kB in the harness) stream through */
	char row[3000];
	memset(row, 'x', sizeof row - 1);
	row[sizeof row - 1] = '\n';
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'd');
	proto_put_bytes(&o, row, sizeof row);
	proto_end(&o);
	put_empty(&o, 'c');
	send_out(cl, &o);
	expect(be, 'd', &m);
	cr_assert_eq(m.len, sizeof row);
	cr_assert(memcmp(m.body, row, sizeof row) == 0);
	expect(be, 'c', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "COPY 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "CZ");
	nothing_more(cl);
}

Test(lease, extended_copy_ignores_syncs_sent_before_copy_done)
{
	int be, cl = client_login(&be);
	uint8_t mem[2048];
	struct proto_out o;
	struct msg m;
	/* libpq's way: P B E S, and the data after CopyInResponse */
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "", "COPY t FROM STDIN");
	put_bind(&o, "", "");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect_seq(be, "PBES");
	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	put_empty(&o, '2');
	proto_begin(&o, 'G');
	proto_put_u8(&o, 0);
	proto_put_u16(&o, 0);
	proto_end(&o);
	send_out(be, &o);
	expect_seq(cl, "12G");
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'd');
	proto_put_bytes(&o, "1\n", 2);
	proto_end(&o);
	put_empty(&o, 'c');
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect_seq(be, "dcS");
	/* the server answers the Execute, then one ReadyForQuery: the Sync sent
	 * before the data was ignored by it, and pgring expects no answer to it */
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "COPY 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "CZ");
	nothing_more(cl);
	/* and the lease ended: the next transaction works */
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "SELECT 1");
	send_out(cl, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "DCZ");
}

/* PostgreSQL 15 crashes executing the unnamed portal of a Query that failed
 * in a block (its plan freed): after a Query, an Execute of portal "" before
 * any Bind never reaches the server; the client gets 34000 raised there. */
Test(lease, execute_of_the_portal_a_query_destroyed_is_raised_not_sent)
{
	int be, cl = client_login(&be);
	uint8_t mem[2048];
	struct proto_out o;
	struct msg m;
	const char *queries[] = { "BEGIN", "DISCARD ALL" };
	for (int i = 0; i < 2; i++) {
		proto_out_init(&o, mem, sizeof mem);
		proto_query(&o, queries[i]);
		send_out(cl, &o);
		expect(be, 'Q', &m);
		proto_out_init(&o, mem, sizeof mem);
		if (i == 0)
			proto_command_complete(&o, "BEGIN");
		else
			proto_error(&o, "ERROR", "25001", "DISCARD ALL cannot run inside a transaction block");
		proto_ready(&o, i == 0 ? 'T' : 'E');
		send_out(be, &o);
		expect_seq(cl, i == 0 ? "CZ" : "EZ");
	}
	proto_out_init(&o, mem, sizeof mem);
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect(be, 'P', &m);
	m.body[m.len - 1] = 0;
	cr_assert(memmem(m.body, m.len, "34000", 5), "the raise, not the Execute: %s", (char *)m.body + 1);
	expect_seq(be, "BES");
	/* a Bind of the unnamed portal makes it the client's again */
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "ERROR", "25P02", "current transaction is aborted");
	proto_ready(&o, 'E');
	send_out(be, &o);
	expect_seq(cl, "EZ");
	proto_out_init(&o, mem, sizeof mem);
	put_bind(&o, "", "");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect_seq(be, "CBES");   /* the raise's unnamed statement closed first */
}

Test(lease, server_fatal_in_a_block_is_an_error_and_the_block_fails_until_rollback)
{
	int be, cl = client_login(&be);
	uint8_t mem[1024];
	struct proto_out o;
	struct msg m;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "BEGIN");
	send_out(cl, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "BEGIN");
	proto_ready(&o, 'T');
	send_out(be, &o);
	expect_seq(cl, "CZ");
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "SELECT pg_sleep(10)");
	send_out(cl, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", "57P01", "terminating connection due to administrator command");
	send_out(be, &o);
	close(be);
	/* an ERROR with the server's reason, and the block is failed */
	expect(cl, 'E', &m);
	struct proto_error_fields f;
	proto_parse_error(m.body, m.len, &f);
	cr_assert_str_eq(f.severity, "ERROR");
	cr_assert_str_eq(f.sqlstate, "57P01");
	expect(cl, 'Z', &m);
	cr_assert_eq(m.body[0], 'E');
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "SELECT 1");
	send_out(cl, &o);
	expect(cl, 'E', &m);
	proto_parse_error(m.body, m.len, &f);
	cr_assert_str_eq(f.sqlstate, "25P02");
	expect(cl, 'Z', &m);
	/* ROLLBACK TO a savepoint cannot bring the block back: it died with the server */
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "ROLLBACK TO SAVEPOINT a");
	send_out(cl, &o);
	expect(cl, 'E', &m);
	expect(cl, 'Z', &m);
	cr_assert_eq(m.body[0], 'E');
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "/* done */ ROLLBACK");
	send_out(cl, &o);
	expect(cl, 'C', &m);
	cr_assert_str_eq((const char *)m.body, "ROLLBACK");
	expect(cl, 'Z', &m);
	cr_assert_eq(m.body[0], 'I');
	/* and it carries on, on a new server */
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "SELECT 1");
	send_out(cl, &o);
	be = server_login();
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "DCZ");
}

Test(lease, client_gone_mid_query_cancels_and_closes_the_server)
{
	int be, cl = client_login(&be);
	uint8_t mem[256];
	struct proto_out o;
	struct msg m;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "SELECT pg_sleep(10)");
	send_out(cl, &o);
	expect(be, 'Q', &m);
	close(cl);
	/* the query runs for nobody: pgring cancels it on a connection of its own */
	int cancel = harness_accept(&h->shard, listen_fd, WAIT);
	cr_assert_geq(cancel, 0, "a cancel request arrives");
	uint8_t req[16];
	cr_assert_eq(harness_read_all(&h->shard, cancel, req, 16, WAIT), 16);
	cr_assert_eq(proto_get_u32(req + 4), PROTO_CANCEL_REQUEST);
	cr_assert_eq(proto_get_u32(req + 8), 4242);
	cr_assert_eq(proto_get_u32(req + 12), 77);
	close(cancel);
	/* and the server connection is not reused: Terminate, then closed */
	expect(be, 'X', &m);
	cr_assert(harness_wait_eof(&h->shard, be, NULL, WAIT));
}

/* ---- one server for everyone: requests wait, held and framed ---- */

static const char settings_one[] =
	"[pgring]\n"
	"auth_type = trust\n"
	"pool_mode = transaction\n"
	"default_pool_size = 1\n"
	"[databases]\n"
	"db = host={dir} port=5999\n";

static void setup_one(void)
{
	h = harness_open(&pool_layer, settings_one);
	listen_fd = harness_listen_unix(h, PORT);
}

TestSuite(lease_wait, .init = setup_one, .fini = teardown, .timeout = 30);

Test(lease_wait, a_waiting_pipeline_is_held_then_replayed_in_order)
{
	int be, a = client_login(&be);
	int b = client_login(NULL);   /* the welcome is known: no server needed */
	uint8_t mem[2048];
	struct proto_out o;
	struct msg m;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "BEGIN");
	send_out(a, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "BEGIN");
	proto_ready(&o, 'T');
	send_out(be, &o);
	expect_seq(a, "CZ");
	/* b's batch waits for the only server, held as framed messages */
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "q", "SELECT 1");
	put_bind(&o, "", "q");
	put_execute(&o);
	put_empty(&o, 'S');
	proto_query(&o, "SELECT 2");
	send_out(b, &o);
	nothing_more(be);
	/* a commits: the server goes to b, which sends what it held, in order */
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "COMMIT");
	send_out(a, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "COMMIT");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(a, "CZ");
	expect(be, 'P', &m);
	cr_assert(strncmp((const char *)m.body, "pgring_", 7) == 0);
	expect_seq(be, "BES");
	expect(be, 'Q', &m);
	cr_assert_str_eq((const char *)m.body, "SELECT 2");
	proto_out_init(&o, mem, sizeof mem);
	put_empty(&o, '1');
	put_empty(&o, '2');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	put_row(&o);
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(b, "12DCZDCZ");
	nothing_more(b);
	nothing_more(a);
}

/* ---- a message trickling in inside a block ---- */

static const char settings_timeout[] =
	"[pgring]\n"
	"auth_type = trust\n"
	"pool_mode = transaction\n"
	"idle_transaction_timeout = 1\n"
	"[databases]\n"
	"db = host={dir} port=5999\n";

static void setup_timeout(void)
{
	h = harness_open(&pool_layer, settings_timeout);
	listen_fd = harness_listen_unix(h, PORT);
}

TestSuite(lease_timeout, .init = setup_timeout, .fini = teardown, .timeout = 30);

Test(lease_timeout, a_message_stalled_in_a_block_ends_like_an_idle_transaction)
{
	int be, cl = client_login(&be);
	uint8_t mem[256];
	struct proto_out o;
	struct msg m;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "BEGIN");
	send_out(cl, &o);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "BEGIN");
	proto_ready(&o, 'T');
	send_out(be, &o);
	expect_seq(cl, "CZ");
	/* half a Query, then nothing: the server is held as by an idle block */
	uint8_t part[5 + 6] = { 'Q', 0, 0, 0, 4 + 50 };
	memcpy(part + 5, "SELECT", 6);
	cr_assert_eq(harness_write_all(&h->shard, cl, part, sizeof part, WAIT), sizeof part);
	harness_run_for(&h->shard, 600);
	cr_assert_eq(harness_pending(cl), 0, "nothing yet before the timeout");
	harness_run_for(&h->shard, 700);
	expect(cl, 'E', &m);
	struct proto_error_fields f;
	proto_parse_error(m.body, m.len, &f);
	cr_assert_str_eq(f.sqlstate, "25P03", "%s", f.message);
	cr_assert(harness_wait_eof(&h->shard, cl, NULL, WAIT));
	/* the server is rolled back and kept */
	expect(be, 'Q', &m);
	cr_assert_str_eq((const char *)m.body, "ROLLBACK");
}

/* ---- cancel requests: the client's cancel connection is held until the
 * exchange with the server has ended (PostgreSQL signals a backend twice for
 * one cancel and closes after both; PQcancel returns at that close) ---- */

/* A new connection that sends a CancelRequest for (pid, key): the test's end. */
static int cancel_conn(uint32_t pid, uint32_t key)
{
	int fds[2];
	harness_socketpair(fds);
	client_accept(&h->shard, fds[0], true);
	uint8_t mem[16];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_cancel_request(&o, pid, key);
	send_out(fds[1], &o);
	return fds[1];
}

/* pgring's own cancel connection to the "postmaster", its request checked
 * against the server's key (server_login's 4242/77). */
static int postmaster_cancel(void)
{
	int pc = harness_accept(&h->shard, listen_fd, WAIT);
	cr_assert_geq(pc, 0, "pgring sends a cancel request to the server");
	uint8_t req[16];
	cr_assert_eq(harness_read_all(&h->shard, pc, req, 16, WAIT), 16);
	cr_assert_eq(proto_get_u32(req + 4), PROTO_CANCEL_REQUEST);
	cr_assert_eq(proto_get_u32(req + 8), 4242);
	cr_assert_eq(proto_get_u32(req + 12), 77);
	return pc;
}

static void query(int fd, const char *sql)
{
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, sql);
	send_out(fd, &o);
}

/* The server's answer to a canceled query. */
static void canceled(int be, char status)
{
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "ERROR", "57014", "canceling statement due to user request");
	proto_ready(&o, status);
	send_out(be, &o);
}

Test(lease, cancel_connection_is_held_until_the_postmaster_closes)
{
	int be, cl = client_login(&be);
	struct msg m;
	query(cl, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);
	int cc = cancel_conn(key_pid, key_secret);
	int pc = postmaster_cancel();
	/* PostgreSQL has not closed yet: neither does pgring toward the client */
	cr_assert(!harness_wait_eof(&h->shard, cc, NULL, 300), "the cancel connection closed too early");
	close(pc);
	cr_assert(harness_wait_eof(&h->shard, cc, NULL, WAIT), "the cancel connection is closed after the server's");
	canceled(be, 'I');
	expect_seq(cl, "EZ");
}

Test(lease, cancel_for_an_idle_client_sends_nothing_and_closes_at_once)
{
	int be, cl = client_login(&be);
	int cc = cancel_conn(key_pid, key_secret);
	cr_assert(harness_wait_eof(&h->shard, cc, NULL, WAIT));
	cr_assert_lt(harness_accept(&h->shard, listen_fd, 200), 0, "no cancel goes to the server");
	int bad = cancel_conn(key_pid, key_secret ^ 1);   /* a wrong key: closed, nothing sent */
	cr_assert(harness_wait_eof(&h->shard, bad, NULL, WAIT));
	cr_assert_lt(harness_accept(&h->shard, listen_fd, 200), 0);
	query(cl, "SELECT 1");
	struct msg m;
	expect(be, 'Q', &m);
}

Test(lease, cancel_connection_gone_first_is_no_harm)
{
	int be, cl = client_login(&be);
	struct msg m;
	query(cl, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);
	int cc = cancel_conn(key_pid, key_secret);
	int pc = postmaster_cancel();
	close(cc);                      /* the client gave up waiting */
	harness_run_for(&h->shard, 50);
	close(pc);                      /* the answer finds its connection gone */
	harness_run_for(&h->shard, 50);
	canceled(be, 'I');
	expect_seq(cl, "EZ");
	query(cl, "SELECT 1");
	expect(be, 'Q', &m);
}

Test(lease_wait, server_is_held_until_its_cancel_exchange_ends)
{
	int be, a = client_login(&be);
	uint32_t a_pid = key_pid, a_key = key_secret;
	int b = client_login(NULL);
	struct msg m;
	query(a, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);
	int cc = cancel_conn(a_pid, a_key);
	int pc = postmaster_cancel();
	canceled(be, 'I');
	expect_seq(a, "EZ");
	/* a's transaction is over, but PostgreSQL may still signal the backend:
	 * b's query must not reach it before the postmaster closed */
	query(b, "SELECT 1");
	harness_run_for(&h->shard, 300);
	cr_assert_eq(harness_pending(be), 0, "the server was handed on with a cancel on its way");
	close(pc);
	cr_assert(harness_wait_eof(&h->shard, cc, NULL, WAIT));
	expect(be, 'Q', &m);
	cr_assert_str_eq((const char *)m.body, "SELECT 1");
}

Test(lease_wait, cancel_for_a_waiting_client_is_held_until_its_query_runs)
{
	int be, a = client_login(&be);
	int b = client_login(NULL);
	uint32_t b_pid = key_pid, b_key = key_secret;
	uint8_t mem[256];
	struct proto_out o;
	struct msg m;
	query(a, "BEGIN");
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "BEGIN");
	proto_ready(&o, 'T');
	send_out(be, &o);
	expect_seq(a, "CZ");
	query(b, "SELECT pg_sleep(10)");   /* waits: a holds the only server */
	harness_run_for(&h->shard, 50);    /* ... before its cancel comes */
	int cc = cancel_conn(b_pid, b_key);
	cr_assert_lt(harness_accept(&h->shard, listen_fd, 300), 0, "nothing to cancel on the server yet");
	cr_assert(!harness_wait_eof(&h->shard, cc, NULL, 50), "the held cancel's connection stays open");
	query(a, "COMMIT");
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "COMMIT");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(a, "CZ");
	expect(be, 'Q', &m);               /* b's query runs, then its cancel goes */
	cr_assert_str_eq((const char *)m.body, "SELECT pg_sleep(10)");
	int pc = postmaster_cancel();
	cr_assert(!harness_wait_eof(&h->shard, cc, NULL, 100));
	close(pc);
	cr_assert(harness_wait_eof(&h->shard, cc, NULL, WAIT));
	canceled(be, 'I');
	expect_seq(b, "EZ");
}

static const char settings_cancel_wait[] =
	"[pgring]\n"
	"auth_type = trust\n"
	"pool_mode = transaction\n"
	"default_pool_size = 4\n"
	"cancel_wait_timeout = 0.5\n"
	"server_connect_timeout = 20\n"
	"[databases]\n"
	"db = host={dir} port=5999\n";

static void setup_cancel_wait(void)
{
	h = harness_open(&pool_layer, settings_cancel_wait);
	listen_fd = harness_listen_unix(h, PORT);
}

TestSuite(lease_cancel_wait, .init = setup_cancel_wait, .fini = teardown, .timeout = 30);

Test(lease_cancel_wait, a_postmaster_that_never_closes_holds_the_cancel_connection_for_cancel_wait_timeout)
{
	int be, cl = client_login(&be);
	struct msg m;
	query(cl, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);
	int cc = cancel_conn(key_pid, key_secret);
	int pc = postmaster_cancel();
	cr_assert(!harness_wait_eof(&h->shard, cc, NULL, 200));
	cr_assert(harness_wait_eof(&h->shard, cc, NULL, 2000), "closed at cancel_wait_timeout");
	/* pgring's own exchange goes on (server_connect_timeout): the server
	 * stays its client's, and the query's answer reaches it */
	canceled(be, 'I');
	expect_seq(cl, "EZ");
	close(pc);
}

Test(lease_wait, server_is_held_until_the_last_of_two_cancels_ends)
{
	int be, a = client_login(&be);
	uint32_t a_pid = key_pid, a_key = key_secret;
	int b = client_login(NULL);
	struct msg m;
	query(a, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);
	int cc1 = cancel_conn(a_pid, a_key);
	int pc1 = postmaster_cancel();
	int cc2 = cancel_conn(a_pid, a_key);
	int pc2 = postmaster_cancel();
	canceled(be, 'I');
	expect_seq(a, "EZ");
	query(b, "SELECT 1");
	close(pc1);
	cr_assert(harness_wait_eof(&h->shard, cc1, NULL, WAIT));
	/* the second cancel is still on its way: PostgreSQL may signal again */
	harness_run_for(&h->shard, 300);
	cr_assert_eq(harness_pending(be), 0, "the server was handed on with a second cancel on its way");
	close(pc2);
	cr_assert(harness_wait_eof(&h->shard, cc2, NULL, WAIT));
	expect(be, 'Q', &m);
	cr_assert_str_eq((const char *)m.body, "SELECT 1");
}

Test(lease_wait, cancel_during_the_restore_goes_once_the_clients_query_runs)
{
	int be, a = client_login(&be);
	uint32_t a_pid = key_pid, a_key = key_secret;
	int b = client_login(NULL);
	uint8_t mem[256];
	struct proto_out o;
	struct msg m;
	/* b changes the server's session: a's next turn restores a's first */
	query(b, "SET application_name = 'bee'");
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "SET");
	proto_parameter_status(&o, "application_name", "bee");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(b, "CSZ");
	query(a, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);               /* pgring's restore */
	cr_assert_str_neq((const char *)m.body, "SELECT pg_sleep(10)");
	expect(be, 'Q', &m);               /* a's query, behind it */
	cr_assert_str_eq((const char *)m.body, "SELECT pg_sleep(10)");
	int cc = cancel_conn(a_pid, a_key);
	cr_assert_lt(harness_accept(&h->shard, listen_fd, 300), 0, "a cancel now would hit the restore");
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "SET");
	proto_parameter_status(&o, "application_name", "");
	proto_ready(&o, 'I');
	send_out(be, &o);                  /* the restore is done: a's query runs */
	int pc = postmaster_cancel();
	cr_assert(!harness_wait_eof(&h->shard, cc, NULL, 100));
	close(pc);
	cr_assert(harness_wait_eof(&h->shard, cc, NULL, WAIT));
	canceled(be, 'I');
	expect_seq(a, "EZ");
}

/* A restore due in the middle of an extended-protocol batch (a RESET ALL's
 * batch answered while the next one was half sent) waits for the batch's end:
 * sent behind a message that failed, the server would skip it, and pgring's
 * record of the server's settings, updated when a restore goes out, would
 * claim the client's, so that no later restore would send them. */
Test(lease, restore_due_mid_batch_waits_for_its_sync)
{
	int be, cl = client_login_as(&be, "mine");
	uint8_t mem[1024];
	struct proto_out o;
	struct msg m;
	query(cl, "SELECT 1");
	expect(be, 'Q', &m);   /* the restore of the startup application_name */
	cr_assert(strstr((const char *)m.body, "'mine'"), "%s", (char *)m.body);
	expect(be, 'Q', &m);
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "SELECT");
	proto_parameter_status(&o, "application_name", "mine");
	proto_ready(&o, 'I');
	proto_command_complete(&o, "SELECT 1");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "CZ");   /* the restore is pgring's: none of it reaches the client */
	/* RESET ALL, Sync, and the next batch's Parse, in one write */
	proto_out_init(&o, mem, sizeof mem);
	put_parse(&o, "", "RESET ALL");
	put_bind(&o, "", "");
	put_execute(&o);
	put_empty(&o, 'S');
	put_parse(&o, "", "SELECT 1/0");
	send_out(cl, &o);
	expect_seq(be, "PBESP");
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, '1');
	proto_end(&o);
	proto_begin(&o, '2');
	proto_end(&o);
	proto_parameter_status(&o, "application_name", "");   /* the server's own default */
	proto_command_complete(&o, "RESET");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "12SCZ");
	/* the rest of the batch: nothing between the failed Parse and its Sync */
	proto_out_init(&o, mem, sizeof mem);
	put_bind(&o, "", "");
	put_execute(&o);
	put_empty(&o, 'S');
	send_out(cl, &o);
	expect_seq(be, "BES");
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "ERROR", "22012", "division by zero");
	proto_ready(&o, 'I');
	send_out(be, &o);
	expect_seq(cl, "EZ");
	/* the next request gets the restore first */
	query(cl, "SHOW application_name");
	expect(be, 'Q', &m);
	cr_assert(strstr((const char *)m.body, "'mine'"), "the restore, not %s", (char *)m.body);
	expect(be, 'Q', &m);
	cr_assert_str_eq((const char *)m.body, "SHOW application_name");
}
