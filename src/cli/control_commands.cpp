#include "cli/control_commands.h"

#include <cstdio>
#include <type_traits>
#include <variant>

#include "cli/args.h"
#include "cli/vm.h"
#include "control/client.h"

namespace crosvm::cli {
namespace {

using base::Error;

const char* UsageOf(const std::string& sub) {
  if (sub == "balloon") return "crosvm balloon SIZE SOCKET_PATH...";
  if (sub == "disk") return "crosvm disk resize DISK_INDEX NEW_SIZE SOCKET_PATH...";
  if (sub == "balloon_stats") return "crosvm balloon_stats SOCKET_PATH...";
  return nullptr;
}

Error SizeError(const std::string& what, const std::string& text) {
  return Error(what + " '" + text + "' is not a size (bytes, or a number with K, M or G)");
}

}  // namespace

bool IsControlSubcommand(const std::string& sub) {
  return sub == "stop" || sub == "suspend" || sub == "resume" || sub == "balloon" ||
         sub == "balloon_stats" || sub == "disk";
}

base::Result<ControlCommand> ParseControlCommand(const std::string& sub,
                                                 const std::vector<std::string>& args) {
  ControlCommand cmd;
  cmd.name = sub;
  size_t first_socket = 0;
  if (sub == "stop") {
    cmd.body = control::Stop{};
  } else if (sub == "suspend") {
    cmd.body = control::Suspend{};
  } else if (sub == "resume") {
    cmd.body = control::Resume{};
  } else if (sub == "balloon_stats") {
    cmd.body = control::BalloonStats{};
  } else if (sub == "balloon") {
    if (args.empty()) return Error("missing SIZE");
    uint64_t bytes = 0;
    if (!ParseSize(args[0], &bytes)) return SizeError("SIZE", args[0]);
    cmd.body = control::BalloonSetTarget{bytes};
    first_socket = 1;
  } else if (sub == "disk") {
    if (args.empty() || args[0] != "resize") {
      return Error(args.empty() ? "missing the disk command (resize)"
                                : "unknown disk command '" + args[0] + "' (only resize)");
    }
    cmd.name = "disk resize";
    if (args.size() < 3) return Error("missing DISK_INDEX or NEW_SIZE");
    uint64_t index = 0;
    if (!ParseSize(args[1], &index) ||
        args[1].find_first_not_of("0123456789") != std::string::npos || index > UINT32_MAX) {
      return Error("DISK_INDEX '" + args[1] + "' is not a disk number (0 is the first disk)");
    }
    uint64_t size = 0;
    if (!ParseSize(args[2], &size) || size == 0) return SizeError("NEW_SIZE", args[2]);
    cmd.body = control::DiskResize{static_cast<uint32_t>(index), size};
    first_socket = 3;
  } else {
    return Error("'" + sub + "' is not a control command");
  }
  cmd.sockets.assign(args.begin() + static_cast<ptrdiff_t>(first_socket), args.end());
  if (cmd.sockets.empty()) return Error("missing SOCKET_PATH (the path given to crosvm run -s)");
  return cmd;
}

std::string DescribeReply(const control::Reply& reply) {
  if (reply.status != control::StatusCode::kOk) {
    std::string s = control::StatusCodeName(reply.status);
    if (!reply.message.empty()) s += ": " + reply.message;
    return s;
  }
  return std::visit(
      [&](const auto& body) -> std::string {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, control::BalloonState>) {
          return "balloon target " + std::to_string(body.target_bytes) + " bytes, actual " +
                 std::to_string(body.actual_bytes) + " bytes";
        } else if constexpr (std::is_same_v<T, control::BalloonStatsInfo>) {
          std::string s = "balloon target " + std::to_string(body.state.target_bytes) +
                          " bytes, actual " + std::to_string(body.state.actual_bytes) + " bytes";
          for (const auto& st : body.stats) {
            s += "\n  tag " + std::to_string(st.tag) + ": " + std::to_string(st.value);
          }
          return s;
        } else if constexpr (std::is_same_v<T, control::VersionInfo>) {
          return "protocol " + std::to_string(body.protocol_version) + ", pid " +
                 std::to_string(body.pid);
        } else {
          return reply.message.empty() ? std::string("ok") : "ok: " + reply.message;
        }
      },
      reply.body);
}

int RunControlCommand(const std::string& sub, const std::vector<std::string>& args) {
  auto cmd = ParseControlCommand(sub, args);
  if (!cmd.ok()) {
    const char* usage = UsageOf(sub);
    std::fprintf(stderr, "crosvm %s: %s\nUsage: %s\n", sub.c_str(), cmd.error().ToString().c_str(),
                 usage ? usage : ("crosvm " + sub + " SOCKET_PATH...").c_str());
    return kExitUsage;
  }
  int status = 0;
  for (const auto& path : cmd->sockets) {
    auto client = control::ControlClient::Connect(path);
    if (!client.ok()) {
      std::fprintf(stderr, "crosvm %s: %s\n", cmd->name.c_str(), client.error().ToString().c_str());
      status = 1;
      continue;
    }
    // A suspend waits for every vCPU to park and a disk resize for the image: more than 5 s
    // would be a hung VM.
    auto reply = client->Call(cmd->body, std::chrono::seconds(15));
    if (!reply.ok()) {
      std::fprintf(stderr, "crosvm %s: %s: %s\n", cmd->name.c_str(), path.c_str(),
                   reply.error().ToString().c_str());
      status = 1;
      continue;
    }
    std::string line = DescribeReply(*reply);
    if (reply->status == control::StatusCode::kOk) {
      std::printf("%s: %s\n", path.c_str(), line.c_str());
    } else {
      std::fprintf(stderr, "crosvm %s: %s: %s\n", cmd->name.c_str(), path.c_str(), line.c_str());
      status = 1;
    }
  }
  return status;
}

}  // namespace crosvm::cli
