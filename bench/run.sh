#!/bin/bash
# run.sh - throughput and memory benchmark for mxtrace.
#
# usage: bench/run.sh [SESSIONS] [--no-tshark]
#
#   SESSIONS      sessions per generated capture (default 100000)
#   --no-tshark   do not time tshark
#
# Environment:
#   RUNS=3            timed runs per fast tool; the best (shortest) one counts
#   FMT_RUNS=1        timed runs for mxtrace -F summary and -F text
#   SLOW_S=15         a tool whose first run takes longer runs only once
#   CONCURRENCY=64    sessions open at once in the generated captures
#   TSHARK_MAX_MB=150 tshark is timed only on captures up to this size; a
#                     larger capture is replaced by its 1/10 version
#   FALLBACK_DIR=...  where to find ndpi-smtp.pcap / ndpi-smtp-starttls.pcap
#                     when pcaps/ has no usable templates yet
#   SKIP_RE=...       extended regex: template file names to leave out
#                     (default: broken files and derived variants)
#
# Everything it writes goes to bench/out/ (git-ignored) and build-bench/.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=bench/out
BUILD=build-bench
SESSIONS=100000
TSHARK=1
RUNS=${RUNS:-3}
FMT_RUNS=${FMT_RUNS:-1}
SLOW_S=${SLOW_S:-15}
CONCURRENCY=${CONCURRENCY:-64}
TSHARK_MAX_MB=${TSHARK_MAX_MB:-150}
FALLBACK_DIR=${FALLBACK_DIR:-$ROOT/../shared/pcaps/ndpi}
# Broken files and copies of a real capture with one thing changed (reordered,
# VLAN-tagged, cut, ...) would skew the mix towards the capture they come from.
SKIP_RE=${SKIP_RE:-'^broken-|-(reordered|duplicated|lost-segment|no-sni|vlan|qinq|midstream|snaplen[0-9]+|nsec|sll2?|rawip|null)\.pcap$'}

for a in "$@"; do
    case "$a" in
    --no-tshark) TSHARK=0 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    ''|*[!0-9]*) echo "run.sh: unknown argument '$a' (see --help)" >&2; exit 1 ;;
    *) SESSIONS=$a ;;
    esac
done
[ "$SESSIONS" -ge 10 ] || { echo "run.sh: SESSIONS must be at least 10" >&2; exit 1; }
SMALL=$(( SESSIONS / 10 ))

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

for t in cmake cc pkg-config; do command -v $t >/dev/null || die "$t is missing"; done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
pkg-config --exists libpcap || die "libpcap development files are missing"
if [ $TSHARK = 1 ] && ! command -v tshark >/dev/null; then
    note "tshark not found: its rows are skipped"
    TSHARK=0
fi
NDPIREADER=1
if ! command -v ndpiReader >/dev/null; then
    note "ndpiReader not found (apt-get install libndpi-bin): its rows are skipped"
    NDPIREADER=0
fi
mkdir -p "$OUT"
T0=$(date +%s)

# --------------------------------------------------------------------------
# (a) build
# --------------------------------------------------------------------------
if ! grep -qs '^CMAKE_BUILD_TYPE:STRING=Release$' $BUILD/CMakeCache.txt; then
    note "configuring $BUILD (Release)"
    cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release >$OUT/build.log 2>&1 \
        || { tail -20 $OUT/build.log >&2; die "cmake configure failed (log: $OUT/build.log)"; }
fi
note "building mxtrace"
cmake --build $BUILD -j2 --target mxtrace >>$OUT/build.log 2>&1 \
    || { tail -20 $OUT/build.log >&2; die "build failed (log: $OUT/build.log)"; }
MXTRACE=$BUILD/mxtrace
# --workers N: rows for 1, 2 and (on more than 2 CPUs) nproc workers, once the
# build has the option.
MX_HELP=$("$MXTRACE" --help 2>&1 || true)
if grep -q -e '--workers' <<<"$MX_HELP"; then WORKERS=1; else WORKERS=0; fi
WORKER_COUNTS=(1 2)
[ "$(nproc)" -le 2 ] || WORKER_COUNTS+=("$(nproc)")

