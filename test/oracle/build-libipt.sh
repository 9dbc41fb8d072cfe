#!/usr/bin/env bash
# Build the libipt that the shared vectors were generated with (../shared/
# libipt-src, see its README.ptscope.md) as a test oracle, into build/libipt
# of the repository: ptdump, pttc (needs yasm) and ptxed. ptxed needs Intel
# XED, which no registry here packages; it is built against test/oracle/
# xed-shim, which answers XED's questions with libipt's own instruction
# length decoder (no disassembly: run ptxed with --no-inst). BASH=OFF keeps
# cmake from adding libipt's test folder, which the shared copy leaves out.
#
# Prints the bin directory. Rebuilds only when an input is newer than the
# stamp the last complete build left. PTSCOPE_LIBIPT_SRC and
# PTSCOPE_LIBIPT_OUT build another copy of the sources elsewhere
# (build-libipt-fixed.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${PTSCOPE_LIBIPT_SRC:-$root/../shared/libipt-src}"
out="${PTSCOPE_LIBIPT_OUT:-$root/build/libipt}"
shim="$here/xed-shim"
bin="$out/bin"

for tool in cmake gcc yasm; do
  command -v "$tool" >/dev/null || { echo "build-libipt: $tool not found (scripts/install-test-deps.sh installs it)" >&2; exit 1; }
done
[ -f "$src/libipt/src/pt_ild.c" ] || { echo "build-libipt: libipt sources not found at $src" >&2; exit 1; }

# Everything the build depends on; the stamp is written last, after every
# tool is in place, so "stamp newer than all inputs" means "built".
stamp="$out/.built"
inputs=("$shim/xed-shim.c" "$shim/xed/xed-interface.h" "$here/build-libipt.sh" "$here/errata-table.c" "$here/ptoracle.c")
up_to_date() {
  [ -f "$stamp" ] || return 1
  local f
  for f in "${inputs[@]}"; do [ "$stamp" -nt "$f" ] || return 1; done
  for f in ptxed ptdump pttc ptoracle errata-table; do [ -x "$bin/$f" ] || return 1; done
}

# Parallel test workers call this at once. The check is made under the
# lock: a worker that waited while another built must see that build as
# done, not start a second one that rewrites binaries the first worker's
# tests are already running (which failed a CI run with EACCES).
mkdir -p "$root/build"
exec 9>"$root/build/.libipt.lock"
flock 9
if up_to_date; then
  echo "$bin"
  exit 0
fi
rm -f "$stamp"

shimlib="$out/xed-shim"
mkdir -p "$shimlib"
gcc -O2 -fPIC -c -o "$shimlib/xed-shim.o" "$shim/xed-shim.c" \
  -I"$shim" -I"$src/libipt/internal/include" -I"$src/libipt/include" -I"$out/libipt/include" -I"$src/include" \
  -I"$src/libipt/internal/include/posix" 2>/dev/null \
  || {
    # The generated intel-pt.h exists only after cmake has configured once.
    cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release >/dev/null
    gcc -O2 -fPIC -c -o "$shimlib/xed-shim.o" "$shim/xed-shim.c" \
      -I"$shim" -I"$src/libipt/internal/include" -I"$out/libipt/include" -I"$src/include"
  }
gcc -O2 -fPIC -c -o "$shimlib/pt_ild.o" "$src/libipt/src/pt_ild.c" \
  -I"$src/libipt/internal/include" -I"$out/libipt/include" -I"$src/include"
ar rcs "$shimlib/libxed.a" "$shimlib/xed-shim.o" "$shimlib/pt_ild.o"

cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release \
  -DPTDUMP=ON -DPTTC=ON -DPTXED=ON -DBASH=OFF -DSIDEBAND=ON -DPEVENT=ON -DFEATURE_ELF=ON \
  -DXED_INCLUDE="$shim" -DXED_LIBDIR="$shimlib" >"$out.cmake.log" 2>&1 \
  || { cat "$out.cmake.log" >&2; exit 1; }
cmake --build "$out" -j2 >"$out.build.log" 2>&1 || { tail -30 "$out.build.log" >&2; exit 1; }
# The differential oracle (ptoracle.c) over this libipt, beside the one over
# Debian's 2.0.5 (build.sh): where the two versions disagree, this one is
# the reference.
gcc -O2 -std=c11 -o "$bin/ptoracle.tmp" "$here/ptoracle.c" -I"$out/libipt/include" \
  -L"$out/lib" -lipt -Wl,-rpath,"$out/lib"
mv -f "$bin/ptoracle.tmp" "$bin/ptoracle"
# The errata table as this libipt has it (test/cpu.test.ts).
gcc -O2 -o "$bin/errata-table.tmp" "$here/errata-table.c" -I"$out/libipt/include" \
  -L"$out/lib" -lipt -Wl,-rpath,"$out/lib"
mv -f "$bin/errata-table.tmp" "$bin/errata-table"
touch "$stamp"
echo "$bin"
