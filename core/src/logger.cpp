#include "memfuse/logger.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace memfuse {
namespace {

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return spdlog::level::trace;
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Warn: return spdlog::level::warn;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Off: return spdlog::level::off;
  }
  return spdlog::level::off;
}

}  // namespace

Logger Logger::to_stderr(std::string name, LogLevel level) {
  // Not registered in spdlog's global registry: no hidden global state.
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(std::move(name), std::move(sink));
  logger->set_level(to_spdlog(level));
  return Logger(std::move(logger));
}

bool Logger::enabled(LogLevel level) const noexcept {
  return logger_ != nullptr && level != LogLevel::Off && logger_->should_log(to_spdlog(level));
}

void Logger::write(LogLevel level, std::string_view message) const {
  logger_->log(to_spdlog(level), message);
}

}  // namespace memfuse
