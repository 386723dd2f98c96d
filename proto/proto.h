/* proto/proto.h: PostgreSQL v3 wire protocol: message framing over received
 * buffers (in place, no payload copies) and builders for the messages pgring
 * says itself. Nothing here does I/O or knows about connections. */
#ifndef PGRING_PROTO_H
#define PGRING_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION_30     196608      /* 3.0 */
#define PROTO_MINOR_LATEST   2           /* 3.2: cancel keys longer than 4 bytes */
#define PROTO_KEY_LONG       32          /* pgring's cancel key length in 3.2 */
#define PROTO_SSL_REQUEST    80877103
#define PROTO_GSSENC_REQUEST 80877104
#define PROTO_CANCEL_REQUEST 80877102

#define PROTO_BUF_NONE UINT32_MAX        /* bytes not in a shard buffer: copy to keep */

/* ---- framing ---- */

enum proto_take {
	PROTO_STREAM = 0,  /* give me the message's bytes as they arrive (header included) */
	PROTO_WHOLE,       /* give me the whole message in one piece */
	PROTO_STOP,        /* stop framing (the handler closed or changed mode) */
};

struct proto_frame_ops {
	/* A header is complete: type (0 for untyped startup packets) and total
	 * length including the header. Return how to deliver it. */
	int (*begin)(void *ctx, uint8_t type, uint32_t len);
	/* A whole message, header included. buf is the shard buffer holding it
	 * (take a reference to keep it) or PROTO_BUF_NONE. Return false to stop. */
	bool (*whole)(void *ctx, const uint8_t *msg, uint32_t len, uint32_t buf);
	/* Part of a streamed message (the first call carries the header). */
	void (*bytes)(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf);
	/* Room for reassembling a whole message that spans buffers: returns memory
	 * of at least len bytes and its buffer id (or PROTO_BUF_NONE), NULL if none. */
	uint8_t *(*alloc)(void *ctx, uint32_t len, uint32_t *buf);
	/* Drop the framer's reference to memory from alloc (after delivery). */
	void (*release)(void *ctx, uint32_t buf, uint8_t *mem);
	/* Optional. Between messages, with at least a header's worth of bytes in
	 * the buffer: take the whole messages at the front that need no more
	 * than a look at their headers (forwarded as one slice), and return the
	 * bytes taken; the framer goes on from there (begin/whole/bytes for the
	 * next one). Saves the two callbacks a message where most pass as they
	 * are. */
	uint32_t (*span)(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf);
};

struct proto_framer {
	uint8_t hdr[5];        /* partial header */
	uint8_t hdr_have;
	bool untyped;          /* startup phase: 4-byte headers, no type byte */
	bool whole;            /* current message is being reassembled */
	uint8_t type;
	uint32_t remaining;    /* bytes of the current message still to come */
	uint32_t len;          /* total length of the current message */
	uint32_t max_len;      /* longest message accepted */
	uint8_t *asm_mem;      /* reassembly memory for a whole message */
	uint32_t asm_buf, asm_have;
	/* during whole(): what followed the message in the buffer being fed (it
	 * may end mid-message), for a look at messages pipelined behind it */
	const uint8_t *ahead;
	uint32_t ahead_len;
};

enum proto_feed_result {
	PROTO_OK = 0,
	PROTO_STOPPED = 1,     /* a callback said stop */
	PROTO_BAD_LENGTH = -1, /* a length field below 4 or above max_len */
	PROTO_NO_MEMORY = -2,  /* alloc failed */
};

void proto_framer_init(struct proto_framer *f, bool untyped, uint32_t max_len);
/* Walk data[0..n) (one received buffer `buf`), calling ops. */
int proto_framer_feed(struct proto_framer *f, const uint8_t *data, uint32_t n, uint32_t buf,
		      const struct proto_frame_ops *ops, void *ctx);
/* Forget a partial message (the framer is being discarded or reset). */
void proto_framer_reset(struct proto_framer *f, const struct proto_frame_ops *ops, void *ctx);
/* True between messages (no partial header or body pending). */
static inline bool proto_framer_idle(const struct proto_framer *f)
{
	return f->hdr_have == 0 && f->remaining == 0;
}

/* ---- reading message bodies (bounds-checked cursor) ---- */

struct proto_reader {
	const uint8_t *p, *end;
	bool bad;              /* set on any overrun; reads then return 0 / "" */
};

