/* tests/unit/test_json.c: core/json.c (the JSON reader, base64) and the parts
 * of core/control/etcd.c that need no socket: the HTTP response reader
 * (chunked bodies split anywhere) and the reading of etcd's answers, on
 * responses as etcd 3.4's gateway sends them. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/control/etcd.h"
#include "core/json.h"
#include "core/strbuf.h"

static int parse(struct json_doc *d, const char *s) { return json_parse(d, s, strlen(s)); }

static void expect_str(const struct json_doc *d, int v, const char *want, size_t want_len)
{
	size_t len = 0;
	char *s = json_strdup(d, v, &len);
	cr_assert_not_null(s);
	cr_expect_eq(len, want_len);
	cr_expect(memcmp(s, want, want_len) == 0, "got [%s], want [%s]", s, want);
	free(s);
}

Test(json, nested_document)
{
	const char *text = " {\"a\": {\"b\": [1, \"two\", {\"c\": true}, [], {}], \"n\": null},\n"
			   "  \"f\": false, \"neg\": -12, \"real\": 1.5e3, \"s\": \"x\"} ";
	struct json_doc d;
	cr_assert_eq(parse(&d, text), 0);
	cr_expect(json_is(&d, 0, JSON_OBJECT));
	int a = json_get(&d, 0, "a"), b = json_get(&d, a, "b");
	cr_assert(json_is(&d, b, JSON_ARRAY));
	int e[8], n = 0;
	for (int i = json_first(&d, b); i >= 0 && n < 8; i = json_next(&d, i))
		e[n++] = i;
	cr_assert_eq(n, 5);
	int64_t v = 0;
	cr_expect(json_int64(&d, e[0], &v) && v == 1);
	expect_str(&d, e[1], "two", 3);
	cr_expect(json_bool(&d, json_get(&d, e[2], "c"), false));
	cr_expect(json_is(&d, e[3], JSON_ARRAY) && json_first(&d, e[3]) == -1);
	cr_expect(json_is(&d, e[4], JSON_OBJECT) && json_get(&d, e[4], "c") == -1);
	cr_expect(json_is(&d, json_get(&d, a, "n"), JSON_NULL));
	cr_expect_not(json_bool(&d, json_get(&d, 0, "f"), true));
	cr_expect(json_bool(&d, json_get(&d, 0, "absent"), true), "absent: the default");
	cr_expect(json_int64(&d, json_get(&d, 0, "neg"), &v) && v == -12);
	cr_expect(json_is(&d, json_get(&d, 0, "real"), JSON_NUMBER));
	cr_expect_not(json_int64(&d, json_get(&d, 0, "real"), &v), "not an integer");
	cr_expect_eq(json_get(&d, 0, "b"), -1, "members of members are not members");
	cr_expect_eq(json_get(&d, b, "a"), -1, "an array has no members");
	cr_expect_null(json_strdup(&d, b, NULL));
	cr_expect_eq(json_get(&d, -1, "a"), -1);
	cr_expect_eq(json_first(&d, -1), -1);
	cr_expect_eq(json_next(&d, -1), -1);
	expect_str(&d, json_get(&d, 0, "s"), "x", 1);
	json_free(&d);
}

Test(json, escapes)
{
	struct json_doc d;
	cr_assert_eq(parse(&d, "[\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u2603\\ud83d\\ude00\", \"a\\u0000b\","
			       " \"raw \xc3\xa9\", \"\", {\"k\\u0065y\": 7}]"), 0);
	int i = json_first(&d, 0);
	expect_str(&d, i, "q\"b\\s/\b\f\n\r\t", 11);
	expect_str(&d, i = json_next(&d, i), "\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80", 9);
	expect_str(&d, i = json_next(&d, i), "a\0b", 3);
	expect_str(&d, i = json_next(&d, i), "raw \xc3\xa9", 6);
	expect_str(&d, i = json_next(&d, i), "", 0);
	int64_t v = 0;
	cr_expect(json_int64(&d, json_get(&d, json_next(&d, i), "key"), &v) && v == 7, "an escaped member name");
	json_free(&d);
}

Test(json, int64_from_numbers_and_strings)
{
	static const struct { const char *text; bool ok; int64_t v; } cases[] = {
		{ "12", true, 12 }, { "\"12\"", true, 12 }, { "0", true, 0 }, { "\"-0\"", true, 0 },
		{ "-9223372036854775808", true, INT64_MIN }, { "\"9223372036854775807\"", true, INT64_MAX },
		{ "9223372036854775808", false, 0 }, { "\"-9223372036854775809\"", false, 0 },
		{ "\"99999999999999999999999\"", false, 0 }, { "1.0", false, 0 }, { "1e3", false, 0 },
		{ "\"\"", false, 0 }, { "\"-\"", false, 0 }, { "\"1x\"", false, 0 }, { "\" 1\"", false, 0 },
		{ "\"\\u0031\"", false, 0 }, { "true", false, 0 }, { "null", false, 0 }, { "[1]", false, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct json_doc d;
		cr_assert_eq(parse(&d, cases[i].text), 0, "%s", cases[i].text);
		int64_t v = 42;
		cr_expect_eq(json_int64(&d, 0, &v), cases[i].ok, "%s", cases[i].text);
		if (cases[i].ok)
			cr_expect_eq(v, cases[i].v, "%s", cases[i].text);
		json_free(&d);
	}
}

Test(json, malformed_refused)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "[1 2]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}",
		"{\"a\" 1}", "{1:2}", "01", "-", "-a", "1.", ".5", "1e", "1e+", "+1", "0x10", "tru", "nul", "falsey",
		"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
		"\"\\ud800\\\"", "\"a\nb\"", "\"\t\"", "{} x", "[1]]", "[1] [2]", "\"\\", "[\"\\\"]", "nan", "Infinity",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct json_doc d;
		cr_expect_eq(parse(&d, bad[i]), -1, "accepted [%s]", bad[i]);
		cr_expect_not(json_is(&d, 0, JSON_OBJECT));
		cr_expect_eq(json_get(&d, 0, "a"), -1);
		json_free(&d);
	}
	struct json_doc d;
	cr_expect_eq(json_parse(&d, "[1]\0", 4), -1, "a NUL after the value");
	cr_expect_eq(json_parse(&d, "\"a\0b\"", 5), -1, "a raw NUL in a string");
}

Test(json, depth_bounded)
{
	char deep[2 * JSON_MAX_DEPTH + 3];
	for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
		memset(deep, '[', (size_t)depth);
		memset(deep + depth, ']', (size_t)depth);
		struct json_doc d;
		cr_expect_eq(json_parse(&d, deep, 2 * (size_t)depth), depth <= JSON_MAX_DEPTH ? 0 : -1, "depth %d", depth);
	}
	static char huge[200000];   /* far deeper: refused, not a stack overflow */
	memset(huge, '{', sizeof huge);
	struct json_doc d;
	cr_expect_eq(json_parse(&d, huge, sizeof huge), -1);
}

