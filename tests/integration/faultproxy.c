/* tests/integration/faultproxy.c: a userspace TCP proxy that puts network faults
 * between pgring and PostgreSQL, for t_faults (this machine's kernel has no
 * sch_netem, so `tc qdisc ... netem` is not available).
 *
 *   faultproxy -l LISTEN_PORT -t TARGET_PORT -c CONTROL_PORT [-T TARGET_HOST] [-v]
 *
 * Every connection accepted on 127.0.0.1:LISTEN_PORT gets its own connection to
 * TARGET_HOST:TARGET_PORT (default 127.0.0.1); bytes go both ways in the chunks
 * read (at most 64 kB), at most 256 kB queued per direction (reading stops
 * there, so back-pressure reaches the sender as it would through a router).
 * "up" is pgring -> server, "down" is server -> pgring.
 *
 * Control: one command per connection to 127.0.0.1:CONTROL_PORT, one line in,
 * one line out ("ok ..." or "err ..."), e.g. from bash over /dev/tcp:
 *   delay MS             every chunk waits MS ms before it is sent on, each way
 *                        (a one-way latency; 0 ends it)
 *   stall up|down|both   a partition that heals: the direction(s) named are no
 *                        longer read or written (bytes already read wait);
 *                        with both stalled, new connections are accepted and
 *                        held, not connected to the target, until heal
 *   blackhole            a partition that never heals for what it catches: every
 *                        open connection and every one accepted until heal is
 *                        frozen for good (never read, written or closed by the
 *                        proxy; when pgring closes its side the server side is
 *                        closed too, so PostgreSQL's backend ends)
 *   heal                 ends stall, blackhole, vanish and refuse (not delay,
 *                        trickle or loss); held connections connect now; frozen
 *                        and vanished ones stay so
 *   reset                every connection is closed with a RST on both sides
 *   refuse on|off        new connections are closed with a RST when accepted
 *   trickle BPS [SKIP]   connections accepted from now on send "up" at BPS bytes
 *                        a second (at most 1000; 0 ends it for new connections)
 *                        once SKIP PostgreSQL messages have passed at full speed
 *                        (the first message is the untyped startup packet: SKIP 0
 *                        trickles the startup packet, 1 the password message, 2 a
 *                        first query after an md5 login); a slowloris client
 *                        made of a real one
 *   loss PCT             every segment a proxy socket receives, on either side,
 *                        is dropped with probability PCT % (0-100, decimals
 *                        allowed; 0 ends it), by a classic BPF socket filter
 *                        (SKF_AD_RANDOM) on each socket: TCP itself loses the
 *                        segment, so the sender's kernel retransmits it, as
 *                        across a lossy link (this kernel has no sch_netem)
 *   vanish               a peer that disappears without FIN or RST: every open
 *                        connection, and every one accepted until heal, is frozen
 *                        and its target-side socket drops every segment it gets
 *                        (the same filter at 100 %), so the target's keepalive
 *                        probes and retransmissions go unanswered; that socket is
 *                        never closed by the proxy, even when the accepted side
 *                        leaves (put the proxy in front of pgring for clients
 *                        that vanish)
 *   stats                ok conns=N open=N held=N frozen=N vanished=N accepted=N
 *                        up_bytes=N down_bytes=N queued=N trickling=N ended=N
 *                        life_min_ms=N life_max_ms=N: ended counts connections
 *                        the target ended (FIN or RST) since the last trickle
 *                        command, life_* how long after the proxy connected to
 *                        the target that came: the target's own timeout,
 *                        without the clients' start-up time
 *   quit                 exit
 *
 * What this cannot do, being above TCP: reorder or duplicate packets (each
 * side's kernel talks to the proxy's kernel, which delivers in order), or lose
 * a segment the proxy's kernel sends (loss drops what the proxy's sockets
 * receive: data both ways and the acknowledgements of what it sends). Stall and
 * blackhole are silence on a connection whose TCP peer is alive, so keepalives
 * and TCP_USER_TIMEOUT do not fire on them; vanish is the one that makes them
 * fire. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/filter.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctlreply.h"

#define MAXC 8192
#define QMAX (256 * 1024)
#define CHUNK (64 * 1024)
#define MAXCTL 16

struct chunk {
	struct chunk *next;
	uint64_t due_us;
	size_t len, off;
	unsigned char data[];
};

struct dir {
	struct chunk *head, *tail;
	size_t queued;
	bool in_eof;   /* the source sent FIN */
	bool out_shut; /* FIN passed on */
	bool want_out; /* a send hit EAGAIN: poll for POLLOUT */
	bool rst;      /* the source reset: passed on as a RST once what it sent before is */
};

