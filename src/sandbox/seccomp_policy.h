// A seccomp policy in the minijail syntax crosvm's device policies use:
//
//   # comment
//   read: 1                              allow
//   open: return 13                      fail with errno 13 (EACCES)
//   mmap: arg2 in PROT_READ|PROT_WRITE   allow when the argument expression holds
//   fcntl: arg1 == F_GETFL || arg1 == F_SETFL && arg2 & O_NONBLOCK
//   @include common_device.policy        relative to the including file's directory
//   @frequency x.frequency               accepted and ignored
//
// Expressions: `||` of `&&` of `argN OP VALUE` (N 0..5; OP == != < <= > >= & in). `argN & M`
// holds when any bit of M is set in the argument, `argN in M` when no bit outside M is.
// VALUE is a decimal, 0x hex or 0 octal literal, a named constant (seccomp_constants.h) or an
// `A|B|...` of those. Parse errors are "FILE:LINE: message".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace crosvm::sandbox {

enum class ArgOp { kEq, kNe, kLt, kLe, kGt, kGe, kAnyBit, kIn };

// `argN OP VALUE` as written.
struct ArgComparison {
  int arg = 0;
  ArgOp op = ArgOp::kEq;
  uint64_t value = 0;
  bool operator==(const ArgComparison&) const = default;
};

// All of the comparisons hold.
using ArgConjunction = std::vector<ArgComparison>;

struct PolicyRule {
  enum class Action { kAllow, kAllowIf, kErrno };
  std::string syscall;
  int syscall_nr = -1;  // for the native architecture
  Action action = Action::kAllow;
  std::vector<ArgConjunction> condition;  // kAllowIf: any one conjunction holds
  int errno_value = 0;                    // kErrno
  std::string location;                   // "FILE:LINE" of the definition, for later errors
};

class SeccompPolicy {
 public:
  // Includes nest at most this deep; deeper is an error (so is a cycle).
  static constexpr int kMaxIncludeDepth = 8;

  static base::Result<SeccompPolicy> ParseFile(const std::string& path);
  // `name_for_errors` stands for the file in error messages; `@include` paths are relative to
  // `include_dir`.
  static base::Result<SeccompPolicy> ParseString(std::string_view text,
                                                 const std::string& name_for_errors,
                                                 const std::string& include_dir);

  // In definition order, includes expanded where they appear.
  const std::vector<PolicyRule>& rules() const { return rules_; }
  // The rule for `syscall`, or null.
  const PolicyRule* Find(std::string_view syscall) const;

 private:
  friend class PolicyParser;
  std::vector<PolicyRule> rules_;
};

}  // namespace crosvm::sandbox
