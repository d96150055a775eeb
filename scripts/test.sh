#!/bin/sh
# Sets up, builds and runs the whole test suite:
#   1. a normal build with warnings as errors, and ctest;
#   2. an AddressSanitizer + UBSan build, and ctest again;
#   3. a ThreadSanitizer build, and the tests that run threads;
#   4. a short run of every libFuzzer target (FUZZ_SECONDS each, default 20).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
jobs=$(nproc)
export TZ=UTC LC_ALL=C

echo "== build (warnings are errors)"
cmake -S . -B build -DMX_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure)

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMX_SANITIZE=ON -DMX_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest -j"$jobs" --output-on-failure)

echo "== ThreadSanitizer build (the output writer and worker threads: unit, outputs, run-control and workers tests)"
CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DMX_TSAN=ON -DMX_WERROR=ON >/dev/null
cmake --build build-tsan -j"$jobs"
# MX_WORKERS_QUICK: the workers test on pcaps/ only, in ndjson and text
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 MX_WORKERS_QUICK=1 \
   ctest -j"$jobs" --output-on-failure -R '^(unit_|outputs$|run_control$|workers$)')

if [ -x fuzz/run.sh ]; then
  echo "== fuzzing (${FUZZ_SECONDS:-20} s per target)"
  fuzz/run.sh "${FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
