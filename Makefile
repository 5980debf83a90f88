# Entry points (see README): make (build/crosvm), make guest, make demo, make test, make bench,
# make fuzz.
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
FUZZ_SECONDS ?= 600

.PHONY: all crosvm deps guest demo test unit-test bench fuzz format clean

all: crosvm

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null

crosvm: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD)

guest: deps
	@bash guest/build-kernel.sh
	@bash guest/build-l1.sh

demo: crosvm
	@bash scripts/demo.sh

test: deps
	@bash scripts/test.sh

bench: crosvm
	@bash scripts/bench.sh

# Every libFuzzer target for FUZZ_SECONDS each (scripts/fuzz.sh alone: 60 s each).
fuzz: deps
	@bash scripts/fuzz.sh --seconds $(FUZZ_SECONDS) build-fuzz/results

format:
	@git ls-files '*.cpp' '*.h' '*.c' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
