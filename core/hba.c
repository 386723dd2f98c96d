/* core/hba.c: auth_hba_file. A line is TYPE DATABASE USER [ADDRESS [MASK]]
 * METHOD, fields split on blanks, lists on commas, "quoted" items taken
 * literally, # to the end of the line a comment, @file an include of names.
 * What pgring cannot do as PostgreSQL would (group membership, host names,
 * samehost/samenet, ident maps, method options) fails the load naming the line:
 * skipping such a line could let through a login the file meant to refuse. */
#include "core/hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HBA_LINE_MAX (64 * 1024)
#define HBA_FILE_MAX (64L * 1024 * 1024)
#define HBA_INCLUDE_DEPTH 4

struct item {
	char *s;
	bool quoted;
};

struct field {
	struct item *items;
	int n;
};

struct parse {
	const char *file;   /* the hba file (includes are relative to it) */
	int line;
	char *err;
	size_t errlen;
	void (*warn)(void *ctx, const char *msg);
	void *ctx;
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse *p, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%d: %s", p->file, p->line, msg);
	return -1;
}

static const char *const method_names[] = {
	[HBA_TRUST] = "trust", [HBA_REJECT] = "reject", [HBA_PASSWORD] = "password", [HBA_MD5] = "md5",
	[HBA_SCRAM] = "scram-sha-256", [HBA_CERT] = "cert", [HBA_PEER] = "peer",
};
/* PostgreSQL's methods that pgring cannot check. */
static const char *const methods_unsupported[] = { "gss", "sspi", "ident", "ldap", "radius", "pam", "bsd", "krb5" };
static const char *const conn_names[] = {
	[HBA_LOCAL] = "local", [HBA_HOST] = "host", [HBA_HOSTSSL] = "hostssl", [HBA_HOSTNOSSL] = "hostnossl",
	[HBA_HOSTGSSENC] = "hostgssenc", [HBA_HOSTNOGSSENC] = "hostnogssenc",
};

const char *hba_method_name(int method)
{
	return method >= 0 && method < (int)(sizeof method_names / sizeof method_names[0]) ? method_names[method] : "?";
}

static int lookup(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return i;
	return -1;
}

/* ---- reading ---- */

static FILE *open_regular(const char *path, char *why, size_t len)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	if (!f) {
		snprintf(why, len, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > HBA_FILE_MAX) {
		snprintf(why, len, "%s", !S_ISREG(st.st_mode) ? "not a regular file" : "larger than 64 MB");
		fclose(f);
		return NULL;
	}
	return f;
}

/* One line without its end; NULL at the end or on a line too long (*toolong). */
static char *read_line(FILE *f, char **buf, size_t *cap, bool *toolong)
{
	ssize_t n = getline(buf, cap, f);
	*toolong = false;
	if (n < 0)
		return NULL;
	if (n > HBA_LINE_MAX) {
		*toolong = true;
		return NULL;
	}
	while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r'))
		(*buf)[--n] = '\0';
	return *buf;
}

static int push_item(struct parse *p, struct field *fl, const char *s, size_t n, bool quoted)
{
	struct item *grown = realloc(fl->items, (size_t)(fl->n + 1) * sizeof *grown);
	char *copy = strndup(s, n);
	if (!grown || !copy) {
		free(copy);
		if (grown)
			fl->items = grown;
		return fail(p, "out of memory");
	}
	fl->items = grown;
	fl->items[fl->n++] = (struct item){ copy, quoted };
	return 0;
}

