/* tests/fuzz/shim/criterion/criterion.h: the few Criterion assertions that
 * tests/unit/harness.c uses, as aborts, so that the fuzz targets can drive a
 * shard through that harness without linking Criterion (whose runner would
 * fight libFuzzer's main). */
#ifndef PGRING_FUZZ_CRITERION_SHIM_H
#define PGRING_FUZZ_CRITERION_SHIM_H

#include <stdio.h>
#include <stdlib.h>

#define cr_assert(cond, ...)                                                        \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: harness: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                    \
		}                                                                   \
	} while (0)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b))
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL)

#endif
