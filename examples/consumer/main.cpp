// Uses the installed public API: configuration, ids, validation, the
// production runtime and the FlushManager.
#include <cstdio>
#include <future>

#include "memfuse/asio_runtime.h"
#include "memfuse/config.h"
#include "memfuse/flush_manager.h"
#include "memfuse/ids.h"
#include "memfuse/validation.h"

int main() {
  auto config = memfuse::Config::from_json(R"({"buffer":{"hybrid_buffer":{"max_size":7}}})");
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().to_string().c_str());
    return 1;
  }
  memfuse::Round round;
  round.session_id = "s";
  round.messages = {{"user", "hello"}};
  if (!memfuse::validate_round(round, config->round_limits())) return 2;
  const auto id = memfuse::make_round_id(1, 2, 3);

  memfuse::AsioRuntime runtime({.io_threads = 1, .blocking_threads = 1});
  auto manager = memfuse::FlushManager::create(runtime, config->buffer.flush_manager);
  if (!manager) return 3;
  std::promise<memfuse::TaskStatus> outcome;
  memfuse::TaskSpec task;
  task.kind = "consumer";
  task.attempt = [](std::shared_ptr<memfuse::Attempt> a) { a->complete({}); };
  task.on_complete = [&](const memfuse::TaskOutcome& o, std::shared_ptr<void>) {
    outcome.set_value(o.status);
  };
  if (!(*manager)->submit(std::move(task))) return 4;
  if (outcome.get_future().get() != memfuse::TaskStatus::Success) return 5;
  std::promise<void> drained;
  (*manager)->drain(runtime.clock().now(), [&](memfuse::DrainReport) { drained.set_value(); });
  drained.get_future().wait();

  std::printf("consumer: ok (max_size=%d, round id %s, one flush task succeeded)\n",
              config->buffer.hybrid_buffer.max_size, id.to_string().c_str());
  return 0;
}
