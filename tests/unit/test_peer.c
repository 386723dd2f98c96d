/* tests/unit/test_peer.c: the node id and TTL a fleet's cancel keys carry
 * (pool/peer.h): PgBouncer's byte layout for 3.0 keys, the tail for 3.2 keys,
 * and keys left alone without peering. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/config.h"
#include "pool/peer.h"

TestSuite(peer);

/* the key as it goes on the wire: PID then secret, both big-endian */
static void wire(uint32_t pid, uint32_t secret, uint8_t k[8])
{
	for (int i = 0; i < 4; i++) {
		k[i] = (uint8_t)(pid >> (24 - 8 * i));
		k[4 + i] = (uint8_t)(secret >> (24 - 8 * i));
	}
}

Test(peer, a_3_0_key_carries_the_id_where_pgbouncer_puts_it)
{
	struct config cfg = { .peer_id = 0x1234 };
	uint32_t pid = 0xdeadbeef, secret = 0xa5a5a5a4;
	peer_stamp_key(&cfg, &pid, &secret, NULL);
	uint8_t k[8];
	wire(pid, secret, k);
	/* PgBouncer 1.21+: cancel_key[1] low byte, [2] high byte, [7] & 3 the TTL */
	cr_expect_eq(k[1], 0x34);
	cr_expect_eq(k[2], 0x12);
	cr_expect_eq(k[7] & PEER_TTL_MASK, 3, "three hops allowed");
	cr_expect_eq(k[0], 0x5e, "the PID's other bytes kept, its sign bit cleared");
	cr_expect_eq(k[3], 0xef);
	cr_expect_eq(secret & ~PEER_TTL_MASK, 0xa5a5a5a4, "the rest of the secret (its shard bits) kept");
}

Test(peer, a_3_2_key_carries_it_in_its_tail_and_keeps_the_pid)
{
	struct config cfg = { .peer_id = 300 };
	uint32_t pid = 4242, secret = 0x80000000;
	uint8_t tail[28];
	memset(tail, 0xee, sizeof tail);
	peer_stamp_key(&cfg, &pid, &secret, tail);
	cr_expect_eq(pid, 4242, "a session client's PID stays its backend's");
	cr_expect_eq(tail[0], 300 & 0xff);
	cr_expect_eq(tail[1], 300 >> 8);
	cr_expect_eq(tail[2], 0xee);
	cr_expect_eq(secret, 0x80000003);
}

Test(peer, without_peering_only_the_sign_bit_goes)
{
	struct config cfg = { .peer_id = 0 };
	uint32_t pid = 0x80000001, secret = 0x12345678;
	peer_stamp_key(&cfg, &pid, &secret, NULL);
	cr_expect_eq(pid, 1, "a negative PID breaks some clients (pg_basebackup)");
	cr_expect_eq(secret, 0x12345678);
}

Test(peer, a_pid_never_becomes_zero)
{
	struct config cfg = { .peer_id = 0 };
	uint32_t pid = 0x80000000, secret = 0;
	peer_stamp_key(&cfg, &pid, &secret, NULL);
	cr_expect_neq(pid, 0);
}