/* Every cut of a document is refused, and so is anything one byte changed
 * makes of it that is not JSON: without a crash (ASan). */
Test(json, truncated_and_mutated)
{
	static const char doc[] = "{\"header\":{\"revision\":\"12\"},\"kvs\":[{\"key\":\"Zm9v\",\"value\":\"YmFy\","
				  "\"mod_revision\":\"3\"}],\"s\":\"\\u00e9\\n\",\"n\":[-1.5e-3,true,false,null]}";
	size_t n = sizeof doc - 1;
	struct json_doc d;
	cr_assert_eq(json_parse(&d, doc, n), 0);
	for (size_t cut = 0; cut < n; cut++) {
		char *copy = malloc(cut ? cut : 1);   /* exactly cut bytes: ASan sees any read past them */
		memcpy(copy, doc, cut);
		cr_expect_eq(json_parse(&d, copy, cut), -1, "cut at %zu", cut);
		free(copy);
	}
	static const char bytes[] = "{}[]\",:\\u0aZ-.e+ \n\x01\x80\xff";
	char *m = malloc(n);
	for (size_t i = 0; i < n; i++)
		for (size_t b = 0; b < sizeof bytes - 1; b++) {
			memcpy(m, doc, n);
			m[i] = bytes[b];
			if (json_parse(&d, m, n) == 0) {   /* still JSON: every lookup works on it */
				char *s = json_strdup(&d, json_get(&d, 0, "s"), NULL);
				int64_t v;
				json_int64(&d, json_get(&d, json_get(&d, 0, "header"), "revision"), &v);
				for (int k = json_first(&d, json_get(&d, 0, "kvs")); k >= 0; k = json_next(&d, k))
					free(json_strdup(&d, json_get(&d, k, "key"), NULL));
				free(s);
			}
		}
	free(m);
}

