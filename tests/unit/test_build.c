/* tests/unit/test_build.c: proto/build.c writes the exact bytes of the
 * PostgreSQL v3 protocol (message formats as in the PostgreSQL 15 docs, chapter
 * 55.7), never writes past its output area, and its readers (proto_reader,
 * proto_parse_error) never read past the body they are given. ErrorResponse
 * and NoticeResponse fields are valid UTF-8 without a NUL inside whatever the
 * arguments hold (a client's database or user name). */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "utf8_oracle.h"

/* ---- helpers ---- */

static void hex(char *out, size_t cap, const uint8_t *p, size_t n)
{
	size_t k = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && k + 4 < cap; i++)
		k += (size_t)snprintf(out + k, cap - k, "%02x ", p[i]);
}

static void expect_bytes(const struct proto_out *o, const void *want, size_t n)
{
	char got_s[1024], want_s[1024];
	hex(got_s, sizeof got_s, o->p, o->len);
	hex(want_s, sizeof want_s, want, n);
	cr_assert_not(o->overflow, "unexpected overflow");
	cr_assert_eq(o->len, n, "length %zu, expected %zu\n got:  %s\n want: %s", o->len, n, got_s, want_s);
	cr_assert_eq(memcmp(o->p, want, n), 0, "bytes differ\n got:  %s\n want: %s", got_s, want_s);
}

/* type byte + Int32 length (body + 4) + body: the spec's framing, done by hand */
static size_t frame(uint8_t *out, char type, const void *body, size_t blen)
{
	size_t k = 0;
	if (type)
		out[k++] = (uint8_t)type;
	uint32_t l = (uint32_t)(blen + 4);
	out[k++] = (uint8_t)(l >> 24);
	out[k++] = (uint8_t)(l >> 16);
	out[k++] = (uint8_t)(l >> 8);
	out[k++] = (uint8_t)l;
	memcpy(out + k, body, blen);
	return k + blen;
}

/* ---- exact bytes ---- */

TestSuite(build_msg);

Test(build_msg, error_response)
{
	uint8_t mem[512];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", "28P01", "password authentication failed for user \"%s\"", "bob");
	static const char body[] = "SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"bob\"\0";
	uint8_t want[512];
	/* sizeof body includes the literal's final NUL: that is the field list terminator */
	size_t n = frame(want, 'E', body, sizeof body);
	cr_assert_eq(want[n - 1], 0);
	cr_assert_eq(want[n - 2], 0);
	expect_bytes(&o, want, n);
}

Test(build_msg, notice_response)
{
	uint8_t mem[512];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_notice(&o, "00000", "pool %d is %s", 3, "busy");
	static const char body[] = "SNOTICE\0VNOTICE\0C00000\0Mpool 3 is busy\0";
	uint8_t want[512];
	expect_bytes(&o, want, frame(want, 'N', body, sizeof body));
}

Test(build_msg, error_message_longer_than_buffer_is_truncated_but_well_formed)
{
	char longmsg[3000];
	memset(longmsg, 'm', sizeof longmsg - 1);
	longmsg[sizeof longmsg - 1] = 0;
	uint8_t mem[8192];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "ERROR", "XX000", "%s", longmsg);
	cr_assert_not(o.overflow);
	cr_assert_eq(mem[0], 'E');
	cr_assert_eq(proto_get_u32(mem + 1), o.len - 1);
	struct proto_error_fields f;
	proto_parse_error(mem + 5, o.len - 5, &f);
	cr_assert_str_eq(f.severity, "ERROR");
	cr_assert_str_eq(f.sqlstate, "XX000");
	cr_assert_gt(strlen(f.message), 0);
	cr_assert_eq(strncmp(f.message, longmsg, strlen(f.message)), 0);
	cr_assert_eq(mem[o.len - 1], 0);
	cr_assert_eq(mem[o.len - 2], 0);
}

/* ---- client bytes in error messages: valid UTF-8, no NUL ---- */

TestSuite(build_text);


/* An ErrorResponse/NoticeResponse in mem[0..len): the length field matches, the
 * body is exactly S, V, C, M and the terminator, each field valid UTF-8 without
 * a NUL inside. Returns the message field. */
