#include "arch/x86_64/smbios.h"

#include <cstring>
#include <string>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"

namespace crosvm::arch {
namespace {

constexpr size_t kEntryPointSize = 0x18;

void Append(std::vector<uint8_t>& out, const void* p, size_t n) {
  auto b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

// A structure: formatted area, then its strings, each NUL-terminated, then one more NUL.
void AppendStructure(std::vector<uint8_t>& out, std::vector<uint8_t> formatted,
                     const std::vector<std::string>& strings) {
  formatted[1] = static_cast<uint8_t>(formatted.size());
  Append(out, formatted.data(), formatted.size());
  for (const auto& s : strings) Append(out, s.c_str(), s.size() + 1);
  if (strings.empty()) out.push_back(0);
  out.push_back(0);
}

}  // namespace

std::vector<uint8_t> BuildSmbios(uint64_t addr) {
  std::vector<uint8_t> table;
  // Type 0, BIOS information: vendor 1, version 2, start segment, date 3, ROM size,
  // characteristics (bit 3: "not supported").
  AppendStructure(table, {0, 0, 0, 0, 1, 2, 0x00, 0xe8, 3, 0, 0x08, 0, 0, 0, 0, 0, 0, 0},
                  {"crosvm", "0", "01/01/2026"});
  // Type 1, system information: manufacturer 1, product 2, version 3, serial 0, UUID zero,
  // wake-up type "power switch", SKU 0, family 0.
  std::vector<uint8_t> sys = {1, 0, 1, 0, 1, 2, 3, 0};
  sys.resize(8 + 16, 0);
  sys.push_back(6);
  sys.push_back(0);
  sys.push_back(0);
  AppendStructure(table, sys, {"crosvm", "crosvm", "0"});
  // Type 127, end of table.
  AppendStructure(table, {127, 0, 2, 0}, {});

  std::vector<uint8_t> ep(kEntryPointSize, 0);
  std::memcpy(ep.data(), "_SM3_", 5);
  ep[6] = kEntryPointSize;
  ep[7] = 3;  // SMBIOS 3.0
  ep[8] = 0;
  ep[9] = 0;   // docrev
  ep[10] = 1;  // entry point revision: 3.0
  uint32_t max_size = static_cast<uint32_t>(table.size());
  std::memcpy(&ep[12], &max_size, 4);
  uint64_t table_addr = addr + kEntryPointSize;
  std::memcpy(&ep[16], &table_addr, 8);
  ep[5] = static_cast<uint8_t>(-ByteSum(ep.data(), ep.size()));

  std::vector<uint8_t> out;
  out.reserve(ep.size() + table.size());
  Append(out, ep.data(), ep.size());
  Append(out, table.data(), table.size());
  return out;
}

base::Status WriteSmbios(memory::GuestMemory& mem) {
  std::vector<uint8_t> bytes = BuildSmbios(kSmbiosAddr);
  if (kSmbiosAddr + bytes.size() > kMpTableAddr) return base::Error("SMBIOS tables too large");
  return mem.Write(kSmbiosAddr, bytes);
}

}  // namespace crosvm::arch
