// HybridBuffer on the simulated runtime with scripted in-memory stores:
// exact assertions about triggers, in-flight visibility, per-leg progress,
// restore order, idempotence, bounds, drain, bad input and stats.
#include "memfuse/hybrid_buffer.h"

#include <cmath>
#include <cstring>
#include <map>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "memfuse/chunker.h"
#include "memfuse/sim/sim_runtime.h"
#include "scripted_stores.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScriptedRoundStore;
using testing::ScriptedVectorStore;
using testing::StoreScript;
using testing::StoreStep;

// "<prefix><i>". (Not "r" + std::to_string(i): g++ 12 at -O2 warns falsely, bug 105329.)
std::string numbered(const char* prefix, int i) {
  std::string s = prefix;
  s.append(std::to_string(i));
  return s;
}

struct Options {
  int max_size = 3;
  bool auto_flush = false;
  Duration auto_flush_interval = 60s;
  std::size_t max_pending_rounds = 1000;
  std::size_t max_pending_bytes = 1u << 20;
  std::size_t max_message_bytes = 32u << 10;
  int workers = 2;
  int max_queue_size = 100;
  int max_retries = 3;
  Duration timeout = 30s;
  std::uint64_t first_seq = 1;
  const Embedder* embedder = nullptr;
};

struct Harness {
  explicit Harness(Options o = {})
      : rt({.seed = 7, .strategy = sim::Strategy::Fifo}),
        rounds(rt),
        vectors(rt),
        hashing(16) {
    FlushManagerConfig fc;
    fc.max_workers = o.workers;
    fc.max_queue_size = o.max_queue_size;
    fc.enable_auto_flush = false;
    fc.default_timeout = o.timeout;
    fc.retry.max_retries = o.max_retries;
    fc.retry.jitter = 0;
    fc.retry.backoff_base = 1s;
    auto m = FlushManager::create(rt, fc);
    EXPECT_TRUE(m) << m.error().to_string();
    manager = std::move(*m);
    HybridBufferOptions bo;
    bo.buffer.max_size = o.max_size;
    bo.buffer.enable_auto_flush = o.auto_flush;
    bo.buffer.auto_flush_interval = o.auto_flush_interval;
    bo.buffer.max_pending_rounds = o.max_pending_rounds;
    bo.buffer.max_pending_bytes = o.max_pending_bytes;
    bo.buffer.max_message_bytes = o.max_message_bytes;
    bo.chunking.chunk_size_bytes = 64;
    bo.first_seq = o.first_seq;
    bo.on_flush_failed = [this](const FlushFailure& f) { failures.push_back(f); };
    auto b = HybridBuffer::create(rt, *manager, rounds, vectors,
                                  o.embedder != nullptr ? *o.embedder : hashing, std::move(bo));
    EXPECT_TRUE(b) << b.error().to_string();
    buffer = std::move(*b);
  }

  ~Harness() {
    if (!drained) drain();
  }

  AddReceipt add(const std::string& session, const std::string& text) {
    auto r = buffer->add(NewRound{session, std::nullopt, {{"user", text}, {"assistant", std::string("ok: ").append(text)}}});
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : AddReceipt{};
  }

  void run() {
    const auto r = rt.run_until_quiescent(1'000'000);
    ASSERT_TRUE(r.quiescent) << r.to_string();
  }

  std::optional<Round> get(RoundId id) {
    std::optional<Result<std::optional<Round>>> out;
    buffer->get(id, [&](Result<std::optional<Round>> r) { out = std::move(r); });
    (void)rt.run_for(0s);
    EXPECT_TRUE(out.has_value()) << "the read completed in zero virtual time";
    EXPECT_TRUE(out && *out) << (out && !*out ? out->error().to_string() : "");
    return out && *out ? **out : std::nullopt;
  }

  std::vector<std::uint64_t> list_seqs(const std::string& session, std::size_t limit = 100) {
    std::optional<Result<std::vector<Round>>> out;
    buffer->list(session, limit, [&](Result<std::vector<Round>> r) { out = std::move(r); });
    (void)rt.run_for(0s);
    std::vector<std::uint64_t> seqs;
    EXPECT_TRUE(out && *out);
    if (out && *out) {
      for (const auto& r : **out) {
        EXPECT_EQ(r.session_id, session) << "list returned another session's round";
        seqs.push_back(r.seq);
      }
    }
    return seqs;
  }

  std::vector<ScoredChunk> search(const std::string& session, const std::string& text, std::size_t k = 5) {
    std::optional<Result<std::vector<ScoredChunk>>> out;
    buffer->search(session, text, k, [&](Result<std::vector<ScoredChunk>> r) { out = std::move(r); });
    (void)rt.run_for(0s);
    EXPECT_TRUE(out && *out);
    return out && *out ? **out : std::vector<ScoredChunk>{};
  }