static const char *check_error_msg(const uint8_t *mem, size_t len, char type)
{
	cr_assert_geq(len, 6);
	cr_assert_eq(mem[0], type);
	cr_assert_eq(proto_get_u32(mem + 1), len - 1, "length field %u, message %zu bytes",
		     proto_get_u32(mem + 1), len - 1);
	const uint8_t *p = mem + 5, *end = mem + len;
	static const char codes[] = "SVCM";
	const char *msg = NULL;
	for (int i = 0; i < 4; i++) {
		cr_assert_lt(p, end);
		cr_assert_eq(*p, codes[i], "field %d is '%c'", i, *p);
		p++;
		const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
		cr_assert_not_null(nul, "field %c not terminated", codes[i]);
		cr_assert(valid_utf8(p, (size_t)(nul - p)), "field %c is not valid UTF-8", codes[i]);
		if (codes[i] == 'M')
			msg = (const char *)p;
		p = nul + 1;
	}
	cr_assert_eq(p + 1, end, "%td bytes after the fields", end - p);
	cr_assert_eq(*p, 0, "no terminator");
	return msg;
}

Test(build_text, invalid_utf8_in_arguments_is_escaped)
{
	static const struct { const char *arg, *want; } cases[] = {
		{ "\xff\xfe", "\\xff\\xfe" },
		{ "a\xe6\x97z", "a\\xe6\\x97z" },                  /* 3-byte sequence cut short */
		{ "end\xe6\x97", "end\\xe6\\x97" },                /* ... at the end */
		{ "\xc0\xaf", "\\xc0\\xaf" },                      /* overlong '/' */
		{ "\xe0\x80\xaf", "\\xe0\\x80\\xaf" },             /* overlong, 3 bytes */
		{ "\xed\xa0\x80", "\\xed\\xa0\\x80" },             /* UTF-16 surrogate */
		{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" },    /* above U+10FFFF */
		{ "\x80x\xbf", "\\x80x\\xbf" },                    /* lone continuations */
		{ "\xe6\xe6\x97\xa5", "\\xe6\xe6\x97\xa5" },       /* bad byte, then a good character */
		/* valid UTF-8, newlines, tabs and control characters are legal text */
		{ "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
		  "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80" },
		{ "evil\n2026-12-03 LOG: x\r\t\x1b", "evil\n2026-12-03 LOG: x\r\t\x1b" },
		{ "back\\slash \\xff", "back\\slash \\xff" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint8_t mem[512];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_error(&o, "FATAL", "3D000", "no such database: %s", cases[i].arg);
		cr_assert_not(o.overflow);
		const char *m = check_error_msg(mem, o.len, 'E');
		char want[256];
		snprintf(want, sizeof want, "no such database: %s", cases[i].want);
		cr_assert_str_eq(m, want, "case %zu", i);
	}
}

Test(build_text, exact_bytes_with_escapes)
{
	uint8_t mem[512];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", "3D000", "no such database: %s", "\xff\xfe\xc0\xaf");
	static const char body[] = "SFATAL\0VFATAL\0C3D000\0Mno such database: \\xff\\xfe\\xc0\\xaf\0";
	uint8_t want[512];
	expect_bytes(&o, want, frame(want, 'E', body, sizeof body));

	proto_out_init(&o, mem, sizeof mem);
	proto_notice(&o, "00000", "user %s", "\xed\xa0\x80");
	static const char nbody[] = "SNOTICE\0VNOTICE\0C00000\0Muser \\xed\\xa0\\x80\0";
	expect_bytes(&o, want, frame(want, 'N', nbody, sizeof nbody));
}

Test(build_text, nul_in_the_formatted_message_is_escaped)
{
	/* %c with 0 puts a NUL inside the message: it must not end the field */
	uint8_t mem[512];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "ERROR", "XX000", "a%cb", 0);
	const char *m = check_error_msg(mem, o.len, 'E');
	cr_assert_str_eq(m, "a\\x00b");
}

Test(build_text, cut_message_drops_a_split_character)
{
	/* the message buffer holds 1023 bytes: 3-byte characters, one split by the cut */
	char arg[3 * 400 + 1];
	for (int i = 0; i < 400; i++)
		memcpy(arg + 3 * i, "\xe6\x97\xa5", 3);
	arg[sizeof arg - 1] = 0;
	for (int pad = 0; pad < 3; pad++) {
		uint8_t mem[4096];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_error(&o, "ERROR", "XX000", "%.*s%s", pad, "xx", arg);
		const char *m = check_error_msg(mem, o.len, 'E');
		size_t n = strlen(m);
		cr_assert_eq((n - (size_t)pad) % 3, 0, "pad %d: %zu bytes", pad, n);
		cr_assert_gt(n, 1020);
		cr_assert_leq(n, 1023);
		cr_assert_null(strstr(m, "\\x"), "pad %d: escaped bytes of a split character", pad);
	}
}

Test(build_text, random_bytes_always_well_formed)
{
	uint64_t st = 0x243f6a8885a308d3ull;
	for (int round = 0; round < 3000; round++) {
		char arg[300];
		size_t len = (size_t)(round % 250);
		for (size_t i = 0; i < len; i++) {
			st ^= st << 13; st ^= st >> 7; st ^= st << 17;
			uint8_t v = (uint8_t)st;
			arg[i] = (char)(v ? v : 'z');
		}
		arg[len] = 0;
		uint8_t mem[2048];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		if (round & 1)
			proto_error(&o, "FATAL", "28000", "no such user: %s", arg);
		else
			proto_notice(&o, "01000", "%s", arg);
		cr_assert_not(o.overflow);
		const char *m = check_error_msg(mem, o.len, (round & 1) ? 'E' : 'N');
		/* nothing lost: undoing the \xNN escapes gives the argument back (the
		 * argument has no backslash-x of its own that could be mistaken) */
		if (!strstr(arg, "\\x")) {
			char back[1300];
			size_t k = 0;
			for (const char *p = m + ((round & 1) ? strlen("no such user: ") : 0); *p;) {
				unsigned v;
				if (p[0] == '\\' && p[1] == 'x' && sscanf(p + 2, "%2x", &v) == 1) {
					back[k++] = (char)v;
					p += 4;
				} else {
					back[k++] = *p++;
				}
			}
			cr_assert_eq(k, len, "round %d", round);
			cr_assert_eq(memcmp(back, arg, len), 0, "round %d", round);
		}
	}
}

Test(build_text, utf8_len)
{
	static const struct { const char *s; size_t n; int want; } cases[] = {
		{ "a", 1, 1 }, { "\x7f", 1, 1 },
		{ "\xc3\xaf", 2, 2 }, { "\xc2\x80", 2, 2 }, { "\xdf\xbf", 2, 2 },
		{ "\xe0\xa0\x80", 3, 3 }, { "\xed\x9f\xbf", 3, 3 }, { "\xee\x80\x80", 3, 3 },
		{ "\xf0\x90\x80\x80", 4, 4 }, { "\xf4\x8f\xbf\xbf", 4, 4 },
		{ "\x80", 1, 0 }, { "\xbf", 1, 0 }, { "\xc0\xaf", 2, 0 }, { "\xc1\xbf", 2, 0 },
		{ "\xe0\x9f\xbf", 3, 0 }, { "\xed\xa0\x80", 3, 0 }, { "\xf0\x8f\xbf\xbf", 4, 0 },
		{ "\xf4\x90\x80\x80", 4, 0 }, { "\xf5\x80\x80\x80", 4, 0 }, { "\xff", 1, 0 },
		{ "\xc3\x41", 2, 0 }, { "\xe6\x97\x41", 3, 0 }, { "\xe6\x00", 2, 0 },
		/* cut off by n: -1, but only while what there is could still be valid */
		{ "\xc3", 1, -1 }, { "\xe6\x97", 2, -1 }, { "\xe6", 1, -1 }, { "\xf0\x9f\x98", 3, -1 },
		{ "\xed\xa0", 2, 0 }, { "\xe0\x80", 2, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_assert_eq(proto_utf8_len((const uint8_t *)cases[i].s, cases[i].n), cases[i].want,
			     "case %zu", i);
}

Test(build_msg, authentication_ok)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_auth_request(&o, 0, NULL, 0);
	static const uint8_t want[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 0 };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, authentication_cleartext)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_auth_request(&o, 3, NULL, 0);
	static const uint8_t want[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 3 };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, authentication_md5)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	static const uint8_t salt[4] = { 0x01, 0x00, 0xfe, 0xff };
	proto_auth_request(&o, 5, salt, 4);
	static const uint8_t want[] = { 'R', 0, 0, 0, 12, 0, 0, 0, 5, 0x01, 0x00, 0xfe, 0xff };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, authentication_sasl)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_auth_sasl_mechanisms(&o);
	static const uint8_t want[] = { 'R', 0, 0, 0, 23, 0, 0, 0, 10,
					'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
					0 };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, authentication_sasl_continue_and_final)
{
	uint8_t mem[128];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_auth_request(&o, 11, "r=abc,s=QSXCR+Q6sek8bf92,i=4096", 31);
	proto_auth_request(&o, 12, "v=xyz=", 6);
	uint8_t want[128];
	size_t n = 0;
	static const char c1[] = "\0\0\0\x0br=abc,s=QSXCR+Q6sek8bf92,i=4096";
	static const char c2[] = "\0\0\0\x0cv=xyz=";
	n += frame(want + n, 'R', c1, sizeof c1 - 1);
	n += frame(want + n, 'R', c2, sizeof c2 - 1);
	cr_assert_eq(n, 5 + 4 + 31 + 5 + 4 + 6);
	expect_bytes(&o, want, n);
}

