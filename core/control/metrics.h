/* core/control/metrics.h: renders what the control port shows: process facts, per-shard
 * counters (core/stats.h) and per-pool counters (core/registry.h), as Prometheus
 * text exposition 0.0.4 or as one JSON document. Pure rendering, no sockets. */
#ifndef PGRING_METRICS_H
#define PGRING_METRICS_H

#include "core/strbuf.h"

#define METRICS_PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_JSON_TYPE "application/json"

/* Append the whole page to out. Reads the counters with relaxed loads, so a page
 * is not an atomic snapshot. Check out->failed afterwards (out of memory). */
void metrics_prometheus(struct strbuf *out);
void metrics_json(struct strbuf *out);
void metrics_json_nodes(struct strbuf *out);  /* /nodes: cluster nodes and topology versions */
void metrics_status(struct strbuf *out);      /* /status: pgrouter's plain-text dump */

/* Escaping, for anyone else who renders these formats. Bytes that are not valid
 * UTF-8 come out as U+FFFD, so the output is always valid UTF-8. */
void metrics_label_value(struct strbuf *out, const char *s);  /* inside a Prometheus "..." */
void metrics_json_string(struct strbuf *out, const char *s);  /* with the quotes */

#endif
