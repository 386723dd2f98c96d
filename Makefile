# pgring build. `make` builds ./pgring; `make test` runs every test against a real
# PostgreSQL (installing what it needs through tools/setup); `make run` starts a
# throwaway PostgreSQL with pgring in front of it.

CC      ?= cc
CFLAGS  ?= -O2 -g
PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. $(PQ_CFLAGS) -MMD -MP
LDLIBS  := -luring -lwolfssl -linih -lpq -lpthread -lm
BUILD   ?= build

LIB_SRC  := $(sort $(wildcard core/*.c core/control/*.c proto/*.c pool/*.c tls/*.c))
LIB_SRC  := $(filter-out pool/main.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(sort $(wildcard tests/integration/*.c bench/*.c tools/*.c))
TOOL_BIN := $(TOOL_SRC:%.c=$(BUILD)/%)

PGRING_BIN ?= $(BUILD)/pgring

.PHONY: all test unit integration run bench test-asan setup clean fuzz fuzz-build fuzz-regress fuzz-libfuzzer

all: $(BUILD)/pgring $(TOOL_BIN)
	@if [ "$(BUILD)" = build ]; then ln -sf build/pgring pgring; fi

$(BUILD)/pgring: $(BUILD)/pool/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(UNIT_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcriterion $(LDLIBS)

$(BUILD)/tests/integration/etcdprobe: tests/integration/etcdprobe.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDFLAGS) $(LDLIBS)
# Small C programs used by tests and benchmarks (one file each).
$(BUILD)/tests/integration/%: tests/integration/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)
$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)
$(BUILD)/tools/%: tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)
# bench/scale (issue 19, scaling): the queue and budget micro-benchmark runs
# pgring's own core/queue.h and core/registry.c. `make bench-scale` builds and
# runs it (SCALE_ARGS: its options, e.g. SCALE_ARGS="-r 2 -d 100").
$(BUILD)/bench/scale: bench/scale.c $(BUILD)/core/registry.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDFLAGS) $(LDLIBS)
.PHONY: bench-scale
bench-scale: $(BUILD)/bench/scale
	$(BUILD)/bench/scale $(SCALE_ARGS)

setup:
	tools/setup

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

# Two lanes by default (tests/integration/run: JOBS): the long fault and load
# tests in one, the rest beside them. JOBS=1 runs everything in one lane.
JOBS ?= 2
integration: all
	PGRING_BIN=$(PGRING_BIN) BUILD=$(BUILD) JOBS=$(JOBS) tests/integration/run

test: setup
	$(MAKE) all $(BUILD)/unit-tests
	$(MAKE) unit
	$(MAKE) fuzz-regress
	$(MAKE) integration

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: setup
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DPGRING_CHECKS" \
		LDFLAGS="-fsanitize=address,undefined" all build-asan/unit-tests
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 build-asan/unit-tests
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -DPGRING_CHECKS" \
		LDFLAGS="-fsanitize=address,undefined" integration

# ---- libFuzzer targets (README, Fuzzing) ----
# Each tests/fuzz/<name>.c is a target, linked against the library built again
# with clang's fuzzer instrumentation and ASan/UBSan into build-fuzz/. Its seed
# corpus is tests/fuzz/corpus/<name>/; what a run finds new goes to
# build-fuzz/corpus/<name>/ (the checked-in corpus is never written).
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_REGRESS ?= 2
FUZZ_BUILD   := build-fuzz
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
		-DPGRING_CHECKS -I. $(PQ_CFLAGS) -MMD -MP
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/*.c))
FUZZ_NAMES   := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz-%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
# harness.c drives a shard for the targets that need one (through an abort-only
# stand-in for the Criterion assertions it uses, tests/fuzz/shim).
FUZZ_HARNESS := $(FUZZ_BUILD)/tests/unit/harness.o

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/fuzz/shim -c -o $@ $<

# An archive, so that a target may define a library symbol itself (by including
# a .c file to reach its static parsers) and that member is not linked in.
$(FUZZ_BUILD)/libpgring.a: $(FUZZ_LIB_OBJ) $(FUZZ_HARNESS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz-%: $(FUZZ_BUILD)/tests/fuzz/%.o $(FUZZ_BUILD)/libpgring.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# kept: make would delete them as intermediates and rebuild each time
.SECONDARY: $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/%.o)

fuzz-build: $(FUZZ_BIN)

# Every target for FUZZ_TIME seconds, one after the other (make fuzz FUZZ_TIME=600
# FUZZ_TARGETS="frame sql"); stops at the first finding, whose input libFuzzer
# writes to build-fuzz/crash-*. Then the protocol fuzzer's long run against the
# binary (fuzz-protocol below; FUZZ_PROTOCOL=0 leaves it out).
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_PROTOCOL ?= 1
fuzz: fuzz-libfuzzer
	@if [ "$(FUZZ_PROTOCOL)" = 1 ]; then $(MAKE) fuzz-protocol; fi

fuzz-libfuzzer: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t for $(FUZZ_TIME) s"; \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		$(FUZZ_BUILD)/fuzz-$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/ \
			$$([ -f tests/fuzz/$$t.dict ] && echo -dict=tests/fuzz/$$t.dict) \
			$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# Part of `make test`: each target over its checked-in corpus (every finding
# so far is in it), then FUZZ_REGRESS seconds of new inputs. Skipped, saying
# so, when clang cannot build a libFuzzer program here.
fuzz-regress:
	@if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}\n' | \
		$(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1; then \
		echo "fuzz-regress: SKIPPED: $(FUZZ_CC) cannot build libFuzzer targets (on Debian: clang and libclang-rt-NN-dev, see tools/setup)"; \
	else \
		$(MAKE) -j$$(nproc) fuzz-build && \
		for t in $(FUZZ_NAMES); do \
			rm -rf $(FUZZ_BUILD)/regress/$$t && mkdir -p $(FUZZ_BUILD)/regress/$$t && \
			$(FUZZ_BUILD)/fuzz-$$t -max_total_time=$(FUZZ_REGRESS) -artifact_prefix=$(FUZZ_BUILD)/ \
				$(FUZZ_BUILD)/regress/$$t tests/fuzz/corpus/$$t >$(FUZZ_BUILD)/regress/$$t.log 2>&1 || \
				{ tail -n 40 $(FUZZ_BUILD)/regress/$$t.log; echo "fuzz-regress: $$t FAILED"; exit 1; }; \
			echo "fuzz-regress: $$t ok ($$(ls tests/fuzz/corpus/$$t | wc -l) seeds)"; \
		done; \
	fi

run: setup all
	tools/run-demo

bench: setup all
	bench/run

clean:
	rm -rf build build-asan build-fuzz pgring

-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BUILD)/pool/main.d $(TOOL_BIN:%=%.d)
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_HARNESS:.o=.d) $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/%.d)

# ---- protocol fuzzer against the running binary (README, Protocol fuzzing) ----
# t_protofuzz for PROTOFUZZ_SECONDS (default 600, over transaction, session and
# statement pooling), strict: the known findings fail it too.
PROTOFUZZ_SECONDS ?= 600
.PHONY: fuzz-protocol
fuzz-protocol: all
	PROTOFUZZ_SECONDS=$(PROTOFUZZ_SECONDS) PROTOFUZZ_STRICT=1 TEST_TIMEOUT=$$(($(PROTOFUZZ_SECONDS) + 600)) \
		PGRING_BIN=$(PGRING_BIN) BUILD=$(BUILD) tests/integration/run t_protofuzz
