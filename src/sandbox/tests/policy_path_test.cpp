#include <gtest/gtest.h>

#include "sandbox/policy_path.h"
#include "sandbox/tests/test_util.h"

namespace crosvm::sandbox {
namespace {

TEST(PolicyPathTest, FirstDirectoryThatHasItWins) {
  TempDir a, b;
  b.Write("block_device.policy", "");
  a.Write("rng_device.policy", "");
  b.Write("rng_device.policy", "");
  auto p = FindPolicyIn("block_device", {a.path(), b.path()});
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(*p, b.path() + "/block_device.policy");
  p = FindPolicyIn("rng_device.policy", {a.path(), b.path()});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, a.path() + "/rng_device.policy");
}

TEST(PolicyPathTest, MissingListsWhereItLooked) {
  TempDir a, b;
  b.Write("net_device.policy/x", "");  // a directory of that name does not count
  auto p = FindPolicyIn("net_device", {a.path(), b.path()});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "seccomp policy net_device.policy not found; looked for " +
                                     a.path() + "/net_device.policy, " + b.path() +
                                     "/net_device.policy");
  EXPECT_FALSE(FindPolicyIn("../etc/passwd", {a.path()}).ok());
  EXPECT_FALSE(FindPolicyIn("", {a.path()}).ok());
}

TEST(PolicyPathTest, ExplicitDirectoryIsTheOnlyPlace) {
  TempDir a;
  EXPECT_EQ(PolicySearchDirs(a.path()), std::vector<std::string>{a.path()});
  auto p = FindPolicy("common_device", a.path());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "seccomp policy common_device.policy not found; looked for " +
                                     a.path() + "/common_device.policy");
}

TEST(PolicyPathTest, DefaultsToInstalledThenSourceTree) {
  std::vector<std::string> dirs = PolicySearchDirs(std::nullopt);
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_TRUE(dirs[0].ends_with("/share/crosvm/seccomp/x86_64")) << dirs[0];
  EXPECT_EQ(dirs[1], CROSVM_POLICY_SOURCE_DIR);
  auto p = FindPolicy("common_device", std::nullopt);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_TRUE(p->ends_with("/seccomp/x86_64/common_device.policy")) << *p;
}

}  // namespace
}  // namespace crosvm::sandbox
