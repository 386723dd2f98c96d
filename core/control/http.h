/* core/control/http.h: the control port's HTTP/1.1 server (/metrics, /stats, /health).
 * Non-blocking and driven by the caller's poll(2) loop on one thread: no threads,
 * no timers of its own. Bounded: HTTP_HEAD_MAX per request head and HTTP_MAX_CONNS
 * connections. Slow clients cannot keep a health check waiting: a request head
 * must be complete HTTP_HEAD_TIMEOUT_MS after accept (after its first byte on a
 * kept-alive connection), whatever trickles in meanwhile; a connection idle between
 * requests or not taking its response is closed after HTTP_TIMEOUT_MS; and when
 * every slot is taken a new connection evicts the one that has made the least
 * progress rather than wait in the backlog. A request is answered as soon as its
 * head is complete. */
#ifndef PGRING_HTTP_H
#define PGRING_HTTP_H

#include <stddef.h>

struct pollfd;
struct http_server;

#define HTTP_HEAD_MAX 8192
#define HTTP_MAX_CONNS 64
#define HTTP_MAX_POLLFDS (1 + HTTP_MAX_CONNS)  /* most http_pollfds ever fills */
#define HTTP_HEAD_TIMEOUT_MS 2000  /* accept or first byte -> complete request head */
#define HTTP_TIMEOUT_MS 10000      /* keep-alive idle; response not taken; close not seen */

/* Listen on addr:port. addr is an IPv4/IPv6 literal or a host name such as
 * "localhost" (the first address that binds is used); NULL, "" or "*" mean every
 * IPv4 address. port 0 picks a free port (see http_port). NULL on failure, with a
 * message in err. */
struct http_server *http_open(const char *addr, int port, char *err, size_t errlen);
/* The port actually bound. */
int http_port(const struct http_server *s);

/* Fill fds (at most max entries) with what the server waits for; returns how many.
 * Pass those same entries to http_process after poll(2) returns, and call
 * http_process after every wake-up even if none of them fired: that is when
 * stalled connections are timed out. */
int http_pollfds(struct http_server *s, struct pollfd *fds, int max);
void http_process(struct http_server *s, const struct pollfd *fds, int n);
/* Milliseconds until the next connection deadline, -1 if none: a bound for the
 * caller's poll timeout when it has nothing sooner to wake up for. */
int http_next_timeout(const struct http_server *s);

/* Change HTTP_HEAD_TIMEOUT_MS and HTTP_TIMEOUT_MS for this server (tests). */
void http_set_timeouts(struct http_server *s, int head_ms, int idle_ms);

/* Close the listener and every connection, and free s. NULL is fine. */
void http_close(struct http_server *s);

#endif
