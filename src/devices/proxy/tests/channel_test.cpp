// Channel: whole messages with fds, and every way a message can fail to arrive intact.
#include "devices/proxy/channel.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

namespace crosvm::devices::proxy {
namespace {

using ::testing::HasSubstr;

TEST(ChannelTest, BytesAndFdsArriveTogether) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.error().ToString();
  auto& [a, b] = *pair;
  int evt = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(evt, 0);
  base::ScopedFd owned(evt);
  std::vector<uint8_t> bytes = {1, 2, 3, 4, 5};
  int fds[] = {evt};
  ASSERT_TRUE(a.Send(bytes, fds).ok());
  auto m = b.Recv();
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->bytes, bytes);
  ASSERT_EQ((*m)->fds.size(), 1u);
  int got = (*m)->fds[0].get();
  EXPECT_NE(got, evt);
  EXPECT_TRUE(fcntl(got, F_GETFD) & FD_CLOEXEC) << "received with MSG_CMSG_CLOEXEC";
  // The same eventfd: a write on the received fd is read on the original.
  uint64_t one = 1, v = 0;
  ASSERT_EQ(write(got, &one, 8), 8);
  ASSERT_EQ(read(evt, &v, 8), 8);
  EXPECT_EQ(v, 1u);
}

TEST(ChannelTest, MessageBoundariesAreKept) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  auto& [a, b] = *pair;
  std::vector<uint8_t> big(Channel::kMaxMessageSize, 0x5a);
  ASSERT_TRUE(a.Send(std::vector<uint8_t>{7}).ok());
  ASSERT_TRUE(a.Send(big).ok());
  auto m1 = b.Recv();
  auto m2 = b.Recv();
  ASSERT_TRUE(m1.ok() && m1->has_value());
  ASSERT_TRUE(m2.ok() && m2->has_value());
  EXPECT_EQ((*m1)->bytes, std::vector<uint8_t>{7});
  EXPECT_EQ((*m2)->bytes, big);
}

TEST(ChannelTest, SendRefusesEmptyOversizedAndTooManyFds) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  auto& a = pair->first;
  EXPECT_FALSE(a.Send(std::vector<uint8_t>{}).ok());
  std::vector<uint8_t> big(Channel::kMaxMessageSize + 1, 0);
  auto s = a.Send(big);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("4097 bytes"));
  std::vector<int> fds(Channel::kMaxFds + 1, 0);
  s = a.Send(std::vector<uint8_t>{1}, fds);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("fds"));
}

TEST(ChannelTest, TruncatedDataIsRejected) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  auto& [a, b] = *pair;
  // A peer that does not use Channel sends more than a message may hold.
  std::vector<uint8_t> big(Channel::kMaxMessageSize + 100, 1);
  ASSERT_EQ(send(a.fd(), big.data(), big.size(), 0), static_cast<ssize_t>(big.size()));
  auto m = b.Recv();
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message(), HasSubstr("longer than 4096"));
  // The stream goes on with the next message.
  ASSERT_TRUE(a.Send(std::vector<uint8_t>{9}).ok());
  auto next = b.Recv();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->bytes, std::vector<uint8_t>{9});
}

TEST(ChannelTest, TruncatedFdsAreRejectedAndClosed) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  auto& [a, b] = *pair;
  constexpr size_t kMany = Channel::kMaxFds + 8;
  int evt = eventfd(0, EFD_CLOEXEC);
  base::ScopedFd owned(evt);
  std::vector<int> fds(kMany, evt);
  uint8_t byte = 1;
  iovec iov{&byte, 1};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMany), 0);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * kMany);
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * kMany);
  ASSERT_EQ(sendmsg(a.fd(), &msg, 0), 1);
  // The fds that do arrive must not leak: the lowest free fd number is the same afterwards.
  int probe_before = dup(0);
  close(probe_before);
  auto m = b.Recv();
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message(), HasSubstr("fds in one message"));
  int probe_after = dup(0);
  close(probe_after);
  EXPECT_EQ(probe_before, probe_after);
}

TEST(ChannelTest, PeerClosedIsReportedDistinctly) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  Channel a = std::move(pair->first);
  {
    Channel b = std::move(pair->second);
    ASSERT_TRUE(b.Send(std::vector<uint8_t>{1}).ok());
  }
  auto m = a.Recv();  // what was sent before the close still arrives
  ASSERT_TRUE(m.ok() && m->has_value());
  m = a.Recv();
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_FALSE(m->has_value());
  auto s = a.Send(std::vector<uint8_t>{1});  // no SIGPIPE
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().errnum(), EPIPE);
}

TEST(ChannelTest, ShutdownEndsTheStreamForBothEnds) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  auto& [a, b] = *pair;
  std::thread t([&] {
    auto m = b.Recv();  // blocked until the shutdown
    EXPECT_TRUE(m.ok() && !m->has_value());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  b.Shutdown();
  t.join();
  auto m = a.Recv();
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_value());
}

void NoOp(int) {}

TEST(ChannelTest, RecvSurvivesSignals) {
  struct sigaction sa {};
  sa.sa_handler = NoOp;  // no SA_RESTART: recvmsg fails with EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  auto& [a, b] = *pair;
  std::atomic<bool> done{false};
  base::Result<std::optional<Message>> got = std::optional<Message>();
  std::thread t([&] {
    got = b.Recv();
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  pthread_kill(t.native_handle(), SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(done.load()) << "an interrupted recv goes on waiting";
  ASSERT_TRUE(a.Send(std::vector<uint8_t>{42}).ok());
  t.join();
  sigaction(SIGUSR1, &old, nullptr);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->bytes, std::vector<uint8_t>{42});
}

}  // namespace
}  // namespace crosvm::devices::proxy
