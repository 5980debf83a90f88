#include "devices/acpi_pm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include "devices/bus.h"

namespace crosvm::devices {
namespace {

constexpr uint64_t kBase = 0x600;
constexpr uint8_t kS5 = 5;

// The device on an I/O bus at kBase, as crosvm wires it.
struct Fixture {
  Fixture() {
    auto status = bus.Insert(pm, kBase, AcpiPm::kSize);
    EXPECT_TRUE(status.ok());
  }
  uint64_t Read(uint64_t offset, size_t size) {
    uint8_t buf[8] = {};
    EXPECT_TRUE(bus.Read(kBase + offset, {buf, size}));
    uint64_t v = 0;
    for (size_t i = 0; i < size; ++i) v |= uint64_t{buf[i]} << (8 * i);
    return v;
  }
  void Write(uint64_t offset, uint64_t v, size_t size) {
    uint8_t buf[8];
    for (size_t i = 0; i < size; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * i));
    EXPECT_TRUE(bus.Write(kBase + offset, {buf, size}));
  }
  uint16_t SleepValue(uint8_t type) { return static_cast<uint16_t>(type << 10 | 1 << 13); }

  int power_offs = 0;
  std::shared_ptr<AcpiPm> pm = std::make_shared<AcpiPm>(kS5, [this] { ++power_offs; });
  Bus bus{"io"};
};

TEST(AcpiPmTest, S5WithSleepEnablePowersOff) {
  Fixture f;
  // What ACPICA's acpi_hw_legacy_sleep does: SLP_TYP first, then SLP_TYP | SLP_EN.
  f.Write(AcpiPm::kPm1Control, 5 << 10 | 1, 2);
  EXPECT_EQ(f.power_offs, 0) << "SLP_TYP alone does nothing";
  f.Write(AcpiPm::kPm1Control, f.SleepValue(kS5) | 1, 2);
  EXPECT_EQ(f.power_offs, 1);
  f.Write(AcpiPm::kPm1Control, f.SleepValue(kS5), 2);
  EXPECT_EQ(f.power_offs, 1) << "the callback runs once";
}

TEST(AcpiPmTest, ByteWriteOfTheHighControlByteWorksToo) {
  Fixture f;
  f.Write(AcpiPm::kPm1Control + 1, f.SleepValue(kS5) >> 8, 1);
  EXPECT_EQ(f.power_offs, 1);
}

TEST(AcpiPmTest, OtherSleepTypesAreIgnoredAndWakeAtOnce) {
  Fixture f;
  for (uint8_t type = 0; type < 8; ++type) {
    if (type == kS5) continue;
    f.Write(AcpiPm::kPm1Status, 0xffff, 2);  // clear
    f.Write(AcpiPm::kPm1Control, f.SleepValue(type), 2);
    EXPECT_EQ(f.power_offs, 0) << int{type};
    EXPECT_EQ(f.Read(AcpiPm::kPm1Status, 2) & AcpiPm::kWakeStatus, AcpiPm::kWakeStatus);
  }
  // Writes elsewhere: status, enable, the read-only timer, the reserved bytes, all widths.
  for (uint64_t off = 0; off < AcpiPm::kSize; ++off) {
    for (size_t size : {1, 2, 4}) {
      if (off + size > AcpiPm::kSize) continue;
      if (off <= AcpiPm::kPm1Control + 1 && off + size > AcpiPm::kPm1Control) continue;
      f.Write(off, 0xffffffff, size);
    }
  }
  EXPECT_EQ(f.power_offs, 0);
}

TEST(AcpiPmTest, SciEnableReadsSetAndSleepEnableReadsClear) {
  Fixture f;
  EXPECT_EQ(f.Read(AcpiPm::kPm1Control, 2), AcpiPm::kSciEnable);
  f.Write(AcpiPm::kPm1Control, 3 << 10, 2);  // SLP_TYP 3, SCI_EN cleared by the guest
  EXPECT_EQ(f.Read(AcpiPm::kPm1Control, 2), (3u << 10) | AcpiPm::kSciEnable);
  f.Write(AcpiPm::kPm1Control, f.SleepValue(3), 2);
  EXPECT_EQ(f.Read(AcpiPm::kPm1Control, 2) & AcpiPm::kSleepEnable, 0u);
}

TEST(AcpiPmTest, StatusIsWriteOneToClearAndEnableStoresKnownBits) {
  Fixture f;
  EXPECT_EQ(f.Read(AcpiPm::kPm1Status, 2), 0u);
  f.Write(AcpiPm::kPm1Control, f.SleepValue(1), 2);  // sets WAK_STS
  f.Write(AcpiPm::kPm1Status, 0x0001, 2);            // clears something else
  EXPECT_EQ(f.Read(AcpiPm::kPm1Status, 2), AcpiPm::kWakeStatus);
  f.Write(AcpiPm::kPm1Status, AcpiPm::kWakeStatus, 2);
  EXPECT_EQ(f.Read(AcpiPm::kPm1Status, 2), 0u);
  f.Write(AcpiPm::kPm1Enable, 0xffff, 2);
  EXPECT_EQ(f.Read(AcpiPm::kPm1Enable, 2), 0x4721u);
  // One 32-bit access covers status and enable.
  f.Write(AcpiPm::kPm1Status, 0x00000000, 4);
  EXPECT_EQ(f.Read(AcpiPm::kPm1Status, 4), 0u);
}

TEST(AcpiPmTest, TimerCountsAt3579545Hz) {
  Fixture f;
  uint32_t t0 = static_cast<uint32_t>(f.Read(AcpiPm::kPmTimer, 4));
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  uint32_t t1 = static_cast<uint32_t>(f.Read(AcpiPm::kPmTimer, 4));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double ticks = static_cast<uint32_t>(t1 - t0);
  EXPECT_GE(ticks, 0.045 * AcpiPm::kTimerHz);
  EXPECT_LE(ticks, (seconds + 0.005) * AcpiPm::kTimerHz);
  // Byte reads of the timer see its bytes; the reserved bytes read 0.
  EXPECT_EQ(f.Read(6, 2), 0u);
}

TEST(AcpiPmTest, BusRoutesOnlyTheTwelvePorts) {
  Fixture f;
  uint8_t b = 0;
  EXPECT_FALSE(f.bus.Read(kBase + AcpiPm::kSize, {&b, 1}));
  EXPECT_FALSE(f.bus.Read(kBase - 1, {&b, 1}));
}

}  // namespace
}  // namespace crosvm::devices