if [ ! -x $OUT/gen ] || [ bench/gen.c -nt $OUT/gen ]; then
    cc -O2 -std=c11 -Wall -Wextra -o $OUT/gen bench/gen.c || die "gen.c did not build"
fi
if [ ! -x $OUT/floor ] || [ bench/floor.c -nt $OUT/floor ]; then
    # shellcheck disable=SC2046
    cc -O2 -std=c11 -Wall -Wextra -o $OUT/floor bench/floor.c $(pkg-config --cflags --libs libpcap) \
        || die "floor.c did not build"
fi

# --------------------------------------------------------------------------
# (b) generate
# --------------------------------------------------------------------------
# gen NAME N TEMPLATE... : writes $OUT/NAME.pcap; returns gen's status.
gen() {
    local name=$1 n=$2; shift 2
    $OUT/gen -n "$n" -c "$CONCURRENCY" -o "$OUT/$name.pcap" "$@" 2>"$OUT/gen-$name.log"
}

# make_set NAME FALLBACK GLOB... : full and 1/10 captures from the templates
# matching GLOB, or from FALLBACK when none of them holds a mail connection.
declare -A TEMPLATES SKIPPED
make_set() {
    local name=$1 fallback=$2; shift 2
    local files=() f
    SKIPPED[$name]=
    for f in "$@"; do
        [ -f "$f" ] || continue
        if grep -Eq "$SKIP_RE" <<<"$(basename "$f")"; then
            SKIPPED[$name]+="$(basename "$f") "
        else
            files+=("$f")
        fi
    done
    local rc=3
    if [ ${#files[@]} -gt 0 ]; then
        gen "$name" "$SESSIONS" "${files[@]}" && rc=0 || rc=$?
    fi
    if [ $rc = 3 ] && [ -f "$fallback" ]; then
        note "$name: no usable template under pcaps/ yet; using $fallback"
        files=("$fallback")
        gen "$name" "$SESSIONS" "${files[@]}" && rc=0 || rc=$?
    fi
    [ $rc = 0 ] || { cat "$OUT/gen-$name.log" >&2; die "$name: generation failed"; }
    gen "$name-small" "$SMALL" "${files[@]}" || { cat "$OUT/gen-$name-small.log" >&2; die "$name-small: generation failed"; }
    TEMPLATES[$name]=$(grep -E '^gen: .*: [1-9][0-9]* conversation' "$OUT/gen-$name.log" \
        | sed -E 's/^gen: (.*): ([0-9]+) conversation.*/\1(\2)/' | xargs -n1 basename | tr '\n' ' ')
}

note "generating captures: $SESSIONS sessions each, $CONCURRENCY at once"
make_set clear "$FALLBACK_DIR/ndpi-smtp.pcap" pcaps/smtp/*.pcap
make_set starttls "$FALLBACK_DIR/ndpi-smtp-starttls.pcap" pcaps/tls/*.pcap

# --------------------------------------------------------------------------
# (c) timing
# --------------------------------------------------------------------------
# measure RUNS CMD... : sets SECS (best elapsed), RSS (max KB), RC (worst exit
# status), ERR (stderr of the last run), NRUNS (runs made: one only when the
# first took over SLOW_S seconds).
measure() {
    local runs=$1; shift
    SECS=; RSS=0; RC=0; NRUNS=0
    local i s m line
    for ((i = 0; i < runs; i++)); do
        if [ $i = 1 ] && awk -v a="$SECS" -v b="$SLOW_S" 'BEGIN{exit !(a>b)}'; then break; fi
        NRUNS=$((NRUNS + 1))
        local rc=0
        /usr/bin/time -o $OUT/time.txt -f '%e %M' "$@" >/dev/null 2>$OUT/stderr.txt || rc=$?
        line=$(tail -n1 $OUT/time.txt)
        s=${line% *}; m=${line#* }
        [ $rc -ne 0 ] && RC=$rc
        if [ -z "$SECS" ] || awk -v a="$s" -v b="$SECS" 'BEGIN{exit !(a<b)}'; then SECS=$s; fi
        [ "$m" -gt "$RSS" ] && RSS=$m
    done
    ERR=$(cat $OUT/stderr.txt)
}

ROWS=()     # tool|file|bytes|secs|packets|rss_kb|ratio[|speed-up]
MEMROWS=()  # format|set|sessions|MB|RSS|peak flows (1/10 file)|sessions|MB|RSS|peak flows (full)
PROBLEMS=()
declare -A PKTS FLOOR SIZE FLOOR_ROW
NDPI_VERSION=

runs_note() { if [ "$NRUNS" = 1 ] && [ "$RUNS" != 1 ]; then echo " (1 run)"; fi; }
# (the run's counters line, not the per-worker lines --workers adds)
stats_sessions() { grep '^mxtrace: packets' <<<"$1" | sed -nE 's/.* sessions ([0-9]+) .*/\1/p' | tail -n1; }
stats_field() { grep '^mxtrace: packets' <<<"$2" | sed -nE "s/.* $1 ([0-9]+).*/\\1/p" | tail -n1; }

check_mx() {   # check_mx LABEL EXPECTED_SESSIONS
    local label=$1 want=$2 got
    if [ "$RC" -ne 0 ]; then
        if [ "$RC" -ge 128 ]; then PROBLEMS+=("$label: killed by signal $((RC - 128))")
        else PROBLEMS+=("$label: exit status $RC: $(head -c 300 <<<"$ERR")"); fi
    fi
    got=$(stats_sessions "$ERR")
    if [ -z "$got" ]; then PROBLEMS+=("$label: no --stats line")
    elif [ "$got" != "$want" ]; then PROBLEMS+=("$label: --stats sessions $got, generated $want")
    fi
    local ev to
    ev=$(stats_field evicted "$ERR"); to=$(stats_field timed-out "$ERR")
    [ "${ev:-0}" = 0 ] || PROBLEMS+=("$label: $ev flows evicted")
    [ "${to:-0}" = 0 ] || PROBLEMS+=("$label: $to flows timed out")
    LAST_STATS=$(grep -m1 '^mxtrace: packets' <<<"$ERR" || true)
}

run_floor() {   # run_floor FILE : times the floor; the row is added by floor_row
    local f=$1 line
    cat "$f" >/dev/null   # page cache: every tool reads from memory
    measure "$RUNS" $OUT/floor "$f"
    line=$($OUT/floor "$f")
    PKTS[$f]=$(awk '{print $2}' <<<"$line")
    FLOOR[$f]=$SECS
    SIZE[$f]=$(stat -c %s "$f")
    FLOOR_ROW[$f]="floor (libpcap loop)|$(basename "$f")|${SIZE[$f]}|$SECS|${PKTS[$f]}|$RSS|-"
}

TSHARK_NOTES=()
NDPI_NOTES=()
STATS_LINE=()
# One timed run of a tool of the round (see below) on the full file:
# keeps its best time, its largest RSS, its worst exit status and the
# stderr of its last run.
declare -A BEST BRSS BRC BRUNS
round_run() {   # round_run LABEL CMD...
    local label=$1; shift
    local rc=0 line s m
    /usr/bin/time -o $OUT/time.txt -f '%e %M' "$@" >/dev/null 2>"$OUT/err-$label.txt" || rc=$?
    line=$(tail -n1 $OUT/time.txt)
    s=${line% *}; m=${line#* }
    if [ -z "${BEST[$label]:-}" ] || awk -v a="$s" -v b="${BEST[$label]}" 'BEGIN{exit !(a<b)}'; then BEST[$label]=$s; fi
    [ "$m" -gt "${BRSS[$label]:-0}" ] && BRSS[$label]=$m
    [ $rc -ne 0 ] && BRC[$label]=$rc
    BRUNS[$label]=$(( ${BRUNS[$label]:-0} + 1 ))
}
# What was measured of LABEL, as measure() leaves it.
round_get() { SECS=${BEST[$1]}; RSS=${BRSS[$1]:-0}; RC=${BRC[$1]:-0}; NRUNS=${BRUNS[$1]:-0}; ERR=$(cat "$OUT/err-$1.txt"); }

for set in clear starttls; do
    full=$OUT/$set.pcap small=$OUT/$set-small.pcap
    note "timing $set.pcap ($(stat -c %s "$full") bytes), $RUNS rounds"
    run_floor "$small"
    cat "$full" >/dev/null   # page cache: every tool reads from memory
    PKTS[$full]=$($OUT/floor "$full" | awk '{print $2}')
    SIZE[$full]=$(stat -c %s "$full")
    # The tools take turns, one run each per round, RUNS rounds, and each
    # keeps its best: a slow spell of a shared machine falls on all of them
    # alike, so the ratios hold where lone timings would not.
    BEST=() BRSS=() BRC=() BRUNS=()
    labels=(floor ndjson timeline summary text nondpi)
    if [ $WORKERS = 1 ]; then for w in "${WORKER_COUNTS[@]}"; do labels+=("w$w"); done; fi
    [ $NDPIREADER = 1 ] && labels+=(ndpi)
    for ((r = 0; r < RUNS; r++)); do
        for l in "${labels[@]}"; do
            case $l in summary|text) [ $r -lt "$FMT_RUNS" ] || continue ;; esac
            # a tool whose first run was over SLOW_S seconds runs once
            if [ $r -ge 1 ] && awk -v a="${BEST[$l]:-0}" -v b="$SLOW_S" 'BEGIN{exit !(a>b)}'; then continue; fi
            case $l in
            floor) round_run $l $OUT/floor "$full" ;;
            ndjson|timeline|summary|text) round_run $l "$MXTRACE" -r "$full" -F $l -o /dev/null --stats ;;
            nondpi) round_run $l "$MXTRACE" -r "$full" -F ndjson --no-ndpi -o /dev/null --stats ;;
            w*) round_run $l "$MXTRACE" -r "$full" -F ndjson --workers "${l#w}" -o /dev/null --stats ;;
            ndpi) round_run $l ndpiReader -i "$full" -q ;;
            esac
        done
    done
    round_get floor
    FLOOR[$full]=$SECS
    ROWS+=("floor (libpcap loop)|$(basename "$full")|${SIZE[$full]}|$SECS|${PKTS[$full]}|$RSS|-")
    declare -A MXRSS=() MXFLOWS=()
    for fmt in ndjson timeline summary text; do
        round_get $fmt
        check_mx "mxtrace -F $fmt $set.pcap" "$SESSIONS"
        ROWS+=("mxtrace -F $fmt$(runs_note)|$set.pcap|${SIZE[$full]}|$SECS|${PKTS[$full]}|$RSS|ratio")
        if [ $fmt = ndjson ]; then STATS_LINE+=("$set.pcap: $LAST_STATS"); fi
        MXRSS[$fmt]=$RSS
        MXFLOWS[$fmt]=$(stats_field peak-flows "$ERR")
        # (d) the 1/10 file, once: does peak memory follow the file size?
        measure 1 "$MXTRACE" -r "$small" -F $fmt -o /dev/null --stats
        check_mx "mxtrace -F $fmt $set-small.pcap" "$SMALL"
        MEMROWS+=("$fmt|$set|$SMALL|${SIZE[$small]}|$RSS|$(stats_field peak-flows "$ERR")|$SESSIONS|${SIZE[$full]}|${MXRSS[$fmt]}|${MXFLOWS[$fmt]}")
    done
    # nDPI's share: the same ndjson run without it
    round_get nondpi
    check_mx "mxtrace -F ndjson --no-ndpi $set.pcap" "$SESSIONS"
    ROWS+=("mxtrace -F ndjson --no-ndpi$(runs_note)|$set.pcap|${SIZE[$full]}|$SECS|${PKTS[$full]}|$RSS|ratio")
    # parallel workers, with the speed-up against one worker
    if [ $WORKERS = 1 ]; then
        w1=
        for w in "${WORKER_COUNTS[@]}"; do
            round_get "w$w"
            check_mx "mxtrace -F ndjson --workers $w $set.pcap" "$SESSIONS"
            [ "$w" != 1 ] || w1=$SECS
            sp=$(awk -v a="$w1" -v b="$SECS" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "?" }')
            ROWS+=("mxtrace -F ndjson --workers $w$(runs_note)|$set.pcap|${SIZE[$full]}|$SECS|${PKTS[$full]}|$RSS|ratio|$sp")
        done
    fi
    # nDPI alone: its own reader, classification only (-q: no per-flow output,
    # no summary), on the same capture
    if [ $NDPIREADER = 1 ]; then
        round_get ndpi
        [ "$RC" = 0 ] || PROBLEMS+=("ndpiReader $set.pcap: exit status $RC: $(head -c 300 <<<"$ERR")")
        ROWS+=("ndpiReader -q$(runs_note)|$set.pcap|${SIZE[$full]}|$SECS|${PKTS[$full]}|$RSS|ratio")
        # one untimed run with its summary on the 1/10 file: did it see the sessions?
        nd=$(ndpiReader -i "$small" 2>/dev/null || true)
        nflows=$(sed -nE 's/^[[:space:]]*Unique flows:[[:space:]]*([0-9]+).*/\1/p' <<<"$nd" | head -n1)
        protos=$(sed -n '/^Detected protocols:/,/^$/p' <<<"$nd" | sed -nE 's/^[[:space:]]+([^[:space:]]+)[[:space:]]+packets:.*flows:[[:space:]]*([0-9]+).*/\1 \2/p' | paste -sd, - | sed 's/,/, /g')
        NDPI_NOTES+=("$set-small.pcap: ${nflows:-?} flows for $SMALL sessions (${protos:-no protocol detected})")
        [ -n "$NDPI_VERSION" ] || NDPI_VERSION=$(sed -nE 's/^Using nDPI \(([^)]*)\).*/\1/p' <<<"$nd" | head -n1)
    fi
    if [ $TSHARK = 1 ]; then
        tf=$full
        if [ $(( SIZE[$full] / 1000000 )) -gt "$TSHARK_MAX_MB" ]; then
            tf=$small
            TSHARK_NOTES+=("tshark: $set.pcap is over ${TSHARK_MAX_MB} MB, timed on $set-small.pcap (1/10) instead")
        fi
        if [ $(( SIZE[$tf] / 1000000 )) -gt "$TSHARK_MAX_MB" ]; then
            TSHARK_NOTES+=("tshark: $(basename "$tf") is over ${TSHARK_MAX_MB} MB: skipped")
        else
            # mxtrace on the same file, for the comparison
            measure "$RUNS" "$MXTRACE" -r "$tf" -F ndjson -o /dev/null
            mxs=$SECS
            if [ "$tf" != "$full" ]; then
                ROWS+=("${FLOOR_ROW[$tf]}")
                ROWS+=("mxtrace -F ndjson$(runs_note)|$(basename "$tf")|${SIZE[$tf]}|$SECS|${PKTS[$tf]}|$RSS|ratio")
            fi
            # the lightest tshark run (one field of the SMTP packets), and the
            # one that writes what mxtrace writes: JSON of every SMTP and TLS
            # packet (-T ek, one object a line, as a SIEM takes it)
            note "timing tshark on $(basename "$tf") (one run each)"
            measure 1 tshark -r "$tf" -Y smtp -T fields -e smtp.req.command
            [ "$RC" = 0 ] || PROBLEMS+=("tshark $(basename "$tf"): exit status $RC")
            ROWS+=("tshark -Y smtp -T fields (1 run)|$(basename "$tf")|${SIZE[$tf]}|$SECS|${PKTS[$tf]}|$RSS|ratio")
            TSHARK_NOTES+=("$(basename "$tf"): tshark -Y smtp -T fields -e smtp.req.command $(awk -v a="$SECS" -v b="$mxs" 'BEGIN{printf "%.1f", a/(b>0?b:0.005)}')x the time of mxtrace -F ndjson")
            measure 1 tshark -r "$tf" -Y 'smtp or tls' -T ek
            [ "$RC" = 0 ] || PROBLEMS+=("tshark -T ek $(basename "$tf"): exit status $RC")
            ROWS+=("tshark -Y 'smtp or tls' -T ek (1 run)|$(basename "$tf")|${SIZE[$tf]}|$SECS|${PKTS[$tf]}|$RSS|ratio")
            TSHARK_NOTES+=("$(basename "$tf"): tshark -Y 'smtp or tls' -T ek $(awk -v a="$SECS" -v b="$mxs" 'BEGIN{printf "%.1f", a/(b>0?b:0.005)}')x the time of mxtrace -F ndjson")
        fi
    else
        TSHARK_NOTES+=("tshark: not timed (--no-tshark or not installed)")
    fi
