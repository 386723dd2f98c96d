/* tests/unit/test_tls.c: the tls/ layer on its own: two sessions, a server and
 * a client, talking through memory (no sockets), with certificates made by
 * tests/integration/certs.sh. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "tls/tls.h"

static char dir[256];

static void make_certs(void)
{
	static bool made;
	if (made)
		return;
	snprintf(dir, sizeof dir, "/tmp/pgring-tls-unit-%d", (int)getpid());
	char cmd[512];
	snprintf(cmd, sizeof cmd, "tests/integration/certs.sh %s >/dev/null 2>&1", dir);
	cr_assert_eq(system(cmd), 0, "certs.sh failed (is openssl installed?)");
	tls_init();
	made = true;
}

static void cleanup(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) {
	}
}

static char *path(const char *name)
{
	static char p[8][320];
	static int i;
	char *r = p[i++ % 8];
	snprintf(r, 320, "%s/%s", dir, name);
	return r;
}

/* One direction of the wire. */
struct pipe_buf {
	uint8_t data[1 << 16];
	uint32_t len;
};

static bool to_pipe(void *arg, const uint8_t *p, uint32_t n)
{
	struct pipe_buf *b = arg;
	cr_assert_leq(b->len + n, sizeof b->data);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return true;
}

struct pair {
	struct tls_ctx *sctx, *cctx;
	struct tls_session *srv, *cli;
	struct pipe_buf to_srv, to_cli;
};

static struct tls_ctx *server_ctx(const char *cert, const char *key, enum tls_verify v)
{
	char err[256] = "";
	struct tls_settings set = { .cert_file = path(cert), .key_file = path(key),
				    .ca_file = v != TLS_VERIFY_NONE ? path("ca.crt") : NULL, .verify = v };
	struct tls_ctx *c = tls_ctx_new(&set, true, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	return c;
}

static void pair_open(struct pair *p, struct tls_ctx *sctx, const char *client_cert)
{
	memset(p, 0, sizeof *p);
	char err[256] = "";
	struct tls_settings cs = { .ca_file = path("ca.crt") };
	if (client_cert) {
		static char crt[64], key[64];
		snprintf(crt, sizeof crt, "%s.crt", client_cert);
		snprintf(key, sizeof key, "%s.key", client_cert);
		cs.cert_file = path(crt);
		cs.key_file = path(key);
	}
	p->sctx = sctx;
	p->cctx = tls_ctx_new(&cs, false, err, sizeof err);
	cr_assert_not_null(p->cctx, "%s", err);
	p->srv = tls_session_new(p->sctx, true, to_pipe, &p->to_cli);
	p->cli = tls_session_new(p->cctx, false, to_pipe, &p->to_srv);
	cr_assert(p->srv && p->cli);
}

/* Shuttle bytes until both sides are done or one fails; the result of each. */
static void handshake(struct pair *p, enum tls_result *rs, enum tls_result *rc)
{
	*rs = *rc = TLS_WANT;
	for (int round = 0; round < 20; round++) {
		struct pipe_buf in;
		in = p->to_cli;
		p->to_cli.len = 0;
		tls_session_input(p->cli, in.data, in.len);
		if (*rc == TLS_WANT)
			*rc = tls_session_handshake(p->cli);
		in = p->to_srv;
		p->to_srv.len = 0;
		tls_session_input(p->srv, in.data, in.len);
		if (*rs == TLS_WANT)
			*rs = tls_session_handshake(p->srv);
		if ((*rs != TLS_WANT && *rc != TLS_WANT) || *rs == TLS_ERROR || *rc == TLS_ERROR)
			return;
	}
}

static void pair_close(struct pair *p)
{
	tls_session_free(p->srv);
	tls_session_free(p->cli);
	tls_ctx_free(p->sctx);
	tls_ctx_free(p->cctx);
}

TestSuite(tls, .init = make_certs, .fini = cleanup);

Test(tls, handshake_and_data_both_ways)
{
	struct pair p;
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_NONE), NULL);
	tls_session_set_peer(p.cli, TLS_VERIFY_FULL, "localhost");
	enum tls_result rs, rc;
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, TLS_DONE, "client: %s", tls_session_error(p.cli));
	cr_assert_eq(rs, TLS_DONE, "server: %s", tls_session_error(p.srv));
	cr_assert_str_eq(tls_session_version(p.srv), "TLSv1.3");
	/* Debian's wolfSSL has no AES-NI: ChaCha20-Poly1305 is preferred */
	cr_assert(strstr(tls_session_cipher(p.srv), "CHACHA20") != NULL, "%s", tls_session_cipher(p.srv));

	/* a client message, then a big server reply in several records */
	cr_assert(tls_session_write(p.cli, (const uint8_t *)"hello", 5));
	tls_session_input(p.srv, p.to_srv.data, p.to_srv.len);
	p.to_srv.len = 0;
	uint8_t out[40000];
	int n = tls_session_read(p.srv, out, sizeof out);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(out, "hello", 5), 0);
	cr_assert_eq(tls_session_read(p.srv, out, sizeof out), TLS_WANT);

	static uint8_t big[40000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	cr_assert(tls_session_write(p.srv, big, sizeof big));
	struct pipe_buf in = p.to_cli;
	p.to_cli.len = 0;
	/* feed it in small pieces, as a ring would hand over buffers */
	uint32_t got = 0;
	for (uint32_t off = 0; off < in.len; off += 1000) {
		uint32_t k = in.len - off < 1000 ? in.len - off : 1000;
		tls_session_input(p.cli, in.data + off, k);
		int r;
		while ((r = tls_session_read(p.cli, out + got, (uint32_t)sizeof out - got)) > 0)
			got += (uint32_t)r;
		cr_assert_eq(r, TLS_WANT);
		cr_assert(!tls_session_input_left(p.cli));
	}
	cr_assert_eq(got, sizeof big);
	cr_assert_eq(memcmp(out, big, sizeof big), 0);

	/* close_notify reads as TLS_CLOSED on the other side */
	tls_session_close_notify(p.cli);
	tls_session_input(p.srv, p.to_srv.data, p.to_srv.len);
	cr_assert_eq(tls_session_read(p.srv, out, sizeof out), TLS_CLOSED);
	pair_close(&p);
}

