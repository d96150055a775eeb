#!/bin/sh
# evtypes.sh MXTRACE SCHEMA_MD - the documentation lists exactly the event
# types of the program's table, with the same ECS columns, and every type
# has its own section or table row describing its fields.
set -u
MX=$1 DOC=$2
tmp=${TMPDIR:-/tmp}/evtypes.$$
trap 'rm -f "$tmp".*' EXIT
"$MX" --list-event-types > "$tmp.list" || { echo "FAIL: --list-event-types"; exit 1; }
n=$(wc -l < "$tmp.list")
[ "$n" -ge 20 ] || { echo "FAIL: only $n event types listed"; exit 1; }
awk -F'\t' '{ printf "| `%s` | %s | %s | %s |\n", $1, $2, $3, $4 }' "$tmp.list" > "$tmp.want"
sed -n '/^| type | ECS category | ECS type | what it is |$/,/^$/p' "$DOC" | grep '^| `' > "$tmp.have"
if ! cmp -s "$tmp.want" "$tmp.have"; then
    echo "FAIL: the event type table in $DOC differs from mxtrace --list-event-types; it should read:"
    cat "$tmp.want"
    diff "$tmp.want" "$tmp.have"
    exit 1
fi
# the rest of the document, without the table above
sed '/^## Event types/,/^## The timeline document/d' "$DOC" > "$tmp.body"
fail=0
for t in $(cut -f1 "$tmp.list"); do
    # a section heading, or the first cell of a field table, names it
    if ! grep -Eq "^#+ .*\`$t\`|^\| (\`[a-z_.]+\`, )*\`$t\`(,| \|)" "$tmp.body"; then
        echo "FAIL: $t has no section or field row in $DOC"; fail=1
    fi
done
[ $fail = 0 ] && echo "ok: $n event types, documented"
exit $fail
