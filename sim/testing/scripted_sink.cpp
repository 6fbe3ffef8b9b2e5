#include "scripted_sink.h"

#include "memfuse/executor.h"

namespace memfuse::testing {

AttemptFn scripted_attempt(Runtime& runtime, Script script) {
  return [&runtime, script](std::shared_ptr<Attempt> attempt) {
    const auto n = static_cast<std::size_t>(attempt->number());
    const Behaviour b = script.attempts.empty() ? Behaviour::Succeed
                                                : script.attempts[std::min(n, script.attempts.size()) - 1];
    if (b == Behaviour::Hang) return;
    std::shared_ptr<Timer> timer = runtime.make_timer(runtime.executor());
    if (b != Behaviour::CompleteLate) {
      attempt->on_cancel([timer] { timer->cancel(); });
    }
    timer->async_wait_until(runtime.clock().now() + script.latency,
                            [attempt, b, timer](std::error_code ec) {
                              if (ec) return;  // cancelled: the manager already moved on
                              switch (b) {
                                case Behaviour::FailRetryable:
                                  attempt->complete(fail(ErrorCode::Unavailable, true, "scripted 503"));
                                  break;
                                case Behaviour::FailFinal:
                                  attempt->complete(fail(ErrorCode::InvalidArgument, false, "scripted 400"));
                                  break;
                                default:
                                  attempt->complete({});
                                  break;
                              }
                            });
  };
}

}  // namespace memfuse::testing