Test(build_msg, parameter_status)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_parameter_status(&o, "TimeZone", "UTC");
	static const uint8_t want[] = { 'S', 0, 0, 0, 17, 'T', 'i', 'm', 'e', 'Z', 'o', 'n', 'e', 0, 'U', 'T', 'C', 0 };
	expect_bytes(&o, want, sizeof want);
	proto_out_init(&o, mem, sizeof mem);
	proto_parameter_status(&o, "application_name", "");
	static const char body[] = "application_name\0";
	uint8_t w2[64];
	expect_bytes(&o, w2, frame(w2, 'S', body, sizeof body));
}

Test(build_msg, backend_key_data)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_backend_key(&o, 0x12345678u, 0x9abcdef0u);
	static const uint8_t want[] = { 'K', 0, 0, 0, 12, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0 };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, ready_for_query)
{
	static const char st[] = { 'I', 'T', 'E' };
	for (size_t i = 0; i < sizeof st; i++) {
		uint8_t mem[16];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_ready(&o, st[i]);
		const uint8_t want[] = { 'Z', 0, 0, 0, 5, (uint8_t)st[i] };
		expect_bytes(&o, want, sizeof want);
	}
}

Test(build_msg, query)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "SET TimeZone TO 'UTC'");
	static const char body[] = "SET TimeZone TO 'UTC'";
	uint8_t want[64];
	size_t n = frame(want, 'Q', body, sizeof body);
	cr_assert_eq(n, 1 + 4 + 21 + 1);
	cr_assert_eq(want[4], 26);
	expect_bytes(&o, want, n);
	/* the empty query string */
	proto_out_init(&o, mem, sizeof mem);
	proto_query(&o, "");
	static const uint8_t empty[] = { 'Q', 0, 0, 0, 5, 0 };
	expect_bytes(&o, empty, sizeof empty);
}

