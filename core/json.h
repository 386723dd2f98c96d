/* core/json.h: a small JSON reader for the control thread's clients (etcd's
 * gateway): a document checked whole once, then read in place, its values
 * named by their offset in the text; plus base64, which that gateway uses for
 * every key and value. Strict: malformed input is refused, never half-read. */
#ifndef PGRING_JSON_H
#define PGRING_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct strbuf;

#define JSON_MAX_DEPTH 32   /* arrays and objects nested deeper are refused */

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_doc {
	const char *text;   /* the caller's, not copied: keep it while the document is used */
	int len;            /* 0 after a failed json_parse: every lookup then finds nothing */
};

/* Check len bytes of text: one value, white space around it allowed. 0, or -1
 * (malformed, nested too deep, or over INT_MAX / 2 bytes). Allocates nothing;
 * json_free is there for symmetry. */
int json_parse(struct json_doc *d, const char *text, size_t len);
void json_free(struct json_doc *d);

/* A value is named by an int, 0 the root; -1 is "absent", which every function
 * below takes (and answers with -1, false or NULL). */
int json_get(const struct json_doc *d, int obj, const char *name);   /* a member's value */
/* An array's elements: for (i = json_first(d, a); i >= 0; i = json_next(d, i)). */
int json_first(const struct json_doc *d, int arr);
int json_next(const struct json_doc *d, int i);
bool json_is(const struct json_doc *d, int v, enum json_type t);
/* A string, unescaped (\u escapes as UTF-8), in memory of its own, NUL-terminated
 * (len, if not NULL, also counts any NULs inside). NULL: not a string, or no memory. */
char *json_strdup(const struct json_doc *d, int v, size_t *len);
/* An integer, from a number or from a string of digits (etcd sends int64 as
 * "12"). False when it is neither, has a fraction or exponent, or overflows. */
bool json_int64(const struct json_doc *d, int v, int64_t *out);
/* true or false; dflt when absent or not a boolean (etcd leaves false out). */
bool json_bool(const struct json_doc *d, int v, bool dflt);

/* Base64, standard alphabet with padding (RFC 4648 section 4). Encoding
 * appends to sb: 0, or -1 (no memory). Decoding writes at most
 * BASE64_DECODED_MAX(n) bytes to out (which may be in itself: it never
 * overtakes its reading) and returns how many, or -1 for anything not
 * canonical base64 (bad characters, length, padding or trailing bits). */
#define BASE64_DECODED_MAX(n) ((n) / 4 * 3)
int base64_encode(struct strbuf *sb, const void *data, size_t n);
ssize_t base64_decode(const char *in, size_t n, void *out);

#endif
