/* tests/unit/test_log.c: core/log.c writes every event as exactly one line,
 * whatever the message holds: a client's user name with a newline and a forged
 * log line after it, carriage returns, terminal escapes and invalid UTF-8 come
 * out escaped (\n \r \t \\ \xNN), valid UTF-8 as it is, and unescaping the line
 * gives the message's bytes back. Each test logs to its own temp file (Criterion
 * runs each test in its own process, so log_open's state does not leak). */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "utf8_oracle.h"

/* ---- helpers ---- */

static char log_file[64];

static void log_to_temp(void)
{
	strcpy(log_file, "/tmp/pgring-test-log.XXXXXX");
	int fd = mkstemp(log_file);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(log_open(0, log_file), 0);
}

static void log_fini(void)
{
	if (log_file[0])
		unlink(log_file);
}

/* Everything written to the log so far (NUL-terminated; *len without it). */
static char *slurp(size_t *len)
{
	static char buf[65536];
	int fd = open(log_file, O_RDONLY);
	cr_assert_geq(fd, 0);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	cr_assert_geq(n, 0);
	buf[n] = 0;
	*len = (size_t)n;
	return buf;
}

/* The log holds exactly one line (one '\n', at the end, no '\r'); returns the
 * message part of it (after the header's "control: "), newline removed. */
static char *one_line(void)
{
	size_t n;
	char *s = slurp(&n);
	cr_assert_gt(n, 0, "nothing logged");
	cr_assert_eq(s[n - 1], '\n', "line does not end in a newline: [%s]", s);
	cr_assert_eq(memchr(s, '\n', n), s + n - 1, "more than one line: [%s]", s);
	cr_assert_null(memchr(s, '\r', n), "carriage return in the log: [%s]", s);
	s[n - 1] = 0;
	char *m = strstr(s, " control: ");
	cr_assert_not_null(m, "no header in [%s]", s);
	return m + strlen(" control: ");
}


/* Undo the escapes; returns the length, -1 on a malformed escape. */
static long unescape(const char *s, char *out)
{
	size_t o = 0;
	for (size_t i = 0; s[i];) {
		if (s[i] != '\\') {
			out[o++] = s[i++];
			continue;
		}
		char c = s[i + 1];
		if (c == 'n') out[o++] = '\n';
		else if (c == 'r') out[o++] = '\r';
		else if (c == 't') out[o++] = '\t';
		else if (c == '\\') out[o++] = '\\';
		else if (c == 'x') {
			unsigned v;
			if (!s[i + 2] || !s[i + 3] || sscanf(s + i + 2, "%2x", &v) != 1)
				return -1;
			out[o++] = (char)v;
			i += 4;
			continue;
		} else
			return -1;
		i += 2;
	}
	out[o] = 0;
	return (long)o;
}

static void expect_logged(const char *msg, const char *want)
{
	log_to_temp();
	log_write(LOG_WARNING, 0, "%s", msg);
	char *got = one_line();
	cr_assert_str_eq(got, want);
}

TestSuite(log_escape, .fini = log_fini);

/* ---- the forged line ---- */

Test(log_escape, newline_cannot_forge_a_line)
{
	log_to_temp();
	const char *user = "evil\n2026-12-03 10:00:00.000 UTC [1] LOG control: FAKE LINE";
	log_write(LOG_INFO, 42, "login: user=%s database=%s", user, "app");
	size_t n;
	char *s = slurp(&n);
	cr_assert_eq(memchr(s, '\n', n), s + n - 1, "more than one line: [%s]", s);
	cr_assert_not_null(strstr(s, " c=42: login: user=evil\\n2026-12-03 10:00:00.000 UTC [1] LOG "
				     "control: FAKE LINE database=app\n"), "[%s]", s);
	cr_assert_null(strstr(s, "\n2026-12-03"));
}

