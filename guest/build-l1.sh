#!/usr/bin/env bash
# Builds the nested hardware-KVM test host ("L1"): Debian's own x86_64 kernel and a small
# busybox initramfs that loads kvm_amd, virtio, 9p, overlay, tun and vhost, mounts the build
# machine's root (shared read-only by QEMU) under an in-memory overlay and runs one command
# there. tests/nested/run-in-l1 boots it under QEMU's TCG, which emulates AMD SVM with nested
# paging, so crosvm gets a hardware-style /dev/kvm inside it (see shared/HOST-KVM.md).
#
# Usage: guest/build-l1.sh [--print]
#
# The kernel package is the one `linux-image-amd64` depends on (linux-image-6.1.0-N-amd64),
# fetched with `apt-get download` and unpacked with `dpkg -x` into the cache: nothing is installed
# on this machine. Outputs live in a content-addressed cache outside the repository:
#   ${CROSVM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crosvm-guest}/l1-<hash>/
# where <hash> covers this script, guest/l1/*, the kernel package's version and busybox-static's.
# On success it prints exactly these lines on stdout (progress goes to stderr):
#   L1_KERNEL=<vmlinuz>  L1_INITRD=<initramfs>
# --print prints the same lines without building; it fails (exit 1) when they are not built yet.
#
# Environment: CROSVM_GUEST_CACHE (cache root), BUSYBOX (default /bin/busybox),
# CROSVM_L1_KERNEL_PACKAGE (default: what linux-image-amd64 depends on).
set -euo pipefail

GUEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$GUEST_DIR/$(basename "${BASH_SOURCE[0]}")"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
CACHE_ROOT="${CROSVM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crosvm-guest}"

# Modules L1 loads, dependencies resolved from each module's own .modinfo (no depmod needed).
# kvm_amd: the hardware-style KVM; virtio_pci/9pnet_virtio/9p: the shared root and results
# directory; overlay: the writable in-memory view of that root; tun/vhost_net/vhost_vsock and
# veth: the network and vsock devices crosvm's tests use inside L1.
L1_MODULES=(kvm_amd virtio_pci 9pnet_virtio 9p overlay tun vhost_net vhost_vsock veth)

log() { echo "build-l1.sh: $*" >&2; }
die() {
  echo "build-l1.sh: error: $*" >&2
  exit 1
}

print_only=0
case "${1:-}" in
  --print) print_only=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument '$1' (usage: build-l1.sh [--print])" ;;
esac

kernel_package() {
  if [[ -n "${CROSVM_L1_KERNEL_PACKAGE:-}" ]]; then
    echo "$CROSVM_L1_KERNEL_PACKAGE"
    return
  fi
  local pkg
  pkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')"
  if [[ -z "$pkg" ]]; then
    log "apt has no package lists yet; running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed (run it as root once)"
    pkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')"
  fi
  [[ -n "$pkg" ]] || die "cannot tell which kernel package linux-image-amd64 depends on"
  echo "$pkg"
}

PKG="$(kernel_package)"
PKG_VERSION="$(apt-cache policy "$PKG" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')"
[[ -n "$PKG_VERSION" && "$PKG_VERSION" != "(none)" ]] || die "apt knows no version of $PKG"

