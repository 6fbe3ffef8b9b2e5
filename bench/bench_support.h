// Shared by the benchmark programs: a scratch directory, rounds of the seed
// document's shape, percentiles, and a thread that holds SQLite's write lock
// on a schedule (a slow or stalled store, as another process would cause).
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "memfuse/hybrid_buffer.h"

namespace memfuse::bench {

// A fresh directory under $TMPDIR (or /tmp), removed at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") /
            ("memfuse-bench-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A round like the seed document's: a user question and an assistant answer,
// about 600 bytes of text in all, in one of 10 sessions.
inline NewRound seed_round(std::uint64_t i) {
  NewRound r;
  r.session_id = "session-" + std::to_string(i % 10);
  std::string question = "Round " + std::to_string(i) +
                         ": what did we decide about the flush timeout and the retry policy? ";
  while (question.size() < 200) question += "Please include the numbers. ";
  std::string answer = "We chose a 30 s attempt timeout, three retries with jittered backoff, ";
  while (answer.size() < 400) answer += "and the queue rejects work when it is full. ";
  r.messages = {Message{"user", std::move(question)}, Message{"assistant", std::move(answer)}};
  return r;
}

struct Percentiles {
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

inline Percentiles percentiles(std::vector<std::int64_t> ns) {
  Percentiles p;
  if (ns.empty()) return p;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1));
    return static_cast<double>(ns[i]) / 1000.0;
  };
  p.p50_us = at(0.50);
  p.p99_us = at(0.99);
  p.p999_us = at(0.999);
  p.max_us = static_cast<double>(ns.back()) / 1000.0;
  return p;
}

// Holds the database's write lock for `hold` out of every `period`, from its
// own connection, until destroyed.
class WriteLockStaller {
 public:
  WriteLockStaller(const std::string& path, std::chrono::milliseconds hold,
                   std::chrono::milliseconds period) {
    if (hold.count() <= 0) return;
    thread_ = std::thread([this, path, hold, period] {
      sqlite3* db = nullptr;
      if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return;
      sqlite3_busy_timeout(db, 10'000);
      while (!stop_.load()) {
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
          ++stalls_;
          sleep_unless_stopped(hold);
          sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        }
        sleep_unless_stopped(period - hold);
      }
      sqlite3_close(db);
    });
  }
  ~WriteLockStaller() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  WriteLockStaller(const WriteLockStaller&) = delete;
  WriteLockStaller& operator=(const WriteLockStaller&) = delete;
  [[nodiscard]] int stalls() const { return stalls_.load(); }

 private:
  void sleep_unless_stopped(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (!stop_.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<int> stalls_{0};
  std::thread thread_;
};

// Calls `fn(i, due)` for i in [0, count) at a fixed pace from the calling
// thread: call i is due at start + i * interval and starts then (or at once
// when behind). Timing from `due` rather than from the call's start counts
// the wait of calls that were held up behind a slow one (no coordinated
// omission).
template <typename Fn>
void paced(std::uint64_t count, std::chrono::microseconds interval, Fn fn) {
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto due = start + interval * static_cast<std::int64_t>(i);
    while (std::chrono::steady_clock::now() < due) {
      if (due - std::chrono::steady_clock::now() > std::chrono::microseconds(60)) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    }
    fn(i, due);
  }
}

}  // namespace memfuse::bench
