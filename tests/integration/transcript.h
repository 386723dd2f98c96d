/* tests/integration/transcript.h: what the transcript helpers (pipeline.c,
 * copyclient.c) share: bail out with a line the comparison shows, a watchdog that
 * prints TIMEOUT where a run hung, and one-line printing of server text. */
#ifndef PGRING_TEST_TRANSCRIPT_H
#define PGRING_TEST_TRANSCRIPT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("BROKEN: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	exit(3);
}

/* SIGALRM handler: the transcript ends with TIMEOUT at the step that hung. */
static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "TIMEOUT\n";
	fflush(stdout);
	if (write(1, m, sizeof m - 1) < 0) {
	}
	_exit(3);
}

static void one_line(const char *s)
{
	for (; s && *s; s++)
		putchar(*s == '\n' ? ' ' : *s);
}

#endif
