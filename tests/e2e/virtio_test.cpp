// End-to-end tests of PCI, the virtio PCI transport, virtio-blk and virtio-rng on real KVM:
//  - the freestanding test guests (guest/testguests/) with their polling virtio-pci driver,
//    about a second each;
//  - two boots of the project's Linux guest kernel (about 30-40 s each on an emulating host),
//    which check between them: the PCI bus found through configuration mechanism #1, every
//    device probed, MSI-X used, an ext4 root mounted from a raw image (read-only, -r) and from
//    a qcow2 image (read-write, --rwdisk, written through crosvm's qcow2 layer), a second disk
//    with the right size, and virtio-rng registered with the kernel's hw_random core.
// The boots run without an initramfs: the kernel mounts the root disk and, finding no init on
// it, panics; panic=-1 reboots through the i8042 and crosvm exits 0.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "harness.h"

namespace crosvm::e2e {
namespace {

constexpr int kBootTimeoutS = 600;

std::string GuestPath(const std::string& name) {
  return std::string(CROSVM_BUILD_DIR) + "/guest/testguests/" + name + ".elf";
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary) << contents;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A raw disk image of `size` bytes whose first sector starts with `text`.
std::string MakeTextDisk(const TempDir& dir, const std::string& text, size_t size) {
  std::string path = dir.File("text.img");
  std::string bytes = text;
  bytes.resize(size, '\0');
  WriteFile(path, bytes);
  return path;
}

// The first of the candidates that runs (mkfs.ext4 lives in /sbin, which is not always on PATH).
RunResult RunTool(const std::vector<std::string>& candidates, std::vector<std::string> args) {
  RunResult r;
  for (const auto& tool : candidates) {
    std::vector<std::string> argv = {tool};
    argv.insert(argv.end(), args.begin(), args.end());
    r = RunProcess(argv, 120);
    if (r.output.rfind("cannot start", 0) != 0) return r;
  }
  return r;
}

// A 64 MiB ext4 image made with `mkfs.ext4 -d` from a small directory tree.
std::string MakeExt4Root(const TempDir& dir) {
  std::string tree = dir.File("rootfs");
  std::filesystem::create_directories(tree + "/etc");
  std::filesystem::create_directories(tree + "/dev");
  WriteFile(tree + "/etc/motd", "hello from a crosvm virtio-blk root disk\n");
  std::string image = dir.File("root.img");
  RunResult r = RunTool({"mkfs.ext4", "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"},
                        {"-q", "-F", "-L", "crosvmroot", "-d", tree, image, "64M"});
  EXPECT_EQ(r.exit_code, 0) << "mkfs.ext4 (package e2fsprogs, see scripts/deps.sh): " << r.output;
  return image;
}

struct Guest {
  std::string kernel, params;
};

std::optional<Guest> LoadGuest() {
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  auto params = GuestVar("CROSVM_GUEST_PARAMS");
  if (!kernel || !params) {
    ADD_FAILURE() << "CROSVM_GUEST_KERNEL/PARAMS are not set: run the tests with `make test`, or "
                     "export the KERNEL= and PARAMS= lines that `make guest` prints with a "
                     "CROSVM_GUEST_ prefix";
    return std::nullopt;
  }
  return Guest{*kernel, *params};
}

bool Has(const std::string& output, const std::string& needle) {
  return output.find(needle) != std::string::npos;
}

// The boot ran to the missing init and ended through the guest's own reset.
void ExpectRootMountedAndReset(const RunResult& r) {
  ASSERT_FALSE(r.timed_out) << "crosvm did not exit within " << kBootTimeoutS << " s\n"
                            << Tail(r.output);
  EXPECT_TRUE(Has(r.output, "No working init found")) << Tail(r.output);
  EXPECT_TRUE(Has(r.output, "through the i8042 keyboard controller")) << Tail(r.output);
  EXPECT_EQ(r.exit_code, 0) << Tail(r.output);
  std::printf("[ boot     ] %.1f s wall from crosvm start to exit\n", r.seconds);
}

// --- Test guests ------------------------------------------------------------------------------

TEST(VirtioTestGuest, RngDeliversEntropy) {
  RunResult r = RunCrosvm({"run", "--disable-sandbox", GuestPath("virtio_rng")}, 120);
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_TRUE(Has(r.output, "virtio: type 4 device 1044 at 00:01.0")) << r.output;
  EXPECT_TRUE(Has(r.output, "TESTGUEST virtio_rng: 64 bytes:")) << r.output;
  EXPECT_TRUE(Has(r.output, "TESTGUEST EXIT 0")) << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // crosvm's own account, logged when the device is torn down.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.output, m, std::regex(R"(virtio-rng: served (\d+) entropy requests, (\d+) bytes)")))
      << r.output;
  EXPECT_GE(std::stoul(m[2]), 64u);
}

TEST(VirtioTestGuest, BlkReadsSectorZero) {
  TempDir dir("e2e-virtio");
  ASSERT_TRUE(dir.ok());
  std::string disk = MakeTextDisk(dir, "CROSVM E2E DISK: sector zero", 1 << 20);
  RunResult r =
      RunCrosvm({"run", "--disable-sandbox", "-d", disk, GuestPath("virtio_blk_read")}, 120);
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_TRUE(Has(r.output, "virtio: type 2 device 1042 at 00:01.0")) << r.output;
  EXPECT_TRUE(Has(r.output, "TESTGUEST virtio_blk_read: capacity 2048 sectors")) << r.output;
  // One chain: header, 512-byte buffer, status; the device wrote 512 bytes and the status.
  EXPECT_TRUE(Has(r.output, "TESTGUEST virtio_blk_read: used len 513 status 0")) << r.output;
  EXPECT_TRUE(Has(r.output, "|CROSVM E2E DISK:|")) << r.output;
  EXPECT_TRUE(Has(r.output, "| sector zero....|")) << r.output;
  EXPECT_TRUE(Has(r.output, "TESTGUEST EXIT 0")) << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(VirtioTestGuest, PciScanSeesHostBridgeDisksRngAndBalloon) {
  TempDir dir("e2e-virtio");
  ASSERT_TRUE(dir.ok());
  std::string disk = MakeTextDisk(dir, "x", 1 << 20);
  RunResult r =
      RunCrosvm({"run", "--disable-sandbox", "--rwdisk", disk, GuestPath("pciscan")}, 120);
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_TRUE(Has(r.output, "pci: config mechanism #1 at 0xcf8: present")) << r.output;
  EXPECT_TRUE(Has(r.output, "pci 00:00.0 1b36:0008 class 06.00.00")) << r.output;
  EXPECT_TRUE(Has(r.output, "pci 00:01.0 1af4:1042 class 01.80.00 rev 01")) << r.output;
  EXPECT_TRUE(Has(r.output, "pci 00:02.0 1af4:1044 class ff.00.00 rev 01")) << r.output;
  // The balloon, always there (as in the seed's crosvm).
  EXPECT_TRUE(Has(r.output, "pci 00:03.0 1af4:1045 class ff.00.00 rev 01")) << r.output;
  // BARs in the 32-bit MMIO window, sized by the guest (all-ones write, read back).
  EXPECT_TRUE(Has(r.output, "BAR0 mem64 addr 0xd0000000 size 0x8000")) << r.output;
  EXPECT_TRUE(Has(r.output, "BAR0 mem64 addr 0xd0008000 size 0x8000")) << r.output;
  // Five virtio vendor capabilities and MSI-X.
  EXPECT_TRUE(Has(r.output, "caps: 09@40 09@50 09@64 09@74 09@84 11@98")) << r.output;
  EXPECT_TRUE(Has(r.output, "TESTGUEST pciscan: 4 PCI function(s)")) << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// --- Linux ------------------------------------------------------------------------------------

// Boot 1: raw ext4 root with -r (read-only), a second read-only disk, and the virtio-rng.
TEST(VirtioLinux, RawRootSecondDiskAndRng) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-virtio");
  ASSERT_TRUE(dir.ok());
  std::string root = MakeExt4Root(dir);
  std::string before = ReadFile(root);
  std::string second = dir.File("second.img");
  WriteFile(second, std::string(3 << 20, '\0'));

  RunResult r = RunCrosvm(
      {"run", "-m", "128", "-r", root, "-d", second, "-p", g->params, g->kernel}, kBootTimeoutS);
  ExpectRootMountedAndReset(r);
  const std::string& out = r.output;

  // crosvm put root= on the command line for the -r disk, the first one: vda.
  EXPECT_TRUE(Has(out, "root=/dev/vda ro")) << Tail(out);
  // The kernel found the bus with its default probing and saw every function.
  EXPECT_TRUE(Has(out, "PCI: Using configuration type 1 for base access")) << Tail(out);
  EXPECT_TRUE(Has(out, "pci 0000:00:00.0: [1b36:0008] type 00 class 0x060000")) << Tail(out);
  EXPECT_TRUE(Has(out, "pci 0000:00:01.0: [1af4:1042] type 00 class 0x018000")) << Tail(out);
  EXPECT_TRUE(Has(out, "pci 0000:00:02.0: [1af4:1042] type 00 class 0x018000")) << Tail(out);
  EXPECT_TRUE(Has(out, "pci 0000:00:03.0: [1af4:1044] type 00 class 0xff0000")) << Tail(out);
  for (const char* dev : {"00:01.0", "00:02.0", "00:03.0"}) {
    EXPECT_TRUE(Has(out, std::string("virtio-pci 0000:") + dev + ": enabling device")) << dev;
  }
  // INTx routing comes from the DSDT's _PRT (with ACPI the MP table is not used for it; the
  // kernel warns "no GSI" for a pin _PRT does not route), and each driver then switched to
  // MSI-X.
  EXPECT_TRUE(Has(out, "PCI: Using ACPI for IRQ routing")) << Tail(out);
  EXPECT_FALSE(Has(out, "no GSI")) << Tail(out);
  EXPECT_FALSE(Has(out, "failed to register GSI")) << Tail(out);
  for (const char* dev : {"virtio-blk vda", "virtio-blk vdb", "virtio-rng"}) {
    EXPECT_TRUE(Has(out, std::string(dev) + ": the driver enabled MSI-X")) << dev;
  }
  // The disks: sizes as the driver read them from the device configuration.
  EXPECT_TRUE(
      Has(out, "virtio_blk virtio0: [vda] 131072 512-byte logical blocks (67.1 MB/64.0 MiB)"))
      << Tail(out);
  EXPECT_TRUE(Has(out, "virtio_blk virtio1: [vdb] 6144 512-byte logical blocks (3.15 MB/3.00 MiB)"))
      << Tail(out);
  // The root file system came through virtio-blk.
  EXPECT_TRUE(Has(out, "EXT4-fs (vda): mounted filesystem")) << Tail(out);
  EXPECT_TRUE(Has(out, "VFS: Mounted root (ext4 filesystem) readonly")) << Tail(out);

  // virtio-rng registration with the hw_random core. 6.1 logs nothing when an hwrng
  // registers, so this is shown by two effects that only a registered virtio-rng produces:
  //  1. The device serves more than one request. The driver's probe queues exactly one
  //     buffer (request_entropy in probe_common); every further request is queued from
  //     virtio_read(), which only the hw_random core calls: at registration
  //     (add_early_randomness) and from its "hwrng" fill thread.
  //  2. "random: crng init done": virtio-rng registers with quality 1000, so the hwrng thread
  //     credits what it reads to the input pool and the CRNG becomes ready within a second.
  //     Nothing else in this guest credits entropy that fast: RDRAND/RDSEED are hidden by
  //     clearcpuid, there is no bootloader seed, and interrupt timing credits about one bit
  //     per second (256 are needed) while a boot lasts 30 s.
  EXPECT_TRUE(Has(out, "random: crng init done")) << Tail(out);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m, std::regex(R"(virtio-rng: served (\d+) entropy requests, (\d+) bytes)")))
      << Tail(out);
  EXPECT_GE(std::stoul(m[1]), 2u) << m[0];

