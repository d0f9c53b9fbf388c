# Sluice — GNU Makefile. `make run` starts the server, `make test` runs every suite.
# Build output lives under build/ (release) and build/asan/ (ASan+UBSan).

PKGS     := libmicrohttpd libcurl jansson sqlite3 libpq libcrypto zlib
CC       ?= cc
BUILD    ?= build
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wvla -Wimplicit-fallthrough -Werror
OPT      ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -MMD -MP -Isrc -I$(BUILD)/gen \
            -DSLUICE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

SRC      := $(shell find src -name '*.c' | sort)
LIBSRC   := $(filter-out src/main.c,$(SRC))
OBJ      := $(patsubst %.c,$(BUILD)/obj/%.o,$(SRC))
LIBOBJ   := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIBSRC))
MIGR     := $(sort $(wildcard src/store/migrations/*.sql))
GENOBJ   := $(BUILD)/obj/gen/embedded.o
UNITSRC  := $(sort $(wildcard tests/unit/test_*.c))
PYTEST   := /usr/bin/python3 -m pytest

.PHONY: all deps run test test-full unit integration browser lint asan asan-test tsan valgrind \
        fuzz fuzz-build fuzz-smoke bench soak soak-memory clean help

all: $(BUILD)/sluice

help:
	@echo "make run        install what is missing, build, start sluice on SQLite in ./sluice-data"
	@echo "make test       install what is missing, build, run every suite"
	@echo "make test-full  make test, then sanitizers, soaks and fuzzing at length (hours)"
	@echo "make unit | integration | browser | lint | asan | tsan | valgrind | fuzz | fuzz-smoke"
	@echo "     soak | soak-memory | bench"

deps:
	@bash scripts/deps.sh

$(BUILD)/sluice: $(OBJ) $(GENOBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Migrations and the console (web/) are embedded into the binary as C arrays. The console's
# one third-party module, lit-html (pinned in package.json), is copied out of node_modules.
WEB      := $(sort $(shell find web -type f 2>/dev/null))
LITHTML  := node_modules/lit-html/lit-html.js

$(LITHTML):
	npm ci --no-audit --no-fund --loglevel=error

$(BUILD)/gen/embedded.c: $(MIGR) scripts/embed.sh $(WEB) $(LITHTML)
	@mkdir -p $(dir $@)
	bash scripts/embed.sh $@ $(MIGR) $(WEB) web/vendor/lit-html.js=$(LITHTML)

$(GENOBJ): $(BUILD)/gen/embedded.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/unit: $(LIBOBJ) $(GENOBJ) $(UNITSRC) tests/unit/runner.c tests/unit/unit.h
	$(CC) $(CFLAGS) -Itests/unit -o $@ tests/unit/runner.c $(UNITSRC) $(LIBOBJ) $(GENOBJ) \
	    $(LDFLAGS) $(LDLIBS)

# bench/storage_limit: the database's own insert rate, the ingest benchmark's baseline.
$(BUILD)/storage_limit: $(LIBOBJ) $(GENOBJ) bench/storage_limit.c
	$(CC) $(CFLAGS) -o $@ bench/storage_limit.c $(LIBOBJ) $(GENOBJ) $(LDFLAGS) $(LDLIBS)

run: deps $(BUILD)/sluice
	./$(BUILD)/sluice serve

unit: $(BUILD)/unit
	./$(BUILD)/unit

integration: $(BUILD)/sluice
	SLUICE_BIN=$(abspath $(BUILD)/sluice) $(PYTEST) -q tests/integration

# The console in headless Chromium (tests/browser, node's test runner + playwright-core).
browser: $(BUILD)/sluice
	SLUICE_BIN=$(abspath $(BUILD)/sluice) node --test --test-concurrency=1 tests/browser/

test: deps
	@bash scripts/test.sh

lint:
	@bash scripts/lint.sh

asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" build/asan/sluice build/asan/unit
	ASAN_OPTIONS=detect_leaks=1 ./build/asan/unit
	SLUICE_BIN=$(abspath build/asan/sluice) SLUICE_SANITIZED=1 $(PYTEST) -q tests/integration

# ThreadSanitizer (clang) under build/tsan: the unit and integration suites. A race makes
# sluice exit 66 at the end, which fails the test that started it (SLUICE_SANITIZED=1);
# tests/tsan.supp may silence races inside the uninstrumented system libraries only, each
# with its reason.
TSAN_RUN := exitcode=66 second_deadlock_stack=1 history_size=4 \
            suppressions=$(abspath tests/tsan.supp)
tsan:
	$(MAKE) BUILD=build/tsan CC=clang OPT="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=thread" build/tsan/sluice build/tsan/unit
	TSAN_OPTIONS="$(TSAN_RUN)" ./build/tsan/unit
	SLUICE_BIN=$(abspath build/tsan/sluice) SLUICE_SANITIZED=1 TSAN_OPTIONS="$(TSAN_RUN)" \
	    $(PYTEST) -q tests/integration

# Everything make test leaves out for time (hours, not minutes): the integration suites
# under ASan+UBSan and under TSan, the 100-round crash soak, the 30-minute memory soak and
# every fuzz target for FUZZ_FULL_SECONDS (default 120). scripts/test_full.sh.
test-full: deps
	@bash scripts/test_full.sh

valgrind: $(BUILD)/unit
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    ./$(BUILD)/unit

# Fuzzing (tests/fuzz): clang libFuzzer with ASan+UBSan, built under build/fuzz. Every
# tests/fuzz/fuzz_NAME.c is one target, linked with the harness (in-process server, checks)
# and the library objects; its seeds and kept crashers are tests/fuzz/corpus/NAME/.
# `make fuzz-smoke` runs each target briefly (part of `make test`); `make fuzz` runs each for
# FUZZ_SECONDS (default 600) at the lowest CPU priority. scripts/fuzz.sh does both.
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_OPT     := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_SECONDS ?= 600

fuzz-build:
	$(MAKE) BUILD=build/fuzz CC=clang OPT="$(FUZZ_OPT)" LDFLAGS="-fsanitize=address,undefined" \
	    $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.c tests/fuzz/fuzz.h $(LIBOBJ) $(GENOBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< tests/fuzz/harness.c $(LIBOBJ) \
	    $(GENOBJ) $(LDFLAGS) $(LDLIBS) -ldl

fuzz-smoke: fuzz-build
	@bash scripts/fuzz.sh smoke

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh long

# The crash soak (tests/integration/test_soak_crash.py) at full length: 100 SIGKILLs under
# load on SQLite and on PostgreSQL; `make test` runs it with 10. Figures: build/soak/.
SOAK_ROUNDS ?= 100
soak: $(BUILD)/sluice
	SLUICE_BIN=$(abspath $(BUILD)/sluice) SLUICE_SOAK_ROUNDS=$(SOAK_ROUNDS) $(PYTEST) -q -s \
	    -p no:cacheprovider tests/integration/test_soak_crash.py

# The memory soak (scripts/soak_memory.py): 30 minutes of mixed load, RSS every 10 s, a
# verdict (flat or growing over the last half). SOAK_DB=postgres for PostgreSQL.
SOAK_SECONDS ?= 1800
SOAK_DB ?= sqlite
soak-memory: $(BUILD)/sluice
	SLUICE_BIN=$(abspath $(BUILD)/sluice) /usr/bin/python3 scripts/soak_memory.py \
	    --seconds $(SOAK_SECONDS) --db $(SOAK_DB)

bench:
	@bash scripts/deps.sh --bench
	$(MAKE) $(BUILD)/sluice $(BUILD)/storage_limit
	SLUICE_BIN=$(abspath $(BUILD)/sluice) bash bench/run.sh

clean:
	rm -rf build

-include $(OBJ:.o=.d)
