#include "devices/serial.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace crosvm::devices {
namespace {

// Register bits (16550A data sheet).
constexpr uint8_t kIerErbfi = 0x01;  // received data available
constexpr uint8_t kIerEtbei = 0x02;  // transmitter holding register empty
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirRda = 0x04;
constexpr uint8_t kIirFifos = 0xc0;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;
constexpr uint8_t kMcrLoop = 0x10;

class SerialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe2(fds_, O_NONBLOCK | O_CLOEXEC), 0);
    serial_ = std::make_unique<Serial>("com1", fds_[1], [this] { ++interrupts_; });
  }
  void TearDown() override {
    serial_.reset();
    close(fds_[0]);
    close(fds_[1]);
  }

  uint8_t In(uint64_t reg) {
    uint8_t v = 0;
    serial_->Read(reg, {&v, 1});
    return v;
  }
  void Out(uint64_t reg, uint8_t v) { serial_->Write(reg, {&v, 1}); }
  void Queue(const std::string& s) {
    serial_->QueueInput({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  // Everything written to the output fd so far.
  std::string Output() {
    EXPECT_TRUE(serial_->Flush());
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = read(fds_[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  int fds_[2] = {-1, -1};
  int interrupts_ = 0;
  std::unique_ptr<Serial> serial_;
};

TEST_F(SerialTest, ThrWritesAppearOnTheFd) {
  for (char c : std::string("hello\n")) Out(Serial::kData, static_cast<uint8_t>(c));
  EXPECT_EQ(Output(), "hello\n");
  Out(Serial::kData, 0);
  Out(Serial::kData, 0xff);
  EXPECT_EQ(Output(), std::string("\0\xff", 2));
}

TEST_F(SerialTest, NoInterruptsWhenNoneAreEnabled) {
  Out(Serial::kData, 'x');
  Queue("abc");
  EXPECT_EQ(interrupts_, 0);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
}

TEST_F(SerialTest, LsrTransmitterAlwaysEmptyDataReadyWithInput) {
  EXPECT_EQ(In(Serial::kLsr), kLsrThre | kLsrTemt);
  Out(Serial::kData, 'x');
  EXPECT_EQ(In(Serial::kLsr), kLsrThre | kLsrTemt);
  Queue("ab");
  EXPECT_EQ(In(Serial::kLsr), kLsrThre | kLsrTemt | kLsrDr);
  EXPECT_EQ(In(Serial::kData), 'a');
  EXPECT_EQ(In(Serial::kLsr), kLsrThre | kLsrTemt | kLsrDr);
  EXPECT_EQ(In(Serial::kData), 'b');
  EXPECT_EQ(In(Serial::kLsr), kLsrThre | kLsrTemt);
}

TEST_F(SerialTest, InputIsReadInOrder) {
  Queue("xyz");
  Queue("12");
  std::string got;
  while (In(Serial::kLsr) & kLsrDr) got += static_cast<char>(In(Serial::kData));
  EXPECT_EQ(got, "xyz12");
}

TEST_F(SerialTest, DlabSwitchesOffsets0And1ToTheDivisorLatch) {
  EXPECT_EQ(In(Serial::kLcr), 0x03) << "8N1 at reset";
  Out(Serial::kLcr, kLcrDlab | 0x03);
  EXPECT_EQ(In(Serial::kData), 0x0c) << "DLL at reset: 9600 baud";
  EXPECT_EQ(In(Serial::kIer), 0x00) << "DLM at reset";
  Out(Serial::kData, 0x01);  // DLL: 115200 baud
  Out(Serial::kIer, 0x02);   // DLM
  EXPECT_EQ(In(Serial::kData), 0x01);
  EXPECT_EQ(In(Serial::kIer), 0x02);
  EXPECT_EQ(In(Serial::kLcr), kLcrDlab | 0x03);
  // Nothing was transmitted and no interrupt was enabled.
  EXPECT_EQ(Output(), "");
  EXPECT_EQ(interrupts_, 0);

  Out(Serial::kLcr, 0x03);
  EXPECT_EQ(In(Serial::kIer), 0x00) << "IER, not DLM";
  Out(Serial::kData, 'k');
  EXPECT_EQ(Output(), "k");
  // The divisor is kept.
  Out(Serial::kLcr, kLcrDlab | 0x03);
  EXPECT_EQ(In(Serial::kData), 0x01);
  EXPECT_EQ(In(Serial::kIer), 0x02);
}

TEST_F(SerialTest, DlabHidesReceivedData) {
  Queue("q");
  Out(Serial::kLcr, kLcrDlab | 0x03);
  EXPECT_EQ(In(Serial::kData), 0x0c);
  Out(Serial::kLcr, 0x03);
  EXPECT_EQ(In(Serial::kData), 'q');
}

TEST_F(SerialTest, IirFifoBits) {
  EXPECT_EQ(In(Serial::kIir), kIirNone);
  Out(Serial::kIir, 0x01);  // FCR: enable FIFOs
  EXPECT_EQ(In(Serial::kIir), kIirFifos | kIirNone);
  Out(Serial::kIir, 0xc7);  // enable, clear both FIFOs, trigger level 14
  EXPECT_EQ(In(Serial::kIir), kIirFifos | kIirNone);
  Out(Serial::kIir, 0x00);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
}

TEST_F(SerialTest, FcrClearsTheReceiveFifo) {
  Queue("junk");
  Out(Serial::kIir, 0x03);
  EXPECT_FALSE(In(Serial::kLsr) & kLsrDr);
}

TEST_F(SerialTest, EnablingEtbeiRaisesThrEmptyAtOnce) {
  Out(Serial::kIer, kIerEtbei);
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(In(Serial::kIer), kIerEtbei);
  EXPECT_EQ(In(Serial::kIir), kIirThre);
  // Reading the IIR acknowledged it.
  EXPECT_EQ(In(Serial::kIir), kIirNone);
  EXPECT_EQ(interrupts_, 1);
  // Writing it again while it is set does not raise another.
  Out(Serial::kIer, kIerEtbei);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
}

TEST_F(SerialTest, EachTransmittedByteRaisesThrEmpty) {
  Out(Serial::kIer, kIerEtbei);
  ASSERT_EQ(In(Serial::kIir), kIirThre);
  Out(Serial::kData, 'a');
  EXPECT_EQ(interrupts_, 2);
  EXPECT_EQ(In(Serial::kIir), kIirThre);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
  Out(Serial::kData, 'b');
  EXPECT_EQ(interrupts_, 3);
  EXPECT_EQ(Output(), "ab");
}

TEST_F(SerialTest, IirWithFifosAndThrEmpty) {
  Out(Serial::kIir, 0x01);
  Out(Serial::kIer, kIerEtbei);
  EXPECT_EQ(In(Serial::kIir), kIirFifos | kIirThre);
  EXPECT_EQ(In(Serial::kIir), kIirFifos | kIirNone);
}

TEST_F(SerialTest, DisablingEtbeiHidesThePendingInterrupt) {
  Out(Serial::kIer, kIerEtbei);
  Out(Serial::kIer, 0);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
}

TEST_F(SerialTest, ReceivedDataInterrupt) {
  Out(Serial::kIer, kIerErbfi);
  EXPECT_EQ(interrupts_, 0);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
  Queue("a");
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(In(Serial::kIir), kIirRda);
  // Reading the IIR does not acknowledge received data; reading the data does.
  EXPECT_EQ(In(Serial::kIir), kIirRda);
  EXPECT_EQ(In(Serial::kData), 'a');
  EXPECT_EQ(In(Serial::kIir), kIirNone);
  // More input while none is pending raises a new interrupt.
  Queue("bc");
  EXPECT_EQ(interrupts_, 2);
  // Input while data is already pending is no new condition.
  Queue("d");
  EXPECT_EQ(interrupts_, 2);
}

TEST_F(SerialTest, EnablingErbfiWithQueuedInputRaisesAtOnce) {
  Queue("z");
  EXPECT_EQ(interrupts_, 0);
  Out(Serial::kIer, kIerErbfi);
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(In(Serial::kIir), kIirRda);
}

TEST_F(SerialTest, ReceivedDataHasPriorityOverThrEmpty) {
  Out(Serial::kIer, kIerErbfi | kIerEtbei);
  EXPECT_EQ(interrupts_, 1);
  Queue("r");
  EXPECT_EQ(In(Serial::kIir), kIirRda);
  // The THR-empty interrupt was not reported, so it is still pending.
  EXPECT_EQ(In(Serial::kIir), kIirRda);
  EXPECT_EQ(In(Serial::kData), 'r');
  EXPECT_EQ(In(Serial::kIir), kIirThre);
  EXPECT_EQ(In(Serial::kIir), kIirNone);
}

TEST_F(SerialTest, LoopbackReturnsTransmittedBytes) {
  Out(Serial::kMcr, kMcrLoop);
  Out(Serial::kData, 'L');
  Out(Serial::kData, 'b');
  EXPECT_EQ(Output(), "") << "nothing goes out in loopback";
  EXPECT_TRUE(In(Serial::kLsr) & kLsrDr);
  EXPECT_EQ(In(Serial::kData), 'L');
  EXPECT_EQ(In(Serial::kData), 'b');
  EXPECT_FALSE(In(Serial::kLsr) & kLsrDr);
  // Leaving loopback transmits again.
  Out(Serial::kMcr, 0x0b);
  Out(Serial::kData, 'o');
  EXPECT_EQ(Output(), "o");
  EXPECT_FALSE(In(Serial::kLsr) & kLsrDr);
}

TEST_F(SerialTest, LoopbackRaisesReceivedDataInterrupt) {
  Out(Serial::kIer, kIerErbfi);
  Out(Serial::kMcr, kMcrLoop);
  Out(Serial::kData, 'i');
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(In(Serial::kIir), kIirRda);
}

TEST_F(SerialTest, LoopbackMsrMirrorsMcr) {
  // Linux's 8250 driver checks the UART this way: MCR = LOOP | OUT2 | RTS must read MSR 0x90.
  Out(Serial::kMcr, 0x1a);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0x90);
  // DTR -> DSR, RTS -> CTS, OUT1 -> RI, OUT2 -> DCD.
  Out(Serial::kMcr, kMcrLoop | 0x01);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0x20);
  Out(Serial::kMcr, kMcrLoop | 0x02);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0x10);
  Out(Serial::kMcr, kMcrLoop | 0x04);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0x40);
  Out(Serial::kMcr, kMcrLoop | 0x08);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0x80);
  Out(Serial::kMcr, kMcrLoop | 0x0f);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0xf0);
  Out(Serial::kMcr, kMcrLoop);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0x00);
}

