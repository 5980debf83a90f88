// `crosvm run` and disk images whose header a guest may have written: a raw image whose sector 0
// holds a qcow2 header naming a host file is refused before anything boots, with one line that
// says why and which option allows it; the same image with format=raw is just bytes and boots.
// The kernel is the `hello` test guest (about a second); the refusal needs no guest at all.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace crosvm::e2e {
namespace {

void StoreBe(std::string& b, size_t at, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    b[at + i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

// A 1 MiB raw image as a guest would leave it after writing a qcow2 v3 header into sector 0:
// 64 KiB clusters, refcount table at cluster 1 and L1 table at cluster 3 (all zeros, so every
// read would come from the backing file), backing file `backing` named at byte 256.
std::string AttackImage(const std::string& backing) {
  std::string b(1 << 20, '\0');
  StoreBe(b, 0, 0x514649fb, 4);       // magic
  StoreBe(b, 4, 3, 4);                // version
  StoreBe(b, 8, 256, 8);              // backing_file_offset
  StoreBe(b, 16, backing.size(), 4);  // backing_file_size
  StoreBe(b, 20, 16, 4);              // cluster_bits
  StoreBe(b, 24, 1 << 20, 8);         // size
  StoreBe(b, 36, 1, 4);               // l1_size
  StoreBe(b, 40, 3 << 16, 8);         // l1_table_offset
  StoreBe(b, 48, 1 << 16, 8);         // refcount_table_offset
  StoreBe(b, 56, 1, 4);               // refcount_table_clusters
  StoreBe(b, 96, 4, 4);               // refcount_order
  StoreBe(b, 100, 112, 4);            // header_length
  b.replace(256, backing.size(), backing);
  return b;
}

std::string Hello() {
  return std::string(CROSVM_BUILD_DIR) + "/guest/testguests/hello.elf";
}

TEST(DiskSecurity, ProbedImageNamingHostFileIsRefusedBeforeBoot) {
  ASSERT_EQ(access(Hello().c_str(), R_OK), 0) << Hello() << " missing: build the testguests target";
  TempDir dir("e2e-disk");
  ASSERT_TRUE(dir.ok());
  const std::string image = dir.File("attack.img");
  std::ofstream(image, std::ios::binary) << AttackImage("/etc/shadow");

  RunResult r = RunCrosvm({"run", "--disable-sandbox", "--rwdisk", image, Hello()}, 60);
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_EQ(r.exit_code, 1) << Tail(r.output);
  const std::string expected =
      "crosvm run: disk vda: " + image +
      ": probed as qcow2 with backing file /etc/shadow; a probed image never follows a backing "
      "file: pass format=qcow2 (and backing=DIR) if you trust this image";
  EXPECT_EQ(FindLine(r.output, "probed as qcow2"), expected) << Tail(r.output);
  EXPECT_EQ(r.output.find("TESTGUEST"), std::string::npos) << "the guest ran:\n" << Tail(r.output);

  // Read-only, as -d: refused the same way.
  r = RunCrosvm({"run", "--disable-sandbox", "-d", image, Hello()}, 60);
  EXPECT_EQ(r.exit_code, 1) << Tail(r.output);
  EXPECT_NE(FindLine(r.output, "never follows a backing file"), "") << Tail(r.output);

  // format=qcow2 trusts the image but not a backing file outside its directory.
  r = RunCrosvm({"run", "--disable-sandbox", "--rwdisk", image + ",format=qcow2", Hello()}, 60);
  EXPECT_EQ(r.exit_code, 1) << Tail(r.output);
  EXPECT_NE(FindLine(r.output, "/etc/shadow is outside the directory allowed for backing files"),
            "")
      << Tail(r.output);
  EXPECT_EQ(r.output.find("TESTGUEST"), std::string::npos) << Tail(r.output);

  // format=raw: the header is only bytes; the VM starts.
  r = RunCrosvm({"run", "--disable-sandbox", "--rwdisk", image + ",format=raw", Hello()}, 120);
  ASSERT_FALSE(r.timed_out) << Tail(r.output);
  EXPECT_EQ(r.exit_code, 0) << Tail(r.output);
  EXPECT_NE(r.output.find("TESTGUEST hello"), std::string::npos) << Tail(r.output);
  EXPECT_NE(r.output.find("(raw, 1048576 bytes, read-write)"), std::string::npos) << Tail(r.output);
}

}  // namespace
}  // namespace crosvm::e2e
