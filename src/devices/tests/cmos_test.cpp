#include "devices/cmos.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>

namespace crosvm::devices {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

constexpr uint8_t kRegA = 0x0a, kRegB = 0x0b, kRegC = 0x0c, kRegD = 0x0d;

time_t Utc(int year, int month, int day, int hour, int min, int sec) {
  tm t{};
  t.tm_year = year - 1900;
  t.tm_mon = month - 1;
  t.tm_mday = day;
  t.tm_hour = hour;
  t.tm_min = min;
  t.tm_sec = sec;
  return timegm(&t);
}

uint8_t ReadReg(Cmos& cmos, uint8_t index) {
  cmos.Write(0, std::span<const uint8_t>(&index, 1));
  uint8_t v = 0;
  cmos.Read(1, {&v, 1});
  return v;
}

void WriteReg(Cmos& cmos, uint8_t index, uint8_t value) {
  cmos.Write(0, std::span<const uint8_t>(&index, 1));
  cmos.Write(1, std::span<const uint8_t>(&value, 1));
}

class CmosTest : public ::testing::Test {
 protected:
  // 2026-11-25 01:02:03 UTC, a Wednesday.
  time_t now_ = Utc(2026, 11, 25, 1, 2, 3);
  Cmos cmos_{256 * kMiB, 0, [this] { return now_; }};
};

TEST_F(CmosTest, ClockIsTheExpectedInstant) {
  EXPECT_EQ(now_, 1795568523);
}

TEST_F(CmosTest, BcdByDefault) {
  EXPECT_EQ(ReadReg(cmos_, 0x00), 0x03) << "seconds";
  EXPECT_EQ(ReadReg(cmos_, 0x02), 0x02) << "minutes";
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x01) << "hours";
  EXPECT_EQ(ReadReg(cmos_, 0x06), 0x04) << "day of week (Sunday = 1)";
  EXPECT_EQ(ReadReg(cmos_, 0x07), 0x25) << "day of month";
  EXPECT_EQ(ReadReg(cmos_, 0x08), 0x11) << "month";
  EXPECT_EQ(ReadReg(cmos_, 0x09), 0x26) << "year";
  EXPECT_EQ(ReadReg(cmos_, 0x32), 0x20) << "century";
}

TEST_F(CmosTest, BcdTwoDigitValues) {
  now_ = Utc(1999, 12, 31, 23, 59, 58);
  EXPECT_EQ(ReadReg(cmos_, 0x00), 0x58);
  EXPECT_EQ(ReadReg(cmos_, 0x02), 0x59);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x23);
  EXPECT_EQ(ReadReg(cmos_, 0x06), 0x06) << "Friday";
  EXPECT_EQ(ReadReg(cmos_, 0x07), 0x31);
  EXPECT_EQ(ReadReg(cmos_, 0x08), 0x12);
  EXPECT_EQ(ReadReg(cmos_, 0x09), 0x99);
  EXPECT_EQ(ReadReg(cmos_, 0x32), 0x19);
}

TEST_F(CmosTest, BinaryWhenRegisterBBit2IsSet) {
  WriteReg(cmos_, kRegB, 0x02 | 0x04);  // 24-hour, binary
  EXPECT_EQ(ReadReg(cmos_, kRegB), 0x06);
  EXPECT_EQ(ReadReg(cmos_, 0x00), 3);
  EXPECT_EQ(ReadReg(cmos_, 0x02), 2);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 1);
  EXPECT_EQ(ReadReg(cmos_, 0x06), 4);
  EXPECT_EQ(ReadReg(cmos_, 0x07), 25);
  EXPECT_EQ(ReadReg(cmos_, 0x08), 11);
  EXPECT_EQ(ReadReg(cmos_, 0x09), 26);
  EXPECT_EQ(ReadReg(cmos_, 0x32), 20);
}

TEST_F(CmosTest, TwelveHourModeBcd) {
  WriteReg(cmos_, kRegB, 0x00);  // 12-hour, BCD
  now_ = Utc(2026, 11, 25, 0, 30, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x12) << "midnight is 12 AM";
  now_ = Utc(2026, 11, 25, 1, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x01);
  now_ = Utc(2026, 11, 25, 11, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x11);
  now_ = Utc(2026, 11, 25, 12, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x92) << "noon is 12 PM";
  now_ = Utc(2026, 11, 25, 13, 2, 3);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x81);
  now_ = Utc(2026, 11, 25, 23, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x91);
  // Only the hours register changes.
  EXPECT_EQ(ReadReg(cmos_, 0x02), 0x00);
  EXPECT_EQ(ReadReg(cmos_, 0x07), 0x25);
}

