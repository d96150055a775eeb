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

# keys of each event: type and ts (session and frame numbers differ by run)
keys() { sed -E 's/^\{"type":"([^"]+)","session":[0-9]+,"ts":"([^"]+)".*/\1 \2/' "$@"; }

# pcapng whose interfaces differ in link type (mergecap of Ethernet, Linux
# cooked and raw IP captures): every session of each, as each alone gives it
"$MX" -r "$P/merged-eth-sll-raw.pcapng" -F ndjson >"$T/m" 2>"$T/merr"; rc=$?
[ "$rc" = 0 ] && [ ! -s "$T/merr" ] && ok || ko "merged pcapng: exit $rc: $(cat "$T/merr")"
"$MX" -r "$P/s1-plain-delivery.pcap" -F ndjson 2>/dev/null | keys >"$T/m1"
"$MX" -r "$P/s4-sll.pcap" -F ndjson 2>/dev/null | keys >>"$T/m1"
"$MX" -r "$P/s5-auth-login-fail.pcap" -F ndjson 2>/dev/null | keys >>"$T/m1"
# (sorted: a session is written a few seconds of capture time after its
# end, so sessions close to each other interleave in ndjson)
sort "$T/m1" -o "$T/m1"; keys "$T/m" | sort >"$T/m2"
[ -s "$T/m1" ] && cmp -s "$T/m1" "$T/m2" && ok || ko "merged pcapng: events differ from the two files read alone"
[ "$(grep -c '"type":"session.end"' "$T/m")" = 3 ] && ok || ko "merged pcapng: not three sessions"
[ "$(grep -c '"type":"session.end".*"code":"delivered"' "$T/m")" = 2 ] && ok || ko "merged pcapng: a delivery lost"
grep -q '"type":"session.end".*"code":"auth_failed"' "$T/m" && ok || ko "merged pcapng: the raw-IP session lost"
# pcapng from standard input reads like the file
"$MX" -r - -F ndjson <"$P/merged-eth-sll-raw.pcapng" >"$T/m3" 2>/dev/null
cmp -s "$T/m" "$T/m3" && ok || ko "pcapng on stdin differs from file"
# a pcapng cut short: damaged, what came before is written
head -c 30000 "$P/merged-eth-sll-raw.pcapng" >"$T/cut.pcapng"
expect 3 "cut.pcapng: damaged capture after packet [0-9]*: truncated block" -r "$T/cut.pcapng" -F ndjson
grep -q '"type":"session.end".*"reason":"end_of_input"' "$T/out" && ok || ko "cut pcapng: session not written"
printf '\n\r\r\n\034\000\000\000' >"$T/short.pcapng"
expect 2 "short.pcapng: cannot read: file ends inside its header" -r "$T/short.pcapng"

# sections may follow one another (cat of pcapng files): a second section
# whose interface has an unsupported link type is named, the rest is read
{ cat "$P/s1.pcapng"
  printf '\012\015\015\012\034\000\000\000\115\074\053\032\001\000\000\000\377\377\377\377\377\377\377\377\034\000\000\000'
  printf '\001\000\000\000\024\000\000\000\223\000\000\000\000\000\000\000\024\000\000\000'
  printf '\006\000\000\000\044\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\004\000\000\000\004\000\000\000abcd\044\000\000\000'
} >"$T/two-sections.pcapng"
expect 2 "two-sections.pcapng: interface 1: unsupported link type 147 (unknown): its packets are skipped" \
  -r "$T/two-sections.pcapng" -F ndjson
grep -q '"type":"session.end".*"code":"delivered"' "$T/out" && ok || ko "two sections: the first section's session lost"

# the filter is compiled for each interface's link type (raw IP is
# LINKTYPE_RAW in the file, DLT_RAW to libpcap): the two sessions on 587
"$MX" -r "$P/merged-eth-sll-raw.pcapng" -F ndjson tcp port 587 >"$T/fp" 2>"$T/err"; rc=$?
[ "$rc" = 0 ] && [ "$(grep -c '"type":"session.start".*"port":587' "$T/fp")" = 2 ] && \
  [ "$(grep -c '"type":"session.start"' "$T/fp")" = 2 ] && ok || ko "filter on merged pcapng: exit $rc $(cat "$T/err")"

