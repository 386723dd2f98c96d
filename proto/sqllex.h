/* proto/sqllex.h: the piece of SQL lexing that proto/sql.c (session effects)
 * and proto/sqlroute.c (read-only proofs) share: blanks and comments, with
 * PostgreSQL's nested block comments. Internal to proto/. */
#ifndef PGRING_SQLLEX_H
#define PGRING_SQLLEX_H

#include <stdbool.h>

/* Move *s past blanks and comments (not beyond end). False when a block
 * comment is not closed before end (*s is then end). */
static inline bool proto_sql_skip_space(const char **s, const char *end)
{
	const char *p = *s;
	for (;;) {
		while (p < end && (*p == ' ' || (*p >= '\t' && *p <= '\r')))   /* isspace() in the C locale */
			p++;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
			int depth = 0;
			while (p < end) {
				if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
					depth++;
					p += 2;
				} else if (end - p >= 2 && p[0] == '*' && p[1] == '/') {
					p += 2;
					if (--depth == 0)
						break;
				} else {
					p++;
				}
			}
			if (depth > 0) {
				*s = end;
				return false;
			}
			continue;
		}
		*s = p;
		return true;
	}
}

#endif
