#!/bin/sh
# One set-up step for a fresh Debian machine: installs the Debian packages
# Switchyard builds and tests with (skipping those already present), then
# `npm ci`, which fetches Node 24 (npm package node@24) and builds the BPF
# object and the native addon. Needs root for apt-get; safe to run again.
set -eu
cd "$(dirname "$0")/.."

pkgs="clang clang-format llvm libbpf-dev libelf-dev zlib1g-dev pkg-config make cmake g++ iproute2 nftables iptables ipset
      bpftool ipvsadm qemu-system-x86 busybox-static cpio kmod xz-utils zstd procps prometheus"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

echo "setup: npm ci (Node 24 from the node@24 package, BPF object, native addon)"
npm ci --no-audit --no-fund
./node_modules/.bin/node --version
