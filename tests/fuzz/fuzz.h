/* tests/fuzz/fuzz.h: what the libFuzzer targets share. A target's checks are
 * properties of the code under test (a framer gives back exactly the bytes it
 * was fed); a failed check aborts, which libFuzzer reports as a crash with the
 * input that caused it. */
#ifndef PGRING_FUZZ_H
#define PGRING_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                      \
		}                                                                     \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A NUL-terminated copy of data[0..size) (malloc'd): C-string parsers get
 * exactly the input's bytes and ASan sees any read past them. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	for (size_t i = 0; i < size; i++)
		s[i] = (char)data[i];
	s[size] = '\0';
	return s;
}

#endif
