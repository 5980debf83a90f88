#!/bin/sh
# /init of the busybox test initramfs (guest/build-kernel.sh puts it there,
# with /bin/busybox and a symbolic link for every applet).
#
# Needs guest user space, so it runs only where the host has hardware KVM
# (make demo runs it inside the nested host L1 on an emulating host).
#
# The final action is `poweroff -f` (through ACPI \_S5, which ends crosvm
# with status 0) unless the kernel command line says crosvm_init=reboot (the
# i8042 reset with reboot=k) or crosvm_init=halt.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
tag="crosvm-busybox-init:"

mkdir -p /dev /proc /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc || echo "$tag error: cannot mount /proc"
mount -t sysfs sysfs /sys || echo "$tag error: cannot mount /sys"

echo "$tag hello from the crosvm test guest's busybox init"
echo "$tag uname: $(uname -a)"
echo "$tag nproc: $(nproc)"
echo "$tag free:"
free
echo "$tag block devices:"
found=0
for dev in /dev/vd*; do
  [ -e "$dev" ] || continue
  found=1
  ls -l "$dev"
done
[ "$found" = 1 ] || echo "$tag no /dev/vd* devices"
echo "$tag uptime: $(cat /proc/uptime)"

action=poweroff
for word in $(cat /proc/cmdline); do
  case "$word" in
    crosvm_init=reboot) action=reboot ;;
    crosvm_init=halt) action=halt ;;
    crosvm_init=poweroff) action=poweroff ;;
  esac
done
echo "$tag $action"
sync
"$action" -f
# Not reached unless the system call failed: exiting makes the kernel panic,
# which with panic=-1 resets the machine.
echo "$tag error: $action -f failed"
exit 1
