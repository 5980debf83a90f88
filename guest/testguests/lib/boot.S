/* boot.S: the two entry points of every test guest and the state they converge on.
 *
 *  pvh_start32  32-bit PVH entry, named by the XEN_ELFNOTE_PHYS32_ENTRY note below
 *               (QEMU -kernel, Firecracker/cloud-hypervisor style loaders).
 *               Protected mode, paging off, EBX = struct hvm_start_info.
 *  _start       64-bit ELF e_entry (the project's VMM): long mode, paging on,
 *               RSI = Linux zero page (struct boot_params).
 *
 * Both end in common64 with the same state: our GDT (0x10 = 64-bit code,
 * 0x18 = data), our page tables (first 4 GiB identity mapped with 2 MiB pages,
 * 3-4 GiB uncached), our stack, .bss zeroed, interrupts disabled; then
 * testguest_start(boot_path, boot_info) is called.
 */

#define BOOT_PATH_PVH 1
#define BOOT_PATH_ELF64 2

#define SEL_CODE64 0x10
#define SEL_DATA 0x18

#define CR0_PE (1 << 0)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)

#define PTE_P 0x001
#define PTE_RW 0x002
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS 0x080

#define STACK_SIZE 16384

/* ---- PVH ELF note: type 18 (XEN_ELFNOTE_PHYS32_ENTRY), name "Xen" ----------
 * The descriptor is 8 bytes: QEMU reads a 64-bit value from a 64-bit ELF. */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4                         /* namesz: "Xen\0" */
        .long 8                         /* descsz */
        .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .balign 4
        .quad pvh_start32
        .balign 4

/* ---- 32-bit PVH entry --------------------------------------------------- */
        .section .boot32, "ax"
        .code32
        .globl pvh_start32
        .type pvh_start32, @function
pvh_start32:
        cli
        cld
        movl %ebx, %edi                 /* hvm_start_info, kept in EDI */
        lgdt gdt_ptr                    /* 32-bit lgdt reads limit + low 4 bytes of base */
        movl $SEL_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $pml4, %eax
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $(CR0_PG | CR0_PE), %eax
        movl %eax, %cr0                 /* long mode active, compatibility mode */
        ljmp $SEL_CODE64, $pvh_start64
        .size pvh_start32, . - pvh_start32

/* ---- 64-bit code -------------------------------------------------------- */
        .section .text.boot, "ax"
        .code64
pvh_start64:
        movl $BOOT_PATH_PVH, %r12d
        movl %edi, %r13d                /* zero-extends: hvm_start_info */
        jmp common64

        .globl _start
        .type _start, @function
_start:
        cli
        cld
        movl $BOOT_PATH_ELF64, %r12d
        movq %rsi, %r13                 /* boot_params (zero page) */
        jmp common64
        .size _start, . - _start

common64:
        lgdt gdt_ptr(%rip)
        movl $SEL_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        leaq boot_stack_top(%rip), %rsp
        pushq $SEL_CODE64               /* reload CS from our GDT */
        leaq 1f(%rip), %rax
        pushq %rax
        lretq
1:      movq $pml4, %rax                /* our own page tables on both paths */
        movq %rax, %cr3
        leaq __bss_start(%rip), %rdi    /* zero .bss (this includes the stack) */
        leaq __bss_end(%rip), %rcx
        subq %rdi, %rcx
        shrq $3, %rcx
        xorl %eax, %eax
        rep stosq
        leaq boot_stack_top(%rip), %rsp
        xorl %ebp, %ebp
        movl %r12d, %edi
        movq %r13, %rsi
        call testguest_start            /* does not return */
2:      cli
        hlt
        jmp 2b

/* ---- GDT ---------------------------------------------------------------- */
        .section .data, "aw"
        .balign 16
gdt:
        .quad 0                         /* 0x00 null */
        .quad 0x00cf9b000000ffff        /* 0x08 32-bit code, flat (unused) */
        .quad 0x00af9b000000ffff        /* 0x10 64-bit code */
        .quad 0x00cf93000000ffff        /* 0x18 data, flat */
gdt_end:
        .balign 8
gdt_ptr:
        .word gdt_end - gdt - 1
        .quad gdt

/* ---- page tables: static, identity map 0-4 GiB with 2 MiB pages ---------- */
        .section .data.pagetables, "aw"
        .balign 4096
        .globl pml4
pml4:
        .quad pdpt + (PTE_P | PTE_RW)
        .fill 511, 8, 0
pdpt:
        .quad pd + 0x0000 + (PTE_P | PTE_RW)
        .quad pd + 0x1000 + (PTE_P | PTE_RW)
        .quad pd + 0x2000 + (PTE_P | PTE_RW)
        .quad pd + 0x3000 + (PTE_P | PTE_RW)
        .fill 508, 8, 0
pd:
        .set pd_addr, 0
        .rept 2048
        .if pd_addr >= 0xc0000000       /* 3-4 GiB: device space, uncached */
        .quad pd_addr + (PTE_P | PTE_RW | PTE_PS | PTE_PCD | PTE_PWT)
        .else
        .quad pd_addr + (PTE_P | PTE_RW | PTE_PS)
        .endif
        .set pd_addr, pd_addr + 0x200000
        .endr

/* ---- stack -------------------------------------------------------------- */
        .section .bss, "aw", @nobits
        .balign 16
boot_stack:
        .skip STACK_SIZE
        .globl boot_stack_top
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
