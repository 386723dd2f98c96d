/* tests/integration/tunem.c: a packet-level network emulator between the host and a
 * network namespace, for t_netem (this kernel has no sch_netem, and faultproxy, a TCP
 * proxy, cannot reorder or duplicate segments: its own kernel delivers in order).
 *
 *   tunem -n NETNS -a HOST_TUN -b NS_TUN -c CONTROL_PORT [-s SEED] [-v]
 *
 * Opens the TUN device HOST_TUN in the caller's namespace and NS_TUN inside
 * /var/run/netns/NETNS (the test gives them addresses and routes afterwards), and
 * passes every IP packet from one to the other through a release queue: each
 * packet is due at arrival + delay (+ jitter), may be dropped, duplicated or held
 * back so that later ones overtake it, and goes out when due. Both kernels' TCP
 * see the real thing: retransmissions, out-of-order queues, duplicate ACKs and
 * DSACKs. "up" is host -> namespace, "down" namespace -> host; every command
 * acts on both directions. At most QMAX packets wait per direction; beyond that
 * a packet is dropped (counted as overflow), as by a router's full queue.
 *
 * Control: one command per connection to 127.0.0.1:CONTROL_PORT, one line in,
 * one line out ("ok ..." or "err ..."):
 *   delay MS [JITTER_MS]  each packet is due MS ms (plus a uniform 0..JITTER)
 *                         after it arrived; a jitter reorders as netem's does
 *   loss PCT              each packet dropped with probability PCT % (decimals)
 *   dup PCT               each packet sent twice with probability PCT %
 *   reorder PCT GAP_MS    each packet held GAP_MS ms longer with probability
 *                         PCT %, so that the ones behind it overtake it
 *   partition             every packet dropped (counted as cut) until heal
 *   heal                  ends partition
 *   clear                 ends everything (packets waiting still go when due)
 *   stats                 ok up_in= up_out= up_lost= up_cut= up_dup= up_held=
 *                         up_late= up_overflow= up_queued= and the same down_*:
 *                         late counts packets that went out behind a later one
 *                         of the same flow (addresses, protocol, ports): the
 *                         reordering one TCP connection sees
 *   quit                  exit */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctlreply.h"

#define QMAX 8192
#define PKTMAX 2048
#define FLOWS 4096

struct pkt {
	uint64_t due_us;
	uint64_t seq; /* arrival order within its direction */
	uint16_t len;
	unsigned char data[PKTMAX];
};

struct stats {
	unsigned long in, out, lost, cut, dup, held, late, overflow;
};

/* one direction: packets read from `from`, written to `to` when due */
struct dir {
	const char *name;
	int from, to;
	struct pkt *slots;   /* QMAX of them */
	int free_list[QMAX]; /* indexes of free slots */
	int nfree;
	int heap[QMAX]; /* slot indexes, a min-heap on (due_us, seq) */
	int nheap;
	uint64_t next_seq;
	uint64_t flow_sent[FLOWS]; /* per flow hash: highest seq written so far, +1 */
	struct stats st;
};

static bool verbose;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t delay_us, jitter_us, reorder_gap_us;
static double loss_pct, dup_pct, reorder_pct;
static bool partitioned;

