#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <gtest/gtest.h>

#include "sandbox/seccomp_constants.h"
#include "sandbox/seccomp_lowering.h"
#include "sandbox/seccomp_policy.h"
#include "sandbox/tests/test_util.h"

namespace crosvm::sandbox {
namespace {

using Action = PolicyRule::Action;

SeccompPolicy Parse(const std::string& text, const std::string& include_dir = "/nonexistent") {
  auto p = SeccompPolicy::ParseString(text, "test.policy", include_dir);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? std::move(p).value() : SeccompPolicy();
}

// The error message of parsing `text` (named test.policy); "" when it parsed.
std::string ParseError(const std::string& text, const std::string& include_dir = "/nonexistent") {
  auto p = SeccompPolicy::ParseString(text, "test.policy", include_dir);
  return p.ok() ? "" : p.error().message();
}

TEST(SeccompPolicyTest, AllowReturnCommentsAndBlankLines) {
  SeccompPolicy p = Parse(
      "# a comment\n"
      "\n"
      "   read: 1\n"
      "openat: return 13   # trailing comment\n"
      "open : return EACCES\n"
      "\t\n"
      "close:1");
  ASSERT_EQ(p.rules().size(), 4u);
  const PolicyRule& read = p.rules()[0];
  EXPECT_EQ(read.syscall, "read");
  EXPECT_EQ(read.syscall_nr, SYS_read);
  EXPECT_EQ(read.action, Action::kAllow);
  EXPECT_EQ(read.location, "test.policy:3");
  EXPECT_EQ(p.rules()[1].action, Action::kErrno);
  EXPECT_EQ(p.rules()[1].errno_value, 13);
  EXPECT_EQ(p.rules()[1].syscall_nr, SYS_openat);
  EXPECT_EQ(p.rules()[2].errno_value, EACCES);
  EXPECT_EQ(p.rules()[3].syscall, "close");
  EXPECT_EQ(p.rules()[3].location, "test.policy:7");
  ASSERT_NE(p.Find("openat"), nullptr);
  EXPECT_EQ(p.Find("openat")->location, "test.policy:4");
  EXPECT_EQ(p.Find("write"), nullptr);
}

TEST(SeccompPolicyTest, EveryOperator) {
  SeccompPolicy p = Parse(
      "read: arg0 == 1 && arg1 != 2 && arg2 < 3 && arg3 <= 4 && arg4 > 5 && arg5 >= 6\n"
      "write: arg0 & 0x10\n"
      "mmap: arg2 in PROT_READ|PROT_WRITE\n");
  ASSERT_EQ(p.rules().size(), 3u);
  EXPECT_EQ(p.rules()[0].action, Action::kAllowIf);
  std::vector<ArgConjunction> want = {{{0, ArgOp::kEq, 1},
                                       {1, ArgOp::kNe, 2},
                                       {2, ArgOp::kLt, 3},
                                       {3, ArgOp::kLe, 4},
                                       {4, ArgOp::kGt, 5},
                                       {5, ArgOp::kGe, 6}}};
  EXPECT_EQ(p.rules()[0].condition, want);
  EXPECT_EQ(p.rules()[1].condition, (std::vector<ArgConjunction>{{{0, ArgOp::kAnyBit, 0x10}}}));
  EXPECT_EQ(p.rules()[2].condition,
            (std::vector<ArgConjunction>{{{2, ArgOp::kIn, PROT_READ | PROT_WRITE}}}));
}

TEST(SeccompPolicyTest, AndBindsTighterThanOr) {
  SeccompPolicy p =
      Parse("fcntl: arg1 == F_GETFL || arg1 == F_SETFL && arg2 & O_NONBLOCK || arg1==1");
  ASSERT_EQ(p.rules().size(), 1u);
  std::vector<ArgConjunction> want = {
      {{1, ArgOp::kEq, F_GETFL}},
      {{1, ArgOp::kEq, F_SETFL}, {2, ArgOp::kAnyBit, O_NONBLOCK}},
      {{1, ArgOp::kEq, 1}},
  };
  EXPECT_EQ(p.rules()[0].condition, want);
}

TEST(SeccompPolicyTest, NumbersAndOredConstants) {
  SeccompPolicy p = Parse(
      "read: arg0 == 0x1F\n"
      "write: arg0 == 0755\n"
      "close: arg0 == 42\n"
      "dup: arg0 == 0\n"
      "openat: arg2 == O_RDWR|O_CLOEXEC|0x100000000\n"
      "fstat: arg0 == 0xffffffffffffffff\n"
      "lseek: arg0 == 18446744073709551615\n");
  auto value = [&](size_t i) { return p.rules()[i].condition[0][0].value; };
  ASSERT_EQ(p.rules().size(), 7u);
  EXPECT_EQ(value(0), 0x1fu);
  EXPECT_EQ(value(1), 0755u);
  EXPECT_EQ(value(2), 42u);
  EXPECT_EQ(value(3), 0u);
  EXPECT_EQ(value(4), static_cast<uint64_t>(O_RDWR | O_CLOEXEC) | 0x100000000u);
  EXPECT_EQ(value(5), ~uint64_t{0});
  EXPECT_EQ(value(6), ~uint64_t{0});
}

TEST(SeccompPolicyTest, ConstantsComeFromTheHeaders) {
  EXPECT_EQ(LookupSeccompConstant("O_RDWR"), uint64_t{O_RDWR});
  EXPECT_EQ(LookupSeccompConstant("MAP_ANONYMOUS"), uint64_t{MAP_ANONYMOUS});
  EXPECT_EQ(LookupSeccompConstant("SIGSYS"), uint64_t{SIGSYS});
  EXPECT_EQ(LookupSeccompConstant("AT_FDCWD"), static_cast<uint64_t>(AT_FDCWD));
  EXPECT_EQ(LookupSeccompConstant("TUNSETOFFLOAD"), uint64_t{TUNSETOFFLOAD});
  EXPECT_EQ(LookupSeccompConstant("TUNSETVNETHDRSZ"), uint64_t{TUNSETVNETHDRSZ});
  EXPECT_EQ(LookupSeccompConstant("TUNSETOFFLOAD"), uint64_t{0x400454d0})
      << "_IOW('T', 208, unsigned)";
  EXPECT_EQ(LookupSeccompConstant("TUNSETIFF"), std::nullopt) << "not a device process's call";
  EXPECT_EQ(LookupSeccompConstant("O_RDWRX"), std::nullopt);
  EXPECT_EQ(LookupSeccompConstant(""), std::nullopt);
}

TEST(SeccompPolicyTest, FrequencyIsIgnored) {
  SeccompPolicy p = Parse("@frequency ./common_device.frequency\nread: 1\n");
  ASSERT_EQ(p.rules().size(), 1u);
}

TEST(SeccompPolicyTest, IncludesAreRelativeToTheIncludingFile) {
  TempDir dir;
  dir.Write("top/sub/b.policy", "write: 1\n@include ../c.policy\n");
  dir.Write("top/c.policy", "close: 1\n");
  std::string top = dir.Write("top/a.policy", "read: 1\n@include sub/b.policy\nexit: 1\n");
  auto p = SeccompPolicy::ParseFile(top);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  ASSERT_EQ(p->rules().size(), 4u);
  EXPECT_EQ(p->rules()[0].syscall, "read");
  EXPECT_EQ(p->rules()[1].syscall, "write");
  EXPECT_EQ(p->rules()[1].location, dir.path() + "/top/sub/b.policy:1");
  EXPECT_EQ(p->rules()[2].syscall, "close");
  EXPECT_EQ(p->rules()[2].location, dir.path() + "/top/c.policy:1");
  EXPECT_EQ(p->rules()[3].syscall, "exit");
  EXPECT_EQ(p->rules()[3].location, top + ":3");
}

TEST(SeccompPolicyTest, ParseStringIncludesFromIncludeDir) {
  TempDir dir;
  dir.Write("common.policy", "read: 1\n");
  SeccompPolicy p = Parse("@include common.policy\nwrite: 1\n", dir.path());
  ASSERT_EQ(p.rules().size(), 2u);
  EXPECT_EQ(p.rules()[0].syscall, "read");
}

// f0 includes f1 ... includes f<n>; f<n> has a rule.
std::string WriteChain(const TempDir& dir, int n) {
  for (int i = 0; i < n; ++i) {
    dir.Write("f" + std::to_string(i) + ".policy", "# level " + std::to_string(i) + "\n@include f" +
                                                       std::to_string(i + 1) + ".policy\n");
  }
  dir.Write("f" + std::to_string(n) + ".policy", "read: 1\n");
  return dir.path() + "/f0.policy";
}

TEST(SeccompPolicyTest, IncludeDepthLimit) {
  {
    TempDir dir;
    auto p = SeccompPolicy::ParseFile(WriteChain(dir, SeccompPolicy::kMaxIncludeDepth));
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    EXPECT_EQ(p->rules().size(), 1u);
  }
  TempDir dir;
  auto p = SeccompPolicy::ParseFile(WriteChain(dir, SeccompPolicy::kMaxIncludeDepth + 1));
  ASSERT_FALSE(p.ok());
  std::string last = dir.path() + "/f" + std::to_string(SeccompPolicy::kMaxIncludeDepth);
  EXPECT_EQ(p.error().message().rfind(last + ".policy:2: @include nested deeper than 8", 0), 0u)
      << p.error().message();
}

TEST(SeccompPolicyTest, IncludeCycleIsAnError) {
  TempDir dir;
  dir.Write("b.policy", "write: 1\n\n@include a.policy\n");
  std::string a = dir.Write("a.policy", "read: 1\n@include b.policy\n");
  auto p = SeccompPolicy::ParseFile(a);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), dir.path() + "/b.policy:3: @include cycle: " + dir.path() +
                                     "/a.policy is already being read (included from " + a + ":2)");
  // A file including itself, reached through a different spelling of its path.
  std::string self = dir.Write("self.policy", "@include ./self.policy\n");
  p = SeccompPolicy::ParseFile(self);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message().rfind(self + ":1: @include cycle", 0), 0u) << p.error().message();
}