static void free_field(struct field *fl)
{
	for (int i = 0; i < fl->n; i++)
		free(fl->items[i].s);
	free(fl->items);
	fl->items = NULL;
	fl->n = 0;
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

/* The next field at *pos (a comma-separated list of items); 0 with fl->n == 0
 * at the end of the line. */
static int next_field(struct parse *p, const char **pos, struct field *fl)
{
	const char *s = *pos;
	while (blank(*s))
		s++;
	if (!*s || *s == '#') {
		*pos = s;
		return 0;
	}
	char *tmp = malloc(strlen(s) + 1);   /* an item is never longer than the rest of its line */
	if (!tmp)
		return fail(p, "out of memory");
	int r = 0;
	for (;;) {
		size_t n = 0;
		bool quoted = false;
		if (*s == '"') {
			quoted = true;
			for (s++;; s++) {
				if (!*s) {
					free(tmp);
					return fail(p, "unterminated quoted string");
				}
				if (*s == '"' && s[1] == '"') {
					tmp[n++] = '"';
					s++;
				} else if (*s == '"') {
					s++;
					break;
				} else {
					tmp[n++] = *s;
				}
			}
		} else {
			while (*s && !blank(*s) && *s != ',' && *s != '#')
				tmp[n++] = *s++;
		}
		if ((r = push_item(p, fl, tmp, n, quoted)) < 0)
			break;
		if (*s != ',')
			break;
		s++;
		while (blank(*s))
			s++;
		if (!*s || *s == '#') {
			r = fail(p, "a list ends with a comma");
			break;
		}
	}
	free(tmp);
	if (r == 0 && *s && !blank(*s) && *s != '#')
		r = fail(p, "unexpected character '%c' after a field", *s);
	*pos = s;
	return r;
}

/* @file: its names (blank- or comma-separated, # comments, quotes as in the
 * hba file) join the list, taken literally. Relative to the hba file. */
static int include_names(struct parse *p, const char *name, struct hba_names *out, int depth);

static int add_name(struct parse *p, struct hba_names *out, const char *s)
{
	char **grown = realloc(out->names, (size_t)(out->n + 1) * sizeof *grown);
	char *copy = strdup(s);
	if (!grown || !copy) {
		free(copy);
		if (grown)
			out->names = grown;
		return fail(p, "out of memory");
	}
	out->names = grown;
	out->names[out->n++] = copy;
	return 0;
}

/* One item of a database (is_db) or user column. */
static int add_item(struct parse *p, struct hba_names *out, const struct item *it, bool is_db, int depth)
{
	if (!it->quoted && it->s[0] == '@')
		return include_names(p, it->s + 1, out, depth + 1);
	if (!it->quoted && !strcmp(it->s, "all")) {
		out->all = true;
		return 0;
	}
	if (!it->quoted && is_db && !strcmp(it->s, "sameuser")) {
		out->sameuser = true;
		return 0;
	}
	if (!it->quoted && is_db && !strcmp(it->s, "replication")) {
		out->replication = true;
		return 0;
	}
	if (!it->quoted && is_db && (!strcmp(it->s, "samerole") || !strcmp(it->s, "samegroup")))
		return fail(p, "\"%s\": role membership is not known to pgring", it->s);
	if (!it->quoted && !is_db && it->s[0] == '+')
		return fail(p, "\"%s\": group membership is not known to pgring", it->s);
	if (!it->s[0])
		return fail(p, "an empty name");
	return add_name(p, out, it->s);
}

static int include_names(struct parse *p, const char *name, struct hba_names *out, int depth)
{
	char path[4096], why[200];
	if (depth > HBA_INCLUDE_DEPTH)
		return fail(p, "@%s: includes nested too deep", name);
	const char *slash = strrchr(p->file, '/');
	if (name[0] == '/' || !slash)
		snprintf(path, sizeof path, "%s", name);
	else
		snprintf(path, sizeof path, "%.*s/%s", (int)(slash - p->file), p->file, name);
	FILE *f = open_regular(path, why, sizeof why);
	if (!f)
		return fail(p, "cannot read @%s (%s): %s", name, path, why);
	char *buf = NULL;
	size_t cap = 0;
	bool toolong;
	int r = 0;
	const char *line;
	while (r == 0 && (line = read_line(f, &buf, &cap, &toolong))) {
		struct field fl = { 0 };
		const char *pos = line;
		while (r == 0 && (r = next_field(p, &pos, &fl)) == 0 && fl.n > 0) {
			for (int i = 0; r == 0 && i < fl.n; i++) {
				struct item it = { fl.items[i].s, true };   /* names from a file are names */
				r = add_item(p, out, &it, false, depth);
			}
			free_field(&fl);
		}
		free_field(&fl);
	}
	if (r == 0 && toolong)
		r = fail(p, "@%s: a line longer than 64 kB", name);
	free(buf);
	fclose(f);
	return r;
}

static int names_from(struct parse *p, const struct field *fl, struct hba_names *out, bool is_db)
{
	for (int i = 0; i < fl->n; i++)
		if (add_item(p, out, &fl->items[i], is_db, 0) < 0)
			return -1;
	return 0;
}

/* a.b.c.d or IPv6 text into 16 bytes; 4 or 6, or 0 when it is neither. */
static int parse_ip(const char *s, uint8_t out[16])
{
	struct in_addr v4;
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, &v4) == 1) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &v4, 4);
		return 4;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? 6 : 0;
}

