/* pool/params.c: parameter sets and the SET replay that makes a server's
 * session look like the client's. Changes are rare (login, a client's SET), so
 * plain arrays and malloc'd strings; comparisons use a digest first. */
#include "pool/params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static uint64_t digest(const char *name, const char *value)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *c = name; *c; c++)
		h = (h ^ (uint8_t)tolower((unsigned char)*c)) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *c = value; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	return h * 0x9e3779b97f4a7c15ull;
}

static int find(const struct params *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcasecmp(p->v[i].name, name) == 0)
			return i;
	return -1;
}

const char *params_get(const struct params *p, const char *name)
{
	int i = find(p, name);
	return i < 0 ? NULL : p->v[i].value;
}

static bool set(struct params *p, const char *name, const char *value)
{
	int i = find(p, name);
	if (i >= 0) {
		if (strcmp(p->v[i].value, value) == 0)
			return true;
		char *v = strdup(value);
		if (!v)
			return false;
		p->hash -= digest(p->v[i].name, p->v[i].value);
		p->bytes = p->bytes - (uint32_t)strlen(p->v[i].value) + (uint32_t)strlen(v);
		free(p->v[i].value);
		p->v[i].value = v;
		p->hash += digest(p->v[i].name, v);
		return true;
	}
	if (p->n == p->cap) {
		if (p->cap >= PARAMS_MAX) {
			p->full = true;
			return false;
		}
		uint16_t cap = p->cap ? (uint16_t)(p->cap * 2) : 8;
		struct param *nv = realloc(p->v, cap * sizeof *nv);
		if (!nv)
			return false;
		p->v = nv;
		p->cap = cap;
	}
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return false;
	}
	p->v[p->n++] = (struct param){ n, v };
	p->hash += digest(n, v);
	p->bytes += (uint32_t)(strlen(n) + strlen(v) + 2);
	return true;
}

bool params_set(struct params *p, const char *name, const char *value)
{
	if (set(p, name, value))
		return true;
	p->failed = true;
	return false;
}

void params_remove(struct params *p, const char *name)
{
	int i = find(p, name);
	if (i < 0)
		return;
	p->hash -= digest(p->v[i].name, p->v[i].value);
	p->bytes -= (uint32_t)(strlen(p->v[i].name) + strlen(p->v[i].value) + 2);
	free(p->v[i].name);
	free(p->v[i].value);
	p->v[i] = p->v[--p->n];
}

void params_clear(struct params *p)
{
	for (int i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].value);
	}
	free(p->v);
	memset(p, 0, sizeof *p);
}

bool params_copy(struct params *dst, const struct params *src)
{
	params_clear(dst);
	for (int i = 0; i < src->n; i++)
		if (!params_set(dst, src->v[i].name, src->v[i].value))
			return false;
	return true;
}

bool params_is_session(const char *name)
{
	static const char *const facts[] = {
		"server_version", "server_encoding", "integer_datetimes", "is_superuser",
		"session_authorization", "in_hot_standby", "user", "database", "options",
		"replication",
	};
	for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
		if (strcasecmp(name, facts[i]) == 0)
			return false;
	if (strncasecmp(name, "pgring.", 7) == 0 || strncmp(name, "_pq_.", 5) == 0)
		return false;
	return *name != 0;   /* any other name: it goes back as a literal (append_set) */
}

static const char *effective(const struct params *p, const struct params *defaults, const char *name)
{
	const char *v = params_get(p, name);
	return v ? v : params_get(defaults, name);
}

/* Append "SELECT pg_catalog.set_config('name', 'value', false)"; a NULL value
 * resets the setting (set_config is not strict: NULL is RESET). Names go in as
 * literals, never as identifiers: a name such as some.var, whose first part is a
 * reserved word, would be a syntax error after RESET or SET. set_config takes
 * the value as the server itself reports it, so list settings such as
 * search_path ('"$user", public') come back exactly; a SET would quote such a
 * value into a single element. params_is_session admits only names of letters,
 * digits, '_' and '.', so the name needs no escaping. */
/* The length of s as a string literal, quotes and E prefix included. */
static size_t literal_len(const char *s)
{
	bool backslash = strchr(s, '\\') != NULL;
	size_t n = 2 + (backslash ? 1 : 0);
	for (const char *c = s; *c; c++)
		n += *c == '\'' || (*c == '\\' && backslash) ? 2 : 1;
	return n;
}

/* s as a string literal at o; returns the end. An E'' literal when s has a
 * backslash, whatever the server's standard_conforming_strings says. */
static char *put_literal(char *o, const char *s)
{
	bool backslash = strchr(s, '\\') != NULL;
	if (backslash)
		*o++ = 'E';
	*o++ = '\'';
	for (const char *c = s; *c; c++) {
		if (*c == '\'' || (*c == '\\' && backslash))
			*o++ = *c;
		*o++ = *c;
	}
	*o++ = '\'';
	return o;
}

