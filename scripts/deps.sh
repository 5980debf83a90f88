#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing.
# Every package the build, the tests, the guest kernel and the benchmarks use is listed here.
set -euo pipefail

PACKAGES=(
  # toolchain and test frameworks
  build-essential cmake ninja-build clang clang-format lld pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  # libraries linked into crosvm
  libseccomp-dev libfdt-dev
  # guest kernel: source and what its build needs
  linux-source-6.1 flex bison bc libelf-dev libssl-dev xz-utils cpio kmod
  # guest images and user space for tests
  e2fsprogs busybox-static
  # peers and tools for interop tests and benchmarks
  qemu-system-x86 qemu-utils
  # misc tools the scripts use
  python3 iproute2 util-linux
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