  HybridDrainReport drain(Duration within = 60s) {
    std::optional<HybridDrainReport> report;
    buffer->drain(rt.now() + within, [&](HybridDrainReport r) { report = std::move(r); });
    run();
    drained = true;
    EXPECT_TRUE(report.has_value());
    return report.value_or(HybridDrainReport{});
  }

  sim::SimRuntime rt;
  ScriptedRoundStore rounds;
  ScriptedVectorStore vectors;
  HashingEmbedder hashing;
  std::unique_ptr<FlushManager> manager;
  std::unique_ptr<HybridBuffer> buffer;
  std::vector<FlushFailure> failures;
  bool drained = false;
};

TEST(HybridBuffer, AddAssignsIdsAndIncreasingSeqAndChunks) {
  Harness h({.max_size = 100, .first_seq = 42});
  const auto a = h.add("s1", "hello there");
  const auto b = h.add("s1", "general kenobi");
  EXPECT_EQ(a.seq, 42u);
  EXPECT_EQ(b.seq, 43u);
  EXPECT_NE(a.id, b.id);
  EXPECT_GE(a.chunks, 1u);
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.total_rounds_received, 2u);
  EXPECT_EQ(s.buffer_rounds, 2u);
  EXPECT_EQ(s.total_chunks_created, a.chunks + b.chunks);
  EXPECT_EQ(s.total_flushes, 0u);
}

// Ids are UUIDv7 in the order add() gave them, even within one millisecond:
// rand_a counts the rounds of a millisecond, and past 4096 the count runs
// into the next one. (The simulated clock stands still during this loop.)
TEST(HybridBuffer, IdsIncreaseStrictlyWithinAMillisecondAndPastItsCounter) {
  Harness h({.max_size = 10'000, .max_pending_rounds = 10'000, .max_pending_bytes = 64u << 20});
  auto ms_of = [](const RoundId& id) {
    std::int64_t ms = 0;
    for (int i = 0; i < 6; ++i) ms = (ms << 8) | id.uuid.bytes[static_cast<std::size_t>(i)];
    return ms;
  };
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(h.rt.now().time_since_epoch()).count();
  std::vector<RoundId> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(h.add("s", std::to_string(i)).id);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto& b = ids[i].uuid.bytes;
    ASSERT_EQ(b[6] >> 4, 7) << "version 7, id " << i;
    ASSERT_EQ(b[8] >> 6, 2) << "variant 10, id " << i;
    ASSERT_EQ(ms_of(ids[i]), now_ms + (i < 4096 ? 0 : 1)) << "id " << i;
    if (i > 0) {
      ASSERT_LT(ids[i - 1], ids[i]) << "id " << i << " is not after the one before";
    }
  }
}

TEST(HybridBuffer, SizeTriggerFlushesAtNormalAndBothLegsLand) {
  Harness h({.max_size = 3});
  for (int i = 0; i < 3; ++i) h.add("s", numbered("round ", i));
  auto s = h.buffer->stats();
  EXPECT_EQ(s.total_flushes, 1u);
  EXPECT_EQ(s.total_auto_flushes, 1u);
  EXPECT_EQ(s.total_manual_flushes, 0u);
  EXPECT_EQ(s.buffer_rounds, 0u);
  EXPECT_EQ(s.in_flight_rounds, 3u);
  EXPECT_EQ(s.flush_manager.submitted_by_priority[static_cast<std::size_t>(Priority::Normal)], 1u);
  h.run();
  s = h.buffer->stats();
  EXPECT_EQ(s.total_successful_flushes, 1u);
  EXPECT_EQ(s.pending_rounds, 0u);
  EXPECT_EQ(h.rounds.rows().size(), 3u);
  EXPECT_EQ(h.vectors.rows().size(), s.total_chunks_created);
  EXPECT_TRUE(s.last_flush_time.has_value());
}

TEST(HybridBuffer, InFlightRoundsStayVisibleToEveryRead) {
  Harness h({.max_size = 2});
  h.rounds.set_script({{}, 10s});
  h.vectors.set_script({{}, 20s});
  const auto a = h.add("s", "the quick brown fox");
  const auto b = h.add("s", "jumps over the lazy dog");
  ASSERT_EQ(h.buffer->stats().in_flight_rounds, 2u);
  // In flight, stored nowhere yet.
  (void)h.rt.run_for(1s);
  ASSERT_TRUE(h.rounds.rows().empty());
  ASSERT_TRUE(h.get(a.id).has_value());
  EXPECT_THAT(h.list_seqs("s"), ElementsAre(a.seq, b.seq));
  auto hits = h.search("s", "lazy dog");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits.front().chunk.round_id, b.id);
  // SQLite has committed, the vectors have not: still in flight, still seen once.
  (void)h.rt.run_for(12s);
  ASSERT_EQ(h.rounds.rows().size(), 2u);
  ASSERT_EQ(h.buffer->stats().in_flight_rounds, 2u);
  EXPECT_THAT(h.list_seqs("s"), ElementsAre(a.seq, b.seq)) << "deduplicated by id";
  // Both legs done: read from the stores.
  (void)h.rt.run_for(30s);
  EXPECT_EQ(h.buffer->stats().in_flight_rounds, 0u);
  EXPECT_TRUE(h.get(b.id).has_value());
  EXPECT_THAT(h.list_seqs("s"), ElementsAre(a.seq, b.seq));
  hits = h.search("s", "lazy dog");
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits.front().chunk.round_id, b.id);
}

