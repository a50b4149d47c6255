#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries a binary links (one a line, sorted):
# what a runtime image must install. Used by the Dockerfile; run it on a build to check it.
#   scripts/runtime-packages.sh build/server/netbird-mgmt
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/runtime-packages.sh BINARY" >&2; exit 2; }
mapfile -t libs < <(ldd "$1" | awk '/=> \// {print $3}')
# Debian 12 merges /lib into /usr/lib: dpkg may know a library under any of these paths. One dpkg
# query for all of them (dpkg -S loads its database per call: ~0.5 s each).
variants() { local l=$1; printf '%s\n' "$l" "$(realpath "$l")" "${l#/usr}" "/usr$l"; }
mapfile -t paths < <(for l in "${libs[@]}"; do variants "$l"; done | sort -u)
owners=$(dpkg -S "${paths[@]}" 2>/dev/null || true)
for l in "${libs[@]}"; do
  found=
  while read -r v; do
    pkg=$(awk -F': ' -v p="$v" '$2 == p {print $1; exit}' <<<"$owners")
    [ -n "$pkg" ] && { found=$pkg; break; }
  done < <(variants "$l")
  [ -n "$found" ] || { echo "runtime-packages: no package holds $l" >&2; exit 1; }
  echo "$found"
done | tr ',' '\n' | sed 's/^ *//; s/:.*//' | sort -u
