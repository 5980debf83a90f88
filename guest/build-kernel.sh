#!/usr/bin/env bash
# Builds the guest kernel and initramfs images for the crosvm-in-C++ tests.
#
# Usage: guest/build-kernel.sh [--print]
#
# Outputs live in a content-addressed cache OUTSIDE the repository:
#   ${CROSVM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crosvm-guest}/<hash>/
# where <hash> is a sha256 over guest/kernel.config, guest/patches/*.patch,
# this script, guest/mkinitramfs.sh, guest/init/* and the installed versions
# of Debian's linux-source-6.1 and busybox-static. When that directory exists
# the script does nothing (a second run is instant). Otherwise it builds
# vmlinux and bzImage from /usr/src/linux-source-6.1.tar.xz (tinyconfig +
# guest/kernel.config + guest/patches), the tiny nolibc init and the busybox
# initramfs, in a temporary directory renamed into place at the very end, so
# an interrupted build never leaves a half-valid cache entry.
#
# On success it prints exactly these lines on stdout (progress goes to stderr):
#   KERNEL=<vmlinux>  BZIMAGE=<bzImage>  INITRD=<tiny-init initramfs>
#   BUSYBOX_INITRD=<busybox initramfs>  PARAMS=<kernel parameters for this host>
# --print prints the same lines without building; it fails (exit 1) when the
# cache entry for the current sources does not exist yet.
#
# Environment: CROSVM_GUEST_CACHE (cache root), CROSVM_GUEST_JOBS (make -j,
# default nproc), CROSVM_GUEST_NICE (niceness of the build, default 10),
# LINUX_SOURCE_TARBALL (default /usr/src/linux-source-6.1.tar.xz),
# BUSYBOX (default /bin/busybox), CROSVM_HOST_KVM_KIND (see host-kvm-kind.sh).
set -euo pipefail

GUEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$GUEST_DIR/$(basename "${BASH_SOURCE[0]}")"
TARBALL="${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
CACHE_ROOT="${CROSVM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crosvm-guest}"
JOBS="${CROSVM_GUEST_JOBS:-$(nproc)}"
NICE="${CROSVM_GUEST_NICE:-10}"
HW_PARAMS="console=ttyS0 reboot=k panic=-1"

log() { echo "build-kernel.sh: $*" >&2; }
die() { echo "build-kernel.sh: error: $*" >&2; exit 1; }

print_only=0
case "${1:-}" in
  --print) print_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: build-kernel.sh [--print])" ;;
esac

# ---------------------------------------------------------------- inputs ----
pkg_version() {  # "name<TAB>version" of an installed Debian package, or a stand-in
  local v
  if v="$(dpkg-query -W "$1" 2>/dev/null)" && [[ -n "$v" ]]; then
    echo "$v"
  elif [[ -e "$2" ]]; then
    echo "$1 not-from-dpkg $(stat -L -c '%s %Y' "$2")"
  else
    echo "$1 missing"
  fi
}

hash_inputs() {  # prints the content that the cache key is the sha256 of
  local f
  echo "linux: $(pkg_version linux-source-6.1 "$TARBALL") $TARBALL"
  echo "busybox: $(pkg_version busybox-static "$BUSYBOX") $BUSYBOX"
  for f in "$GUEST_DIR/kernel.config" "$SELF" "$GUEST_DIR/mkinitramfs.sh" \
           "$GUEST_DIR"/patches/*.patch "$GUEST_DIR"/init/*; do
    [[ -f "$f" ]] || continue
    echo "file ${f#"$GUEST_DIR"/} $(sha256sum < "$f" | cut -d' ' -f1)"
  done
}

HASH="$(hash_inputs | sha256sum | cut -d' ' -f1)"
OUT="$CACHE_ROOT/$HASH"

params() {
  local kind
  kind="$("$GUEST_DIR/host-kvm-kind.sh")"
  if [[ "$kind" == emulated ]]; then
    grep -v '^[[:space:]]*#' "$GUEST_DIR/params-emulated-host.txt" | tr -s '\n\t ' '   ' | sed 's/^ *//; s/ *$//'
  else
    echo "$HW_PARAMS"
  fi
}

print_result() {
  echo "KERNEL=$OUT/vmlinux"
  echo "BZIMAGE=$OUT/bzImage"
  echo "INITRD=$OUT/initramfs-tiny.cpio"
  echo "BUSYBOX_INITRD=$OUT/initramfs-busybox.cpio"
  echo "PARAMS=$(params)"
}