TEST(HybridBuffer, RetryRedoesOnlyTheLegThatFailed) {
  Harness h({.max_size = 2});
  h.vectors.push(StoreStep::FailRetryable);
  h.vectors.push(StoreStep::FailRetryable);
  h.add("s", "one");
  h.add("s", "two");
  h.run();
  EXPECT_EQ(h.rounds.put_calls(), 1u) << "SQLite committed once and was not written again";
  EXPECT_EQ(h.vectors.put_calls(), 3u);
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.leg_writes_skipped, 2u);
  EXPECT_EQ(s.total_successful_flushes, 1u);
  EXPECT_EQ(s.flush_manager.retried, 2u);
}

TEST(HybridBuffer, CommitThenLostResponseDuplicatesNothing) {
  Harness h({.max_size = 2});
  h.rounds.push(StoreStep::ApplyThenFail);
  h.vectors.push(StoreStep::ApplyThenFail);
  const auto a = h.add("s", "alpha");
  const auto b = h.add("s", "beta");
  h.run();
  EXPECT_EQ(h.rounds.writes().at(a.id), 2) << "written twice (the retry)...";
  EXPECT_EQ(h.rounds.rows().size(), 2u) << "...stored once";
  EXPECT_EQ(h.vectors.rows().size(), h.buffer->stats().total_chunks_created);
  EXPECT_TRUE(h.get(b.id).has_value());
}

TEST(HybridBuffer, HungStoreCallTimesOutIsCancelledAndTheRetrySucceeds) {
  Harness h({.max_size = 1, .timeout = 5s});
  h.rounds.push(StoreStep::Hang);
  h.add("s", "stuck once");
  h.run();
  EXPECT_EQ(h.rt.now() - h.rt.options().start, 5s + 1s) << "timeout, then a 1 s backoff";
  EXPECT_EQ(h.rounds.rows().size(), 1u);
  EXPECT_EQ(h.buffer->stats().flush_manager.attempt_timeouts, 1u);
}

TEST(HybridBuffer, FinalFailureRestoresAheadOfNewerRoundsInOrder) {
  Harness h({.max_size = 3, .max_retries = 0});
  h.vectors.set_script({{StoreStep::FailFinal}, 10s});
  const auto a = h.add("s", "a");
  const auto b = h.add("s", "b");
  const auto c = h.add("s", "c");  // flush 1: a b c, fails at t=10s
  (void)h.rt.run_for(1s);
  const auto d = h.add("s", "d");  // newer, buffered meanwhile
  (void)h.rt.run_for(20s);
  ASSERT_EQ(h.failures.size(), 1u);
  EXPECT_THAT(h.failures[0].rounds, ElementsAre(a.id, b.id, c.id));
  EXPECT_EQ(h.failures[0].error.code(), ErrorCode::InvalidArgument);
  auto s = h.buffer->stats();
  EXPECT_EQ(s.total_failed_flushes, 1u);
  EXPECT_EQ(s.rounds_restored, 3u);
  EXPECT_EQ(s.buffer_rounds, 4u);
  EXPECT_EQ(s.pending_rounds, 4u) << "nothing lost";
  EXPECT_THAT(h.list_seqs("s"), ElementsAre(a.seq, b.seq, c.seq, d.seq));
  // The next flush takes them in seq order and succeeds.
  std::optional<Result<void>> durable;
  h.buffer->flush([&](Result<void> r) { durable = r; });
  h.run();
  ASSERT_TRUE(durable && *durable);
  EXPECT_EQ(h.rounds.rows().size(), 4u);
}

