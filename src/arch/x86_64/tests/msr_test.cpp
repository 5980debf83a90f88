#include <linux/kvm.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "arch/x86_64/boot.h"

namespace crosvm::arch {
namespace {

kvm_msr_entry Msr(uint32_t index, uint64_t data) {
  kvm_msr_entry e{};
  e.index = index;
  e.data = data;
  return e;
}

// A fake KVM_SET_MSRS that refuses some indices and records what it set.
struct FakeKvmMsrs {
  std::vector<uint32_t> refused;
  std::vector<uint32_t> set;
  int calls = 0;
  base::Result<size_t> operator()(std::span<const kvm_msr_entry> part) {
    ++calls;
    size_t n = 0;
    for (const auto& e : part) {
      if (std::find(refused.begin(), refused.end(), e.index) != refused.end()) break;
      set.push_back(e.index);
      ++n;
    }
    return n;
  }
};

TEST(MsrSetupTest, RefusedMsrIsSkippedAndTheRestAreStillSet) {
  // kvm_amd in Linux 6.1 refuses HWCR (0xc0010015) with TscFreqSel; what follows must be set.
  FakeKvmMsrs kvm{{0xc0010015}, {}};
  std::vector<kvm_msr_entry> msrs = {Msr(0x174, 0), Msr(0xc0010015, 1ull << 24), Msr(0x1a0, 1)};
  auto skipped = SetMsrsSkippingRefused(msrs, std::ref(kvm));
  ASSERT_TRUE(skipped.ok()) << skipped.error().ToString();
  ASSERT_EQ(skipped->size(), 1u);
  EXPECT_EQ((*skipped)[0].index, 0xc0010015u);
  EXPECT_EQ((*skipped)[0].data, 1ull << 24);
  EXPECT_EQ(kvm.set, (std::vector<uint32_t>{0x174, 0x1a0}));
  EXPECT_EQ(kvm.calls, 2);
}

TEST(MsrSetupTest, AllAcceptedIsOneCallAndNothingSkipped) {
  FakeKvmMsrs kvm;
  std::vector<kvm_msr_entry> msrs = {Msr(1, 0), Msr(2, 0), Msr(3, 0)};
  auto skipped = SetMsrsSkippingRefused(msrs, std::ref(kvm));
  ASSERT_TRUE(skipped.ok());
  EXPECT_TRUE(skipped->empty());
  EXPECT_EQ(kvm.calls, 1);
}

TEST(MsrSetupTest, EveryMsrRefusedEndsWithAllSkipped) {
  FakeKvmMsrs kvm{{1, 2, 3}, {}};
  std::vector<kvm_msr_entry> msrs = {Msr(1, 0), Msr(2, 0), Msr(3, 0)};
  auto skipped = SetMsrsSkippingRefused(msrs, std::ref(kvm));
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ(skipped->size(), 3u);
  EXPECT_TRUE(kvm.set.empty());
}

TEST(MsrSetupTest, IoctlErrorIsReturned) {
  std::vector<kvm_msr_entry> msrs = {Msr(1, 0)};
  auto r = SetMsrsSkippingRefused(msrs, [](std::span<const kvm_msr_entry>) -> base::Result<size_t> {
    return base::Error("KVM_SET_MSRS: Invalid argument");
  });
  EXPECT_FALSE(r.ok());
}

TEST(MsrSetupTest, KvmClaimingMoreThanGivenIsAnError) {
  std::vector<kvm_msr_entry> msrs = {Msr(1, 0)};
  auto r = SetMsrsSkippingRefused(
      msrs, [](std::span<const kvm_msr_entry>) -> base::Result<size_t> { return 5; });
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace crosvm::arch
