// Uses the installed public API: configuration, ids and validation.
#include <cstdio>

#include "memfuse/config.h"
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
  std::printf("consumer: ok (max_size=%d, round id %s)\n", config->buffer.hybrid_buffer.max_size,
              id.to_string().c_str());
  return 0;
}
