// Helpers for the disk tests: temporary directories, files, and running qemu-img.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace crosvm::disk::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh.
CommandResult RunCommand(const std::string& command);

// Whether qemu-img and qemu-io run. Tests that need them fail (they are declared dependencies).
bool HaveQemuTools();

// `qemu-img check` with no errors and no leaks; otherwise the output, for the failure message.
std::string QemuCheck(const std::string& path);

std::vector<uint8_t> ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes);
// Overwrites `bytes` big-endian bytes of `value` at `offset` in the file.
void PatchBe(const std::string& path, uint64_t offset, uint64_t value, int bytes);
uint64_t ReadBe(const std::string& path, uint64_t offset, int bytes);

// Deterministic pseudo-random bytes.
std::vector<uint8_t> Pattern(size_t size, uint64_t seed);

}  // namespace crosvm::disk::testing

namespace crosvm::disk::testing {

// 512 bytes a guest could write to sector 0 of a raw disk of at least 256 KiB so that it probes as
// qcow2 (64 KiB clusters, empty L1 and refcount tables in the next clusters, all zeros) naming
// `backing_file` as its backing file: every read of that "image" would then come from that file.
std::vector<uint8_t> QcowAttackSector(const std::string& backing_file, uint64_t virtual_size);

}  // namespace crosvm::disk::testing
