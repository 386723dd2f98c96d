/* core/control/promote.h: the SQL of pgring's own failover (auto_failover,
 * core/control/fleet.c): promoting a replica, pointing another at the new
 * primary, fencing a former primary. Each is a job on a thread of its own,
 * since its statements block (pg_promote waits for the promotion); the
 * control thread polls the job's state and never waits for it. */
#ifndef PGRING_PROMOTE_H
#define PGRING_PROMOTE_H

#include <stdbool.h>
#include <stddef.h>

enum promote_kind {
	PROMOTE_PROMOTE,   /* SELECT pg_promote(): out of recovery, a primary */
	PROMOTE_REPOINT,   /* primary_conninfo's host and port become the new primary's; reload */
	PROMOTE_FENCE,     /* default_transaction_read_only = on, reload, standby.signal written (a
			    * standby from its next restart), its client sessions terminated */
};

enum promote_state { PROMOTE_RUNNING, PROMOTE_OK, PROMOTE_FAILED };

struct promote_job;

/* Start kind on the node at host:port, logged in with the health checks'
 * user, password and database; for PROMOTE_REPOINT, new_host:new_port is the
 * new primary. NULL: no memory or no thread. */
struct promote_job *promote_start(enum promote_kind kind, const char *host, int port, const char *new_host,
				  int new_port, const char *user, const char *password, const char *dbname);
/* Where the job is; into why, why it failed (PROMOTE_FAILED), or what an
 * ended job could not do ("" if nothing). */
enum promote_state promote_state(const struct promote_job *j, char *why, size_t len);
/* Done with it: freed now if it ended, else by its thread when it does. */
void promote_release(struct promote_job *j);

#endif