static void mask_of_bits(uint8_t mask[16], int bits)
{
	memset(mask, 0, 16);
	for (int i = 0; i < 16; i++, bits -= 8)
		mask[i] = bits >= 8 ? 0xff : bits > 0 ? (uint8_t)(0xff << (8 - bits)) : 0;
}

/* ADDRESS [MASK] of a host line; *used: how many fields it took. */
static int parse_address(struct parse *p, struct hba_rule *r, const struct field *a, const struct field *m, int *used)
{
	*used = 1;
	if (a->n != 1)
		return fail(p, "an address must be one item, not a list");
	const char *s = a->items[0].s;
	if (!a->items[0].quoted && !strcmp(s, "all")) {
		r->addr_all = true;
		return 0;
	}
	if (!a->items[0].quoted && (!strcmp(s, "samehost") || !strcmp(s, "samenet")))
		return fail(p, "\"%s\" is not supported by pgring: give the addresses", s);
	char ip[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= sizeof ip)
		return fail(p, "invalid IP address \"%s\"", s);
	memcpy(ip, s, n);
	ip[n] = '\0';
	int fam = parse_ip(ip, r->addr);
	if (!fam)
		return fail(p, "invalid IP address \"%s\" (host names are not supported by pgring)", s);
	int maxbits = fam == 4 ? 32 : 128;
	if (slash) {
		char *end;
		long bits = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || bits < 0 || bits > maxbits)
			return fail(p, "invalid CIDR mask in address \"%s\"", s);
		mask_of_bits(r->mask, (int)(fam == 4 ? bits + 96 : bits));
	} else {
		if (!m || m->n != 1)
			return fail(p, "IP address \"%s\" needs a CIDR mask or a mask column", s);
		uint8_t mask[16];
		if (parse_ip(m->items[0].s, mask) != fam)
			return fail(p, "invalid IP mask \"%s\"", m->items[0].s);
		if (fam == 4)
			memset(mask, 0xff, 12);
		/* contiguous, as PostgreSQL requires */
		bool zero = false;
		for (int i = 0; i < 128; i++) {
			bool bit = mask[i / 8] & (0x80 >> (i % 8));
			if (bit && zero)
				return fail(p, "invalid IP mask \"%s\"", m->items[0].s);
			zero |= !bit;
		}
		memcpy(r->mask, mask, 16);
		*used = 2;
	}
	for (int i = 0; i < 16; i++)
		r->addr[i] &= r->mask[i];
	return 0;
}

static void free_names(struct hba_names *n)
{
	for (int i = 0; i < n->n; i++)
		free(n->names[i]);
	free(n->names);
}

