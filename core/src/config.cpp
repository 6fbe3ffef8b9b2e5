// Config parsing, validation and serialisation.
//
// One schema, visit_fields(), lists every key with its type and range. Four
// visitors walk it: the reader (JSON -> Config, with type and range checks),
// the writer (Config -> JSON), the range checker (Config::validate) and the
// key lister (unknown-key detection, Config::keys). Adding a key is one line
// in visit_fields() and one row in docs/configuration.md (a test checks both).
#include "memfuse/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/validation.h"

namespace memfuse {
namespace {

using nlohmann::json;

constexpr double kDaySeconds = 86'400.0;

template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

constexpr EnumName<QueueFullPolicy> kQueueFullPolicies[] = {{"reject", QueueFullPolicy::Reject},
                                                            {"wait", QueueFullPolicy::Wait}};
constexpr EnumName<SqliteSynchronous> kSynchronousModes[] = {{"NORMAL", SqliteSynchronous::Normal},
                                                             {"FULL", SqliteSynchronous::Full}};
constexpr EnumName<VectorStoreKind> kVectorStoreKinds[] = {{"sqlite", VectorStoreKind::Sqlite},
                                                           {"qdrant", VectorStoreKind::Qdrant}};

template <typename E, std::size_t N>
std::string_view enum_name(const EnumName<E> (&names)[N], E value) {
  for (const auto& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";
}

template <typename E, std::size_t N>
std::string enum_choices(const EnumName<E> (&names)[N]) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += fmt::format("\"{}\"", n.name);
  }
  return out;
}

// The schema. V is one of the visitors below; C is Config or const Config.
template <typename C, typename V>
void visit_fields(C& c, V& v) {
  auto& fm = c.buffer.flush_manager;
  v.integer("buffer.flush_manager.max_workers", fm.max_workers, 1, 256);
  v.integer("buffer.flush_manager.max_queue_size", fm.max_queue_size, 1, 1'000'000);
  v.seconds("buffer.flush_manager.default_timeout", fm.default_timeout, kDaySeconds);
  v.seconds("buffer.flush_manager.flush_interval", fm.flush_interval, kDaySeconds);
  v.boolean("buffer.flush_manager.enable_auto_flush", fm.enable_auto_flush);
  v.enumeration("buffer.flush_manager.queue_full_policy", fm.queue_full_policy,
                kQueueFullPolicies);
  v.seconds("buffer.flush_manager.queue_full_wait_s", fm.queue_full_wait, kDaySeconds);
  v.integer("buffer.flush_manager.retry.max_retries", fm.retry.max_retries, 0, 100);
  v.seconds("buffer.flush_manager.retry.backoff_base_s", fm.retry.backoff_base, 3600.0);
  v.seconds("buffer.flush_manager.retry.backoff_cap_s", fm.retry.backoff_cap, kDaySeconds);
  v.fraction("buffer.flush_manager.retry.jitter", fm.retry.jitter);
  v.seconds("buffer.flush_manager.delivery_deadline_s", fm.delivery_deadline, 7 * kDaySeconds);

  auto& hb = c.buffer.hybrid_buffer;
  v.integer("buffer.hybrid_buffer.max_size", hb.max_size, 1, 1'000'000);
  v.seconds("buffer.hybrid_buffer.auto_flush_interval", hb.auto_flush_interval, kDaySeconds);
  v.boolean("buffer.hybrid_buffer.enable_auto_flush", hb.enable_auto_flush);
  v.size("buffer.hybrid_buffer.max_pending_rounds", hb.max_pending_rounds, 1, 100'000'000);
  v.size("buffer.hybrid_buffer.max_pending_bytes", hb.max_pending_bytes, 1024,
         std::size_t{64} << 30);
  v.size("buffer.hybrid_buffer.max_message_bytes", hb.max_message_bytes, 1, 16u << 20);
  v.size("buffer.hybrid_buffer.max_messages_per_round", hb.max_messages_per_round, 1, 10'000);

  v.string("sqlite.path", c.sqlite.path);
  v.enumeration("sqlite.synchronous", c.sqlite.synchronous, kSynchronousModes);
  v.integer("sqlite.busy_timeout_ms", c.sqlite.busy_timeout_ms, 0, 600'000);

  v.enumeration("vector_store.kind", c.vector_store.kind, kVectorStoreKinds);
  auto& q = c.vector_store.qdrant;
  v.string("vector_store.qdrant.url", q.url);
  v.string("vector_store.qdrant.collection", q.collection);
  v.secret("vector_store.qdrant.api_key", q.api_key);
  v.optional_string("vector_store.qdrant.ca_file", q.ca_file);
  v.seconds("vector_store.qdrant.request_timeout_s", q.request_timeout, 3600.0);
  v.seconds("vector_store.qdrant.connect_timeout_s", q.connect_timeout, 3600.0);
  v.size("vector_store.qdrant.max_request_bytes", q.max_request_bytes, 1024, 32u << 20);
  v.size("vector_store.qdrant.max_response_bytes", q.max_response_bytes, 1024, 1u << 30);

  v.integer("embedding.dimension", c.embedding.dimension, 1, 65'536);
  v.size("chunking.chunk_size_bytes", c.chunking.chunk_size_bytes, 16, 1u << 20);
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string_view json_type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number with a fraction";
    default: return "an unsupported value";
  }
}

std::string fmt_seconds(double s) { return fmt::format("{:g}", s); }

// Range and content checks shared by the reader and Config::validate().
class Checker {
 public:
  explicit Checker(std::vector<std::string>& problems) : problems_(problems) {}

  void check_integer(std::string_view path, long long value, long long lo, long long hi) {
    if (value < lo || value > hi) {
      report(path, fmt::format("{} is out of range (allowed {}..{})", value, lo, hi));
    }
  }
  void check_size(std::string_view path, unsigned long long value, unsigned long long lo,
                  unsigned long long hi) {
    if (value < lo || value > hi) {
      report(path, fmt::format("{} is out of range (allowed {}..{})", value, lo, hi));
    }
  }
  void check_seconds(std::string_view path, Duration value, double hi_s) {
    if (value <= Duration::zero() || value > seconds_to_duration(hi_s)) {
      report(path, fmt::format("{} s is out of range (allowed: more than 0, at most {} s)",
                               fmt_seconds(duration_to_seconds(value)), fmt_seconds(hi_s)));
    }
  }
  void check_fraction(std::string_view path, double value) {
    if (!(value >= 0.0 && value <= 1.0)) {
      report(path, fmt::format("{} is out of range (allowed 0..1)", value));
    }
  }
  void check_string(std::string_view path, const std::string& value, bool may_be_empty) {
    if (!may_be_empty && value.empty()) {
      report(path, "must not be empty");
    } else if (!is_valid_utf8(value)) {
      report(path, "is not valid UTF-8");
    }
  }

  void report(std::string_view path, std::string_view what) {
    problems_.push_back(fmt::format("{}: {}", path, what));
  }

 private:
  std::vector<std::string>& problems_;
};

// JSON -> Config. Missing keys keep their defaults.
class Reader {
 public:
  Reader(const json& root, std::vector<std::string>& problems)
      : root_(root), problems_(problems), check_(problems) {}

  void integer(std::string_view path, int& out, long long lo, long long hi) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_number_integer()) return type_error(path, "an integer", *j);
    if (j->is_number_unsigned() &&
        j->get<unsigned long long>() > static_cast<unsigned long long>(hi)) {
      return check_.report(path, fmt::format("{} is out of range (allowed {}..{})",
                                             j->get<unsigned long long>(), lo, hi));
    }
    const long long v = j->get<long long>();
    const std::size_t before = problems_size();
    check_.check_integer(path, v, lo, hi);
    if (problems_size() == before) out = static_cast<int>(v);
  }
  void size(std::string_view path, std::size_t& out, unsigned long long lo, unsigned long long hi) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_number_integer()) return type_error(path, "a non-negative integer", *j);
    if (!j->is_number_unsigned() && j->get<long long>() < 0) {
      return check_.report(path, fmt::format("{} is out of range (allowed {}..{})",
                                             j->get<long long>(), lo, hi));
    }
    const auto v = j->get<unsigned long long>();
    const std::size_t before = problems_size();
    check_.check_size(path, v, lo, hi);
    if (problems_size() == before) out = static_cast<std::size_t>(v);
  }
  void seconds(std::string_view path, Duration& out, double hi_s) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_number()) return type_error(path, "a number of seconds", *j);
    const double s = j->get<double>();
    if (!(s > 0.0 && s <= hi_s)) {
      return check_.report(path, fmt::format("{} s is out of range (allowed: more than 0, at "
                                             "most {} s)",
                                             fmt_seconds(s), fmt_seconds(hi_s)));
    }
    const Duration d = seconds_to_duration(s);
    const std::size_t before = problems_size();
    check_.check_seconds(path, d, hi_s);
    if (problems_size() == before) out = d;
  }
  void fraction(std::string_view path, double& out) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_number()) return type_error(path, "a number", *j);
    const double v = j->get<double>();
    const std::size_t before = problems_size();
    check_.check_fraction(path, v);
    if (problems_size() == before) out = v;
  }
  void boolean(std::string_view path, bool& out) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_boolean()) return type_error(path, "true or false", *j);
    out = j->get<bool>();
  }
  void string(std::string_view path, std::string& out) { read_string(path, out, false); }
  void optional_string(std::string_view path, std::string& out) {
    read_string(path, out, true);
  }
  void secret(std::string_view path, std::string& out) { read_string(path, out, true); }

  template <typename E, std::size_t N>
  void enumeration(std::string_view path, E& out, const EnumName<E> (&names)[N]) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_string()) return type_error(path, fmt::format("one of {}", enum_choices(names)), *j);
    const auto& s = j->get_ref<const std::string&>();
    for (const auto& n : names) {
      if (n.name == s) {
        out = n.value;
        return;
      }
    }
    check_.report(path, fmt::format("\"{}\" is not allowed (allowed: {})", s, enum_choices(names)));
  }

 private:
  const json* find(std::string_view path) const {
    const json* node = &root_;
    for (const auto& part : split_path(path)) {
      if (!node->is_object()) return nullptr;
      auto it = node->find(part);
      if (it == node->end()) return nullptr;
      node = &*it;
    }
    return node;
  }
  void read_string(std::string_view path, std::string& out, bool may_be_empty) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_string()) return type_error(path, "a string", *j);
    const auto& s = j->get_ref<const std::string&>();
    const std::size_t before = problems_size();
    check_.check_string(path, s, may_be_empty);
    if (problems_size() == before) out = s;
  }
  void type_error(std::string_view path, std::string_view expected, const json& got) {
    check_.report(path, fmt::format("expected {}, got {}", expected, json_type_name(got)));
  }
  std::size_t problems_size() const { return problems_.size(); }

  const json& root_;
  std::vector<std::string>& problems_;
  Checker check_;
};

