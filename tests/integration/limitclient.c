/* tests/integration/limitclient.c: a client that runs into pgring's resource
 * limits (README, "Limits"), for t_limits. It logs in with libpq, then writes
 * raw protocol messages to libpq's socket where libpq would not send them.
 *
 *   limitclient big CONNINFO TYPE LEN
 *       Send a message of type TYPE (one character) whose length word says
 *       LEN, and 64 bytes of its body; print what comes back, one line:
 *         ERROR <SQLSTATE> <message>     an ErrorResponse (then the socket closed)
 *         EOF                            closed without a word
 *         OPEN                           nothing within 5 s, still open
 *
 *   limitclient hold CONNINFO N SIZE
 *       N connections each send all but the last byte of a SIZE-byte Query
 *       (SELECT 'xxx...'), which pgring must hold whole until it is complete;
 *       print "held N" once all is written, then wait for EOF on stdin, then
 *       send the last bytes and check each gets its answer: "answered K".
 *
 *   limitclient pipeline CONNINFO N STALL_MS
 *       Send up to N Syncs without reading a reply, stopping once writes
 *       block for STALL_MS; print "sent K", wait for EOF on stdin, then read
 *       the replies: "ready K" (ReadyForQuerys received).
 *
 *   limitclient prepare CONNINFO N SIZE [NAME]
 *       Prepare (PQprepare) N statements of some SIZE bytes each, named
 *       NAME0, NAME1, ... (NAME "" : the unnamed statement, N times); stop at
 *       the first failure. Prints "prepared K", then "ERROR <SQLSTATE>
 *       <message>" if one failed, then "alive" if SELECT 1 still works on the
 *       same connection, else "dead <message>".
 *
 * Exit: 0 done (whatever the answers; the test reads them), 1 usage, 2
 * connection failed, 3 protocol trouble. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

static void die(int code, const char *what)
{
	fprintf(stderr, "limitclient: %s\n", what);
	exit(code);
}

static PGconn *connect_to(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "limitclient: connection failed: %s", PQerrorMessage(c));
		exit(2);
	}
	return c;
}

static void write_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t k = write(fd, b, n);
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, 1000);
			continue;
		}
		if (k <= 0)
			die(3, "write failed");
		b += k;
		n -= (size_t)k;
	}
}

static void set32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read one whole message within ms; its length, 0 on EOF, -1 on timeout. */
static long read_msg(int fd, uint8_t *buf, size_t cap, int ms)
{
	size_t have = 0, want = 5;
	while (have < want) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, ms);
		if (r == 0)
			return -1;
		ssize_t k = read(fd, buf + have, want - have);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0)
			return 0;
		have += (size_t)k;
		if (have == 5) {
			want = 1 + (size_t)get32(buf + 1);
			if (want > cap)
				die(3, "reply too long");
		}
	}
	return (long)have;
}

/* An ErrorResponse as "ERROR <SQLSTATE> <message>". */
static void print_error(const uint8_t *m, long len)
{
	const char *code = "?", *msg = "?";
	for (long i = 5; i < len && m[i];) {
		char f = (char)m[i++];
		const char *v = (const char *)m + i;
		if (f == 'C')
			code = v;
		else if (f == 'M')
			msg = v;
		i += (long)strlen(v) + 1;
	}
	printf("ERROR %s %s\n", code, msg);
}

static int cmd_big(const char *conninfo, char type, uint32_t len)
{
	PGconn *c = connect_to(conninfo);
	int fd = PQsocket(c);
	uint8_t m[5 + 64];
	m[0] = (uint8_t)type;
	set32(m + 1, len);
	memset(m + 5, 'x', 64);
	write_all(fd, m, len >= 4 + 64 ? sizeof m : 1 + (size_t)len);
	static uint8_t buf[1 << 16];
	for (;;) {
		long n = read_msg(fd, buf, sizeof buf, 5000);
		if (n < 0) {
			printf("OPEN\n");
			break;
		}
		if (n == 0) {
			printf("EOF\n");
			break;
		}
		if (buf[0] == 'E') {
			print_error(buf, n);
			break;
		}
		/* anything else (a NoticeResponse): read on */
	}
	fflush(stdout);
	return 0;
}

