#!/usr/bin/env bash
# Build a copy of the vectors' libipt with two of its defects fixed
# (libipt-fixes.mjs) into build/libipt-fixed, as build-libipt.sh builds the
# original: the ptxed differential checks that what it counts as those
# defects is nothing else. Prints the bin directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${PTSCOPE_LIBIPT_SRC:-$root/../shared/libipt-src}"
copy="$root/build/libipt-fixed-src"
out="$root/build/libipt-fixed"

mkdir -p "$root/build"
exec 8>"$root/build/.libipt-fixed.lock"
flock 8
if [ ! -f "$out/.built" ] || [ ! -d "$copy" ] || [ "$here/libipt-fixes.mjs" -nt "$out/.built" ] || [ "$here/build-libipt-fixed.sh" -nt "$out/.built" ]; then
  rm -rf "$copy"
  cp -r "$src" "$copy"
  chmod -R u+w "$copy"
  node "$here/libipt-fixes.mjs" "$copy"
  rm -f "$out/.built"
fi
PTSCOPE_LIBIPT_SRC="$copy" PTSCOPE_LIBIPT_OUT="$out" bash "$here/build-libipt.sh"
