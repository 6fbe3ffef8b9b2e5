// The real crash test (labels integration, slow): crash_child runs the
// production pipeline on a real SQLite file with synchronous=FULL and is
// SIGKILLed at random moments, at least 100 times, on the same file. After
// every kill the file is opened again and checked:
//   - PRAGMA integrity_check is "ok";
//   - every round the child reported durable (its flush(on_durable) said so
//     before the kill) is stored exactly once, with its session and seq, and
//     its chunks are stored;
//   - no seq appears twice (a restarted process continues after max(seq));
// and at the end a last child adds, flushes and drains normally, and the
// same checks pass again (nothing duplicated by the restarted flushes).
//
// MEMFUSE_CRASH_SEED=N replays the kill schedule (printed; the moments are
// wall-clock delays, so a replay repeats the schedule, not the exact
// interleaving); MEMFUSE_CRASH_KILLS changes the count (default 120).
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

extern char** environ;

namespace {

struct Durable {
  std::string session;
  std::uint64_t seq = 0;
};

std::string hex_of_uuid_text(std::string s) {
  std::string out;
  for (char c : s) {
    if (c != '-') out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

std::map<std::string, Durable> read_side_file(const std::string& path) {
  std::map<std::string, Durable> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id;
    Durable d;
    if (ls >> id >> d.session >> d.seq) out[hex_of_uuid_text(id)] = d;  // a torn last line is ignored
  }
  return out;
}

struct Check {
  std::size_t stored_rounds = 0;
  std::size_t durable = 0;
  std::size_t stored_not_reported = 0;
};

// Opens the file as a restarted process would and checks it; failures are
// reported through gtest with the iteration.
Check check_database(const std::string& db_path, const std::string& side, int iteration) {
  Check c;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  auto text_of = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sql;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  };
  EXPECT_EQ(text_of("PRAGMA integrity_check"), "ok") << "after kill " << iteration;
  if (text_of("SELECT count(*) FROM sqlite_master WHERE name = 'rounds'") == "0") {
    // Killed before the first child created the schema: nothing can have been promised.
    sqlite3_close(db);
    EXPECT_TRUE(read_side_file(side).empty()) << "rounds reported durable, but no schema";
    return c;
  }
  EXPECT_EQ(text_of("SELECT count(*) - count(DISTINCT seq) FROM rounds"), "0")
      << "a seq is stored twice after kill " << iteration;

  std::map<std::string, Durable> stored;
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT lower(hex(id)), session_id, seq FROM rounds", -1, &s, nullptr);
  while (sqlite3_step(s) == SQLITE_ROW) {
    const std::string id = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    const auto* session = static_cast<const char*>(sqlite3_column_blob(s, 1));
    Durable d{std::string(session, static_cast<std::size_t>(sqlite3_column_bytes(s, 1))),
              static_cast<std::uint64_t>(sqlite3_column_int64(s, 2))};
    EXPECT_TRUE(stored.emplace(id, d).second) << "round " << id << " stored twice";
  }
  sqlite3_finalize(s);
  std::set<std::string> with_chunks;
  sqlite3_prepare_v2(db, "SELECT DISTINCT lower(hex(round_id)) FROM chunks", -1, &s, nullptr);
  while (sqlite3_step(s) == SQLITE_ROW) {
    with_chunks.insert(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
  }
  sqlite3_finalize(s);
  sqlite3_close(db);

  const auto durable = read_side_file(side);
  for (const auto& [id, d] : durable) {
    auto it = stored.find(id);
    EXPECT_NE(it, stored.end()) << "round " << id << " was reported durable but is gone after kill "
                                << iteration;
    if (it == stored.end()) continue;
    EXPECT_EQ(it->second.session, d.session) << id;
    EXPECT_EQ(it->second.seq, d.seq) << id;
    EXPECT_TRUE(with_chunks.contains(id)) << "round " << id << " durable without its chunks";
  }
  c.stored_rounds = stored.size();
  c.durable = durable.size();
  for (const auto& [id, d] : stored) {
    if (!durable.contains(id)) ++c.stored_not_reported;
  }
  return c;
}

pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

TEST(CrashTest, SigkillDuringFlushesLosesNothingDurableAndDuplicatesNothing) {
  // crash_child is built beside this program (bin/); MEMFUSE_CRASH_CHILD overrides.
  const std::string child = std::getenv("MEMFUSE_CRASH_CHILD") != nullptr
                                ? std::string(std::getenv("MEMFUSE_CRASH_CHILD"))
                                : (std::filesystem::read_symlink("/proc/self/exe").parent_path() /
                                   "crash_child")
                                      .string();
  ASSERT_TRUE(std::filesystem::exists(child)) << child;
  const int kills = std::getenv("MEMFUSE_CRASH_KILLS") ? std::atoi(std::getenv("MEMFUSE_CRASH_KILLS")) : 120;
  const std::uint64_t seed = std::getenv("MEMFUSE_CRASH_SEED")
                                 ? std::strtoull(std::getenv("MEMFUSE_CRASH_SEED"), nullptr, 10)
                                 : std::random_device{}();
  std::printf("crash test: %d kills, seed %llu (replay: MEMFUSE_CRASH_SEED=%llu)\n", kills,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> delay_ms(2, 150);

  const auto dir = std::filesystem::temp_directory_path() /
                   ("memfuse-crash-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "memfuse.db").string();
  const std::string side = (dir / "durable.txt").string();

  int killed = 0, exited_early = 0, kills_with_new_durable = 0;
  std::size_t last_durable = 0;
  Check last;
  for (int it = 0; it < kills; ++it) {
    const pid_t pid = spawn({child, db, side, std::to_string(it)});
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      ++killed;
    } else {
      ++exited_early;
      ADD_FAILURE() << "the child exited by itself (status " << status << ") at iteration " << it;
    }
    last = check_database(db, side, it);
    if (last.durable > last_durable) ++kills_with_new_durable;
    last_durable = last.durable;
    if (::testing::Test::HasFailure()) {
      FAIL() << "stopped at kill " << it << "; replay with MEMFUSE_CRASH_SEED=" << seed;
    }
  }
  // A last process: adds, flushes, drains and exits normally.
  const pid_t pid = spawn({child, db, side, "final", "finish"});
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "final child status " << status;
  const Check final_check = check_database(db, side, kills);
  EXPECT_GT(final_check.durable, last.durable);
  std::printf("crash test: %d SIGKILLs (%d exited early), %d of them after new durable rounds; "
              "%zu rounds reported durable, all present exactly once; %zu stored in all, %zu of them "
              "stored but never reported (killed between commit and report, or flushed in the "
              "background); integrity_check ok after every kill\n",
              killed, exited_early, kills_with_new_durable, final_check.durable,
              final_check.stored_rounds, final_check.stored_not_reported);
  EXPECT_GE(killed, 100);
  std::filesystem::remove_all(dir);
}

}  // namespace