done

# --------------------------------------------------------------------------
# (d) series: memory per open flow, and the end of input
# --------------------------------------------------------------------------
# A template that stops after EHLO and its reply: its connection never ends,
# so N copies started at once are N flows open together, and still open at
# the end of the input.
OPEN_T=$OUT/open-template.pcap
python3 - pcaps/smtp/s1-plain-delivery.pcap "$OPEN_T" <<'PY' || die "cannot cut the open-flow template"
import struct, sys
d = open(sys.argv[1], "rb").read()
out, off, n = [d[:24]], 24, 0
while off + 16 <= len(d) and n < 8:
    incl = struct.unpack("<I", d[off + 8:off + 12])[0]
    out.append(d[off:off + 16 + incl]); off += 16 + incl; n += 1
open(sys.argv[2], "wb").write(b"".join(out))
PY
peak_kb() { sed -nE 's/.* peak-memory-kb ([0-9]+).*/\1/p' <<<"$1" | tail -n1; }
SERIES=()
base_kb=
for n in 1 1000 5000 20000; do
    $OUT/gen -q -n $n -c $n -o $OUT/open-$n.pcap "$OPEN_T" 2>/dev/null || die "open-flow series: generation failed"
    err=$("$MXTRACE" -r $OUT/open-$n.pcap -F ndjson -o /dev/null --max-flows 60000 --stats 2>&1 >/dev/null)
    kb=$(peak_kb "$err")
    [ -n "$kb" ] || PROBLEMS+=("open-flow series $n: no peak-memory-kb")
    if [ $n = 1 ]; then base_kb=$kb; else SERIES+=("$n|$kb|$base_kb"); fi
