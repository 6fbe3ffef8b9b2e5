// crash_child: the production pipeline on a real SQLite file
// (synchronous=FULL), adding rounds and flushing them, reporting every round
// whose flush came back durable - for the SIGKILL crash test (crash_test.cpp),
// which kills this process at random moments.
//
//   crash_child DB SIDE_FILE RUN [finish]
//
// Rounds are added in groups of 7 (the size trigger, max_size 5, flushes in
// the background meanwhile); after each group flush(on_durable) is called,
// and when it reports success the group's rounds go to SIDE_FILE, one line
// each: "<round id> <session> <seq>", in a single write() per group. Lines
// are written only after durability: a line in SIDE_FILE is a promise the
// parent holds us to after the kill. With `finish` the child adds one group,
// drains and exits 0 instead of running until killed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "memfuse/asio_runtime.h"
#include "memfuse/pipeline.h"

namespace {

constexpr int kGroup = 7;

std::string content(const std::string& run, int i) {
  // Quotes, a semicolon, SQL-ish text and a NUL byte: stored byte for byte.
  std::string c = "run " + run + " round " + std::to_string(i) + ": it's \"quoted\"; DROP TABLE rounds; --";
  c.push_back('\0');
  c += " after NUL";
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: crash_child DB SIDE_FILE RUN [finish]\n");
    return 2;
  }
  const std::string db = argv[1];
  const std::string run = argv[3];
  const bool finish = argc > 4 && std::string(argv[4]) == "finish";
  const int side = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (side < 0) return 3;

  memfuse::Config config;
  config.sqlite.path = db;
  config.sqlite.synchronous = memfuse::SqliteSynchronous::Full;
  config.buffer.hybrid_buffer.max_size = 5;
  config.buffer.flush_manager.max_workers = 2;
  memfuse::AsioRuntime rt({.io_threads = 1, .blocking_threads = 2});
  auto pipeline = memfuse::Pipeline::open(rt, config);
  if (!pipeline) {
    std::fprintf(stderr, "crash_child: %s\n", pipeline.error().to_string().c_str());
    return 4;
  }
  auto& buffer = (*pipeline)->buffer();
  for (int group = 0;; ++group) {
    std::string lines;
    for (int k = 0; k < kGroup; ++k) {
      const int i = group * kGroup + k;
      const std::string session = "crash-" + std::to_string(i % 3);
      auto receipt = buffer.add(memfuse::NewRound{
          session, std::nullopt, {{"user", content(run, i)}, {"assistant", "ok"}}});
      if (!receipt) {
        std::fprintf(stderr, "crash_child: add: %s\n", receipt.error().to_string().c_str());
        return 5;
      }
      lines += receipt->id.to_string() + " " + session + " " + std::to_string(receipt->seq) + "\n";
    }
    std::promise<memfuse::Result<void>> durable;
    buffer.flush([&](memfuse::Result<void> r) { durable.set_value(std::move(r)); });
    const auto result = durable.get_future().get();
    if (!result) {
      std::fprintf(stderr, "crash_child: flush: %s\n", result.error().to_string().c_str());
      return 6;
    }
    if (::write(side, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size())) return 7;
    if (finish) break;
  }
  std::promise<memfuse::HybridDrainReport> drained;
  buffer.drain(rt.clock().now() + std::chrono::seconds(30),
               [&](memfuse::HybridDrainReport r) { drained.set_value(std::move(r)); });
  const auto report = drained.get_future().get();
  ::close(side);
  return report.completed_in_time ? 0 : 8;
}