// Config -> JSON.
class Writer {
 public:
  explicit Writer(bool redact) : redact_(redact) {}
  json root = json::object();

  void integer(std::string_view path, int v, long long, long long) { put(path, v); }
  void size(std::string_view path, std::size_t v, unsigned long long, unsigned long long) {
    put(path, static_cast<unsigned long long>(v));
  }
  void seconds(std::string_view path, Duration v, double) { put(path, duration_to_seconds(v)); }
  void fraction(std::string_view path, double v) { put(path, v); }
  void boolean(std::string_view path, bool v) { put(path, v); }
  void string(std::string_view path, const std::string& v) { put(path, v); }
  void optional_string(std::string_view path, const std::string& v) { put(path, v); }
  void secret(std::string_view path, const std::string& v) {
    put(path, redact_ && !v.empty() ? std::string("<redacted>") : v);
  }
  template <typename E, std::size_t N>
  void enumeration(std::string_view path, E v, const EnumName<E> (&names)[N]) {
    put(path, std::string(enum_name(names, v)));
  }

 private:
  template <typename T>
  void put(std::string_view path, T&& value) {
    json* node = &root;
    const auto parts = split_path(path);
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) node = &(*node)[parts[i]];
    (*node)[parts.back()] = std::forward<T>(value);
  }
  bool redact_;
};

