// memory_demo: the embedded default end to end. Rounds from two sessions go
// into a HybridBuffer backed by one SQLite file (rounds and vectors), with the
// hashing embedder; then a search per session, the stats, and a drain.
//
//   memory_demo [DB_FILE]     (default: memfuse-demo.db in the current directory)
//
// Run it twice: the second run finds the first run's rounds in the file and
// continues their sequence numbers.
#include <cstdio>
#include <future>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "memfuse/asio_runtime.h"
#include "memfuse/pipeline.h"

using namespace memfuse;
using namespace std::chrono_literals;

namespace {

template <typename T>
T await(std::move_only_function<void(std::move_only_function<void(T)>)> start) {
  std::promise<T> p;
  start([&p](T v) { p.set_value(std::move(v)); });
  return p.get_future().get();
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  config.sqlite.path = argc > 1 ? argv[1] : "memfuse-demo.db";
  config.sqlite.synchronous = SqliteSynchronous::Full;
  config.buffer.hybrid_buffer.max_size = 3;  // a size-triggered flush every 3 rounds
  AsioRuntime runtime({.io_threads = 2, .blocking_threads = 2});
  auto pipeline = Pipeline::open(runtime, config, Logger::to_stderr("memfuse", LogLevel::Warn));
  if (!pipeline) {
    std::fprintf(stderr, "memory_demo: %s\n", pipeline.error().to_string().c_str());
    return 1;
  }
  HybridBuffer& buffer = (*pipeline)->buffer();

  // The seed's scenario: a conversation that switches context between two sessions.
  const std::vector<std::pair<std::string, std::vector<Message>>> rounds = {
      {"trip-planning", {{"user", "I want to visit Lisbon in May."}, {"assistant", "May is lovely in Lisbon: warm, not yet crowded."}}},
      {"cooking", {{"user", "How long do I boil an egg for a soft yolk?"}, {"assistant", "Six and a half minutes, then ice water."}}},
      {"trip-planning", {{"user", "Which neighbourhood should I stay in?"}, {"assistant", "Alfama for views, Principe Real for quiet."}}},
      {"cooking", {{"user", "And for a hard-boiled egg?"}, {"assistant", "Ten minutes."}}},
      {"trip-planning", {{"user", "Remind me: when am I going to Lisbon?"}, {"assistant", "In May."}}},
  };
  for (const auto& [session, messages] : rounds) {
    auto r = buffer.add(NewRound{session, std::nullopt, messages});
    if (!r) {
      std::fprintf(stderr, "memory_demo: add: %s\n", r.error().to_string().c_str());
      return 1;
    }
    fmt::print("added  {:<14} seq {:>3}  id {}  ({} chunk{})\n", session, r->seq, r->id.to_string(),
               r->chunks, r->chunks == 1 ? "" : "s");
  }

  for (const auto& [session, query] : std::vector<std::pair<std::string, std::string>>{
           {"trip-planning", "when is the Lisbon trip"}, {"cooking", "soft boiled egg minutes"}}) {
    auto hits = await<Result<std::vector<ScoredChunk>>>(
        [&](auto done) { buffer.search(session, query, 2, std::move(done)); });
    if (!hits) {
      std::fprintf(stderr, "memory_demo: search: %s\n", hits.error().to_string().c_str());
      return 1;
    }
    fmt::print("\nsearch {:<14} \"{}\"\n", session, query);
    for (const auto& h : *hits) {
      std::string text = h.chunk.text.substr(0, 60);
      for (char& c : text) c = c == '\n' ? ' ' : c;
      fmt::print("  {:.3f}  round {}.. chunk {}  {}\n", h.score, h.chunk.round_id.to_string().substr(0, 8),
                 h.chunk.index, text);
    }
  }

  auto flushed = await<Result<void>>([&](auto done) { buffer.flush(std::move(done)); });
  fmt::print("\nmanual flush: {}\n", flushed ? "durable" : flushed.error().to_string());
  const auto s = buffer.stats();
  fmt::print("stats: received {}, chunks {}, flushes {} (auto {}, manual {}), succeeded {}, failed {}, "
             "buffered {}, in flight {}\n",
             s.total_rounds_received, s.total_chunks_created, s.total_flushes, s.total_auto_flushes,
             s.total_manual_flushes, s.total_successful_flushes, s.total_failed_flushes, s.buffer_rounds,
             s.in_flight_rounds);

  auto report = await<HybridDrainReport>(
      [&](auto done) { buffer.drain(runtime.clock().now() + 30s, std::move(done)); });
  auto stored = (*pipeline)->sqlite_rounds().count();
  fmt::print("drain: {}, {} rounds not persisted; {} rounds in {}\n",
             report.completed_in_time ? "complete" : "incomplete", report.unpersisted.size(),
             stored ? *stored : 0, config.sqlite.path);
  return report.completed_in_time ? 0 : 1;
}
