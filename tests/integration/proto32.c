/* tests/integration/proto32.c: a raw protocol client for protocol 3.2 (libpq 15
 * cannot ask for it). Trust authentication only (the test's pgring uses it).
 *
 *   proto32 login HOST PORT USER DB MINOR [_pq_.OPTION]
 *     Sends a StartupMessage for 3.MINOR (with the option if given) and prints
 *     what comes back: "negotiate 3.N unsupported=a,b" for a
 *     NegotiateProtocolVersion, "key N" for BackendKeyData (N bytes of secret),
 *     "ready", then runs SELECT 1 and prints "select 1" when it answers.
 *   proto32 cancel HOST PORT USER DB MINOR ROUNDS
 *     Logs in, then ROUNDS times: runs SELECT pg_sleep(5) and, on new
 *     connections, sends a CancelRequest with the right PID but a wrong key
 *     (last byte flipped), then one in 3.0 form (the key's first 4 bytes), then
 *     the right one; only the right one may cancel (57014 within 3 s, the wrong
 *     ones must leave it running for 0.3 s each). Prints "cancelled N/ROUNDS
 *     slowest MS" (MS: from sending the right cancel to the query's error).
 *     With PROTO32_CANCEL_PORT set, cancel requests go to that port instead
 *     (another node of a fleet, which forwards them: [peers]).
 *   proto32 rawcancel HOST PORT PID KEYHEX
 *     Sends one CancelRequest with that PID and key (hex, 4 or 32 bytes) and
 *     prints "closed after MS" once the pooler closes the connection (10 s
 *     at most: "still open").
 * Exit 0 on success, 3 on a protocol surprise, 2 on connection errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *port_s, *cancel_port_s;

static void die(int code, const char *what)
{
	printf("FAIL %s\n", what);
	exit(code);
}

static int dial_port(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	inet_pton(AF_INET, host, &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die(2, "connect");
	return fd;
}

static int dial(void) { return dial_port(port_s); }

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void send_all(int fd, const void *b, size_t n)
{
	if (write(fd, b, n) != (ssize_t)n)
		die(2, "write");
}

/* Read exactly n bytes within ms; 0 on timeout or EOF. */
static int read_n(int fd, uint8_t *b, size_t n, int ms)
{
	size_t have = 0;
	while (have < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) <= 0)
			return 0;
		ssize_t r = read(fd, b + have, n - have);
		if (r <= 0)
			return 0;
		have += (size_t)r;
	}
	return 1;
}

/* One message: type, body (malloc'd) and its length; 0 on timeout/EOF. */
static int read_msg(int fd, uint8_t *type, uint8_t **body, uint32_t *len, int ms)
{
	uint8_t h[5];
	if (!read_n(fd, h, 5, ms))
		return 0;
	*type = h[0];
	*len = get32(h + 1) - 4;
	*body = malloc(*len + 1);
	if (*len && !read_n(fd, *body, *len, ms))
		return 0;
	return 1;
}

static const char *err_field(const uint8_t *b, uint32_t len, char code)
{
	for (uint32_t i = 0; i < len && b[i];) {
		if (b[i] == code)
			return (const char *)b + i + 1;
		i += 1 + (uint32_t)strlen((const char *)b + i + 1) + 1;
	}
	return "";
}

static void query(int fd, const char *sql)
{
	uint8_t m[256];
	size_t n = strlen(sql) + 1;
	m[0] = 'Q';
	put32(m + 1, (uint32_t)(4 + n));
	memcpy(m + 5, sql, n);
	send_all(fd, m, 5 + n);
}

struct session {
	int fd;
	uint32_t pid;
	uint8_t key[256];
	uint32_t keylen;
};

static void login(struct session *s, const char *user, const char *db, int minor, const char *opt, int verbose)
{
	uint8_t m[512];
	size_t n = 8;
	const char *kv[] = { "user", user, "database", db, opt, opt ? "1" : NULL };
	for (int i = 0; i < 6 && kv[i]; i += 2) {
		n += (size_t)sprintf((char *)m + n, "%s", kv[i]) + 1;
		n += (size_t)sprintf((char *)m + n, "%s", kv[i + 1]) + 1;
	}
	m[n++] = 0;
	put32(m, (uint32_t)n);
	put32(m + 4, (3u << 16) | (uint32_t)minor);
	s->fd = dial();
	send_all(s->fd, m, n);
	for (;;) {
		uint8_t t, *b;
		uint32_t len;
		if (!read_msg(s->fd, &t, &b, &len, 5000))
			die(2, "login: no answer");
		if (t == 'v' && verbose) {
			printf("negotiate 3.%u unsupported=", get32(b) & 0xffff);
			uint32_t k = get32(b + 4), off = 8;
			for (uint32_t i = 0; i < k; i++) {
				printf("%s%s", i ? "," : "", (const char *)b + off);
				off += (uint32_t)strlen((const char *)b + off) + 1;
			}
			printf("\n");
		} else if (t == 'K') {
			s->pid = get32(b);
			s->keylen = len - 4;
			memcpy(s->key, b + 4, s->keylen);
			if (verbose)
				printf("key %u\n", s->keylen);
		} else if (t == 'E') {
			printf("error %s %s\n", err_field(b, len, 'C'), err_field(b, len, 'M'));
			exit(3);
		} else if (t == 'Z') {
			free(b);
			if (verbose)
				printf("ready\n");
			return;
		}
		free(b);
	}
}