enum cstate { C_FREE, C_HELD, C_CONNECTING, C_OPEN, C_FROZEN, C_VANISHED, C_NSTATES };

struct cn {
	enum cstate state;
	int fd[2];       /* 0: pgring's side, 1: the server's side */
	struct dir d[2]; /* d[0]: fd[0] -> fd[1] (up), d[1]: fd[1] -> fd[0] (down) */
	int pi[2];       /* poll indices, -1 when not polled */
	unsigned long id;
	bool vanish_on_open; /* accepted during vanish: vanishes once connected */
	bool target_ended;   /* the target's FIN or RST was counted in life_* */
	uint64_t opened_us;  /* when the connection to the target was made */
	/* trickle (up only): after the first trickle_skip messages, one byte per
	 * trickle_us; the message count comes from a small parser of the up bytes */
	uint64_t trickle_us, trickle_next_us;
	unsigned long long up_sent, parsed, trickle_from; /* ULLONG_MAX: not reached yet */
	int trickle_skip, nmsg, hdr_have;
	unsigned char hdr[5];
	unsigned long long body_left;
};

struct ctl {
	int fd;
	size_t n;
	char buf[256];
};

static struct cn conns[MAXC];
static struct ctl ctls[MAXCTL];
static int nconns_hi; /* highest used index + 1 */
static struct sockaddr_in target;
static int verbose;

static uint64_t delay_us;
static bool stalled[2], blackhole, refuse, vanish;
static uint64_t trickle_us; /* 0: off */
static int trickle_skip;
static double loss_pct;
static unsigned long n_accepted, next_id = 1;
static unsigned long life_n; /* connections the target ended, with their lifetimes */
static uint64_t life_min_us, life_max_us;
static unsigned long long bytes[2];

