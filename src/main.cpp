// crosvm: runs a virtual machine through KVM. Subcommands follow the seed's command line.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/control_commands.h"
#include "cli/vm.h"
#include "disk/disk.h"

namespace {

using crosvm::cli::kExitUsage;
using crosvm::cli::kExitVmError;

void PrintUsage(FILE* out) {
  std::fputs(
      "Usage: crosvm [SUBCOMMAND] ...\n\n"
      "Subcommands:\n"
      "  run            Start a new VM (crosvm run --help for its options).\n"
      "  stop           Stop a running VM through its control socket.\n"
      "  suspend        Suspend a running VM's vCPUs.\n"
      "  resume         Resume a suspended VM.\n"
      "  balloon        Set the balloon size of a running VM: crosvm balloon SIZE PATH...\n"
      "  balloon_stats  Print the balloon statistics of a running VM.\n"
      "  create_qcow2   Create an empty qcow2 image: crosvm create_qcow2 PATH SIZE.\n"
      "  disk           Manage the disks of a running VM: crosvm disk resize INDEX SIZE PATH...\n"
      "  version        Print the version.\n",
      out);
}

int Run(const std::vector<std::string>& args) {
  if (crosvm::cli::WantsHelp(args)) {
    std::fputs(crosvm::cli::RunUsage().c_str(), stdout);
    return 0;
  }
  auto config = crosvm::cli::ParseRunArgs(args);
  if (!config.ok()) {
    std::fprintf(stderr, "crosvm run: %s\nTry 'crosvm run --help'.\n",
                 config.error().ToString().c_str());
    return kExitUsage;
  }
  auto status = crosvm::cli::RunVm(*config);
  if (!status.ok()) {
    std::fprintf(stderr, "crosvm run: %s\n", status.error().ToString().c_str());
    return kExitVmError;
  }
  return *status;
}

int CreateQcow2(const std::vector<std::string>& args) {
  if (args.size() != 2) {
    std::fputs(
        "Usage: crosvm create_qcow2 PATH SIZE\n  SIZE in bytes, or with a K, M or G suffix "
        "(e.g. 10G).\n",
        stderr);
    return kExitUsage;
  }
  uint64_t size = 0;
  if (!crosvm::cli::ParseSize(args[1], &size) || size == 0) {
    std::fprintf(stderr,
                 "crosvm create_qcow2: '%s' is not a size (bytes, or a number with K, M "
                 "or G)\n",
                 args[1].c_str());
    return kExitUsage;
  }
  auto status = crosvm::disk::CreateQcow2(args[0], size);
  if (!status.ok()) {
    std::fprintf(stderr, "crosvm create_qcow2: %s\n", status.error().ToString().c_str());
    return kExitVmError;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return kExitUsage;
  }
  std::string sub = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (sub == "run") return Run(args);
  if (sub == "-h" || sub == "--help" || sub == "help") {
    PrintUsage(stdout);
    return 0;
  }
  if (sub == "version" || sub == "--version") {
    std::puts("crosvm (C++) 0.1.0");
    return 0;
  }
  if (crosvm::cli::IsControlSubcommand(sub)) {
    return crosvm::cli::RunControlCommand(sub, args);
  }
  if (sub == "create_qcow2") return CreateQcow2(args);
  std::fprintf(stderr, "crosvm: unknown subcommand '%s'\n\n", sub.c_str());
  PrintUsage(stderr);
  return kExitUsage;
}
