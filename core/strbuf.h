/* core/strbuf.h: a growable, always NUL-terminated byte buffer for building text
 * (metrics pages, HTTP responses). Allocation failure is sticky: appends after it
 * do nothing, so a renderer can make many calls and check `failed` once at the end. */
#ifndef PGRING_STRBUF_H
#define PGRING_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *buf;     /* NULL until the first append; then NUL-terminated */
	size_t len;    /* bytes used, not counting the NUL */
	size_t cap;    /* bytes allocated */
	bool failed;   /* an append ran out of memory; contents are truncated */
};

#define STRBUF_INIT { NULL, 0, 0, false }

/* Each returns 0, or -1 (and sets failed) if memory ran out. */
int strbuf_append(struct strbuf *sb, const void *data, size_t n);
int strbuf_puts(struct strbuf *sb, const char *s);
int strbuf_putc(struct strbuf *sb, char c);
int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Make room for n more bytes without changing the contents. */
int strbuf_reserve(struct strbuf *sb, size_t n);

/* The contents as a C string; "" while nothing was appended. */
const char *strbuf_str(const struct strbuf *sb);
/* Forget the contents but keep the memory (and clear failed). */
void strbuf_reset(struct strbuf *sb);
/* Release the memory; the buffer is then empty and reusable. */
void strbuf_free(struct strbuf *sb);

#endif
