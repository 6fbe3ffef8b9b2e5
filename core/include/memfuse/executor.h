// Executor: the executor port, which is Asio's executor model.
//
// Both runtimes hand out an asio::any_io_executor: the production one over an
// io_context, the simulated one over the deterministic sim context. Production
// code posts with asio::post/dispatch/defer and serialises with asio::strand
// on it, and never asks which runtime is underneath.
//
// The wrapper exists only so that memfuse/runtime.h can name the type without
// including Asio (which costs seconds per translation unit). Include this
// header where handlers are actually posted.
#pragma once

#include <utility>

#include <boost/asio/any_io_executor.hpp>

namespace memfuse {

class Executor {
 public:
  Executor() = default;
  explicit Executor(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  [[nodiscard]] const boost::asio::any_io_executor& get() const noexcept { return executor_; }

  friend bool operator==(const Executor& a, const Executor& b) noexcept {
    return a.executor_ == b.executor_;
  }

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace memfuse