/* ---- base64 ---- */

static char *enc(const void *data, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(base64_encode(&sb, data, n), 0);
	char *s = strdup(strbuf_str(&sb));
	strbuf_free(&sb);
	return s;
}

Test(base64, rfc4648_vectors)
{
	static const char *const v[][2] = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
					    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *s = enc(v[i][0], strlen(v[i][0]));
		cr_expect_str_eq(s, v[i][1]);
		free(s);
		char out[16];
		ssize_t n = base64_decode(v[i][1], strlen(v[i][1]), out);
		cr_expect_eq(n, (ssize_t)strlen(v[i][0]));
		cr_expect(n >= 0 && memcmp(out, v[i][0], (size_t)n) == 0);
	}
}

Test(base64, round_trips)
{
	unsigned char data[300], back[300];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 7 + 3);
	for (size_t n = 0; n <= sizeof data; n++) {
		char *s = enc(data, n);
		cr_assert_eq(strlen(s), (n + 2) / 3 * 4);
		cr_assert_eq(base64_decode(s, strlen(s), back), (ssize_t)n);
		cr_assert(memcmp(back, data, n) == 0, "length %zu", n);
		cr_assert_eq(base64_decode(s, strlen(s), s), (ssize_t)n, "in place");
		cr_assert(memcmp(s, data, n) == 0);
		free(s);
	}
}

Test(base64, bad_input_refused)
{
	static const char *const bad[] = { "Zg=", "Zg", "Z", "Zg=a", "Z===", "====", "Zh==", "Zm9=", "Zg==Zg==",
					   "Zm9v!A==", "Zm 9v", "Zm9v\n", "Zm-_", "=Zm9" };
	char out[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_eq(base64_decode(bad[i], strlen(bad[i]), out), -1, "accepted [%s]", bad[i]);
	cr_expect_eq(base64_decode("Zm\0v", 4, out), -1, "a NUL");
}

/* ---- the HTTP response reader ---- */

/* Feed resp in the given pieces (cuts: offsets, ascending); the result and the body. */
static int feed_cut(const char *resp, size_t n, const size_t *cuts, int ncuts, struct etcd_http *h)
{
	etcd_http_init(h, 1 << 20);
	size_t at = 0;
	int rc = 0;
	for (int i = 0; i <= ncuts && rc == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		rc = etcd_http_feed(h, resp + at, to - at);
		at = to;
	}
	return rc;
}

static const char chunked_resp[] =
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	"1a\r\n{\"result\":{\"created\":true}\r\n"   /* a message cut across chunks */
	"5\r\n}\n{\"a\r\n"
	"d;ext=1\r\n\":1}\n{\"b\":2}\n\r\n"            /* two in one */
	"0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n";
static const char chunked_body[] = "{\"result\":{\"created\":true}}\n{\"a\":1}\n{\"b\":2}\n";

Test(etcd_http, chunked_split_anywhere)
{
	size_t n = sizeof chunked_resp - 1;
	struct etcd_http h;
	for (size_t a = 0; a <= n; a++)
		for (size_t b = a; b <= n; b += 7) {
			size_t cuts[2] = { a, b };
			cr_assert_eq(feed_cut(chunked_resp, n, cuts, 2, &h), 1, "cut at %zu and %zu", a, b);
			cr_assert_eq(h.status, 200);
			cr_assert_str_eq(strbuf_str(&h.body), chunked_body, "cut at %zu and %zu", a, b);
			etcd_http_free(&h);
		}
	etcd_http_init(&h, 1 << 20);   /* a byte at a time */
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(rc, 0, "complete too early, at %zu", i);
		rc = etcd_http_feed(&h, chunked_resp + i, 1);
	}
	cr_expect_eq(rc, 1);
	cr_expect_str_eq(strbuf_str(&h.body), chunked_body);
	etcd_http_free(&h);
}

