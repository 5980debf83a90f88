// ioctl numbers of the KVM calls whose argument is a struct with a flexible array member.
// <linux/kvm.h> declares those arrays with __DECLARE_FLEX_ARRAY, which C++ compilers size
// differently from C, so _IOWR(..., struct kvm_cpuid2) in C++ encodes a wrong size and KVM
// answers EINVAL. The numbers are therefore computed in C (ioctls.c).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

extern const unsigned long crosvm_kvm_get_supported_cpuid;
extern const unsigned long crosvm_kvm_set_cpuid2;
extern const unsigned long crosvm_kvm_get_msrs;
extern const unsigned long crosvm_kvm_set_msrs;
extern const unsigned long crosvm_kvm_set_gsi_routing;
extern const unsigned long crosvm_kvm_get_msr_index_list;

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
// Byte offsets of the flexible arrays (C layout): the count is always the first __u32.
extern const unsigned long crosvm_kvm_cpuid2_entries_offset;
extern const unsigned long crosvm_kvm_msrs_entries_offset;
extern const unsigned long crosvm_kvm_irq_routing_entries_offset;
extern const unsigned long crosvm_kvm_msr_list_indices_offset;
#ifdef __cplusplus
}
#endif
