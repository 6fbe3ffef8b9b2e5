#include "memfuse/sqlite_round_store.h"

#include <algorithm>

#include <sqlite3.h>

#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/assert.h"
#include "memfuse/validation.h"
#include "json_text.h"
#include "sqlite_common.h"

namespace memfuse {
namespace {

using nlohmann::json;
using detail::append_json_string;
using detail::column_bytes;
using detail::sqlite_error;
using detail::Statement;

// The same text nlohmann writes from a DOM ([{"content":...,"role":...}]),
// without building one. Text that is not UTF-8 is refused (JSON cannot carry
// it; nlohmann threw there).
Result<std::string> encode_messages(const Round& round) {
  std::string out = "[";
  std::size_t i = 0;
  for (const auto& m : round.messages) {
    if (!is_valid_utf8(m.content) || !is_valid_utf8(m.role)) {
      return fail(ErrorCode::InvalidArgument, false,
                  fmt::format("round {}: message {} is not valid UTF-8", round.id.to_string(), i));
    }
    if (out.size() > 1) out += ',';
    out += R"({"content":)";
    append_json_string(out, m.content);
    out += R"(,"role":)";
    append_json_string(out, m.role);
    out += '}';
    ++i;
  }
  out += ']';
  return out;
}

// Stored messages are a JSON array of {"content": ..., "role": ...} objects.
// Read with a SAX handler straight into Messages: a DOM per round was most of
// what list() cost. Anything else - another shape, a value that is not a
// string, a missing field - is Corrupt, never an exception.
class MessagesReader final : public nlohmann::json_sax<json> {
 public:
  std::vector<Message> messages;
  const char* problem = nullptr;

  bool null() override { return other(); }
  bool boolean(bool) override { return other(); }
  bool number_integer(number_integer_t) override { return other(); }
  bool number_unsigned(number_unsigned_t) override { return other(); }
  bool number_float(number_float_t, const string_t&) override { return other(); }
  bool binary(binary_t&) override { return other(); }
  bool string(string_t& s) override {
    if (depth_ != 2) return other();
    if (field_ == Field::Role) {
      messages.back().role = std::move(s);
      have_role_ = true;
    } else {
      messages.back().content = std::move(s);
      have_content_ = true;
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (depth_ != 1) return other();
    ++depth_;
    messages.emplace_back();
    have_role_ = have_content_ = false;
    return true;
  }
  bool key(string_t& k) override {
    if (k == "role") {
      field_ = Field::Role;
    } else if (k == "content") {
      field_ = Field::Content;
    } else {
      return reject("sqlite: a stored message has a field other than role and content");
    }
    return true;
  }
  bool end_object() override {
    --depth_;
    if (!have_role_ || !have_content_) return reject("sqlite: a stored message lacks role or content");
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ != 0) return other();
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return reject(kNotAnArray);
  }

 private:
  static constexpr const char* kNotAnArray = "sqlite: a stored round's messages are not a JSON array";
  enum class Field { Role, Content };

  bool reject(const char* why) {
    if (problem == nullptr) problem = why;
    return false;
  }
  // Anything but a string field of a message object, or a value at the top.
  bool other() {
    return reject(depth_ == 0 ? kNotAnArray : "sqlite: a stored message lacks role or content");
  }

