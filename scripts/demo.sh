#!/usr/bin/env bash
# make demo: boots the project's guest kernel under crosvm and shows its console.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A guest
while IFS='=' read -r key value; do guest[$key]=$value; done < <(bash guest/build-kernel.sh)

kind=$(bash guest/host-kvm-kind.sh)
echo "demo: host KVM is '$kind'."
if [ "$kind" = emulated ]; then
  echo "demo: every guest instruction is emulated here, so the kernel takes about half a minute"
  echo "demo: to reach /init; its init cannot run (no guest user space on this host), the kernel"
  echo "demo: panics, reboots through the i8042, and crosvm exits."
  initrd=${guest[INITRD]}
else
  echo "demo: hardware KVM: booting a busybox user space that reboots when done (without ACPI"
  echo "demo: a guest cannot power off; its reboot goes through the i8042 and ends crosvm)."
  initrd=${guest[BUSYBOX_INITRD]}
fi
set -x
exec ./build/crosvm run -m 256 -c 1 -i "$initrd" -p "${guest[PARAMS]}" -p crosvm_init=reboot \
  "${guest[KERNEL]}"
