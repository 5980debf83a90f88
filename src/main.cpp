// crosvm: runs a virtual machine through KVM. Subcommands follow the seed's command line.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/vm.h"

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
      "  balloon        Set the balloon size of a running VM.\n"
      "  create_qcow2   Create an empty qcow2 image: crosvm create_qcow2 PATH SIZE.\n"
      "  disk           Manage the disks of a running VM.\n"
      "  version        Print the version.\n",
      out);
}

int NotYet(const std::string& sub, const char* what) {
  std::fprintf(stderr, "crosvm %s: not supported yet: %s is not built in this version\n",
               sub.c_str(), what);
  return kExitUsage;
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
  if (sub == "stop" || sub == "suspend" || sub == "resume" || sub == "balloon" || sub == "disk") {
    return NotYet(sub, "the control socket (crosvm run -s)");
  }
  if (sub == "create_qcow2") return NotYet(sub, "qcow2 support");
  std::fprintf(stderr, "crosvm: unknown subcommand '%s'\n\n", sub.c_str());
  PrintUsage(stderr);
  return kExitUsage;
}