  int depth_ = 0;
  Field field_ = Field::Role;
  bool have_role_ = false;
  bool have_content_ = false;
};

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The JSON string at text[i] (its opening quote), decoded into `out`, when it
// uses only the escapes append_json_string writes (\" \\ \b \f \n \r \t, and
// \u00XX below 0x20); `i` moves past it. False for anything else, including
// raw control characters and text that is not UTF-8 (which JSON refuses).
bool read_written_string(std::string_view text, std::size_t& i, std::string& out) {
  if (i >= text.size() || text[i] != '"') return false;
  std::size_t run = ++i;  // text[run, i) is still to be appended as is
  for (;; ++i) {
    if (i >= text.size()) return false;
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"') break;
    if (c < 0x20) return false;
    if (c != '\\') continue;
    out.append(text.data() + run, i - run);
    if (i + 1 >= text.size()) return false;
    char plain = 0;
    switch (text[i + 1]) {
      case '"': plain = '"'; break;
      case '\\': plain = '\\'; break;
      case 'b': plain = '\b'; break;
      case 'f': plain = '\f'; break;
      case 'n': plain = '\n'; break;
      case 'r': plain = '\r'; break;
      case 't': plain = '\t'; break;
      case 'u': {
        if (i + 6 > text.size() || text[i + 2] != '0' || text[i + 3] != '0') return false;
        const int hi = hex_digit(text[i + 4]), lo = hex_digit(text[i + 5]);
        if (hi < 0 || lo < 0 || hi * 16 + lo >= 0x20) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 5;
        run = i + 1;
        continue;
      }
      default: return false;
    }
    out.push_back(plain);
    ++i;
    run = i + 1;
  }
  out.append(text.data() + run, i - run);
  ++i;
  return is_valid_utf8(out);
}

// Messages in exactly the shape encode_messages writes - [{"content":S,
// "role":S},...], no whitespace - read without a parser: nlohmann's lexer,
// even feeding a SAX handler, was 9 % of the seed report's time. Anything
// else (JSON written by another tool, or damage) is nullopt, for the full
// parser, which reads every valid JSON and names what is wrong otherwise.
std::optional<std::vector<Message>> read_written_messages(std::string_view text) {
  std::size_t i = 0;
  auto literal = [&](std::string_view l) {
    if (text.substr(i, l.size()) != l) return false;
    i += l.size();
    return true;
  };
  std::vector<Message> messages;
  if (!literal("[")) return std::nullopt;
  if (!literal("]")) {
    for (;;) {
      Message& m = messages.emplace_back();
      if (!literal(R"({"content":)") || !read_written_string(text, i, m.content) || !literal(R"(,"role":)") ||
          !read_written_string(text, i, m.role) || !literal("}")) {
        return std::nullopt;
      }
      if (literal("]")) break;
      if (!literal(",")) return std::nullopt;
    }
  }
  if (i != text.size()) return std::nullopt;
  return messages;
}

Result<std::vector<Message>> decode_messages(std::string_view text) {
  if (auto written = read_written_messages(text)) return std::move(*written);
  MessagesReader reader;
  const bool ok = json::sax_parse(text, &reader, json::input_format_t::json, /*strict=*/true);
  if (!ok || reader.problem != nullptr) {
    return fail(ErrorCode::Corrupt, false, reader.problem != nullptr ? reader.problem : "sqlite: a stored round's messages are not a JSON array");
  }
  return std::move(reader.messages);
}

}  // namespace

struct SqliteRoundStore::Impl {
  // Two connections: writes on `db`, reads on `read_db`. In WAL mode readers
  // never wait for a writer, so a flush stalled inside SQLite (a slow fsync,
  // a busy lock) does not hold up get() and list().
  sqlite3* db = nullptr;
  sqlite3* read_db = nullptr;
  std::mutex mutex;       // one write statement at a time
  std::shared_ptr<std::mutex> write_lock;  // shared with the other store of the file, or null
  std::mutex read_mutex;  // one read statement at a time
  Statement insert, begin, commit, rollback;
  Statement select_one, select_session, count, max_seq;  // on read_db

  // sqlite3_close_v2 waits for the statements, finalised after this body.
  ~Impl() {
    sqlite3_close_v2(db);
    sqlite3_close_v2(read_db);
  }