Test(etcd_http, content_length_and_eof)
{
	static const char resp[] = "HTTP/1.1 404 Not Found\r\ncontent-length:  5\r\n\r\nhelloEXTRA";
	struct etcd_http h;
	cr_expect_eq(feed_cut(resp, sizeof resp - 1, NULL, 0, &h), 1);
	cr_expect_eq(h.status, 404);
	cr_expect_str_eq(strbuf_str(&h.body), "hello");
	cr_expect_eq(etcd_http_eof(&h), 1);
	etcd_http_free(&h);

	static const char empty[] = "HTTP/1.1 200 OK\nContent-Length: 0\n\n";   /* bare LFs too */
	cr_expect_eq(feed_cut(empty, sizeof empty - 1, NULL, 0, &h), 1);
	etcd_http_free(&h);

	static const char until_eof[] = "HTTP/1.0 200 OK\r\n\r\n{\"x\":1}";
	cr_expect_eq(feed_cut(until_eof, sizeof until_eof - 1, NULL, 0, &h), 0);
	cr_expect_eq(etcd_http_eof(&h), 1);
	cr_expect_str_eq(strbuf_str(&h.body), "{\"x\":1}");
	etcd_http_free(&h);

	static const char cut_short[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	cr_expect_eq(feed_cut(cut_short, sizeof cut_short - 1, NULL, 0, &h), 0);
	cr_expect_eq(etcd_http_eof(&h), -1, "closed before the whole body");
	etcd_http_free(&h);

	size_t half = sizeof chunked_resp / 2;
	cr_expect_eq(feed_cut(chunked_resp, half, NULL, 0, &h), 0);
	cr_expect_eq(etcd_http_eof(&h), -1, "closed inside a chunked body");
	etcd_http_free(&h);
}

Test(etcd_http, malformed_refused)
{
	static const char *const bad[] = {
		"HTTX/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 abc\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",   /* over the bound */
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct etcd_http h;
		cr_expect_eq(feed_cut(bad[i], strlen(bad[i]), NULL, 0, &h), -1, "accepted [%s]", bad[i]);
		etcd_http_free(&h);
	}
	struct etcd_http h;   /* a head line without end */
	etcd_http_init(&h, 1 << 20);
	char junk[1000];
	memset(junk, 'a', sizeof junk);
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++)
		rc = etcd_http_feed(&h, junk, sizeof junk);
	cr_expect_eq(rc, -1);
	etcd_http_free(&h);
	static const char big[] = "HTTP/1.1 200 OK\r\n\r\n0123456789";   /* until EOF, over a bound of 8 */
	etcd_http_init(&h, 8);
	cr_expect_eq(etcd_http_feed(&h, big, sizeof big - 1), -1);
	etcd_http_free(&h);
}

/* ---- etcd's answers (as etcd 3.4.23's gateway sent them) ---- */

static int parse_answer(enum etcd_op op, int status, const char *body, struct etcd_result *res)
{
	return etcd_parse(op, status, body, strlen(body), res);
}

#define HEADER "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"13668033151171901709\","

Test(etcd_parse, range)
{
	struct etcd_result r;
	cr_assert_eq(parse_answer(ETCD_RANGE, 200, "{" HEADER "\"revision\":\"3\",\"raft_term\":\"2\"},\"kvs\":["
				  "{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
				  "\"value\":\"YmFy\"},{\"key\":\"bGs=\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
				  "\"version\":\"1\",\"lease\":\"4111120488550009098\"}],\"count\":\"2\"}", &r), 0);
	cr_expect_eq(r.revision, 3);
	cr_assert_eq(r.n, 2);
	cr_expect_str_eq(r.kvs[0].key, "foo");
	cr_expect_str_eq(r.kvs[0].value, "bar");
	cr_expect_eq(r.kvs[0].value_len, 3);
	cr_expect_eq(r.kvs[0].mod_revision, 2);
	cr_expect_eq(r.kvs[0].lease, 0);
	cr_expect_str_eq(r.kvs[1].key, "lk");
	cr_expect_str_eq(r.kvs[1].value, "", "an empty value is left out");
	cr_expect_eq(r.kvs[1].lease, 4111120488550009098);
	etcd_result_free(&r);

	cr_assert_eq(parse_answer(ETCD_RANGE, 200, "{" HEADER "\"revision\":\"2\",\"raft_term\":\"2\"}}", &r), 0);
	cr_expect_eq(r.n, 0, "no kvs: none there");
	cr_expect_eq(r.revision, 2);
	etcd_result_free(&r);

	cr_expect_eq(parse_answer(ETCD_RANGE, 200, "{\"kvs\":[{\"key\":\"!!\"}]}", &r), -1, "bad base64");
	etcd_result_free(&r);
	cr_expect_eq(parse_answer(ETCD_RANGE, 200, "{\"kvs\":[{\"value\":\"YmFy\"}]}", &r), -1, "no key");
	etcd_result_free(&r);
	cr_expect_eq(parse_answer(ETCD_RANGE, 200, "{\"kvs\":{}}", &r), -1, "kvs not an array");
	etcd_result_free(&r);
	cr_expect_eq(parse_answer(ETCD_RANGE, 200, "[]", &r), -1);
	cr_expect_eq(parse_answer(ETCD_RANGE, 200, "{\"kvs\":[", &r), -1);
	cr_expect_str_eq(r.error, "unexpected response from etcd (HTTP 200)");
	etcd_result_free(&r);
}

