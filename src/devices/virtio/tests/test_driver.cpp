#include "devices/virtio/tests/test_driver.h"

#include <gtest/gtest.h>

namespace crosvm::devices::virtio::testing {

memory::GuestMemory MakeTestMemory() {
  auto mem = memory::GuestMemory::Create({{0, kTestMemSize}});
  EXPECT_TRUE(mem.ok());
  return std::move(mem).value();
}

TestQueue::TestQueue(memory::GuestMemory& mem, uint64_t base, uint16_t size)
    : mem_(mem), desc_(base), size_(size) {
  avail_ = desc_ + 16u * size;
  used_ = (avail_ + 6 + 2u * size + 3) & ~uint64_t{3};
}

Queue TestQueue::MakeDeviceQueue(uint64_t features) const {
  Queue q(size_);
  q.size = size_;
  q.desc_table = desc_;
  q.avail_ring = avail_;
  q.used_ring = used_;
  q.ready = true;
  auto s = q.Activate(&mem_, features);
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return q;
}

void TestQueue::SetDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                        uint16_t next) {
  VirtqDesc d{addr, len, flags, next};
  ASSERT_TRUE(mem_.WriteObj(desc_ + 16u * index, d).ok());
}

uint16_t TestQueue::WriteChain(uint16_t first, const std::vector<Buf>& bufs) {
  for (size_t i = 0; i < bufs.size(); ++i) {
    bool more = i + 1 < bufs.size();
    uint16_t flags =
        static_cast<uint16_t>((bufs[i].writable ? kDescFWrite : 0) | (more ? kDescFNext : 0));
    SetDesc(static_cast<uint16_t>(first + i), bufs[i].addr, bufs[i].len, flags,
            more ? static_cast<uint16_t>(first + i + 1) : 0);
  }
  return first;
}

void TestQueue::WriteIndirect(uint16_t index, uint64_t table, const std::vector<Buf>& bufs) {
  for (size_t i = 0; i < bufs.size(); ++i) {
    bool more = i + 1 < bufs.size();
    VirtqDesc d{
        bufs[i].addr, bufs[i].len,
        static_cast<uint16_t>((bufs[i].writable ? kDescFWrite : 0) | (more ? kDescFNext : 0)),
        static_cast<uint16_t>(more ? i + 1 : 0)};
    ASSERT_TRUE(mem_.WriteObj(table + 16 * i, d).ok());
  }
  SetDesc(index, table, static_cast<uint32_t>(16 * bufs.size()), kDescFIndirect, 0);
}

void TestQueue::Publish(uint16_t head) {
  ASSERT_TRUE(mem_.WriteObj<uint16_t>(avail_ + 4 + 2u * (avail_idx_ % size_), head).ok());
  ++avail_idx_;
  SetAvailIdx(avail_idx_);
}

void TestQueue::SetAvailIdx(uint16_t idx) {
  avail_idx_ = idx;
  ASSERT_TRUE(mem_.WriteObj<uint16_t>(avail_ + 2, idx).ok());
}

void TestQueue::SetAvailFlags(uint16_t flags) {
  ASSERT_TRUE(mem_.WriteObj<uint16_t>(avail_, flags).ok());
}

void TestQueue::SetUsedEvent(uint16_t v) {
  ASSERT_TRUE(mem_.WriteObj<uint16_t>(avail_ + 4 + 2u * size_, v).ok());
}

void TestQueue::Clear() {
  std::vector<uint8_t> zeros(used_ + 6 + 8u * size_ - desc_, 0);
  ASSERT_TRUE(mem_.Write(desc_, zeros).ok());
  avail_idx_ = 0;
}

uint16_t TestQueue::UsedIdx() const {
  return *mem_.ReadObj<uint16_t>(used_ + 2);
}

std::pair<uint32_t, uint32_t> TestQueue::UsedElem(uint16_t i) const {
  uint64_t at = used_ + 4 + 8u * (i % size_);
  return {*mem_.ReadObj<uint32_t>(at), *mem_.ReadObj<uint32_t>(at + 4)};
}

uint16_t TestQueue::AvailEvent() const {
  return *mem_.ReadObj<uint16_t>(used_ + 4 + 8u * size_);
}

}  // namespace crosvm::devices::virtio::testing