Test(tls, endpoint_hash_is_sha256_of_the_certificate)
{
	struct tls_ctx *c = server_ctx("server.crt", "server.key", TLS_VERIFY_NONE);
	const uint8_t *h;
	cr_assert_eq(tls_ctx_endpoint(c, &h), 32);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "openssl x509 -in %s -outform DER | sha256sum | cut -c1-64", path("server.crt"));
	FILE *f = popen(cmd, "r");
	char hex[80] = "";
	cr_assert(fgets(hex, sizeof hex, f));
	pclose(f);
	char mine[65];
	for (int i = 0; i < 32; i++)
		snprintf(mine + 2 * i, 3, "%02x", h[i]);
	cr_assert_eq(strncmp(mine, hex, 64), 0, "%s vs %s", mine, hex);
	tls_ctx_free(c);
}

Test(tls, client_certificate_common_name)
{
	struct pair p;
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_OPTIONAL), "client-certuser");
	enum tls_result rs, rc;
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, TLS_DONE, "%s", tls_session_error(p.srv));
	char cn[64];
	cr_assert(tls_session_peer_cn(p.srv, cn, sizeof cn));
	cr_assert_str_eq(cn, "certuser");
	pair_close(&p);

	/* optional: no certificate is fine, and there is no CN */
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_OPTIONAL), NULL);
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, TLS_DONE, "%s", tls_session_error(p.srv));
	cr_assert(!tls_session_peer_cn(p.srv, cn, sizeof cn));
	pair_close(&p);

	/* required: no certificate fails, as a certificate failure */
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_CA), NULL);
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, TLS_ERROR);
	cr_assert_eq(tls_session_failure(p.srv), TLS_FAIL_CERTIFICATE, "%s", tls_session_error(p.srv));
	pair_close(&p);

	/* a certificate from a CA we do not trust */
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_CA), "client-untrusted");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, TLS_ERROR);
	cr_assert_eq(tls_session_failure(p.srv), TLS_FAIL_CERTIFICATE, "%s", tls_session_error(p.srv));
	pair_close(&p);
}

