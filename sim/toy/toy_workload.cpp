#include "toy_workload.h"

#include <chrono>

#include <boost/asio/post.hpp>

#include "memfuse/executor.h"

namespace memfuse::toy {

std::shared_ptr<ToyWorkload> ToyWorkload::create(Runtime& runtime, ToyOptions options) {
  return std::shared_ptr<ToyWorkload>(new ToyWorkload(runtime, options));
}

ToyWorkload::ToyWorkload(Runtime& runtime, ToyOptions options)
    : runtime_(runtime), options_(options), confirm_timer_(runtime.make_timer(runtime.executor())) {}

void ToyWorkload::start() {
  auto self = shared_from_this();
  boost::asio::post(runtime_.executor().get(), [self] { self->writer_step(0); });
  boost::asio::post(runtime_.executor().get(), [self] { self->read(); });
}

void ToyWorkload::writer_step(int i) {
  {
    std::lock_guard lock(mutex_);
    ++staged_;
    if (options_.planted_bug) published_ = staged_;  // BUG: publishes a partial batch
  }
  auto self = shared_from_this();
  if (i + 1 < options_.steps) {
    boost::asio::post(runtime_.executor().get(), [self, i] { self->writer_step(i + 1); });
  } else {
    boost::asio::post(runtime_.executor().get(), [self] { self->publish_and_persist(); });
  }
}

void ToyWorkload::publish_and_persist() {
  int batch = 0;
  {
    std::lock_guard lock(mutex_);
    published_ = staged_;
    batch = staged_;
  }
  auto self = shared_from_this();
  runtime_.blocking().submit(
      "toy.persist", runtime_.executor(),
      [self, batch](const CancelToken&) {
        std::lock_guard lock(self->mutex_);
        self->outcome_.persisted = batch;
      },
      [self](std::error_code ec) {
        if (ec) return;
        self->confirm_timer_->async_wait_until(
            self->runtime_.clock().now() + std::chrono::milliseconds(1),
            [self](std::error_code timer_ec) {
              if (timer_ec) return;
              bool all_done = false;
              {
                std::lock_guard lock(self->mutex_);
                self->outcome_.finished = true;
                all_done = self->outcome_.observed >= 0;
              }
              if (all_done && self->options_.on_finished) self->options_.on_finished();
            });
      });
}

void ToyWorkload::read() {
  bool all_done = false;
  {
    std::lock_guard lock(mutex_);
    outcome_.observed = published_;
    if (published_ == options_.observe_at) outcome_.bug_observed = true;
    all_done = outcome_.finished;
  }
  // Whichever of the reader and the confirmation comes last reports the end.
  if (all_done && options_.on_finished) options_.on_finished();
}

ToyOutcome ToyWorkload::outcome() const {
  std::lock_guard lock(mutex_);
  return outcome_;
}

}  // namespace memfuse::toy
