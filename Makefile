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

.PHONY: all test unit integration run bench test-asan setup clean

all: $(BUILD)/pgring $(TOOL_BIN)
	@if [ "$(BUILD)" = build ]; then ln -sf build/pgring pgring; fi

$(BUILD)/pgring: $(BUILD)/pool/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(UNIT_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcriterion $(LDLIBS)

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

setup:
	tools/setup

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

integration: all
	PGRING_BIN=$(PGRING_BIN) BUILD=$(BUILD) tests/integration/run

test: setup
	$(MAKE) all $(BUILD)/unit-tests
	$(MAKE) unit
	$(MAKE) integration

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: setup
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DPGRING_CHECKS" \
		LDFLAGS="-fsanitize=address,undefined" all build-asan/unit-tests
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 build-asan/unit-tests
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -DPGRING_CHECKS" \
		LDFLAGS="-fsanitize=address,undefined" integration

run: setup all
	tools/run-demo

bench: setup all
	bench/run

clean:
	rm -rf build build-asan pgring

-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BUILD)/pool/main.d $(TOOL_BIN:%=%.d)
