/* core/json.c: the JSON reader and base64 (see core/json.h). json_parse walks
 * the whole text once (a recursive descent bounded by JSON_MAX_DEPTH); the
 * lookups walk it again from a value with the same code, which cannot fail on
 * text that passed. Strings are checked when parsed (escapes, surrogate pairs,
 * control characters), so decoding one later cannot fail either. */
#include "core/json.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"

static long hex4(const char *s)
{
	char h[5] = { 0 };
	for (int k = 0; k < 4; k++)
		if (!isxdigit((unsigned char)(h[k] = s[k])))
			return -1;
	return strtol(h, NULL, 16);
}

static int put_utf8(long cp, char *out)
{
	int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	for (int k = n - 1; out && k > 0; k--, cp >>= 6)
		out[k] = (char)(0x80 | (cp & 0x3f));
	if (out)
		out[0] = (char)(n == 1 ? cp : (0xf00 >> n) | cp);   /* 110xxxxx, 1110xxxx, 11110xxx */
	return n;
}

/* The n bytes between a string's quotes, unescaped into out (never more than
 * n bytes; NULL: only checked). Its length, or -1: a bad escape or a lone
 * UTF-16 surrogate. */
static int unescape(const char *s, int n, char *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	int o = 0;
	for (int i = 0; i < n; i++) {
		const char *m;
		long cp;
		if (s[i] != '\\') {   /* raw bytes pass as they are */
			if (out)
				out[o] = s[i];
			o++;
			continue;
		}
		if (++i < n && s[i] && (m = strchr(from, s[i])))
			cp = to[m - from];
		else if (i + 4 >= n || s[i] != 'u' || (cp = hex4(s + i + 1)) < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
			return -1;
		else if ((i += 4, cp >= 0xd800 && cp <= 0xdbff)) {   /* the low half must follow */
			long lo = i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u' ? hex4(s + i + 3) : -1;
			if (lo < 0xdc00 || lo > 0xdfff)
				return -1;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			i += 6;
		}
		o += put_utf8(cp, out ? out + o : NULL);
	}
	return o;
}

/* ---- walking the text: each returns where what it read ends, or -1 ---- */

static char at(const struct json_doc *d, int i) { return i >= 0 && i < d->len ? d->text[i] : '\0'; }

static int ws(const struct json_doc *d, int i)
{
	while (i >= 0 && (at(d, i) == ' ' || at(d, i) == '\t' || at(d, i) == '\r' || at(d, i) == '\n'))
		i++;
	return i;
}

static int skip_digits(const struct json_doc *d, int i)
{
	int from = i;
	while (isdigit((unsigned char)at(d, i)))
		i++;
	return i > from ? i : -1;
}

static int skip_string(const struct json_doc *d, int i)
{
	int from = ++i;
	for (; at(d, i) != '"'; i++) {
		if (i >= d->len || (unsigned char)d->text[i] < 0x20)
			return -1;
		i += d->text[i] == '\\';   /* whatever it escapes does not end the string */
	}
	return memchr(d->text + from, '\\', (size_t)(i - from)) && unescape(d->text + from, i - from, NULL) < 0 ? -1 : i + 1;
}

static int skip_number(const struct json_doc *d, int i)
{
	i += at(d, i) == '-';
	i = at(d, i) == '0' ? i + 1 : at(d, i) >= '1' && at(d, i) <= '9' ? skip_digits(d, i) : -1;
	if (at(d, i) == '.')
		i = skip_digits(d, i + 1);
	if (at(d, i) == 'e' || at(d, i) == 'E') {
		i++;
		i = skip_digits(d, i + (at(d, i) == '+' || at(d, i) == '-'));
	}
	return i;
}

static int skip_value(const struct json_doc *d, int i, int depth)
{
	static const char *const words[] = { "true", "false", "null" };
	char c = at(d, i = ws(d, i)), close = c == '{' ? '}' : ']';
	if (c == '"')
		return skip_string(d, i);
	for (int w = 0; w < 3; w++)
		if (c == words[w][0]) {
			int n = (int)strlen(words[w]);
			return d->len - i >= n && memcmp(d->text + i, words[w], (size_t)n) == 0 ? i + n : -1;
		}
	if (c != '{' && c != '[')
		return c == '-' || isdigit((unsigned char)c) ? skip_number(d, i) : -1;
	if (depth >= JSON_MAX_DEPTH)
		return -1;
	if (at(d, i = ws(d, i + 1)) == close)
		return i + 1;
	for (;;) {   /* elements, or name-value pairs, each followed by ',' or the end */
		if (c == '{' && (at(d, i = ws(d, i)) != '"' || at(d, i = ws(d, skip_string(d, i))) != ':' || i++ < 0))
			return -1;
		if (at(d, i = ws(d, skip_value(d, i, depth + 1))) == close)
			return i + 1;
		if (i < 0 || at(d, i++) != ',')
			return -1;
	}
}

int json_parse(struct json_doc *d, const char *text, size_t len)
{
	*d = (struct json_doc){ .text = text, .len = len > INT_MAX / 2 ? 0 : (int)len };
	if (d->len && ws(d, skip_value(d, 0, 0)) == d->len)
		return 0;
	d->len = 0;
	return -1;
}

void json_free(struct json_doc *d) { d->len = 0; }

/* ---- lookups ---- */

bool json_is(const struct json_doc *d, int v, enum json_type t)
{
	char c = at(d, ws(d, v));
	enum json_type is = c == '{' ? JSON_OBJECT : c == '[' ? JSON_ARRAY : c == '"' ? JSON_STRING : c == 't' ? JSON_TRUE
		: c == 'f' ? JSON_FALSE : c == 'n' ? JSON_NULL : JSON_NUMBER;
	return c && is == t;
}

int json_get(const struct json_doc *d, int obj, const char *name)
{
	if (!json_is(d, obj, JSON_OBJECT))
		return -1;
	size_t n = strlen(name), len;
	for (int i = ws(d, ws(d, obj) + 1); at(d, i) == '"'; i = ws(d, i + 1)) {
		int end = skip_string(d, i), v = ws(d, ws(d, end) + 1);   /* after the ':' */
		char *s = memchr(d->text + i, '\\', (size_t)(end - i)) ? json_strdup(d, i, &len) : NULL;
		bool same = s ? len == n && memcmp(s, name, n) == 0
			      : (size_t)(end - i - 2) == n && memcmp(d->text + i + 1, name, n) == 0;
		free(s);
		if (same)
			return v;
		if (at(d, i = ws(d, skip_value(d, v, 0))) != ',')
			return -1;
	}
	return -1;
}

int json_first(const struct json_doc *d, int arr)
{
	int i = json_is(d, arr, JSON_ARRAY) ? ws(d, ws(d, arr) + 1) : -1;
	return i >= 0 && at(d, i) != ']' ? i : -1;
}

int json_next(const struct json_doc *d, int i)
{
	i = i < 0 ? -1 : ws(d, skip_value(d, i, 0));
	return at(d, i) == ',' ? ws(d, i + 1) : -1;
}

char *json_strdup(const struct json_doc *d, int v, size_t *len)
{
	v = ws(d, v);
	int end = json_is(d, v, JSON_STRING) ? skip_string(d, v) : -1;
	char *s = end > v ? malloc((size_t)(end - v)) : NULL;
	if (!s)
		return NULL;
	int n = unescape(d->text + v + 1, end - v - 2, s);   /* checked when parsed: not -1 */
	s[n] = '\0';
	if (len)
		*len = (size_t)n;
	return s;
}

bool json_int64(const struct json_doc *d, int v, int64_t *out)
{
	v = ws(d, v);
	bool quoted = json_is(d, v, JSON_STRING);
	if (!quoted && !json_is(d, v, JSON_NUMBER))
		return false;
	const char *s = d->text + v + quoted;
	int n = (quoted ? skip_string(d, v) - 1 : skip_number(d, v)) - v - quoted, i = n > 0 && s[0] == '-';
	uint64_t x = 0;
	if (i >= n)
		return false;
	for (; i < n; i++) {
		if (!isdigit((unsigned char)s[i]) || x > (UINT64_MAX - 9) / 10)
			return false;   /* a fraction, an exponent, not a number, or far too large */
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (x > (uint64_t)INT64_MAX + (s[0] == '-'))
		return false;
	*out = s[0] != '-' ? (int64_t)x : x ? -(int64_t)(x - 1) - 1 : 0;
	return true;
}

bool json_bool(const struct json_doc *d, int v, bool dflt)
{
	return json_is(d, v, JSON_TRUE) || (!json_is(d, v, JSON_FALSE) && dflt);
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(struct strbuf *sb, const void *data, size_t n)
{
	const unsigned char *s = data;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
		char q[4] = { b64[v >> 18], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=',
			      i + 2 < n ? b64[v & 63] : '=' };
		strbuf_append(sb, q, 4);
	}
	return sb->failed ? -1 : 0;
}

ssize_t base64_decode(const char *in, size_t n, void *out)
{
	unsigned char *o = out;
	size_t k = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int j = 0; j < 4 && n % 4 == 0; j++) {
			const char *c = in[i + j] ? strchr(b64, in[i + j]) : NULL;
			if (in[i + j] == '=' && j >= 2 && i + 4 == n)
				pad++;   /* only at the end, and at most two */
			else if (!c || pad)
				return -1;
			v = v << 6 | (c ? (uint32_t)(c - b64) : 0);
		}
		if (n % 4 || v & (pad == 2 ? 0xffff : pad == 1 ? 0xff : 0))
			return -1;   /* bits past the last byte: not what an encoder writes */
		o[k++] = (unsigned char)(v >> 16);
		if (pad < 2)
			o[k++] = (unsigned char)(v >> 8);
		if (pad < 1)
			o[k++] = (unsigned char)v;
	}
	return (ssize_t)k;
}
