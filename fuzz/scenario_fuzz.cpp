// Fuzz target: the scenario-file parser (resolve_scenario), with the seed
// taken from the input's first byte.
// Properties: it never crashes; an error is InvalidArgument with a message;
// an accepted scenario's resolved form resolves to the same scenario (the
// replay guarantee: a dumped scenario replays exactly).
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "memfuse/sim/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint64_t seed = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto scenario = memfuse::sim::resolve_scenario(text, seed);
  if (!scenario) {
    FUZZ_CHECK(scenario.error().code() == memfuse::ErrorCode::InvalidArgument, "error code");
    FUZZ_CHECK(!scenario.error().message().empty(), "error message");
    return 0;
  }
  const std::string resolved = scenario->to_json();
  auto again = memfuse::sim::resolve_scenario(resolved, seed + 1);  // nothing left to draw
  FUZZ_CHECK(again.has_value(), "the resolved form parses");
  FUZZ_CHECK(again->to_json() == resolved, "the resolved form replays exactly");
  return 0;
}