static int append_set(char *out, size_t cap, size_t len, const char *name, const char *value)
{
	static const char head[] = "SELECT pg_catalog.set_config(", tail[] = ", false)";
	size_t need = (len ? 1 : 0) + strlen(head) + literal_len(name) + 2 +
		      (value ? literal_len(value) : strlen("NULL")) + strlen(tail) + 1;   /* NUL */
	if (len + need > cap)
		return -1;
	char *o = out + len;
	if (len)
		*o++ = ';';
	o = stpcpy(o, head);
	o = put_literal(o, name);
	o = stpcpy(o, ", ");
	o = value ? put_literal(o, value) : stpcpy(o, "NULL");
	o = stpcpy(o, tail);
	return (int)(o - (out + len));
}

/* statement_timeout is restored around the others: PostgreSQL times each
 * statement of a multi-statement Query by the value in force when it starts,
 * so a restore run under what the server's previous client left (1 ms, say)
 * could be killed, and its client with it. It is set to 0 first when the server
 * has another value, the rest follows under 0, and the client's own value comes
 * last (see params_diff_sql). */
static const char timeout_name[] = "statement_timeout";

static int diff_side(const struct params *from, const struct params *want, const struct params *have,
		     const struct params *defaults, char *out, size_t cap, size_t *len, bool skip_in_want)
{
	for (int i = 0; i < from->n; i++) {
		const char *name = from->v[i].name;
		if (!params_is_session(name) || !strcmp(name, timeout_name))
			continue;
		if (skip_in_want && params_get(want, name))
			continue;   /* handled from the want side */
		const char *w = effective(want, defaults, name);
		const char *h = effective(have, defaults, name);
		if (w && h && strcmp(w, h) == 0)
			continue;
		if (!w && !h)
			continue;
		int n = append_set(out, cap, *len, name, w);
		if (n < 0)
			return -1;
		*len += (size_t)n;
	}
	return 0;
}

int params_diff_sql(const struct params *want, const struct params *have,
		    const struct params *defaults, char *out, size_t cap)
{
	size_t len = 0;
	if (cap)
		out[0] = 0;
	if (want->hash == have->hash && want->n == have->n)
		return 0;
	const char *now = effective(have, defaults, timeout_name), *w = effective(want, defaults, timeout_name);
	int n;
	bool changes = (now == NULL) != (w == NULL) || (now && strcmp(now, w) != 0);
	if (changes && now && strcmp(now, "0") != 0) {   /* the only statement timed by the old value */
		if ((n = append_set(out, cap, len, timeout_name, "0")) < 0)
			return -1;
		len += (size_t)n;
		now = "0";
	}
	if (diff_side(want, want, have, defaults, out, cap, &len, false) ||
	    diff_side(have, want, have, defaults, out, cap, &len, true))
		return -1;
	if ((now == NULL) != (w == NULL) || (now && strcmp(now, w) != 0)) {
		if ((n = append_set(out, cap, len, timeout_name, w)) < 0)
			return -1;
		len += (size_t)n;
	}
	return (int)len;
}

int64_t params_timeout_ms(const char *value)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "us", 0.001 }, { "ms", 1 }, { "s", 1000 }, { "min", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	const char *v = value;
	while (isspace((unsigned char)*v) || *v == '\'')
		v++;
	char *end;
	double n = strtod(v, &end);
	if (end == v || n < 0 || n != n)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	double scale = 1;   /* PostgreSQL's unit for statement_timeout */
	if (*end && *end != '\'') {
		size_t k = 0;
		while (isalpha((unsigned char)end[k]))
			k++;
		scale = -1;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strlen(units[i].unit) == k && strncmp(end, units[i].unit, k) == 0)
				scale = units[i].ms;
		if (scale < 0)
			return -1;
	}
	double ms = n * scale;
	return ms > 9e15 ? INT64_MAX : (int64_t)(ms + 0.5);
}

bool params_parse_options(struct params *p, const char *options)
{
	const char *s = options;
	char *word = malloc(strlen(options) + 1);
	bool expect_c = false, ok = true;
	if (!word)
		return false;
	while (*s) {
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		size_t k = 0;
		while (*s && !isspace((unsigned char)*s)) {
			if (*s == '\\' && s[1])
				s++;
			word[k++] = *s;
			s++;
		}
		word[k] = 0;
		const char *setting = NULL;
		if (expect_c) {
			setting = word;
			expect_c = false;
		} else if (strcmp(word, "-c") == 0) {
			expect_c = true;
			continue;
		} else if (strncmp(word, "-c", 2) == 0) {
			setting = word + 2;
		} else if (strncmp(word, "--", 2) == 0) {
			setting = word + 2;
		} else {
			ok = false;
			break;
		}
		char *eq = strchr(setting, '=');
		if (!eq || eq == setting) {
			ok = false;
			break;
		}
		*eq = 0;
		for (char *c = (char *)setting; *c; c++)
			if (*c == '-')
				*c = '_';
		if (!params_set(p, setting, eq + 1)) {
			ok = false;
			break;
		}
	}
	free(word);
	return ok && !expect_c;
}
