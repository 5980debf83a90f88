#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing.
# Every package the build, the tests, the guest kernel and the benchmarks use is listed here.
set -euo pipefail

PACKAGES=(
  # toolchain, build and test frameworks (README: "Dependencies")
  build-essential cmake ninja-build clang clang-format lld pkg-config python3
  libgtest-dev libgmock-dev libbenchmark-dev
  # guest kernel: Debian's kernel source and what building it needs
  linux-source-6.1 flex bison bc libelf-dev libssl-dev xz-utils cpio
  # guest user space for hosts with hardware KVM
  busybox-static
  # libraries linked into crosvm: zlib (qcow2 compressed clusters)
  zlib1g-dev
  # libseccomp: compiles the device processes' seccomp policies (README: "Dependencies")
  libseccomp-dev
  # peers: QEMU runs the test guests and the benchmarks side by side; qemu-img checks qcow2
  qemu-system-x86 qemu-utils
  # system-call counts in the benchmark report
  strace
  # mkfs.ext4 -d: the ext4 root images the virtio-blk end-to-end tests boot from
  e2fsprogs
  # iasl: a unit test disassembles the DSDT crosvm generates and checks that it parses
  acpica-tools
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
