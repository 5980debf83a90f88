#include "kvm/ioctls.h"

#include <linux/kvm.h>

const unsigned long crosvm_kvm_get_supported_cpuid = KVM_GET_SUPPORTED_CPUID;
const unsigned long crosvm_kvm_set_cpuid2 = KVM_SET_CPUID2;
const unsigned long crosvm_kvm_get_msrs = KVM_GET_MSRS;
const unsigned long crosvm_kvm_set_msrs = KVM_SET_MSRS;
const unsigned long crosvm_kvm_set_gsi_routing = KVM_SET_GSI_ROUTING;
const unsigned long crosvm_kvm_get_msr_index_list = KVM_GET_MSR_INDEX_LIST;

#include <stddef.h>

const unsigned long crosvm_kvm_cpuid2_entries_offset = offsetof(struct kvm_cpuid2, entries);
const unsigned long crosvm_kvm_msrs_entries_offset = offsetof(struct kvm_msrs, entries);
const unsigned long crosvm_kvm_irq_routing_entries_offset =
    offsetof(struct kvm_irq_routing, entries);
const unsigned long crosvm_kvm_msr_list_indices_offset = offsetof(struct kvm_msr_list, indices);
