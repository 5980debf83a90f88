// The control socket's command-line clients: crosvm stop|suspend|resume PATH...,
// crosvm balloon SIZE PATH..., crosvm balloon_stats PATH..., crosvm disk resize INDEX SIZE
// PATH.... Each sends one request to every socket in turn and prints one line per socket.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "control/protocol.h"

namespace crosvm::cli {

struct ControlCommand {
  std::string name;  // "stop", "balloon", "disk resize", ...
  control::RequestBody body;
  std::vector<std::string> sockets;
};

// True for the subcommands RunControlCommand serves.
bool IsControlSubcommand(const std::string& sub);
// Parses the arguments after the subcommand. Errors say what was expected.
base::Result<ControlCommand> ParseControlCommand(const std::string& sub,
                                                 const std::vector<std::string>& args);
// One line for an answer: "ok", or the balloon's sizes, or "<status>: <message>".
std::string DescribeReply(const control::Reply& reply);
// Exit status: 0 when every socket answered ok, 1 when any failed, 2 for a bad command line.
int RunControlCommand(const std::string& sub, const std::vector<std::string>& args);

}  // namespace crosvm::cli
