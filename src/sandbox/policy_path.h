// Where a device's seccomp policy file is found.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace crosvm::sandbox {

// The directories FindPolicy searches, in order: `policy_dir` alone when given
// (--seccomp-policy-dir), else the installed policies (CROSVM_POLICY_INSTALL_DIR) then the
// source tree's seccomp/x86_64 (for running from a build directory).
std::vector<std::string> PolicySearchDirs(const std::optional<std::string>& policy_dir);

// The path of `<name>.policy` (`name` may already end in ".policy") in the first of `dirs`
// that has it. Missing: an error that lists every path tried.
base::Result<std::string> FindPolicyIn(std::string_view name, const std::vector<std::string>& dirs);

// FindPolicyIn(name, PolicySearchDirs(policy_dir)).
base::Result<std::string> FindPolicy(std::string_view name,
                                     const std::optional<std::string>& policy_dir);

}  // namespace crosvm::sandbox
