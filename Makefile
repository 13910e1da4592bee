# Holdfast: the two commands are `make run` and `make test`. Every target
# first installs whatever Debian packages are missing.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=
# Tests at a time (tests/integration/CMakeLists.txt: the heavy ones run alone).
TEST_JOBS  ?= 2

.PHONY: all deps deps-test build build-asan build-fuzz test test-fast fuzz bench chaos run up down status format config-doc clean

all: build

deps:
	@bash tools/install-deps.sh

# What only the tests need besides (the deploy/k8s checks' tools).
deps-test:
	@HOLDFAST_TEST=1 bash tools/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(BUILD_ASAN)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DHOLDFAST_SANITIZE=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# The libFuzzer targets (fuzz/), built with clang, and only them.
$(BUILD_FUZZ)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DHOLDFAST_FUZZ=ON

build-fuzz: deps $(BUILD_FUZZ)/CMakeCache.txt
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzzers

# Every test, in the release build and again under AddressSanitizer + UBSan;
# then each fuzz target for FUZZ_SHORT_SECONDS over its committed seed corpus.
FUZZ_SHORT_SECONDS ?= 10
test: deps-test build build-asan build-fuzz
	cd $(BUILD) && ctest -j $(TEST_JOBS) --output-on-failure $(CTEST_ARGS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -j $(TEST_JOBS) --output-on-failure $(CTEST_ARGS)
	bash fuzz/run.sh --seconds $(FUZZ_SHORT_SECONDS) $(BUILD_FUZZ)

# The release build only (quicker while developing).
test-fast: deps-test build
	cd $(BUILD) && ctest -j $(TEST_JOBS) --output-on-failure $(CTEST_ARGS)

# Long fuzzing runs (not part of `make test`): FUZZ_SECONDS per target, one
# target at a time, the corpus growing in build-fuzz/corpus/TARGET/ and any
# crash in build-fuzz/crashes/TARGET/. FUZZ_TARGETS picks some (default all).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz: build-fuzz
	bash fuzz/run.sh --long --seconds $(FUZZ_SECONDS) $(BUILD_FUZZ) $(FUZZ_TARGETS)

# Benchmarks (not part of `make test`): each prints its table and the
# command that reproduces it; bench/summary.py then prints every figure
# beside its baseline and target, writes bench/results/latest.json and
# draws the plots (bench/results/*.png). BENCH_SECONDS / BENCH_CLIENTS tune
# the run; about 25 minutes on two cores.
BENCH_SECONDS ?= 10
BENCH_CLIENTS ?= 1 8 32 128
bench: build
	@HOLDFAST_BENCH=1 bash tools/install-deps.sh
	bash bench/node/install.sh
	bash bench/ingest_throughput.sh $(BUILD) $(BENCH_SECONDS) "$(BENCH_CLIENTS)"
	bash bench/relay.sh $(BUILD) 200000 1000 $(BENCH_SECONDS)
	bash bench/replay.sh $(BUILD) 120000
	BENCH_PARTS="2 4" bash bench/gateway.sh $(BUILD) 10000 1000 $(BENCH_SECONDS)
	bash bench/capacity.sh $(BUILD)
	bash bench/e2e.sh $(BUILD) $(BENCH_SECONDS) holdfast
	bash bench/e2e.sh $(BUILD) $(BENCH_SECONDS) socketio
	bash bench/scaling.sh $(BUILD) 2000 250 $(BENCH_SECONDS)
	python3 bench/summary.py

# The chaos suite (not part of `make test`, which runs its short version):
# every scenario against a fresh local stack of its own, then a table.
# CHAOS_ARGS go to every scenario (e.g. --duration 60 --clients 500).
CHAOS_ARGS ?=
chaos: build
	bash chaos/all.sh --own-stack $(CHAOS_ARGS)

run: build
	@bash tools/stack.sh run

up: build
	@bash tools/stack.sh up

down:
	@bash tools/stack.sh down

status:
	@bash tools/stack.sh status

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# docs/configuration.md from every program's settings table (their --help);
# integration test 005 fails while the committed file differs.
config-doc: build
	bash tools/gen-config-doc.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
