#!/bin/sh
# Installs the Debian 12 packages mxtrace needs to build (and, with --test,
# to run its whole test suite).  Only what is missing is installed.
set -eu
want="build-essential cmake pkg-config libpcap-dev libndpi-dev libcjson-dev libssl-dev libhiredis-dev"
if [ "${1:-}" = "--test" ]; then
  # tshark: conformance checks; clang + libclang-rt: sanitizers and fuzzing;
  # python3: JSON checks in the test scripts; python3-jsonschema: the JSON
  # Schema tests; chromium: the HTML report test; redis-server, redis-tools
  # and rsyslog: the collectors of the output tests; iproute2, python3-aiosmtpd,
  # swaks and openssl: the mail servers and clients of the live-capture test.
  want="$want tshark clang libclang-rt-14-dev python3 python3-jsonschema chromium fonts-dejavu-core redis-server redis-tools rsyslog iproute2 python3-aiosmtpd swaks openssl"
fi
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install:$missing" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
