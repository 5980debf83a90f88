// Virtio 1.x constants shared by the transport and the devices (virtio spec 1.1, chapters 2-5).
#pragma once

#include <cstdint>

namespace crosvm::devices::virtio {

// Device status bits (2.1).
inline constexpr uint8_t kStatusAcknowledge = 0x01;
inline constexpr uint8_t kStatusDriver = 0x02;
inline constexpr uint8_t kStatusDriverOk = 0x04;
inline constexpr uint8_t kStatusFeaturesOk = 0x08;
inline constexpr uint8_t kStatusNeedsReset = 0x40;
inline constexpr uint8_t kStatusFailed = 0x80;

// Feature bits (6).
inline constexpr int kFeatureRingIndirectDesc = 28;
inline constexpr int kFeatureRingEventIdx = 29;
inline constexpr int kFeatureVersion1 = 32;

constexpr uint64_t Bit(int n) {
  return uint64_t{1} << n;
}

// Device types (5).
inline constexpr uint32_t kTypeNet = 1;
inline constexpr uint32_t kTypeBlock = 2;
inline constexpr uint32_t kTypeRng = 4;
inline constexpr uint32_t kTypeBalloon = 5;

// PCI transport (4.1).
inline constexpr uint16_t kPciVendorId = 0x1af4;
inline constexpr uint16_t kPciDeviceIdBase = 0x1040;  // + device type
inline constexpr uint16_t kPciSubsystemId = 0x40;     // non-transitional devices: >= 0x40
inline constexpr uint8_t kPciRevision = 1;            // modern only
inline constexpr uint16_t kNoVector = 0xffff;

// ISR status bits (4.1.4.5).
inline constexpr uint8_t kIsrQueue = 0x1;
inline constexpr uint8_t kIsrConfig = 0x2;

}  // namespace crosvm::devices::virtio