done
END_SERIES=()
for n in 5000 50000; do
    $OUT/gen -q -n $n -c $n -o $OUT/end-$n.pcap "$OPEN_T" 2>/dev/null || die "end-of-input series: generation failed"
    measure "$RUNS" "$MXTRACE" -r $OUT/end-$n.pcap -F ndjson -o /dev/null --max-flows 60000 --stats
    [ "$RC" = 0 ] || PROBLEMS+=("end-of-input series $n: exit status $RC")
    END_SERIES+=("$n|$SECS")
done

# --------------------------------------------------------------------------
# (e) report
# --------------------------------------------------------------------------
{
echo
echo "mxtrace benchmark: $SESSIONS sessions per capture, $CONCURRENCY at once; best of $RUNS runs"
echo "(one run where marked: tshark, -F summary and -F text unless FMT_RUNS is set, and any tool"
echo " whose first run took over $SLOW_S s)"
echo "$(nproc) CPU(s), $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "mxtrace: $("$MXTRACE" -V 2>/dev/null || echo '?'), $BUILD (Release)"
echo
echo "captures:"
for set in clear starttls; do
    for f in $OUT/$set.pcap $OUT/$set-small.pcap; do
        printf '  %-20s %12s bytes %10s packets\n' "$(basename "$f")" "${SIZE[$f]}" "${PKTS[$f]}"
    done
    echo "    templates (connections): ${TEMPLATES[$set]}"
    [ -z "${SKIPPED[$set]}" ] || echo "    left out by SKIP_RE: ${SKIPPED[$set]}"
done
echo
printf '%-36s %-20s %8s %8s %8s %11s %9s %8s %8s\n' tool file MB seconds MB/s packets/s 'RSS MB' 'x floor' 'speed-up'
printf '%-36s %-20s %8s %8s %8s %11s %9s %8s %8s\n' ------------------------------------ -------------------- \
    -------- -------- -------- ----------- --------- -------- --------
for r in "${ROWS[@]}"; do
    IFS='|' read -r tool file bytes secs pk rss ratio speedup <<<"$r"
    fl=${FLOOR[$OUT/$file]}
    awk -v tool="$tool" -v file="$file" -v b="$bytes" -v s="$secs" -v p="$pk" -v r="$rss" \
        -v ratio="$ratio" -v fl="$fl" -v sp="$speedup" 'BEGIN {
        t = s > 0 ? s : 0.005    # %e has 1/100 s resolution
        x = ratio == "-" ? "-" : (fl > 0 ? sprintf("%.1f", s / fl) : ">" sprintf("%.0f", s / 0.005))
        printf "%-36s %-20s %8.1f %8.2f %8.1f %11.0f %9.1f %8s %8s\n",
            tool, file, b / 1e6, s, b / 1e6 / t, p / t, r / 1024, x, sp }'