static void logv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logv(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("faultproxy: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void die(const char *what)
{
	fprintf(stderr, "faultproxy: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind");
	if (listen(fd, 4096) < 0)
		die("listen");
	return fd;
}

/* Close with a RST (SO_LINGER 0), or plainly. */
static void close_fd(int *fd, bool rst)
{
	if (*fd < 0)
		return;
	if (rst) {
		struct linger lg = { 1, 0 };
		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(*fd);
	*fd = -1;
}

/* Drop each segment this socket receives with probability pct % (0: no filter). */
static void set_loss(int fd, double pct)
{
	if (fd < 0)
		return;
	if (pct <= 0) {
		int zero = 0;
		setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof zero);
		return;
	}
	uint32_t thr = pct >= 100 ? 0 : (uint32_t)(pct / 100.0 * 4294967296.0);
	struct sock_filter drop_all[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_filter random_drop[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, thr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* keep */
		BPF_STMT(BPF_RET | BPF_K, 0),           /* drop */
	};
	struct sock_fprog prog = pct >= 100 ? (struct sock_fprog){ 1, drop_all } : (struct sock_fprog){ 4, random_drop };
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
		logv("SO_ATTACH_FILTER: %s", strerror(errno));
}

/* A connection to the target is up: vanish it at once if it came during
 * vanish, else the loss in force on its target side. */
static void conn_opened(struct cn *c)
{
	if (c->vanish_on_open) {
		c->state = C_VANISHED;
		set_loss(c->fd[1], 100);
		logv("conn %lu connected and vanished", c->id);
		return;
	}
	c->state = C_OPEN;
	c->opened_us = now_us();
	set_loss(c->fd[1], loss_pct);
}

/* The target ended the connection: count how long after it was made. */
static void note_target_end(struct cn *c, uint64_t now)
{
	if (c->target_ended || !c->opened_us)
		return;
	c->target_ended = true;
	uint64_t life = now - c->opened_us;
	if (!life_n++ || life < life_min_us)
		life_min_us = life;
	if (life > life_max_us)
		life_max_us = life;
}

/* Count the up messages in what was just read (the first untyped, the others
 * typed); where message number trickle_skip begins, trickling begins. */
static void trickle_parse(struct cn *c, const unsigned char *p, size_t n)
{
	while (n && c->trickle_from == ULLONG_MAX) {
		if (c->body_left) {
			size_t take = n < c->body_left ? n : (size_t)c->body_left;
			c->body_left -= take;
			c->parsed += take;
			p += take;
			n -= take;
			continue;
		}
		if (c->hdr_have == 0 && c->nmsg == c->trickle_skip) {
			c->trickle_from = c->parsed;
			return;
		}
		int hlen = c->nmsg == 0 ? 4 : 5;
		c->hdr[c->hdr_have++] = *p++;
		n--;
		c->parsed++;
		if (c->hdr_have < hlen)
			continue;
		const unsigned char *l = c->hdr + (hlen - 4);
		unsigned long long len = (unsigned long long)l[0] << 24 | (unsigned long long)l[1] << 16 |
					 (unsigned long long)l[2] << 8 | l[3];
		c->hdr_have = 0;
		c->body_left = len >= 4 ? len - 4 : 0;
		c->nmsg++;
	}
}

/* When the next up byte may go (trickling), 0 if not trickling now. */
static uint64_t trickle_wait_until(const struct cn *c)
{
	return c->trickle_us && c->up_sent >= c->trickle_from ? c->trickle_next_us : 0;
}

static void free_queue(struct dir *d)
{
	struct chunk *c = d->head;
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	memset(d, 0, sizeof *d);
}

static void conn_close(struct cn *c, bool rst, const char *why)
{
	logv("conn %lu closed (%s%s)", c->id, why, rst ? ", RST" : "");
	close_fd(&c->fd[0], rst);
	close_fd(&c->fd[1], rst);
	free_queue(&c->d[0]);
	free_queue(&c->d[1]);
	c->state = C_FREE;
}

/* Start the connection to the target; false if it failed at once. */
static bool conn_connect(struct cn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_close(c, true, "socket failed");
		return false;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd[1] = fd;
	if (connect(fd, (struct sockaddr *)&target, sizeof target) == 0) {
		conn_opened(c);
		return true;
	}
	if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		return true;
	}
	conn_close(c, true, "connect failed");
	return false;
}

static void do_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				logv("accept: %s", strerror(errno));
			return;
		}
		n_accepted++;
		if (refuse) {
			close_fd(&fd, true);
			continue;
		}
		int i;
		for (i = 0; i < MAXC && conns[i].state != C_FREE; i++)
			;
		if (i == MAXC) {
			close_fd(&fd, true);
			continue;
		}
		struct cn *c = &conns[i];
		memset(c, 0, sizeof *c);
		c->fd[0] = fd;
		c->fd[1] = -1;
		c->id = next_id++;
		c->trickle_us = trickle_us;
		c->trickle_skip = trickle_skip;
		c->trickle_from = ULLONG_MAX;
		c->vanish_on_open = vanish;
		set_loss(fd, loss_pct);
		if (i + 1 > nconns_hi)
			nconns_hi = i + 1;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (blackhole) {
			c->state = C_FROZEN;
			logv("conn %lu accepted into the blackhole", c->id);
		} else if (stalled[0] && stalled[1]) {
			c->state = C_HELD;
			logv("conn %lu accepted and held (partition)", c->id);
		} else {
			conn_connect(c);
			logv("conn %lu accepted", c->id);
		}
	}
}

