/* core/control/control.h: the control shard: config load and reload, signals, topology
 * snapshots published to the shards, and the control port. Runs on the main thread. */
#ifndef PGRING_CONTROL_H
#define PGRING_CONTROL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct config;
struct topology;

/* The first snapshot (version 1), made by main before the shards start;
 * seed: pgring -R, the predecessor's view of the nodes (health_seed), or NULL. */
struct topology *control_first_topology(struct config *cfg, const char *seed, size_t seed_len);

/* Run the control loop until shutdown; returns the process exit status. */
int control_run(struct config *cfg, const char *config_path);

/* Read-only facts for the control port (any thread). */
uint64_t control_topology_version(void);
bool control_shutting_down(void);
double control_uptime(void);        /* seconds since start */
const char *control_version(void);  /* "pgring 0.1.0" */

/* Run fn(arg) on the control thread, from shard `from`'s thread (the admin
 * console asks it what only it knows, and to reload). One queue per shard;
 * false when it is full or the control loop has not started yet: try later.
 * fn answers the shard itself (shard_post from control). */
bool control_call(int from, void (*fn)(void *arg), void *arg);
/* SHUTDOWN WAIT_FOR_CLIENTS (a control_call): stop accepting, serve on, and
 * stop once no client is left; SIGTERM still drains them. */
void control_wait_for_clients(void *arg);
/* On the control thread: reload the configuration as SIGHUP does; 0 when
 * the new one is in force, -1 when the running one was kept (logged why). */
int control_reload(void);
/* On the control thread: the admin console's SET key = value, checked and put
 * in force as a reload with the setting over the file; kept over later SETs
 * until a reload, which makes the file authoritative again. 0, or -1 with the
 * reason in err (the running configuration stays). */
int control_set(const char *key, const char *value, char *err, size_t errlen);
/* On the control thread: RESET key (NULL: RESET ALL) drops what SET put over
 * the file for it; 0, or -1 with the reason in err. */
int control_reset(const char *key, char *err, size_t errlen);

#endif
