// Logger on real threads: one handle shared by several threads loses no line
// and races on nothing (run under the tsan preset).
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "memfuse/logger.h"

namespace memfuse {
namespace {

class CountingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::size_t count = 0;  // guarded by base_sink's mutex

 protected:
  void sink_it_(const spdlog::details::log_msg&) override { ++count; }
  void flush_() override {}
};

TEST(LoggerThreads, ConcurrentWritersLoseNoLine) {
  auto sink = std::make_shared<CountingSink>();
  const Logger log(std::make_shared<spdlog::logger>("threads", sink));
  constexpr int kThreads = 4;
  constexpr int kLines = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < kLines; ++i) log.info("thread {} line {}", t, i);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(sink->count, static_cast<std::size_t>(kThreads * kLines));
}

}  // namespace
}  // namespace memfuse
