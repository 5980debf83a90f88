// Runs the freestanding test guests (guest/testguests/) under crosvm: fast end-to-end checks of
// the 64-bit ELF entry, the serial port, port-I/O and MMIO exits, exceptions inside the guest,
// and the i8042 reset that ends the VM; a hostile virtio-blk driver.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>

#include <gtest/gtest.h>

#include "harness.h"

namespace crosvm::e2e {
namespace {

std::string GuestPath(const std::string& name) {
  return std::string(CROSVM_BUILD_DIR) + "/guest/testguests/" + name + ".elf";
}

RunResult RunGuest(const std::string& name, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"run", "--disable-sandbox"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(GuestPath(name));
  return RunCrosvm(args, 120);
}

void ExpectCleanExit(const RunResult& r, int guest_code) {
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_NE(r.output.find("TESTGUEST EXIT " + std::to_string(guest_code)), std::string::npos)
      << Tail(r.output);
  EXPECT_EQ(r.exit_code, 0) << Tail(r.output);
  EXPECT_NE(r.output.find("through the i8042 keyboard controller"), std::string::npos)
      << Tail(r.output);
}

TEST(TestGuest, HelloEntersThroughElf64WithZeroPage) {
  RunResult r = RunGuest("hello", {"-m", "64", "-p", "testguest=hello"});
  ExpectCleanExit(r, 0);
  EXPECT_NE(r.output.find("TESTGUEST hello boot=elf64"), std::string::npos) << r.output;
  // The guest reads crosvm's zero page: the command line and the e820 map.
  EXPECT_NE(r.output.find("cmdline: \"console=ttyS0 reboot=k panic=-1 testguest=hello\""),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("0x0000000000100000-0x0000000003ffffff ram"), std::string::npos)
      << r.output;
  // Long mode with paging: CR0.PG and PE set, CR4.PAE.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(cr0=0x([0-9a-f]+))"))) << r.output;
  uint64_t cr0 = std::stoull(m[1], nullptr, 16);
  EXPECT_TRUE(cr0 & 0x80000000u);
  EXPECT_TRUE(cr0 & 1u);
}

// The guest finds the RSDP through the zero page, follows XSDT -> FADT -> DSDT as an OS does,
// and enters \_S5: crosvm's PM device ends the VM with status 0 (on every host, this one too).
TEST(TestGuest, AcpiPowerOffEndsTheVmWithStatusZero) {
  RunResult r = RunGuest("acpi_poweroff", {"-m", "64"});
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_NE(r.output.find("TESTGUEST acpi_poweroff: PM1a_CNT 0x604 SLP_TYP 5"), std::string::npos)
      << Tail(r.output);
  EXPECT_NE(r.output.find("the guest powered off (ACPI S5)"), std::string::npos) << Tail(r.output);
  EXPECT_EQ(r.output.find("still running after SLP_EN"), std::string::npos) << Tail(r.output);
  EXPECT_EQ(r.output.find("TESTGUEST EXIT"), std::string::npos) << Tail(r.output);
  EXPECT_EQ(r.exit_code, 0) << Tail(r.output);
}

TEST(TestGuest, GuestExceptionIsReportedAndVmEnds) {
  RunResult r = RunGuest("fault");
  ExpectCleanExit(r, 134);
  EXPECT_NE(r.output.find("TESTGUEST EXCEPTION vector=6"), std::string::npos) << r.output;
}

TEST(TestGuest, PageFaultInGuestDoesNotHurtVmm) {
  RunResult r = RunGuest("fault_pf");
  ExpectCleanExit(r, 142);
  EXPECT_NE(r.output.find("vector=14"), std::string::npos) << r.output;
}

TEST(TestGuest, PortIoExitsReachTheBus) {
  RunResult r = RunGuest("pio_exits_10k");
  ExpectCleanExit(r, 0);
  EXPECT_NE(r.output.find("TESTGUEST pio_exits count=10000"), std::string::npos) << r.output;
  // The no-op port is unhandled: logged once, not 10000 times.
  size_t first = r.output.find("unhandled write of 1 bytes at 0x5e0");
  ASSERT_NE(first, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("unhandled write of 1 bytes at 0x5e0", first + 1), std::string::npos);
}

TEST(TestGuest, MmioExitsReachTheBus) {
  RunResult r = RunGuest("mmio_exits_10k");
  ExpectCleanExit(r, 0);
  EXPECT_NE(r.output.find("TESTGUEST mmio_exits count=10000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mmio: unhandled write of 4 bytes at 0xd8000000"), std::string::npos)
      << r.output;
}

TEST(TestGuest, TwoVcpusBootTheSameGuest) {
  // The secondary vCPU waits for INIT/SIPI in the in-kernel LAPIC; the guest never starts it,
  // and the VM must still end cleanly when the boot CPU resets.
  RunResult r = RunGuest("hello", {"-c", "2"});
  ExpectCleanExit(r, 0);
}

// A disk whose sector K holds "HOSTILE SECTOR K\n" and then bytes (K * 7 + 1) & 0xff, what
// virtio_blk_hostile checks its valid reads against. Removed when the test ends.
class HostileDisk {
 public:
  HostileDisk() {
    path_ = std::string(CROSVM_BUILD_DIR) + "/e2e-hostile-" + std::to_string(getpid()) + ".img";
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    for (uint32_t k = 0; k < 2048; ++k) {
      std::string sector = "HOSTILE SECTOR " + std::to_string(k) + "\n";
      sector.resize(512, static_cast<char>(static_cast<uint8_t>(k * 7 + 1)));
      f.write(sector.data(), 512);
    }
    ok_ = f.good();
  }
  ~HostileDisk() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }
  bool ok() const { return ok_; }