TEST_F(CmosTest, TwelveHourModeBinary) {
  WriteReg(cmos_, kRegB, 0x04);  // 12-hour, binary
  now_ = Utc(2026, 11, 25, 23, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x80 | 11);
  now_ = Utc(2026, 11, 25, 10, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 10);
  now_ = Utc(2026, 11, 25, 0, 0, 0);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 12);
}

TEST(CmosEncodeTest, EncodeTimeField) {
  EXPECT_EQ(Cmos::EncodeTimeField(59, 0x02, false), 0x59);
  EXPECT_EQ(Cmos::EncodeTimeField(59, 0x06, false), 59);
  EXPECT_EQ(Cmos::EncodeTimeField(0, 0x02, false), 0x00);
  EXPECT_EQ(Cmos::EncodeTimeField(17, 0x02, true), 0x17);
  EXPECT_EQ(Cmos::EncodeTimeField(17, 0x00, true), 0x85);
  EXPECT_EQ(Cmos::EncodeTimeField(17, 0x04, true), 0x85);
  EXPECT_EQ(Cmos::EncodeTimeField(0, 0x00, true), 0x12);
  // 12-hour mode affects only the hours field.
  EXPECT_EQ(Cmos::EncodeTimeField(17, 0x00, false), 0x17);
}

TEST_F(CmosTest, StatusRegisters) {
  EXPECT_EQ(ReadReg(cmos_, kRegA), 0x26);
  EXPECT_EQ(ReadReg(cmos_, kRegB), 0x02) << "24-hour BCD at reset";
  EXPECT_EQ(ReadReg(cmos_, kRegC), 0x00);
  EXPECT_TRUE(ReadReg(cmos_, kRegD) & 0x80) << "valid RAM and time";
  // Register D is read-only.
  WriteReg(cmos_, kRegD, 0x00);
  EXPECT_TRUE(ReadReg(cmos_, kRegD) & 0x80);
  // Register A's update-in-progress bit is read-only.
  WriteReg(cmos_, kRegA, 0xa6);
  EXPECT_EQ(ReadReg(cmos_, kRegA), 0x26);
}

TEST_F(CmosTest, IndexPortMasksTheNmiBit) {
  EXPECT_EQ(ReadReg(cmos_, 0x80 | 0x00), 0x03) << "seconds with NMI disabled";
  EXPECT_EQ(ReadReg(cmos_, 0x80 | 0x09), 0x26);
  EXPECT_EQ(ReadReg(cmos_, 0x80 | kRegB), 0x02);
  WriteReg(cmos_, 0x80 | 0x40, 0x5a);
  EXPECT_EQ(ReadReg(cmos_, 0x40), 0x5a);
}

TEST_F(CmosTest, IndexPortReadsAllOnes) {
  uint8_t index = 0x09;
  cmos_.Write(0, std::span<const uint8_t>(&index, 1));
  uint8_t v = 0;
  cmos_.Read(0, {&v, 1});
  EXPECT_EQ(v, 0xff);
  // ... and does not disturb the selected register.
  cmos_.Read(1, {&v, 1});
  EXPECT_EQ(v, 0x26);
}

TEST_F(CmosTest, WritesToTimeRegistersAreIgnored) {
  for (uint8_t reg : {0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32}) {
    WriteReg(cmos_, reg, 0x42);
  }
  EXPECT_EQ(ReadReg(cmos_, 0x00), 0x03);
  EXPECT_EQ(ReadReg(cmos_, 0x02), 0x02);
  EXPECT_EQ(ReadReg(cmos_, 0x04), 0x01);
  EXPECT_EQ(ReadReg(cmos_, 0x06), 0x04);
  EXPECT_EQ(ReadReg(cmos_, 0x07), 0x25);
  EXPECT_EQ(ReadReg(cmos_, 0x08), 0x11);
  EXPECT_EQ(ReadReg(cmos_, 0x09), 0x26);
  EXPECT_EQ(ReadReg(cmos_, 0x32), 0x20);
}

// The alarm registers (seconds 0x01, minutes 0x03, hours 0x05) are read/write on the MC146818;
// only the time itself follows the host clock.
TEST_F(CmosTest, AlarmRegistersAreReadWrite) {
  WriteReg(cmos_, 0x01, 0x30);
  WriteReg(cmos_, 0x03, 0x45);
  WriteReg(cmos_, 0x05, 0x06);
  EXPECT_EQ(ReadReg(cmos_, 0x01), 0x30);
  EXPECT_EQ(ReadReg(cmos_, 0x03), 0x45);
  EXPECT_EQ(ReadReg(cmos_, 0x05), 0x06);
  EXPECT_EQ(ReadReg(cmos_, 0x00), 0x03) << "the time is unaffected";
}