# a snap length that cuts the TCP header: one line naming the file, counted
expect 0 "s1-snaplen40.pcap: 63 packets cut by the capture's snap length inside the link, IP or TCP header (40 bytes kept at most)" \
  -r "$P/s1-snaplen40.pcap" -F ndjson
"$MX" -r "$P/s1-snaplen40.pcap" -r "$P/s1-snaplen40.pcap" --stats -F ndjson >/dev/null 2>"$T/err"
[ "$(grep -c 'cut by the capture' "$T/err")" = 2 ] && ok || ko "snaplen: not one line per file"
grep -q 'truncated 126 ' "$T/err" && ok || ko "snaplen: cut packets not counted in --stats"

# more than 15 IPv6 extension headers are walked: the same story as without
"$MX" -r "$P/ipv6.pcap" -F ndjson --no-ndpi >"$T/x1" 2>/dev/null
"$MX" -r "$P/ipv6-20-ext-headers.pcap" -F ndjson --no-ndpi >"$T/x2" 2>/dev/null
[ -s "$T/x1" ] && cmp -s "$T/x1" "$T/x2" && ok || ko "IPv6 with 20 extension headers differs"

# time is the packet's own: the capture's clock steps back 10 s at frame
# 11 (MAIL); every frame keeps its time, the session starts at its earliest
# packet so that t stays >= 0, and the idle clock (latest time seen) does
# not take the step for 10 s of silence
"$MX" -r "$P/s1-clock-back.pcap" -F ndjson --idle-timeout 1 >"$T/cb" 2>/dev/null
grep -q '"type":"smtp.reply","session":1,"ts":"2026-11-22T13:35:54.310392Z","t":0.00574,"frame":10,' "$T/cb" && ok || ko "clock back: frame 10 changed"
grep -q '"type":"smtp.command","session":1,"ts":"2026-11-22T13:35:44.310903Z","t":0,"frame":11,' "$T/cb" && ok || ko "clock back: frame 11 lost its own time"
grep -q '"type":"smtp.reply","session":1,"ts":"2026-11-22T13:35:44.317047Z","t":0.006144,"frame":12,' "$T/cb" && ok || ko "clock back: frame 12 lost its own time"
grep -q '"type":"session.end".*"reason":"closed"' "$T/cb" && ! grep -q idle_timeout "$T/cb" && ok || ko "clock back: taken for an idle timeout"

# several files in reverse time order: each event keeps its packet's time
# (s4 was captured after s1); files are read in the order given
"$MX" -r "$P/s4-auth-login-ok.pcap" -r "$P/s1-plain-delivery.pcap" -F ndjson >"$T/rv" 2>/dev/null
"$MX" -r "$P/s4-auth-login-ok.pcap" -F ndjson 2>/dev/null | keys >"$T/rv1"
"$MX" -r "$P/s1-plain-delivery.pcap" -F ndjson 2>/dev/null | keys >>"$T/rv1"
sort "$T/rv1" -o "$T/rv1"; keys "$T/rv" | sort >"$T/rv2"
[ -s "$T/rv1" ] && cmp -s "$T/rv1" "$T/rv2" && ok || ko "reverse order: events lost their own time"
grep '"session":1,' "$T/rv" | head -1 | grep -q '"ts":"2026-11-22T13:35:57' && ok || ko "reverse order: files not read in the order given"
# --merge reads them side by side in time order, numbered in that order
"$MX" --merge -r "$P/s4-auth-login-ok.pcap" -r "$P/s1-plain-delivery.pcap" -F ndjson >"$T/mg" 2>/dev/null
"$MX" -r "$P/s1-plain-delivery.pcap" -r "$P/s4-auth-login-ok.pcap" -F ndjson >"$T/mg1" 2>/dev/null
cmp -s "$T/mg" "$T/mg1" && ok || ko "--merge: not the files in time order"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
