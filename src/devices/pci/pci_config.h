// The 256-byte configuration space of one PCI function (type 0 header, PCI Local Bus Spec 3.0
// chapter 6): identification registers, the command register, BARs with size masks, the
// capability list and the interrupt line/pin. Writes go through a per-byte write mask, so
// read-only registers stay read-only and BAR sizing (write all-ones, read back) works.
//
// Not thread-safe: the owner serializes accesses (PciRoot holds its lock around them).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/error.h"

namespace crosvm::devices::pci {

inline constexpr size_t kConfigSize = 256;
inline constexpr size_t kNumBars = 6;

// Register offsets (bytes).
inline constexpr size_t kVendorId = 0x00;
inline constexpr size_t kDeviceId = 0x02;
inline constexpr size_t kCommand = 0x04;
inline constexpr size_t kStatus = 0x06;
inline constexpr size_t kRevision = 0x08;
inline constexpr size_t kClassProgIf = 0x09;
inline constexpr size_t kHeaderType = 0x0e;
inline constexpr size_t kBar0 = 0x10;
inline constexpr size_t kSubsystemVendorId = 0x2c;
inline constexpr size_t kSubsystemId = 0x2e;
inline constexpr size_t kRomBar = 0x30;
inline constexpr size_t kCapabilityPointer = 0x34;
inline constexpr size_t kInterruptLine = 0x3c;
inline constexpr size_t kInterruptPin = 0x3d;
inline constexpr size_t kFirstCapability = 0x40;

// Command register bits.
inline constexpr uint16_t kCommandIo = 1 << 0;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandMaster = 1 << 2;
inline constexpr uint16_t kCommandParity = 1 << 6;
inline constexpr uint16_t kCommandSerr = 1 << 8;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
// Status register: a capability list is present.
inline constexpr uint16_t kStatusCapList = 1 << 4;

// Capability ids.
inline constexpr uint8_t kCapIdMsix = 0x11;
inline constexpr uint8_t kCapIdVendor = 0x09;

// Class codes (base class << 16 | subclass << 8 | programming interface).
inline constexpr uint32_t kClassHostBridge = 0x060000;
inline constexpr uint32_t kClassStorageOther = 0x018000;
inline constexpr uint32_t kClassNetworkEthernet = 0x020000;
inline constexpr uint32_t kClassOther = 0xff0000;

enum class BarType { kIo, kMem32, kMem64 };

struct BarInfo {
  int index = 0;  // 0..5; a 64-bit BAR also uses index + 1
  BarType type = BarType::kMem32;
  uint64_t size = 0;  // a power of two: >= 16 for memory, >= 4 for I/O
  bool prefetchable = false;
};

struct PciIds {
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint32_t class_code = 0;  // 24 bits
  uint8_t revision = 0;
  uint16_t subsystem_vendor = 0;
  uint16_t subsystem_id = 0;
};

class PciConfiguration {
 public:
  explicit PciConfiguration(const PciIds& ids);

  // Declares a BAR (not yet at any address). Fails for a bad index, size or overlap with an
  // existing BAR's slots.
  base::Status AddBar(const BarInfo& bar);
  // Appends a capability: `body` is the capability from its third byte on (the id and next
  // pointer are filled in); `writable` (same length as body, or empty) masks the bytes the
  // guest may change. Returns the capability's offset in configuration space.
  base::Result<uint8_t> AddCapability(uint8_t id, std::span<const uint8_t> body,
                                      std::span<const uint8_t> writable = {});

  uint32_t ReadRegister(size_t reg) const;  // reg = offset / 4, 0..63
  // Writes data.size() bytes (1, 2 or 4) at byte `offset` within register `reg`, through the
  // write mask. Accesses crossing the register or the end of the space are ignored.
  void WriteRegister(size_t reg, size_t offset, std::span<const uint8_t> data);

  uint8_t ReadByte(size_t offset) const { return offset < kConfigSize ? bytes_[offset] : 0xff; }
  uint16_t ReadWord(size_t offset) const;
  uint32_t ReadDword(size_t offset) const;
  // Device-side stores that bypass the write mask (e.g. read-only fields the device updates).
  void SetByte(size_t offset, uint8_t v);
  void SetWord(size_t offset, uint16_t v);
  void SetDword(size_t offset, uint32_t v);

  uint16_t command() const { return ReadWord(kCommand); }
  // The BARs declared with AddBar, in index order.
  const std::vector<BarInfo>& bars() const { return bars_; }
  const BarInfo* bar(int index) const;
  // The address the BAR is programmed with (the type bits masked off); 64-bit BARs combine
  // both registers.
  uint64_t BarAddress(int index) const;
  // Programs a BAR's address (as firmware would). The address must be aligned to its size.
  base::Status SetBarAddress(int index, uint64_t addr);

  // Interrupt line (the IOAPIC pin the guest should use) and pin (1 = INTA#).
  void SetInterrupt(uint8_t line, uint8_t pin);

 private:
  std::array<uint8_t, kConfigSize> bytes_{};
  std::array<uint8_t, kConfigSize> wmask_{};
  std::vector<BarInfo> bars_;
  size_t next_cap_ = kFirstCapability;
  uint8_t last_cap_ = 0;  // offset of the last capability, 0 = none yet
};

}  // namespace crosvm::devices::pci
