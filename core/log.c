/* core/log.c: the log sink. Lines look like
 *   2026-11-23 16:50:01.123 UTC [1234] LOG shard=1 c=42: message
 * with the message escaped as log.h describes, so that it stays one line. */
#include "core/log.h"

#include "core/logsys.h"
#include "proto/proto.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Thread_local int log_shard_id = -1;
int log_level_max = LOG_NOTICE;
static int log_fd = 2;
static const char *log_path;

static const char *level_names[] = { "ERROR", "WARNING", "LOG", "INFO", "DEBUG", "TRACE" };

int log_open(int verbosity, const char *file)
{
	int lvl = LOG_NOTICE + verbosity;
	if (lvl < LOG_WARNING)
		lvl = LOG_WARNING;
	if (lvl > LOG_TRACE)
		lvl = LOG_TRACE;
	log_level_max = lvl;
	log_path = (file && *file) ? file : NULL;
	if (log_path) {
		int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -1;
		log_fd = fd;
	}
	return 0;
}

void log_reopen(void)
{
	if (!log_path)
		return;
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	int old = log_fd;
	log_fd = fd;
	if (old > 2)
		close(old);
}

/* Write src[0..n) into dst[0..cap) as one line of text (see log.h): returns
 * the bytes written. An escape or character that does not fit ends the output
 * (never half of one). cut: src was cut short, so a character begun at its end
 * is dropped rather than escaped. */
static size_t log_escape(char *dst, size_t cap, const char *src, size_t n, bool cut)
{
	static const char hexd[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)src;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o == cap)
				break;
			dst[o++] = (char)c;
			i++;
			continue;
		}
		char e[2];
		const char *plain = NULL;     /* copy these k bytes as they are */
		int k = 1, esc = 0;           /* or: write e[0..2) / \xNN for each of k bytes */
		switch (c) {
		case '\\': e[0] = '\\'; e[1] = '\\'; esc = 2; break;
		case '\n': e[0] = '\\'; e[1] = 'n'; esc = 2; break;
		case '\r': e[0] = '\\'; e[1] = 'r'; esc = 2; break;
		case '\t': e[0] = '\\'; e[1] = 't'; esc = 2; break;
		default:
			if (c < 0x80)
				break;                /* other C0 controls, DEL: \xNN */
			k = proto_utf8_len(p + i, n - i);
			if (k < 0 && cut)
				return o;
			if (k <= 0)
				k = 1;                /* not UTF-8: \xNN, then look again at the next byte */
			else if (!(c == 0xC2 && p[i + 1] < 0xA0) &&   /* C1 controls (U+0085 NEL ...) */
				 !(c == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] | 1) == 0xA9))  /* U+2028/9 */
				plain = (const char *)p + i;
		}
		size_t need = plain ? (size_t)k : esc ? 2 : 4 * (size_t)k;
		if (cap - o < need)
			break;
		if (plain) {
			memcpy(dst + o, plain, need);
		} else if (esc) {
			memcpy(dst + o, e, 2);
		} else {
			for (int j = 0; j < k; j++) {
				dst[o + 4 * j] = '\\';
				dst[o + 4 * j + 1] = 'x';
				dst[o + 4 * j + 2] = hexd[p[i + j] >> 4];
				dst[o + 4 * j + 3] = hexd[p[i + j] & 15];
			}
		}
		o += need;
		i += (size_t)k;
	}
	return o;
}

void log_write(int level, unsigned long long conn, const char *fmt, ...)
{
	char msg[2048];            /* the message as formatted */
	char line[4096];           /* header + message escaped + newline */
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t mlen = m < 0 ? 0 : (size_t)m;
	bool cut = mlen >= sizeof msg;
	if (cut)
		mlen = sizeof msg - 1;

	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof line - n, ".%03d UTC [%d] ", (int)(tv.tv_usec / 1000), (int)getpid());
	int from_level = n;   /* syslog has its own time and pid */
	n += snprintf(line + n, sizeof line - n, "%s", level_names[level]);
	if (log_shard_id >= 0)
		n += snprintf(line + n, sizeof line - n, " shard=%d", log_shard_id);
	else
		n += snprintf(line + n, sizeof line - n, " control");
	if (conn)
		n += snprintf(line + n, sizeof line - n, " c=%llu", conn);
	n += snprintf(line + n, sizeof line - n, ": ");
	/* the header is short and ours: it fits */
	size_t len = (size_t)n;
	len += log_escape(line + len, sizeof line - len - 1, msg, mlen, cut);
	logsys_line(level, line + from_level, len - (size_t)from_level);
	line[len++] = '\n';
	ssize_t w = write(log_fd, line, len);
	(void)w;
}
