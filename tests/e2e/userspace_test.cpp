// Tier 4: the project's guest kernel with a busybox user space on hardware KVM. `make test` runs
// these inside the nested test host L1 (tests/nested/run-in-l1), where /dev/kvm is kvm_amd; on
// a host whose KVM emulates every instruction (kvm_pvm) guest user space cannot run, and they
// say so. Each test runs one script through the test init (guest/userspace/test-init.sh) and
// checks what user space reports, and then what the host finds on the disks afterwards.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "harness.h"

namespace crosvm::e2e {
namespace {

namespace fs = std::filesystem;

constexpr int kTimeoutS = 180;
const char* const kTestInitrd = CROSVM_BUILD_DIR "/guest/userspace/initramfs-test.cpio";

struct GuestRun {
  RunResult run;
  std::map<std::string, std::string> results;  // the CROSVM-TEST: key=value lines
  int status = -1;                             // the script's exit status
};

#define REQUIRE_USER_SPACE(kernel)                                                           \
  std::string kernel;                                                                        \
  do {                                                                                       \
    std::string kind_ = HostKvmKind();                                                       \
    if (kind_ != "hardware") {                                                               \
      GTEST_SKIP() << "host KVM is '" << kind_                                               \
                   << "': guest user space cannot run on it (see shared/HOST-KVM.md); make " \
                      "test runs this tier inside the nested host (tests/nested/run-in-l1)"; \
    }                                                                                        \
    auto k_ = GuestVar("CROSVM_GUEST_KERNEL");                                               \
    ASSERT_TRUE(k_) << "CROSVM_GUEST_KERNEL is not set (make test sets it)";                 \
    ASSERT_TRUE(fs::exists(kTestInitrd)) << kTestInitrd << " is missing: build the project"; \
    kernel = *k_;                                                                            \
  } while (0)

struct Options {
  std::vector<std::string> crosvm_args;  // before the kernel
  std::string exit_mode = "reboot";
  std::vector<Interaction> input;
  int mem_mib = 256;
  int cpus = 1;
};

GuestRun RunScript(const std::string& kernel, const std::string& script, const Options& o = {}) {
  std::vector<std::string> argv = {CROSVM_BINARY, "run",
                                   "-m",          std::to_string(o.mem_mib),
                                   "-c",          std::to_string(o.cpus),
                                   "-i",          kTestInitrd,
                                   "-p",          "crosvm_test_b64=" + Base64(script),
                                   "-p",          "crosvm_test_exit=" + o.exit_mode};
  argv.insert(argv.end(), o.crosvm_args.begin(), o.crosvm_args.end());
  argv.push_back(kernel);
  GuestRun g;
  g.run = RunInteractive(argv, kTimeoutS, o.input);
  // Inside the nested host L1, TCG's emulation of nested SVM now and then makes an L2 guest
  // triple-fault during its kernel boot (README, "What L1 is not"; about 1 boot in 20 before
  // vGIF and PKU were turned off, rarer since). Such a boot, before the guest's user space
  // printed anything, is run once more and the retry is reported; a second one fails the test.
  // Nowhere else is a triple fault retried.
  const bool in_l1 = std::getenv("CROSVM_IN_L1") != nullptr;
  if (in_l1 && g.run.output.find("triple fault (KVM_EXIT_SHUTDOWN)") != std::string::npos &&
      g.run.output.find("CROSVM-TEST") == std::string::npos) {
    std::string last_kernel_line;
    std::istringstream out(g.run.output);
    for (std::string l; std::getline(out, l);) {
      if (l.rfind("[ ", 0) == 0 && l.find("] ") != std::string::npos) last_kernel_line = l;
    }
    std::printf(
        "[ userspace] RETRIED: the guest triple-faulted during its kernel boot in L1 "
        "(TCG's nested SVM); its last kernel line: %s\n",
        last_kernel_line.substr(0, 160).c_str());
    g.run = RunInteractive(argv, kTimeoutS, o.input);
  }
  std::istringstream lines(g.run.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("CROSVM-TEST: ", 0) == 0) {
      std::string kv = line.substr(13);
      size_t eq = kv.find('=');
      if (eq != std::string::npos) g.results[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (line.rfind("CROSVM-TEST-END status=", 0) == 0) {
      g.status = std::atoi(line.c_str() + 23);
    }
  }
  std::printf("[ userspace] %.1f s wall from crosvm start to exit\n", g.run.seconds);
  return g;
}

// The script ran to its end with status 0 and the VM ended through the guest's own reset.
void ExpectCleanRun(const GuestRun& g) {
  ASSERT_FALSE(g.run.stuck) << "crosvm did not exit within " << kTimeoutS
                            << " s, nor 20 s after SIGKILL: it is stuck in the host kernel\n"
                            << Tail(g.run.output);
  ASSERT_FALSE(g.run.timed_out) << "crosvm did not exit within " << kTimeoutS << " s\n"
                                << Tail(g.run.output);
  EXPECT_EQ(g.status, 0) << Tail(g.run.output);
  EXPECT_EQ(g.run.exit_code, 0) << Tail(g.run.output);
}

std::string Result(const GuestRun& g, const std::string& key) {
  auto it = g.results.find(key);
  return it == g.results.end() ? "<missing " + key + ">" : it->second;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// An ext4 image of `mib` MiB holding the files of directory `content`.
void MakeExt4(const std::string& image, const std::string& content, int mib) {
  RunResult r =
      RunProcess({"mkfs.ext4", "-q", "-F", "-d", content, image, std::to_string(mib) + "M"}, 60);
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

// The file `path` inside the ext4 image, read by debugfs on the host.
std::string Ext4File(const TempDir& dir, const std::string& image, const std::string& path) {
  std::string out = dir.File("debugfs-out");
  fs::remove(out);
  RunResult r = RunProcess({"debugfs", "-R", "dump " + path + " " + out, image}, 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return ReadFile(out);
}

class Vcpus : public ::testing::TestWithParam<int> {};

TEST_P(Vcpus, NprocSeesEveryVcpu) {
  REQUIRE_USER_SPACE(kernel);
  Options o;
  o.cpus = GetParam();
  GuestRun g = RunScript(
      kernel, "result nproc $(nproc)\nresult online $(cat /sys/devices/system/cpu/online)\n", o);
  ExpectCleanRun(g);
  EXPECT_EQ(Result(g, "nproc"), std::to_string(GetParam())) << Tail(g.run.output);
  EXPECT_EQ(Result(g, "online"), GetParam() == 1 ? "0" : "0-" + std::to_string(GetParam() - 1));
  EXPECT_NE(g.run.output.find("through the i8042 keyboard controller"), std::string::npos)
      << Tail(g.run.output);
}

// One vCPU only, for now: in L1 (2 TCG vCPUs), SMP guests (2 and 4 vCPUs) sometimes ended in a
// triple fault on vCPU 1 mid-boot, not understood yet (README, "What L1 is not"); SMP boots are
// tested on kvm_pvm (LinuxBoot.VmlinuxTwoCpus) until then.
INSTANTIATE_TEST_SUITE_P(UserSpace, Vcpus, ::testing::Values(1, 2, 4));

class Memory : public ::testing::TestWithParam<int> {};

TEST_P(Memory, FreeSeesGuestRam) {
  REQUIRE_USER_SPACE(kernel);
  Options o;
  o.mem_mib = GetParam();
  GuestRun g = RunScript(kernel, "result total_kib $(free | awk '/^Mem:/ { print $2 }')\n", o);
  ExpectCleanRun(g);
  long kib = std::atol(Result(g, "total_kib").c_str());
  // The kernel keeps its own image and early reservations out of the total.
  EXPECT_LE(kib, GetParam() * 1024L) << Tail(g.run.output);
  EXPECT_GE(kib, GetParam() * 1024L * 8 / 10) << Tail(g.run.output);
}

INSTANTIATE_TEST_SUITE_P(UserSpace, Memory, ::testing::Values(128, 512));

TEST(UserSpace, ReadOnlyRootRefusesWrites) {
  REQUIRE_USER_SPACE(kernel);
  TempDir dir("e2e-userspace");
  ASSERT_TRUE(dir.ok());
  fs::create_directory(dir.File("content"));
  WriteFile(dir.File("content/hello.txt"), "hello from the host\n");
  MakeExt4(dir.File("root.img"), dir.File("content"), 16);
  Options o;
  o.crosvm_args = {"-r", dir.File("root.img")};
  GuestRun g = RunScript(kernel,
                         "mount -t ext4 /dev/vda /mnt\n"
                         "result mode $(awk '$2 == \"/mnt\" { split($4, a, \",\"); print a[1] }' "
                         "/proc/mounts)\n"
                         "result hello \"$(cat /mnt/hello.txt)\"\n"
                         "touch /mnt/new 2>/tmp/err; result touch \"$(cat /tmp/err)\"\n"
                         "result ro_sysfs $(cat /sys/block/vda/ro)\n"
                         "blkcheck rdonly /dev/vda\n",
                         o);
  ExpectCleanRun(g);
  EXPECT_EQ(Result(g, "mode"), "ro") << Tail(g.run.output);
  EXPECT_EQ(Result(g, "hello"), "hello from the host");
  EXPECT_NE(Result(g, "touch").find("Read-only file system"), std::string::npos)
      << Result(g, "touch");
  EXPECT_EQ(Result(g, "ro_sysfs"), "1");
  EXPECT_EQ(Result(g, "blkcheck").rfind("rdonly /dev/vda", 0), 0u) << Result(g, "blkcheck");
  // The kernel was told about the root disk too (crosvm adds root=/dev/vda ro).
  EXPECT_NE(g.run.output.find("root=/dev/vda ro"), std::string::npos);
}

// The guest writes files on an ext4 disk and a pattern on a bare one, fsyncs, and the host checks
// both after crosvm exits. `qcow2` converts the ext4 disk to qcow2 first.
void WritableDiskRoundTrip(bool qcow2) {
  REQUIRE_USER_SPACE(kernel);
  TempDir dir("e2e-userspace");
  ASSERT_TRUE(dir.ok());
  fs::create_directory(dir.File("content"));
  WriteFile(dir.File("content/old.txt"), "written by the host\n");
  MakeExt4(dir.File("data.img"), dir.File("content"), 32);
  std::string disk = dir.File("data.img");
  if (qcow2) {
    disk = dir.File("data.qcow2");
    RunResult c =
        RunProcess({"qemu-img", "convert", "-O", "qcow2", dir.File("data.img"), disk}, 60);
    ASSERT_EQ(c.exit_code, 0) << c.output;
  }
  {
    std::ofstream bare(dir.File("bare.img"), std::ios::binary);
    bare.seekp((8 << 20) - 1);
    bare.put('\0');
  }
  Options o;
  o.crosvm_args = {"--rwdisk", disk, "--rwdisk", dir.File("bare.img")};
  GuestRun g = RunScript(kernel,
                         "mount -t ext4 /dev/vda /mnt || exit 1\n"
                         "result old \"$(cat /mnt/old.txt)\"\n"
                         "echo 'written by the guest' > /mnt/new.txt\n"
                         "dd if=/dev/urandom of=/mnt/big bs=64k count=64 conv=fsync 2>/dev/null\n"
                         "sync\n"
                         "result big_sha $(sha256sum /mnt/big | cut -d' ' -f1)\n"
                         "umount /mnt || exit 2\n"
                         "blkcheck write /dev/vdb 1048576 2097152 77 || exit 3\n",
                         o);
  ExpectCleanRun(g);
  EXPECT_EQ(Result(g, "old"), "written by the host") << Tail(g.run.output);
  EXPECT_EQ(Result(g, "blkcheck").rfind("ok write /dev/vdb", 0), 0u) << Result(g, "blkcheck");

  std::string raw = dir.File("data.img");
  if (qcow2) {
    RunResult check = RunProcess({"qemu-img", "check", disk}, 60);
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_NE(check.output.find("No errors were found"), std::string::npos) << check.output;
    raw = dir.File("back.raw");
    RunResult c = RunProcess({"qemu-img", "convert", "-O", "raw", disk, raw}, 60);
    ASSERT_EQ(c.exit_code, 0) << c.output;
  }
  RunResult fsck = RunProcess({"e2fsck", "-fn", raw}, 60);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
  EXPECT_EQ(Ext4File(dir, raw, "/new.txt"), "written by the guest\n");
  std::string big = dir.File("big");
  RunProcess({"debugfs", "-R", "dump /big " + big, raw}, 60);
  RunResult sha = RunProcess({"sha256sum", big}, 30);
  EXPECT_EQ(sha.output.substr(0, 64), Result(g, "big_sha"));
  // The bare disk's pattern, recomputed here the way blkcheck makes it.
  std::string bare = ReadFile(dir.File("bare.img"));
  ASSERT_EQ(bare.size(), 8u << 20);
  bool same = true;
  for (uint64_t off = 1048576; off < 1048576 + 2097152 && same; off += 8) {
    uint64_t s = 77 ^ (off / 8 + 1);
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    uint64_t v = s * 2685821657736338717ull;
    same = std::memcmp(&v, bare.data() + off, 8) == 0;
  }
  EXPECT_TRUE(same) << "the host does not find the guest's pattern on bare.img";
  EXPECT_EQ(bare.find_first_not_of('\0'), 1048576u) << "bytes before the pattern changed";
}

TEST(UserSpace, RwDiskRawFilesReachTheHost) {
  WritableDiskRoundTrip(false);
}
TEST(UserSpace, RwDiskQcow2FilesReachTheHost) {
  WritableDiskRoundTrip(true);
}

TEST(UserSpace, HwrngGivesRandomBytes) {
  REQUIRE_USER_SPACE(kernel);
  GuestRun g = RunScript(kernel,
                         "result current $(cat /sys/class/misc/hw_random/rng_current)\n"
                         "dd if=/dev/hwrng of=/tmp/r bs=512 count=2 2>/dev/null\n"
                         "result bytes $(wc -c < /tmp/r)\n"
                         "result distinct $(od -An -v -tx1 /tmp/r | tr ' ' '\\n' | grep . | "
                         "sort -u | wc -l)\n");
  ExpectCleanRun(g);
  EXPECT_EQ(Result(g, "current").rfind("virtio_rng", 0), 0u) << Tail(g.run.output);
  EXPECT_EQ(Result(g, "bytes"), "1024");
  // 1024 random bytes show nearly all 256 values; a zero-filled or constant buffer shows 1.
  EXPECT_GT(std::atoi(Result(g, "distinct").c_str()), 200) << Result(g, "distinct");
}

TEST(UserSpace, SerialConsoleBothWays) {
  REQUIRE_USER_SPACE(kernel);
  Options o;
  o.input = {{"CROSVM-TEST: ready=yes", "echo-from-host 4242\n"}};
  GuestRun g = RunScript(kernel, "result ready yes\nread -r line\nresult got \"$line\"\n", o);
  ExpectCleanRun(g);
  EXPECT_EQ(Result(g, "got"), "echo-from-host 4242") << Tail(g.run.output);
}

TEST(UserSpace, PowerOffEndsCrosvm) {
  REQUIRE_USER_SPACE(kernel);
  Options o;
  o.exit_mode = "poweroff";
  GuestRun g = RunScript(kernel, "result before poweroff\n", o);
  ExpectCleanRun(g);
  EXPECT_NE(g.run.output.find("the guest powered off"), std::string::npos) << Tail(g.run.output);
}

}  // namespace
}  // namespace crosvm::e2e
