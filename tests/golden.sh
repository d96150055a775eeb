#!/bin/sh
# Golden test: runs mxtrace on a capture named in tests/golden/MANIFEST and
# compares its ndjson with the reviewed expected file.
#   golden.sh MXTRACE NAME            compare
#   golden.sh MXTRACE NAME --update   rewrite the expected file (review the diff!)
#   golden.sh MXTRACE --all --update  rewrite them all
set -u
MX=$1; NAME=$2; MODE=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export TZ=UTC LC_ALL=C

run_one() {
  line=$(grep -E "^$1[[:space:]]" "$HERE/golden/MANIFEST") || { echo "no such golden test: $1"; return 1; }
  # shellcheck disable=SC2086
  set -- $line
  name=$1; caps=$2; shift 2
  # option values naming files of the repository: @ROOT@/path
  # shellcheck disable=SC2046
  set -- $(printf '%s\n' "$@" | sed "s|@ROOT@|$ROOT|g")
  # several captures: comma-separated; a view (-F text ...) is kept as .txt
  ext=ndjson
  case " $* " in *" -F "*) ext=txt ;; esac
  exp="$HERE/golden/$name.$ext"
  rs=""
  for c in $(echo "$caps" | tr ',' ' '); do rs="$rs -r $ROOT/$c"; done
  out=$(mktemp)
  # shellcheck disable=SC2086
  "$MX" $rs -F ndjson "$@" >"$out" 2>/dev/null
  if [ "$MODE" = "--update" ]; then
    mv "$out" "$exp"; echo "updated $exp"; return 0
  fi
  if diff -u "$exp" "$out"; then rm -f "$out"; echo "1 passed, 0 failed"; return 0; fi
  rm -f "$out"; echo "0 passed, 1 failed"; return 1
}

if [ "$NAME" = "--all" ]; then
  rc=0
  for n in $(grep -Ev '^(#|$)' "$HERE/golden/MANIFEST" | awk '{print $1}'); do run_one "$n" || rc=1; done
  exit $rc
fi
run_one "$NAME"
