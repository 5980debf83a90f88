// Command-line parsing for `crosvm run` (every flag of the seed's crosvm) and the helpers the
// other subcommands share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/config.h"

namespace crosvm::cli {

// Why parsing stopped without a Config: the user asked for --help.
struct HelpRequested {};

// Parses the arguments after `crosvm run`. Errors name the flag and say what was expected.
// A flag whose feature is not built yet is an error that says so.
base::Result<Config> ParseRunArgs(const std::vector<std::string>& args);
bool WantsHelp(const std::vector<std::string>& args);
std::string RunUsage();

// The name Linux gives the virtio disk at position `index` (0 = "vda", 25 = "vdz", 26 = "vdaa").
std::string VirtioDiskName(size_t index);

// "1048576", "64K", "10M", "2G" (binary units, either case) -> bytes; false when it is not a
// size or does not fit in 64 bits.
bool ParseSize(const std::string& text, uint64_t* out);

// "0,1-3,5" -> {0,1,2,3,5}.
base::Result<std::vector<int>> ParseCpuSet(const std::string& text);
// --serial type=stdout,num=1,path=...,console=true
base::Result<SerialOption> ParseSerial(const std::string& text);

}  // namespace crosvm::cli
