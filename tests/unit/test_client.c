/* tests/unit/test_client.c: pool/client.c's startup and authentication against
 * hostile input, on a shard driven by the test (tests/unit/harness.h). Each
 * case is answered the way PostgreSQL answers it. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "proto/proto.h"

#define WAIT 3000

static struct harness *h;

static void setup(void)
{
	h = harness_open(&pool_layer, "[pgring]\nauth_type = scram-sha-256\n"
				      "[databases]\ndb = host={dir} port=5999\n");
}

static void teardown(void)
{
	harness_close(h);
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 30);

static int connect_client(void)
{
	int fds[2];
	harness_socketpair(fds);
	client_accept(&h->shard, fds[0], true);
	return fds[1];
}

static void send_out(int fd, const struct proto_out *o)
{
	cr_assert(!o->overflow);
	cr_assert_eq(harness_write_all(&h->shard, fd, o->p, o->len, WAIT), o->len);
}

/* Read one message; its type, and its body in body (up to cap). */
static uint8_t read_msg(int fd, uint8_t *body, uint32_t cap, uint32_t *len)
{
	uint8_t hdr[5];
	cr_assert_eq(harness_read_all(&h->shard, fd, hdr, 5, WAIT), 5, "no message");
	*len = proto_get_u32(hdr + 1) - 4;
	cr_assert_leq(*len, cap);
	cr_assert_eq(harness_read_all(&h->shard, fd, body, *len, WAIT), *len);
	return hdr[0];
}

/* A FATAL with this SQLSTATE, then the connection closes. */
static void expect_fatal(int fd, const char *sqlstate, const char *message)
{
	uint8_t body[512];
	uint32_t len;
	cr_assert_eq(read_msg(fd, body, sizeof body, &len), 'E');
	struct proto_error_fields f;
	proto_parse_error(body, len, &f);
	cr_assert_str_eq(f.severity, "FATAL");
	cr_assert_str_eq(f.sqlstate, sqlstate, "%s: %s", f.sqlstate, f.message);
	if (message)
		cr_assert_str_eq(f.message, message);
	cr_assert(harness_wait_eof(&h->shard, fd, NULL, WAIT), "closed after the error");
}

static void startup(int fd)
{
	uint8_t mem[128];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	harness_put_startup(&o, "app", "db");
	send_out(fd, &o);
	uint8_t body[256];
	uint32_t len;
	cr_assert_eq(read_msg(fd, body, sizeof body, &len), 'R');
	cr_assert_eq(proto_get_u32(body), 10, "AuthenticationSASL");
}

/* SASLInitialResponse with a mechanism and a data length that may lie. */
static void sasl_initial(int fd, const char *mech, uint32_t claimed, const char *data)
{
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'p');
	proto_put_str(&o, mech);
	proto_put_u32(&o, claimed);
	proto_put_bytes(&o, data, strlen(data));
	proto_end(&o);
	send_out(fd, &o);
}

Test(client, sasl_data_length_past_the_message_is_a_protocol_violation)
{
	int fd = connect_client();
	startup(fd);
	sasl_initial(fd, "SCRAM-SHA-256", 0x7fffffff, "n,,n=,r=abc");
	expect_fatal(fd, "08P01", "insufficient data left in message");
}

Test(client, unknown_sasl_mechanism)
{
	int fd = connect_client();
	startup(fd);
	sasl_initial(fd, "SCRAM-SHA-1", 11, "n,,n=,r=abc");
	expect_fatal(fd, "08P01", "client selected an invalid SASL authentication mechanism");
}

Test(client, sasl_without_data_is_a_malformed_exchange)
{
	int fd = connect_client();
	startup(fd);
	sasl_initial(fd, "SCRAM-SHA-256", 0xffffffff, "");
	uint8_t body[512];
	uint32_t len;
	cr_assert_eq(read_msg(fd, body, sizeof body, &len), 'E');
	struct proto_error_fields f;
	proto_parse_error(body, len, &f);
	cr_assert_str_eq(f.sqlstate, "08P01", "%s", f.message);
}

Test(client, second_ssl_request_is_an_unknown_protocol)
{
	int fd = connect_client();
	uint8_t req[8] = { 0, 0, 0, 8 };
	memcpy(req + 4, "\x04\xd2\x16\x2f", 4);   /* 80877103 */
	cr_assert_eq(harness_write_all(&h->shard, fd, req, 8, WAIT), 8);
	uint8_t c;
	cr_assert_eq(harness_read_all(&h->shard, fd, &c, 1, WAIT), 1);
	cr_assert_eq(c, 'N');
	cr_assert_eq(harness_write_all(&h->shard, fd, req, 8, WAIT), 8);
	expect_fatal(fd, "0A000", NULL);
}

Test(client, ssl_request_with_a_wrong_length)
{
	int fd = connect_client();
	uint8_t req[12] = { 0, 0, 0, 12 };
	memcpy(req + 4, "\x04\xd2\x16\x2f", 4);
	cr_assert_eq(harness_write_all(&h->shard, fd, req, 12, WAIT), 12);
	expect_fatal(fd, "08P01", "invalid length of startup packet");
}