Test(build_msg, terminate)
{
	uint8_t mem[16];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_terminate(&o);
	static const uint8_t want[] = { 'X', 0, 0, 0, 4 };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, password_message)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_password(&o, "md5a3556571e93b0d20722ba62be61e8c2d");
	static const char body[] = "md5a3556571e93b0d20722ba62be61e8c2d";
	uint8_t want[64];
	size_t n = frame(want, 'p', body, sizeof body);
	cr_assert_eq(want[4], 40);
	expect_bytes(&o, want, n);
}

Test(build_msg, sasl_initial_response)
{
	uint8_t mem[128];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	static const char data[] = "n,,n=,r=rOprNGfwEbeRWgbNEkqO";
	proto_sasl_initial(&o, "SCRAM-SHA-256", data, sizeof data - 1);
	static const uint8_t want[] = {
		'p', 0, 0, 0, 4 + 14 + 4 + 28,
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
		0, 0, 0, 28,
		'n', ',', ',', 'n', '=', ',', 'r', '=', 'r', 'O', 'p', 'r', 'N', 'G', 'f', 'w', 'E', 'b', 'e', 'R',
		'W', 'g', 'b', 'N', 'E', 'k', 'q', 'O',
	};
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, sasl_response)
{
	uint8_t mem[128];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	static const char data[] = "c=biws,r=abc,p=xyz=";
	proto_sasl_response(&o, data, sizeof data - 1);
	uint8_t want[128];
	/* no terminating NUL: the data is Byte(n) */
	expect_bytes(&o, want, frame(want, 'p', data, sizeof data - 1));
}

