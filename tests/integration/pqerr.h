/* tests/integration/pqerr.h: how the libpq test clients (pqtry, pqgroup)
 * print a failure: the SQLSTATE found in a verbose libpq message, the text on
 * one line. */
#ifndef PQERR_H
#define PQERR_H

#include <ctype.h>
#include <string.h>

/* "FATAL:  XXXXX:" / "ERROR:  XXXXX:" in a verbose libpq message; "none" if
 * there is none (the failure did not come from a server). */
static inline void pqerr_sqlstate(const char *msg, char out[6])
{
	strcpy(out, "none");
	static const char *tags[] = { "FATAL:", "ERROR:", "PANIC:" };
	for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
		for (const char *p = strstr(msg, tags[t]); p; p = strstr(p + 1, tags[t])) {
			const char *q = p + strlen(tags[t]);
			while (*q == ' ')
				q++;
			int ok = 1;
			for (int i = 0; i < 5; i++)
				if (!q[i] || !(isdigit((unsigned char)q[i]) || isupper((unsigned char)q[i])))
					ok = 0;
			if (ok && q[5] == ':') {
				memcpy(out, q, 5);
				out[5] = 0;
				return;
			}
		}
	}
}

/* msg with its newlines as spaces and no trailing spaces, into out. */
static inline void pqerr_one_line(const char *msg, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = msg; *p && n + 1 < cap; p++)
		out[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = 0;
}

#endif
