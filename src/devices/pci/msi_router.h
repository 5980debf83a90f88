// What MSI-X needs from the VM's GSI routing: GSIs for its vectors and a route per vector. An
// interface so that a device in a jailed process can record route changes for the parent
// (which owns the one real routing table) instead of installing them itself.
#pragma once

#include <cstdint>

#include "base/error.h"

namespace crosvm::devices::pci {

class MsiRouter {
 public:
  virtual ~MsiRouter() = default;
  // A GSI for an MSI route (not routed until SetMsiRoute).
  virtual base::Result<uint32_t> AllocateGsi() = 0;
  // Routes `gsi` to the MSI message (address, data).
  virtual base::Status SetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) = 0;
  // Drops the route of `gsi`, if any.
  virtual base::Status RemoveRoute(uint32_t gsi) = 0;
};

}  // namespace crosvm::devices::pci