TEST_F(CmosTest, TimeFollowsTheClock) {
  EXPECT_EQ(ReadReg(cmos_, 0x00), 0x03);
  now_ += 10;
  EXPECT_EQ(ReadReg(cmos_, 0x00), 0x13);
  now_ += 60 * 60 * 24;  // the next day, a Thursday
  EXPECT_EQ(ReadReg(cmos_, 0x07), 0x26);
  EXPECT_EQ(ReadReg(cmos_, 0x06), 0x05);
}

TEST_F(CmosTest, OtherRamBytesAreStored) {
  for (uint8_t reg : {0x0e, 0x0f, 0x10, 0x40, 0x7f}) {
    EXPECT_EQ(ReadReg(cmos_, reg), 0x00) << int{reg};
    WriteReg(cmos_, reg, static_cast<uint8_t>(reg ^ 0xa5));
  }
  for (uint8_t reg : {0x0e, 0x0f, 0x10, 0x40, 0x7f}) {
    EXPECT_EQ(ReadReg(cmos_, reg), reg ^ 0xa5) << int{reg};
  }
}

TEST_F(CmosTest, MultiByteWriteSetsIndexThenData) {
  const uint8_t both[] = {0x50, 0x77};
  cmos_.Write(0, both);
  EXPECT_EQ(ReadReg(cmos_, 0x50), 0x77);
}

TEST(CmosMemoryTest, MemorySizeBytes) {
  // 3.25 GiB below 4 GiB, 5 GiB above.
  Cmos cmos(0xd0000000, 5 * kGiB, [] { return time_t{0}; });
  // (0xd0000000 - 16 MiB) / 64 KiB = 0xcf00.
  EXPECT_EQ(ReadReg(cmos, 0x34), 0x00);
  EXPECT_EQ(ReadReg(cmos, 0x35), 0xcf);
  // 5 GiB / 64 KiB = 0x14000.
  EXPECT_EQ(ReadReg(cmos, 0x5b), 0x00);
  EXPECT_EQ(ReadReg(cmos, 0x5c), 0x40);
  EXPECT_EQ(ReadReg(cmos, 0x5d), 0x01);
}

TEST(CmosMemoryTest, SmallMemory) {
  Cmos cmos(256 * kMiB, 0, [] { return time_t{0}; });
  // (256 - 16) MiB / 64 KiB = 3840 = 0x0f00.
  EXPECT_EQ(ReadReg(cmos, 0x34), 0x00);
  EXPECT_EQ(ReadReg(cmos, 0x35), 0x0f);
  EXPECT_EQ(ReadReg(cmos, 0x5b), 0x00);
  EXPECT_EQ(ReadReg(cmos, 0x5c), 0x00);
  EXPECT_EQ(ReadReg(cmos, 0x5d), 0x00);

  Cmos tiny(8 * kMiB, 0, [] { return time_t{0}; });
  EXPECT_EQ(ReadReg(tiny, 0x34), 0x00);
  EXPECT_EQ(ReadReg(tiny, 0x35), 0x00);

  // 0x1234 units of 64 KiB above 16 MiB, low byte first.
  Cmos odd(16 * kMiB + 0x1234 * 0x10000, 0, [] { return time_t{0}; });
  EXPECT_EQ(ReadReg(odd, 0x34), 0x34);
  EXPECT_EQ(ReadReg(odd, 0x35), 0x12);
}

TEST(CmosMemoryTest, BelowFourGiBSaturates) {
  Cmos cmos(8 * kGiB, 0, [] { return time_t{0}; });
  EXPECT_EQ(ReadReg(cmos, 0x34), 0xff);
  EXPECT_EQ(ReadReg(cmos, 0x35), 0xff);
}

TEST(CmosMemoryTest, AboveFourGiBUnits) {
  Cmos cmos(256 * kMiB, 0x12'3456'0000, [] { return time_t{0}; });
  EXPECT_EQ(ReadReg(cmos, 0x5b), 0x56);
  EXPECT_EQ(ReadReg(cmos, 0x5c), 0x34);
  EXPECT_EQ(ReadReg(cmos, 0x5d), 0x12);
}

TEST(CmosClockTest, DefaultClockIsTheHostTime) {
  Cmos cmos(256 * kMiB, 0);
  WriteReg(cmos, kRegB, 0x06);  // binary, 24-hour
  time_t before = time(nullptr);
  uint8_t year = ReadReg(cmos, 0x09);
  uint8_t century = ReadReg(cmos, 0x32);
  tm t{};
  gmtime_r(&before, &t);
  EXPECT_EQ(century * 100 + year, t.tm_year + 1900);
}

}  // namespace
}  // namespace crosvm::devices
