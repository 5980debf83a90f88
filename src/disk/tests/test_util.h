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