Test(etcd_parse, leases_txn_and_errors)
{
	struct etcd_result r;
	cr_assert_eq(parse_answer(ETCD_GRANT, 200, "{" HEADER "\"revision\":\"2\",\"raft_term\":\"2\"},"
				  "\"ID\":\"4111120488550009096\",\"TTL\":\"5\"}", &r), 0);
	cr_expect_eq(r.lease_id, 4111120488550009096);
	cr_expect_eq(r.ttl, 5);
	cr_assert_eq(parse_answer(ETCD_KEEPALIVE, 200, "{\"result\":{" HEADER "\"revision\":\"2\",\"raft_term\":\"2\"},"
				  "\"ID\":\"4111120488550009098\",\"TTL\":\"2\"}}\n", &r), 0);
	cr_expect_eq(r.ttl, 2);
	cr_assert_eq(parse_answer(ETCD_KEEPALIVE, 200, "{\"result\":{" HEADER "\"revision\":\"4\",\"raft_term\":\"2\"},"
				  "\"ID\":\"4111120488550009098\"}}\n", &r), 0);
	cr_expect_eq(r.ttl, 0, "an expired lease: no TTL");
	cr_assert_eq(parse_answer(ETCD_TXN, 200, "{" HEADER "\"revision\":\"7\",\"raft_term\":\"2\"},\"succeeded\":true,"
				  "\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"7\"}}}]}", &r), 0);
	cr_expect(r.succeeded);
	cr_assert_eq(parse_answer(ETCD_TXN, 200, "{" HEADER "\"revision\":\"7\",\"raft_term\":\"2\"}}", &r), 0);
	cr_expect_not(r.succeeded, "false is left out");
	cr_expect_eq(parse_answer(ETCD_REVOKE, 404, "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
				  "\"etcdserver: requested lease not found\",\"code\":5}", &r), -1);
	cr_expect_str_eq(r.error, "etcd: etcdserver: requested lease not found (HTTP 404)");
	cr_expect_eq(parse_answer(ETCD_PUT, 400, "{\"error\":\"illegal base64 data at input byte 0\",\"code\":3}", &r), -1);
	cr_expect_str_eq(r.error, "etcd: unexpected response (HTTP 400)");
	cr_expect_eq(parse_answer(ETCD_PUT, 404, "", &r), -1);
	cr_expect_eq(parse_answer(ETCD_KEEPALIVE, 200, "{\"ID\":\"1\"}", &r), -1, "a stream's message is wrapped");
	cr_expect_eq(parse_answer(ETCD_KEEPALIVE, 200, "{\"error\":{\"grpc_code\":14,\"http_code\":503,"
				  "\"message\":\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}", &r), -1);
	cr_expect_str_eq(r.error, "etcd: etcdserver: no leader (HTTP 200)");
	cr_expect_eq(parse_answer(ETCD_GRANT, 200, "{\"TTL\":\"5\"}", &r), -1, "no ID");
}