TEST_F(SerialTest, MsrOutsideLoopbackShowsAConnectedModem) {
  Out(Serial::kMcr, 0x00);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0xb0) << "DCD, DSR, CTS; no RI";
  Out(Serial::kMcr, 0x0f);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0xb0);
}

TEST_F(SerialTest, McrReadsBackItsFiveBits) {
  EXPECT_EQ(In(Serial::kMcr), 0x08) << "OUT2 at reset";
  Out(Serial::kMcr, 0xff);
  EXPECT_EQ(In(Serial::kMcr), 0x1f);
  Out(Serial::kMcr, 0x0b);
  EXPECT_EQ(In(Serial::kMcr), 0x0b);
}

TEST_F(SerialTest, IerReadsBackItsFourBits) {
  Out(Serial::kIer, 0xff);
  EXPECT_EQ(In(Serial::kIer), 0x0f);
}

TEST_F(SerialTest, ScratchRegister) {
  EXPECT_EQ(In(Serial::kScr), 0x00);
  Out(Serial::kScr, 0x5a);
  EXPECT_EQ(In(Serial::kScr), 0x5a);
  Out(Serial::kScr, 0xa5);
  EXPECT_EQ(In(Serial::kScr), 0xa5);
  EXPECT_EQ(Output(), "");
}