TEST(HybridBuffer, ABufferThatOutgrowsItsBatchSizeKeepsEveryRoundWithItsOwnChunks) {
  // The size trigger is 2 and the queue holds one task: the second batch is
  // refused, the size trigger waits, and the buffer grows past its first run
  // into larger ones. Then the first batch fails for good and goes back ahead
  // of them all. Every round must stay readable, in seq order, with its own
  // chunks (a chunk's text is derived from the round it is paired with).
  Harness h({.max_size = 2, .workers = 1, .max_queue_size = 1, .max_retries = 0});
  h.vectors.set_script({{StoreStep::FailFinal}, 10s});
  constexpr int kRounds = 61;
  std::vector<AddReceipt> added;
  std::map<RoundId, int> index_of;
  std::size_t all_chunks = 0;
  for (int i = 0; i < kRounds; ++i) {
    // Long enough for several chunks of 64 bytes, and a different count per round.
    std::string text = numbered("round number ", i);
    for (int k = 0; k < i % 4; ++k) text.append(" and some more words to chunk");
    added.push_back(h.add(i % 2 == 0 ? "even" : "odd", text));
    index_of[added.back().id] = i;
    all_chunks += added.back().chunks;
  }
  auto s = h.buffer->stats();
  EXPECT_EQ(s.flush_submit_rejected, 1u);
  EXPECT_EQ(s.in_flight_rounds, 2u);
  EXPECT_EQ(s.buffer_rounds, static_cast<std::size_t>(kRounds - 2));
  EXPECT_EQ(s.buffer_chunks, all_chunks - added[0].chunks - added[1].chunks);

  (void)h.rt.run_for(20s);  // the first batch fails for good and comes back
  ASSERT_EQ(h.failures.size(), 1u);
  s = h.buffer->stats();
  EXPECT_EQ(s.in_flight_rounds, 0u);
  EXPECT_EQ(s.buffer_rounds, static_cast<std::size_t>(kRounds));
  EXPECT_EQ(s.buffer_chunks, all_chunks);

  auto check_reads = [&](const char* when) {
    for (const char* session : {"even", "odd"}) {
      std::vector<std::uint64_t> want;
      std::size_t want_chunks = 0;
      for (int i = 0; i < kRounds; ++i) {
        if ((i % 2 == 0) == (std::string_view(session) == "even")) {
          want.push_back(added[static_cast<std::size_t>(i)].seq);
          want_chunks += added[static_cast<std::size_t>(i)].chunks;
        }
      }
      EXPECT_EQ(h.list_seqs(session), want) << when;
      const auto hits = h.search(session, "round number", HybridBuffer::kMaxReadCount);
      EXPECT_EQ(hits.size(), want_chunks) << when;
      for (const auto& hit : hits) {
        ASSERT_TRUE(index_of.contains(hit.chunk.round_id)) << when;
        const auto round = h.get(hit.chunk.round_id);
        ASSERT_TRUE(round.has_value()) << when;
        EXPECT_EQ(round->seq, added[static_cast<std::size_t>(index_of[hit.chunk.round_id])].seq) << when;
        const auto texts = chunk_round(*round, 64);
        ASSERT_LT(hit.chunk.index, texts.size()) << when;
        EXPECT_EQ(hit.chunk.text, texts[hit.chunk.index].text) << when;
        EXPECT_EQ(hit.chunk.id, texts[hit.chunk.index].id) << when;
      }
    }
  };
  check_reads("buffered");

  h.vectors.set_script({});
  std::optional<Result<void>> durable;
  h.buffer->flush([&](Result<void> r) { durable = r; });
  h.run();
  ASSERT_TRUE(durable && *durable);
  EXPECT_EQ(h.rounds.rows().size(), static_cast<std::size_t>(kRounds));
  const auto stored = h.vectors.rows();
  EXPECT_EQ(stored.size(), all_chunks);
  for (const auto& [id, c] : stored) {
    const auto round = h.rounds.rows().at(c.chunk.round_id);
    const auto texts = chunk_round(round, 64);
    ASSERT_LT(c.chunk.index, texts.size());
    EXPECT_EQ(c.chunk.text, texts[c.chunk.index].text);
  }
  check_reads("stored");
}

// A buffer that grows past its first run takes memory touched ahead, off the
// caller's thread (hybrid_buffer.cpp, Buffered): runs and a vector per chunk.
// What a round holds must not change: every stored vector is the embedder's,
// bit for bit, whether prepared memory held it or not.
void ExpectEveryStoredVectorIsTheEmbeddersOwn(Harness& h, std::size_t rounds, std::size_t chunks) {
  std::optional<Result<void>> durable;
  h.buffer->flush([&](Result<void> r) { durable = r; });
  h.run();
  ASSERT_TRUE(durable && *durable);
  EXPECT_EQ(h.rounds.rows().size(), rounds);
  const auto stored = h.vectors.rows();
  ASSERT_EQ(stored.size(), chunks);
  for (const auto& [id, c] : stored) {
    const auto want = h.hashing.embed(c.chunk.text);
    ASSERT_TRUE(want);
    ASSERT_EQ(c.vector.size(), want->size());
    EXPECT_EQ(std::memcmp(c.vector.data(), want->data(), want->size() * sizeof(float)), 0)
        << "chunk " << c.chunk.id.to_string() << " holds another vector";
  }
}

