# Skein: the two commands of README.md, and a few more.
#   make run    install what is missing, build, start the local cluster (Ctrl-C stops it)
#   make test   the same set-up, then every test (unit, ASan+UBSan unit, fuzz corpora,
#               integration), ending in one summary line
#   make bench  benchmarks, one table, JSON under bench/results/
#   make fuzz   each libFuzzer target for FUZZ_SECONDS (clang)
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan run test bench fuzz docs clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DSKEIN_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory -s

build-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DSKEIN_WERROR=ON -DSKEIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS) -- --no-print-directory -s

run: build
	@scripts/local-tls.sh run/tls
	@$(BUILD)/bin/skein up --config deploy/local/skein.ini

test: build build-asan
	@BUILD=$(BUILD) BUILD_ASAN=$(BUILD_ASAN) scripts/test.sh

bench: build
	@BUILD=$(BUILD) bench/run.sh

fuzz: deps
	@cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DSKEIN_FUZZ=ON -DSKEIN_TESTS=OFF >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS) -- --no-print-directory -s
	@BUILD_FUZZ=$(BUILD_FUZZ) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

docs: build
	@scripts/gen-config-doc.sh $(BUILD) > docs/configuration.md

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