outputs_complete() {
  local f
  for f in vmlinux bzImage initramfs-tiny.cpio initramfs-busybox.cpio; do
    [[ -s "$OUT/$f" ]] || return 1
  done
}

if outputs_complete; then
  log "up to date: $OUT"
  print_result
  exit 0
fi
if [[ $print_only -eq 1 ]]; then
  log "not built yet for these sources ($OUT); run guest/build-kernel.sh without --print"
  exit 1
fi

# ------------------------------------------------------------- preflight ----
[[ -f "$TARBALL" ]] || die "$TARBALL not found (apt-get install linux-source-6.1)"
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX not found (apt-get install busybox-static)"
if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'program interpreter'; then
  die "$BUSYBOX is dynamically linked; the initramfs needs busybox-static"
fi
for tool in make gcc flex bison bc lz4 cpio readelf patch tar xz flock sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' is needed (flex bison bc libelf-dev libssl-dev lz4 cpio)"
done

mkdir -p "$CACHE_ROOT"
# One build at a time per cache (the kernel build saturates the machine, and
# the shared source tree must not be used by two builds at once).
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
  log "another build holds $CACHE_ROOT/.build.lock; waiting"
  flock 9
fi
if outputs_complete; then  # built by whoever held the lock
  log "up to date: $OUT"
  print_result
  exit 0
