// Turns a policy condition into comparisons libseccomp can take. libseccomp (2.5) accepts one
// comparison per argument in a rule and has no "any bit set" test, so:
//  - `argN & M` with several bits in M becomes one alternative per bit (MASKED_EQ(bit, bit));
//  - ==, a single-bit &, and `in` on one argument merge into one MASKED_EQ (or are found to
//    contradict, which drops that alternative);
//  - an == next to other tests of the same argument decides them at compile time;
//  - what is left with two tests of one argument (e.g. a range, `arg0 > 1 && arg0 < 5`) is an
//    error, because libseccomp would reject it.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "sandbox/seccomp_policy.h"

namespace crosvm::sandbox {

// One libseccomp comparison: kMaskedEq holds when (arg & mask) == value; the others compare
// the argument with `value`.
struct LoweredCheck {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq };
  int arg = 0;
  Op op = Op::kEq;
  uint64_t mask = 0;  // kMaskedEq only
  uint64_t value = 0;
  bool operator==(const LoweredCheck&) const = default;
};

// Any one of these holds; each has at most one check per argument. An empty alternative always
// holds. Errors (no location; the caller adds it): a condition that can never hold, two tests
// of one argument that cannot be merged, an expansion into too many rules.
base::Result<std::vector<std::vector<LoweredCheck>>> LowerCondition(
    const std::vector<ArgConjunction>& condition);

}  // namespace crosvm::sandbox
