#include "disk/tests/test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>

namespace crosvm::disk::testing {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/disk_test.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool HaveQemuTools() {
  return RunCommand("qemu-img --version").exit_code == 0 &&
         RunCommand("qemu-io --version").exit_code == 0;
}

std::string QemuCheck(const std::string& path) {
  CommandResult r = RunCommand("qemu-img check -f qcow2 '" + path + "'");
  if (r.exit_code == 0 && r.output.find("No errors were found") != std::string::npos) return "";
  return "qemu-img check exit " + std::to_string(r.exit_code) + ":\n" + r.output;
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::vector<uint8_t> bytes;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  uint8_t buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) bytes.insert(bytes.end(), buf, buf + n);
  close(fd);
  return bytes;
}

void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path);
  if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    close(fd);
    throw std::runtime_error("write " + path);
  }
  close(fd);
}

void PatchBe(const std::string& path, uint64_t offset, uint64_t value, int bytes) {
  uint8_t buf[8];
  for (int i = bytes - 1; i >= 0; --i) {
    buf[i] = static_cast<uint8_t>(value);
    value >>= 8;
  }
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  if (pwrite(fd, buf, bytes, static_cast<off_t>(offset)) != bytes) {
    close(fd);
    throw std::runtime_error("pwrite " + path);
  }
  close(fd);
}

uint64_t ReadBe(const std::string& path, uint64_t offset, int bytes) {
  uint8_t buf[8] = {};
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  if (pread(fd, buf, bytes, static_cast<off_t>(offset)) != bytes) {
    close(fd);
    throw std::runtime_error("pread " + path);
  }
  close(fd);
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | buf[i];
  return v;
}

std::vector<uint8_t> Pattern(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j)
      bytes[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return bytes;
}

}  // namespace crosvm::disk::testing

#include "disk/qcow.h"

namespace crosvm::disk::testing {

std::vector<uint8_t> QcowAttackSector(const std::string& backing_file, uint64_t virtual_size) {
  QcowHeader h;
  h.version = 3;
  h.cluster_bits = 16;
  h.size = virtual_size;
  h.l1_size = static_cast<uint32_t>((virtual_size + (1ULL << 29) - 1) >> 29);
  h.l1_table_offset = 3 << 16;
  h.refcount_table_offset = 1 << 16;
  h.refcount_table_clusters = 1;
  h.header_length = 112;
  h.backing_file_offset = 256;
  h.backing_file_size = static_cast<uint32_t>(backing_file.size());
  std::vector<uint8_t> sector = h.Encode();
  sector.resize(512, 0);
  std::copy(backing_file.begin(), backing_file.end(), sector.begin() + 256);
  return sector;
}

}  // namespace crosvm::disk::testing