Test(build_msg, cancel_request)
{
	uint8_t mem[32];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_cancel_request(&o, 4242, 0xdeadbeefu);
	/* Int32(16) Int32(80877102) Int32 pid Int32 key; no type byte */
	static const uint8_t want[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x10, 0x92, 0xde, 0xad, 0xbe, 0xef };
	cr_assert_eq(PROTO_CANCEL_REQUEST, 80877102);
	cr_assert_eq(proto_get_u32(want + 4), 80877102u);
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, negotiate_protocol_version)
{
	/* The field is documented as the newest minor version; PostgreSQL itself
	 * (SendNegotiateProtocolVersion) sends PG_PROTOCOL_LATEST, i.e. 3 << 16 | minor,
	 * and libpq decodes it that way. pgring matches the server. */
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	const char *const unsup[] = { "_pq_.a", "_pq_.bb" };
	proto_negotiate_version(&o, 0, unsup, 2);
	static const uint8_t want[] = {
		'v', 0, 0, 0, 27, 0, 3, 0, 0, 0, 0, 0, 2,
		'_', 'p', 'q', '_', '.', 'a', 0, '_', 'p', 'q', '_', '.', 'b', 'b', 0,
	};
	expect_bytes(&o, want, sizeof want);
	proto_out_init(&o, mem, sizeof mem);
	proto_negotiate_version(&o, 0, NULL, 0);
	static const uint8_t none[] = { 'v', 0, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0 };
	expect_bytes(&o, none, sizeof none);
}

Test(build_msg, command_complete)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_command_complete(&o, "SELECT 1");
	static const uint8_t want[] = { 'C', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0 };
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, several_messages_in_one_area)
{
	uint8_t mem[128];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_auth_request(&o, 0, NULL, 0);
	proto_parameter_status(&o, "a", "b");
	proto_backend_key(&o, 1, 2);
	proto_ready(&o, 'I');
	static const uint8_t want[] = {
		'R', 0, 0, 0, 8, 0, 0, 0, 0,
		'S', 0, 0, 0, 8, 'a', 0, 'b', 0,
		'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2,
		'Z', 0, 0, 0, 5, 'I',
	};
	expect_bytes(&o, want, sizeof want);
}

Test(build_msg, low_level_puts_and_untyped_begin)
{
	uint8_t mem[64];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 0);
	proto_put_u32(&o, PROTO_VERSION_30);
	proto_put_str(&o, "user");
	proto_put_str(&o, "u");
	proto_put_u8(&o, 0);
	proto_end(&o);
	static const uint8_t want[] = { 0, 0, 0, 16, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'u', 0, 0 };
	expect_bytes(&o, want, sizeof want);
	proto_out_init(&o, mem, sizeof mem);
	proto_begin(&o, 'B');
	proto_put_u16(&o, 0xbeef);
	proto_put_bytes(&o, "\x01\x02", 2);
	proto_end(&o);
	static const uint8_t w2[] = { 'B', 0, 0, 0, 8, 0xbe, 0xef, 1, 2 };
	expect_bytes(&o, w2, sizeof w2);
}

/* ---- bounded output ---- */

TestSuite(build_overflow);

#define NBUILDERS 18

static void build_one(int i, struct proto_out *o)
{
	static const uint8_t salt[4] = { 9, 8, 7, 6 };
	static const char *const unsup[] = { "_pq_.x", "_pq_.yy" };
	switch (i) {
	case 0: proto_error(o, "ERROR", "42P01", "relation \"%s\" does not exist", "t"); break;
	case 1: proto_notice(o, "01000", "note %d", 7); break;
	case 2: proto_auth_request(o, 0, NULL, 0); break;
	case 3: proto_auth_request(o, 5, salt, 4); break;
	case 4: proto_auth_sasl_mechanisms(o); break;
	case 5: proto_auth_request(o, 11, "r=x,s=y,i=4096", 14); break;
	case 6: proto_parameter_status(o, "DateStyle", "ISO, MDY"); break;
	case 7: proto_backend_key(o, 1, 2); break;
	case 8: proto_ready(o, 'T'); break;
	case 9: proto_query(o, "DISCARD ALL"); break;
	case 10: proto_terminate(o); break;
	case 11: proto_password(o, "secret"); break;
	case 12: proto_sasl_initial(o, "SCRAM-SHA-256", "n,,n=,r=abc", 11); break;
	case 13: proto_sasl_response(o, "c=biws,r=abc,p=xyz", 18); break;
	case 14: proto_cancel_request(o, 3, 4); break;
	case 15: proto_negotiate_version(o, 0, unsup, 2); break;
	case 16: proto_command_complete(o, "INSERT 0 1"); break;
	case 17: proto_error(o, "FATAL", "3D000", "no such database: %s", "\xff\xfe\xc0\xafok"); break;
	}
}