/* One non-empty line into r; fields holds its fields. */
static int parse_rule(struct parse *p, struct field *f, int nf, struct hba_rule *r)
{
	memset(r, 0, sizeof *r);
	r->line = p->line;
	if (f[0].n != 1 || f[0].items[0].quoted)
		return fail(p, "invalid connection type");
	int conn = lookup(conn_names, 6, f[0].items[0].s);
	if (conn < 0)
		return fail(p, "invalid connection type \"%s\"", f[0].items[0].s);
	r->conn = (uint8_t)conn;
	int need = conn == HBA_LOCAL ? 4 : 5;
	if (nf < need)
		return fail(p, "end-of-line before %s", nf < 2 ? "database specification" : nf < 3 ? "role specification"
						: conn != HBA_LOCAL && nf < 4 ? "IP address specification"
										    : "authentication method");
	if (names_from(p, &f[1], &r->db, true) < 0 || names_from(p, &f[2], &r->user, false) < 0)
		return -1;
	int at = 3;
	if (conn == HBA_LOCAL) {
		r->addr_all = true;
	} else {
		int used;
		if (parse_address(p, r, &f[3], nf > 4 ? &f[4] : NULL, &used) < 0)
			return -1;
		at += used;
	}
	if (at >= nf)
		return fail(p, "end-of-line before authentication method");
	if (f[at].n != 1)
		return fail(p, "the authentication method must be one word");
	const char *m = f[at].items[0].s;
	int method = lookup(method_names, sizeof method_names / sizeof method_names[0], m);
	if (method < 0 && lookup(methods_unsupported, sizeof methods_unsupported / sizeof methods_unsupported[0], m) >= 0)
		return fail(p, "authentication method \"%s\" is not supported by pgring", m);
	if (method < 0)
		return fail(p, "invalid authentication method \"%s\"", m);
	if (method == HBA_PEER && conn != HBA_LOCAL)
		return fail(p, "peer authentication is only supported on local sockets");
	if (method == HBA_CERT && (conn == HBA_LOCAL || conn == HBA_HOSTNOSSL))
		return fail(p, "cert authentication is only supported on hostssl connections");
	r->method = (uint8_t)method;
	if (at + 1 < nf)
		return fail(p, "authentication option \"%s\" is not supported by pgring", f[at + 1].items[0].s);
	if (conn == HBA_HOSTGSSENC && p->warn) {
		char msg[200];
		snprintf(msg, sizeof msg, "%s:%d: hostgssenc never matches: pgring has no GSSAPI encryption", p->file,
			 p->line);
		p->warn(p->ctx, msg);
	}
	return 0;
}

void hba_free(struct hba *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n; i++) {
		free_names(&h->rules[i].db);
		free_names(&h->rules[i].user);
	}
	free(h->rules);
	free(h);
}

int hba_load(const char *file, struct hba **out, char *err, size_t errlen, void (*warn)(void *ctx, const char *msg),
	     void *ctx)
{
	struct parse p = { .file = file, .err = err, .errlen = errlen, .warn = warn, .ctx = ctx };
	char why[200];
	*out = NULL;
	FILE *f = open_regular(file, why, sizeof why);
	if (!f) {
		snprintf(err, errlen, "%s: cannot read auth_hba_file: %s", file, why);
		return -1;
	}
	struct hba *h = calloc(1, sizeof *h);
	char *buf = NULL;
	size_t cap = 0;
	bool toolong = false;
	int r = h ? 0 : fail(&p, "out of memory");
	const char *line;
	while (r == 0 && (line = read_line(f, &buf, &cap, &toolong))) {
		p.line++;
		struct field fields[8] = { 0 };
		int nf = 0;
		const char *pos = line;
		for (;;) {
			struct field fl = { 0 };
			if ((r = next_field(&p, &pos, &fl)) < 0 || fl.n == 0) {
				free_field(&fl);
				break;
			}
			if (nf == 8) {
				free_field(&fl);
				r = fail(&p, "too many fields");
				break;
			}
			fields[nf++] = fl;
		}
		if (r == 0 && nf > 0) {
			struct hba_rule *grown = realloc(h->rules, (size_t)(h->n + 1) * sizeof *grown);
			if (!grown) {
				r = fail(&p, "out of memory");
			} else {
				h->rules = grown;
				if ((r = parse_rule(&p, fields, nf, &h->rules[h->n])) == 0)
					h->n++;
				else {
					free_names(&h->rules[h->n].db);
					free_names(&h->rules[h->n].user);
				}
			}
		}
		for (int i = 0; i < nf; i++)
			free_field(&fields[i]);
	}
	if (r == 0 && toolong) {
		p.line++;
		r = fail(&p, "a line longer than 64 kB");
	}
	free(buf);
	fclose(f);
	if (r < 0) {
		hba_free(h);
		return -1;
	}
	*out = h;
	return 0;
}

/* ---- rules held by the server: pg_hba_file_rules ---- */

/* One element of a PostgreSQL array literal ({a,"b c","d\"e"}) from *pos into
 * an item; 1 taken, 0 at the end, -1 malformed. Keywords come unquoted in the
 * view, so every element is a name (quoted) except the keywords and +groups. */
