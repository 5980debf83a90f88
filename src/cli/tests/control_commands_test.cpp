#include "cli/control_commands.h"

#include <gtest/gtest.h>

#include "cli/args.h"

namespace crosvm::cli {
namespace {

TEST(ParseSizeTest, SuffixesAndOverflow) {
  uint64_t v = 0;
  EXPECT_TRUE(ParseSize("4096", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(ParseSize("64K", &v));
  EXPECT_EQ(v, 64u << 10);
  EXPECT_TRUE(ParseSize("10m", &v));
  EXPECT_EQ(v, 10u << 20);
  EXPECT_TRUE(ParseSize("2G", &v));
  EXPECT_EQ(v, uint64_t{2} << 30);
  EXPECT_FALSE(ParseSize("", &v));
  EXPECT_FALSE(ParseSize("G", &v));
  EXPECT_FALSE(ParseSize("1T", &v));
  EXPECT_FALSE(ParseSize("1KB", &v));
  EXPECT_FALSE(ParseSize("-1", &v));
  EXPECT_FALSE(ParseSize("18446744073709551616", &v));
  EXPECT_FALSE(ParseSize("17179869184G", &v));
}

TEST(ControlCommandTest, SimpleCommandsTakeSockets) {
  auto c = ParseControlCommand("stop", {"/a", "/b"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(std::holds_alternative<control::Stop>(c->body));
  EXPECT_EQ(c->sockets, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_TRUE(
      std::holds_alternative<control::Suspend>(ParseControlCommand("suspend", {"/a"})->body));
  EXPECT_TRUE(std::holds_alternative<control::Resume>(ParseControlCommand("resume", {"/a"})->body));
  EXPECT_FALSE(ParseControlCommand("stop", {}).ok());
  EXPECT_FALSE(ParseControlCommand("reboot", {"/a"}).ok());
}

TEST(ControlCommandTest, Balloon) {
  auto c = ParseControlCommand("balloon", {"256M", "/s"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::get<control::BalloonSetTarget>(c->body).bytes, 256u << 20);
  EXPECT_EQ(c->sockets, std::vector<std::string>{"/s"});
  EXPECT_TRUE(ParseControlCommand("balloon", {"0", "/s"}).ok());  // deflate completely
  EXPECT_FALSE(ParseControlCommand("balloon", {"lots", "/s"}).ok());
  EXPECT_FALSE(ParseControlCommand("balloon", {"1M"}).ok());
  EXPECT_FALSE(ParseControlCommand("balloon", {}).ok());
}

TEST(ControlCommandTest, DiskResize) {
  auto c = ParseControlCommand("disk", {"resize", "1", "2G", "/s", "/t"});
  ASSERT_TRUE(c.ok());
  auto r = std::get<control::DiskResize>(c->body);
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.new_size, uint64_t{2} << 30);
  EXPECT_EQ(c->sockets.size(), 2u);
  EXPECT_EQ(c->name, "disk resize");
  EXPECT_FALSE(ParseControlCommand("disk", {"resize", "1", "2G"}).ok());
  EXPECT_FALSE(ParseControlCommand("disk", {"resize", "1K", "2G", "/s"}).ok());
  EXPECT_FALSE(ParseControlCommand("disk", {"resize", "4294967296", "2G", "/s"}).ok());
  EXPECT_FALSE(ParseControlCommand("disk", {"resize", "0", "0", "/s"}).ok());
  EXPECT_FALSE(ParseControlCommand("disk", {"grow", "0", "1G", "/s"}).ok());
  EXPECT_FALSE(ParseControlCommand("disk", {}).ok());
}

TEST(ControlCommandTest, DescribeReply) {
  EXPECT_EQ(DescribeReply(control::Reply::Ok()), "ok");
  EXPECT_EQ(DescribeReply(control::Reply::Ok(control::BalloonState{8192, 4096})),
            "balloon target 8192 bytes, actual 4096 bytes");
  EXPECT_EQ(DescribeReply(control::Reply::Error(control::StatusCode::kInvalidState, "already")),
            std::string(control::StatusCodeName(control::StatusCode::kInvalidState)) + ": already");
}

TEST(ControlCommandTest, MissingSocketFailsClearly) {
  EXPECT_EQ(RunControlCommand("stop", {"/nonexistent/crosvm.sock"}), 1);
  EXPECT_EQ(RunControlCommand("stop", {}), 2);
}

TEST(RunArgsTest, SocketFlag) {
  auto c = ParseRunArgs({"-s", "/tmp/x.sock", "/vmlinux"});
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->socket_path, "/tmp/x.sock");
}

}  // namespace
}  // namespace crosvm::cli