Test(build_overflow, never_writes_past_cap)
{
	for (int i = 0; i < NBUILDERS; i++) {
		/* the full message, with room to spare */
		uint8_t full[512];
		struct proto_out o;
		proto_out_init(&o, full, sizeof full);
		build_one(i, &o);
		cr_assert_not(o.overflow, "builder %d overflowed 512 bytes", i);
		size_t need = o.len;
		cr_assert_gt(need, 4);
		for (size_t cap = 0; cap <= need; cap++) {
			uint8_t mem[512 + 64];
			memset(mem, 0xa5, sizeof mem);
			proto_out_init(&o, mem, cap);
			build_one(i, &o);
			for (size_t k = cap; k < sizeof mem; k++)
				cr_assert_eq(mem[k], 0xa5, "builder %d with cap %zu wrote byte %zu", i, cap, k);
			cr_assert_leq(o.len, cap, "builder %d with cap %zu: len %zu", i, cap, o.len);
			if (cap < need) {
				cr_assert(o.overflow, "builder %d with cap %zu < %zu: no overflow", i, cap, need);
			} else {
				cr_assert_not(o.overflow, "builder %d with exactly enough room overflowed", i);
				cr_assert_eq(memcmp(mem, full, need), 0, "builder %d at exact cap differs", i);
			}
		}
		/* and in exactly-sized heap memory, so ASan sees any overrun */
		for (size_t cap = 0; cap <= need; cap++) {
			uint8_t *m = malloc(cap ? cap : 1);
			cr_assert_not_null(m);
			proto_out_init(&o, m, cap);
			build_one(i, &o);
			cr_assert_eq(o.overflow, cap < need);
			free(m);
		}
	}
}

Test(build_overflow, after_other_messages)
{
	/* the area already holds a message; the next one doesn't fit */
	uint8_t mem[16 + 32];
	memset(mem, 0xa5, sizeof mem);
	struct proto_out o;
	proto_out_init(&o, mem, 16);
	proto_ready(&o, 'I');   /* 6 bytes */
	cr_assert_not(o.overflow);
	proto_query(&o, "SELECT pg_sleep(1)");
	cr_assert(o.overflow);
	cr_assert_leq(o.len, 16);
	for (size_t k = 16; k < sizeof mem; k++)
		cr_assert_eq(mem[k], 0xa5);
	/* the first message is intact */
	static const uint8_t z[] = { 'Z', 0, 0, 0, 5, 'I' };
	cr_assert_eq(memcmp(mem, z, sizeof z), 0);
	/* overflow is sticky, and later builders still stay inside the area */
	proto_terminate(&o);
	proto_ready(&o, 'I');
	cr_assert(o.overflow);
	cr_assert_leq(o.len, 16);
	for (size_t k = 16; k < sizeof mem; k++)
		cr_assert_eq(mem[k], 0xa5);
}

Test(build_overflow, exact_fit_after_other_messages)
{
	uint8_t mem[11 + 8];
	memset(mem, 0xa5, sizeof mem);
	struct proto_out o;
	proto_out_init(&o, mem, 11);
	proto_ready(&o, 'I');
	proto_terminate(&o);
	cr_assert_not(o.overflow);
	cr_assert_eq(o.len, 11);
	static const uint8_t want[] = { 'Z', 0, 0, 0, 5, 'I', 'X', 0, 0, 0, 4 };
	cr_assert_eq(memcmp(mem, want, sizeof want), 0);
	for (size_t k = 11; k < sizeof mem; k++)
		cr_assert_eq(mem[k], 0xa5);
}

/* ---- reading error responses ---- */

TestSuite(build_parse_error);

/* A real server's ErrorResponse body (PostgreSQL 15, SELECT * FROM nosuch). */
static const char pg_error_body[] =
	"SERROR\0VERROR\0C42P01\0Mrelation \"nosuch\" does not exist\0P15\0"
	"Fparse_relation.c\0L1392\0RparserOpenTable\0";

Test(build_parse_error, real_server_error)
{
	struct proto_error_fields f;
	proto_parse_error((const uint8_t *)pg_error_body, sizeof pg_error_body, &f);
	cr_assert_str_eq(f.severity, "ERROR");
	cr_assert_str_eq(f.sqlstate, "42P01");
	cr_assert_str_eq(f.message, "relation \"nosuch\" does not exist");
}

Test(build_parse_error, round_trip_with_builder)
{
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", "53300", "sorry, too many clients already");
	struct proto_error_fields f;
	proto_parse_error(mem + 5, o.len - 5, &f);
	cr_assert_str_eq(f.severity, "FATAL");
	cr_assert_str_eq(f.sqlstate, "53300");
	cr_assert_str_eq(f.message, "sorry, too many clients already");
}

