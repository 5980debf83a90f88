// Block I/O throughput on an image file in the page cache, without a guest.
//
//   crosvm_disk_bench --backend host|crosvm --file PATH --mode read|write
//                     --bs BYTES --count N [--step BYTES] [--depth D] [--pattern BYTE]
//
// --backend host    pread/pwrite on the file itself: what the host can do, the ceiling for any
//                   VMM's virtio-blk on this file.
// --backend crosvm  crosvm's DiskFile (src/disk, raw or qcow2 detected from the header), the
//                   layer crosvm's virtio-blk device will call for each request.
//
// Request i goes to offset (i * step) mod size, where size is the file size (host) or the
// virtual disk size (crosvm), and step defaults to bs: the same request stream as
// `qemu-img bench -c N -s BS -S STEP -d D` (QEMU 7.2), so the crosvm figures sit next to QEMU's
// own block layer measured by qemu-img. A step that is an odd number of blocks makes a scattered
// ("random") pattern that visits every block. --depth D runs D threads, each with one request in
// flight. Write buffers are filled with --pattern (default 0xa5) so no layer can treat them as
// zeros.
//
// Prints one JSON object on stdout.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifdef CROSVM_BENCH_HAVE_DISK
#include "disk/disk.h"
#endif

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "crosvm_disk_bench: %s\n", msg.c_str());
  std::exit(1);
}

struct Options {
  std::string backend = "host";
  std::string file;
  bool write = false;
  uint64_t bs = 0;
  uint64_t count = 0;
  uint64_t step = 0;
  unsigned depth = 1;
  uint8_t pattern = 0xa5;
};

uint64_t ParseSize(std::string_view text) {
  if (text.empty()) Die("empty number");
  uint64_t mult = 1;
  switch (text.back()) {
    case 'k':
    case 'K':
      mult = 1 << 10;
      break;
    case 'm':
    case 'M':
      mult = 1 << 20;
      break;
    case 'g':
    case 'G':
      mult = 1 << 30;
      break;
    default:
      break;
  }
  if (mult != 1) text.remove_suffix(1);
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (errno != 0 || end == s.c_str() || *end != '\0') Die("bad number '" + s + "'");
  return v * mult;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) Die(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: crosvm_disk_bench --backend host|crosvm --file PATH --mode read|write\n"
          "                         --bs BYTES --count N [--step BYTES] [--depth D] "
          "[--pattern BYTE]\n"
          "Request i goes to offset (i * step) mod size (step defaults to bs), as with\n"
          "`qemu-img bench -c N -s BS -S STEP -d D`; --depth D runs D threads. Sizes take\n"
          "K/M/G suffixes. Prints one JSON object (mb_per_s, iops, seconds, cpu_seconds).\n");
      std::exit(0);
    } else if (arg == "--backend") {
      o.backend = value();
    } else if (arg == "--file") {
      o.file = value();
    } else if (arg == "--mode") {
      std::string_view m = value();
      if (m != "read" && m != "write") Die("--mode is read or write");
      o.write = m == "write";
    } else if (arg == "--bs") {
      o.bs = ParseSize(value());
    } else if (arg == "--count") {
      o.count = ParseSize(value());
    } else if (arg == "--step") {
      o.step = ParseSize(value());
    } else if (arg == "--depth") {
      o.depth = static_cast<unsigned>(ParseSize(value()));
    } else if (arg == "--pattern") {
      o.pattern = static_cast<uint8_t>(ParseSize(value()));
    } else {
      Die("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (o.file.empty() || o.bs == 0 || o.count == 0) Die("--file, --bs and --count are required");
  if (o.depth == 0 || o.depth > 256) Die("--depth must be 1..256");
  if (o.step == 0) o.step = o.bs;
  return o;
}

// One request at a time per thread; must be safe to call from several threads at once.
class Target {
 public:
  virtual ~Target() = default;
  virtual uint64_t size() const = 0;
  virtual void Read(uint64_t offset, uint8_t* buf, size_t len) = 0;
  virtual void Write(uint64_t offset, const uint8_t* buf, size_t len) = 0;
};

class HostFile : public Target {
 public:
  HostFile(const std::string& path, bool writable) {
    fd_ = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd_ < 0) Die("open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) Die("fstat: " + std::string(std::strerror(errno)));
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~HostFile() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  void Read(uint64_t offset, uint8_t* buf, size_t len) override {
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_, buf + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) Die("pread: " + std::string(n < 0 ? std::strerror(errno) : "end of file"));
      done += static_cast<size_t>(n);
    }
  }
  void Write(uint64_t offset, const uint8_t* buf, size_t len) override {
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pwrite(fd_, buf + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) Die("pwrite: " + std::string(std::strerror(errno)));
      done += static_cast<size_t>(n);
    }
  }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

