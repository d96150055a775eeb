#!/bin/sh
# Sets up, builds, and shows the timeline of a bundled capture.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec ./build/mxtrace -r "${1:-pcaps/smtp/s1-plain-delivery.pcap}" --pretty
