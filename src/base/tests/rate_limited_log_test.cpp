#include "base/rate_limited_log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace crosvm::base {
namespace {

size_t CountLines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(RateLimitedLogTest, TenThousandLinesGiveABurst) {
  RateLimitedLog log(5, std::chrono::seconds(3600));
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 10000; ++i) log.Warn("bad access " + std::to_string(i));
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountLines(out), 5u) << out;
  EXPECT_EQ(log.total_suppressed(), 9995u);
}

TEST(RateLimitedLogTest, MacroBuildsOnlyAdmittedLinesAndReportsSuppressed) {
  RateLimitedLog log(2, std::chrono::seconds(0));  // a new window every time
  int built = 0;
  auto expensive = [&] {
    ++built;
    return std::string("x");
  };
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) CROSVM_LOG_RATE_LIMITED(log, WARNING) << expensive();
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountLines(out), 3u);  // period 0: every call opens a new window
  EXPECT_EQ(built, 3);

  RateLimitedLog tight(1, std::chrono::seconds(3600));
  built = 0;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 100; ++i) CROSVM_LOG_RATE_LIMITED(tight, WARNING) << expensive();
  out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountLines(out), 1u);
  EXPECT_EQ(built, 1) << "suppressed lines are never built";
}

TEST(RateLimitedLogTest, SuppressedCountGoesWithTheNextLine) {
  RateLimitedLog log(1, std::chrono::seconds(1));
  ::testing::internal::CaptureStderr();
  log.Warn("first");
  for (int i = 0; i < 7; ++i) log.Warn("dropped");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  log.Warn("after");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountLines(out), 2u) << out;
  EXPECT_NE(out.find("after (7 similar messages suppressed)"), std::string::npos) << out;
}

TEST(RateLimitedLogTest, ThreadSafe) {
  RateLimitedLog log(10, std::chrono::seconds(3600));
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2500; ++i) log.Warn("racing");
    });
  }
  for (auto& t : threads) t.join();
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountLines(out), 10u);
  EXPECT_EQ(log.total_suppressed(), 9990u);
}

}  // namespace
}  // namespace crosvm::base
