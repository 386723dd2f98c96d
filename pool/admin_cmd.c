/* pool/admin_cmd.c: the admin console's command language, parsed without I/O
 * so that it can be tested alone. The grammar is PgBouncer's (src/admin.c's
 * regular expressions), so that scripts written for its console parse the
 * same here: `WORD [WORD] [;]` and `SET key = value`. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "pool/admin.h"

static const char *const show_names[SHOW_N] = {
	[SHOW_HELP] = "HELP", [SHOW_VERSION] = "VERSION", [SHOW_CONFIG] = "CONFIG",
	[SHOW_DATABASES] = "DATABASES", [SHOW_POOLS] = "POOLS", [SHOW_CLIENTS] = "CLIENTS",
	[SHOW_SERVERS] = "SERVERS", [SHOW_STATS] = "STATS", [SHOW_STATS_TOTALS] = "STATS_TOTALS",
	[SHOW_STATS_AVERAGES] = "STATS_AVERAGES", [SHOW_TOTALS] = "TOTALS", [SHOW_LISTS] = "LISTS",
	[SHOW_USERS] = "USERS", [SHOW_MEM] = "MEM", [SHOW_DNS_HOSTS] = "DNS_HOSTS", [SHOW_DNS_ZONES] = "DNS_ZONES",
	[SHOW_STATE] = "STATE", [SHOW_PEERS] = "PEERS", [SHOW_PEER_POOLS] = "PEER_POOLS", [SHOW_SOCKETS] = "SOCKETS",
	[SHOW_ACTIVE_SOCKETS] = "ACTIVE_SOCKETS", [SHOW_FDS] = "FDS", [SHOW_STATUS] = "STATUS",
	[SHOW_SHARDS] = "SHARDS", [SHOW_NODES] = "NODES", [SHOW_TOPOLOGY] = "TOPOLOGY", [SHOW_PINS] = "PINS",
	[SHOW_PARAM] = "PARAM", [SHOW_SETTING] = "SETTING",
};

/* The session settings PgBouncer answers itself, for drivers that ask. */
static const char *const fake_params[] = {
	"client_encoding", "default_transaction_isolation", "standard_conforming_strings", "datestyle", "timezone",
};

const char *admin_show_name(int show)
{
	return show >= 0 && show < SHOW_N ? show_names[show] : "?";
}

