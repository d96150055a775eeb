#!/bin/sh
# AUTH secrets in captures: no output form may carry the password, and the
# user name only with --show-user.
#
# usage: leaks.sh MXTRACE WORKDIR [--known-leaks]
#
# From pcaps/smtp/s4-auth-login-ok.pcap and s5-auth-login-fail.pcap (AUTH
# LOGIN: frame 9 "AUTH LOGIN", 10 "334 Username:", 11 the user, 12 "334
# Password:", 13 the password, 14 235/535) it makes degraded copies with
# editcap/mergecap in WORKDIR: the capture starting at each AUTH frame, each
# AUTH frame lost, the AUTH frames lost two by two, snaplen cuts, every
# packet twice, the password arriving last.  Each copy is read in every
# output form (timeline, ndjson, text, summary, HTML, pretty, colours, with
# and without nDPI, the smallest caps) with and without --show-user, and every
# output is searched for the password in clear, base64 at the three
# alignments, base64url, hex and upper-case hex, and for every 10-byte window
# of those; the same for the user name (whose clear form is also the
# envelope sender of these captures: see user_clear_windows).
#
# Runs listed in KNOWN leak today; they are left out, and run alone with
# --known-leaks (ctest leaks_captures_known), which fails until the parser
# is fixed.  Exit 77 (skipped) without editcap.
MX=$1
W=${2:-${TMPDIR:-/tmp}/mx-leaks.$$}
MODE=${3:-}
P=$(cd "$(dirname "$0")/../pcaps/smtp" && pwd)

command -v editcap >/dev/null 2>&1 || { echo "leaks.sh: editcap not found (wireshark-common): skipped"; exit 77; }
rm -rf "$W"
mkdir -p "$W/cap" "$W/out" "$W/win"

# runs that leak today: capture, show_user, the forms (see the report in
# tests/test_leaks.c, main(): the password is taken for the user name when
# the "334 Password:" is lost)
KNOWN=""   # none today: the password-as-user-name leak is fixed

pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---- the secrets, and proof that the captures carry them -------------------
# (base64 as the client sent it; tshark shows it as smtp.auth.username/password)
USER_B64=c3BvbnNvckB0ZXN0bGFiLmNvbQ==
PASS4_B64=UzNjcjN0LVBhNTU=
PASS5_B64=V3IwbmctUGE1NQ==
USER=$(printf %s "$USER_B64" | base64 -d)
PASS4=$(printf %s "$PASS4_B64" | base64 -d)
PASS5=$(printf %s "$PASS5_B64" | base64 -d)
[ "$USER" = sponsor@testlab.com ] && [ "$PASS4" = S3cr3t-Pa55 ] && [ "$PASS5" = Wr0ng-Pa55 ] && ok || ko "base64 -d: $USER $PASS4 $PASS5"
for f in s4-auth-login-ok:$PASS4_B64 s5-auth-login-fail:$PASS5_B64; do
  c=${f%%:*} b=${f#*:}
  grep -aq "$USER_B64" "$P/$c.pcap" && grep -aq "$b" "$P/$c.pcap" && ok || ko "$c.pcap does not carry the credentials"
done
if command -v tshark >/dev/null 2>&1; then
  t=$(tshark -r "$P/s4-auth-login-ok.pcap" -Y smtp -T fields -e smtp.auth.username -e smtp.auth.password 2>/dev/null | tr -d ' \t\n')
  [ "$t" = "$USER_B64$PASS4_B64" ] && ok || ko "tshark sees other credentials in s4: $t"
fi

# ---- windows ---------------------------------------------------------------
# Every 10-char window of each line of stdin (a line shorter than 10: itself).
windows() { awk '{ if (length($0) < 10) print; else for (i = 1; i + 9 <= length($0); i++) print substr($0, i, 10) }'; }

# Encodings of $1, one per line; with $2 = noclear the clear form is left out.
# base64 at offset k: only the characters made of the secret's bits alone.
encodings() {
  s=$1 n=$(printf %s "$1" | wc -c)
  [ "${2:-}" = noclear ] || printf '%s\n' "$s"
  for k in 0 1 2; do
    a=$(((8 * k + 5) / 6 + 1)) b=$((8 * (k + n) / 6))
    e=$({ head -c "$k" /dev/zero; printf %s "$s"; } | base64 -w0 | cut -c "$a-$b")
    printf '%s\n' "$e"
    printf '%s\n' "$e" | tr '+/' '-_'
  done
  h=$(printf %s "$s" | od -An -tx1 -v | tr -d ' \n')
  printf '%s\n' "$h"
  printf '%s\n' "$h" | tr a-f A-F
}

encodings "$PASS4" | windows | sort -u >"$W/win/pass4"
encodings "$PASS5" | windows | sort -u >"$W/win/pass5"
encodings "$USER" noclear | windows | sort -u >"$W/win/user-enc"
# The user name is also the envelope sender here ("MAIL FROM:<sponsor@...>",
# the From: header), and its domain is the server's: the clear form is
# searched after the sender's own places are taken out, and without the
# windows that any other name of these captures holds as well.
LEGIT="smtp.testlab.com
guest@testlab.com
client.testlab.example
71250EAF4D01@smtp.testlab.com"
printf '%s\n' "$LEGIT" | windows | sort -u >"$W/win/legit"
printf '%s\n' "$USER" | windows | sort -u | comm -23 - "$W/win/legit" >"$W/win/user-clear"
strip_sender() {   # (also when --max-field cut the address short; ECS lists addresses in arrays)
  sed -E -e 's/<sponsor@testlab[.a-z]*>?//g' -e 's/&lt;sponsor@testlab[.a-z]*(&gt;)?//g' \
         -e 's/"address":[[:space:]]*"sponsor@testlab[.a-z]*"//g' \
         -e ':a' -e 's/("address":\[[^]]*)"sponsor@testlab[.a-z]*"/\1/' -e 'ta' "$1"
}

# the search must find what it looks for
printf 'x%sx\n' "$(printf 'zz%s!' "$PASS4" | base64 -w0)" >"$W/selftest"
grep -qF -f "$W/win/pass4" "$W/selftest" && ok || ko "self-test: base64 of the password at offset 2 not found"
printf '{"user":"%s"}\n' "$USER" >"$W/selftest"
grep -qF -f "$W/win/user-clear" "$W/selftest" && ok || ko "self-test: clear user name not found"
strip_sender "$W/selftest" | grep -qF -f "$W/win/user-clear" && ok || ko "self-test: clear user name stripped"
printf '{"to":{"address":["a@b.c","sponsor@testlab.com"]},"user":"%s"}\n' "$USER" >"$W/selftest"
strip_sender "$W/selftest" | grep -qF -f "$W/win/user-clear" && ok || ko "self-test: clear user name stripped beside an ECS address list"
printf 'MAIL FROM:<%s>\nHost smtp.testlab.com\n' "$USER" >"$W/selftest"
strip_sender "$W/selftest" | grep -qF -f "$W/win/user-clear" && ko "self-test: the sender counts as a leak" || ok
printf '%s' "$USER" | od -An -tx1 | tr -d ' \n' >"$W/selftest"
grep -qF -f "$W/win/user-enc" "$W/selftest" && ok || ko "self-test: hex of the user name not found"

# ---- degraded captures -------------------------------------------------------
mk() { # name source "editcap options" frames...
  n=$1 src=$2 o=$3; shift 3
  # shellcheck disable=SC2086
  editcap $o "$P/$src.pcap" "$W/cap/$n.pcap" "$@" >/dev/null 2>&1 || ko "editcap $o $src $* -> $n"
}
for c in s4:s4-auth-login-ok s5:s5-auth-login-fail; do
  t=${c%%:*} src=${c#*:}
  cp "$P/$src.pcap" "$W/cap/$t-full.pcap"
  for f in 9 10 11 12 13; do
    mk "$t-from$f" "$src" -r "$f-99999"      # the capture begins at frame f
    mk "$t-drop$f" "$src" "" "$f"            # frame f lost
  done
  mk "$t-drop9-10" "$src" "" 9-10
  mk "$t-drop10-11" "$src" "" 10-11
  mk "$t-drop11-12" "$src" "" 11-12
  mk "$t-drop9-11" "$src" "" 9 11
  mk "$t-snap70" "$src" "-s 70"             # 4 payload bytes a packet
  mk "$t-snap80" "$src" "-s 80"             # lines cut in their middle
  if command -v mergecap >/dev/null 2>&1; then
    mergecap -w "$W/cap/$t-twice.pcap" "$P/$src.pcap" "$P/$src.pcap"   # every packet twice
    editcap "$P/$src.pcap" "$W/cap/$t-no13.pcap" 13 && editcap -r "$P/$src.pcap" "$W/cap/$t-13.pcap" 13 &&
      mergecap -a -w "$W/cap/$t-pass-last.pcap" "$W/cap/$t-no13.pcap" "$W/cap/$t-13.pcap" &&
      rm -f "$W/cap/$t-no13.pcap" "$W/cap/$t-13.pcap" || ko "mergecap $t-pass-last"
  fi
done
# the 334 "Password:" lost, and the client's password segment cut by snaplen
editcap -s 80 "$W/cap/s4-drop12.pcap" "$W/cap/s4-drop12-nosnap.pcap" >/dev/null 2>&1 || ko "editcap s4-drop12-nosnap"

# ---- every form, with and without --show-user ------------------------------------
# form name, then mxtrace options
FORMS="timeline
ndjson -F ndjson
pretty --pretty
text -F text --color never
color -F text --color always
summary -F summary --color never
html -F html
ecs -F ecs
tlsrpt -F tlsrpt --pretty
ndjson-tiny -F ndjson --max-line 16 --max-field 16 --max-pending 1
text-tiny -F text --color never --max-line 16 --max-field 16"

printf '%s\n' "$FORMS" >"$W/forms"
# every format --help names is among them
for f in $("$MX" --help 2>&1 | sed -n '/-F FORMAT/,/-o FILE/p' | sed -E 's/^ *-F FORMAT *//' |
           grep -oE '^ *[a-z]+( \(default\))?:' | sed -E 's/[ :]|\(default\)//g'); do
  grep -q "^$f\( \|$\)" "$W/forms" && ok || ko "format $f (mxtrace --help) is not searched"
done
printf '%s\n' "$KNOWN" >"$W/known"
is_known() { # capture su form
  while read -r kc ks kf; do
    [ "$kc" = "$1" ] && [ "$ks" = "$2" ] && case ",$kf," in *",$3,"*) return 0 ;; esac
  done <"$W/known"
  return 1
}

checked=0
for cap in "$W"/cap/*.pcap; do
  c=$(basename "$cap" .pcap)
  while read -r form opts; do
    for ndpi in --no-ndpi ""; do
      # nDPI is set up per run (0.1 s): with it, two forms suffice
      [ -z "$ndpi" ] && [ "$form" != ndjson ] && [ "$form" != text ] && continue
      for su in 0 1; do
        if is_known "$c" "$su" "$form"; then k=y; else k=; fi
        if [ "$MODE" = --known-leaks ]; then [ -n "$k" ] || continue; else [ -z "$k" ] || continue; fi
        flag=; [ $su = 1 ] && flag=--show-user
        o="$W/out/$c.$form${ndpi:+.noNDPI}.u$su"
        # shellcheck disable=SC2086
        "$MX" -r "$cap" $opts $ndpi $flag -o "$o" 2>"$o.err"
        rc=$?
        [ $rc = 0 ] && ok || ko "$c $opts $ndpi $flag: exit $rc: $(head -1 "$o.err")"
      done
    done
  done <"$W/forms"
done

for o in "$W"/out/*.u0 "$W"/out/*.u1; do
  [ -f "$o" ] || continue
  b=$(basename "$o"); c=${b%%.*}; su=${b##*.u}
  case $c in s5-*) pw=pass5 ;; *) pw=pass4 ;; esac
  checked=$((checked + 1))
  # (a TLS report is empty when no session tried TLS)
  case $b in *.tlsrpt.*) ;; *) [ -s "$o" ] && ok || ko "$b: empty output" ;; esac
  if grep -qF -f "$W/win/$pw" "$o"; then
    ko "LEAK $b: password: $(grep -oF -f "$W/win/$pw" "$o" | head -1) in: $(grep -F -f "$W/win/$pw" "$o" | head -1 | cut -c1-300)"
  else ok; fi
  if grep -qF -f "$W/win/user-enc" "$o"; then
    ko "LEAK $b: encoded user name: $(grep -oF -f "$W/win/user-enc" "$o" | head -1)"
  else ok; fi
  if [ "$su" = 0 ]; then
    if strip_sender "$o" | grep -qF -f "$W/win/user-clear"; then
      ko "LEAK $b: user name without --show-user: $(strip_sender "$o" | grep -F -f "$W/win/user-clear" | head -1 | cut -c1-300)"
    else ok; fi
  fi
done

# The runs that must show the user do (so a search that finds nothing means
# something): the whole capture, with --show-user, in JSON and in text.
if [ "$MODE" != --known-leaks ]; then
  for c in s4-full s5-full; do
    grep -q "\"user\":\"$USER\"" "$W/out/$c.ndjson.noNDPI.u1" && ok || ko "$c: --show-user did not write the user"
    grep -q "\"kind\":\"password\",\"redacted\":true" "$W/out/$c.ndjson.noNDPI.u1" && ok || ko "$c: no redacted password response"
    grep -q "<username: $USER>" "$W/out/$c.text.noNDPI.u1" && ok || ko "$c: the text view lacks the user"
  done
  grep -q '"possible_credential":true' "$W/out/s4-from13.ndjson.noNDPI.u0" && ok || ko "s4-from13: the password line is not withheld"
  grep -q '"possible_credential":true' "$W/out/s4-drop9.ndjson.noNDPI.u0" && ok || ko "s4-drop9: the lines after the lost AUTH are not withheld"
fi

echo "leaks.sh: $checked outputs of $(ls "$W/cap" | wc -l) captures searched${MODE:+ ($MODE)}: $pass passed, $fail failed"
[ $checked -gt 0 ] || { echo "leaks.sh: nothing was checked"; exit 1; }
[ $fail = 0 ]
