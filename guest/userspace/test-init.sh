#!/bin/sh
# /init of the user-space test initramfs (guest/userspace/CMakeLists.txt builds it into
# build/guest/userspace/initramfs-test.cpio with busybox and the project's static test programs).
#
# Runs one test script, given on the kernel command line as crosvm_test_b64=<base64 of the
# script> or on a disk as crosvm_test_disk=/dev/vdX (the script, NUL-padded), then ends the VM:
# by default through the i8042 (`reboot -f`; crosvm passes reboot=k), or with
# crosvm_test_exit=poweroff through ACPI (`poweroff -f`), or crosvm_test_exit=none (stay up).
#
# Output, one result a line, so a test on the host can parse it:
#   CROSVM-TEST-BEGIN
#   CROSVM-TEST: key=value          (the script calls: result key value...)
#   CROSVM-TEST-END status=N        (N: the script's exit status)
# Nothing else the guest prints starts with "CROSVM-TEST".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
# Kernel messages from now on (a clocksource warning, say) stay out of the console, where they
# would land in the middle of a result line; dmesg still has them.
echo 1 >/proc/sys/kernel/printk
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp

result() {
  key="$1"
  shift
  echo "CROSVM-TEST: $key=$*"
}

script_b64=
script_disk=
exit_mode=reboot
for word in $(cat /proc/cmdline); do
  case "$word" in
    crosvm_test_b64=*) script_b64="${word#crosvm_test_b64=}" ;;
    crosvm_test_disk=*) script_disk="${word#crosvm_test_disk=}" ;;
    crosvm_test_exit=*) exit_mode="${word#crosvm_test_exit=}" ;;
  esac
done

if [ -n "$script_b64" ]; then
  echo "$script_b64" | base64 -d >/tmp/test.sh 2>/dev/null || echo "exit 200" >/tmp/test.sh
elif [ -n "$script_disk" ]; then
  tr -d '\000' <"$script_disk" >/tmp/test.sh || echo "exit 201" >/tmp/test.sh
else
  echo 'echo "no crosvm_test_b64= or crosvm_test_disk= given"; exit 202' >/tmp/test.sh
fi

echo "CROSVM-TEST-BEGIN"
(. /tmp/test.sh)
echo "CROSVM-TEST-END status=$?"
sync
case "$exit_mode" in
  poweroff) poweroff -f ;;
  none) while :; do sleep 3600; done ;;
  *) reboot -f ;;
esac
echo "CROSVM-TEST-ERROR: $exit_mode -f failed"
exit 1
