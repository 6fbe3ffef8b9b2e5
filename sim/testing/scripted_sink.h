// ScriptedSink: attempt functions with scripted behaviour, for testing
// FlushManager on any runtime. Each behaviour completes through the runtime's
// timers, so on the simulator its timing is exact virtual time.
#pragma once

#include <memory>
#include <vector>

#include "memfuse/flush_manager.h"
#include "memfuse/runtime.h"

namespace memfuse::testing {

enum class Behaviour {
  Succeed,          // complete(ok) after `latency`
  FailRetryable,    // complete(Unavailable, retryable) after `latency`
  FailFinal,        // complete(InvalidArgument, final) after `latency`
  Hang,             // never complete (until cancelled; then still nothing)
  CompleteLate,     // complete(ok) after `latency`, ignoring cancellation
};

struct Script {
  std::vector<Behaviour> attempts;  // per attempt number; the last repeats
  Duration latency{};
};

// Returns an attempt function that plays `script`. `runtime` must outlive it.
AttemptFn scripted_attempt(Runtime& runtime, Script script);

}  // namespace memfuse::testing