  Result<Round> read_round(sqlite3_stmt* s) {
    Round r;
    const std::string_view id = column_bytes(s, 0);
    if (id.size() != 16) return fail(ErrorCode::Corrupt, false, "sqlite: a stored round id is not 16 bytes");
    std::copy(id.begin(), id.end(), r.id.uuid.bytes.begin());
    r.session_id = std::string(column_bytes(s, 1));
    if (sqlite3_column_type(s, 2) != SQLITE_NULL) r.user_id = std::string(column_bytes(s, 2));
    r.seq = static_cast<std::uint64_t>(sqlite3_column_int64(s, 3));
    r.created_at = TimePoint(Duration(sqlite3_column_int64(s, 4)));
    auto messages = decode_messages(column_bytes(s, 5));
    if (!messages) return Unexpected(messages.error());
    r.messages = std::move(*messages);
    return r;
  }
};

SqliteRoundStore::SqliteRoundStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteRoundStore::~SqliteRoundStore() = default;

Result<std::unique_ptr<SqliteRoundStore>> SqliteRoundStore::open(SqliteStoreOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->write_lock = options.write_lock;
  auto db = detail::open_database(options);
  if (!db) return Unexpected(db.error());
  impl->db = *db;
  auto read_db = detail::open_database(options);
  if (!read_db) return Unexpected(read_db.error());
  impl->read_db = *read_db;
  if (auto ok = detail::prepare_all(impl->db, {
      {&impl->insert,
       "INSERT INTO rounds(id, session_id, user_id, seq, created_at_ns, messages) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING"},
      {&impl->begin, "BEGIN IMMEDIATE"},
      {&impl->commit, "COMMIT"},
      {&impl->rollback, "ROLLBACK"},
      });
      !ok) {
    return Unexpected(ok.error());
  }
  if (auto ok = detail::prepare_all(impl->read_db, {
      {&impl->select_one,
       "SELECT id, session_id, user_id, seq, created_at_ns, messages FROM rounds WHERE id = ?1"},
      // Newest first, straight down the index; list() reverses the few rows
      // (an outer ORDER BY seq ASC ran a sorter that copied every row).
      {&impl->select_session,
       "SELECT id, session_id, user_id, seq, created_at_ns, messages FROM rounds "
       "WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2"},
      {&impl->count, "SELECT count(*) FROM rounds"},
      {&impl->max_seq, "SELECT coalesce(max(seq), 0) FROM rounds"},
      });
      !ok) {
    return Unexpected(ok.error());
  }
  return std::unique_ptr<SqliteRoundStore>(new SqliteRoundStore(std::move(impl)));
}

Result<std::size_t> SqliteRoundStore::put(std::span<const Round> rounds) {
  std::lock_guard lock(impl_->mutex);
  std::unique_lock<std::mutex> file_lock;
  if (impl_->write_lock) file_lock = std::unique_lock(*impl_->write_lock);
  sqlite3* db = impl_->db;
  auto step = [&](Statement& s, std::string_view what) { return detail::run(db, s, what); };
  // An interrupted ROLLBACK can leave a transaction open: close it first.
  if (!sqlite3_get_autocommit(db)) (void)step(impl_->rollback, "ROLLBACK");
  if (auto ok = step(impl_->begin, "BEGIN"); !ok) return Unexpected(ok.error());
  std::size_t inserted = 0;
  for (const Round& r : rounds) {
    sqlite3_stmt* s = impl_->insert.get();
    const auto encoded = encode_messages(r);
    if (!encoded) {
      (void)step(impl_->rollback, "ROLLBACK");
      return Unexpected(encoded.error());
    }
    const std::string& messages = *encoded;
    sqlite3_bind_blob(s, 1, r.id.uuid.bytes.data(), 16, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, r.session_id.data(), static_cast<int>(r.session_id.size()), SQLITE_STATIC);
    if (r.user_id) {
      sqlite3_bind_blob(s, 3, r.user_id->data(), static_cast<int>(r.user_id->size()), SQLITE_STATIC);
    } else {
      sqlite3_bind_null(s, 3);
    }
    sqlite3_bind_int64(s, 4, static_cast<sqlite3_int64>(r.seq));
    sqlite3_bind_int64(s, 5, r.created_at.time_since_epoch().count());
    sqlite3_bind_text(s, 6, messages.data(), static_cast<int>(messages.size()), SQLITE_STATIC);
    const int rc = sqlite3_step(s);
    impl_->insert.reset();
    if (rc != SQLITE_DONE) {
      Error e = sqlite_error(db, rc, "INSERT INTO rounds");
      (void)step(impl_->rollback, "ROLLBACK");
      return Unexpected(std::move(e));
    }
    inserted += static_cast<std::size_t>(sqlite3_changes(db));
  }
  if (auto ok = step(impl_->commit, "COMMIT"); !ok) {
    // The outcome of a failed COMMIT is unknown: the caller retries, and the
    // ON CONFLICT clause makes that harmless.
    if (!sqlite3_get_autocommit(db)) (void)step(impl_->rollback, "ROLLBACK");
    return Unexpected(ok.error());
  }
  return inserted;
}

Result<std::optional<Round>> SqliteRoundStore::get(const RoundId& id) {
  std::lock_guard lock(impl_->read_mutex);
  sqlite3_stmt* s = impl_->select_one.get();
  sqlite3_bind_blob(s, 1, id.uuid.bytes.data(), 16, SQLITE_STATIC);
  const int rc = sqlite3_step(s);
  std::optional<Round> out;
  Result<std::optional<Round>> result = out;
  if (rc == SQLITE_ROW) {
    auto r = impl_->read_round(s);
    result = r ? Result<std::optional<Round>>(std::move(*r)) : Unexpected(r.error());
  } else if (rc != SQLITE_DONE) {
    result = Unexpected(sqlite_error(impl_->read_db, rc, "SELECT a round"));
  }
  impl_->select_one.reset();
  return result;
}

Result<std::vector<Round>> SqliteRoundStore::list(std::string_view session, std::size_t limit) {
  std::lock_guard lock(impl_->read_mutex);
  sqlite3_stmt* s = impl_->select_session.get();
  sqlite3_bind_blob(s, 1, session.data(), static_cast<int>(session.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(std::min<std::size_t>(limit, INT64_MAX)));
  std::vector<Round> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto r = impl_->read_round(s);
    if (!r) {
      impl_->select_session.reset();
      return Unexpected(r.error());
    }
    out.push_back(std::move(*r));
  }
  impl_->select_session.reset();
  if (rc != SQLITE_DONE) return Unexpected(sqlite_error(impl_->read_db, rc, "SELECT a session's rounds"));
  std::reverse(out.begin(), out.end());  // oldest first
  return out;
}

namespace {
Result<std::uint64_t> scalar(sqlite3* db, Statement& s, std::string_view what) {
  const int rc = sqlite3_step(s.get());
  const auto v = rc == SQLITE_ROW ? static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0)) : 0;
  s.reset();
  if (rc != SQLITE_ROW) return Unexpected(sqlite_error(db, rc, what));
  return v;
}
}  // namespace

Result<std::uint64_t> SqliteRoundStore::count() {
  std::lock_guard lock(impl_->read_mutex);
  return scalar(impl_->read_db, impl_->count, "SELECT count(*)");
}

Result<std::uint64_t> SqliteRoundStore::max_seq() {
  std::lock_guard lock(impl_->read_mutex);
  return scalar(impl_->read_db, impl_->max_seq, "SELECT max(seq)");
}

void SqliteRoundStore::interrupt() noexcept { sqlite3_interrupt(impl_->db); }
void SqliteRoundStore::interrupt_reads() noexcept { sqlite3_interrupt(impl_->read_db); }

}  // namespace memfuse
