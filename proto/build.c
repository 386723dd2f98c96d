/* proto/build.c: builders for the messages pgring writes itself (errors,
 * authentication, the login welcome, injected queries) and a bounds-checked
 * reader for the message bodies it inspects. */
#include "proto/proto.h"

#include "proto/auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void proto_out_init(struct proto_out *o, void *mem, size_t cap)
{
	o->p = mem;
	o->len = 0;
	o->cap = cap;
	o->overflow = false;
	o->msg_start = 0;
}

static void put(struct proto_out *o, const void *b, size_t n)
{
	if (o->len + n > o->cap) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->len, b, n);
	o->len += n;
}

void proto_put_u8(struct proto_out *o, uint8_t v) { put(o, &v, 1); }

void proto_put_u16(struct proto_out *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(o, b, 2);
}

void proto_put_u32(struct proto_out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	put(o, b, 4);
}

void proto_put_str(struct proto_out *o, const char *s) { put(o, s, strlen(s) + 1); }
void proto_put_bytes(struct proto_out *o, const void *b, size_t n) { put(o, b, n); }

void proto_begin(struct proto_out *o, uint8_t type)
{
	if (type)
		proto_put_u8(o, type);
	o->msg_start = o->len;
	proto_put_u32(o, 0);
}

void proto_end(struct proto_out *o)
{
	if (o->overflow)
		return;
	uint32_t n = (uint32_t)(o->len - o->msg_start);
	uint8_t *l = o->p + o->msg_start;
	l[0] = (uint8_t)(n >> 24); l[1] = (uint8_t)(n >> 16); l[2] = (uint8_t)(n >> 8); l[3] = (uint8_t)n;
}