static int array_item(const char **pos, struct item *it)
{
	const char *p = *pos;
	if (*p == '}' || !*p)
		return 0;
	char buf[1024];
	size_t n = 0;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= sizeof buf)
				return -1;
			buf[n++] = *p;
		}
		if (*p++ != '"')
			return -1;
	} else {
		while (*p && *p != ',' && *p != '}') {
			if (n + 1 >= sizeof buf)
				return -1;
			buf[n++] = *p++;
		}
	}
	buf[n] = '\0';
	if (*p == ',')
		p++;
	*pos = p;
	static const char *const keywords[] = { "all", "sameuser", "samerole", "samegroup", "replication" };
	bool keyword = buf[0] == '+';
	for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
		keyword |= !strcmp(buf, keywords[i]);
	if (!(it->s = strdup(buf)))
		return -1;
	it->quoted = !keyword;
	return 1;
}

/* A text[] value (NULL: no items) into a field. */
static int array_field(struct parse *p, const char *v, struct field *fl)
{
	if (!v)
		return 0;
	if (*v++ != '{')
		return fail(p, "unexpected value \"%s\" in pg_hba_file_rules", v - 1);
	for (;;) {
		struct item it;
		int r = array_item(&v, &it);
		if (r == 0)
			return 0;
		struct item *grown = r > 0 ? realloc(fl->items, (size_t)(fl->n + 1) * sizeof *grown) : NULL;
		if (!grown) {
			if (r > 0)
				free(it.s);
			return fail(p, "malformed array in pg_hba_file_rules");
		}
		fl->items = grown;
		fl->items[fl->n++] = it;
	}
}

static int text_field(struct parse *p, const char *v, bool quoted, struct field *fl)
{
	fl->items = calloc(1, sizeof *fl->items);
	if (!fl->items || !(fl->items[0].s = strdup(v))) {
		free(fl->items);
		fl->items = NULL;
		return fail(p, "out of memory");
	}
	fl->items[0].quoted = quoted;
	fl->n = 1;
	return 0;
}

/* The row's fields as its file line would give them; method: NULL keeps the
 * row's, otherwise it replaces it and drops the options. */
static int row_fields(struct parse *p, const struct hba_server_row *row, const char *method, struct field *f, int *nf)
{
	*nf = 0;
	if (text_field(p, row->type, false, &f[(*nf)++]) < 0 || array_field(p, row->database, &f[(*nf)++]) < 0 ||
	    array_field(p, row->user, &f[(*nf)++]) < 0)
		return -1;
	if (!f[1].n || !f[2].n)
		return fail(p, "a row without databases or users");
	if (row->address && text_field(p, row->address, false, &f[(*nf)++]) < 0)
		return -1;
	if (row->address && row->netmask && text_field(p, row->netmask, false, &f[(*nf)++]) < 0)
		return -1;
	if (text_field(p, method ? method : row->method, false, &f[(*nf)++]) < 0)
		return -1;
	if (!method && row->options) {
		int r = array_field(p, row->options, &f[(*nf)++]);
		if (r == 0 && !f[*nf - 1].n)   /* {} is no option */
			free_field(&f[--*nf]);
		if (r < 0)
			return -1;
	}
	return 0;
}

static void free_fields(struct field *f, int nf)
{
	for (int i = 0; i < nf; i++)
		free_field(&f[i]);
}

/* One row into r: as the file line would be; if pgring cannot enforce it, the
 * same line with method reject; if even its matching cannot be done (a +group,
 * a host name), a reject of everything the line's type covers. Never skipped:
 * a skipped line could let a login through that the server's rules refuse. */