/* Read what fd[k] has into d[k]'s queue; false if the pair was closed. */
static bool conn_read(struct cn *c, int k, uint64_t now)
{
	static unsigned char buf[CHUNK];
	struct dir *d = &c->d[k];
	while (!d->in_eof && d->queued < QMAX) {
		size_t want = QMAX - d->queued < CHUNK ? QMAX - d->queued : CHUNK;
		ssize_t n = recv(c->fd[k], buf, want, MSG_DONTWAIT);
		if (n > 0) {
			struct chunk *ch = malloc(sizeof *ch + (size_t)n);
			if (!ch)
				die("malloc");
			ch->next = NULL;
			ch->due_us = now + delay_us;
			ch->len = (size_t)n;
			ch->off = 0;
			memcpy(ch->data, buf, (size_t)n);
			if (k == 0 && c->trickle_us)
				trickle_parse(c, buf, (size_t)n);
			if (d->tail)
				d->tail->next = ch;
			else
				d->head = ch;
			d->tail = ch;
			d->queued += (size_t)n;
			bytes[k] += (unsigned long long)n;
			continue;
		}
		if (n == 0) {
			d->in_eof = true;
			if (k == 1)
				note_target_end(c, now);
			break;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		if (errno == EINTR)
			continue;
		/* a reset: pass it on after the bytes that came before it, as a
		 * router would (a FATAL then a RST must not become a bare RST) */
		logv("conn %lu: %s side reset", c->id, k ? "target" : "accepted");
		if (k == 1)
			note_target_end(c, now);
		d->in_eof = d->rst = true;
		break;
	}
	return true;
}

/* Send d[k]'s due chunks to fd[1-k]; false if the pair was closed. */
static bool conn_flush(struct cn *c, int k, uint64_t now)
{
	struct dir *d = &c->d[k];
	if (stalled[k])
		return true;
	if (c->d[1 - k].rst) { /* its destination reset: nothing more reaches it */
		struct dir keep = *d;
		free_queue(d);
		d->in_eof = keep.in_eof;
		d->rst = keep.rst;
		d->out_shut = true;
	}
	while (d->head && d->head->due_us <= now) {
		struct chunk *ch = d->head;
		size_t want = ch->len - ch->off;
		bool trickled = false;
		if (k == 0 && c->trickle_us) {
			if (c->up_sent >= c->trickle_from) {
				if (now < c->trickle_next_us)
					break; /* the poll timeout wakes it */
				want = 1;
				trickled = true;
			} else if (c->trickle_from - c->up_sent < want) {
				want = (size_t)(c->trickle_from - c->up_sent);
			}
		}
		ssize_t n = send(c->fd[1 - k], ch->data + ch->off, want, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				d->want_out = true;
				return true;
			}
			conn_close(c, true, k ? "send to pgring failed" : "send to server failed");
			return false;
		}
		d->want_out = false;
		if (k == 0)
			c->up_sent += (unsigned long long)n;
		if (trickled) /* on a 10 ms grid, so that many tricklers wake together */
			c->trickle_next_us = (now + c->trickle_us) / 10000 * 10000;
		ch->off += (size_t)n;
		d->queued -= (size_t)n;
		if (ch->off == ch->len) {
			d->head = ch->next;
			if (!d->head)
				d->tail = NULL;
			free(ch);
		}
	}
	if (d->in_eof && !d->head && d->rst) {
		conn_close(c, true, k ? "target side reset" : "accepted side reset");
		return false;
	}
	if (d->in_eof && !d->head && !d->out_shut) {
		shutdown(c->fd[1 - k], SHUT_WR);
		d->out_shut = true;
	}
	if (c->d[0].out_shut && c->d[1].out_shut) {
		conn_close(c, false, "both sides done");
		return false;
	}
	return true;
}

static void heal_held(void)
{
	for (int i = 0; i < nconns_hi; i++)
		if (conns[i].state == C_HELD)
			conn_connect(&conns[i]);
}

