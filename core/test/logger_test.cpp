// Logger: a handle passed in, never a global; a default handle discards.
#include "memfuse/logger.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace memfuse {
namespace {

class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines.emplace_back(msg.payload.data(), msg.payload.size());
  }
  void flush_() override {}
};

TEST(Logger, DefaultHandleDiscardsEverything) {
  const Logger log;
  EXPECT_FALSE(log.enabled(LogLevel::Error));
  log.error("nothing {} happens", 1);  // must not crash
}

TEST(Logger, FormatsAndRespectsTheLevel) {
  auto sink = std::make_shared<CaptureSink>();
  auto backend = std::make_shared<spdlog::logger>("test", sink);
  backend->set_level(spdlog::level::info);
  const Logger log(backend);
  log.debug("hidden {}", 1);
  log.info("flush {} of {} rounds", "hybrid-1000-1", 5);
  log.warn("slow");
  ASSERT_EQ(sink->lines.size(), 2u);
  EXPECT_EQ(sink->lines[0], "flush hybrid-1000-1 of 5 rounds");
  EXPECT_EQ(sink->lines[1], "slow");
  EXPECT_TRUE(log.enabled(LogLevel::Info));
  EXPECT_FALSE(log.enabled(LogLevel::Debug));
  EXPECT_FALSE(log.enabled(LogLevel::Off));
}

TEST(Logger, StderrLoggerIsNotRegisteredGlobally) {
  const Logger log = Logger::to_stderr("memfuse-unregistered", LogLevel::Warn);
  EXPECT_TRUE(log.enabled(LogLevel::Warn));
  EXPECT_FALSE(log.enabled(LogLevel::Info));
  EXPECT_EQ(spdlog::get("memfuse-unregistered"), nullptr);
}

}  // namespace
}  // namespace memfuse