void proto_reader_init(struct proto_reader *r, const uint8_t *body, size_t len);
uint8_t proto_read_u8(struct proto_reader *r);
uint16_t proto_read_u16(struct proto_reader *r);
uint32_t proto_read_u32(struct proto_reader *r);
const char *proto_read_str(struct proto_reader *r);   /* NUL-terminated inside the body */
const uint8_t *proto_read_bytes(struct proto_reader *r, size_t n);

static inline uint32_t proto_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- building messages ---- */

/* A bounded output area. Builders never overrun; `overflow` records truncation. */
struct proto_out {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
	size_t msg_start;      /* where the open message's length field is */
};

void proto_out_init(struct proto_out *o, void *mem, size_t cap);
void proto_begin(struct proto_out *o, uint8_t type);  /* type 0: untyped (startup) */
void proto_put_u8(struct proto_out *o, uint8_t v);
void proto_put_u16(struct proto_out *o, uint16_t v);
void proto_put_u32(struct proto_out *o, uint32_t v);
void proto_put_str(struct proto_out *o, const char *s);   /* with its NUL */
void proto_put_bytes(struct proto_out *o, const void *b, size_t n);
void proto_end(struct proto_out *o);                       /* fills the length */
/* A text field: s[0..n) with its NUL, every byte that is not part of a valid
 * UTF-8 character (and every NUL) written as the four characters \xNN (lower
 * case hex), so the field is valid UTF-8 and ends where it should. Control
 * characters and newlines are valid text and kept; a backslash is kept as is. */
void proto_put_text(struct proto_out *o, const char *s, size_t n);

/* Length (1 to 4) of the valid UTF-8 character at p[0..n), n >= 1; 0 if the bytes
 * there are not one (RFC 3629: no overlong forms, no UTF-16 surrogates, nothing
 * above U+10FFFF; a lone continuation byte); -1 if they begin one that n cuts off. */
int proto_utf8_len(const uint8_t *p, size_t n);

/* Whole messages. proto_error and proto_notice write every field with
 * proto_put_text: whatever the arguments hold (a client's database or user name,
 * invalid UTF-8 included), each field is valid UTF-8 and NUL-free. */
void proto_error(struct proto_out *o, const char *severity, const char *sqlstate,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void proto_notice(struct proto_out *o, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void proto_auth_request(struct proto_out *o, uint32_t code, const void *data, size_t n);
void proto_auth_sasl_mechanisms(struct proto_out *o);      /* SCRAM-SHA-256 */
/* With plus (channel-binding data at hand, see auth_scram_server_init_cbind):
 * SCRAM-SHA-256-PLUS, then SCRAM-SHA-256; without, the same as the above. */
void proto_auth_sasl_mechanisms_plus(struct proto_out *o, bool plus);
void proto_auth_sasl_mechanisms_only_plus(struct proto_out *o);   /* channel binding required */
void proto_parameter_status(struct proto_out *o, const char *name, const char *value);
void proto_backend_key(struct proto_out *o, uint32_t pid, uint32_t key);
/* Protocol 3.2's longer key: key then tail_len more bytes. */
void proto_backend_key_long(struct proto_out *o, uint32_t pid, uint32_t key, const uint8_t *tail, uint32_t tail_len);
void proto_ready(struct proto_out *o, char status);
void proto_query(struct proto_out *o, const char *sql);
void proto_terminate(struct proto_out *o);
void proto_password(struct proto_out *o, const char *password);   /* 'p' */
void proto_sasl_initial(struct proto_out *o, const char *mech, const char *data, size_t n);
void proto_sasl_response(struct proto_out *o, const char *data, size_t n);
void proto_cancel_request(struct proto_out *o, uint32_t pid, uint32_t key);
void proto_negotiate_version(struct proto_out *o, uint32_t newest_minor,
			     const char *const *unsupported, int n);
void proto_command_complete(struct proto_out *o, const char *tag);

/* Fields of an ErrorResponse/NoticeResponse body (type byte already consumed). */
struct proto_error_fields {
	const char *severity, *sqlstate, *message;
};
void proto_parse_error(const uint8_t *body, size_t len, struct proto_error_fields *out);
/* FATAL or PANIC: the server ends the session after this error. */
bool proto_error_fatal(const struct proto_error_fields *f);

#endif