static void die(const char *what)
{
	fprintf(stderr, "tunem: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void logv(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("tunem: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* xorshift64*: repeatable from -s */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static bool chance(double pct)
{
	return pct > 0 && (double)(rnd() >> 11) / 9007199254740992.0 * 100.0 < pct;
}

/* ---------------------------------------------------------------- the release queue */

static bool before(const struct dir *d, int a, int b)
{
	const struct pkt *pa = &d->slots[a], *pb = &d->slots[b];
	return pa->due_us < pb->due_us || (pa->due_us == pb->due_us && pa->seq < pb->seq);
}

static void heap_push(struct dir *d, int slot)
{
	int i = d->nheap++;
	d->heap[i] = slot;
	while (i > 0) {
		int parent = (i - 1) / 2;
		if (!before(d, d->heap[i], d->heap[parent]))
			break;
		int t = d->heap[i];
		d->heap[i] = d->heap[parent];
		d->heap[parent] = t;
		i = parent;
	}
}

static int heap_pop(struct dir *d)
{
	int top = d->heap[0];
	d->heap[0] = d->heap[--d->nheap];
	for (int i = 0;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < d->nheap && before(d, d->heap[l], d->heap[m]))
			m = l;
		if (r < d->nheap && before(d, d->heap[r], d->heap[m]))
			m = r;
		if (m == i)
			break;
		int t = d->heap[i];
		d->heap[i] = d->heap[m];
		d->heap[m] = t;
		i = m;
	}
	return top;
}

static void enqueue(struct dir *d, const unsigned char *data, size_t len, uint64_t seq, uint64_t due)
{
	if (d->nfree == 0) {
		d->st.overflow++;
		return;
	}
	int slot = d->free_list[--d->nfree];
	struct pkt *p = &d->slots[slot];
	memcpy(p->data, data, len);
	p->len = (uint16_t)len;
	p->seq = seq;
	p->due_us = due;
	heap_push(d, slot);
}

/* one packet in: decide its fate */
static void arrive(struct dir *d, const unsigned char *data, size_t len, uint64_t now)
{
	uint64_t seq = d->next_seq++;
	d->st.in++;
	if (partitioned) {
		d->st.cut++;
		return;
	}
	if (chance(loss_pct)) {
		d->st.lost++;
		return;
	}
	uint64_t due = now + delay_us + (jitter_us ? rnd() % (jitter_us + 1) : 0);
	if (chance(reorder_pct)) {
		due += reorder_gap_us;
		d->st.held++;
	}
	enqueue(d, data, len, seq, due);
	if (chance(dup_pct)) {
		d->st.dup++;
		enqueue(d, data, len, seq, due + 100);
	}
}

/* a hash of the packet's IPv4 addresses, protocol and ports: reordering counts
 * within a flow (one TCP connection's segments and ACKs), not across flows */
static unsigned flow_of(const unsigned char *ip, size_t len)
{
	if (len < 20 || ip[0] >> 4 != 4)
		return 0;
	size_t ihl = (size_t)(ip[0] & 15) * 4;
	uint32_t h = 2166136261u;
	for (size_t i = 12; i < 20; i++)
		h = (h ^ ip[i]) * 16777619u;
	h = (h ^ ip[9]) * 16777619u;
	for (size_t i = ihl; i < ihl + 4 && i < len; i++)
		h = (h ^ ip[i]) * 16777619u;
	return h % FLOWS;
}

/* write out what is due; returns the ms until the next one is (-1: none) */
static int release(struct dir *d, uint64_t now)
{
	while (d->nheap > 0) {
		struct pkt *p = &d->slots[d->heap[0]];
		if (p->due_us > now)
			return (int)((p->due_us - now + 999) / 1000);
		int slot = heap_pop(d);
		/* a TUN write hands the packet to the stack; it fails only for a bad packet
		 * or a device that is down, and then the packet is lost like on a wire */
		if (write(d->to, p->data, p->len) < 0)
			logv("%s: write: %s", d->name, strerror(errno));
		d->st.out++;
		uint64_t *sent = &d->flow_sent[flow_of(p->data, p->len)];
		if (p->seq + 1 < *sent)
			d->st.late++;
		else
			*sent = p->seq + 1;
		d->free_list[d->nfree++] = slot;
	}
	return -1;
}

static void pump(struct dir *d, uint64_t now)
{
	unsigned char buf[PKTMAX];
	for (int i = 0; i < 256; i++) {
		ssize_t n = read(d->from, buf, sizeof buf);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			die("read tun");
		}
		if (n > 0)
			arrive(d, buf, (size_t)n, now);
	}
}

static void dir_init(struct dir *d, const char *name, int from, int to)
{
	d->name = name;
	d->from = from;
	d->to = to;
	d->slots = calloc(QMAX, sizeof *d->slots);
	if (!d->slots)
		die("calloc");
	for (int i = 0; i < QMAX; i++)
		d->free_list[i] = QMAX - 1 - i;
	d->nfree = QMAX;
}

/* ---------------------------------------------------------------- devices */

static int tun_open(const char *name)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		die("/dev/net/tun");
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die(name);
	return fd;
}

/* the device belongs to the namespace its creator was in: step in, open, step back */
static int tun_open_in(const char *netns, const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "/var/run/netns/%s", netns);
	int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int there = open(path, O_RDONLY | O_CLOEXEC);
	if (home < 0 || there < 0)
		die(path);
	if (setns(there, CLONE_NEWNET) < 0)
		die("setns");
	int fd = tun_open(name);
	if (setns(home, CLONE_NEWNET) < 0)
		die("setns back");
	close(home);
	close(there);
	return fd;
}

/* ---------------------------------------------------------------- control */

static struct dir dirs[2];

static bool parse_pct(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || v < 0 || v > 100)
		return false;
	*out = v;
	return true;
}

static bool parse_ms(const char *s, uint64_t *out_us)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > 600000)
		return false;
	*out_us = (uint64_t)v * 1000;
	return true;
}

static void stats_line(int fd)
{
	char buf[900];
	size_t n = 0;
	for (int k = 0; k < 2; k++) {
		const struct dir *d = &dirs[k];
		const struct stats *s = &d->st;
		n += (size_t)snprintf(buf + n, sizeof buf - n,
				      " %s_in=%lu %s_out=%lu %s_lost=%lu %s_cut=%lu %s_dup=%lu %s_held=%lu"
				      " %s_late=%lu %s_overflow=%lu %s_queued=%d",
				      d->name, s->in, d->name, s->out, d->name, s->lost, d->name, s->cut, d->name,
				      s->dup, d->name, s->held, d->name, s->late, d->name, s->overflow, d->name,
				      d->nheap);
	}
	reply(fd, "ok%s", buf);
}