// Config::validate(): the range rules applied to a Config built in code.
class RangeVisitor {
 public:
  explicit RangeVisitor(std::vector<std::string>& problems) : check_(problems) {}
  void integer(std::string_view p, int v, long long lo, long long hi) {
    check_.check_integer(p, v, lo, hi);
  }
  void size(std::string_view p, std::size_t v, unsigned long long lo, unsigned long long hi) {
    check_.check_size(p, v, lo, hi);
  }
  void seconds(std::string_view p, Duration v, double hi) { check_.check_seconds(p, v, hi); }
  void fraction(std::string_view p, double v) { check_.check_fraction(p, v); }
  void boolean(std::string_view, bool) {}
  void string(std::string_view p, const std::string& v) { check_.check_string(p, v, false); }
  void optional_string(std::string_view p, const std::string& v) {
    check_.check_string(p, v, true);
  }
  void secret(std::string_view p, const std::string& v) { check_.check_string(p, v, true); }
  template <typename E, std::size_t N>
  void enumeration(std::string_view p, E v, const EnumName<E> (&names)[N]) {
    if (enum_name(names, v) == "?") check_.report(p, "holds a value outside its enumeration");
  }

 private:
  Checker check_;
};

// Lists every key path.
struct KeyLister {
  std::vector<std::string> keys;
  void add(std::string_view p) { keys.emplace_back(p); }
  void integer(std::string_view p, const int&, long long, long long) { add(p); }
  void size(std::string_view p, const std::size_t&, unsigned long long, unsigned long long) {
    add(p);
  }
  void seconds(std::string_view p, const Duration&, double) { add(p); }
  void fraction(std::string_view p, const double&) { add(p); }
  void boolean(std::string_view p, const bool&) { add(p); }
  void string(std::string_view p, const std::string&) { add(p); }
  void optional_string(std::string_view p, const std::string&) { add(p); }
  void secret(std::string_view p, const std::string&) { add(p); }
  template <typename E, std::size_t N>
  void enumeration(std::string_view p, const E&, const EnumName<E> (&)[N]) {
    add(p);
  }
};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The schema as a tree: for each section path ("" is the root), its children.
struct KeyTree {
  std::map<std::string, std::set<std::string>> children;  // section -> child names
  std::set<std::string> leaves;                           // full leaf paths

