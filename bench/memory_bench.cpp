// Memory held per buffered round, over its payload bytes, with
// 384-dimension vectors.
//
// A counting allocator (this program replaces the global operator new and
// delete, and counts malloc_usable_size: what the heap really hands out)
// measures the bytes a HybridBuffer holds for 10 000 buffered rounds; the
// payload of a round is its text (Round::payload_bytes: session, user, roles
// and contents) plus its vectors (4 bytes per dimension per chunk). The
// buffer never flushes here (max_size above the count), so every round is
// held. Baseline in the same run: the same rounds and vectors held in a plain
// std::vector<Round> plus std::vector<std::vector<float>>, the least a
// container of these types can hold.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "bench_support.h"
#include "memfuse/chunker.h"
#include "memfuse/embedder.h"
#include "memfuse/flush_manager.h"
#include "memfuse/hybrid_buffer.h"
#include "memfuse/sim/sim_runtime.h"
#include "scripted_stores.h"

namespace {
std::atomic<std::int64_t> g_live_bytes{0};
}  // namespace

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_live_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p != nullptr) {
    g_live_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  }
  return p;
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

namespace {

using namespace std::chrono_literals;
constexpr int kRounds = 10'000;
constexpr int kDimension = 384;

// The payload of the rounds seed_round() makes, with their vectors.
struct Payload {
  std::int64_t text = 0;
  std::int64_t vectors = 0;
  [[nodiscard]] std::int64_t total() const { return text + vectors; }
};

Payload payload_of(const std::vector<memfuse::NewRound>& input) {
  Payload p;
  for (const auto& in : input) {
    memfuse::Round r;
    r.session_id = in.session_id;
    r.user_id = in.user_id;
    r.messages = in.messages;
    p.text += static_cast<std::int64_t>(r.payload_bytes());
    p.vectors += static_cast<std::int64_t>(memfuse::chunk_round(r, 1024).size()) * kDimension * 4;
  }
  return p;
}

void BM_MemoryPerBufferedRound(benchmark::State& state) {
  double ratio = 0, held_per_round = 0, payload_per_round = 0;
  for (auto _ : state) {
    memfuse::sim::SimRuntime rt({.seed = 1, .strategy = memfuse::sim::Strategy::Fifo,
                                 .trace_mode = memfuse::sim::Trace::Mode::HashOnly});
    // Counted from before the buffer exists: create() prepares its first run
    // (room and vectors for 1 024 rounds), which the rounds then fill.
    const std::int64_t before = g_live_bytes.load();
    memfuse::testing::ScriptedRoundStore rounds(rt);
    memfuse::testing::ScriptedVectorStore vectors(rt);
    memfuse::HashingEmbedder embedder(kDimension);
    memfuse::FlushManagerConfig fc;
    fc.enable_auto_flush = false;
    auto manager = std::move(*memfuse::FlushManager::create(rt, fc));
    memfuse::HybridBufferOptions bo;
    bo.buffer.max_size = kRounds + 1;
    bo.buffer.max_pending_rounds = kRounds + 1;
    bo.buffer.enable_auto_flush = false;
    auto buffer =
        std::move(*memfuse::HybridBuffer::create(rt, *manager, rounds, vectors, embedder, std::move(bo)));
    (void)rt.run_until_quiescent(1'000'000);
    // The input's strings move into the buffer; its shells are freed before
    // the count is read, and the payload is counted apart.
    std::vector<memfuse::NewRound> input;
    for (int i = 0; i < kRounds; ++i) input.push_back(memfuse::bench::seed_round(static_cast<std::uint64_t>(i)));
    const Payload payload = payload_of(input);
    for (auto& r : input) {
      if (!buffer->add(std::move(r))) state.SkipWithError("add failed");
      // The executor runs meanwhile, as it does in production: the runs the
      // buffer asks for are prepared, and the one ready next is counted.
      (void)rt.run_for(std::chrono::seconds(0));
    }
    input.clear();
    input.shrink_to_fit();  // the moved-from shells
    const std::int64_t held = g_live_bytes.load() - before;

    held_per_round = static_cast<double>(held) / kRounds;
    payload_per_round = static_cast<double>(payload.total()) / kRounds;
    ratio = static_cast<double>(held) / static_cast<double>(payload.total());
    bool drained = false;
    buffer->drain(rt.now() + 60s, [&](memfuse::HybridDrainReport) { drained = true; });
    (void)rt.run_until_quiescent(100'000'000);
    if (!drained) state.SkipWithError("the drain did not finish");
  }
  state.counters["held_bytes_per_round"] = held_per_round;
  state.counters["payload_bytes_per_round"] = payload_per_round;
  state.counters["held_over_payload"] = ratio;
}
BENCHMARK(BM_MemoryPerBufferedRound)->Iterations(1)->Unit(benchmark::kMillisecond);

// Baseline: the rounds and their vectors in plain containers.
void BM_MemoryPlainContainers(benchmark::State& state) {
  double ratio = 0, held_per_round = 0;
  for (auto _ : state) {
    memfuse::HashingEmbedder embedder(kDimension);
    const std::int64_t before = g_live_bytes.load();
    std::vector<memfuse::NewRound> input;
    for (int i = 0; i < kRounds; ++i) input.push_back(memfuse::bench::seed_round(static_cast<std::uint64_t>(i)));
    const Payload payload = payload_of(input);
    std::vector<memfuse::Round> held_rounds;
    std::vector<std::vector<float>> held_vectors;
    held_rounds.reserve(kRounds);
    for (auto& in : input) {
      memfuse::Round r;
      r.session_id = std::move(in.session_id);
      r.messages = std::move(in.messages);
      for (const auto& c : memfuse::chunk_round(r, 1024)) held_vectors.push_back(*embedder.embed(c.text));
      held_rounds.push_back(std::move(r));
    }
    input.clear();
    input.shrink_to_fit();
    const std::int64_t held = g_live_bytes.load() - before;
    held_per_round = static_cast<double>(held) / kRounds;
    ratio = static_cast<double>(held) / static_cast<double>(payload.total());
    benchmark::DoNotOptimize(held_rounds.data());
  }
  state.counters["held_bytes_per_round"] = held_per_round;
  state.counters["held_over_payload"] = ratio;
}
BENCHMARK(BM_MemoryPlainContainers)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
