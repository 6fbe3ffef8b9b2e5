#include "legacy_buffer.h"

#include <boost/asio/post.hpp>

#include "memfuse/executor.h"

namespace memfuse::sim::legacy {

LegacyBuffer::LegacyBuffer(SimRuntime& runtime, int max_size) : runtime_(runtime), max_size_(max_size) {}

void LegacyBuffer::acquire(std::move_only_function<void()> critical_section) {
  if (!locked_) {
    locked_ = true;
    boost::asio::post(runtime_.executor().get(), std::move(critical_section));
    return;
  }
  waiters_.push_back(std::move(critical_section));
}

void LegacyBuffer::release() {
  if (waiters_.empty()) {
    locked_ = false;
    return;
  }
  auto next = std::move(waiters_.front());
  waiters_.pop_front();
  boost::asio::post(runtime_.executor().get(), std::move(next));  // the lock passes on, FIFO
}

void LegacyBuffer::flush_locked(std::move_only_function<void()> then) {
  if (buffer_.empty()) {
    then();
    return;
  }
  auto batch = std::make_shared<std::vector<Round>>(std::move(buffer_));
  buffer_.clear();
  const TimePoint start = runtime_.now();
  auto& blocking = runtime_.blocking();
  // SQLite, then Qdrant, with the lock held throughout.
  (void)blocking.submit("sqlite.write", runtime_.executor(), [](const CancelToken&) {},
                        [this, batch, start, then = std::move(then)](std::error_code) mutable {
                          (void)runtime_.blocking().submit(
                              "qdrant.upsert", runtime_.executor(), [](const CancelToken&) {},
                              [this, batch, start, then = std::move(then)](std::error_code) mutable {
                                for (const auto& r : *batch) stored_.insert(r.id);
                                flushes_.emplace_back(start, runtime_.now());
                                then();
                              });
                        });
}

void LegacyBuffer::add(Round round, std::move_only_function<void()> done) {
  acquire([this, round = std::move(round), done = std::move(done)]() mutable {
    buffer_.push_back(std::move(round));
    if (static_cast<int>(buffer_.size()) < max_size_) {
      release();
      done();
      return;
    }
    flush_locked([this, done = std::move(done)]() mutable {
      release();
      done();
    });
  });
}

void LegacyBuffer::list(std::string, std::move_only_function<void()> done) {
  acquire([this, done = std::move(done)]() mutable {
    (void)runtime_.blocking().submit("sqlite.read", runtime_.executor(), [](const CancelToken&) {},
                                     [this, done = std::move(done)](std::error_code) mutable {
                                       release();
                                       done();
                                     });
  });
}

void LegacyBuffer::flush(std::move_only_function<void()> done) {
  acquire([this, done = std::move(done)]() mutable {
    flush_locked([this, done = std::move(done)]() mutable {
      release();
      done();
    });
  });
}

}  // namespace memfuse::sim::legacy
