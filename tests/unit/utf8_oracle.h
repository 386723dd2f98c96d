/* tests/unit/utf8_oracle.h: what valid UTF-8 is, decoded from first
 * principles so that tests of proto_utf8_len and of the escaping built on it
 * (test_build.c, test_log.c) do not check the code against itself. */
#ifndef PGRING_TEST_UTF8_ORACLE_H
#define PGRING_TEST_UTF8_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Shortest form, no surrogates, at most U+10FFFF. */
static inline bool valid_utf8(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t c = p[i], min;
		size_t k;
		if (c < 0x80) { i++; continue; }
		if ((c & 0xE0) == 0xC0) { k = 2; c &= 0x1F; min = 0x80; }
		else if ((c & 0xF0) == 0xE0) { k = 3; c &= 0x0F; min = 0x800; }
		else if ((c & 0xF8) == 0xF0) { k = 4; c &= 0x07; min = 0x10000; }
		else return false;
		if (i + k > n)
			return false;
		for (size_t j = 1; j < k; j++) {
			if ((p[i + j] & 0xC0) != 0x80)
				return false;
			c = c << 6 | (p[i + j] & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
		i += k;
	}
	return true;
}

#endif