/* Wait for the query's ErrorResponse or ReadyForQuery; its SQLSTATE or "ok". */
static const char *finish(int fd, int ms)
{
	static char state[8];
	strcpy(state, "ok");
	for (;;) {
		uint8_t t, *b;
		uint32_t len;
		if (!read_msg(fd, &t, &b, &len, ms))
			return "timeout";
		if (t == 'E')
			snprintf(state, sizeof state, "%s", err_field(b, len, 'C'));
		free(b);
		if (t == 'Z')
			return state;
	}
}

static void cancel_with(const struct session *s, const uint8_t *key, uint32_t keylen)
{
	uint8_t m[300];
	put32(m, 12 + keylen);
	put32(m + 4, 80877102);
	put32(m + 8, s->pid);
	memcpy(m + 12, key, keylen);
	int fd = dial_port(cancel_port_s);
	send_all(fd, m, 12 + keylen);
	uint8_t c;
	read_n(fd, &c, 1, 2000);   /* the server just closes */
	close(fd);
}

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

/* Still running after ms? Nothing but asynchronous messages (ParameterStatus,
 * notices) arrives meanwhile. */
static int still_running(int fd, int ms)
{
	long end = now_ms() + ms;
	for (long left = ms; left > 0; left = end - now_ms()) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) == 0)
			return 1;
		uint8_t t, *b;
		uint32_t len;
		if (!read_msg(fd, &t, &b, &len, 1000)) {
			printf("connection closed while the query should run\n");
			return 0;
		}
		free(b);
		if (t != 'S' && t != 'N' && t != 'A') {
			printf("got message '%c' while the query should run (then: %s)\n", t, finish(fd, 1000));
			return 0;
		}
	}
	return 1;
}

static int raw_cancel(const char *pid_hex, const char *key_hex)
{
	uint8_t m[12 + 32];
	size_t klen = strlen(key_hex) / 2;
	if (klen != 4 && klen != 32)
		die(1, "the key is 4 or 32 bytes");
	put32(m, (uint32_t)(12 + klen));
	put32(m + 4, 80877102);
	put32(m + 8, (uint32_t)strtoul(pid_hex, NULL, 16));
	for (size_t i = 0; i < klen; i++)
		sscanf(key_hex + 2 * i, "%2hhx", &m[12 + i]);
	long t0 = now_ms();
	int fd = dial();
	send_all(fd, m, 12 + klen);
	uint8_t c;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 10000) <= 0 || read(fd, &c, 1) > 0) {
		printf("still open\n");
		return 3;
	}
	printf("closed after %ld\n", now_ms() - t0);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 6)
		die(1, "usage");
	host = argv[2], port_s = argv[3];
	cancel_port_s = getenv("PROTO32_CANCEL_PORT") ? getenv("PROTO32_CANCEL_PORT") : port_s;
	struct session s;
	if (strcmp(argv[1], "rawcancel") == 0)
		return raw_cancel(argv[4], argv[5]);
	if (argc < 7)
		die(1, "usage");
	int minor = atoi(argv[6]);
	if (strcmp(argv[1], "login") == 0) {
		login(&s, argv[4], argv[5], minor, argc > 7 ? argv[7] : NULL, 1);
		query(s.fd, "SELECT 1");
		const char *st = finish(s.fd, 5000);
		if (strcmp(st, "ok") != 0)
			die(3, st);
		printf("select 1\n");
		return 0;
	}
	int rounds = argc > 7 ? atoi(argv[7]) : 1, done = 0;
	long slowest = 0;
	login(&s, argv[4], argv[5], minor, NULL, 0);
	for (int r = 0; r < rounds; r++) {
		query(s.fd, "SELECT pg_sleep(5)");
		if (!still_running(s.fd, 200))
			die(3, "pg_sleep answered at once");
		uint8_t wrong[256];
		memcpy(wrong, s.key, s.keylen);
		wrong[s.keylen - 1] ^= 0x5a;
		cancel_with(&s, wrong, s.keylen);
		if (!still_running(s.fd, 300))
			die(3, "a cancel with a wrong key cancelled the query");
		if (s.keylen > 4) {
			cancel_with(&s, s.key, 4);
			if (!still_running(s.fd, 300))
				die(3, "a 3.0 cancel with the long key's first 4 bytes cancelled the query");
		}
		long t0 = now_ms();
		cancel_with(&s, s.key, s.keylen);
		const char *st = finish(s.fd, 3000);
		if (now_ms() - t0 > slowest)
			slowest = now_ms() - t0;
		if (strcmp(st, "57014") != 0) {
			printf("round %d: %s\n", r, st);
			die(3, "the right cancel did not cancel");
		}
		done++;
		/* PostgreSQL 15 signals the backend and its process group, so a second
		 * SIGINT may still be on its way: a query sent at once could be
		 * cancelled by it, directly as through pgring */
		usleep(200 * 1000);
	}
	printf("cancelled %d/%d slowest %ld\n", done, rounds, slowest);
	return 0;
}
