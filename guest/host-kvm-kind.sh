#!/usr/bin/env bash
# Prints what kind of KVM this host offers to a guest:
#   emulated  - the nested, paravirtual KVM of the project's build/CI machines
#               (module kvm_pvm, see /work/shared/HOST-KVM.md): a stock guest
#               kernel runs instruction by instruction in KVM's emulator, needs
#               guest/params-emulated-host.txt, and no guest user space runs.
#               Also printed when the CPU shows no vmx/svm flag at all.
#   hardware  - Intel VT-x / AMD-V: the guest runs natively, user space works.
# CROSVM_HOST_KVM_KIND=emulated|hardware overrides the detection.
set -euo pipefail

case "${CROSVM_HOST_KVM_KIND:-}" in
  emulated|hardware) echo "$CROSVM_HOST_KVM_KIND"; exit 0 ;;
  "") ;;
  *) echo "host-kvm-kind.sh: CROSVM_HOST_KVM_KIND must be emulated or hardware" >&2; exit 2 ;;
esac

if [[ -d /sys/module/kvm_pvm ]]; then
  echo emulated
elif ! grep -qwE 'vmx|svm' /proc/cpuinfo 2>/dev/null; then
  echo emulated
else
  echo hardware
fi