Test(build_parse_error, prefers_nonlocalized_severity)
{
	/* localized S first, then V; and V first, then S */
	static const char a[] = "SFEHLER\0VERROR\0C22012\0MDivision durch Null\0";
	static const char b[] = "VERROR\0SFEHLER\0C22012\0MDivision durch Null\0";
	struct proto_error_fields f;
	proto_parse_error((const uint8_t *)a, sizeof a, &f);
	cr_assert_str_eq(f.severity, "ERROR");
	proto_parse_error((const uint8_t *)b, sizeof b, &f);
	cr_assert_str_eq(f.severity, "ERROR");
	cr_assert_str_eq(f.message, "Division durch Null");
	/* only S (servers before 9.6) */
	static const char c[] = "SWARNING\0C01000\0Mhm\0";
	proto_parse_error((const uint8_t *)c, sizeof c, &f);
	cr_assert_str_eq(f.severity, "WARNING");
}

Test(build_parse_error, missing_fields_are_empty)
{
	static const char body[] = "Mjust a message\0";
	struct proto_error_fields f;
	proto_parse_error((const uint8_t *)body, sizeof body, &f);
	cr_assert_str_eq(f.severity, "");
	cr_assert_str_eq(f.sqlstate, "");
	cr_assert_str_eq(f.message, "just a message");
	static const uint8_t empty[1] = { 0 };
	proto_parse_error(empty, 1, &f);
	cr_assert_str_eq(f.severity, "");
	cr_assert_str_eq(f.message, "");
	proto_parse_error(empty, 0, &f);
	cr_assert_str_eq(f.severity, "");
	cr_assert_str_eq(f.sqlstate, "");
	cr_assert_str_eq(f.message, "");
}

/* A returned field is "" or a NUL-terminated string wholly inside the body. */
static void assert_field_ok(const char *v, const uint8_t *body, size_t len, const char *what, size_t cut)
{
	cr_assert_not_null(v, "%s is NULL (cut %zu)", what, cut);
	if (!*v)
		return;
	const uint8_t *p = (const uint8_t *)v;
	cr_assert(p >= body && p < body + len, "%s points outside the body (cut %zu)", what, cut);
	cr_assert_not_null(memchr(p, 0, (size_t)(body + len - p)), "%s not terminated inside the body (cut %zu)",
			   what, cut);
}

Test(build_parse_error, truncated_anywhere)
{
	/* every prefix of a real body, each in exactly-sized heap memory (ASan) */
	for (size_t cut = 0; cut <= sizeof pg_error_body; cut++) {
		uint8_t *b = malloc(cut ? cut : 1);
		cr_assert_not_null(b);
		memcpy(b, pg_error_body, cut);
		struct proto_error_fields f;
		proto_parse_error(b, cut, &f);
		assert_field_ok(f.severity, b, cut, "severity", cut);
		assert_field_ok(f.sqlstate, b, cut, "sqlstate", cut);
		assert_field_ok(f.message, b, cut, "message", cut);
		/* fields wholly before the cut are found */
		if (cut >= 21)
			cr_assert_str_eq(f.sqlstate, "42P01", "cut %zu", cut);
		if (cut >= 14)
			cr_assert_str_eq(f.severity, "ERROR", "cut %zu", cut);
		free(b);
	}
}

Test(build_parse_error, garbage)
{
	uint64_t st = 0x9e3779b97f4a7c15ull;
	for (int round = 0; round < 5000; round++) {
		size_t len = (size_t)(round % 97);
		uint8_t *b = malloc(len ? len : 1);
		cr_assert_not_null(b);
		for (size_t i = 0; i < len; i++) {
			st ^= st << 13; st ^= st >> 7; st ^= st << 17;
			/* mostly field codes and letters, some NULs, some high bytes */
			uint8_t v = (uint8_t)st;
			b[i] = round % 3 == 0 ? v : (v % 5 == 0 ? 0 : (uint8_t)("SVCMDHPFLR"[v % 10]));
		}
		struct proto_error_fields f;
		proto_parse_error(b, len, &f);
		assert_field_ok(f.severity, b, len, "severity", len);
		assert_field_ok(f.sqlstate, b, len, "sqlstate", len);
		assert_field_ok(f.message, b, len, "message", len);
		free(b);
	}
	/* no NUL at all */
	uint8_t *b = malloc(40);
	memset(b, 'M', 40);
	struct proto_error_fields f;
	proto_parse_error(b, 40, &f);
	cr_assert_str_eq(f.message, "");
	free(b);
}

/* ---- the reader ---- */