Test(log_escape, control_characters)
{
	expect_logged("a\rb", "a\\rb");
	log_fini();
	expect_logged("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
	log_fini();
	expect_logged("tab\there", "tab\\there");
	log_fini();
	expect_logged("\x01\x07\x08\x0b\x0c\x1f\x7f", "\\x01\\x07\\x08\\x0b\\x0c\\x1f\\x7f");
	log_fini();
	expect_logged("crlf\r\nnext", "crlf\\r\\nnext");
}

Test(log_escape, backslash_is_doubled)
{
	/* a literal backslash-n is not the same as a newline */
	expect_logged("a\\nb C:\\x41", "a\\\\nb C:\\\\x41");
}

/* ---- UTF-8 ---- */

Test(log_escape, valid_utf8_unchanged)
{
	/* Latin-1 range, CJK, an emoji (4 bytes), U+00A0, U+2027, U+10FFFF, U+FFFD */
	const char *s = "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xc2\xa0\xe2\x80\xa7"
			"\xf4\x8f\xbf\xbf\xef\xbf\xbd";
	expect_logged(s, s);
	log_fini();
	expect_logged("na\u00efve \u65e5\u672c \U0001F600", "na\u00efve \u65e5\u672c \U0001F600");
}

Test(log_escape, invalid_bytes_escaped_each)
{
	expect_logged("\xff\xfe", "\\xff\\xfe");
	log_fini();
	/* a 3-byte sequence cut short, inside and at the end of the message */
	expect_logged("a\xe6\x97z", "a\\xe6\\x97z");
	log_fini();
	expect_logged("end\xe6\x97", "end\\xe6\\x97");
	log_fini();
	/* overlong '/' (2 and 3 bytes) */
	expect_logged("\xc0\xaf|\xe0\x80\xaf", "\\xc0\\xaf|\\xe0\\x80\\xaf");
	log_fini();
	/* a UTF-16 surrogate, above U+10FFFF, lone continuation bytes, F5 */
	expect_logged("\xed\xa0\x80|\xf4\x90\x80\x80|\x80\xbf|\xf5",
		      "\\xed\\xa0\\x80|\\xf4\\x90\\x80\\x80|\\x80\\xbf|\\xf5");
	log_fini();
	/* an invalid byte just before a valid character: the character survives */
	expect_logged("\xe6\xe6\x97\xa5", "\\xe6\xe6\x97\xa5");
}

Test(log_escape, unicode_line_breaks_escaped)
{
	/* NEL and the other C1 controls, LINE and PARAGRAPH SEPARATOR */
	expect_logged("a\xc2\x85" "b\xc2\x9b" "c\xe2\x80\xa8" "d\xe2\x80\xa9" "e",
		      "a\\xc2\\x85b\\xc2\\x9bc\\xe2\\x80\\xa8d\\xe2\\x80\\xa9e");
}

/* ---- long messages ---- */

Test(log_escape, long_message_cut_between_characters)
{
	log_to_temp();
	char msg[3 * 1500 + 1];
	for (int i = 0; i < 1500; i++)
		memcpy(msg + 3 * i, "\xe6\x97\xa5", 3);
	msg[sizeof msg - 1] = 0;
	log_write(LOG_WARNING, 0, "%s", msg);
	char *got = one_line();
	size_t n = strlen(got);
	cr_assert_gt(n, 1000);
	cr_assert_eq(n % 3, 0, "cut inside a character (%zu bytes)", n);
	cr_assert(valid_utf8((const uint8_t *)got, n));
	cr_assert_eq(memcmp(got, msg, n), 0);
}

Test(log_escape, long_message_of_escapes_cut_between_escapes)
{
	log_to_temp();
	char msg[2000 + 1];
	memset(msg, '\n', 2000);
	msg[2000] = 0;
	log_write(LOG_WARNING, 0, "x%s", msg);
	char *got = one_line();
	size_t n = strlen(got);
	cr_assert_gt(n, 1000);
	cr_assert_eq(got[0], 'x');
	cr_assert_eq((n - 1) % 2, 0, "cut inside an escape (%zu bytes)", n);
	for (size_t i = 1; i < n; i += 2)
		cr_assert(got[i] == '\\' && got[i + 1] == 'n', "at %zu: [%.8s]", i, got + i);

	/* invalid bytes (4 output bytes each) */
	log_fini();
	log_to_temp();
	memset(msg, 0xff, 2000);
	log_write(LOG_WARNING, 0, "%s", msg);
	got = one_line();
	n = strlen(got);
	cr_assert_gt(n, 1000);
	cr_assert_eq(n % 4, 0, "cut inside an escape (%zu bytes)", n);
	for (size_t i = 0; i < n; i += 4)
		cr_assert_eq(memcmp(got + i, "\\xff", 4), 0);
}

Test(log_escape, cut_message_drops_a_split_character)
{
	/* the formatted message is cut at 2047 bytes: put a 4-byte character across it */
	log_to_temp();
	char msg[2100];
	memset(msg, 'a', 2045);
	memcpy(msg + 2045, "\xf0\x9f\x98\x80", 4);
	memset(msg + 2049, 'b', 20);
	msg[2069] = 0;
	log_write(LOG_WARNING, 0, "%s", msg);
	char *got = one_line();
	size_t n = strlen(got);
	cr_assert_eq(n, 2045, "%zu bytes, ending [%s]", n, got + (n > 16 ? n - 16 : 0));
	cr_assert(valid_utf8((const uint8_t *)got, n));
}

/* ---- any bytes at all ---- */

Test(log_escape, random_messages_one_line_valid_utf8_and_reversible)
{
	log_to_temp();
	/* a biased alphabet: controls, backslash, high bytes, parts of valid sequences */
	static const char *const pieces[] = {
		"a", "Z", " ", "\\", "\\n", "\n", "\r", "\t", "\x1b", "\x7f", "\x01",
		"\xff", "\x80", "\xc0", "\xc3", "\xc3\xaf", "\xe6\x97", "\xe6\x97\xa5",
		"\xed\xa0\x80", "\xf0\x9f\x98", "\xf0\x9f\x98\x80", "\xf4\x90\x80\x80",
		"\xc2\x85", "\xe2\x80\xa8", "x",
	};
	const int npieces = (int)(sizeof pieces / sizeof pieces[0]);
	srand(12345);
	for (int round = 0; round < 500; round++) {
		cr_assert_eq(truncate(log_file, 0), 0);   /* the log's fd appends: back to 0 */
		char msg[400];
		size_t len = 0;
		int count = rand() % 60;
		for (int i = 0; i < count; i++) {
			const char *p = pieces[rand() % npieces];
			memcpy(msg + len, p, strlen(p));
			len += strlen(p);
		}
		msg[len] = 0;
		log_write(LOG_WARNING, 7, "%s", msg);
		size_t n;
		char *s = slurp(&n);
		cr_assert_eq(memchr(s, '\n', n), s + n - 1, "round %d: not one line", round);
		cr_assert(valid_utf8((const uint8_t *)s, n), "round %d: invalid UTF-8", round);
		for (size_t i = 0; i < n; i++) {
			uint8_t c = (uint8_t)s[i];
			cr_assert(c >= 0x20 || (c == '\n' && i == n - 1), "round %d: control byte %02x", round, c);
			cr_assert_neq(c, 0x7f);
		}
		cr_assert_null(strstr(s, "\xc2\x85"));
		cr_assert_null(strstr(s, "\xe2\x80\xa8"));
		s[n - 1] = 0;
		char *m = strstr(s, " c=7: ");
		cr_assert_not_null(m);
		char back[2048];
		long bl = unescape(m + strlen(" c=7: "), back);
		cr_assert_eq(bl, (long)len, "round %d: unescaped %ld bytes, sent %zu", round, bl, len);
		cr_assert_eq(memcmp(back, msg, len), 0, "round %d: does not unescape to the message", round);
	}
}

Test(log_escape, appends_one_line_per_call)
{
	log_to_temp();
	log_write(LOG_WARNING, 0, "one\ntwo");
	log_write(LOG_ERROR, 0, "three\r\n");
	size_t n;
	char *s = slurp(&n);
	int lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += s[i] == '\n';
	cr_assert_eq(lines, 2, "[%s]", s);
	cr_assert_not_null(strstr(s, "WARNING control: one\\ntwo\n"));
	cr_assert_not_null(strstr(s, "ERROR control: three\\r\\n\n"));
}