/* returns false on quit */
static bool command(int fd, char *line)
{
	char cmd[32] = "", a[32] = "", b[32] = "";
	line[strcspn(line, "\r\n")] = 0;
	int n = sscanf(line, "%31s %31s %31s", cmd, a, b);
	logv("control: %s", line);
	if (n < 1) {
		reply(fd, "err empty command");
	} else if (strcmp(cmd, "delay") == 0) {
		uint64_t d, j = 0;
		if (n < 2 || !parse_ms(a, &d) || (n == 3 && !parse_ms(b, &j)))
			return reply(fd, "err delay MS [JITTER_MS]"), true;
		delay_us = d;
		jitter_us = j;
		reply(fd, "ok delay %s jitter %s", a, n == 3 ? b : "0");
	} else if (strcmp(cmd, "loss") == 0 || strcmp(cmd, "dup") == 0) {
		double v;
		if (n != 2 || !parse_pct(a, &v))
			return reply(fd, "err %s PCT", cmd), true;
		*(cmd[0] == 'l' ? &loss_pct : &dup_pct) = v;
		reply(fd, "ok %s %s", cmd, a);
	} else if (strcmp(cmd, "reorder") == 0) {
		double v;
		uint64_t gap;
		if (n != 3 || !parse_pct(a, &v) || !parse_ms(b, &gap))
			return reply(fd, "err reorder PCT GAP_MS"), true;
		reorder_pct = v;
		reorder_gap_us = gap;
		reply(fd, "ok reorder %s %s", a, b);
	} else if (strcmp(cmd, "partition") == 0) {
		partitioned = true;
		reply(fd, "ok partition");
	} else if (strcmp(cmd, "heal") == 0) {
		partitioned = false;
		reply(fd, "ok heal");
	} else if (strcmp(cmd, "clear") == 0) {
		partitioned = false;
		delay_us = jitter_us = reorder_gap_us = 0;
		loss_pct = dup_pct = reorder_pct = 0;
		reply(fd, "ok clear");
	} else if (strcmp(cmd, "stats") == 0) {
		stats_line(fd);
	} else if (strcmp(cmd, "quit") == 0) {
		reply(fd, "ok quit");
		return false;
	} else {
		reply(fd, "err unknown command %s", cmd);
	}
	return true;
}

/* a command connection: bash's /dev/tcp writes its line at once, so a blocking read
 * with a short timeout is enough and keeps the loop free of per-connection state */
static bool control(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return true;
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char line[256];
	size_t len = 0;
	while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
		ssize_t r = read(fd, line + len, sizeof line - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	line[len] = 0;
	bool go_on = command(fd, line);
	close(fd);
	return go_on;
}

static int control_listen(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0)
		die("control port");
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: tunem -n NETNS -a HOST_TUN -b NS_TUN -c CONTROL_PORT [-s SEED] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *netns = NULL, *host_tun = NULL, *ns_tun = NULL;
	int port = 0, opt;
	while ((opt = getopt(argc, argv, "n:a:b:c:s:v")) != -1) {
		switch (opt) {
		case 'n': netns = optarg; break;
		case 'a': host_tun = optarg; break;
		case 'b': ns_tun = optarg; break;
		case 'c': port = atoi(optarg); break;
		case 's': rng_state = strtoull(optarg, NULL, 10) * 2654435761ULL | 1; break;
		case 'v': verbose = true; break;
		default: usage();
		}
	}
	if (!netns || !host_tun || !ns_tun || port <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	int host_fd = tun_open(host_tun);
	int ns_fd = tun_open_in(netns, ns_tun);
	int lfd = control_listen(port);
	dir_init(&dirs[0], "up", host_fd, ns_fd);
	dir_init(&dirs[1], "down", ns_fd, host_fd);
	logv("%s <-> %s in %s, control on %d", host_tun, ns_tun, netns, port);

	for (;;) {
		uint64_t now = now_us();
		int timeout = -1;
		for (int k = 0; k < 2; k++) {
			int t = release(&dirs[k], now);
			if (t >= 0 && (timeout < 0 || t < timeout))
				timeout = t;
		}
		struct pollfd pfd[3] = {
			{ .fd = host_fd, .events = POLLIN },
			{ .fd = ns_fd, .events = POLLIN },
			{ .fd = lfd, .events = POLLIN },
		};
		if (poll(pfd, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		now = now_us();
		if (pfd[0].revents)
			pump(&dirs[0], now);
		if (pfd[1].revents)
			pump(&dirs[1], now);
		if (pfd[2].revents && !control(lfd))
			return 0;
	}
}