TEST_F(SerialTest, LsrAndMsrAreReadOnly) {
  Out(Serial::kLsr, 0x00);
  EXPECT_EQ(In(Serial::kLsr), kLsrThre | kLsrTemt);
  Out(Serial::kMsr, 0x00);
  EXPECT_EQ(In(Serial::kMsr) & 0xf0, 0xb0);
}

TEST_F(SerialTest, InputBeyondTheLimitIsDroppedAndCounted) {
  std::vector<uint8_t> big(Serial::kMaxQueuedInput + 10, 'x');
  big[0] = 'F';
  serial_->QueueInput(big);
  EXPECT_EQ(serial_->dropped_input(), 10u);
  const uint8_t more[] = {'y', 'z'};
  serial_->QueueInput(more);
  EXPECT_EQ(serial_->dropped_input(), 12u);

  EXPECT_EQ(In(Serial::kData), 'F');
  size_t read = 1;
  while (In(Serial::kLsr) & kLsrDr) {
    EXPECT_EQ(In(Serial::kData), 'x');
    ++read;
    ASSERT_LE(read, Serial::kMaxQueuedInput);
  }
  EXPECT_EQ(read, Serial::kMaxQueuedInput);
  // There is room again.
  serial_->QueueInput(more);
  EXPECT_EQ(serial_->dropped_input(), 12u);
  EXPECT_EQ(In(Serial::kData), 'y');
}

TEST_F(SerialTest, ReadOfEmptyReceiverIsZero) {
  EXPECT_EQ(In(Serial::kData), 0);
}

