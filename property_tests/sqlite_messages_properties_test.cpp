// The messages column of SqliteRoundStore is written by our own JSON string
// writer (a json value and nlohmann's serializer per field cost the durable
// writer 10-12 % of its rate). Property: for any valid UTF-8 role and content - control
// characters, quotes, backslashes, NUL, every UTF-8 length - the stored text
// is byte for byte what nlohmann's dump() writes for the same messages, and
// the round reads back equal. A failure prints its RC_PARAMS replay string.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "memfuse/sqlite_round_store.h"

namespace memfuse {
namespace {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Valid UTF-8, weighted towards what JSON escapes.
rc::Gen<std::string> utf8_text() {
  const auto code_point = rc::gen::oneOf(
      rc::gen::inRange<char32_t>(0, 0x20), rc::gen::element<char32_t>('"', '\\', '/', 0x7F),
      rc::gen::inRange<char32_t>(0x20, 0x7F), rc::gen::inRange<char32_t>(0x80, 0x800),
      rc::gen::inRange<char32_t>(0x800, 0xD800), rc::gen::inRange<char32_t>(0xE000, 0x10000),
      rc::gen::inRange<char32_t>(0x10000, 0x110000));
  return rc::gen::map(rc::gen::container<std::vector<char32_t>>(code_point),
                      [](const std::vector<char32_t>& cps) {
                        std::string s;
                        for (char32_t cp : cps) append_utf8(s, cp);
                        return s;
                      });
}

std::string stored_messages(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT messages FROM rounds", -1, &s, nullptr);
  std::string text;
  if (sqlite3_step(s) == SQLITE_ROW) {
    text.assign(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)),
                static_cast<std::size_t>(sqlite3_column_bytes(s, 0)));
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return text;
}

RC_GTEST_PROP(SqliteMessagesJson, StoredTextIsWhatNlohmannWritesAndReadsBack, ()) {
  const auto texts = *rc::gen::container<std::vector<std::pair<std::string, std::string>>>(
      rc::gen::pair(utf8_text(), utf8_text()));
  Round round;
  round.id = make_round_id(1, 1, 1);
  round.session_id = "s";
  round.seq = 1;
  nlohmann::json dom = nlohmann::json::array();
  for (const auto& [role, content] : texts) {
    round.messages.push_back(Message{role, content});
    dom.push_back({{"role", role}, {"content", content}});
  }
  const auto dir = std::filesystem::temp_directory_path() /
                   ("memfuse-messages-prop-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.db").string();
  {
    auto store = SqliteRoundStore::open({path, SqliteSynchronous::Normal, 1000, {}});
    RC_ASSERT(store.has_value());
    RC_ASSERT((*store)->put(std::vector<Round>{round}).value() == 1u);
    RC_ASSERT((*store)->get(round.id).value() == std::optional<Round>(round));
  }
  const std::string stored = stored_messages(path);
  std::filesystem::remove_all(dir);
  RC_ASSERT(stored == dom.dump());
}

// What the messages column means, by nlohmann's DOM: an array of objects
// with exactly a string "role" and a string "content"; nullopt otherwise.
std::optional<std::vector<Message>> meaning(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<Message> out;
  for (const auto& o : j) {
    if (!o.is_object() || o.size() != 2 || !o.contains("role") || !o.contains("content") ||
        !o["role"].is_string() || !o["content"].is_string()) {
      return std::nullopt;
    }
    out.push_back(Message{o["role"].get<std::string>(), o["content"].get<std::string>()});
  }
  return out;
}

// The reader takes the writer's exact shape without a parser and everything
// else through nlohmann's. Property: for the writer's text with one byte
// inserted, removed or replaced anywhere (most of which is no longer the
// writer's shape, and some no longer JSON), a read gives the messages the
// text means, or Corrupt when it means none.
RC_GTEST_PROP(SqliteMessagesJson, ReadsWhatAnyNearlyWrittenTextMeans, ()) {
  const auto texts = *rc::gen::container<std::vector<std::pair<std::string, std::string>>>(
      rc::gen::pair(utf8_text(), utf8_text()));
  nlohmann::json dom = nlohmann::json::array();
  for (const auto& [role, content] : texts) dom.push_back({{"role", role}, {"content", content}});
  std::string text = dom.dump();
  const auto at = *rc::gen::inRange<std::size_t>(0, text.size() + 1);
  const auto byte = static_cast<char>(*rc::gen::oneOf(
      rc::gen::element<int>('"', '\\', ',', ':', '{', '}', '[', ']', ' ', 'u', '0', 'n', 0x01, 0xC3, 0x80),
      rc::gen::inRange<int>(0, 256)));
  switch (*rc::gen::inRange(0, 4)) {
    case 0: text.insert(at, 1, byte); break;
    case 1: if (at < text.size()) text.erase(at, 1); break;
    case 2: if (at < text.size()) text[at] = byte; break;
    default: break;  // the written text itself
  }
  const auto dir = std::filesystem::temp_directory_path() /
                   ("memfuse-messages-read-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.db").string();
  Round round;
  round.id = make_round_id(1, 1, 1);
  round.session_id = "s";
  round.seq = 1;
  round.messages = {{"user", "placeholder"}};
  auto store = SqliteRoundStore::open({path, SqliteSynchronous::Normal, 1000, {}});
  RC_ASSERT(store.has_value());
  RC_ASSERT((*store)->put(std::vector<Round>{round}).value() == 1u);
  {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "UPDATE rounds SET messages = ?1", -1, &s, nullptr);
    sqlite3_bind_text(s, 1, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    sqlite3_close(db);
    RC_ASSERT(rc == SQLITE_DONE);
  }
  const auto got = (*store)->get(round.id);
  store->reset();
  std::filesystem::remove_all(dir);
  const auto expected = meaning(text);
  RC_TAG(expected.has_value() ? "means messages" : "means none");
  if (expected) {
    RC_ASSERT(got.has_value());
    RC_ASSERT(got->has_value());
    RC_ASSERT((*got)->messages == *expected);
  } else {
    RC_ASSERT(!got.has_value());
    RC_ASSERT(got.error().code() == ErrorCode::Corrupt);
  }
}

TEST(SqliteMessagesJson, TextThatIsNotUtf8IsRefusedAndNothingIsStored) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("memfuse-messages-bad-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = SqliteRoundStore::open({(dir / "m.db").string(), SqliteSynchronous::Normal, 1000, {}});
  ASSERT_TRUE(store.has_value());
  Round good;
  good.id = make_round_id(1, 1, 1);
  good.session_id = "s";
  good.seq = 1;
  good.messages = {{"user", "fine"}};
  Round bad = good;
  bad.id = make_round_id(1, 2, 2);
  bad.seq = 2;
  bad.messages = {{"user", "ok"}, {"assistant", std::string("\xC3\x28", 2)}};
  const auto put = (*store)->put(std::vector<Round>{good, bad});
  ASSERT_FALSE(put.has_value());
  EXPECT_EQ(put.error().code(), ErrorCode::InvalidArgument);
  EXPECT_NE(put.error().message().find("message 1 is not valid UTF-8"), std::string::npos)
      << put.error().to_string();
  EXPECT_EQ((*store)->count().value(), 0u) << "the batch is one transaction: nothing of it is stored";
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace memfuse