  // Read-only means read-only.
  EXPECT_TRUE(ReadFile(root) == before) << "the -r image was modified";
}

// Boot 2: the same file system converted to qcow2, as a writable disk with root=/dev/vda rw.
// Command-line behaviour that needs no boot.
TEST(VirtioCli, MissingDiskIsAClearErrorBeforeTheVmStarts) {
  RunResult r = RunCrosvm({"run", "-r", "/nonexistent/root.img", GuestPath("hello")}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(Has(r.output, "/nonexistent/root.img")) << r.output;
  EXPECT_FALSE(Has(r.output, "TESTGUEST")) << "the guest must not run";
}

TEST(VirtioCli, CreateQcow2) {
  TempDir dir("e2e-virtio");
  ASSERT_TRUE(dir.ok());
  std::string path = dir.File("new.qcow2");
  RunResult r = RunCrosvm({"create_qcow2", path, "10M"}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  RunResult info = RunProcess({"qemu-img", "info", path}, 30);
  EXPECT_TRUE(Has(info.output, "file format: qcow2")) << info.output;
  EXPECT_TRUE(Has(info.output, "virtual size: 10 MiB (10485760 bytes)")) << info.output;
  EXPECT_EQ(RunCrosvm({"create_qcow2", path, "10M"}, 30).exit_code, 1) << "exists already";
  EXPECT_EQ(RunCrosvm({"create_qcow2", dir.File("x"), "10X"}, 30).exit_code, 2);
  EXPECT_EQ(RunCrosvm({"create_qcow2", dir.File("x")}, 30).exit_code, 2);
}

}  // namespace
}  // namespace crosvm::e2e