static int cmd_hold(const char *conninfo, int n, uint32_t size)
{
	if (size < 32)
		die(1, "SIZE too small");
	PGconn **cs = calloc((size_t)n, sizeof *cs);
	uint8_t *q = malloc(size);
	if (!cs || !q)
		die(3, "no memory");
	/* Q, length, "SELECT '" x... "'" NUL: the result is one long text */
	q[0] = 'Q';
	set32(q + 1, size - 1);
	memcpy(q + 5, "SELECT length('", 15);
	memset(q + 20, 'x', size - 20);
	memcpy(q + size - 3, "')", 2);
	q[size - 1] = 0;
	for (int i = 0; i < n; i++) {
		cs[i] = connect_to(conninfo);
		write_all(PQsocket(cs[i]), q, size - 1);
	}
	printf("held %d\n", n);
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin))
		;
	int answered = 0;
	static uint8_t buf[1 << 16];
	for (int i = 0; i < n; i++) {
		int fd = PQsocket(cs[i]);
		write_all(fd, q + size - 1, 1);
		for (;;) {
			long k = read_msg(fd, buf, sizeof buf, 30000);
			if (k <= 0)
				break;
			if (buf[0] == 'E')
				print_error(buf, k);
			if (buf[0] == 'Z') {
				answered++;
				break;
			}
		}
	}
	printf("answered %d\n", answered);
	fflush(stdout);
	return 0;
}

/* Syncs without reading a reply, until writes block for `stall_ms` (or N
 * sent): print "sent K", wait for EOF on stdin, then read the replies. */
static int cmd_pipeline(const char *conninfo, long n, int stall_ms)
{
	PGconn *c = connect_to(conninfo);
	int fd = PQsocket(c);
	uint8_t chunk[5 * 1024];
	for (int i = 0; i < 1024; i++) {
		chunk[5 * i] = 'S';
		set32(chunk + 5 * i + 1, 4);
	}
	long sent = 0;
	size_t off = 0;
	while (sent < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, stall_ms) == 0)
			break;
		ssize_t k = send(fd, chunk + off, sizeof chunk - off, MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0)
			die(3, "send failed");
		off += (size_t)k;
		sent += (long)(off / 5) - (long)((off - (size_t)k) / 5);
		if (off == sizeof chunk)
			off = 0;
	}
	printf("sent %ld\n", sent);
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin))
		;
	/* finish the Sync cut in the middle, then count the ReadyForQuerys */
	if (off % 5)
		write_all(fd, chunk + off, 5 - off % 5), sent++;
	long got = 0;
	static uint8_t buf[1 << 16];
	while (got < sent) {
		long k = read_msg(fd, buf, sizeof buf, 30000);
		if (k <= 0)
			break;
		if (buf[0] == 'Z')
			got++;
	}
	printf("ready %ld\n", got);
	fflush(stdout);
	return 0;
}

static int cmd_prepare(const char *conninfo, int n, size_t size, const char *name)
{
	PGconn *c = connect_to(conninfo);
	size_t qlen = size < 32 ? 32 : size;
	char *sql = malloc(qlen + 1);
	if (!sql)
		die(3, "no memory");
	int k = 0;
	PGresult *r = NULL;
	for (; k < n; k++) {
		/* distinct texts: each is a statement of its own */
		int h = snprintf(sql, qlen + 1, "SELECT %d AS n, '", k);
		memset(sql + h, 'y', qlen - (size_t)h - 1);
		sql[qlen - 1] = '\'';
		sql[qlen] = 0;
		char nm[64];
		snprintf(nm, sizeof nm, "%s%d", name, k);
		r = PQprepare(c, *name ? nm : "", sql, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			break;
		PQclear(r);
		r = NULL;
	}
	printf("prepared %d\n", k);
	if (r) {
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		printf("ERROR %s %s\n", code ? code : "none", msg ? msg : PQerrorMessage(c));
		PQclear(r);
	}
	r = PQexec(c, "SELECT 1");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(r, 0, 0), "1"))
		printf("alive\n");
	else
		printf("dead %s\n", PQerrorMessage(c));
	PQclear(r);
	fflush(stdout);
	PQfinish(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "big") && strlen(argv[3]) == 1)
		return cmd_big(argv[2], argv[3][0], (uint32_t)strtoul(argv[4], NULL, 10));
	if (argc >= 5 && !strcmp(argv[1], "hold"))
		return cmd_hold(argv[2], atoi(argv[3]), (uint32_t)strtoul(argv[4], NULL, 10));
	if (argc >= 5 && !strcmp(argv[1], "pipeline"))
		return cmd_pipeline(argv[2], atol(argv[3]), atoi(argv[4]));
	if (argc >= 5 && !strcmp(argv[1], "prepare"))
		return cmd_prepare(argv[2], atoi(argv[3]), strtoul(argv[4], NULL, 10), argc > 5 ? argv[5] : "s");
	fprintf(stderr, "usage: limitclient big CONNINFO TYPE LEN | hold CONNINFO N SIZE | "
			"pipeline CONNINFO N STALL_MS | prepare CONNINFO N SIZE [NAME]\n");
	return 1;
}