  KeyTree() {
    for (const auto& key : Config::keys()) {
      leaves.insert(key);
      std::string section;
      for (const auto& part : split_path(key)) {
        children[section].insert(part);
        section = section.empty() ? part : section + "." + part;
      }
    }
  }
};

std::string suggestion(const std::set<std::string>& candidates, std::string_view key) {
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(key, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  const std::size_t allowed = std::max<std::size_t>(2, key.size() / 3);
  if (!best.empty() && best_distance <= allowed) return fmt::format(" (did you mean {}?)", best);
  std::string all;
  for (const auto& c : candidates) all += (all.empty() ? "" : ", ") + c;
  return fmt::format(" (known keys here: {})", all);
}

void find_unknown_keys(const json& node, const std::string& section, const KeyTree& tree,
                       std::vector<std::string>& problems) {
  const auto& known = tree.children.at(section);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string path = section.empty() ? it.key() : section + "." + it.key();
    if (!known.contains(it.key())) {
      problems.push_back(fmt::format("{}: unknown key{}", path, suggestion(known, it.key())));
    } else if (!tree.leaves.contains(path)) {
      if (!it->is_object()) {
        problems.push_back(
            fmt::format("{}: expected an object, got {}", path, json_type_name(*it)));
      } else {
        find_unknown_keys(*it, path, tree, problems);
      }
    }
  }
}

bool valid_url(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.starts_with(scheme)) {
      const std::string_view rest = url.substr(scheme.size());
      return !rest.empty() && rest.front() != '/' && rest.find(' ') == std::string_view::npos;
    }
  }
  return false;
}

bool valid_collection(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
  });
}