#ifdef CROSVM_BENCH_HAVE_DISK
class CrosvmDisk : public Target {
 public:
  CrosvmDisk(const std::string& path, bool writable) {
    auto disk = crosvm::disk::OpenDisk(path, writable);
    if (!disk.ok()) Die(disk.error().ToString());
    disk_ = std::move(*disk);
  }
  ~CrosvmDisk() override {
    if (disk_ && !disk_->ReadOnly()) {
      auto status = disk_->Flush();
      if (!status.ok()) Die(status.error().ToString());
    }
  }
  uint64_t size() const override { return disk_->VirtualSize(); }
  void Read(uint64_t offset, uint8_t* buf, size_t len) override {
    auto r = disk_->ReadAt(offset, {buf, len});
    if (!r.ok()) Die(r.error().ToString());
  }
  void Write(uint64_t offset, const uint8_t* buf, size_t len) override {
    auto r = disk_->WriteAt(offset, {buf, len});
    if (!r.ok()) Die(r.error().ToString());
  }
  const char* format() const { return crosvm::disk::ImageFormatName(disk_->Format()); }

 private:
  std::unique_ptr<crosvm::disk::DiskFile> disk_;
};
#endif

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);

  std::unique_ptr<Target> target;
  std::string format = "file";
  if (o.backend == "host") {
    target = std::make_unique<HostFile>(o.file, o.write);
  } else if (o.backend == "crosvm") {
#ifdef CROSVM_BENCH_HAVE_DISK
    auto disk = std::make_unique<CrosvmDisk>(o.file, o.write);
    format = disk->format();
    target = std::move(disk);
#else
    Die("built without src/disk: --backend crosvm is not available");
#endif
  } else {
    Die("--backend is host or crosvm");
  }
  const uint64_t size = target->size();
  if (size < o.bs) Die("the image is smaller than one request");

  std::atomic<uint64_t> next{0};
  auto worker = [&] {
    // One aligned buffer per thread (as a guest's buffers would be).
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, o.bs) != 0) Die("out of memory");
    std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(mem), &std::free);
    std::memset(buf.get(), o.pattern, o.bs);
    for (;;) {
      uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= o.count) break;
      // As qemu-img bench: offset wraps modulo the size (all our steps keep requests inside).
      uint64_t offset = static_cast<uint64_t>((static_cast<unsigned __int128>(i) * o.step) % size);
      if (offset + o.bs > size) offset = 0;
      if (o.write) {
        target->Write(offset, buf.get(), o.bs);
      } else {
        target->Read(offset, buf.get(), o.bs);
      }
    }
  };

  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  if (o.depth == 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o.depth; ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
  }
  const auto t1 = std::chrono::steady_clock::now();
  const double cpu = CpuSeconds() - cpu0;
  target.reset();  // crosvm: flush dirty metadata (outside the timed part, as qemu-img bench)

  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  const double bytes = static_cast<double>(o.bs) * static_cast<double>(o.count);
  std::printf(
      "{\"backend\": \"%s\", \"format\": \"%s\", \"mode\": \"%s\", \"bs\": %llu, \"count\": %llu, "
      "\"step\": %llu, \"depth\": %u, \"size\": %llu, \"seconds\": %.6f, \"cpu_seconds\": %.6f, "
      "\"mb_per_s\": %.1f, \"iops\": %.0f}\n",
      o.backend.c_str(), format.c_str(), o.write ? "write" : "read",
      static_cast<unsigned long long>(o.bs), static_cast<unsigned long long>(o.count),
      static_cast<unsigned long long>(o.step), o.depth, static_cast<unsigned long long>(size),
      seconds, cpu, bytes / seconds / 1e6, static_cast<double>(o.count) / seconds);
  return 0;
}
