// Sustained durable throughput: rounds per second fully persisted (SQLite
// rounds + SQLite vectors, synchronous=NORMAL, batches of 100), through the
// production Pipeline, against raw SQLite inserting the same rows in the same
// batch size, in one run.
//
// Production: one thread adds 20 000 rounds (ids, chunking and embedding
// included, as add() does them), then flush() and wait until durable; the
// clock stops when everything is acknowledged by both stores.
// BM_DurablePaired/<workers>/<pool threads> times production and raw SQLite
// (/1) back to back in each of its iterations, in alternating order, and
// reports the medians and the median of the per-pair ratios: on this noisy
// machine raw SQLite alone moves by 20 % within minutes, and runs seconds
// apart compared a quiet phase with a busy one.
// Raw SQLite: the same rows, prepared beforehand (ids, message JSON, chunk
// texts and vectors), inserted with prepared statements by one connection,
// 100 rounds and their chunks per transaction, into the same schema (/1).
// /2 is raw SQLite in the production's shape: the rounds and the chunks of a
// batch committed separately, each through a connection of its own - what
// the per-leg design (a failed leg is redone alone) costs SQLite itself.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_support.h"
#include "memfuse/asio_runtime.h"
#include "memfuse/chunker.h"
#include "memfuse/embedder.h"
#include "memfuse/pipeline.h"

namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kRounds = 20'000;
constexpr int kBatch = 100;

// One production pass: the rate in rounds/s, or an error message.
memfuse::Result<double> production_pass(int workers, int pool_threads, double* overloaded_retries) {
  memfuse::bench::ScratchDir dir("durable-prod");
  memfuse::Config config;
  config.sqlite.path = dir.file("memfuse.db");
  config.sqlite.synchronous = memfuse::SqliteSynchronous::Normal;
  auto& hb = config.buffer.hybrid_buffer;
  hb.max_size = kBatch;
  hb.enable_auto_flush = false;
  hb.max_pending_rounds = 1'000'000;
  hb.max_pending_bytes = std::size_t{1} << 30;
  config.buffer.flush_manager.max_workers = workers;
  config.buffer.flush_manager.max_queue_size = 1000;
  config.buffer.flush_manager.enable_auto_flush = false;
  memfuse::AsioRuntime rt({.io_threads = 1, .blocking_threads = pool_threads});
  auto pipeline = memfuse::Pipeline::open(rt, config);
  if (!pipeline) return memfuse::Unexpected(pipeline.error());
  auto& buffer = (*pipeline)->buffer();
  std::vector<memfuse::NewRound> rounds;
  rounds.reserve(kRounds);
  for (std::uint64_t i = 0; i < kRounds; ++i) rounds.push_back(memfuse::bench::seed_round(i));
  std::uint64_t overloaded = 0;
  const auto start = std::chrono::steady_clock::now();

  for (auto& r : rounds) {
    for (;;) {
      auto receipt = buffer.add(r);
      if (receipt) break;
      if (receipt.error().code() != memfuse::ErrorCode::Overloaded) {
        return memfuse::Unexpected(receipt.error());
      }
      ++overloaded;
      std::this_thread::yield();
    }
  }
  std::promise<memfuse::Result<void>> durable;
  buffer.flush([&](memfuse::Result<void> r) { durable.set_value(std::move(r)); });
  const auto result = durable.get_future().get();

  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::promise<void> drained;
  buffer.drain(rt.clock().now() + 60s, [&](memfuse::HybridDrainReport) { drained.set_value(); });
  drained.get_future().wait();
  if (!result) return memfuse::Unexpected(result.error());
  const auto stored = (*pipeline)->sqlite_rounds().count();
  if (!stored || *stored != kRounds) {
    return memfuse::fail(memfuse::ErrorCode::Corrupt, false, "not every round is stored");
  }
  *overloaded_retries += static_cast<double>(overloaded);
  return static_cast<double>(kRounds) / elapsed.count();
}

struct RawRow {
  memfuse::Round round;
  std::string messages_json;
  std::vector<memfuse::EmbeddedChunk> chunks;
};

