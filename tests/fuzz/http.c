/* tests/fuzz/http.c: the control port's HTTP/1.1 request parser, driven the way
 * the server drives it: core/control/http.c is included here to reach its
 * static connection state machine, one connection is given one end of a
 * socketpair, and the input arrives on the other end in arbitrary pieces.
 * Every response must be a well-formed HTTP/1.1 status line, and the
 * connection must end up closed once the client has sent everything and shut
 * its side (nothing left waiting for bytes that will not come).
 *
 * Input: 4 split sizes, then the bytes the client sends. */
#include "core/control/http.c"

#include "core/registry.h"
#include "core/stats.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* /metrics and /stats read the process-wide registry and counters */
	FUZZ_CHECK(registry_init(1) == 0 && stats_init(1) == 0);
	log_level_max = LOG_ERROR;
	return 0;
}

/* Read what the server wrote so far; the first response must begin as one
 * (the others are checked as the state machine writes them, check_out). */
static void take_responses(int fd, size_t *got)
{
	char buf[65536];
	ssize_t r;
	while ((r = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
		if (*got < 9)
			FUZZ_CHECK(memcmp(buf, &"HTTP/1.1 "[*got], (size_t)r < 9 - *got ? (size_t)r : 9 - *got) == 0);
		*got += (size_t)r;
	}
}

static void check_out(const struct conn *c)
{
	if (c->fd >= 0 && c->state == CONN_WRITE && c->outoff == 0 && c->out.len) {
		FUZZ_CHECK(c->out.len > 12 && memcmp(c->out.buf, "HTTP/1.1 ", 9) == 0);
		FUZZ_CHECK(memmem(c->out.buf, c->out.len, "\r\n\r\n", 4));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	const uint8_t *splits = data;
	data += 4;
	size -= 4;
	int sv[2];
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	static struct http_server s;   /* big (64 connections' buffers): not on the stack */
	memset(&s, 0, sizeof s);
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		s.conns[i].fd = -1;
	s.lfd = -1;
	s.head_timeout_ms = HTTP_HEAD_TIMEOUT_MS;
	s.timeout_ms = HTTP_TIMEOUT_MS;
	struct conn *c = &s.conns[0];
	c->fd = sv[0];
	c->state = CONN_READ;
	c->out = (struct strbuf)STRBUF_INIT;
	s.nconns = 1;
	int64_t now = now_ms();
	conn_phase(&s, c, now, s.head_timeout_ms);

	size_t off = 0, got = 0;
	for (unsigned i = 0; off < size && c->fd >= 0; i++) {
		size_t n = splits[i % 4] ? splits[i % 4] : size - off;
		if (n > size - off)
			n = size - off;
		ssize_t w = send(sv[1], data + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			break;   /* the server closed, or its buffer is full of what it ignored */
		off += (size_t)w;
		conn_run(&s, c, now);
		check_out(c);
		take_responses(sv[1], &got);
	}
	shutdown(sv[1], SHUT_WR);
	/* PIPELINE_BURST requests per turn: as many turns as the input could hold */
	for (size_t turn = 0; c->fd >= 0 && turn < size / 2 + 4; turn++) {
		conn_run(&s, c, now);
		check_out(c);
		take_responses(sv[1], &got);
	}
	FUZZ_CHECK(c->fd < 0);
	FUZZ_CHECK(s.nconns == 0);
	strbuf_free(&c->out);
	close(sv[1]);
	return 0;
}
