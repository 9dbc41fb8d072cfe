#!/usr/bin/env bash
# Build the libipt edge-bitmap harness: build/oracle/ptedges (relative to
# the repository root, whatever the current directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$here/ptedges.c"
out_dir="$root/build/oracle"
out="$out_dir/ptedges"

if ! echo '#include <intel-pt.h>' | gcc -x c -E - >/dev/null 2>&1; then
  echo "ptedges: libipt headers not found (intel-pt.h): install libipt-dev" >&2
  exit 1
fi

mkdir -p "$out_dir"
# Build to a private name and rename, so concurrent test workers never see
# a half-written binary.
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
gcc -O2 -Wall -Wextra -std=c11 -o "$tmp" "$src" -lipt
mv -f "$tmp" "$out"
