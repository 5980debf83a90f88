#include "devices/pci/pci_config.h"

#include <algorithm>
#include <bit>
#include <string>

namespace crosvm::devices::pci {
namespace {

// Command bits a guest may change: I/O, memory, bus master, parity, SERR, INTx disable.
constexpr uint16_t kCommandWritable = kCommandIo | kCommandMemory | kCommandMaster |
                                      kCommandParity | kCommandSerr | kCommandIntxDisable;

}  // namespace

PciConfiguration::PciConfiguration(const PciIds& ids) {
  SetWord(kVendorId, ids.vendor);
  SetWord(kDeviceId, ids.device);
  SetByte(kRevision, ids.revision);
  SetByte(kClassProgIf, static_cast<uint8_t>(ids.class_code));
  SetByte(kClassProgIf + 1, static_cast<uint8_t>(ids.class_code >> 8));
  SetByte(kClassProgIf + 2, static_cast<uint8_t>(ids.class_code >> 16));
  SetByte(kHeaderType, 0);  // type 0, single function
  SetWord(kSubsystemVendorId, ids.subsystem_vendor);
  SetWord(kSubsystemId, ids.subsystem_id);
  wmask_[kCommand] = static_cast<uint8_t>(kCommandWritable);
  wmask_[kCommand + 1] = static_cast<uint8_t>(kCommandWritable >> 8);
  wmask_[0x0c] = 0xff;  // cache line size
  wmask_[0x0d] = 0xff;  // latency timer
  wmask_[kInterruptLine] = 0xff;
}

uint16_t PciConfiguration::ReadWord(size_t offset) const {
  if (offset + 2 > kConfigSize) return 0xffff;
  return static_cast<uint16_t>(bytes_[offset] | bytes_[offset + 1] << 8);
}

uint32_t PciConfiguration::ReadDword(size_t offset) const {
  if (offset + 4 > kConfigSize) return 0xffffffff;
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v |= static_cast<uint32_t>(bytes_[offset + i]) << (8 * i);
  return v;
}

void PciConfiguration::SetByte(size_t offset, uint8_t v) {
  if (offset < kConfigSize) bytes_[offset] = v;
}

void PciConfiguration::SetWord(size_t offset, uint16_t v) {
  SetByte(offset, static_cast<uint8_t>(v));
  SetByte(offset + 1, static_cast<uint8_t>(v >> 8));
}

void PciConfiguration::SetDword(size_t offset, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) SetByte(offset + i, static_cast<uint8_t>(v >> (8 * i)));
}

uint32_t PciConfiguration::ReadRegister(size_t reg) const {
  if (reg >= kConfigSize / 4) return 0xffffffff;
  return ReadDword(reg * 4);
}

void PciConfiguration::WriteRegister(size_t reg, size_t offset, std::span<const uint8_t> data) {
  if (reg >= kConfigSize / 4 || offset >= 4 || data.size() > 4 - offset) return;
  size_t base = reg * 4 + offset;
  for (size_t i = 0; i < data.size(); ++i) {
    uint8_t m = wmask_[base + i];
    bytes_[base + i] = static_cast<uint8_t>((bytes_[base + i] & ~m) | (data[i] & m));
  }
}

const BarInfo* PciConfiguration::bar(int index) const {
  for (const auto& b : bars_) {
    if (b.index == index) return &b;
  }
  return nullptr;
}