bool admin_console_db(const char *name)
{
	return name && (strcmp(name, "pgbouncer") == 0 || strcmp(name, "pgring") == 0);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static const char *skip_ws(const char *p)
{
	while (is_ws(*p))
		p++;
	return p;
}

/* A string quoted with q at p (q doubled for itself), copied unquoted into
 * out; NULL when unterminated, *toolong when it does not fit, *len its length. */
static const char *quoted(const char *p, char q, char *out, size_t cap, bool *toolong, size_t *len)
{
	size_t n = 0;
	const char *s = p + 1;
	for (;;) {
		if (!*s)
			return NULL;
		if (*s == q) {
			if (s[1] != q)
				break;
			s++;
		}
		if (n + 1 < cap)
			out[n] = *s;
		n++;
		s++;
	}
	if (n >= cap)
		*toolong = true;
	out[n < cap ? n : cap - 1] = 0;
	*len = n;
	return s + 1;
}

/* The characters from p to end, copied into out (cut to cap, *toolong). */
static const char *bare(const char *p, const char *end, char *out, size_t cap, bool *toolong)
{
	if (end == p)
		return NULL;
	size_t n = (size_t)(end - p);
	if (n >= cap) {
		*toolong = true;
		n = cap - 1;
	}
	memcpy(out, p, n);
	out[n] = 0;
	return end;
}

/* A word at p: bare [0-9A-Za-z_]+ (PgBouncer's regex is case-insensitive) or
 * "double quoted" with "" for a quote. Copied unquoted into out; NULL when
 * there is none there, *toolong when it does not fit. */
static const char *word(const char *p, char *out, size_t cap, bool *toolong)
{
	if (*p == '"') {
		size_t n;
		const char *end = quoted(p, '"', out, cap, toolong, &n);
		return n ? end : NULL;   /* PgBouncer's "" is an empty word: refused */
	}
	const char *s = p;
	while (isalnum((unsigned char)*s) || *s == '_')
		s++;
	return bare(p, s, out, cap, toolong);
}

/* The end of a command: blanks, an optional `;` and blanks. */
static bool at_end(const char *p)
{
	p = skip_ws(p);
	if (*p == ';')
		p = skip_ws(p + 1);
	return *p == 0;
}

/* A SET value: a word, a 'string' ('' for a quote), or (beyond PgBouncer,
 * which wants quotes for them) a bare number or path such as 1.5 or /tmp. */
static const char *set_value(const char *p, char *out, size_t cap, bool *toolong)
{
	if (*p == '\'') {
		size_t n;
		return quoted(p, '\'', out, cap, toolong, &n);
	}
	if (*p == '"')
		return word(p, out, cap, toolong);
	const char *s = p;
	while (*s && !is_ws(*s) && *s != ';' && *s != '\'' && *s != '"')
		s++;
	return bare(p, s, out, cap, toolong);
}

static int fail(char *err, size_t errlen, char sqlstate[6], const char *state, const char *fmt, const char *q)
{
	snprintf(err, errlen, fmt, q);
	memcpy(sqlstate, state, 6);
	return -1;
}

#define SYNTAX "invalid command '%s', use SHOW HELP;"

static int parse_set(const char *q, const char *p, struct admin_cmd *out, char *err, size_t errlen,
		     char sqlstate[6])
{
	bool toolong = false;
	if (!is_ws(*p))
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	p = word(skip_ws(p), out->arg, sizeof out->arg, &toolong);
	if (!p)
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	p = skip_ws(p);
	if (*p == '=')
		p++;
	else if (strncasecmp(p, "to", 2) == 0 && (is_ws(p[2]) || p[2] == '\'' || p[2] == '"'))
		p += 2;
	else
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	p = set_value(skip_ws(p), out->value, sizeof out->value, &toolong);
	if (!p || !at_end(p))
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	if (toolong || !out->arg[0])
		return fail(err, errlen, sqlstate, "42601", "bad arguments%s", "");
	out->verb = ADMIN_SET;
	return 0;
}

int admin_parse(const char *q, struct admin_cmd *out, char *err, size_t errlen, char sqlstate[6])
{
	memset(out, 0, sizeof *out);
	const char *p = skip_ws(q);
	if (at_end(p)) {
		out->verb = ADMIN_EMPTY;
		return 0;
	}
	if (strncasecmp(p, "--!pgring", 9) == 0 && (is_ws(p[9]) || !p[9]))
		return parse_set(q, p + 9, out, err, errlen, sqlstate);   /* the shebang: --!pgring key = value */
	char cmd[32];
	bool toolong = false;
	const char *after = word(p, cmd, sizeof cmd, &toolong);
	if (!after)
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	if (strcasecmp(cmd, "set") == 0 && !toolong)
		return parse_set(q, after, out, err, errlen, sqlstate);   /* "set" is no other command */
	const char *a = skip_ws(after);
	const char *end = after;
	if (a != after && *a && *a != ';') {
		end = word(a, out->arg, sizeof out->arg, &toolong);
		if (!end)
			return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
		/* pgring's DISABLE USER name / ENABLE USER name: a second word */
		const char *b = skip_ws(end);
		if ((strcasecmp(cmd, "disable") == 0 || strcasecmp(cmd, "enable") == 0) &&
		    strcasecmp(out->arg, "user") == 0 && b != end && *b && *b != ';') {
			out->of_user = true;
			end = word(b, out->arg, sizeof out->arg, &toolong);
			if (!end)
				return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
		}
	}
	if (!at_end(end))
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	if (toolong)
		return fail(err, errlen, sqlstate, "42601", "bad arguments%s", "");
	static const struct { const char *name; int verb; } verbs[] = {
		{ "show", ADMIN_SHOW }, { "select", ADMIN_SHOW }, { "pause", ADMIN_PAUSE }, { "resume", ADMIN_RESUME },
		{ "suspend", ADMIN_SUSPEND }, { "disable", ADMIN_DISABLE }, { "enable", ADMIN_ENABLE },
		{ "reconnect", ADMIN_RECONNECT }, { "kill", ADMIN_KILL }, { "kill_client", ADMIN_KILL_CLIENT },
		{ "reload", ADMIN_RELOAD }, { "shutdown", ADMIN_SHUTDOWN }, { "wait_close", ADMIN_WAIT_CLOSE },
		{ "reset", ADMIN_RESET },
	};
	int verb = 0;
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (strcasecmp(cmd, verbs[i].name) == 0)
			verb = verbs[i].verb;
	switch (verb) {
	case 0:
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	case ADMIN_SHOW:
		for (int i = 0; i < SHOW_N; i++)
			if (i != SHOW_PARAM && i != SHOW_SETTING && strcasecmp(out->arg, show_names[i]) == 0) {
				out->show = i;
				out->verb = verb;
				return 0;
			}
		for (size_t i = 0; i < sizeof fake_params / sizeof fake_params[0]; i++)
			if (strcasecmp(out->arg, fake_params[i]) == 0) {
				snprintf(out->arg, sizeof out->arg, "%s", fake_params[i]);
				out->show = SHOW_PARAM;
				out->verb = verb;
				return 0;
			}
		if (config_is_setting(out->arg)) {   /* the management database's SHOW name */
			for (char *c = out->arg; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			out->show = SHOW_SETTING;
			out->verb = verb;
			return 0;
		}
		return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
	case ADMIN_RESET:
		if (!out->arg[0])
			return fail(err, errlen, sqlstate, "42601", "a setting or ALL is required%s", "");
		for (char *c = out->arg; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		break;
	case ADMIN_RELOAD:
	case ADMIN_SUSPEND:
		if (out->arg[0])
			return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
		break;
	case ADMIN_SHUTDOWN:
		if (strcasecmp(out->arg, "WAIT_FOR_SERVERS") == 0)
			out->mode = ADMIN_SHUTDOWN_WAIT_FOR_SERVERS;
		else if (strcasecmp(out->arg, "WAIT_FOR_CLIENTS") == 0)
			out->mode = ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS;
		else if (out->arg[0])
			return fail(err, errlen, sqlstate, "42601", SYNTAX, q);
		break;
	case ADMIN_DISABLE:
	case ADMIN_ENABLE:
		if (!out->arg[0])
			return fail(err, errlen, sqlstate, "42601", out->of_user ? "a user is required%s"
				    : "a database is required%s", "");
		break;
	case ADMIN_KILL_CLIENT: {
		char *e;
		errno = 0;
		unsigned long long id = strtoull(out->arg, &e, 10);
		if (!out->arg[0] || *e || errno || !isdigit((unsigned char)out->arg[0]))
			return fail(err, errlen, sqlstate, "42601", "invalid client pointer supplied%s", "");
		out->id = id;
		break;
	}
	default:
		break;
	}
	out->verb = verb;
	return 0;
}
