#!/bin/sh
# check_guest.sh OBJDUMP READELF ELF: checks a built test guest; any failure fails the build.
#
# 1. Layout: ELF64 executable; e_entry is _start; the PVH note (owner "Xen",
#    type 18 = XEN_ELFNOTE_PHYS32_ENTRY) exists and points at pvh_start32;
#    every PT_LOAD lies within [1 MiB, 16 MiB).
# 2. Instructions: fails if the guest image contains an instruction
# the nested KVM's emulator cannot execute (see /work/shared/HOST-KVM.md):
# SSE/AVX/MMX registers, x87, POPCNT/LZCNT/TZCNT, INT3, XSAVE/FXSAVE, fences,
# CLAC/STAC, RDRAND/RDSEED, ENDBR. The .boot32 section (the PVH entry) is
# disassembled as 32-bit code, every other code section as 64-bit code.
set -eu
objdump=$1
readelf=$2
elf=$3
name=$(basename "$elf" .tmp)
fail() { echo "check_guest: $name: $*" >&2; exit 1; }

# ---- 1. layout ----
"$readelf" -h "$elf" | grep -q 'Class: *ELF64' || fail "not ELF64"
"$readelf" -h "$elf" | grep -q 'Type: *EXEC' || fail "not an executable"
sym() { "$readelf" -sW "$elf" | awk -v s="$1" '$8 == s { print $2; exit }'; }
entry=$("$readelf" -h "$elf" | awk '/Entry point address/ { print $4 }')
start=$(sym _start)
pvh=$(sym pvh_start32)
[ -n "$start" ] && [ $((entry)) -eq $((0x$start)) ] || fail "e_entry $entry is not _start (0x$start)"
# The note's descriptor bytes (little endian) hold the PVH entry address.
desc=$("$readelf" -n "$elf" | awk '
  /^ *Xen / && /0x00000012/ { want = 1 }
  want && /description data:/ { sub(/.*description data: */, ""); print; exit }')
[ -n "$desc" ] || fail "no PVH note (owner Xen, type 18 XEN_ELFNOTE_PHYS32_ENTRY)"
note_addr=0
shift_=0
for b in $desc; do
  note_addr=$((note_addr + (0x$b << shift_)))
  shift_=$((shift_ + 8))
done
[ -n "$pvh" ] && [ "$note_addr" -eq $((0x$pvh)) ] || fail "PVH note points at $note_addr, not pvh_start32 (0x$pvh)"
"$readelf" -lW "$elf" | awk '$1 == "LOAD" { print $4, $6 }' > "$elf.loads"
while read -r paddr memsz; do
  if [ $((paddr)) -lt $((0x100000)) ] || [ $((paddr + memsz)) -gt $((0x1000000)) ]; then
    rm -f "$elf.loads"
    fail "PT_LOAD at $paddr size $memsz is outside [1 MiB, 16 MiB)"
  fi
done < "$elf.loads"
rm -f "$elf.loads"

# ---- 2. instructions ----
sections=$("$objdump" -h "$elf" | awk '
  /^ *[0-9]+ / { name = $2; next }
  name != "" { if ($0 ~ /CODE/) print name; name = "" }')
[ -n "$sections" ] || fail "no code sections found"

bad=""
count=0
for s in $sections; do
  if [ "$s" = ".boot32" ]; then mode="-M i386"; else mode=""; fi
  # shellcheck disable=SC2086
  dis=$("$objdump" -d --no-show-raw-insn $mode -j "$s" "$elf")
  insns=$(printf '%s\n' "$dis" | awk -F'\t' '/^ *[0-9a-f]+:\t/ { print $1 "\t" $2 }')
  n=$(printf '%s\n' "$insns" | grep -c . || true)
  count=$((count + n))
  hits=$(printf '%s\n' "$insns" | grep -Ei \
    -e '%[xyz]mm[0-9]' -e '%mm[0-7]' -e '%st(\(|\b)' -e '%k[0-7]' \
    -e '	f[a-z0-9]+' \
    -e '	(popcnt|lzcnt|tzcnt|int3|ldmxcsr|stmxcsr|emms|femms|clac|stac|rdrand|rdseed|rdpid|rdtscp|endbr32|endbr64|lfence|mfence|sfence|movnti|clflush|clflushopt|clwb|pause|prefetch[a-z0-9]*)( |$)' \
    -e '	(xsave|xrstor|xsaveopt|xsavec|xsaves|xrstors|fxsave|fxrstor)(64)?( |$)' \
    -e '	int +\$0x3$' || true)
  if [ -n "$hits" ]; then bad="$bad
[$s]
$hits"; fi
done

if [ -n "$bad" ]; then
  echo "check_guest: $name contains instructions the nested KVM emulator cannot run:$bad" >&2
  exit 1
fi
printf 'check_guest: %s: entry 0x%x, PVH entry 0x%x; %s instructions in [%s], no SSE/x87/POPCNT/INT3/XSAVE\n' \
  "$name" $((entry)) "$note_addr" "$count" "$(echo $sections | tr ' ' ',')"