TestSuite(build_reader);

Test(build_reader, reads_in_order)
{
	static const uint8_t body[] = { 0x7f, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 'a', 'b', 0, 0, 1, 2, 3 };
	struct proto_reader r;
	proto_reader_init(&r, body, sizeof body);
	cr_assert_eq(proto_read_u8(&r), 0x7f);
	cr_assert_eq(proto_read_u16(&r), 0xbeef);
	cr_assert_eq(proto_read_u32(&r), 0xdeadbeefu);
	cr_assert_str_eq(proto_read_str(&r), "ab");
	cr_assert_str_eq(proto_read_str(&r), "");
	const uint8_t *p = proto_read_bytes(&r, 3);
	cr_assert_eq(p, body + 11);
	cr_assert_not(r.bad);
	cr_assert_eq(r.p, r.end);
	/* now at the end: everything fails */
	cr_assert_eq(proto_read_u8(&r), 0);
	cr_assert(r.bad);
}

Test(build_reader, exact_end_is_fine)
{
	static const uint8_t body[] = { 0, 0, 0, 5 };
	struct proto_reader r;
	proto_reader_init(&r, body, sizeof body);
	cr_assert_eq(proto_read_u32(&r), 5);
	cr_assert_not(r.bad);
	cr_assert_eq(proto_read_bytes(&r, 0), body + 4);
	cr_assert_not(r.bad);
}

/* Each read type, on every too-short heap body (ASan catches any overread). */
Test(build_reader, truncated_ints)
{
	for (size_t need = 1; need <= 4; need++) {
		if (need == 3)
			continue;
		for (size_t have = 0; have < need; have++) {
			uint8_t *b = malloc(have ? have : 1);
			cr_assert_not_null(b);
			memset(b, 0xff, have ? have : 1);
			struct proto_reader r;
			proto_reader_init(&r, b, have);
			uint32_t v = need == 1 ? proto_read_u8(&r) : need == 2 ? proto_read_u16(&r) : proto_read_u32(&r);
			cr_assert_eq(v, 0, "read of %zu bytes from %zu returned %u", need, have, v);
			cr_assert(r.bad, "read of %zu bytes from %zu not bad", need, have);
			free(b);
		}
	}
}

Test(build_reader, truncated_strings)
{
	static const char s[] = "search_path";
	for (size_t have = 0; have < sizeof s - 1; have++) {
		uint8_t *b = malloc(have ? have : 1);
		cr_assert_not_null(b);
		memcpy(b, s, have);
		struct proto_reader r;
		proto_reader_init(&r, b, have);
		const char *v = proto_read_str(&r);
		cr_assert_str_eq(v, "");
		cr_assert(r.bad);
		free(b);
	}
	/* a string, then a truncated one */
	static const uint8_t two[] = { 'a', 0, 'b', 'c' };
	uint8_t *b = malloc(sizeof two);
	memcpy(b, two, sizeof two);
	struct proto_reader r;
	proto_reader_init(&r, b, sizeof two);
	cr_assert_str_eq(proto_read_str(&r), "a");
	cr_assert_not(r.bad);
	cr_assert_str_eq(proto_read_str(&r), "");
	cr_assert(r.bad);
	free(b);
}

Test(build_reader, truncated_bytes)
{
	uint8_t *b = malloc(3);
	memset(b, 1, 3);
	struct proto_reader r;
	proto_reader_init(&r, b, 3);
	cr_assert_null(proto_read_bytes(&r, 4));
	cr_assert(r.bad);
	proto_reader_init(&r, b, 3);
	cr_assert_null(proto_read_bytes(&r, SIZE_MAX));
	cr_assert(r.bad);
	free(b);
}

Test(build_reader, bad_is_sticky)
{
	static const uint8_t body[] = { 1, 'x', 0, 0, 0, 0, 9 };
	struct proto_reader r;
	proto_reader_init(&r, body, 1);
	cr_assert_eq(proto_read_u8(&r), 1);
	cr_assert_eq(proto_read_u16(&r), 0);
	cr_assert(r.bad);
	/* later reads fail even if they would have fitted */
	proto_reader_init(&r, body, sizeof body);
	cr_assert_null(proto_read_bytes(&r, 100));
	cr_assert_eq(proto_read_u8(&r), 0);
	cr_assert_str_eq(proto_read_str(&r), "");
	cr_assert_eq(proto_read_u32(&r), 0);
	cr_assert_null(proto_read_bytes(&r, 0));
	cr_assert(r.bad);
}
