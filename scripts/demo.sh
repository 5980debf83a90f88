#!/usr/bin/env bash
# make demo: boots the project's guest kernel with a busybox user space under crosvm and shows
# its console. Where this host's KVM cannot run guest user space (the emulating kvm_pvm of the
# project's build machines), the demo runs inside the nested hardware-KVM host L1 instead.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=$(bash guest/host-kvm-kind.sh)
if [ "$kind" = emulated ] && [ "${1:-}" != --here ]; then
  echo "demo: this host's KVM emulates every guest instruction and cannot run guest user space;"
  echo "demo: running the demo inside the nested hardware-KVM host L1 (tests/nested/run-in-l1)."
  bash guest/build-kernel.sh >/dev/null
  exec tests/nested/run-in-l1 -smp 1 -- bash scripts/demo.sh --here
fi

declare -A guest
while IFS='=' read -r key value; do guest[$key]=$value; done < <(bash guest/build-kernel.sh)
echo "demo: host KVM is '$kind': booting a busybox user space that powers off when done."
set -x
exec ./build/crosvm run -m 256 -c 2 -i "${guest[BUSYBOX_INITRD]}" -p "${guest[PARAMS]}" \
  "${guest[KERNEL]}"