done
[ $WORKERS = 1 ] || echo "workers: not supported by this build"
if [ $NDPIREADER = 1 ]; then
    echo "ndpiReader: nDPI ${NDPI_VERSION:-?}, -i FILE -q; untimed check with its summary:"
    for n in "${NDPI_NOTES[@]}"; do echo "  $n"; done
else
    echo "ndpiReader: not installed (package libndpi-bin)"
fi
echo
echo "peak memory against file size (mxtrace; left: 1/10 file, one run; right: full file, largest of the"
echo "main table's runs):"
printf '%-9s %-9s | %8s %8s %7s %6s | %8s %8s %7s %6s | %6s\n' '' '' sessions MB flows RSS sessions MB flows RSS 'RSS'
printf '%-9s %-9s | %8s %8s %7s %6s | %8s %8s %7s %6s | %6s\n' format set '' '' '(peak)' MB '' '' '(peak)' MB growth
for r in "${MEMROWS[@]}"; do
    IFS='|' read -r fmt set s1 b1 r1 f1 s2 b2 r2 f2 <<<"$r"
    awk -v f="$fmt" -v set="$set" -v s1="$s1" -v b1="$b1" -v r1="$r1" -v f1="${f1:-0}" \
        -v s2="$s2" -v b2="$b2" -v r2="$r2" -v f2="${f2:-0}" 'BEGIN {
        printf "%-9s %-9s | %8d %8.1f %7d %6.1f | %8d %8.1f %7d %6.1f | %5.2fx\n",
            f, set, s1, b1 / 1e6, f1, r1 / 1024, s2, b2 / 1e6, f2, r2 / 1024, r2 / r1 }'
