#include "loader/cmdline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace crosvm::loader {
namespace {

using ::testing::HasSubstr;

TEST(KernelCmdlineTest, StartsEmpty) {
  KernelCmdline c(2048);
  EXPECT_EQ(c.str(), "");
  EXPECT_EQ(c.size_with_nul(), 1u);
}

TEST(KernelCmdlineTest, InsertSeparatesWithOneSpace) {
  KernelCmdline c(2048);
  ASSERT_TRUE(c.Insert("console", "ttyS0").ok());
  EXPECT_EQ(c.str(), "console=ttyS0");
  ASSERT_TRUE(c.Insert("root", "/dev/vda").ok());
  EXPECT_EQ(c.str(), "console=ttyS0 root=/dev/vda");
  EXPECT_EQ(c.size_with_nul(), c.str().size() + 1);
}

TEST(KernelCmdlineTest, InsertStrSeparatesWithOneSpace) {
  KernelCmdline c(2048);
  ASSERT_TRUE(c.InsertStr("ro quiet").ok());
  EXPECT_EQ(c.str(), "ro quiet");
  ASSERT_TRUE(c.Insert("panic", "-1").ok());
  ASSERT_TRUE(c.InsertStr("init=/bin/sh").ok());
  EXPECT_EQ(c.str(), "ro quiet panic=-1 init=/bin/sh");
}

TEST(KernelCmdlineTest, InsertStrTrimsOuterBlanks) {
  KernelCmdline c(2048);
  ASSERT_TRUE(c.InsertStr("  ro  ").ok());
  ASSERT_TRUE(c.InsertStr(" quiet").ok());
  EXPECT_EQ(c.str(), "ro quiet");
}

TEST(KernelCmdlineTest, BlankFragmentsAreIgnored) {
  KernelCmdline c(2048);
  ASSERT_TRUE(c.InsertStr("").ok());
  ASSERT_TRUE(c.InsertStr("    ").ok());
  EXPECT_EQ(c.str(), "");
  ASSERT_TRUE(c.InsertStr("ro").ok());
  ASSERT_TRUE(c.InsertStr("").ok());
  ASSERT_TRUE(c.InsertStr(" ").ok());
  EXPECT_EQ(c.str(), "ro");
}

TEST(KernelCmdlineTest, InsertQuotedValueWithSpaces) {
  KernelCmdline c(2048);
  ASSERT_TRUE(c.Insert("dyndbg", "\"file x.c +p\"").ok());
  EXPECT_EQ(c.str(), "dyndbg=\"file x.c +p\"");
  ASSERT_TRUE(c.InsertStr("foo=\"a b\"").ok());
  EXPECT_EQ(c.str(), "dyndbg=\"file x.c +p\" foo=\"a b\"");
}

TEST(KernelCmdlineTest, InsertEmptyValue) {
  KernelCmdline c(2048);
  ASSERT_TRUE(c.Insert("rdinit", "").ok());
  EXPECT_EQ(c.str(), "rdinit=");
}

TEST(KernelCmdlineTest, CapacityCountsTheNul) {
  // Capacity 10: nine characters and the NUL fit exactly.
  KernelCmdline c(10);
  ASSERT_TRUE(c.InsertStr("123456789").ok());
  EXPECT_EQ(c.size_with_nul(), 10u);
  // Not even one more character (with its separating space) fits.
  EXPECT_FALSE(c.InsertStr("x").ok());
  EXPECT_EQ(c.str(), "123456789");

  KernelCmdline d(10);
  auto s = d.InsertStr("1234567890");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("too long"));
  EXPECT_EQ(d.str(), "");
}

TEST(KernelCmdlineTest, CapacityCountsTheSeparatingSpace) {
  KernelCmdline c(8);
  ASSERT_TRUE(c.InsertStr("abc").ok());
  // "abc def" + NUL = 8 bytes.
  ASSERT_TRUE(c.InsertStr("def").ok());
  EXPECT_EQ(c.str(), "abc def");
  EXPECT_EQ(c.size_with_nul(), 8u);
  EXPECT_FALSE(c.InsertStr("g").ok());

  KernelCmdline d(7);
  ASSERT_TRUE(d.InsertStr("abc").ok());
  EXPECT_FALSE(d.InsertStr("def").ok());  // would need 8
  EXPECT_EQ(d.str(), "abc");
}

TEST(KernelCmdlineTest, CapacityAppliesToInsert) {
  // "k=v" + NUL = 4.
  KernelCmdline c(4);
  ASSERT_TRUE(c.Insert("k", "v").ok());
  EXPECT_FALSE(c.Insert("a", "b").ok());
  KernelCmdline d(3);
  EXPECT_FALSE(d.Insert("k", "v").ok());
  EXPECT_EQ(d.str(), "");
}

TEST(KernelCmdlineTest, NonPrintableCharactersAreRejected) {
  for (std::string bad :
       {std::string("a\tb"), std::string("a\nb"), std::string("\x7f"), std::string("\x80"),
        std::string("\x1f"), std::string("\xff"), std::string("a\0b", 3)}) {
    SCOPED_TRACE(testing::PrintToString(bad));
    KernelCmdline c(2048);
    auto s = c.InsertStr(bad);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message(), HasSubstr("non-printable"));
    EXPECT_FALSE(c.Insert("k", bad).ok());
    EXPECT_EQ(c.str(), "");
  }
  // The printable range's ends are fine.
  KernelCmdline c(2048);
  EXPECT_TRUE(c.InsertStr("~!").ok());
  EXPECT_TRUE(c.Insert("x", "~").ok());
  EXPECT_EQ(c.str(), "~! x=~");
}

TEST(KernelCmdlineTest, BadKeysAreRejected) {
  for (const char* key : {"", "a b", "a=b", "a\"b", "=", " "}) {
    SCOPED_TRACE(key);
    KernelCmdline c(2048);
    auto s = c.Insert(key, "v");
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message(), HasSubstr("bad parameter name"));
    EXPECT_EQ(c.str(), "");
  }
}

TEST(KernelCmdlineTest, UnquotedValueWithSpaceIsRejected) {
  KernelCmdline c(2048);
  EXPECT_FALSE(c.Insert("init", "/bin/sh -x").ok());
  EXPECT_FALSE(c.Insert("init", " x").ok());
  EXPECT_EQ(c.str(), "");
}

TEST(KernelCmdlineTest, UnbalancedQuotesInFragmentAreRejected) {
  KernelCmdline c(2048);
  auto s = c.InsertStr("foo=\"a b");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("unbalanced quote"));
  EXPECT_FALSE(c.InsertStr("\"").ok());
  EXPECT_FALSE(c.InsertStr("a=\"x\" b=\"y").ok());
  EXPECT_EQ(c.str(), "");
  EXPECT_TRUE(c.InsertStr("a=\"x\" b=\"y\"").ok());
}

// A value with a space must be one quoted string: an unbalanced quote would swallow every
// parameter after it in the guest's parser, and a space outside the quotes splits it in two.
TEST(KernelCmdlineTest, InsertRejectsBadlyQuotedValue) {
  KernelCmdline c(2048);
  EXPECT_FALSE(c.Insert("init", "\"/bin/sh -x").ok());
  EXPECT_FALSE(c.Insert("init", "\"/bin/sh\" -x").ok());
  EXPECT_EQ(c.str(), "");
}

}  // namespace
}  // namespace crosvm::loader
