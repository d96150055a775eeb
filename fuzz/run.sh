#!/usr/bin/env bash
# run.sh - build the libFuzzer targets (if needed) and run each for a while.
#
#   fuzz/run.sh [SECONDS] [TARGET...]    fuzz each target SECONDS (default 20)
#   fuzz/run.sh --replay                 run every saved input in fuzz/crashes/
#                                        against its target, once
#
# Each target runs on a copy of fuzz/corpus/<target>/ in a scratch folder
# (fuzz/corpus-run/ unless FUZZ_WORK says otherwise), so the checked-in
# corpus never grows; crash inputs and logs stay there.  Saved crash inputs
# (fuzz/crashes/<target>-*) are run first: those that pass join the seeds as
# regression tests, those that still fail are reported as KNOWN.  The exit
# status is non-zero if any target crashed, a saved input still fails, or
# the build failed.
#
# Environment: BUILD_DIR (default build-fuzz), CC (default clang),
# FUZZ_WORK (scratch folder), FUZZ_ARGS (extra libFuzzer flags).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
work=${FUZZ_WORK:-$here/corpus-run}
all_targets="fuzz_smtp fuzz_tls fuzz_keylog fuzz_decode fuzz_stream fuzz_pipeline fuzz_pcapng fuzz_config fuzz_json"

replay=0
secs=20
if [ "${1:-}" = "--replay" ]; then
    replay=1; shift
elif [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ -n "${1##*[!0-9]*}" ]; then
    secs=$1; shift
fi
targets=${*:-$all_targets}

dict_for() {
    case "$1" in
    fuzz_smtp|fuzz_pipeline) echo "-dict=$here/smtp.dict" ;;
    fuzz_tls) echo "-dict=$here/tls.dict" ;;
    esac
}

# ---- build ------------------------------------------------------------------
mkdir -p "$build"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="${CC:-clang}" \
          -DMX_FUZZ=ON -DMX_SANITIZE=ON >"$build/fuzz-configure.log" 2>&1 || {
        cat "$build/fuzz-configure.log"; echo "run.sh: configure failed" >&2; exit 2; }
fi
# shellcheck disable=SC2086
if ! cmake --build "$build" --target $targets -j "$(nproc 2>/dev/null || echo 2)" >"$build/fuzz-build.log" 2>&1; then
    tail -40 "$build/fuzz-build.log"
    echo "run.sh: build failed (full log: $build/fuzz-build.log)" >&2
    exit 2
fi

status=0

# ---- replay saved crashes ------------------------------------------------------
if [ $replay = 1 ]; then
    shopt -s nullglob
    log=$(mktemp)
    for f in "$here"/crashes/*; do
        t=${f##*/}; t=${t%%-*}
        bin=$build/fuzz/$t
        [ -x "$bin" ] || { echo "skip  $f (no target $t)"; continue; }
        if "$bin" "$f" >"$log" 2>&1; then
            echo "ok    ${f#"$root"/}"
        else
            echo "FAIL  ${f#"$root"/}: $(grep -m1 -E 'fuzz invariant|ERROR: AddressSanitizer|runtime error|ERROR: libFuzzer' "$log")"
            status=1
        fi
    done
    rm -f "$log"
    exit $status
fi

# ---- fuzz -----------------------------------------------------------------------
mkdir -p "$work"
summary=""
for t in $targets; do
    bin=$build/fuzz/$t
    [ -x "$bin" ] || { echo "run.sh: no binary $bin" >&2; status=2; continue; }
    d=$work/$t
    rm -rf "$d"
    mkdir -p "$d/corpus" "$d/artifacts"
    [ -d "$here/corpus/$t" ] && cp "$here/corpus/$t"/* "$d/corpus/" 2>/dev/null
    # Inputs that once crashed: those that pass now are seeds (a regression
    # fails at once); one that still fails is reported and left out, so the
    # run can still find something new.
    known=""
    for f in "$here/crashes/$t"-*; do
        [ -f "$f" ] || continue
        if "$bin" "$f" >"$d/replay.log" 2>&1; then
            cp "$f" "$d/corpus/"
        else
            known="$known ${f##*/}"
        fi
    done
    rm -f "$d/replay.log"
    echo "== $t: ${secs}s"
    # shellcheck disable=SC2046,SC2086
    timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$d/artifacts/" $(dict_for "$t") ${FUZZ_ARGS:-} \
        "$d/corpus" >"$d/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$d/log")
    cov=$(grep -E '^#[0-9]+.*cov:' "$d/log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\).*/\1/p')
    if [ -n "$known" ]; then
        status=1
        line="KNOWN  $t: saved crash input(s) still fail:$known (fuzz/run.sh --replay)"
        echo "$line"
        summary="$summary$line
"
    fi
    if [ $rc -eq 0 ]; then
        line="ok     $t: ${execs:-?} runs, ${rate:-?}/s, ${cov:-cov: ?}"
    else
        status=1
        line="CRASH  $t (exit $rc): see $d/log"
        grep -m3 -E 'fuzz invariant|ERROR: AddressSanitizer|runtime error|ERROR: libFuzzer|SUMMARY' "$d/log" | sed 's/^/         /'
        for a in "$d"/artifacts/*; do
            [ -f "$a" ] && echo "         input: $a  (reproduce: $bin $a)"
        done
    fi
    echo "$line"
    summary="$summary$line
"
done
echo
echo "---- summary"
printf '%s' "$summary"
exit $status
