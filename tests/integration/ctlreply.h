/* tests/integration/ctlreply.h: the one-line answer of a test tool's control
 * port (faultproxy, tunem): printf-style, cut to fit, ended by a newline.
 * Header-only: each tool is a single .c file built on its own. */
#ifndef PGRING_CTLREPLY_H
#define PGRING_CTLREPLY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

/* false: the write failed (the caller may log it) */
static bool reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool reply(int fd, const char *fmt, ...)
{
	char out[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, sizeof out - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	if ((size_t)n > sizeof out - 2)
		n = (int)sizeof out - 2;
	out[n++] = '\n';
	return write(fd, out, (size_t)n) == n;
}

#endif