Test(tls, verification_of_the_server)
{
	struct pair p;
	enum tls_result rs, rc;
	pair_open(&p, server_ctx("expired.crt", "expired.key", TLS_VERIFY_NONE), NULL);
	tls_session_set_peer(p.cli, TLS_VERIFY_CA, "localhost");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, TLS_ERROR);
	cr_assert_str_eq(tls_session_error(p.cli), "certificate has expired");
	/* the client's alert reaches the server: counted as a certificate failure */
	tls_session_input(p.srv, p.to_srv.data, p.to_srv.len);
	cr_assert_eq(tls_session_handshake(p.srv), TLS_ERROR);
	cr_assert_eq(tls_session_failure(p.srv), TLS_FAIL_CERTIFICATE, "%s", tls_session_error(p.srv));
	cr_assert(strstr(tls_session_error(p.srv), "alert") != NULL, "%s", tls_session_error(p.srv));
	pair_close(&p);

	pair_open(&p, server_ctx("wronghost.crt", "wronghost.key", TLS_VERIFY_NONE), NULL);
	tls_session_set_peer(p.cli, TLS_VERIFY_FULL, "localhost");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, TLS_ERROR);
	cr_assert_eq(tls_session_failure(p.cli), TLS_FAIL_CERTIFICATE, "%s", tls_session_error(p.cli));
	pair_close(&p);

	/* verify-ca does not look at the name */
	pair_open(&p, server_ctx("wronghost.crt", "wronghost.key", TLS_VERIFY_NONE), NULL);
	tls_session_set_peer(p.cli, TLS_VERIFY_CA, "localhost");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, TLS_DONE, "%s", tls_session_error(p.cli));
	pair_close(&p);
}

Test(tls, direct_tls_needs_alpn)
{
	struct pair p;
	enum tls_result rs, rc;
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_NONE), NULL);
	tls_session_set_direct(p.srv);
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, TLS_DONE, "the handshake completes: the refusal is an ErrorResponse over TLS");
	cr_assert(tls_session_alpn_missing(p.srv));
	pair_close(&p);

	/* with ALPN postgresql all is well; SSLRequest sessions need none */
	pair_open(&p, server_ctx("server.crt", "server.key", TLS_VERIFY_NONE), NULL);
	tls_session_set_direct(p.srv);
	char alpn[] = "postgresql";
	wolfSSL_UseALPN(tls_session_wolfssl(p.cli), alpn, sizeof alpn - 1, WOLFSSL_ALPN_FAILED_ON_MISMATCH);
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, TLS_DONE, "%s", tls_session_error(p.srv));
	cr_assert(!tls_session_alpn_missing(p.srv));
	pair_close(&p);
}

Test(tls, bad_settings_name_the_file_or_key)
{
	char err[256];
	struct tls_settings set = { .cert_file = path("server.crt"), .key_file = path("server2.key") };
	cr_assert_null(tls_ctx_new(&set, true, err, sizeof err));
	cr_assert(strstr(err, "the certificate's key") != NULL, "%s", err);
	set.key_file = path("nonexistent.key");
	cr_assert_null(tls_ctx_new(&set, true, err, sizeof err));
	cr_assert(strstr(err, "nonexistent.key") != NULL, "%s", err);
	set.key_file = path("server.key");
	set.protocols = "tlsv1.1";
	cr_assert_null(tls_ctx_new(&set, true, err, sizeof err));
	cr_assert(strstr(err, "tlsv1.1") != NULL, "%s", err);
	set.protocols = "tlsv1.3";
	set.tls13_ciphers = "TLS_NO_SUCH_CIPHER";
	set.ciphers = "NO-SUCH";
	cr_assert_null(tls_ctx_new(&set, true, err, sizeof err));
	cr_assert(strstr(err, "ciphers") != NULL, "%s", err);
	set.tls13_ciphers = "TLS_AES_128_GCM_SHA256";
	set.ciphers = NULL;
	struct tls_ctx *c = tls_ctx_new(&set, true, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	tls_ctx_free(c);
}
