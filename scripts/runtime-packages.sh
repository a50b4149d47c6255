#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries a binary links (one a line, sorted):
# what a runtime image must install. Used by the Dockerfile; run it on a build to check it.
#   scripts/runtime-packages.sh build/server/netbird-mgmt
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/runtime-packages.sh BINARY" >&2; exit 2; }
ldd "$1" | awk '/=> \// {print $3}' | while read -r lib; do
  # Debian 12 merges /lib into /usr/lib: dpkg may know a library under either path.
  dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")" 2>/dev/null ||
    dpkg -S "${lib#/usr}" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null ||
    { echo "runtime-packages: no package holds $lib" >&2; exit 1; }
done | cut -d: -f1 | sort -u
