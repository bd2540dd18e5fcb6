# The front door.  `make run` and `make test` are the whole set-up.
BUILD      ?= build
BUILD_SAN  ?= build-asan
JOBS       ?= $(shell nproc)
LISTEN     ?= 127.0.0.1:8080
STORE      ?= sqlite:./aster.db
PYTHON     ?= /usr/bin/python3
SRC_FILES   = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src tests bench -name '*.[ch]')

.PHONY: all build build-asan run test unit e2e quality format deps deps-test clean bench-cron \
        bench-api bench-fire bench-queue-pg
.PHONY: cluster full-demo

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DASTER_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_SAN) -j $(JOBS)

run: build
	$(BUILD)/aster serve --listen $(LISTEN) --store $(STORE)

# Unit tests (ctest) and end-to-end tests (pytest against the real binary),
# once in the normal build and once under ASan+UBSan, then the quality gate.
test: deps-test build build-asan
	@echo "== unit tests ($(BUILD))"
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@echo "== unit tests ($(BUILD_SAN))"
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest --output-on-failure -j $(JOBS)
	@echo "== store tests on PostgreSQL ($(BUILD), $(BUILD_SAN))"
	scripts/pg-test.sh $(BUILD)/test_store_pg
	ASAN_OPTIONS=detect_leaks=1 scripts/pg-test.sh $(BUILD_SAN)/test_store_pg
	@echo "== end-to-end tests ($(BUILD))"
	ASTER_BIN=$(CURDIR)/$(BUILD)/aster $(PYTHON) -m pytest -q tests/e2e
	@echo "== end-to-end tests ($(BUILD_SAN))"
	ASTER_BIN=$(CURDIR)/$(BUILD_SAN)/aster $(PYTHON) -m pytest -q tests/e2e
	@echo "== end-to-end tests on PostgreSQL ($(BUILD))"
	ASTER_BIN=$(CURDIR)/$(BUILD)/aster ASTER_TEST_STORE=postgres \
	    scripts/pg-test.sh $(PYTHON) -m pytest -q tests/e2e
	@echo "== end-to-end tests on PostgreSQL ($(BUILD_SAN))"
	ASTER_BIN=$(CURDIR)/$(BUILD_SAN)/aster ASTER_TEST_STORE=postgres \
	    scripts/pg-test.sh $(PYTHON) -m pytest -q tests/e2e
	$(MAKE) quality

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

e2e: build
	ASTER_BIN=$(CURDIR)/$(BUILD)/aster $(PYTHON) -m pytest -q tests/e2e

# The same end-to-end suite, each server on a fresh database of a throwaway
# PostgreSQL server on loopback (scripts/pg-test.sh; tests/e2e/conftest.py).
.PHONY: e2e-pg
e2e-pg: build
	ASTER_BIN=$(CURDIR)/$(BUILD)/aster ASTER_TEST_STORE=postgres \
	    scripts/pg-test.sh $(PYTHON) -m pytest -q tests/e2e

quality: deps-test build
	@echo "== clang-format"
	clang-format --dry-run --Werror $(SRC_FILES)
	@echo "== cppcheck"
	cppcheck -j $(JOBS) --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --std=c11 -I src --include=/usr/include/uthash.h \
	    --suppress=missingIncludeSystem src
	@echo "quality: ok"

format:
	clang-format -i $(SRC_FILES)

bench-cron: build
	bench/cron/run.sh

bench-api: build
	bench/api/run.sh $(BUILD)/aster

bench-fire: build
	bench/fire/run.sh $(BUILD)/aster

bench-queue-pg: build
	bench/queue-pg/run.sh $(BUILD)/aster

# A local cluster on loopback: PostgreSQL, 2 `aster api`, 2 `aster scheduler`,
# 3 `aster worker` (scripts/cluster status|stop to look at it or stop it).
cluster: build
	ASTER_BIN=$(CURDIR)/$(BUILD)/aster scripts/cluster start

# Starts that cluster in a directory of its own, shows jobs of each kind, kills a worker
# and the scheduler leader, checks the every-second job, stops the cluster.
full-demo: build
	@test -x $(PYTHON) || scripts/deps.sh test
	ASTER_BIN=$(CURDIR)/$(BUILD)/aster $(PYTHON) scripts/full-demo

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
