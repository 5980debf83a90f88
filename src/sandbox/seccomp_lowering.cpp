#include "sandbox/seccomp_lowering.h"

#include <algorithm>
#include <array>
#include <bit>
#include <optional>
#include <string>

namespace crosvm::sandbox {
namespace {

// More alternatives than this for one syscall means the policy is not saying what its author
// thinks (six 64-bit masks would multiply out to 64^6 rules).
constexpr size_t kMaxAlternatives = 256;
constexpr int kArgCount = 6;

std::string ArgName(int arg) {
  return "arg" + std::to_string(arg);
}

bool Holds(ArgOp op, uint64_t arg, uint64_t value) {
  switch (op) {
    case ArgOp::kEq:
      return arg == value;
    case ArgOp::kNe:
      return arg != value;
    case ArgOp::kLt:
      return arg < value;
    case ArgOp::kLe:
      return arg <= value;
    case ArgOp::kGt:
      return arg > value;
    case ArgOp::kGe:
      return arg >= value;
    case ArgOp::kAnyBit:
      return (arg & value) != 0;
    case ArgOp::kIn:
      return (arg & ~value) == 0;
  }
  return false;
}

LoweredCheck::Op OrderingOp(ArgOp op) {
  switch (op) {
    case ArgOp::kNe:
      return LoweredCheck::Op::kNe;
    case ArgOp::kLt:
      return LoweredCheck::Op::kLt;
    case ArgOp::kLe:
      return LoweredCheck::Op::kLe;
    case ArgOp::kGt:
      return LoweredCheck::Op::kGt;
    case ArgOp::kGe:
      return LoweredCheck::Op::kGe;
    default:
      return LoweredCheck::Op::kEq;
  }
}

// The comparisons of one argument in one alternative, where every `&` has a single bit.
struct ArgTests {
  // The masked-equality family (==, single-bit &, in) merged: (arg & mask) == value.
  uint64_t mask = 0;
  uint64_t value = 0;
  bool contradiction = false;
  std::vector<ArgComparison> ordering;  // != < <= > >=

  void AddMasked(uint64_t m, uint64_t v) {
    uint64_t overlap = mask & m;
    if ((value & overlap) != (v & overlap)) contradiction = true;
    mask |= m;
    value |= v & m;
  }
};

// One alternative (single-bit masks only) to at most one check per argument; nullopt when it can
// never hold.
base::Result<std::optional<std::vector<LoweredCheck>>> LowerAlternative(
    const ArgConjunction& conj) {
  std::array<ArgTests, kArgCount> tests;
  for (const ArgComparison& c : conj) {
    ArgTests& t = tests[c.arg];
    switch (c.op) {
      case ArgOp::kEq:
        t.AddMasked(~uint64_t{0}, c.value);
        break;
      case ArgOp::kAnyBit:
        t.AddMasked(c.value, c.value);
        break;
      case ArgOp::kIn:
        t.AddMasked(~c.value, 0);
        break;
      default:
        t.ordering.push_back(c);
    }
  }
  std::vector<LoweredCheck> out;
  for (int arg = 0; arg < kArgCount; ++arg) {
    ArgTests& t = tests[arg];
    if (t.contradiction) return std::optional<std::vector<LoweredCheck>>();
    if (t.mask == ~uint64_t{0}) {
      // An exact value decides every other test of this argument now.
      for (const ArgComparison& c : t.ordering) {
        if (!Holds(c.op, t.value, c.value)) return std::optional<std::vector<LoweredCheck>>();
      }
      out.push_back({arg, LoweredCheck::Op::kEq, 0, t.value});
      continue;
    }
    size_t count = t.ordering.size() + (t.mask != 0 ? 1 : 0);
    if (count > 1) {
      return base::Error(ArgName(arg) +
                         " is tested more than once in one && clause in a way that cannot be "
                         "merged (libseccomp takes one comparison per argument); use == or "
                         "masks, or split the clause with ||");
    }
    if (t.mask != 0) out.push_back({arg, LoweredCheck::Op::kMaskedEq, t.mask, t.value});
    for (const ArgComparison& c : t.ordering) out.push_back({arg, OrderingOp(c.op), 0, c.value});
  }
  return std::optional<std::vector<LoweredCheck>>(std::move(out));
}

// Replaces each multi-bit `&` in `conj` by one alternative per bit (the cross product when there
// are several). Returns false when that exceeds kMaxAlternatives.
bool ExpandBits(const ArgConjunction& conj, std::vector<ArgConjunction>* out) {
  std::vector<ArgConjunction> partial = {{}};
  for (const ArgComparison& c : conj) {
    if (c.op != ArgOp::kAnyBit || std::has_single_bit(c.value)) {
      for (ArgConjunction& p : partial) p.push_back(c);
      continue;
    }
    std::vector<ArgConjunction> next;
    for (const ArgConjunction& p : partial) {
      for (int bit = 0; bit < 64; ++bit) {
        uint64_t b = uint64_t{1} << bit;
        if (!(c.value & b)) continue;
        ArgConjunction q = p;
        q.push_back({c.arg, ArgOp::kAnyBit, b});
        next.push_back(std::move(q));
        if (next.size() + out->size() > kMaxAlternatives) return false;
      }
    }
    partial = std::move(next);
  }
  for (ArgConjunction& p : partial) out->push_back(std::move(p));
  return out->size() <= kMaxAlternatives;
}

}  // namespace

base::Result<std::vector<std::vector<LoweredCheck>>> LowerCondition(
    const std::vector<ArgConjunction>& condition) {
  std::vector<ArgConjunction> expanded;
  for (const ArgConjunction& conj : condition) {
    for (const ArgComparison& c : conj) {
      if (c.arg < 0 || c.arg >= kArgCount) return base::Error("no argument " + ArgName(c.arg));
      if (c.op == ArgOp::kAnyBit && c.value == 0) {
        return base::Error(ArgName(c.arg) + " & 0 can never hold");
      }
    }
    if (!ExpandBits(conj, &expanded)) {
      return base::Error("condition expands to more than " + std::to_string(kMaxAlternatives) +
                         " libseccomp rules");
    }
  }
  std::vector<std::vector<LoweredCheck>> out;
  for (const ArgConjunction& conj : expanded) {
    CROSVM_ASSIGN_OR_RETURN(auto lowered, LowerAlternative(conj));
    if (!lowered) continue;
    // An alternative that always holds makes the rest irrelevant.
    if (lowered->empty()) return std::vector<std::vector<LoweredCheck>>{{}};
    if (std::find(out.begin(), out.end(), *lowered) == out.end()) {
      out.push_back(std::move(*lowered));
    }
  }
  if (out.empty()) return base::Error("condition can never hold");
  return out;
}

}  // namespace crosvm::sandbox
