#!/bin/sh
# Command-line behaviour: bad input gets one clear line naming the file, a
# documented exit status, and every session seen before the damage.
# usage: cli.sh MXTRACE
MX=$1
P=$(dirname "$0")/../pcaps/smtp
T=${TMPDIR:-/tmp}/mx-cli.$$
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect RC PATTERN-ON-STDERR ARGS...
expect() {
  want=$1 pat=$2; shift 2
  "$MX" "$@" >"$T/out" 2>"$T/err"; rc=$?
  [ "$rc" = "$want" ] && ok || ko "$* -> exit $rc, want $want"
  if [ -n "$pat" ]; then
    grep -q -- "$pat" "$T/err" && ok || ko "$* -> stderr lacks '$pat': $(cat "$T/err")"
    [ "$(wc -l <"$T/err")" = 1 ] && ok || ko "$* -> stderr is not one line"
  fi
}

expect 2 "mxtrace: $T/nope.pcap: cannot open: No such file or directory" -r "$T/nope.pcap"
expect 2 "$P/broken-notacapture.pcap: cannot read: not a pcap or pcapng capture" -r "$P/broken-notacapture.pcap"
expect 2 "$P/broken-linktype.pcap: unsupported link type 147" -r "$P/broken-linktype.pcap"
expect 3 "$P/broken-truncated.pcap: damaged capture after packet" -r "$P/broken-truncated.pcap" -F ndjson
grep -q '"type":"session.end".*"reason":"end_of_input","incomplete":true' "$T/out" && ok || ko "truncated: session not written"
grep -q '"verb":"DATA"' "$T/out" && ok || ko "truncated: commands before the damage lost"
expect 3 "$P/broken-badrecord.pcap: damaged capture after packet" -r "$P/broken-badrecord.pcap" -F ndjson
grep -q '"type":"session.end"' "$T/out" && ok || ko "bad record: session not written"
expect 1 "" -F nosuchformat -r "$P/bdat.pcap"
expect 1 "no input" -F ndjson
expect 1 "bad value" -r "$P/bdat.pcap" --max-flows 0
expect 4 "cannot write" -r "$P/bdat.pcap" -o /nonexistent-dir/out.json

# a missing file among good ones: the good ones are still read
expect 2 "nope.pcap: cannot open" -r "$P/bdat.pcap" -r "$T/nope.pcap" -r "$P/ipv6.pcap" -F ndjson
[ "$(grep -c '"type":"session.end"' "$T/out")" = 2 ] && ok || ko "good files around a missing one not read"

# standard input reads like a file
"$MX" -r "$P/s1-plain-delivery.pcap" -F ndjson >"$T/a" 2>/dev/null
"$MX" -r - -F ndjson <"$P/s1-plain-delivery.pcap" >"$T/b" 2>/dev/null
cmp -s "$T/a" "$T/b" && ok || ko "stdin differs from file"

# several files are one stream: frame numbers go on
"$MX" -r "$P/bdat.pcap" -r "$P/s1-plain-delivery.pcap" -F ndjson >"$T/c" 2>/dev/null
n1=$("$MX" -r "$P/bdat.pcap" -F ndjson | grep -c .)
[ "$(grep -c '"type":"session.start"' "$T/c")" = 2 ] && ok || ko "two files, two sessions"
grep '"session":2' "$T/c" | head -1 | grep -q '"frame":[1-9][0-9]' && ok || ko "frames do not continue across files"

# a BPF filter after the options, as with tcpdump
"$MX" -r "$P/s1-plain-delivery.pcap" -r "$P/s4-auth-login-ok.pcap" -F ndjson tcp port 587 >"$T/d" 2>/dev/null
[ "$(grep -c '"type":"session.start"' "$T/d")" = 1 ] && grep -q '"port":587' "$T/d" && ok || ko "BPF filter not applied"
expect 2 "bad filter" -r "$P/bdat.pcap" "not a filter ((("
# frame numbers are the file's own, filter or not (frames 1-4 are DNS here)
"$MX" -r "$P/s6-refused-587.pcap" -F ndjson tcp port 587 2>/dev/null | grep -q '"type":"tcp.syn".*"frame":5,' && ok || ko "filtered frame numbers differ from the file's"

# timeline: one JSON document per line
"$MX" -r "$P/multi-transaction.pcap" -r "$P/bdat.pcap" >"$T/e" 2>/dev/null
[ "$(grep -c . "$T/e")" = 2 ] && ok || ko "timeline: not one line per session"
grep -q '^{"session":1,' "$T/e" && ok || ko "timeline: document does not start with the session"

# caps are events, not silent drops
"$MX" -r "$P/multi-transaction.pcap" -F ndjson --max-events 5 >"$T/f" 2>/dev/null
grep -q '"type":"limit".*"limit":"max_events"' "$T/f" && ok || ko "max_events not reported"
grep -q '"events_dropped":' "$T/f" && ok || ko "dropped events not counted"
grep -q '"type":"session.end"' "$T/f" && ok || ko "session.end dropped by the cap"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