TEST(HybridBuffer, AGrowingBufferPutsItsRoundsInMemoryPreparedAhead) {
  // The size trigger (3 000) is past the first run (1 024 rounds): the buffer
  // grows, and asks for each next run while the current one is half full.
  // The executor runs between add()s, so every run after the first is ready
  // in time, and every chunk's vector goes into prepared memory.
  Harness h({.max_size = 3'000, .max_pending_rounds = 10'000, .max_pending_bytes = 64u << 20});
  constexpr int kRounds = 2'500;
  std::size_t chunks = 0;
  for (int i = 0; i < kRounds; ++i) {
    chunks += h.add(i % 2 == 0 ? "even" : "odd", numbered("round ", i)).chunks;
    (void)h.rt.run_for(0s);
  }
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.buffer_rounds, static_cast<std::size_t>(kRounds));
  EXPECT_EQ(s.prepared_runs_started, 3u);  // the first (made at create) and two of 1 024
  EXPECT_EQ(s.prepared_vectors_used, chunks);
  ExpectEveryStoredVectorIsTheEmbeddersOwn(h, kRounds, chunks);
}

TEST(HybridBuffer, AGrowingBufferWhoseExecutorDoesNotRunAllocatesItsRunsItself) {
  // The same growth, with the executor not run between add()s: the runs
  // asked for are not ready, so add() makes short runs itself, and only the
  // first run's vectors are prepared ones. Nothing else changes.
  Harness h({.max_size = 3'000, .max_pending_rounds = 10'000, .max_pending_bytes = 64u << 20});
  constexpr int kRounds = 2'500;
  std::size_t chunks = 0, first_run_chunks = 0;
  for (int i = 0; i < kRounds; ++i) {
    const auto n = h.add(i % 2 == 0 ? "even" : "odd", numbered("round ", i)).chunks;
    chunks += n;
    if (i < 1'024) first_run_chunks += n;
  }
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.prepared_runs_started, 1u);
  // The first run was prepared for one chunk a round (no cut has measured
  // more yet): at most that many vectors, and all of them while it lasted.
  EXPECT_EQ(s.prepared_vectors_used, std::min<std::size_t>(first_run_chunks, 1'024));
  ExpectEveryStoredVectorIsTheEmbeddersOwn(h, kRounds, chunks);
}

TEST(HybridBuffer, PreparedVectorsDoNotPileUpWhenRoundsHaveFewerChunksThanExpected) {
  // Spares are prepared with ceil(chunks per round of the last cut) vectors
  // a round. Rounds of 1, 1, 1 and 4 chunks (1.75 a round) leave a few over
  // at every cut; after 100 cuts the stock must still be what one run can use.
  Harness h({.max_size = 8});
  std::size_t chunks = 0;
  for (int i = 0; i < 800; ++i) {
    std::string text = numbered("r", i);
    if (i % 4 == 3) text.append(std::string(100, 'x'));
    chunks += h.add("s", text).chunks;
    (void)h.rt.run_for(10ms);
  }
  ASSERT_EQ(chunks, 1'400u) << "the rounds were meant to have 1, 1, 1 and 4 chunks";
  const auto s = h.buffer->stats();
  EXPECT_GE(s.total_flushes, 99u);
  EXPECT_GT(s.prepared_vectors_used, 1'000u);
  EXPECT_LE(s.prepared_vectors_ready, 16u);  // a run of 8 rounds, 2 chunks a round
  h.run();
  EXPECT_EQ(h.vectors.rows().size(), chunks);
}

TEST(HybridBuffer, ManualFlushIsHighAndReportsWhenDurable) {
  Harness h({.max_size = 100});
  h.rounds.set_script({{}, 3s});
  h.add("s", "x");
  h.add("s", "y");
  std::optional<Result<void>> durable;
  TimePoint at{};
  h.buffer->flush([&](Result<void> r) {
    durable = r;
    at = h.rt.now();
  });
  h.run();
  ASSERT_TRUE(durable && *durable);
  EXPECT_EQ(at - h.rt.options().start, 3s);
  EXPECT_EQ(h.rounds.rows().size(), 2u);
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.total_manual_flushes, 1u);
  EXPECT_EQ(s.total_auto_flushes, 0u) << "the seed swapped these two counters";
  EXPECT_EQ(s.flush_manager.submitted_by_priority[static_cast<std::size_t>(Priority::High)], 1u);
}

TEST(HybridBuffer, ManualFlushAlsoWaitsForBatchesAlreadyInFlight) {
  Harness h({.max_size = 2});
  h.rounds.set_script({{}, 10s});
  h.add("s", "1");
  h.add("s", "2");  // size flush, lands at t=10s
  (void)h.rt.run_for(1s);
  std::optional<Result<void>> durable;
  TimePoint at{};
  h.buffer->flush([&](Result<void> r) {  // nothing buffered, one batch in flight
    durable = r;
    at = h.rt.now();
  });
  h.run();
  ASSERT_TRUE(durable && *durable);
  EXPECT_EQ(at - h.rt.options().start, 10s);
}

TEST(HybridBuffer, TimerFlushesWhatIsBufferedAtLow) {
  Harness h({.max_size = 100, .auto_flush = true, .auto_flush_interval = 30s});
  h.add("s", "lonely round");
  (void)h.rt.run_for(29s);
  EXPECT_EQ(h.buffer->stats().total_flushes, 0u);
  (void)h.rt.run_for(2s);
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.total_flushes, 1u);
  EXPECT_EQ(s.total_auto_flushes, 1u);
  EXPECT_EQ(s.flushes_by_trigger[static_cast<std::size_t>(FlushTrigger::Timer)], 1u);
  EXPECT_EQ(s.flush_manager.submitted_by_priority[static_cast<std::size_t>(Priority::Low)], 1u);
  EXPECT_EQ(h.rounds.rows().size(), 1u);
}

TEST(HybridBuffer, SessionsNeverMixInOneBatch) {
  Harness h({.max_size = 4});
  const auto a1 = h.add("alice", "alice one");
  const auto b1 = h.add("bob", "bob one");
  const auto a2 = h.add("alice", "alice two");
  const auto b2 = h.add("bob", "bob two");  // one batch, two sessions
  h.run();
  const auto rows = h.rounds.rows();
  EXPECT_EQ(rows.at(a1.id).session_id, "alice");
  EXPECT_EQ(rows.at(a2.id).session_id, "alice");
  EXPECT_EQ(rows.at(b1.id).session_id, "bob");
  EXPECT_EQ(rows.at(b2.id).session_id, "bob");
  for (const auto& [id, c] : h.vectors.rows()) {
    EXPECT_EQ(c.chunk.session_id, rows.at(c.chunk.round_id).session_id);
  }
  EXPECT_THAT(h.list_seqs("alice"), ElementsAre(a1.seq, a2.seq));
  EXPECT_THAT(h.list_seqs("bob"), ElementsAre(b1.seq, b2.seq));
  for (const auto& hit : h.search("bob", "alice one")) EXPECT_EQ(hit.chunk.session_id, "bob");
}

TEST(HybridBuffer, ListKeepsTheMostRecentRoundsAcrossMemoryAndStore) {
  Harness h({.max_size = 3});
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 5; ++i) seqs.push_back(h.add("s", numbered("r", i)).seq);
  h.run();  // 3 stored, 2 buffered
  EXPECT_THAT(h.list_seqs("s", 4), ElementsAre(seqs[1], seqs[2], seqs[3], seqs[4]));
}

TEST(HybridBuffer, OverloadedWhenPendingRoundsWouldExceedTheBoundAndNothingChanges) {
  Harness h({.max_size = 3, .max_pending_rounds = 3});
  h.rounds.set_script({{}, 10s});
  for (int i = 0; i < 3; ++i) h.add("s", "r");  // flushed, in flight: still pending
  const auto before = h.buffer->stats();
  auto r = h.buffer->add(NewRound{"s", std::nullopt, {{"user", "one too many"}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::Overloaded);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_THAT(r.error().message(), HasSubstr("max_pending_rounds"));
  const auto after = h.buffer->stats();
  EXPECT_EQ(after.buffer_rounds, before.buffer_rounds);
  EXPECT_EQ(after.total_rounds_received, before.total_rounds_received);
  EXPECT_EQ(after.rejected_overloaded, 1u);
  h.run();
  EXPECT_TRUE(h.buffer->add(NewRound{"s", std::nullopt, {{"user", "room again"}}}));
}

TEST(HybridBuffer, OverloadedOnBytesCountsInFlightRoundsToo) {
  Harness h({.max_size = 1, .max_pending_bytes = 2048, .max_message_bytes = 1024});
  h.rounds.set_script({{}, 10s});
  h.add("s", std::string(600, 'x'));  // in flight: about 1200 bytes with the reply
  auto r = h.buffer->add(NewRound{"s", std::nullopt, {{"user", std::string(1024, 'y')}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::Overloaded);
  h.run();
  EXPECT_TRUE(h.buffer->add(NewRound{"s", std::nullopt, {{"user", std::string(1024, 'y')}}}))
      << "room again once the first round is durable";
}

TEST(HybridBuffer, RefusedSubmissionKeepsTheRoundsBufferedAndReadable) {
  Harness h({.max_size = 1, .workers = 1, .max_queue_size = 1});
  h.rounds.set_script({{}, 10s});
  const auto a = h.add("s", "first");   // accepted: the queue's one slot
  const auto b = h.add("s", "second");  // refused: QueueFull
  auto s = h.buffer->stats();
  EXPECT_EQ(s.flush_submit_rejected, 1u);
  EXPECT_EQ(s.buffer_rounds, 1u);
  EXPECT_TRUE(h.get(b.id).has_value());
  h.run();
  std::optional<Result<void>> durable;
  h.buffer->flush([&](Result<void> r) { durable = r; });
  h.run();
  ASSERT_TRUE(durable && *durable);
  EXPECT_EQ(h.rounds.rows().size(), 2u);
  EXPECT_TRUE(h.get(a.id).has_value());
}

TEST(HybridBuffer, DrainFlushesEverythingAtCriticalThenRefusesAdds) {
  Harness h({.max_size = 100});
  for (int i = 0; i < 4; ++i) h.add(i % 2 ? "a" : "b", numbered("r", i));
  const auto report = h.drain();
  EXPECT_TRUE(report.completed_in_time);
  EXPECT_TRUE(report.unpersisted.empty());
  EXPECT_EQ(h.rounds.rows().size(), 4u);
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.flush_manager.submitted_by_priority[static_cast<std::size_t>(Priority::Critical)], 1u);
  auto r = h.buffer->add(NewRound{"a", std::nullopt, {{"user", "late"}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::ShuttingDown);
}

TEST(HybridBuffer, DrainDeadlineHandsBackWhatItCouldNotPersistWithItsData) {
  Harness h({.max_size = 100});
  h.rounds.set_script({{StoreStep::Hang, StoreStep::Hang, StoreStep::Hang, StoreStep::Hang}, {}});
  const auto a = h.add("s", "never stored");
  const auto b = h.add("s", "nor this");
  const auto report = h.drain(3s);
  EXPECT_FALSE(report.completed_in_time);
  ASSERT_EQ(report.unpersisted.size(), 2u);
  EXPECT_EQ(report.unpersisted[0].id, a.id);
  EXPECT_EQ(report.unpersisted[1].id, b.id);
  EXPECT_EQ(report.unpersisted[1].messages[0].content, "nor this");
  EXPECT_EQ(h.buffer->stats().pending_rounds, 0u);
}

// A full flush queue at drain time: the drain's batch waits for the batches
// in flight and goes next, instead of being handed back with time to spare.
TEST(HybridBuffer, DrainWithAFullQueueWaitsForSpaceAndPersistsEverything) {
  Harness h({.max_size = 1, .workers = 1, .max_queue_size = 1});
  h.rounds.set_script({{}, 10s});
  const auto a = h.add("s", "in flight");  // takes the queue's one slot for 10 s
  const auto b = h.add("s", "buffered");   // refused: QueueFull, stays buffered
  ASSERT_EQ(h.buffer->stats().flush_submit_rejected, 1u);
  const auto report = h.drain(60s);
  EXPECT_TRUE(report.completed_in_time);
  EXPECT_TRUE(report.unpersisted.empty());
  EXPECT_EQ(h.rounds.rows().size(), 2u);
  const auto s = h.buffer->stats();
  EXPECT_EQ(s.flush_submit_rejected, 2u) << "the drain's first submission met the full queue";
  EXPECT_EQ(s.flush_manager.submitted_by_priority[static_cast<std::size_t>(Priority::Critical)], 1u);
  EXPECT_EQ(s.pending_rounds, 0u);
  (void)a;
  (void)b;
}

// ... and when the deadline comes first, what is left is handed back, with its data.
TEST(HybridBuffer, DrainWaitingForSpaceStopsAtTheDeadline) {
  Harness h({.max_size = 1, .workers = 1, .max_queue_size = 1, .timeout = 100s});
  h.rounds.set_script({{}, 50s});
  h.add("s", "in flight");
  const auto b = h.add("s", "buffered");
  const auto report = h.drain(5s);
  EXPECT_FALSE(report.completed_in_time);
  ASSERT_EQ(report.unpersisted.size(), 2u);
  EXPECT_EQ(report.unpersisted[1].id, b.id);
  EXPECT_EQ(h.buffer->stats().pending_rounds, 0u);
}

TEST(HybridBuffer, AReadOnAHungStoreTimesOutInsteadOfHanging) {
  Harness h({.max_size = 1});
  h.add("s", "stored");
  h.run();
  h.rounds.set_script({{}, {}, {}, true});
  std::optional<Result<std::vector<Round>>> out;
  h.buffer->list("s", 10, [&](Result<std::vector<Round>> r) { out = std::move(r); });
  (void)h.rt.run_for(29s);
  EXPECT_FALSE(out.has_value()) << "still waiting before read_timeout (30 s)";
  (void)h.rt.run_for(2s);
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->has_value());
  EXPECT_EQ(out->error().code(), ErrorCode::Timeout);
  EXPECT_TRUE(out->error().retryable());
  h.rounds.set_script({});
}

TEST(HybridBuffer, StatsJsonHasTheSeedFields) {
  Harness h({.max_size = 100});
  h.add("s", "x");
  const auto j = nlohmann::json::parse(h.buffer->stats().to_json());
  for (const char* key : {"total_rounds_received", "total_chunks_created", "total_flushes",
                          "total_auto_flushes", "total_manual_flushes", "pending_flush_tasks",
                          "current_buffer_size", "last_flush_time", "flush_manager_stats"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["current_buffer_size"]["rounds"], 1);
}

// --- bad input: a clear error, and the buffer unchanged -------------------

class FixedEmbedder final : public Embedder {
 public:
  FixedEmbedder(int dimension, std::vector<float> v) : dimension_(dimension), v_(std::move(v)) {}
  int dimension() const noexcept override { return dimension_; }
  Result<std::vector<float>> embed(std::string_view) const override { return v_; }

 private:
  int dimension_;
  std::vector<float> v_;
};

class FailingEmbedder final : public Embedder {
 public:
  int dimension() const noexcept override { return 4; }
  Result<std::vector<float>> embed(std::string_view) const override {
    return fail(ErrorCode::Unavailable, true, "model server down");
  }
};

struct BadCase {
  std::string name;
  NewRound round;
  std::string expect;  // in the message
};

std::vector<BadCase> bad_cases() {
  auto msg = [](std::string role, std::string content) { return Message{std::move(role), std::move(content)}; };
  return {
      {"no messages", {"s", std::nullopt, {}}, "messages"},
      {"empty content", {"s", std::nullopt, {msg("user", "")}}, "content"},
      {"invalid utf8", {"s", std::nullopt, {msg("user", "bad \xC3\x28 byte")}}, "UTF-8"},
      {"overlong utf8", {"s", std::nullopt, {msg("user", "\xC0\xAF")}}, "UTF-8"},
      {"surrogate utf8", {"s", std::nullopt, {msg("user", "\xED\xA0\x80")}}, "UTF-8"},
      {"truncated utf8", {"s", std::nullopt, {msg("user", "abc\xE2\x82")}}, "UTF-8"},
      {"unknown role", {"s", std::nullopt, {msg("wizard", "hi")}}, "role"},
      {"empty role", {"s", std::nullopt, {msg("", "hi")}}, "role"},
      {"oversized content", {"s", std::nullopt, {msg("user", std::string(33 * 1024, 'x'))}}, "content"},
      {"too many messages", {"s", std::nullopt, std::vector<Message>(101, msg("user", "x"))}, "messages"},
      {"empty session", {"", std::nullopt, {msg("user", "hi")}}, "session"},
      {"oversized session", {std::string(257, 's'), std::nullopt, {msg("user", "hi")}}, "session"},
      {"invalid utf8 session", {"s\xFF", std::nullopt, {msg("user", "hi")}}, "session"},
      {"empty user id", {"s", std::string(), {msg("user", "hi")}}, "user_id"},
      {"oversized user id", {"s", std::string(257, 'u'), {msg("user", "hi")}}, "user_id"},
      {"second message bad", {"s", std::nullopt, {msg("user", "fine"), msg("bot", "x")}}, "messages[1]"},
  };
}

TEST(HybridBufferBadInput, EveryBadRoundGetsAClearErrorAndChangesNothing) {
  Harness h({.max_size = 100});
  h.add("s", "a good round first");
  const auto before = h.buffer->stats();
  const auto cases = bad_cases();
  ASSERT_GE(cases.size(), 15u);
  for (const auto& c : cases) {
    auto r = h.buffer->add(c.round);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument) << c.name;
    EXPECT_FALSE(r.error().retryable()) << c.name;
    EXPECT_THAT(r.error().message(), HasSubstr(c.expect)) << c.name << ": " << r.error().message();
  }
  const auto after = h.buffer->stats();
  EXPECT_EQ(after.buffer_rounds, before.buffer_rounds);
  EXPECT_EQ(after.total_rounds_received, before.total_rounds_received);
  EXPECT_EQ(after.pending_bytes, before.pending_bytes);
  EXPECT_EQ(after.rejected_invalid, cases.size());
}

TEST(HybridBufferBadInput, EmbedderOfTheWrongDimensionIsRefused) {
  FixedEmbedder wrong(4, {1, 0, 0});  // says 4, returns 3
  Harness h({.max_size = 100, .embedder = &wrong});
  auto r = h.buffer->add(NewRound{"s", std::nullopt, {{"user", "hi"}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_THAT(r.error().message(), HasSubstr("embedder"));
  EXPECT_THAT(r.error().message(), HasSubstr("dimension"));
  EXPECT_EQ(h.buffer->stats().buffer_rounds, 0u);
}

TEST(HybridBufferBadInput, EmbedderReturningNaNIsRefused) {
  FixedEmbedder nan(3, {1, std::numeric_limits<float>::quiet_NaN(), 0});
  Harness h({.max_size = 100, .embedder = &nan});
  auto r = h.buffer->add(NewRound{"s", std::nullopt, {{"user", "hi"}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_THAT(r.error().message(), HasSubstr("finite"));
  EXPECT_EQ(h.buffer->stats().buffer_rounds, 0u);
}

TEST(HybridBufferBadInput, FailingEmbedderIsRefused) {
  FailingEmbedder failing;
  Harness h({.max_size = 100, .embedder = &failing});
  auto r = h.buffer->add(NewRound{"s", std::nullopt, {{"user", "hi"}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("model server down"));
  EXPECT_EQ(h.buffer->stats().buffer_rounds, 0u);
}

}  // namespace
}  // namespace memfuse
