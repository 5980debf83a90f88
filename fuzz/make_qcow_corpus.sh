#!/usr/bin/env bash
# Writes a seed corpus for qcow_fuzz into DIR (default: build-fuzz/corpus/qcow, ignored by git;
# the committed seeds in fuzz/corpus/qcow/ are this script's output minus the 2 MiB
# v3_512_rc64_full, which scripts/fuzz.sh adds to build-fuzz/corpus/qcow when qemu-img exists): small qcow2 images made
# by qemu-img/qemu-io covering v2/v3, small clusters, compressed clusters, zero clusters,
# snapshots, refcount widths, a backing file reference and a dirty (lazy refcount) image.
# Usage: fuzz/make_qcow_corpus.sh [DIR]; then: scripts/fuzz.sh --targets qcow_fuzz RESULTS_DIR
set -euo pipefail
out=${1:-$(dirname "$0")/../build-fuzz/corpus/qcow}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mk() {  # name size options [qemu-io commands...]
  local name=$1 size=$2 opts=$3
  shift 3
  qemu-img create -q -f qcow2 -o "$opts" "$tmp/$name" "$size"
  for cmd in "$@"; do qemu-io -f qcow2 -c "$cmd" "$tmp/$name" >/dev/null; done
  cp "$tmp/$name" "$out/$name"
}
mk v3_512 1M cluster_size=512 'write -P 0x5a 0 4k' 'write -z 8k 2k' 'discard 1k 512'
mk v2_512 1M cluster_size=512,compat=0.10 'write -P 0x11 512 3k'
mk v3_4k_rc8 4M cluster_size=4096,refcount_bits=8 'write -P 0x22 0 12k' 'write -P 0x33 1M 4k'
# The refcount table is one cluster short of full: the next allocations grow it.
mk v3_512_rc64_full 4M cluster_size=512,refcount_bits=64 'write -P 0x5a 0 1980k'
mk v3_4k_rc64 4M cluster_size=4096,refcount_bits=64 'write -P 0x44 4k 8k'
mk v3_1k_lazy 2M cluster_size=1024,lazy_refcounts=on 'write -P 0x55 0 6k'
# Dirty bit set (an unclean shutdown with lazy refcounts).
cp "$out/v3_1k_lazy" "$out/v3_1k_dirty"
printf '\x01' | dd of="$out/v3_1k_dirty" bs=1 seek=79 conv=notrunc status=none
mk v3_empty 64M cluster_size=65536
mk v3_snap 1M cluster_size=512 'write -P 0x66 0 2k'
qemu-img snapshot -c s1 "$tmp/v3_snap"
qemu-io -f qcow2 -c 'write -P 0x67 512 1k' "$tmp/v3_snap" >/dev/null
cp "$tmp/v3_snap" "$out/v3_snap"
head -c 16384 /dev/zero | tr '\0' 'a' >"$tmp/src.raw"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=1024 "$tmp/src.raw" "$out/v3_compressed"
qemu-img create -q -u -f qcow2 -o cluster_size=512 -b base.raw -F raw "$tmp/v3_backing" 1M
cp "$tmp/v3_backing" "$out/v3_backing"
echo "seeds in $out: $(ls "$out" | wc -l)"
