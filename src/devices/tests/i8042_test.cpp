#include "devices/i8042.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "devices/bus.h"

namespace crosvm::devices {
namespace {

void Command(I8042& dev, uint8_t cmd) {
  dev.Write(0, std::span<const uint8_t>(&cmd, 1));
}

TEST(I8042Test, ResetCommandCallsResetOnce) {
  int resets = 0;
  I8042 dev([&] { ++resets; });
  Command(dev, 0xfe);
  EXPECT_EQ(resets, 1);
  Command(dev, 0xfe);
  EXPECT_EQ(resets, 2) << "each reset command resets once";
}

TEST(I8042Test, OtherCommandsDoNotReset) {
  int resets = 0;
  I8042 dev([&] { ++resets; });
  // Read/write command byte, self tests, disable/enable the keyboard and aux ports, read/write
  // the output port, write to the aux device, and 0xff (pulse no output line).
  for (uint8_t cmd : {0x00, 0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xc0, 0xd0, 0xd1,
                      0xd2, 0xd4, 0xff}) {
    Command(dev, cmd);
  }
  EXPECT_EQ(resets, 0);
}

TEST(I8042Test, StatusReadIsZero) {
  I8042 dev([] {});
  uint8_t status = 0xaa;
  dev.Read(0, {&status, 1});
  EXPECT_EQ(status, 0x00) << "output and input buffers empty";
  Command(dev, 0xaa);
  status = 0xaa;
  dev.Read(0, {&status, 1});
  EXPECT_EQ(status, 0x00);
}

TEST(I8042Test, ResetThroughTheIoBusAtPort0x64) {
  int resets = 0;
  Bus io("io");
  ASSERT_TRUE(io.Insert(std::make_shared<I8042>([&] { ++resets; }), 0x64, 1).ok());
  const uint8_t cmd = 0xfe;
  EXPECT_TRUE(io.Write(0x64, {&cmd, 1}));
  EXPECT_EQ(resets, 1);
  // Port 0x60 (the data port) is not the i8042's: a 0xfe written there resets nothing.
  EXPECT_FALSE(io.Write(0x60, {&cmd, 1}));
  EXPECT_EQ(resets, 1);
  uint8_t status = 0xff;
  EXPECT_TRUE(io.Read(0x64, {&status, 1}));
  EXPECT_EQ(status, 0x00);
}

TEST(I8042Test, NoResetCallbackIsHarmless) {
  I8042 dev(nullptr);
  Command(dev, 0xfe);
  uint8_t status = 0xff;
  dev.Read(0, {&status, 1});
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace crosvm::devices