 private:
  std::string path_;
  bool ok_ = false;
};

// Broken chains (a descriptor loop, buffers past RAM, nested and mis-sized indirect tables, a
// head outside the queue) and a reset with requests in flight: each must end in an outcome the
// virtio spec allows (used length 0, an error status or DEVICE_NEEDS_RESET; nothing written
// after the reset), a valid read after each must still return the right sector, and crosvm
// must stay up until the guest ends the VM.
TEST(TestGuest, VirtioBlkSurvivesHostileQueues) {
  HostileDisk disk;
  ASSERT_TRUE(disk.ok());
  RunResult r = RunGuest("virtio_blk_hostile", {"-m", "64", "--rwdisk", disk.path()});
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  // crosvm's own log lines (stderr) can land in the middle of a guest line (the console's
  // stdout is written by the serial port's writer thread): take them out first.
  std::string guest = std::regex_replace(r.output, std::regex(R"(\[crosvm [A-Z]+ [^\n]*\n)"), "");
  std::map<std::string, std::string> cases;  // case -> its result line
  std::regex line(R"(TESTGUEST hostile case=(\w+) [^\n]*)");
  for (std::sregex_iterator it(guest.begin(), guest.end(), line), end; it != end; ++it) {
    cases[(*it)[1]] = (*it)[0];
  }
  for (const char* name : {"loop", "past_ram", "far_addr", "nested_indirect", "indirect_len",
                           "indirect_empty", "head_range", "reset_in_flight"}) {
    ASSERT_TRUE(cases.count(name)) << "no result for " << name << "\n" << Tail(r.output);
    const std::string& l = cases[name];
    EXPECT_NE(l.find("hostile_ok=1"), std::string::npos) << l;
    EXPECT_NE(l.find("valid=ok"), std::string::npos) << l;
    if (std::string(name) == "reset_in_flight") {
      EXPECT_NE(l.find("late_writes=0"), std::string::npos) << l;
    } else {
      EXPECT_EQ(l.find("outcome=none"), std::string::npos) << l;
    }
  }
  EXPECT_NE(r.output.find("TESTGUEST hostile summary cases=8 failures=0"), std::string::npos)
      << Tail(r.output);
  ExpectCleanExit(r, 0);
}

}  // namespace
}  // namespace crosvm::e2e
