#include "memory/guest_memory.h"

#include <fcntl.h>

#include <gtest/gtest.h>

namespace crosvm::memory {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(GuestMemoryTest, TwoRegionsWithGap) {
  auto mem = GuestMemory::Create({{0, 2 * kMiB}, {4 * kMiB, kMiB}});
  ASSERT_TRUE(mem.ok()) << mem.error().ToString();
  EXPECT_EQ(mem->total_size(), 3 * kMiB);
  EXPECT_EQ(mem->end_addr(), 5 * kMiB);
  EXPECT_TRUE(mem->IsValidRange(0, 2 * kMiB));
  EXPECT_FALSE(mem->IsValidRange(2 * kMiB - 1, 2));  // runs into the gap
  EXPECT_FALSE(mem->IsValidRange(3 * kMiB, 1));      // in the gap
  EXPECT_TRUE(mem->IsValidRange(5 * kMiB - 8, 8));
  EXPECT_FALSE(mem->IsValidRange(5 * kMiB - 8, 9));
  EXPECT_FALSE(mem->IsValidRange(4 * kMiB, UINT64_MAX));  // length overflow
}

TEST(GuestMemoryTest, ReadWriteObjects) {
  auto mem = GuestMemory::Create({{0, kMiB}, {2 * kMiB, kMiB}});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(mem->WriteObj<uint64_t>(2 * kMiB + 16, 0x1122334455667788ull).ok());
  auto v = mem->ReadObj<uint64_t>(2 * kMiB + 16);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 0x1122334455667788ull);
  // The second region lives after the first in the memfd.
  EXPECT_EQ(mem->regions()[1].memfd_offset, kMiB);
  uint64_t from_fd = 0;
  ASSERT_EQ(pread(mem->memfd(), &from_fd, 8, kMiB + 16), 8);
  EXPECT_EQ(from_fd, 0x1122334455667788ull);
}

TEST(GuestMemoryTest, OutOfRangeAccessIsAnError) {
  auto mem = GuestMemory::Create({{0, kMiB}});
  ASSERT_TRUE(mem.ok());
  auto r = mem->ReadObj<uint32_t>(kMiB - 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("outside guest RAM"), std::string::npos);
  EXPECT_FALSE(mem->WriteObj<uint8_t>(UINT64_MAX, 1).ok());
}

TEST(GuestMemoryTest, RejectsBadRanges) {
  EXPECT_FALSE(GuestMemory::Create({}).ok());
  EXPECT_FALSE(GuestMemory::Create({{0, 100}}).ok());                 // not page aligned
  EXPECT_FALSE(GuestMemory::Create({{0, kMiB}, {4096, kMiB}}).ok());  // overlap
  EXPECT_FALSE(GuestMemory::Create({{0, 0}}).ok());
}

TEST(GuestMemoryTest, MemfdIsSealed) {
  auto mem = GuestMemory::Create({{0, kMiB}});
  ASSERT_TRUE(mem.ok());
  EXPECT_NE(ftruncate(mem->memfd(), 4096), 0);
  int seals = fcntl(mem->memfd(), F_GET_SEALS);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
  EXPECT_TRUE(seals & F_SEAL_GROW);
}

}  // namespace
}  // namespace crosvm::memory
