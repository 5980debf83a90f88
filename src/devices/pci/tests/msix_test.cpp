// MSI-X table and PBA behaviour, masking, and the GSI routes the vectors get.
#include "devices/pci/msix.h"

#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "devices/pci/gsi_router.h"
#include "devices/pci/tests/fake_vm_control.h"

namespace crosvm::devices::pci {
namespace {

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  bool r = poll(&p, 1, 0) == 1;
  if (r) {
    uint64_t v;
    (void)read(fd, &v, 8);
  }
  return r;
}

class MsixTest : public ::testing::Test {
 protected:
  MsixTest() : router_(&vm_) {
    auto m = MsixConfig::Create(4, &vm_, &router_, "test");
    EXPECT_TRUE(m.ok());
    msix_ = std::move(m).value();
  }
  void W32(uint64_t off, uint32_t v) {
    msix_->WriteTable(off, {reinterpret_cast<uint8_t*>(&v), 4});
  }
  uint32_t R32(uint64_t off) {
    uint32_t v = 0;
    msix_->ReadTable(off, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  uint64_t Pba() {
    uint64_t v = 0;
    msix_->ReadPba(0, {reinterpret_cast<uint8_t*>(&v), 8});
    return v;
  }
  void Program(uint16_t vec, uint64_t addr, uint32_t data, bool masked) {
    W32(16u * vec, static_cast<uint32_t>(addr));
    W32(16u * vec + 4, static_cast<uint32_t>(addr >> 32));
    W32(16u * vec + 8, data);
    W32(16u * vec + 12, masked ? 1 : 0);
  }

  FakeVmControl vm_;
  GsiRouter router_;
  std::unique_ptr<MsixConfig> msix_;
};

TEST_F(MsixTest, CapabilityBody) {
  auto body = msix_->CapabilityBody(2, 0x4000, 0x6000);
  ASSERT_EQ(body.size(), kMsixCapBodySize);
  uint16_t control;
  uint32_t table, pba;
  std::memcpy(&control, &body[0], 2);
  std::memcpy(&table, &body[2], 4);
  std::memcpy(&pba, &body[6], 4);
  EXPECT_EQ(control, 3) << "table size - 1";
  EXPECT_EQ(table, 0x4002u) << "offset | BIR";
  EXPECT_EQ(pba, 0x6002u);
  auto mask = MsixConfig::CapabilityWriteMask();
  EXPECT_EQ(mask[1], 0xc0) << "enable and function mask";
  EXPECT_EQ(mask[0], 0);
}

TEST_F(MsixTest, IrqfdPerVectorOnItsOwnGsi) {
  ASSERT_EQ(vm_.irqfds.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(vm_.irqfds[i].gsi, GsiRouter::kFirstMsiGsi + i);
    EXPECT_EQ(vm_.irqfds[i].fd, msix_->vector_fd(static_cast<uint16_t>(i)));
  }
  msix_.reset();
  EXPECT_TRUE(vm_.irqfds.empty()) << "unregistered on destruction";
}

TEST_F(MsixTest, TableReadWriteAndResetState) {
  for (uint16_t v = 0; v < 4; ++v) EXPECT_EQ(R32(16u * v + 12), 1u) << "vectors start masked";
  Program(2, 0xfee01000, 0x4055, false);
  EXPECT_EQ(R32(32), 0xfee01000u);
  EXPECT_EQ(R32(36), 0u);
  EXPECT_EQ(R32(40), 0x4055u);
  EXPECT_EQ(R32(44), 0u);
  W32(44, 0xfffffffe);  // reserved control bits stay zero
  EXPECT_EQ(R32(44), 0u);
  uint64_t q = 0;
  msix_->ReadTable(32, {reinterpret_cast<uint8_t*>(&q), 8});
  EXPECT_EQ(q, 0xfee01000u) << "64-bit read";
  // Unaligned, odd-sized and out-of-table accesses read zero and are ignored.
  uint16_t w = 0xffff;
  msix_->WriteTable(32, {reinterpret_cast<uint8_t*>(&w), 2});
  EXPECT_EQ(R32(32), 0xfee01000u);
  EXPECT_EQ(R32(34), 0u);
  EXPECT_EQ(R32(64), 0u);
  W32(64, 1);
  W32(0xfffffffc, 1);
}

TEST_F(MsixTest, SignalNeedsMsixEnabled) {
  Program(0, 0xfee00000, 0x41, false);
  EXPECT_FALSE(msix_->Signal(0)) << "disabled: the caller uses INTx";
  msix_->SetMessageControl(kMsixEnable);
  EXPECT_TRUE(msix_->enabled());
  EXPECT_TRUE(msix_->Signal(0));
  EXPECT_TRUE(Readable(msix_->vector_fd(0)));
  EXPECT_FALSE(msix_->Signal(4)) << "no such vector";
  // The vector's GSI is routed to the message, next to the 24 default IOAPIC routes.
  auto table = router_.Table();
  int ioapic = 0, pic = 0, msi = 0;
  for (const auto& e : table) {
    if (e.type == KVM_IRQ_ROUTING_IRQCHIP) {
      (e.u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC ? ioapic : pic)++;
    } else if (e.type == KVM_IRQ_ROUTING_MSI) {
      ++msi;
      EXPECT_EQ(e.gsi, GsiRouter::kFirstMsiGsi);
      EXPECT_EQ(e.u.msi.address_lo, 0xfee00000u);
      EXPECT_EQ(e.u.msi.data, 0x41u);
    }
  }
  EXPECT_EQ(ioapic, 24);
  EXPECT_EQ(pic, 16);
  EXPECT_EQ(msi, 1);
  EXPECT_EQ(vm_.routing.size(), table.size()) << "installed in KVM";
  int updates = vm_.routing_updates;
  EXPECT_TRUE(msix_->Signal(0));
  EXPECT_EQ(vm_.routing_updates, updates) << "same message: no new routing table";
  W32(8, 0x42);
  EXPECT_TRUE(msix_->Signal(0));
  EXPECT_EQ(vm_.routing_updates, updates + 1) << "reprogrammed: the route follows";
}

TEST_F(MsixTest, MaskedVectorsBecomePendingAndFireOnUnmask) {
  msix_->SetMessageControl(kMsixEnable);
  Program(1, 0xfee00000, 0x51, true);
  EXPECT_TRUE(msix_->Signal(1));
  EXPECT_FALSE(Readable(msix_->vector_fd(1)));
  EXPECT_EQ(Pba(), 0x2u);
  W32(16 + 12, 0);  // unmask
  EXPECT_TRUE(Readable(msix_->vector_fd(1)));
  EXPECT_EQ(Pba(), 0u);
}

TEST_F(MsixTest, FunctionMask) {
  Program(3, 0xfee00000, 0x61, false);
  msix_->SetMessageControl(kMsixEnable | kMsixFunctionMask);
  EXPECT_TRUE(msix_->Signal(3));
  EXPECT_FALSE(Readable(msix_->vector_fd(3)));
  EXPECT_TRUE(msix_->pending(3));
  msix_->SetMessageControl(kMsixEnable);
  EXPECT_TRUE(Readable(msix_->vector_fd(3)));
  EXPECT_FALSE(msix_->pending(3));
}

TEST_F(MsixTest, RouterGsisAndRemoval) {
  FakeVmControl vm;
  GsiRouter r(&vm);
  auto g = r.AllocateGsi();
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, GsiRouter::kFirstMsiGsi);
  EXPECT_FALSE(r.SetMsiRoute(5, 0xfee00000, 1).ok()) << "IOAPIC GSIs are not MSI routes";
  ASSERT_TRUE(r.SetMsiRoute(*g, 0xfee00000, 1).ok());
  EXPECT_EQ(vm.routing.size(), 24u + 16u + 1u);
  ASSERT_TRUE(r.RemoveRoute(*g).ok());
  EXPECT_EQ(vm.routing.size(), 24u + 16u);
}

// Routes are programmed when the guest writes the table, never when a vector fires: N
// interrupts cost N eventfd writes and no KVM_SET_GSI_ROUTING.
TEST_F(MsixTest, InterruptsNeverReprogramRoutes) {
  Program(0, 0xfee00000, 0x41, true);
  msix_->SetMessageControl(kMsixEnable);
  int before = vm_.routing_updates;
  W32(12, 0);  // unmask: the route goes in now
  EXPECT_EQ(vm_.routing_updates, before + 1);
  before = vm_.routing_updates;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(msix_->Signal(0));
  EXPECT_EQ(vm_.routing_updates, before) << "1000 interrupts, no routing updates";
  EXPECT_TRUE(Readable(msix_->vector_fd(0)));

  // A guest rewriting the data between interrupts pays one update per table write.
  before = vm_.routing_updates;
  for (uint32_t i = 0; i < 50; ++i) {
    W32(8, 0x100 + i);
    for (int j = 0; j < 10; ++j) ASSERT_TRUE(msix_->Signal(0));
  }
  EXPECT_EQ(vm_.routing_updates, before + 50);
  bool found = false;
  for (const auto& e : vm_.routing) found |= e.type == KVM_IRQ_ROUTING_MSI && e.u.msi.data == 0x131;
  EXPECT_TRUE(found) << "the route carries the last message";

  // Rewritten while masked: nothing until the unmask, then one update.
  W32(12, 1);
  before = vm_.routing_updates;
  W32(8, 0x77);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(msix_->Signal(0));
  EXPECT_EQ(vm_.routing_updates, before);
  W32(12, 0);
  EXPECT_EQ(vm_.routing_updates, before + 1);
}

TEST_F(MsixTest, RoutesOfUnmaskedVectorsGoInWhenMsixIsEnabled) {
  Program(2, 0xfee00000, 0x52, false);
  int before = vm_.routing_updates;
  msix_->SetMessageControl(kMsixEnable);
  EXPECT_EQ(vm_.routing_updates, before + 1);
  before = vm_.routing_updates;
  EXPECT_TRUE(msix_->Signal(2));
  EXPECT_EQ(vm_.routing_updates, before);
}

// Bus Master Enable clear: an MSI is a memory write the function may not make. The vector is
// pending and fires once bus mastering is back (and it is unmasked).
TEST_F(MsixTest, NoMsiWithoutBusMastering) {
  msix_->SetMessageControl(kMsixEnable);
  Program(1, 0xfee00000, 0x51, false);
  msix_->SetBusMaster(false);
  EXPECT_TRUE(msix_->Signal(1));
  EXPECT_FALSE(Readable(msix_->vector_fd(1)));
  EXPECT_TRUE(msix_->pending(1));
  EXPECT_EQ(Pba(), 0x2u);
  msix_->SetBusMaster(true);
  EXPECT_TRUE(Readable(msix_->vector_fd(1)));
  EXPECT_FALSE(msix_->pending(1));

  // Masked as well: bus mastering alone does not deliver it.
  W32(16 + 12, 1);
  msix_->SetBusMaster(false);
  EXPECT_TRUE(msix_->Signal(1));
  msix_->SetBusMaster(true);
  EXPECT_FALSE(Readable(msix_->vector_fd(1)));
  W32(16 + 12, 0);
  EXPECT_TRUE(Readable(msix_->vector_fd(1)));
}

}  // namespace
}  // namespace crosvm::devices::pci