fi
# Leftovers of interrupted runs (only the lock holder writes these).
rm -rf "$CACHE_ROOT"/*.tmp.* 2>/dev/null || true

STAGE="$(mktemp -d "$CACHE_ROOT/$HASH.tmp.XXXXXX")"
LOG="$STAGE/build.log"
FAILED_LOG="$CACHE_ROOT/$HASH.failed.log"
rm -f "$FAILED_LOG"
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && -d "$STAGE" ]]; then
    if [[ -f "$LOG" ]]; then
      cp -f "$LOG" "$FAILED_LOG" 2>/dev/null || true
      echo "build-kernel.sh: FAILED (exit $rc); last lines of the build log:" >&2
      tail -n 40 "$LOG" >&2 || true
      echo "build-kernel.sh: full log: $FAILED_LOG" >&2
    fi
    rm -rf "$STAGE"
  fi
}
trap on_exit EXIT
# Turn signals into an exit so that on_exit removes the half-built stage.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
: > "$LOG"

step() { log "$*"; echo "=== $(date '+%F %T') $*" >> "$LOG"; }
run() { "$@" >> "$LOG" 2>&1; }

# ---------------------------------------------------------- source tree ----
# The extracted, patched tree is shared by all configs built from the same
# linux-source package and patches (kbuild rebuilds what a config change
# touches), and kept so that a config change costs an incremental build.
TREE_KEY="$( { pkg_version linux-source-6.1 "$TARBALL"; cat "$GUEST_DIR"/patches/*.patch; } | sha256sum | cut -c1-16)"
TREE_PARENT="$CACHE_ROOT/tree-$TREE_KEY"
if [[ ! -f "$TREE_PARENT/.ready" ]]; then
  rm -rf "$TREE_PARENT"
  tmp_tree="$(mktemp -d "$CACHE_ROOT/tree-$TREE_KEY.tmp.XXXXXX")"
  step "extracting $TARBALL into $TREE_PARENT"
  run tar -xf "$TARBALL" -C "$tmp_tree"
  src="$(find "$tmp_tree" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  [[ -n "$src" && -f "$src/Makefile" ]] || die "unexpected tarball layout in $TARBALL"
  [[ "$(basename "$src")" == linux ]] || mv "$src" "$tmp_tree/linux"
  for p in "$GUEST_DIR"/patches/*.patch; do
    step "applying patches/$(basename "$p")"
    run patch -p1 --forward --batch -d "$tmp_tree/linux" -i "$p" || die "patch $(basename "$p") does not apply"
  done
  touch "$tmp_tree/.ready"
  mv "$tmp_tree" "$TREE_PARENT"
fi
TREE="$TREE_PARENT/linux"
log "source tree: $TREE"

kmake() {
  run nice -n "$NICE" make -C "$TREE" -j"$JOBS" \
    KBUILD_BUILD_USER=crosvm KBUILD_BUILD_HOST=crosvm-guest "$@"
}

# --------------------------------------------------------------- config ----
step "configuring: tinyconfig + guest/kernel.config"
kmake tinyconfig || die "make tinyconfig failed"
{ echo; echo "# ---- guest/kernel.config ----"; cat "$GUEST_DIR/kernel.config"; } >> "$TREE/.config"
kmake olddefconfig || die "make olddefconfig failed"

# Every option the fragment asks for must have survived Kconfig's dependency
# resolution: tinyconfig silently drops options whose dependencies are off.
missing=()
while IFS= read -r line || [[ -n "$line" ]]; do
  line="${line%%[[:space:]]}"
  if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
    if ! grep -qxF "$line" "$TREE/.config"; then
      have="$(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$TREE/.config" || echo "absent")"
      missing+=("wanted '$line', got '$have'")
    fi
  elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
    if grep -qE "^${BASH_REMATCH[1]}=" "$TREE/.config"; then
      missing+=("wanted '$line', got '$(grep -E "^${BASH_REMATCH[1]}=" "$TREE/.config")'")
    fi
  fi
done < "$GUEST_DIR/kernel.config"
if [[ ${#missing[@]} -gt 0 ]]; then
  printf '  %s\n' "${missing[@]}" >> "$LOG"
  die "the final .config does not have $(( ${#missing[@]} )) option(s) of guest/kernel.config (a dependency is off):$(printf '\n  %s' "${missing[@]}")"
fi
cp "$TREE/.config" "$STAGE/config"
log "config verified: all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$GUEST_DIR/kernel.config") options of guest/kernel.config are in .config"

# --------------------------------------------------------------- kernel ----
step "building vmlinux and bzImage (make -j$JOBS, nice $NICE; log: $LOG)"
start=$SECONDS
kmake vmlinux bzImage || die "kernel build failed"
log "kernel built in $((SECONDS - start)) s"
cp "$TREE/vmlinux" "$STAGE/vmlinux"
cp "$TREE/arch/x86/boot/bzImage" "$STAGE/bzImage"
cp "$TREE/System.map" "$STAGE/System.map"

# ------------------------------------------------------------------ init ----
step "building the nolibc init and gen_init_cpio"
kmake headers || die "make headers failed"
NOLIBC="$TREE/tools/include/nolibc"
run gcc -static -nostdlib -ffreestanding -fno-stack-protector -fno-pie -no-pie \
  -fno-asynchronous-unwind-tables -fno-ident -Os -mgeneral-regs-only -Wall -Wextra -Werror \
  -include "$NOLIBC/nolibc.h" -I"$NOLIBC" -isystem "$TREE/usr/include" \
  -o "$STAGE/init" "$GUEST_DIR/init/init.c" -lgcc -s || die "compiling guest/init/init.c failed"
if readelf -l "$STAGE/init" | grep -q 'program interpreter'; then
  die "the init is not static"
fi
run gcc -O2 -o "$STAGE/gen_init_cpio" "$TREE/usr/gen_init_cpio.c" || die "compiling gen_init_cpio failed"

step "building initramfs-tiny.cpio"
run "$GUEST_DIR/mkinitramfs.sh" --gen-init-cpio "$STAGE/gen_init_cpio" --print-list \
  "$STAGE/initramfs-tiny.cpio" "/init=$STAGE/init" || die "mkinitramfs.sh failed (tiny)"

step "building initramfs-busybox.cpio"
cp "$GUEST_DIR/init/busybox-init.sh" "$STAGE/busybox-init"
chmod 0755 "$STAGE/busybox-init"
entries=("/init=$STAGE/busybox-init" "/bin/busybox=$BUSYBOX")
while IFS= read -r applet; do
  [[ -n "$applet" && "$applet" != bin/busybox ]] || continue
  entries+=("/$applet->/bin/busybox")
done < <("$BUSYBOX" --list-full)
for need in bin/sh bin/mount sbin/poweroff; do
  printf '%s\n' "${entries[@]}" | grep -qxF "/$need->/bin/busybox" || die "$BUSYBOX has no $need applet"
done
run "$GUEST_DIR/mkinitramfs.sh" --gen-init-cpio "$STAGE/gen_init_cpio" --print-list \
  "$STAGE/initramfs-busybox.cpio" "${entries[@]}" || die "mkinitramfs.sh failed (busybox)"

# ---------------------------------------------------------------- commit ----
hash_inputs > "$STAGE/inputs.txt"
step "done: vmlinux $(stat -c %s "$STAGE/vmlinux") bytes, bzImage $(stat -c %s "$STAGE/bzImage") bytes"
rm -rf "$OUT"
mv "$STAGE" "$OUT"
log "cache entry: $OUT"
print_result