static int row_rule(struct parse *p, const struct hba_server_row *row, struct hba_rule *r)
{
	struct field f[8] = { 0 };
	int nf;
	char why[400] = "";
	if (row_fields(p, row, NULL, f, &nf) == 0 && parse_rule(p, f, nf, r) == 0) {
		free_fields(f, nf);
		return 0;
	}
	snprintf(why, sizeof why, "%s", p->err);
	free_fields(f, nf);
	free_names(&r->db);
	free_names(&r->user);
	memset(f, 0, sizeof f);
	bool narrow = row_fields(p, row, "reject", f, &nf) == 0 && parse_rule(p, f, nf, r) == 0;
	free_fields(f, nf);
	if (!narrow) {
		free_names(&r->db);
		free_names(&r->user);
		memset(r, 0, sizeof *r);
		int conn = lookup(conn_names, 6, row->type);
		if (conn < 0)
			return fail(p, "invalid connection type \"%s\"", row->type);
		r->conn = (uint8_t)conn;
		r->line = row->line;
		r->db.all = r->user.all = r->addr_all = true;
		r->method = HBA_REJECT;
	}
	if (p->warn) {
		char msg[600];
		snprintf(msg, sizeof msg, "%s (the server's rule is enforced as reject%s)", why,
			 narrow ? "" : " for every login of its connection type");
		p->warn(p->ctx, msg);
	}
	return 0;
}

int hba_from_server(const struct hba_server_row *rows, int n, const char *source, struct hba **out, char *err,
		    size_t errlen, void (*warn)(void *ctx, const char *msg), void *ctx)
{
	struct parse p = { .file = source, .err = err, .errlen = errlen, .warn = warn, .ctx = ctx };
	*out = NULL;
	for (int i = 0; i < n; i++)
		if (rows[i].error) {
			p.line = rows[i].line;
			return fail(&p, "the server's pg_hba.conf has an error: %s", rows[i].error);
		}
	struct hba *h = calloc(1, sizeof *h);
	if (!h || (n && !(h->rules = calloc((size_t)n, sizeof *h->rules)))) {
		free(h);
		snprintf(err, errlen, "%s: out of memory", source);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		p.line = rows[i].line;
		if (!rows[i].type || !rows[i].method) {
			hba_free(h);
			return fail(&p, "a row without a type or method");
		}
		if (row_rule(&p, &rows[i], &h->rules[h->n]) < 0) {
			hba_free(h);
			return -1;
		}
		h->n++;
	}
	*out = h;
	return 0;
}

/* ---- matching ---- */

static bool names_match(const struct hba_names *n, const char *name)
{
	if (n->all)
		return true;
	for (int i = 0; i < n->n; i++)
		if (!strcmp(n->names[i], name))
			return true;
	return false;
}

static bool db_matches(const struct hba_names *n, const struct hba_query *q)
{
	if (q->physical_replication)
		return n->replication;   /* "all" does not cover physical replication */
	if (n->sameuser && !strcmp(q->db, q->user))
		return true;
	return names_match(n, q->db);
}

static bool conn_matches(uint8_t conn, const struct hba_query *q)
{
	switch (conn) {
	case HBA_LOCAL: return q->local;
	case HBA_HOST: return !q->local;
	case HBA_HOSTSSL: return !q->local && q->tls;
	case HBA_HOSTNOSSL: return !q->local && !q->tls;
	case HBA_HOSTGSSENC: return false;
	case HBA_HOSTNOGSSENC: return !q->local;
	}
	return false;
}

static bool addr_matches(const struct hba_rule *r, const uint8_t *addr)
{
	if (r->addr_all)
		return true;
	for (int i = 0; i < 16; i++)
		if ((addr[i] & r->mask[i]) != r->addr[i])
			return false;
	return true;
}

const struct hba_rule *hba_match(const struct hba *h, const struct hba_query *q)
{
	for (int i = 0; h && i < h->n; i++) {
		const struct hba_rule *r = &h->rules[i];
		if (conn_matches(r->conn, q) && (q->local || addr_matches(r, q->addr)) && db_matches(&r->db, q) &&
		    names_match(&r->user, q->user))
			return r;
	}
	return NULL;
}

void hba_format_addr(const uint8_t addr[16], bool local, char *out, size_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (local) {
		snprintf(out, len, "[local]");
		return;
	}
	char buf[INET6_ADDRSTRLEN];
	bool v4 = !memcmp(addr, mapped, 12);
	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? addr + 12 : addr, buf, sizeof buf))
		snprintf(buf, sizeof buf, "?");
	snprintf(out, len, "%s", buf);
}