TEST(SeccompPolicyTest, ErrorInIncludedFileNamesThatFile) {
  TempDir dir;
  dir.Write("inner.policy", "read: 1\n\nnot_a_syscall: 1\n");
  std::string outer = dir.Write("outer.policy", "write: 1\n@include inner.policy\n");
  auto p = SeccompPolicy::ParseFile(outer);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), dir.path() +
                                     "/inner.policy:3: unknown syscall 'not_a_syscall' "
                                     "(included from " +
                                     outer + ":2)");
}

TEST(SeccompPolicyTest, DuplicateAcrossIncludes) {
  TempDir dir;
  dir.Write("common.policy", "read: 1\n");
  auto p = SeccompPolicy::ParseString("write: 1\n@include common.policy\nread: 1\n", "dev.policy",
                                      dir.path());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "dev.policy:3: duplicate definition of syscall 'read' (first at " +
                                     dir.path() + "/common.policy:1)");
}

TEST(SeccompPolicyTest, MissingFiles) {
  auto p = SeccompPolicy::ParseFile("/nonexistent/x.policy");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("/nonexistent/x.policy"), std::string::npos);
  EXPECT_EQ(ParseError("read: 1\n@include gone.policy\n", "/nonexistent"),
            "test.policy:2: @include: cannot read /nonexistent/gone.policy: No such file or "
            "directory");
}