Test(etcd_parse, watch_messages)
{
	struct etcd_result r;
	cr_assert_eq(parse_answer(ETCD_WATCH, 200, "{\"result\":{" HEADER "\"revision\":\"10\",\"raft_term\":\"2\"},"
				  "\"created\":true}}", &r), 0);
	cr_expect(r.created);
	cr_expect_not(r.canceled);
	cr_expect_eq(r.n, 0);
	cr_assert_eq(parse_answer(ETCD_WATCH, 200, "{\"result\":{" HEADER "\"revision\":\"10\",\"raft_term\":\"2\"},"
				  "\"events\":[{\"kv\":{\"key\":\"dzE=\",\"create_revision\":\"8\",\"mod_revision\":\"8\","
				  "\"version\":\"1\",\"value\":\"YQ==\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"dzE=\","
				  "\"mod_revision\":\"9\"}},{\"kv\":{\"key\":\"dzM=\",\"create_revision\":\"10\","
				  "\"mod_revision\":\"10\",\"version\":\"1\"}}]}}", &r), 0);
	cr_expect_not(r.created);
	cr_assert_eq(r.n, 3);
	cr_expect_eq(r.revision, 10);
	cr_expect_not(r.deleted[0]);
	cr_expect_str_eq(r.kvs[0].key, "w1");
	cr_expect_str_eq(r.kvs[0].value, "a");
	cr_expect(r.deleted[1]);
	cr_expect_str_eq(r.kvs[1].key, "w1");
	cr_expect_eq(r.kvs[1].mod_revision, 9);
	cr_expect_not(r.deleted[2]);
	cr_expect_str_eq(r.kvs[2].value, "", "a put of an empty value");
	etcd_result_free(&r);
	cr_assert_eq(parse_answer(ETCD_WATCH, 200, "{\"result\":{" HEADER "\"revision\":\"7\",\"raft_term\":\"2\"},"
				  "\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,\"cancel_reason\":"
				  "\"mvcc: watcher range is empty\"}}", &r), 0);
	cr_expect(r.canceled);
	cr_expect_str_eq(r.error, "watch canceled: mvcc: watcher range is empty");
	cr_assert_eq(parse_answer(ETCD_WATCH, 200, "{\"result\":{\"header\":{\"cluster_id\":\"15118495548433857066\","
				  "\"member_id\":\"13668033151171901709\",\"raft_term\":\"2\"},\"canceled\":true,"
				  "\"compact_revision\":\"33\"}}", &r), 0);
	cr_expect(r.canceled);
	cr_expect_str_eq(r.error, "watch canceled: compacted at revision 33");
	cr_expect_eq(parse_answer(ETCD_WATCH, 200, "{\"result\":{\"events\":[{\"kv\":{\"key\":\"d\"}}]}}", &r), -1);
	etcd_result_free(&r);
}

/* A watch's stream as the gateway sends it, cut anywhere: the reader's body
 * splits at newlines into the messages, each as etcd_parse reads them. */
Test(etcd_parse, watch_stream_split_anywhere)
{
	static const char stream[] =
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
		"25\r\n{\"result\":{\"header\":{\"revision\":\"9\"},\r\n"
		"32\r\n\"created\":true}}\n{\"result\":{\"events\":[{\"kv\":{\"key\"\r\n"
		"3d\r\n:\"YQ==\",\"value\":\"MQ==\"}}]}}\n{\"result\":{\"events\":[{\"type\":\"DEL\r\n"
		"31\r\nETE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"11\"}}]}}\n\r\n";
	size_t n = sizeof stream - 1;
	for (size_t a = 0; a <= n; a++) {
		struct etcd_http h;
		size_t cuts[1] = { a };
		cr_assert_eq(feed_cut(stream, n, cuts, 1, &h), 0, "cut at %zu", a);
		const char *s = strbuf_str(&h.body), *nl;
		int msgs = 0, puts = 0, dels = 0;
		for (; (nl = strchr(s, '\n')); s = nl + 1, msgs++) {
			struct etcd_result r;
			cr_assert_eq(etcd_parse(ETCD_WATCH, 200, s, (size_t)(nl - s), &r), 0, "message %d, cut at %zu", msgs, a);
			for (int i = 0; i < r.n; i++) {
				cr_expect_str_eq(r.kvs[i].key, "a");
				dels += r.deleted[i];
				puts += !r.deleted[i] && strcmp(r.kvs[i].value, "1") == 0;
			}
			etcd_result_free(&r);
		}
		cr_expect_eq(msgs, 3);
		cr_expect_eq(puts, 1);
		cr_expect_eq(dels, 1);
		cr_expect_eq(*s, '\0');
		etcd_http_free(&h);
	}
}

/* ---- the client against a stand-in for etcd on a local socket ---- */

struct fake {
	int lfd, fd;
	struct strbuf req;     /* what the client sent */
	const char *answer;    /* NULL: never answers */
	bool answered;
};

static struct etcd *fake_open(struct fake *f, const char *answer, double timeout)
{
	*f = (struct fake){ .fd = -1, .req = STRBUF_INIT, .answer = answer };
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	cr_assert(f->lfd >= 0 && bind(f->lfd, (struct sockaddr *)&a, len) == 0 && listen(f->lfd, 4) == 0);
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
	char ep[32];
	snprintf(ep, sizeof ep, "127.0.0.1:%d", ntohs(a.sin_port));
	const char *eps[] = { ep };
	struct etcd *e = etcd_new(eps, 1, timeout);
	cr_assert_not_null(e);
	return e;
}