// Rules between keys, and formats that a range cannot express.
void check_consistency(const Config& c, std::vector<std::string>& problems) {
  Checker check(problems);
  const auto& fm = c.buffer.flush_manager;
  const auto& hb = c.buffer.hybrid_buffer;
  const auto& q = c.vector_store.qdrant;
  if (fm.default_timeout > fm.delivery_deadline) {
    check.report("buffer.flush_manager.default_timeout",
                 fmt::format("{} s is longer than buffer.flush_manager.delivery_deadline_s ({} s); "
                             "raise the deadline or shorten the timeout",
                             fmt_seconds(duration_to_seconds(fm.default_timeout)),
                             fmt_seconds(duration_to_seconds(fm.delivery_deadline))));
  }
  if (fm.retry.backoff_base > fm.retry.backoff_cap) {
    check.report("buffer.flush_manager.retry.backoff_base_s",
                 fmt::format("{} s is more than buffer.flush_manager.retry.backoff_cap_s ({} s)",
                             fmt_seconds(duration_to_seconds(fm.retry.backoff_base)),
                             fmt_seconds(duration_to_seconds(fm.retry.backoff_cap))));
  }
  if (static_cast<std::size_t>(hb.max_size) > hb.max_pending_rounds) {
    check.report("buffer.hybrid_buffer.max_size",
                 fmt::format("{} is more than buffer.hybrid_buffer.max_pending_rounds ({}); a "
                             "size-triggered flush could never happen",
                             hb.max_size, hb.max_pending_rounds));
  }
  if (hb.max_message_bytes > hb.max_pending_bytes) {
    check.report("buffer.hybrid_buffer.max_message_bytes",
                 fmt::format("{} is more than buffer.hybrid_buffer.max_pending_bytes ({})",
                             hb.max_message_bytes, hb.max_pending_bytes));
  }
  if (!valid_url(q.url)) {
    check.report("vector_store.qdrant.url",
                 fmt::format("\"{}\" is not an http:// or https:// URL with a host", q.url));
  }
  if (!valid_collection(q.collection)) {
    check.report("vector_store.qdrant.collection",
                 fmt::format("\"{}\" must be 1..255 characters of A-Z, a-z, 0-9, _ and -",
                             q.collection));
  }
  if (c.vector_store.kind == VectorStoreKind::Qdrant && q.request_timeout > fm.default_timeout) {
    check.report("vector_store.qdrant.request_timeout_s",
                 fmt::format("{} s is longer than buffer.flush_manager.default_timeout ({} s); "
                             "the flush attempt would time out first",
                             fmt_seconds(duration_to_seconds(q.request_timeout)),
                             fmt_seconds(duration_to_seconds(fm.default_timeout))));
  }
}

Error config_error(const std::vector<std::string>& problems) {
  std::string message = "invalid configuration:";
  for (const auto& p : problems) message += "\n  " + p;
  return Error(ErrorCode::InvalidArgument, false, std::move(message));
}

}  // namespace

Result<Config> Config::from_json(std::string_view json_text) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end(), nullptr, true, false);
  } catch (const json::parse_error& e) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("invalid configuration: not valid JSON (byte {}): {}", e.byte,
                            e.what()));
  } catch (const json::exception& e) {  // e.g. a number too large for a double (found by fuzzing)
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("invalid configuration: not valid JSON: {}", e.what()));
  }
  if (!root.is_object()) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("invalid configuration: the top level must be an object, got {}",
                            json_type_name(root)));
  }
  static const KeyTree tree;
  std::vector<std::string> problems;
  find_unknown_keys(root, "", tree, problems);

  Config config;
  Reader reader(root, problems);
  visit_fields(config, reader);
  if (problems.empty()) check_consistency(config, problems);
  if (!problems.empty()) return Unexpected(config_error(problems));
  return config;
}

Result<Config> Config::from_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return fail(ErrorCode::NotFound, false,
                fmt::format("configuration file {} does not exist", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(ErrorCode::Io, false,
                fmt::format("configuration file {} cannot be opened", path.string()));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return fail(ErrorCode::Io, false,
                fmt::format("configuration file {} could not be read", path.string()));
  }
  auto config = from_json(text.str());
  if (!config) {
    return fail(config.error().code(), false,
                fmt::format("{}: {}", path.string(), config.error().message()));
  }
  return config;
}

Result<void> Config::validate() const {
  std::vector<std::string> problems;
  RangeVisitor ranges(problems);
  visit_fields(*this, ranges);
  check_consistency(*this, problems);
  if (!problems.empty()) return Unexpected(config_error(problems));
  return {};
}

std::string Config::to_json(int indent) const {
  Writer writer(false);
  visit_fields(*this, writer);
  return writer.root.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string Config::to_redacted_json(int indent) const {
  Writer writer(true);
  visit_fields(*this, writer);
  return writer.root.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::vector<std::string> Config::keys() {
  KeyLister lister;
  const Config defaults;
  visit_fields(defaults, lister);
  return std::move(lister.keys);
}

std::string_view to_string(QueueFullPolicy p) noexcept { return enum_name(kQueueFullPolicies, p); }
std::string_view to_string(SqliteSynchronous s) noexcept {
  return enum_name(kSynchronousModes, s);
}
std::string_view to_string(VectorStoreKind k) noexcept { return enum_name(kVectorStoreKinds, k); }

}  // namespace memfuse