std::vector<RawRow> raw_rows() {
  memfuse::HashingEmbedder embedder(384);
  std::vector<RawRow> rows;
  rows.reserve(kRounds);
  for (std::uint64_t i = 0; i < kRounds; ++i) {
    auto in = memfuse::bench::seed_round(i);
    RawRow row;
    row.round.id = memfuse::make_round_id(1'750'000'000'000 + static_cast<std::int64_t>(i), i, ~i);
    row.round.session_id = std::move(in.session_id);
    row.round.seq = i + 1;
    row.round.messages = std::move(in.messages);
    nlohmann::json a = nlohmann::json::array();
    for (const auto& m : row.round.messages) a.push_back({{"role", m.role}, {"content", m.content}});
    row.messages_json = a.dump();
    for (auto& c : memfuse::chunk_round(row.round, 1024)) {
      auto v = embedder.embed(c.text);
      row.chunks.push_back({std::move(c), std::move(*v)});
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

bool exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

// One raw SQLite pass over `rows`: the rate in rounds/s, or an error message.
memfuse::Result<double> raw_pass(const std::vector<RawRow>& rows, bool two_legs) {
  memfuse::bench::ScratchDir dir("durable-raw");
  const std::string path = dir.file("raw.db");
  {  // the same schema, made by the stores themselves
    memfuse::SqliteStoreOptions so{path, memfuse::SqliteSynchronous::Normal, 5000, {}};
    auto r = memfuse::SqliteRoundStore::open(so);
    auto v = memfuse::SqliteVectorStore::open(so, 384);
    if (!r || !v) return memfuse::fail(memfuse::ErrorCode::Io, false, "cannot create the schema");
  }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "PRAGMA synchronous=NORMAL");
  sqlite3* chunk_db = db;  // two legs: the chunks through a connection of their own
  if (two_legs) {
    sqlite3_open(path.c_str(), &chunk_db);
    exec(chunk_db, "PRAGMA synchronous=NORMAL");
  }
  sqlite3_stmt* ins_round = nullptr;
  sqlite3_stmt* ins_chunk = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO rounds(id, session_id, user_id, seq, created_at_ns, messages) "
                     "VALUES (?1, ?2, NULL, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING",
                     -1, &ins_round, nullptr);
  sqlite3_prepare_v2(chunk_db,
                     "INSERT INTO chunks(round_id, idx, session_id, text, vector) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(round_id, idx) DO NOTHING",
                     -1, &ins_chunk, nullptr);
  bool ok = true;
  const auto start = std::chrono::steady_clock::now();

  for (std::size_t begin = 0; begin < rows.size() && ok; begin += kBatch) {
    ok = exec(db, "BEGIN IMMEDIATE");
    const std::size_t end = std::min(rows.size(), begin + kBatch);
    for (std::size_t i = begin; i < end && ok; ++i) {
      const auto& row = rows[i];
      const auto& r = row.round;
      sqlite3_bind_blob(ins_round, 1, r.id.uuid.bytes.data(), 16, SQLITE_STATIC);
      sqlite3_bind_blob(ins_round, 2, r.session_id.data(), static_cast<int>(r.session_id.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(ins_round, 3, static_cast<sqlite3_int64>(r.seq));
      sqlite3_bind_int64(ins_round, 4, static_cast<sqlite3_int64>(r.seq));
      sqlite3_bind_text(ins_round, 5, row.messages_json.data(),
                        static_cast<int>(row.messages_json.size()), SQLITE_STATIC);
      ok = sqlite3_step(ins_round) == SQLITE_DONE;
      sqlite3_reset(ins_round);
    }
    if (two_legs) ok = ok && exec(db, "COMMIT") && exec(chunk_db, "BEGIN IMMEDIATE");
    for (std::size_t i = begin; i < end && ok; ++i) {
      const auto& row = rows[i];
      const auto& r = row.round;
      for (const auto& c : row.chunks) {
        sqlite3_bind_blob(ins_chunk, 1, r.id.uuid.bytes.data(), 16, SQLITE_STATIC);
        sqlite3_bind_int64(ins_chunk, 2, c.chunk.index);
        sqlite3_bind_blob(ins_chunk, 3, r.session_id.data(), static_cast<int>(r.session_id.size()),
                          SQLITE_STATIC);
        sqlite3_bind_blob(ins_chunk, 4, c.chunk.text.data(), static_cast<int>(c.chunk.text.size()),
                          SQLITE_STATIC);
        sqlite3_bind_blob(ins_chunk, 5, c.vector.data(),
                          static_cast<int>(c.vector.size() * sizeof(float)), SQLITE_STATIC);
        ok = ok && sqlite3_step(ins_chunk) == SQLITE_DONE;
        sqlite3_reset(ins_chunk);
      }
    }
    ok = ok && exec(chunk_db, "COMMIT");
  }

  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  const std::string error = ok ? std::string() : std::string(sqlite3_errmsg(db));
  sqlite3_finalize(ins_round);
  sqlite3_finalize(ins_chunk);
  if (two_legs) sqlite3_close(chunk_db);
  sqlite3_close(db);
  if (!ok) return memfuse::fail(memfuse::ErrorCode::Io, false, error);
  return static_cast<double>(rows.size()) / elapsed.count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Raw SQLite alone: /1 one transaction per batch, /2 a transaction per leg.
void BM_DurableRawSqlite(benchmark::State& state) {
  const bool two_legs = state.range(0) == 2;
  const auto rows = raw_rows();
  std::vector<double> rates;
  for (auto _ : state) {
    auto rate = raw_pass(rows, two_legs);
    if (!rate) {
      state.SkipWithError(rate.error().to_string().c_str());
      return;
    }
    rates.push_back(*rate);
    state.SetIterationTime(static_cast<double>(kRounds) / *rate);
  }
  state.counters["rounds_per_s"] = median(rates);
}
BENCHMARK(BM_DurableRawSqlite)->Arg(1)->Arg(2)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

// Production and raw SQLite (/1) back to back in each iteration, the order
// alternating; the figures are medians over the iterations.
void BM_DurablePaired(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  const int pool_threads = static_cast<int>(state.range(1));
  const auto rows = raw_rows();
  std::vector<double> production, raw, ratio;
  double overloaded = 0;
  for (auto _ : state) {
    const bool raw_first = production.size() % 2 == 1;
    memfuse::Result<double> r = 0.0;
    if (raw_first) r = raw_pass(rows, false);
    auto p = r ? production_pass(workers, pool_threads, &overloaded) : r;
    if (!raw_first && p) r = raw_pass(rows, false);
    if (!p || !r) {
      state.SkipWithError((!p ? p : r).error().to_string().c_str());
      return;
    }
    production.push_back(*p);
    raw.push_back(*r);
    ratio.push_back(*p / *r);
    state.SetIterationTime(static_cast<double>(kRounds) / *p);
  }
  state.counters["rounds_per_s"] = median(production);
  state.counters["raw_rounds_per_s"] = median(raw);
  state.counters["ratio"] = median(ratio);
  state.counters["ratio_min"] = *std::min_element(ratio.begin(), ratio.end());
  state.counters["ratio_max"] = *std::max_element(ratio.begin(), ratio.end());
  state.counters["overloaded_retries"] = overloaded;
}
BENCHMARK(BM_DurablePaired)->Args({1, 1})->Args({1, 2})->Args({3, 2})->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