hash_inputs() {
  local f
  echo "kernel: $PKG $PKG_VERSION"
  echo "busybox: $(dpkg-query -W busybox-static 2>/dev/null || stat -L -c '%s %Y' "$BUSYBOX")"
  echo "modules: ${L1_MODULES[*]}"
  for f in "$SELF" "$GUEST_DIR"/l1/*; do
    echo "file ${f#"$GUEST_DIR"/} $(sha256sum <"$f" | cut -d' ' -f1)"
  done
}

HASH="$(hash_inputs | sha256sum | cut -c1-32)"
OUT="$CACHE_ROOT/l1-$HASH"

print_result() {
  echo "L1_KERNEL=$OUT/vmlinuz"
  echo "L1_INITRD=$OUT/initramfs-l1.cpio.gz"
}

if [[ -s "$OUT/vmlinuz" && -s "$OUT/initramfs-l1.cpio.gz" ]]; then
  print_result
  exit 0
fi
[[ $print_only -eq 0 ]] || {
  log "not built yet ($OUT); run guest/build-l1.sh"
  exit 1
}

for tool in apt-get dpkg cpio gzip strings; do
  command -v "$tool" >/dev/null || die "'$tool' is needed (apt-get install dpkg cpio gzip binutils)"
done
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX not found (apt-get install busybox-static)"
if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'program interpreter'; then
  die "$BUSYBOX is dynamically linked; L1 needs busybox-static"
fi

mkdir -p "$CACHE_ROOT"
STAGE="$(mktemp -d "$CACHE_ROOT/l1-$HASH.tmp.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

DEB_DIR="$CACHE_ROOT/debs"
mkdir -p "$DEB_DIR"
deb="$(ls "$DEB_DIR/${PKG}_"*"_amd64.deb" 2>/dev/null | grep -F "_${PKG_VERSION//:/%3a}_" | head -n 1 || true)"
if [[ -z "$deb" ]]; then
  log "downloading $PKG $PKG_VERSION (apt-get download; not installed)"
  (cd "$DEB_DIR" && apt-get download -q "$PKG=$PKG_VERSION" >&2 2>/dev/null) ||
    (apt-get update -qq >&2 && cd "$DEB_DIR" && apt-get download -q "$PKG=$PKG_VERSION" >&2) ||
    die "apt-get download $PKG failed"
  deb="$(ls "$DEB_DIR/${PKG}_"*"_amd64.deb" | head -n 1)"
fi
log "unpacking $(basename "$deb")"
dpkg -x "$deb" "$STAGE/pkg"
vmlinuz="$(ls "$STAGE"/pkg/boot/vmlinuz-* | head -n 1)"
moddir="$(ls -d "$STAGE"/pkg/lib/modules/* | head -n 1)"
[[ -f "$vmlinuz" && -d "$moddir" ]] || die "unexpected layout in $deb"

# Resolve module dependencies (depends= in each .ko's .modinfo), dependencies first.
declare -A mod_path=() done=()
while IFS= read -r f; do
  n="$(basename "$f" .ko)"
  mod_path[${n//-/_}]="$f"
done < <(find "$moddir/kernel" -name '*.ko')
order=()
visit() {
  local name="${1//-/_}" deps d
  [[ -z "${done[$name]:-}" ]] || return 0
  [[ -n "${mod_path[$name]:-}" ]] || die "module $name is not in $PKG"
  done[$name]=1
  deps="$(strings -a "${mod_path[$name]}" | sed -n 's/^depends=//p' | head -n 1)"
  for d in ${deps//,/ }; do visit "$d"; done
  order+=("$name")
}
for m in "${L1_MODULES[@]}"; do visit "$m"; done
log "modules: ${order[*]}"

root="$STAGE/root"
mkdir -p "$root"/{bin,dev,proc,sys,host,ctl,rw,newroot,lib/modules}
cp "$BUSYBOX" "$root/bin/busybox"
for m in "${order[@]}"; do cp "${mod_path[$m]}" "$root/lib/modules/$m.ko"; done
printf '%s\n' "${order[@]}" >"$root/lib/modules/load-order"
cp "$GUEST_DIR/l1/init" "$root/init"
chmod 0755 "$root/init" "$root/bin/busybox"
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || log "cannot mknod /dev/console (not root): init opens it itself"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$STAGE/initramfs-l1.cpio.gz"
cp "$vmlinuz" "$STAGE/vmlinuz"
echo "$PKG $PKG_VERSION" >"$STAGE/kernel-package"
rm -rf "$STAGE/pkg" "$root"
rm -rf "$OUT"
mv "$STAGE" "$OUT"
trap - EXIT
log "cache entry: $OUT"
print_result
