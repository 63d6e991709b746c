# interview-api: `make run` starts everything, `make test` proves it.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
PYTHON     := /usr/bin/python3
WERROR     ?= $(if $(CI),ON,OFF)

.PHONY: all build build-asan models web-assets deps run test unit blackbox bench bench-smoke fuzz fuzz-smoke test-valgrind clean

all: build

deps:
	@scripts/deps.sh run

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIA_WERROR=$(WERROR) >/dev/null

# The analysis models (npm, pinned in scripts/models.lock); does nothing when models/ matches.
models:
	@scripts/models.sh

# Swagger UI for GET /docs (npm, pinned in scripts/web-assets.lock); does nothing when vendor/ matches.
web-assets:
	@scripts/web-assets.sh

build: models web-assets $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DIA_SANITIZE=ON -DIA_WERROR=$(WERROR) >/dev/null

build-asan: models web-assets $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: deps build
	$(BUILD)/interview-api run

test:
	@scripts/deps.sh test
	$(MAKE) build build-asan
	$(MAKE) unit blackbox bench-smoke fuzz-smoke

unit:
	cd $(BUILD) && ctest --output-on-failure
	cd $(ASAN_BUILD) && ctest --output-on-failure

# The black-box suite runs the sanitizer build of the real program.
# BLACKBOX_TESTS narrows the run to some files (PYTEST_ARGS="-k ..." to some tests).
BLACKBOX_TESTS ?= tests/blackbox
blackbox:
	IA_BIN=$(CURDIR)/$(ASAN_BUILD)/interview-api $(PYTHON) -m pytest -q $(BLACKBOX_TESTS) $(PYTEST_ARGS)

# Benchmarks against nginx and bare ffmpeg in the same run (not part of `make test`).
bench:
	@scripts/deps.sh bench
	$(MAKE) build
	$(PYTHON) bench/run.py --bin $(CURDIR)/$(BUILD)/interview-api

# One short iteration of each benchmark, so that they do not rot.
bench-smoke:
	@scripts/deps.sh bench
	$(PYTHON) bench/run.py --bin $(CURDIR)/$(BUILD)/interview-api --smoke --out /tmp/ia-bench-smoke
	$(PYTHON) bench/s3_publish.py --bin $(CURDIR)/$(BUILD)/interview-api --smoke

# libFuzzer targets for every parser of untrusted input (FUZZ_SECONDS each, default 60).
fuzz:
	@scripts/deps.sh fuzz
	fuzz/run.sh

# Every fuzz target builds and runs a few seconds on its seeds, so that none rots.
fuzz-smoke:
	FUZZ_SECONDS=3 fuzz/run.sh

# The black-box suite with the program under valgrind (a normal build, no sanitizers).
test-valgrind:
	@scripts/deps.sh test
	scripts/test-valgrind.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
