// Micro-benchmarks of the in-process paths a vCPU exit goes through once KVM_RUN has returned:
// the bus lookup and dispatch, guest memory access by guest physical address, and the 16550A's
// register writes. They need no KVM, so their figures are the VMM's own cost per operation on
// any host (the emulating KVM of the project's build machines does not enter into them).
//
//   build/bench/crosvm_micro_bench [--benchmark_format=json] [--benchmark_repetitions=N]
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "devices/bus.h"
#include "devices/serial.h"
#include "memory/guest_memory.h"

namespace {

using crosvm::devices::Bus;
using crosvm::devices::BusDevice;
using crosvm::devices::Serial;
using crosvm::memory::GuestMemory;

constexpr uint64_t kMiB = 1 << 20;

// A device that does nothing, so a dispatch benchmark measures the bus alone.
class NullDevice : public BusDevice {
 public:
  std::string DebugName() const override { return "null"; }
  void Read(uint64_t, std::span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    benchmark::DoNotOptimize(offset);
    benchmark::DoNotOptimize(data.data());
  }
};

// The I/O bus crosvm builds for a PC: the legacy devices at their usual ports (one device object
// each, which is what the lookup sees; their behaviour is irrelevant here).
void PopulateIoBus(Bus& bus) {
  struct Range {
    uint64_t base, len;
  };
  constexpr std::array<Range, 8> kRanges = {{{0x3f8, 8},    // COM1
                                             {0x2f8, 8},    // COM2
                                             {0x3e8, 8},    // COM3
                                             {0x2e8, 8},    // COM4
                                             {0x70, 2},     // CMOS
                                             {0x60, 1},     // i8042 data
                                             {0x64, 1},     // i8042 command
                                             {0xcf8, 8}}};  // PCI config
  for (const Range& r : kRanges) {
    auto status = bus.Insert(std::make_shared<NullDevice>(), r.base, r.len);
    if (!status.ok()) std::abort();
  }
}

// A port write that a device handles (COM1's THR offset).
void BM_BusWrite_Handled(benchmark::State& state) {
  Bus bus("io");
  PopulateIoBus(bus);
  const uint8_t byte = 'x';
  for (auto _ : state) {
    bool handled = bus.Write(0x3f8, {&byte, 1});
    benchmark::DoNotOptimize(handled);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BusWrite_Handled);

// A port write nobody handles: the path of the pio_exits test guest's writes to port 0x5e0
// (lookup miss, then the logged-once check).
void BM_BusWrite_Unhandled(benchmark::State& state) {
  Bus bus("io");
  PopulateIoBus(bus);
  const uint8_t byte = 'x';
  bus.Write(0x5e0, {&byte, 1});  // the one-time log line, outside the timed loop
  for (auto _ : state) {
    bool handled = bus.Write(0x5e0, {&byte, 1});
    benchmark::DoNotOptimize(handled);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BusWrite_Unhandled);

// A 4-byte MMIO write nobody handles (the mmio_exits guest's 0xd8000000), on an empty MMIO bus.
void BM_MmioBusWrite_Unhandled(benchmark::State& state) {
  Bus bus("mmio");
  const uint32_t value = 0x12345678;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  bus.Write(0xd8000000, {bytes, 4});
  for (auto _ : state) {
    bool handled = bus.Write(0xd8000000, {bytes, 4});
    benchmark::DoNotOptimize(handled);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MmioBusWrite_Unhandled);

void BM_BusRead_Handled(benchmark::State& state) {
  Bus bus("io");
  PopulateIoBus(bus);
  uint8_t byte = 0;
  for (auto _ : state) {
    bool handled = bus.Read(0x3fd, {&byte, 1});
    benchmark::DoNotOptimize(handled);
    benchmark::DoNotOptimize(byte);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BusRead_Handled);

// Two vCPU threads dispatching on the same bus at once (shared lock, shared_ptr copies).
void BM_BusWrite_Handled_Contended(benchmark::State& state) {
  static Bus* bus = nullptr;
  if (state.thread_index() == 0) {
    bus = new Bus("io");
    PopulateIoBus(*bus);
  }
  const uint8_t byte = 'x';
  for (auto _ : state) {
    bool handled = bus->Write(0x3f8, {&byte, 1});
    benchmark::DoNotOptimize(handled);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete bus;
    bus = nullptr;
  }
}
BENCHMARK(BM_BusWrite_Handled_Contended)->Threads(2)->UseRealTime();

// Guest memory: one 256 MiB region (crosvm's default guest) unless the benchmark says otherwise.
GuestMemory MakeMemory(std::vector<crosvm::memory::MemoryRange> ranges) {
  auto mem = GuestMemory::Create(ranges);
  if (!mem.ok()) std::abort();
  return std::move(*mem);
}

template <typename T>
void BM_GuestMemory_ReadObj(benchmark::State& state) {
  GuestMemory mem = MakeMemory({{0, 256 * kMiB}});
  const uint64_t gpa = 0x100000;
  if (!mem.WriteObj<T>(gpa, T{}).ok()) std::abort();
  for (auto _ : state) {
    auto v = mem.ReadObj<T>(gpa);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(state.iterations() * sizeof(T));
}

template <typename T>
void BM_GuestMemory_WriteObj(benchmark::State& state) {
  GuestMemory mem = MakeMemory({{0, 256 * kMiB}});
  const uint64_t gpa = 0x100000;
  T value{};
  for (auto _ : state) {
    auto status = mem.WriteObj<T>(gpa, value);
    benchmark::DoNotOptimize(status);
  }
  state.SetBytesProcessed(state.iterations() * sizeof(T));
}

// A split virtqueue descriptor: the object a virtio device reads most often.
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

BENCHMARK_TEMPLATE(BM_GuestMemory_ReadObj, uint32_t);
BENCHMARK_TEMPLATE(BM_GuestMemory_ReadObj, VirtqDesc);
BENCHMARK_TEMPLATE(BM_GuestMemory_WriteObj, uint32_t);
BENCHMARK_TEMPLATE(BM_GuestMemory_WriteObj, VirtqDesc);

// The region lookup is a linear scan: a guest with RAM below and above the 32-bit PCI hole
// (two regions) reading from the second one.
void BM_GuestMemory_ReadObj_SecondRegion(benchmark::State& state) {
  GuestMemory mem = MakeMemory({{0, 64 * kMiB}, {4096 * kMiB, 64 * kMiB}});
  const uint64_t gpa = 4096 * kMiB + 0x1000;
  if (!mem.WriteObj<uint64_t>(gpa, 0).ok()) std::abort();
  for (auto _ : state) {
    auto v = mem.ReadObj<uint64_t>(gpa);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(state.iterations() * sizeof(uint64_t));
}
BENCHMARK(BM_GuestMemory_ReadObj_SecondRegion);

// Bulk copies (a 4 KiB block request's data, a 64 KiB one).
void BM_GuestMemory_Read(benchmark::State& state) {
  GuestMemory mem = MakeMemory({{0, 256 * kMiB}});
  std::vector<uint8_t> buf(state.range(0));
  for (auto _ : state) {
    auto status = mem.Read(0x200000, buf);
    benchmark::DoNotOptimize(status);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_GuestMemory_Read)->Arg(4096)->Arg(65536);

// Serial: a THR write with the output discarded (register logic and locking only) and with the
// output going to /dev/null (adds the write(2) every console byte costs), and the LSR read the
// guest's driver polls before each byte.
void BM_Serial_WriteThr_Discarded(benchmark::State& state) {
  Serial serial("com1", -1, nullptr);
  const uint8_t byte = 'x';
  for (auto _ : state) serial.Write(Serial::kData, {&byte, 1});
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Serial_WriteThr_Discarded);

void BM_Serial_WriteThr_DevNull(benchmark::State& state) {
  int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (fd < 0) std::abort();
  {
    Serial serial("com1", fd, nullptr);
    const uint8_t byte = 'x';
    for (auto _ : state) serial.Write(Serial::kData, {&byte, 1});
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Serial_WriteThr_DevNull);

void BM_Serial_ReadLsr(benchmark::State& state) {
  Serial serial("com1", -1, nullptr);
  uint8_t lsr = 0;
  for (auto _ : state) {
    serial.Read(Serial::kLsr, {&lsr, 1});
    benchmark::DoNotOptimize(lsr);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Serial_ReadLsr);

// One console byte as a polled guest driver sends it, through the I/O bus: LSR read, THR write,
// with the interrupt callback counting (as an irqfd write would be issued).
void BM_Serial_ConsoleByteThroughBus(benchmark::State& state) {
  Bus bus("io");
  uint64_t interrupts = 0;
  auto serial = std::make_shared<Serial>("com1", -1, [&interrupts] { ++interrupts; });
  if (!bus.Insert(serial, 0x3f8, 8).ok()) std::abort();
  const uint8_t byte = 'x';
  uint8_t lsr = 0;
  for (auto _ : state) {
    bus.Read(0x3f8 + Serial::kLsr, {&lsr, 1});
    bus.Write(0x3f8 + Serial::kData, {&byte, 1});
    benchmark::DoNotOptimize(lsr);
  }
  benchmark::DoNotOptimize(interrupts);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Serial_ConsoleByteThroughBus);

}  // namespace

BENCHMARK_MAIN();
