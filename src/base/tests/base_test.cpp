#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/event_loop.h"
#include "base/eventfd.h"
#include "base/fd.h"
#include "base/mmap.h"

namespace crosvm::base {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Error("odd: " + std::to_string(x));
  return x / 2;
}

Status Chain(int x, int* out) {
  CROSVM_ASSIGN_OR_RETURN(int h, Half(x));
  *out = h;
  return Ok();
}

TEST(ErrorTest, CarriesErrnoAndContext) {
  Error e = Error::FromErrno("open /nope", ENOENT).Wrap("loading kernel");
  EXPECT_EQ(e.errnum(), ENOENT);
  EXPECT_EQ(e.ToString(), "loading kernel: open /nope: No such file or directory");
  EXPECT_EQ(Error("plain").ToString(), "plain");
}

TEST(ErrorTest, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(Chain(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status s = Chain(3, &out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "odd: 3");
}

TEST(ScopedFdTest, ClosesOnDestructionAndMove) {
  int raw = open("/dev/null", O_RDONLY);
  ASSERT_GE(raw, 0);
  {
    ScopedFd a(raw);
    ScopedFd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(EventFdTest, WriteThenReadSums) {
  auto ev = EventFd::Create();
  ASSERT_TRUE(ev.ok());
  ASSERT_TRUE(ev->Write(2).ok());
  ASSERT_TRUE(ev->Write(3).ok());
  auto v = ev->Read();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 5u);
}

TEST(EventLoopTest, DispatchesAndQuits) {
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  auto ev = EventFd::Create(EFD_NONBLOCK);
  ASSERT_TRUE(ev.ok());
  int calls = 0;
  ASSERT_TRUE(loop->Add(ev->fd(),
                        [&](uint32_t) {
                          ++calls;
                          (void)ev->Read();
                          loop->Quit();
                        })
                  .ok());
  ASSERT_TRUE(ev->Write().ok());
  ASSERT_TRUE(loop->Run().ok());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(loop->Remove(ev->fd()).ok());
  EXPECT_FALSE(loop->Remove(ev->fd()).ok());
}

TEST(MemoryMappingTest, AnonymousIsZeroedAndWritable) {
  auto m = MemoryMapping::Anonymous(8192);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 8192u);
  EXPECT_EQ(m->data()[4096], 0);
  m->data()[4096] = 7;
  MemoryMapping moved = std::move(*m);
  EXPECT_EQ(moved.data()[4096], 7);
  EXPECT_EQ(m->data(), nullptr);
}

}  // namespace
}  // namespace crosvm::base