TEST_F(SerialTest, MultiByteAccessesCoverConsecutiveRegisters) {
  Out(Serial::kScr, 0x77);
  uint8_t two[2] = {};
  serial_->Read(Serial::kMsr, two);
  EXPECT_EQ(two[0] & 0xf0, 0xb0);
  EXPECT_EQ(two[1], 0x77);
  // Bytes past the last register read as all-ones.
  serial_->Read(Serial::kScr, two);
  EXPECT_EQ(two[0], 0x77);
  EXPECT_EQ(two[1], 0xff);
}

TEST(SerialNoOutputTest, NegativeFdDiscardsOutput) {
  int interrupts = 0;
  Serial s("com2", -1, [&] { ++interrupts; });
  uint8_t v = 'x';
  s.Write(Serial::kData, {&v, 1});
  uint8_t lsr = 0;
  s.Read(Serial::kLsr, {&lsr, 1});
  EXPECT_EQ(lsr, kLsrThre | kLsrTemt);
  // Interrupts still work on an unconnected port.
  v = kIerEtbei;
  s.Write(Serial::kIer, {&v, 1});
  EXPECT_EQ(interrupts, 1);
}

TEST(SerialNoOutputTest, NoInterruptCallbackIsAllowed) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
  Serial s("com3", fds[1], nullptr);
  uint8_t v = kIerEtbei;
  s.Write(Serial::kIer, {&v, 1});
  v = 'q';
  s.Write(Serial::kData, {&v, 1});
  EXPECT_TRUE(s.Flush());
  char c = 0;
  EXPECT_EQ(read(fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'q');
  close(fds[0]);
  close(fds[1]);
}

// The guest writes 1 MiB to a console nobody reads: no THR write waits for the fd, the bytes
// that do not fit are dropped and counted, and what is kept is the output's beginning, in
// order, flushed when the port goes away.
TEST(SerialOutputTest, BlockedOutputNeverBlocksTheGuest) {
  signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);  // a blocking pipe, as a stdout would be
  auto serial = std::make_unique<Serial>("com1", fds[1], nullptr);
  constexpr size_t kTotal = 1 << 20;
  auto byte_at = [](size_t i) { return static_cast<uint8_t>((i * 7 + i / 251) & 0xff); };
  std::atomic<bool> done{false};
  std::thread guest([&] {
    for (size_t i = 0; i < kTotal; ++i) {
      uint8_t b = byte_at(i);
      serial->Write(Serial::kData, {&b, 1});
    }
    done = true;
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  bool finished = done;
  if (!finished) close(fds[0]);  // unblock a guest stuck in write(2) (EPIPE), then fail
  guest.join();
  ASSERT_TRUE(finished) << "a THR write blocked on the unread pipe";
  uint64_t dropped = serial->dropped_output();
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(dropped, kTotal);

  // Now someone reads: what was kept comes out, then EOF once the port is gone.
  std::string kept;
  std::thread reader([&] {
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) kept.append(buf, static_cast<size_t>(n));
  });
  serial.reset();  // flushes
  close(fds[1]);
  reader.join();
  close(fds[0]);
  ASSERT_EQ(kept.size(), kTotal - dropped) << "kept + dropped = written";
  // What was kept is the output in order with runs left out: usually only the tail, but on a
  // loaded machine the writer thread may make room late, so a later run is kept too. Each kept
  // stretch must continue the output where a 16-byte window of it matches.
  auto matches = [&](size_t at, size_t j, size_t w) {
    for (size_t x = 0; x < w; ++x) {
      if (byte_at(at + x) != static_cast<uint8_t>(kept[j + x])) return false;
    }
    return true;
  };
  size_t i = 0;
  for (size_t j = 0; j < kept.size();) {
    if (i < kTotal && byte_at(i) == static_cast<uint8_t>(kept[j])) {
      ++i;
      ++j;
      continue;
    }
    size_t w = std::min<size_t>(16, kept.size() - j);
    size_t k = i + 1;
    while (k + w <= kTotal && !matches(k, j, w)) ++k;
    ASSERT_LE(k + w, kTotal) << "kept byte " << j << " is not from a later part of the output";
    i = k;
  }
  EXPECT_EQ(static_cast<uint8_t>(kept[0]), byte_at(0)) << "the first bytes are never dropped";
}

// A port whose fd never drains still goes away in bounded time, counting what it dropped.
TEST(SerialOutputTest, DestructionDoesNotHangOnABlockedFd) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  auto serial = std::make_unique<Serial>("com1", fds[1], nullptr);
  for (size_t i = 0; i < 200000; ++i) {
    uint8_t b = 'x';
    serial->Write(Serial::kData, {&b, 1});
  }
  auto start = std::chrono::steady_clock::now();
  serial.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            Serial::kFlushTimeout + std::chrono::seconds(1));
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace crosvm::devices
