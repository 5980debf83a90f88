#include "sandbox/policy_path.h"

#include <sys/stat.h>

namespace crosvm::sandbox {

using base::Error;
using base::Result;

std::vector<std::string> PolicySearchDirs(const std::optional<std::string>& policy_dir) {
  // An explicit directory is the user's choice; falling back to another would hide a typo.
  if (policy_dir) return {*policy_dir};
  return {CROSVM_POLICY_INSTALL_DIR, CROSVM_POLICY_SOURCE_DIR};
}

Result<std::string> FindPolicyIn(std::string_view name, const std::vector<std::string>& dirs) {
  if (name.empty() || name.find('/') != std::string_view::npos) {
    return Error("bad seccomp policy name '" + std::string(name) + "'");
  }
  std::string file(name);
  constexpr std::string_view kSuffix = ".policy";
  if (!file.ends_with(kSuffix)) file += kSuffix;
  std::string tried;
  for (const std::string& dir : dirs) {
    std::string path = dir + "/" + file;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return path;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  return Error("seccomp policy " + file + " not found; looked for " + tried);
}

Result<std::string> FindPolicy(std::string_view name,
                               const std::optional<std::string>& policy_dir) {
  return FindPolicyIn(name, PolicySearchDirs(policy_dir));
}

}  // namespace crosvm::sandbox
