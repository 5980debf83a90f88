// Boots the project's Linux guest kernel under crosvm on real KVM and checks what the kernel's
// own log says about the machine crosvm built: CPUs, memory, serial port, RTC, and that the
// guest's reset ends crosvm cleanly.
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "harness.h"

namespace crosvm::e2e {
namespace {

constexpr int kBootTimeoutS = 600;

struct Guest {
  std::string kernel, bzimage, initrd, params;
};

// The guest artefacts, or a failure explaining how to get them. Not a skip: `make test` always
// builds them, so their absence is an error.
std::optional<Guest> LoadGuest() {
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  auto bzimage = GuestVar("CROSVM_GUEST_BZIMAGE");
  auto initrd = GuestVar("CROSVM_GUEST_INITRD");
  auto params = GuestVar("CROSVM_GUEST_PARAMS");
  if (!kernel || !bzimage || !initrd || !params) {
    ADD_FAILURE() << "CROSVM_GUEST_KERNEL/BZIMAGE/INITRD/PARAMS are not set: run the tests with "
                     "`make test`, or export the KERNEL=, BZIMAGE=, INITRD= and PARAMS= lines "
                     "that `make guest` prints with a CROSVM_GUEST_ prefix";
    return std::nullopt;
  }
  return Guest{*kernel, *bzimage, *initrd, *params};
}

RunResult Boot(const Guest& g, const std::string& kernel, int cpus, int mem_mib = 128) {
  return RunCrosvm({"run", "-m", std::to_string(mem_mib), "-c", std::to_string(cpus), "-i",
                    g.initrd, "-p", g.params, kernel},
                   kBootTimeoutS);
}

// Every boot must reach the kernel's init and end through the guest's own reset.
void ExpectBootedAndReset(const RunResult& r) {
  ASSERT_FALSE(r.timed_out) << "crosvm did not exit within " << kBootTimeoutS << " s\n"
                            << Tail(r.output);
  EXPECT_NE(r.output.find("Run /init as init process"), std::string::npos) << Tail(r.output);
  EXPECT_NE(r.output.find("through the i8042 keyboard controller"), std::string::npos)
      << "the VM did not end through the guest's i8042 reset\n"
      << Tail(r.output);
  EXPECT_EQ(r.exit_code, 0) << Tail(r.output);
  std::printf("[ boot     ] %.1f s wall from crosvm start to exit\n", r.seconds);
}

// The kernel found crosvm's ACPI tables, took its CPUs from the MADT and its PCI root bus from
// the DSDT, and ACPICA had nothing to complain about.
void ExpectAcpi(const RunResult& r, int cpus) {
  for (const char* line :
       {"ACPI: RSDP 0x00000000000E0000", "ACPI: XSDT ", "ACPI: FACP ", "ACPI: DSDT ", "ACPI: FACS ",
        "ACPI: APIC ", "ACPI: Using ACPI (MADT) for SMP configuration information",
        "ACPI: INT_SRC_OVR (bus 0 bus_irq 9 global_irq 9 high level)",
        "ACPI: LAPIC_NMI (acpi_id[0xff] dfl dfl lint[0x1])", "ACPI: Interpreter enabled",
        "ACPI: PM: (supports S0 S5)", "ACPI: Using IOAPIC for interrupt routing",
        "ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00])",
        "pci_bus 0000:00: root bus resource [io  0x1000-0xffff window]",
        "pci_bus 0000:00: root bus resource [mem 0xd0000000-0xfebfffff window]",
        "PCI: Using ACPI for IRQ routing"}) {
    EXPECT_NE(r.output.find(line), std::string::npos) << "missing: " << line << "\n"
                                                      << Tail(r.output);
  }
  std::string allowing = "smpboot: Allowing " + std::to_string(cpus) + " CPUs, 0 hotplug CPUs";
  EXPECT_NE(r.output.find(allowing), std::string::npos) << FindLine(r.output, "Allowing");
  for (const char* bad : {"ACPI Error", "ACPI BIOS Error", "ACPI Warning", "ACPI BIOS Warning",
                          "ACPI Exception", "ACPI: Unable", "Ignoring host bridge windows"}) {
    EXPECT_EQ(r.output.find(bad), std::string::npos) << FindLine(r.output, bad);
  }
}

TEST(LinuxBoot, VmlinuxOneCpu) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  time_t before = time(nullptr);
  RunResult r = Boot(*g, g->kernel, 1);
  time_t after = time(nullptr);
  ExpectBootedAndReset(r);

  EXPECT_NE(r.output.find("smp: Brought up 1 node, 1 CPU"), std::string::npos) << Tail(r.output);

