// Logger: the handle through which core code logs.
//
// Code receives a Logger (by constructor, like every port) instead of reaching
// for a global. A default-constructed Logger discards everything, so a library
// user who passes nothing gets silence, not stderr noise. Behind it is an
// spdlog logger: production uses a stderr or file sink; the simulator installs
// a formatter that stamps lines with virtual time instead of the wall clock.
//
// Secrets (the Qdrant API key) are never passed to a Logger; see
// Config::to_redacted_json().
//
// Thread-safety: as the spdlog logger behind it (spdlog's _mt sinks are
// thread-safe; the factory below uses one). Copying a Logger shares the sink.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>

namespace spdlog {
class logger;
}

namespace memfuse {

enum class LogLevel { Trace, Debug, Info, Warn, Error, Off };

class Logger {
 public:
  Logger() = default;
  explicit Logger(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {}

  // A logger writing to stderr (colour when a terminal), at `level` and above.
  [[nodiscard]] static Logger to_stderr(std::string name, LogLevel level = LogLevel::Info);

  [[nodiscard]] bool enabled(LogLevel level) const noexcept;

  template <typename... Args>
  void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) const {
    if (!enabled(level)) return;
    write(level, fmt::vformat(format, fmt::make_format_args(args...)));
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::Debug, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::Info, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::Warn, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) const {
    log(LogLevel::Error, format, std::forward<Args>(args)...);
  }

  // The spdlog logger behind this handle (null when discarding).
  [[nodiscard]] const std::shared_ptr<spdlog::logger>& backend() const noexcept {
    return logger_;
  }

 private:
  void write(LogLevel level, std::string_view message) const;

  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace memfuse