static void fake_close(struct fake *f, struct etcd *e)
{
	etcd_free(e);
	if (f->fd >= 0)
		close(f->fd);
	close(f->lfd);
	strbuf_free(&f->req);
}

/* The stand-in's turn: take the connection and the request; once the whole
 * request is in, the answer. */
static void fake_step(struct fake *f)
{
	char buf[4096];
	ssize_t n;
	if (f->fd < 0 && (f->fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK)) < 0)
		return;
	while ((n = read(f->fd, buf, sizeof buf)) > 0)
		strbuf_append(&f->req, buf, (size_t)n);
	const char *head_end = strstr(strbuf_str(&f->req), "\r\n\r\n"), *cl = strstr(strbuf_str(&f->req), "Content-Length: ");
	if (f->answer && !f->answered && head_end && cl && strlen(head_end + 4) >= strtoul(cl + 16, NULL, 10)) {
		cr_assert_eq(write(f->fd, f->answer, strlen(f->answer)), (ssize_t)strlen(f->answer));
		f->answered = true;
	}
}

/* The control loop, until *done or ms pass. */
static void drive(struct etcd *e, struct fake *f, const bool *done, int ms)
{
	for (int i = 0; i < ms / 5 && !*done; i++) {
		struct pollfd fds[8];
		int n = etcd_pollfds(e, fds, 8);
		poll(fds, (nfds_t)n, 5);
		fake_step(f);
		etcd_process(e, fds, n);
	}
}

static const char *sent_body(const struct fake *f) { return strstr(strbuf_str(&f->req), "\r\n\r\n") + 4; }

struct outcome {
	bool done, ok, created;
	int n, events, broken;
	struct etcd_watch *w;
};

static void on_cas(void *ctx, bool ok, bool created)
{
	struct outcome *o = ctx;
	*o = (struct outcome){ .done = true, .ok = ok, .created = created };
}

Test(etcd_client, request_sent_and_answer_delivered)
{
	struct fake f;
	struct etcd *e = fake_open(&f, "HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n"
				   "{\"header\":{\"revision\":\"7\"},\"succeeded\":true}", 2);
	struct outcome o = { 0 };
	cr_assert(etcd_put_if_absent(e, "/lock", "me", 7, on_cas, &o));
	cr_expect_not(o.done, "never called from the request's own call");
	cr_expect_eq(etcd_next_timeout(e), 0, "a new request starts at once");
	drive(e, &f, &o.done, 2000);
	cr_assert(o.done && o.ok && o.created);
	cr_expect(etcd_up(e));
	cr_expect(strncmp(strbuf_str(&f.req), "POST /v3/kv/txn HTTP/1.1\r\n", 26) == 0, "%s", strbuf_str(&f.req));
	cr_expect_str_eq(sent_body(&f), "{\"compare\":[{\"key\":\"L2xvY2s=\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
			 "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"L2xvY2s=\",\"value\":\"bWU=\","
			 "\"lease\":\"7\"}}]}");
	cr_expect_eq(etcd_next_timeout(e), -1, "nothing in flight");
	fake_close(&f, e);
}

static void on_range(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision)
{
	struct outcome *o = ctx;
	(void)kvs;
	(void)revision;
	*o = (struct outcome){ .done = true, .ok = ok, .n = n };
}

Test(etcd_client, prefix_range_end)
{
	static const char *const cases[][2] = {
		{ "a\xff", "{\"key\":\"Yf8=\",\"range_end\":\"Yg==\"}" },     /* a\xff .. b */
		{ "/x/", "{\"key\":\"L3gv\",\"range_end\":\"L3gw\"}" },        /* /x/ .. /x0 */
		{ "", "{\"key\":\"AA==\",\"range_end\":\"AA==\"}" },           /* everything */
		{ "\xff", "{\"key\":\"/w==\",\"range_end\":\"AA==\"}" },       /* \xff .. the end */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake f;
		struct etcd *e = fake_open(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 2);
		struct outcome o = { 0 };
		cr_assert(etcd_range_prefix(e, cases[i][0], on_range, &o));
		drive(e, &f, &o.done, 2000);
		cr_expect(o.done && o.ok && o.n == 0);
		cr_expect_str_eq(sent_body(&f), cases[i][1]);
		fake_close(&f, e);
	}
}