static void command(int fd, char *line)
{
	char *nl = strpbrk(line, "\r\n");
	if (nl)
		*nl = 0;
	char arg[64] = "";
	char cmd[32] = "";
	int trickle_skip_arg = 0;
	if (sscanf(line, "%31s %63s %d", cmd, arg, &trickle_skip_arg) < 1) {
		reply(fd, "err empty command");
		return;
	}
	logv("control: %s", line);
	if (strcmp(cmd, "delay") == 0) {
		char *end;
		long ms = strtol(arg, &end, 10);
		if (!*arg || *end || ms < 0 || ms > 600000) {
			reply(fd, "err delay MS");
			return;
		}
		delay_us = (uint64_t)ms * 1000;
		reply(fd, "ok delay %ld ms", ms);
	} else if (strcmp(cmd, "stall") == 0) {
		bool up = strcmp(arg, "up") == 0, down = strcmp(arg, "down") == 0, both = strcmp(arg, "both") == 0;
		if (!up && !down && !both) {
			reply(fd, "err stall up|down|both");
			return;
		}
		stalled[0] = up || both;
		stalled[1] = down || both;
		reply(fd, "ok stall %s", arg);
	} else if (strcmp(cmd, "blackhole") == 0) {
		int n = 0;
		blackhole = true;
		for (int i = 0; i < nconns_hi; i++) {
			struct cn *c = &conns[i];
			if (c->state == C_HELD || c->state == C_CONNECTING || c->state == C_OPEN) {
				c->state = C_FROZEN;
				n++;
			}
		}
		reply(fd, "ok blackhole (%d connections frozen)", n);
	} else if (strcmp(cmd, "vanish") == 0) {
		int n = 0;
		vanish = true;
		for (int i = 0; i < nconns_hi; i++) {
			struct cn *c = &conns[i];
			if (c->state == C_HELD || c->state == C_CONNECTING)
				c->vanish_on_open = true;
			else if (c->state == C_OPEN || c->state == C_FROZEN) {
				c->state = C_VANISHED;
				set_loss(c->fd[1], 100);
				n++;
			}
		}
		reply(fd, "ok vanish (%d connections vanished)", n);
	} else if (strcmp(cmd, "trickle") == 0) {
		char *end;
		long bps = strtol(arg, &end, 10);
		if (!*arg || *end || bps < 0 || bps > 1000 || trickle_skip_arg < 0) {
			reply(fd, "err trickle BPS [SKIP]");
			return;
		}
		trickle_us = bps ? (uint64_t)(1000000 / bps) : 0;
		trickle_skip = trickle_skip_arg;
		life_n = 0;
		life_min_us = life_max_us = 0;
		reply(fd, "ok trickle %ld bytes/s after %d messages (new connections)", bps, trickle_skip);
	} else if (strcmp(cmd, "loss") == 0) {
		char *end;
		double pct = strtod(arg, &end);
		if (!*arg || *end || !(pct >= 0 && pct <= 100)) {
			reply(fd, "err loss PCT");
			return;
		}
		loss_pct = pct;
		int n = 0;
		for (int i = 0; i < nconns_hi; i++) {
			struct cn *c = &conns[i];
			if (c->state == C_FREE || c->state == C_VANISHED)
				continue;
			set_loss(c->fd[0], pct);
			if (c->state == C_OPEN || c->state == C_FROZEN)
				set_loss(c->fd[1], pct);
			n++;
		}
		reply(fd, "ok loss %g %% (%d connections)", pct, n);
	} else if (strcmp(cmd, "heal") == 0) {
		stalled[0] = stalled[1] = blackhole = refuse = vanish = false;
		heal_held();
		reply(fd, "ok healed");
	} else if (strcmp(cmd, "reset") == 0) {
		int n = 0;
		for (int i = 0; i < nconns_hi; i++)
			if (conns[i].state != C_FREE) {
				conn_close(&conns[i], true, "reset command");
				n++;
			}
		reply(fd, "ok reset %d", n);
	} else if (strcmp(cmd, "refuse") == 0) {
		if (strcmp(arg, "on") && strcmp(arg, "off")) {
			reply(fd, "err refuse on|off");
			return;
		}
		refuse = strcmp(arg, "on") == 0;
		reply(fd, "ok refuse %s", arg);
	} else if (strcmp(cmd, "stats") == 0) {
		int n[C_NSTATES] = { 0 }, trickling = 0;
		size_t q = 0;
		for (int i = 0; i < nconns_hi; i++) {
			n[conns[i].state]++;
			q += conns[i].d[0].queued + conns[i].d[1].queued;
			if (conns[i].state == C_OPEN && trickle_wait_until(&conns[i]))
				trickling++;
		}
		reply(fd, "ok conns=%d open=%d held=%d frozen=%d vanished=%d accepted=%lu up_bytes=%llu down_bytes=%llu "
		      "queued=%zu trickling=%d ended=%lu life_min_ms=%llu life_max_ms=%llu",
		      n[C_HELD] + n[C_CONNECTING] + n[C_OPEN] + n[C_FROZEN] + n[C_VANISHED], n[C_OPEN], n[C_HELD],
		      n[C_FROZEN], n[C_VANISHED], n_accepted, bytes[0], bytes[1], q, trickling, life_n,
		      (unsigned long long)(life_min_us / 1000), (unsigned long long)(life_max_us / 1000));
	} else if (strcmp(cmd, "quit") == 0) {
		reply(fd, "ok bye");
		exit(0);
	} else {
		reply(fd, "err unknown command %s", cmd);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: faultproxy -l LISTEN_PORT -t TARGET_PORT -c CONTROL_PORT [-T TARGET_HOST] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int lport = 0, tport = 0, cport = 0, opt;
	const char *thost = "127.0.0.1";
	while ((opt = getopt(argc, argv, "l:t:c:T:v")) != -1) {
		switch (opt) {
		case 'l': lport = atoi(optarg); break;
		case 't': tport = atoi(optarg); break;
		case 'c': cport = atoi(optarg); break;
		case 'T': thost = optarg; break;
		case 'v': verbose++; break;
		default: usage();
		}
	}
	if (lport <= 0 || tport <= 0 || cport <= 0 || lport > 65535 || tport > 65535 || cport > 65535)
		usage();
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)tport);
	if (inet_pton(AF_INET, thost, &target.sin_addr) != 1) {
		fprintf(stderr, "faultproxy: -T takes an IPv4 address\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int lfd = listen_on(lport), cfd = listen_on(cport);
	for (int i = 0; i < MAXCTL; i++)
		ctls[i].fd = -1;
	printf("faultproxy: 127.0.0.1:%d -> %s:%d, control on 127.0.0.1:%d\n", lport, thost, tport, cport);
	fflush(stdout);

	static struct pollfd pfd[2 + MAXCTL + 2 * MAXC];
	for (;;) {
		uint64_t now = now_us();
		int np = 0, timeout = -1;
		pfd[np++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = cfd, .events = POLLIN };
		int ctl_base = np;
		for (int i = 0; i < MAXCTL; i++)
			pfd[np++] = (struct pollfd){ .fd = ctls[i].fd, .events = POLLIN };
		for (int i = 0; i < nconns_hi; i++) {
			struct cn *c = &conns[i];
			c->pi[0] = c->pi[1] = -1;
			if (c->state == C_FREE)
				continue;
			short ev[2] = { 0, 0 };
			switch (c->state) {
			case C_HELD:
				ev[0] = POLLRDHUP;
				break;
			case C_FROZEN:
				ev[0] = POLLRDHUP;
				if (c->fd[1] >= 0)
					ev[1] = POLLRDHUP;
				break;
			case C_VANISHED:
				if (c->fd[0] >= 0)
					ev[0] = POLLRDHUP;
				break;
			case C_CONNECTING:
				ev[0] = POLLRDHUP;
				ev[1] = POLLOUT;
				break;
			case C_OPEN:
				for (int k = 0; k < 2; k++) {
					struct dir *d = &c->d[k];
					if (stalled[k])
						continue;
					if (!d->in_eof && d->queued < QMAX)
						ev[k] |= POLLIN;
					if (d->head) {
						uint64_t due = d->head->due_us;
						if (k == 0 && trickle_wait_until(c) > due)
							due = trickle_wait_until(c);
						if (due > now) {
							int ms = (int)((due - now + 999) / 1000);
							if (timeout < 0 || ms < timeout)
								timeout = ms;
						} else if (d->want_out) {
							ev[1 - k] |= POLLOUT;
						} else {
							timeout = 0;
						}
					}
				}
				break;
			case C_FREE:
			case C_NSTATES:
				break;
			}
			/* a socket with nothing asked of it is left out (poll would report a
			 * hang-up on it over and over, e.g. a reset during a stall) */
			for (int k = 0; k < 2; k++) {
				c->pi[k] = np;
				pfd[np++] = (struct pollfd){ .fd = ev[k] ? c->fd[k] : -1, .events = ev[k] };
			}
		}
		int r = poll(pfd, (nfds_t)np, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		now = now_us();
		for (int i = 0; i < nconns_hi; i++) {
			struct cn *c = &conns[i];
			if (c->state == C_FREE || c->pi[0] < 0)
				continue;
			short re0 = pfd[c->pi[0]].revents, re1 = pfd[c->pi[1]].revents;
			switch (c->state) {
			case C_HELD:
				if (re0 & (POLLRDHUP | POLLHUP | POLLERR))
					conn_close(c, false, "pgring left while held");
				break;
			case C_FROZEN:
				if (re0 & (POLLRDHUP | POLLHUP | POLLERR))
					conn_close(c, false, "pgring left a frozen connection");
				else if (re1 & (POLLRDHUP | POLLHUP | POLLERR))
					close_fd(&c->fd[1], false); /* pgring is not told */
				break;
			case C_VANISHED:
				/* the accepted side may go; the target side stays, silent */
				if (re0 & (POLLRDHUP | POLLHUP | POLLERR)) {
					logv("conn %lu: the accepted side left a vanished connection", c->id);
					close_fd(&c->fd[0], false);
				}
				break;
			case C_CONNECTING:
				if (re0 & (POLLRDHUP | POLLHUP | POLLERR)) {
					conn_close(c, false, "pgring left while connecting");
				} else if (re1) {
					int err = 0;
					socklen_t len = sizeof err;
					getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
					if (err) {
						logv("conn %lu: connect: %s", c->id, strerror(err));
						conn_close(c, true, "connect failed");
					} else {
						conn_opened(c);
					}
				}
				break;
			case C_OPEN: {
				short re[2] = { re0, re1 };
				bool ok = true;
				for (int k = 0; k < 2 && ok; k++)
					if (!stalled[k] && (re[k] & (POLLIN | POLLHUP | POLLERR)))
						ok = conn_read(c, k, now);
				for (int k = 0; k < 2 && ok; k++)
					ok = conn_flush(c, k, now);
				break;
			}
			case C_FREE:
			case C_NSTATES:
				break;
			}
		}
		if (pfd[0].revents)
			do_accept(lfd);
		if (pfd[1].revents) {
			int fd;
			while ((fd = accept4(cfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				int i;
				for (i = 0; i < MAXCTL && ctls[i].fd >= 0; i++)
					;
				if (i == MAXCTL) {
					close(fd);
					continue;
				}
				ctls[i].fd = fd;
				ctls[i].n = 0;
			}
		}
		for (int i = 0; i < MAXCTL; i++) {
			struct ctl *t = &ctls[i];
			if (t->fd < 0 || !pfd[ctl_base + i].revents)
				continue;
			ssize_t n = read(t->fd, t->buf + t->n, sizeof t->buf - 1 - t->n);
			if (n > 0) {
				t->n += (size_t)n;
				t->buf[t->n] = 0;
				if (!strchr(t->buf, '\n') && t->n < sizeof t->buf - 1)
					continue;
				command(t->fd, t->buf);
			} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				continue;
			} else if (t->n > 0) {
				command(t->fd, t->buf); /* a last line without a newline */
			}
			close(t->fd);
			t->fd = -1;
		}
		/* healing may have made held connections connect (heal_held) or unstalled queues: the next
		 * round's poll covers them; trim the high-water mark */
		while (nconns_hi > 0 && conns[nconns_hi - 1].state == C_FREE)
			nconns_hi--;
	}
}