done
echo
echo "memory per open flow (N connections open at once, each after EHLO; -F ndjson; peak memory"
echo "beside one connection's, $((base_kb / 1024)) MB):"
printf '  %8s %10s %12s\n' flows 'peak MB' 'KB per flow'
for r in "${SERIES[@]}"; do
    IFS='|' read -r n kb b <<<"$r"
    awk -v n="$n" -v kb="$kb" -v b="$b" 'BEGIN { printf "  %8d %10.1f %12.2f\n", n, kb / 1024, (kb - b) / n }'
done
echo "end of input (N connections still open when the file ends, each written as incomplete):"
printf '  %8s %10s %8s\n' flows seconds ratio
first=
for r in "${END_SERIES[@]}"; do
    IFS='|' read -r n secs <<<"$r"
    [ -n "$first" ] || first=$secs
    awk -v n="$n" -v s="$secs" -v f="$first" 'BEGIN { r = f > 0 ? s / f : 0; printf "  %8d %10.2f %7.1fx\n", n, s, r }'
done
echo
echo "mxtrace --stats (ndjson, full files):"
for l in "${STATS_LINE[@]}"; do echo "  $l"; done
for n in "${TSHARK_NOTES[@]}"; do echo "note: $n"; done
if [ ${#PROBLEMS[@]} -eq 0 ]; then
    echo "checks: every mxtrace run exited 0 and counted as many sessions as were generated"
else
    echo "PROBLEMS:"
    for p in "${PROBLEMS[@]}"; do echo "  - $p"; done
fi
echo "total bench time: $(( $(date +%s) - T0 )) s"
} | tee $OUT/results.txt