  // "Memory: 103500K/130684K available (...)": the second figure is the RAM the kernel found in
  // crosvm's e820 map: 128 MiB less the legacy hole below 1 MiB.
  std::smatch m;
  std::string mem_line = FindLine(r.output, "Memory: ");
  ASSERT_TRUE(std::regex_search(mem_line, m, std::regex(R"((\d+)K/(\d+)K available)"))) << mem_line;
  long total_k = std::stol(m[2]);
  EXPECT_GT(total_k, 128 * 1024 - 1024) << mem_line;
  EXPECT_LE(total_k, 128 * 1024) << mem_line;

  EXPECT_NE(r.output.find("ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A"),
            std::string::npos)
      << Tail(r.output);

  // The RTC driver reads crosvm's CMOS clock and sets the system time from it: it must be the
  // host's current time.
  std::string rtc = FindLine(r.output, "setting system clock to");
  ASSERT_TRUE(std::regex_search(rtc, m, std::regex(R"(UTC \((\d+)\))"))) << Tail(r.output);
  long rtc_epoch = std::stol(m[1]);
  EXPECT_GE(rtc_epoch, before - 5) << rtc;
  EXPECT_LE(rtc_epoch, after + 5) << rtc;

  // crosvm sets up the CPU as firmware would: no firmware-bug complaints (AMD's HWCR).
  EXPECT_EQ(r.output.find("TSC doesn't count with P0 frequency"), std::string::npos)
      << FindLine(r.output, "P0 frequency");

  // The SMBIOS tables identify the machine.
  EXPECT_NE(r.output.find("DMI: crosvm crosvm"), std::string::npos) << Tail(r.output);

  ExpectAcpi(r, 1);
  // The virtio-rng was found on the root bus the DSDT described (no legacy scan with ACPI).
  EXPECT_NE(r.output.find("pci 0000:00:01.0: [1af4:1044]"), std::string::npos) << Tail(r.output);
}

TEST(LinuxBoot, VmlinuxTwoCpus) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  RunResult r = Boot(*g, g->kernel, 2);
  ExpectBootedAndReset(r);
  EXPECT_NE(r.output.find("smp: Brought up 1 node, 2 CPUs"), std::string::npos) << Tail(r.output);
  ExpectAcpi(r, 2);
}

TEST(LinuxBoot, BzImage) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  RunResult r = Boot(*g, g->bzimage, 1);
  ExpectBootedAndReset(r);
  // crosvm's own log line names the format it detected and the 64-bit entry of the boot
  // protocol (load address 1 MiB + 0x200); the kernel path alone must not satisfy this.
  EXPECT_NE(r.output.find("(bzImage, entry 0x100200)"), std::string::npos)
      << "crosvm did not load it as a bzImage\n"
      << Tail(r.output);
  EXPECT_EQ(r.output.find("(ELF, entry"), std::string::npos) << Tail(r.output);
  // The bzImage entry finds the RSDP through the zero page too.
  EXPECT_NE(r.output.find("ACPI: RSDP 0x00000000000E0000"), std::string::npos) << Tail(r.output);
}

TEST(BadKernel, MissingFileIsAClearError) {
  RunResult r = RunCrosvm({"run", "/nonexistent/vmlinux"}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot open /nonexistent/vmlinux: No such file or directory"),
            std::string::npos)
      << r.output;
}

TEST(BadKernel, NotAKernelIsAClearError) {
  RunResult r = RunCrosvm({"run", CROSVM_SOURCE_DIR "/CMakeLists.txt"}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not a kernel image"), std::string::npos) << r.output;
}

TEST(BadKernel, TruncatedVmlinuxIsRejectedBeforeRunning) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  std::ifstream in(g->kernel, std::ios::binary);
  std::string head(256 * 1024, '\0');
  in.read(head.data(), head.size());
  std::string path = std::string(CROSVM_BUILD_DIR) + "/truncated-vmlinux";
  std::ofstream(path, std::ios::binary).write(head.data(), in.gcount());
  RunResult r = RunCrosvm({"run", path}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Linux version"), std::string::npos) << "the guest must not run";
}

TEST(BadKernel, KernelLargerThanMemoryIsRejected) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  // 8 MiB of RAM cannot hold a kernel linked at 16 MiB.
  RunResult r = RunCrosvm({"run", "-m", "8", g->kernel}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("does not fit in guest RAM"), std::string::npos) << r.output;
}

TEST(BadKernel, UsageErrorsExitWithTwo) {
  RunResult r = RunCrosvm({"run", "--cpus", "0", "x"}, 30);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--cpus: 0 is out of range"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace crosvm::e2e
