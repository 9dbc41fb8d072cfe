#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (run as root, or with sudo):
# libipt-dev + gcc for the libipt oracle harness; cmake + yasm to build the
# vectors' libipt (../shared/libipt-src: ptdump, pttc, ptxed) as a second oracle; qemu-user + bubblewrap
# (+ util-linux's prlimit) for the
# emulated recorder and its confinement; nasm for hand-written test programs;
# linux-perf so that perf script checks the perf.data files we write; chromium
# (Debian's, never a downloaded one) for the HTML report test; clang and
# binutils' addr2line for the DWARF line-table oracle test (ptscope itself
# reads DWARF in process and needs neither at run time); redis-server for the
# fleet tests (a real Redis on a free local port, never a mock).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(libipt-dev gcc clang make cmake yasm binutils qemu-user bubblewrap util-linux nasm linux-perf python3 gzip coreutils chromium redis-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "test dependencies present: ${PKGS[*]}"