Test(etcd_client, timeout_and_refusal)
{
	struct fake f;
	struct etcd *e = fake_open(&f, NULL, 0.2);   /* accepts, never answers */
	struct outcome o = { 0 };
	cr_assert(etcd_range_prefix(e, "/", on_range, &o));
	drive(e, &f, &o.done, 2000);
	cr_expect(o.done && !o.ok);
	cr_expect_not(etcd_up(e));
	cr_expect(strstr(etcd_last_error(e), "no answer within 0.2 s"), "%s", etcd_last_error(e));
	fake_close(&f, e);

	const char *eps[] = { "127.0.0.1:1", "[::1]:1" };   /* nobody listens on port 1 */
	e = etcd_new(eps, 2, 2);
	o = (struct outcome){ 0 };
	cr_assert(etcd_range_prefix(e, "/", on_range, &o));
	for (int i = 0; i < 400 && !o.done; i++) {
		struct pollfd fds[8];
		int n = etcd_pollfds(e, fds, 8);
		poll(fds, (nfds_t)n, 5);
		etcd_process(e, fds, n);
	}
	cr_expect(o.done && !o.ok);
	cr_expect(strstr(etcd_last_error(e), "connect: "), "%s", etcd_last_error(e));
	etcd_free(e);

	const char *bad[] = { "localhost", "example.com:2379", "127.0.0.1:0", "127.0.0.1:70000", "[::1]2379", "/tmp:1" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_null(etcd_new(&bad[i], 1, 1), "accepted %s", bad[i]);
	const char *good[] = { "localhost:2379", "http://127.0.0.1:2379/", "[::1]:2379", "::1:2379" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct etcd *g = etcd_new(&good[i], 1, 1);
		cr_expect_not_null(g, "refused %s", good[i]);
		etcd_free(g);
	}
}

static void on_event(void *ctx, bool is_put, const struct etcd_kv *kv, int64_t revision)
{
	struct outcome *o = ctx;
	cr_expect(is_put && strcmp(kv->key, "a") == 0 && revision == 12);
	if (++o->events == 1)
		etcd_watch_cancel(o->w);   /* from inside its own callback */
}

static void on_broken(void *ctx) { ((struct outcome *)ctx)->broken++; }

Test(etcd_client, watch_canceled_from_its_callback)
{
	struct fake f;
	struct etcd *e = fake_open(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				   "27\r\n{\"result\":{\"created\":true}}\n{\"result\":{\r\n"
				   "82\r\n\"header\":{\"revision\":\"12\"},\"events\":[{\"kv\":{\"key\":\"YQ==\"}},"
				   "{\"kv\":{\"key\":\"YQ==\"}}]}}\n{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"}}]}}\n\r\n", 2);
	struct outcome o = { 0 };
	cr_assert_not_null(o.w = etcd_watch_prefix(e, "a", 5, on_event, on_broken, &o));
	bool never = false;
	drive(e, &f, &never, 300);
	cr_expect_eq(o.events, 1, "no event after the cancel");
	cr_expect_eq(o.broken, 0, "a canceled watch does not break");
	cr_expect(strstr(sent_body(&f), "\"start_revision\":\"5\""), "%s", sent_body(&f));
	cr_expect(strncmp(strbuf_str(&f.req), "POST /v3/watch ", 15) == 0);
	cr_expect_eq(etcd_pollfds(e, (struct pollfd[4]){ 0 }, 4), 0, "its socket is closed");
	fake_close(&f, e);
}

static void broken_too(void *ctx) { ((struct outcome *)ctx)->broken++; }

static void count_event(void *ctx, bool is_put, const struct etcd_kv *kv, int64_t revision)
{
	(void)is_put;
	(void)kv;
	(void)revision;
	((struct outcome *)ctx)->events++;
}

Test(etcd_client, watch_breaks_when_the_stream_ends)
{
	struct fake f;
	struct etcd *e = fake_open(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				   "1c\r\n{\"result\":{\"created\":true}}\n\r\n0\r\n\r\n", 2);
	struct outcome o = { 0 };
	cr_assert_not_null(etcd_watch_prefix(e, "a", 0, count_event, broken_too, &o));
	bool never = false;
	drive(e, &f, &never, 300);
	cr_expect_eq(o.broken, 1, "broken, once");
	cr_expect_eq(o.events, 0);
	cr_expect(strstr(etcd_last_error(e), "the watch stream ended"), "%s", etcd_last_error(e));
	fake_close(&f, e);
}