struct ErrorCase {
  const char* text;
  const char* error;  // the whole message
};

class SeccompPolicyErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(SeccompPolicyErrorTest, ReportsFileAndLine) {
  EXPECT_EQ(ParseError(GetParam().text), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, SeccompPolicyErrorTest,
    testing::Values(
        ErrorCase{"read: 1\nwrite 1\n", "test.policy:2: expected 'syscall: action'"},
        ErrorCase{"\n\n: 1\n", "test.policy:3: missing syscall name before ':'"},
        ErrorCase{"re-ad: 1\n", "test.policy:1: bad syscall name 're-ad'"},
        ErrorCase{"#\nreed: 1\n", "test.policy:2: unknown syscall 'reed'"},
        // Exists on i386, not on x86_64.
        ErrorCase{"socketcall: 1\n", "test.policy:1: unknown syscall 'socketcall'"},
        ErrorCase{"read: 1\nread: arg0 == 1\n",
                  "test.policy:2: duplicate definition of syscall 'read' (first at "
                  "test.policy:1)"},
        ErrorCase{"read:   # nothing\n", "test.policy:1: missing action after 'read:'"},
        ErrorCase{"read: 2\n", "test.policy:1: expected arg0..arg5, got '2'"},
        ErrorCase{"read: arg6 == 1\n", "test.policy:1: expected arg0..arg5, got 'arg6'"},
        ErrorCase{"read: args == 1\n", "test.policy:1: expected arg0..arg5, got 'args'"},
        ErrorCase{"read: arg0 1\n",
                  "test.policy:1: expected a comparison operator after arg0, got '1'"},
        ErrorCase{"read: arg0 || 1\n",
                  "test.policy:1: expected a comparison operator after arg0, got '||'"},
        ErrorCase{"read: arg0 = 1\n", "test.policy:1: unexpected character '='"},
        ErrorCase{"read: arg0 == 1 &&\n", "test.policy:1: expected arg0..arg5, got end of line"},
        ErrorCase{"read: arg0 == 1 || || arg1 == 2\n",
                  "test.policy:1: expected arg0..arg5, got '||'"},
        ErrorCase{"read: arg0 ==\n", "test.policy:1: expected a value, got end of line"},
        ErrorCase{"read: arg0 == O_RDWR|\n", "test.policy:1: expected a value, got end of line"},
        ErrorCase{"read: arg0 == 1 2\n",
                  "test.policy:1: expected && or || or end of line, got '2'"},
        ErrorCase{"read: arg0 == O_RDWRX\n", "test.policy:1: unknown constant 'O_RDWRX'"},
        ErrorCase{"read: arg0 == O_RDONLY|NOPE\n", "test.policy:1: unknown constant 'NOPE'"},
        ErrorCase{"read: arg0 == 09\n", "test.policy:1: bad number '09'"},
        ErrorCase{"read: arg0 == 0x\n", "test.policy:1: bad number '0x'"},
        ErrorCase{"read: arg0 == 12ab\n", "test.policy:1: bad number '12ab'"},
        ErrorCase{"read: arg0 == 0x10000000000000000\n",
                  "test.policy:1: number '0x10000000000000000' overflows"},
        ErrorCase{"read: arg0 == 18446744073709551616\n",
                  "test.policy:1: number '18446744073709551616' overflows"},
        ErrorCase{"read: return\n", "test.policy:1: expected a value, got end of line"},
        ErrorCase{"read: return 4096\n", "test.policy:1: errno 4096 is out of range 0..4095"},
        ErrorCase{"read: return 1 2\n", "test.policy:1: unexpected '2' after return value"},
        ErrorCase{"read: return NOPE\n", "test.policy:1: unknown constant 'NOPE'"},
        ErrorCase{"@foo bar\n", "test.policy:1: unknown directive '@foo'"},
        ErrorCase{"\n@include\n", "test.policy:2: @include needs a path"},
        ErrorCase{"@frequency   \n", "test.policy:1: @frequency needs a path"},
        ErrorCase{"read: arg0 & 0\n", "test.policy:1: arg0 & 0 can never hold"},
        ErrorCase{"read: arg0 == 1 && arg0 == 2\n", "test.policy:1: condition can never hold"},
        ErrorCase{"read: arg0 & 4 && arg0 in 3\n", "test.policy:1: condition can never hold"},
        ErrorCase{"read: arg1 > 1 && arg1 < 5\n",
                  "test.policy:1: arg1 is tested more than once in one && clause in a way that "
                  "cannot be merged (libseccomp takes one comparison per argument); use == or "
                  "masks, or split the clause with ||"},
        ErrorCase{"read: arg0 & 0xffff && arg1 & 0x1ffff\n",
                  "test.policy:1: condition expands to more than 256 libseccomp rules"}));

TEST(SeccompLoweringTest, MultiBitMaskBecomesOneRulePerBit) {
  auto l = LowerCondition({{{0, ArgOp::kAnyBit, 0x6}, {1, ArgOp::kEq, 9}}});
  ASSERT_TRUE(l.ok()) << l.error().ToString();
  using Op = LoweredCheck::Op;
  std::vector<std::vector<LoweredCheck>> want = {
      {{0, Op::kMaskedEq, 0x2, 0x2}, {1, Op::kEq, 0, 9}},
      {{0, Op::kMaskedEq, 0x4, 0x4}, {1, Op::kEq, 0, 9}},
  };
  EXPECT_EQ(*l, want);
}

TEST(SeccompLoweringTest, TestsOfOneArgumentMerge) {
  using Op = LoweredCheck::Op;
  // `in` is MASKED_EQ(~mask, 0); with a bit test it becomes one MASKED_EQ.
  auto l = LowerCondition({{{0, ArgOp::kIn, 0x3}, {0, ArgOp::kAnyBit, 0x1}}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<std::vector<LoweredCheck>>{{{0, Op::kMaskedEq, ~uint64_t{2}, 1}}}));
  // An exact value decides the ordering tests of the same argument.
  l = LowerCondition({{{2, ArgOp::kEq, 5}, {2, ArgOp::kLt, 10}, {2, ArgOp::kNe, 4}}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<std::vector<LoweredCheck>>{{{2, Op::kEq, 0, 5}}}));
  l = LowerCondition({{{2, ArgOp::kEq, 5}, {2, ArgOp::kGt, 10}}, {{3, ArgOp::kGe, 1}}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<std::vector<LoweredCheck>>{{{3, Op::kGe, 0, 1}}}));
}

TEST(SeccompLoweringTest, AlwaysTrueAndDuplicateAlternatives) {
  using Op = LoweredCheck::Op;
  // `in` all bits holds for every value, so the whole condition does.
  auto l = LowerCondition({{{0, ArgOp::kEq, 1}}, {{0, ArgOp::kIn, ~uint64_t{0}}}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<std::vector<LoweredCheck>>{{}}));
  l = LowerCondition({{{0, ArgOp::kEq, 1}}, {{0, ArgOp::kEq, 1}}});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<std::vector<LoweredCheck>>{{{0, Op::kEq, 0, 1}}}));
}

}  // namespace
}  // namespace crosvm::sandbox