int proto_utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xBF;
	size_t need;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 4;
	else
		return 0;              /* a continuation byte, C0/C1 (overlong) or F5..FF */
	if (c == 0xE0)
		lo = 0xA0;             /* overlong 3-byte */
	else if (c == 0xED)
		hi = 0x9F;             /* UTF-16 surrogates */
	else if (c == 0xF0)
		lo = 0x90;             /* overlong 4-byte */
	else if (c == 0xF4)
		hi = 0x8F;             /* above U+10FFFF */
	for (size_t i = 1; i < need; i++) {
		if (i >= n)
			return -1;
		if (p[i] < lo || p[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xBF;
	}
	return (int)need;
}

void proto_put_text(struct proto_out *o, const char *s, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s;
	size_t run = 0;        /* p[0..run) is clean and not yet written */
	while (run < n) {
		int k = p[run] ? proto_utf8_len(p + run, n - run) : 0;
		if (k > 0) {
			run += (size_t)k;
			continue;
		}
		put(o, p, run);
		char esc[4] = { '\\', 'x', hexd[p[run] >> 4], hexd[p[run] & 15] };
		put(o, esc, sizeof esc);
		p += run + 1;
		n -= run + 1;
		run = 0;
	}
	put(o, p, run);
	proto_put_u8(o, 0);
}

/* The message is formatted into a bounded buffer, then written as text (see
 * proto_put_text): the arguments may be a client's bytes (a database or user
 * name), and a field must be valid UTF-8 without a NUL inside. */
static void error_like(struct proto_out *o, uint8_t type, const char *severity,
		       const char *sqlstate, const char *fmt, va_list ap)
{
	char msg[1024];
	int m = vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = m < 0 ? 0 : (size_t)m;
	if (n >= sizeof msg) {
		/* cut: drop a character the cut split rather than show its bytes escaped */
		n = sizeof msg - 1;
		for (size_t back = 1; back <= 3 && back <= n; back++) {
			if (((uint8_t)msg[n - back] & 0xC0) != 0x80) {
				if (proto_utf8_len((const uint8_t *)msg + n - back, back) < 0)
					n -= back;
				break;
			}
		}
	}
	proto_begin(o, type);
	proto_put_u8(o, 'S'); proto_put_text(o, severity, strlen(severity));
	proto_put_u8(o, 'V'); proto_put_text(o, severity, strlen(severity));
	proto_put_u8(o, 'C'); proto_put_text(o, sqlstate, strlen(sqlstate));
	proto_put_u8(o, 'M'); proto_put_text(o, msg, n);
	proto_put_u8(o, 0);
	proto_end(o);
}

void proto_error(struct proto_out *o, const char *severity, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_like(o, 'E', severity, sqlstate, fmt, ap);
	va_end(ap);
}

void proto_notice(struct proto_out *o, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_like(o, 'N', "NOTICE", sqlstate, fmt, ap);
	va_end(ap);
}

void proto_auth_request(struct proto_out *o, uint32_t code, const void *data, size_t n)
{
	proto_begin(o, 'R');
	proto_put_u32(o, code);
	if (n)
		proto_put_bytes(o, data, n);
	proto_end(o);
}

/* PostgreSQL lists PLUS first when it can bind (its CheckSASLAuth order): a client
 * picking the first mechanism it knows then gets the binding one. */
void proto_auth_sasl_mechanisms_plus(struct proto_out *o, bool plus)
{
	proto_begin(o, 'R');
	proto_put_u32(o, 10);
	if (plus)
		proto_put_str(o, AUTH_SCRAM_PLUS_MECH);
	proto_put_str(o, AUTH_SCRAM_MECH);
	proto_put_u8(o, 0);
	proto_end(o);
}

void proto_auth_sasl_mechanisms_only_plus(struct proto_out *o)
{
	proto_begin(o, 'R');
	proto_put_u32(o, 10);
	proto_put_str(o, AUTH_SCRAM_PLUS_MECH);
	proto_put_u8(o, 0);
	proto_end(o);
}

void proto_auth_sasl_mechanisms(struct proto_out *o)
{
	proto_auth_sasl_mechanisms_plus(o, false);
}

void proto_parameter_status(struct proto_out *o, const char *name, const char *value)
{
	proto_begin(o, 'S');
	proto_put_str(o, name);
	proto_put_str(o, value);
	proto_end(o);
}

void proto_backend_key(struct proto_out *o, uint32_t pid, uint32_t key)
{
	proto_begin(o, 'K');
	proto_put_u32(o, pid);
	proto_put_u32(o, key);
	proto_end(o);
}

void proto_backend_key_long(struct proto_out *o, uint32_t pid, uint32_t key, const uint8_t *tail, uint32_t tail_len)
{
	proto_begin(o, 'K');
	proto_put_u32(o, pid);
	proto_put_u32(o, key);
	proto_put_bytes(o, tail, tail_len);
	proto_end(o);
}

void proto_ready(struct proto_out *o, char status)
{
	proto_begin(o, 'Z');
	proto_put_u8(o, (uint8_t)status);
	proto_end(o);
}

void proto_query(struct proto_out *o, const char *sql)
{
	proto_begin(o, 'Q');
	proto_put_str(o, sql);
	proto_end(o);
}

void proto_terminate(struct proto_out *o)
{
	proto_begin(o, 'X');
	proto_end(o);
}

void proto_password(struct proto_out *o, const char *password)
{
	proto_begin(o, 'p');
	proto_put_str(o, password);
	proto_end(o);
}

void proto_sasl_initial(struct proto_out *o, const char *mech, const char *data, size_t n)
{
	proto_begin(o, 'p');
	proto_put_str(o, mech);
	proto_put_u32(o, (uint32_t)n);
	proto_put_bytes(o, data, n);
	proto_end(o);
}

void proto_sasl_response(struct proto_out *o, const char *data, size_t n)
{
	proto_begin(o, 'p');
	proto_put_bytes(o, data, n);
	proto_end(o);
}

void proto_cancel_request(struct proto_out *o, uint32_t pid, uint32_t key)
{
	proto_begin(o, 0);
	proto_put_u32(o, PROTO_CANCEL_REQUEST);
	proto_put_u32(o, pid);
	proto_put_u32(o, key);
	proto_end(o);
}

void proto_negotiate_version(struct proto_out *o, uint32_t newest_minor,
			     const char *const *unsupported, int n)
{
	proto_begin(o, 'v');
	proto_put_u32(o, (3u << 16) | newest_minor);
	proto_put_u32(o, (uint32_t)n);
	for (int i = 0; i < n; i++)
		proto_put_str(o, unsupported[i]);
	proto_end(o);
}

void proto_command_complete(struct proto_out *o, const char *tag)
{
	proto_begin(o, 'C');
	proto_put_str(o, tag);
	proto_end(o);
}

void proto_parse_error(const uint8_t *body, size_t len, struct proto_error_fields *out)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	out->severity = out->sqlstate = out->message = "";
	for (;;) {
		uint8_t code = proto_read_u8(&r);
		if (code == 0 || r.bad)
			break;
		const char *v = proto_read_str(&r);
		if (code == 'V' || (code == 'S' && !*out->severity))
			out->severity = v;
		else if (code == 'C')
			out->sqlstate = v;
		else if (code == 'M')
			out->message = v;
	}
}

/* ---- reader ---- */

void proto_reader_init(struct proto_reader *r, const uint8_t *body, size_t len)
{
	r->p = body;
	r->end = body + len;
	r->bad = false;
}

const uint8_t *proto_read_bytes(struct proto_reader *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

uint8_t proto_read_u8(struct proto_reader *r)
{
	const uint8_t *p = proto_read_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t proto_read_u16(struct proto_reader *r)
{
	const uint8_t *p = proto_read_bytes(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t proto_read_u32(struct proto_reader *r)
{
	const uint8_t *p = proto_read_bytes(r, 4);
	return p ? proto_get_u32(p) : 0;
}

const char *proto_read_str(struct proto_reader *r)
{
	if (r->bad)
		return "";
	const uint8_t *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
	if (!nul) {
		r->bad = true;
		return "";
	}
	const char *s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

bool proto_error_fatal(const struct proto_error_fields *f)
{
	return strcmp(f->severity, "FATAL") == 0 || strcmp(f->severity, "PANIC") == 0;
}
