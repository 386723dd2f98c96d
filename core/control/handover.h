/* core/control/handover.h: the control thread's side of pgring -R
 * (core/takeover.h): as the old process, it listens for a successor, sends it
 * the listening sockets, and on READY tells the shards to hand their clients
 * over, sending each record they pass it; as the new process, it says READY
 * once serving and gives each client record it receives to a shard. A
 * successor that goes away before READY changes nothing here; one that goes
 * away after it gives the listeners back to the shards. */
#ifndef PGRING_HANDOVER_H
#define PGRING_HANDOVER_H

#include <poll.h>
#include <stdbool.h>

/* What handover_process saw that control_run acts on. */
enum handover_event {
	HANDOVER_NOTHING = 0,
	HANDOVER_SUCCESSOR_READY,   /* old: give up what a successor must bind (the control port) */
	HANDOVER_PREDECESSOR_GONE,  /* new: the old process has exited */
	HANDOVER_SUCCESSOR_GONE,    /* old: the successor died after READY: take back the control port */
};

/* Start: listen for a successor on port's name (when a predecessor still
 * holds it, retried until it is free). */
void handover_start(int port);
/* New process: the socket to its predecessor (from main), READY not yet sent. */
void handover_set_predecessor(int sock);
/* New process, once serving: tell the predecessor. */
void handover_ready(void);
bool handover_taking_over(void);    /* new process, predecessor still there */
bool handover_handing_over(void);   /* old process, a successor serves */
int handover_pollfds(struct pollfd *fds, int max);
enum handover_event handover_process(const struct pollfd *fds, int n, bool shutting_down);
/* Old process: a client record from a shard (struct takeover_rec). */
void handover_send_client(void *rec);
/* Old process: an idle server connection's record from a shard. */
void handover_send_server(void *rec);
/* A pool's LISTEN connection (the GROUP record) and, on its next chain, every
 * client it listens for: sent back to back (core/takeover.h). */
void handover_send_group(void *rec);
void handover_stop(void);

#endif
