/* core/log.h: one line per event, with time, level, shard and connection id.
 * Each line is written with a single write(2), so threads never interleave. */
#ifndef PGRING_LOG_H
#define PGRING_LOG_H

enum log_level {
	LOG_ERROR = 0,   /* always shown */
	LOG_WARNING,     /* always shown */
	LOG_NOTICE,      /* shown unless -q: start, reload, shutdown */
	LOG_INFO,        /* -v: connections, logins, pool changes */
	LOG_DEBUG,       /* -vv: state changes */
	LOG_TRACE,       /* -vvv: every message */
};

/* Shard of the calling thread (-1: control shard); set once by each thread. */
extern _Thread_local int log_shard_id;
extern int log_level_max;

/* verbosity: 0 default, >0 more (-v), <0 quieter (-q). file NULL = stderr. 0 or -1. */
int log_open(int verbosity, const char *file);
/* Reopen the log file (after rotation, SIGHUP). */
void log_reopen(void);

/* Every line is one line, whatever the arguments hold (a client's user or
 * database name, a server's message): the formatted message is written with
 *   \n \r \t        for newline, carriage return, tab
 *   \\              for a backslash (so that an escape is never ambiguous)
 *   \xNN            (lower case hex) for every other C0 control character and
 *                   DEL, for each byte that is not part of a valid UTF-8
 *                   character (RFC 3629: overlong forms, UTF-16 surrogates and
 *                   cut-off sequences are not), and for each byte of the C1
 *                   controls U+0080..U+009F (NEL) and of U+2028/U+2029, which
 *                   some log readers take for line breaks;
 * everything else (printable ASCII, valid UTF-8) as it is. Unescaping gives the
 * message's bytes back. A message longer than about 2 kB is cut, between
 * characters and never inside an escape. No allocation: stack buffers. */
void log_write(int level, unsigned long long conn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_enabled(level) ((level) <= log_level_max)
#define LOGF(level, conn, ...) \
	do { if (log_enabled(level)) log_write((level), (conn), __VA_ARGS__); } while (0)
#define log_error(...)   LOGF(LOG_ERROR, 0, __VA_ARGS__)
#define log_warning(...) LOGF(LOG_WARNING, 0, __VA_ARGS__)
#define log_notice(...)  LOGF(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...)    LOGF(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)   LOGF(LOG_DEBUG, 0, __VA_ARGS__)

/* An event that may come by the thousand (refused clients, failed connects) is
 * logged at most once a second, with how often it happened since. */
struct log_rate {
	unsigned long long last_us;
	int unlogged;
};
/* Count `add` more; returns how many to report now, or 0 to stay quiet. Call it
 * with add = 0 from a periodic tick so the last ones are reported too. */
static inline int log_rate_due(struct log_rate *r, unsigned long long now_us, int add)
{
	r->unlogged += add;
	if (!r->unlogged || now_us - r->last_us < 1000000)
		return 0;
	int n = r->unlogged;
	r->unlogged = 0;
	r->last_us = now_us;
	return n;
}

/* An invariant of the code (not of its input): checked in the sanitizer build
 * (-DPGRING_CHECKS, make test-asan), compiled out elsewhere. */
#ifdef PGRING_CHECKS
#include <assert.h>
#define INVARIANT(x) assert(x)
#else
#define INVARIANT(x) ((void)sizeof(x))
#endif

#endif