base::Status PciConfiguration::AddBar(const BarInfo& bar) {
  const bool is64 = bar.type == BarType::kMem64;
  const int slots = is64 ? 2 : 1;
  if (bar.index < 0 || bar.index + slots > static_cast<int>(kNumBars)) {
    return base::Error("PCI BAR index " + std::to_string(bar.index) + " is out of range");
  }
  const uint64_t min_size = bar.type == BarType::kIo ? 4 : 16;
  if (bar.size < min_size || !std::has_single_bit(bar.size) ||
      (bar.type == BarType::kIo && bar.size > 256) ||
      (bar.type == BarType::kMem32 && bar.size > (uint64_t{1} << 31))) {
    return base::Error("PCI BAR " + std::to_string(bar.index) + ": bad size " +
                       std::to_string(bar.size));
  }
  for (const auto& b : bars_) {
    int b_slots = b.type == BarType::kMem64 ? 2 : 1;
    if (bar.index < b.index + b_slots && b.index < bar.index + slots) {
      return base::Error("PCI BAR " + std::to_string(bar.index) + " overlaps BAR " +
                         std::to_string(b.index));
    }
  }
  size_t off = kBar0 + 4 * static_cast<size_t>(bar.index);
  uint32_t type_bits = 0;
  uint64_t mask = ~(bar.size - 1);
  if (bar.type == BarType::kIo) {
    type_bits = 0x1;
    mask &= ~uint64_t{0x3};
  } else {
    type_bits = (is64 ? 0x4 : 0x0) | (bar.prefetchable ? 0x8 : 0x0);
    mask &= ~uint64_t{0xf};
  }
  SetDword(off, type_bits);
  for (size_t i = 0; i < 4; ++i) wmask_[off + i] = static_cast<uint8_t>(mask >> (8 * i));
  if (is64) {
    SetDword(off + 4, 0);
    for (size_t i = 0; i < 4; ++i) wmask_[off + 4 + i] = static_cast<uint8_t>(mask >> (32 + 8 * i));
  }
  bars_.push_back(bar);
  std::sort(bars_.begin(), bars_.end(),
            [](const BarInfo& a, const BarInfo& b) { return a.index < b.index; });
  return base::Ok();
}

uint64_t PciConfiguration::BarAddress(int index) const {
  const BarInfo* b = bar(index);
  if (b == nullptr) return 0;
  size_t off = kBar0 + 4 * static_cast<size_t>(index);
  uint64_t lo = ReadDword(off);
  if (b->type == BarType::kIo) return lo & ~uint64_t{0x3};
  uint64_t addr = lo & ~uint64_t{0xf};
  if (b->type == BarType::kMem64) addr |= static_cast<uint64_t>(ReadDword(off + 4)) << 32;
  return addr;
}

base::Status PciConfiguration::SetBarAddress(int index, uint64_t addr) {
  const BarInfo* b = bar(index);
  if (b == nullptr) return base::Error("PCI BAR " + std::to_string(index) + " does not exist");
  if (addr & (b->size - 1)) {
    return base::Error("PCI BAR " + std::to_string(index) + ": address is not size-aligned");
  }
  if (b->type != BarType::kMem64 && (addr >> 32) != 0) {
    return base::Error("PCI BAR " + std::to_string(index) + ": 32-bit BAR above 4 GiB");
  }
  size_t off = kBar0 + 4 * static_cast<size_t>(index);
  uint32_t type_bits = ReadDword(off) & (b->type == BarType::kIo ? 0x3 : 0xf);
  SetDword(off, static_cast<uint32_t>(addr) | type_bits);
  if (b->type == BarType::kMem64) SetDword(off + 4, static_cast<uint32_t>(addr >> 32));
  return base::Ok();
}

base::Result<uint8_t> PciConfiguration::AddCapability(uint8_t id, std::span<const uint8_t> body,
                                                      std::span<const uint8_t> writable) {
  if (!writable.empty() && writable.size() != body.size()) {
    return base::Error("PCI capability: write mask length differs from the body");
  }
  size_t len = 2 + body.size();
  size_t off = (next_cap_ + 3) & ~size_t{3};
  if (off + len > kConfigSize) return base::Error("PCI capability does not fit");
  SetByte(off, id);
  SetByte(off + 1, 0);
  for (size_t i = 0; i < body.size(); ++i) {
    SetByte(off + 2 + i, body[i]);
    if (!writable.empty()) wmask_[off + 2 + i] = writable[i];
  }
  if (last_cap_ == 0) {
    SetByte(kCapabilityPointer, static_cast<uint8_t>(off));
    SetWord(kStatus, ReadWord(kStatus) | kStatusCapList);
  } else {
    SetByte(last_cap_ + 1, static_cast<uint8_t>(off));
  }
  last_cap_ = static_cast<uint8_t>(off);
  next_cap_ = off + len;
  return static_cast<uint8_t>(off);
}

void PciConfiguration::SetInterrupt(uint8_t line, uint8_t pin) {
  SetByte(kInterruptLine, line);
  SetByte(kInterruptPin, pin);
}

}  // namespace crosvm::devices::pci
