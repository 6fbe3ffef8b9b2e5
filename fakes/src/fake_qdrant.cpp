#include "memfuse/fakes/fake_qdrant.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/executor.h"
#include "memfuse/fakes/qdrant_upsert_body.h"
#include "memfuse/ids.h"
#include "memfuse/validation.h"

namespace memfuse::fakes {
namespace {

using nlohmann::json;

HttpResponse respond(int status, json body) {
  HttpResponse r;
  r.status = status;
  r.headers = {{"content-type", "application/json"}};
  r.body = body.dump();
  return r;
}

HttpResponse ok(json result) {
  return respond(200, json{{"result", std::move(result)}, {"status", "ok"}, {"time", 0.0001}});
}

HttpResponse error(int status, const std::string& message) {
  return respond(status, json{{"status", {{"error", message}}}, {"time", 0.0001}});
}

struct Target {
  std::vector<std::string> path;  // "/collections/c/points/query" -> collections, c, points, query
  std::map<std::string, std::string> query;
};

Target parse_target(const std::string& target) {
  Target t;
  const auto q = target.find('?');
  const std::string path = target.substr(0, q);
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty()) t.path.push_back(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (q != std::string::npos) {
    std::string rest = target.substr(q + 1);
    std::size_t pos = 0;
    while (pos < rest.size()) {
      const auto amp = rest.find('&', pos);
      const std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      const auto eq = kv.find('=');
      t.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
  }
  return t;
}

// Qdrant accepts unsigned integers and UUIDs (any case) as point ids.
std::optional<std::string> point_id(const json& id) {
  if (id.is_number_unsigned() || (id.is_number_integer() && id.get<long long>() >= 0)) {
    return std::to_string(id.get<unsigned long long>());
  }
  if (id.is_string()) {
    if (auto u = Uuid::parse(id.get<std::string>())) return u->to_string();
  }
  return std::nullopt;
}

json id_to_json(const std::string& id) {
  if (!id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::stoull(id);
  }
  return id;
}

// Only the filter memfuse sends: {"must": [{"key": K, "match": {"value": V}}, ...]}.
bool matches(const json& filter, const std::string& payload_json) {
  if (filter.is_null()) return true;
  const json payload = json::parse(payload_json);
  for (const auto& cond : filter.value("must", json::array())) {
    const std::string key = cond.value("key", "");
    if (!payload.contains(key) || payload[key] != cond["match"]["value"]) return false;
  }
  return true;
}

bool valid_filter(const json& filter) {
  if (filter.is_null()) return true;
  if (!filter.is_object() || !filter.contains("must") || !filter["must"].is_array()) return false;
  return std::all_of(filter["must"].begin(), filter["must"].end(), [](const json& c) {
    return c.is_object() && c.contains("key") && c["key"].is_string() && c.contains("match") &&
           c["match"].is_object() && c["match"].contains("value");
  });
}


// The general reader's SAX handler: a DOM for everything but the points'
// vectors, which are read straight into floats. Each point's "vector" array
// stays in the DOM as an empty array; its elements are in `vectors`, by
// point index.
class UpsertSax final : public nlohmann::json_sax<json> {
 public:
  struct Vector {
    std::size_t elements = 0;  // at the top level of the array, numbers or not
    bool numbers_only = true;
    std::vector<float> values;
  };

  json root;
  std::vector<std::optional<Vector>> vectors;

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool b) override { return value(json(b)); }
  bool number_integer(number_integer_t v) override { return number(static_cast<float>(v), json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<float>(v), json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(static_cast<float>(v), json(v)); }
  bool string(string_t& s) override { return value(json(std::move(s))); }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    if (vector_ != nullptr) return nested();
    stack_.push_back(add(json::object()));
    return true;
  }
  bool key(string_t& k) override {
    if (vector_ == nullptr) key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (vector_ != nullptr) {
      --vector_depth_;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (vector_ != nullptr) return nested();
    const bool is_points = stack_.size() == 1 && stack_[0]->is_object() && key_ == "points";
    const bool is_vector = stack_.size() == 3 && stack_[1] == points_ && stack_[2]->is_object() && key_ == "vector";
    json* array = add(json::array());
    if (is_points) points_ = array;
    if (is_vector) {
      const std::size_t point = points_->size() - 1;
      if (vectors.size() <= point) vectors.resize(point + 1);
      vectors[point].emplace();
      vector_ = &*vectors[point];
      vector_depth_ = 0;
      return true;
    }
    stack_.push_back(array);
    return true;
  }
  bool end_array() override {
    if (vector_ != nullptr) {
      if (vector_depth_-- == 0) vector_ = nullptr;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  json* add(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }
  bool value(json v) {
    if (vector_ != nullptr) {
      if (vector_depth_ == 0) {
        ++vector_->elements;
        vector_->numbers_only = false;
      }
      return true;
    }
    add(std::move(v));
    return true;
  }
  bool number(float f, json v) {
    if (vector_ != nullptr) {
      if (vector_depth_ == 0) {
        ++vector_->elements;
        vector_->values.push_back(f);
      }
      return true;
    }
    add(std::move(v));
    return true;
  }
  // An array or object inside a vector: one element, not a number.
  bool nested() {
    if (vector_depth_++ == 0) {
      ++vector_->elements;
      vector_->numbers_only = false;
    }
    return true;
  }

  std::vector<json*> stack_;
  std::string key_;
  json* points_ = nullptr;
  Vector* vector_ = nullptr;
  int vector_depth_ = 0;
};

std::string dimension_error(std::size_t expected, std::size_t got) {
  return fmt::format("Wrong input: Vector dimension error: expected dim: {}, got {}", expected, got);
}

// The fast reader's cursor. Every method returns false / nullopt for
// anything outside the plain shape; it never decides that a body is invalid.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool at_end() {
    ws();
    return i_ == s_.size();
  }
  // A string of printable ASCII with no escapes.
  std::optional<std::string_view> plain_string() {
    if (!eat('"')) return std::nullopt;
    const std::size_t start = i_;
    for (; i_ < s_.size(); ++i_) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return s_.substr(start, i_++ - start);
      if (c == '\\' || c < 0x20 || c >= 0x80) return std::nullopt;
    }
    return std::nullopt;
  }
  // A JSON number, converted as nlohmann converts it: an integer (up to 15
  // characters here) through its integer type, anything else through a
  // double. An integer's digits are summed as they are scanned (exact: 15
  // digits are below 2^53); most elements of a sparse embedding are "0".
  std::optional<float> number() {
    ws();
    const std::size_t start = i_;
    std::int64_t whole = 0;  // the integer part's value, while it has at most 15 digits
    auto digits = [&](bool sum) {
      const std::size_t from = i_;
      for (; i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; ++i_) {
        if (sum && i_ - from < 15) whole = whole * 10 + (s_[i_] - '0');
      }
      return i_ - from;
    };
    const bool negative = i_ < s_.size() && s_[i_] == '-';
    if (negative) ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits(true) == 0) {
      return std::nullopt;
    }
    bool integer = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      integer = false;
      if (digits(false) == 0) return std::nullopt;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      integer = false;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits(false) == 0) return std::nullopt;
    }
    if (integer) {
      if (i_ - start > 15) return std::nullopt;
      return static_cast<float>(negative ? -whole : whole);
    }
    double v = 0;
    const char* last = s_.data() + i_;
    const auto r = std::from_chars(s_.data() + start, last, v);
    if (r.ec != std::errc() || r.ptr != last) return std::nullopt;
    return static_cast<float>(v);
  }
  // The numbers of an array whose '[' was just eaten, through its ']',
  // appended to `out` (a vector is most of a body: one pass, no call per
  // separator).
  bool number_array(std::vector<float>& out) {
    if (eat(']')) return true;
    for (;;) {
      // "0", the commonest element of a sparse embedding, as number() reads it.
      if (i_ + 1 < s_.size() && s_[i_] == '0' && (s_[i_ + 1] == ',' || s_[i_ + 1] == ']')) {
        ++i_;
        out.push_back(0.0f);
      } else {
        const auto x = number();
        if (!x) return false;
        out.push_back(*x);
      }
      if (i_ < s_.size() && s_[i_] == ',') {  // the plain shape: no space before the comma
        ++i_;
      } else if (!eat(',')) {
        return eat(']');
      }
    }
  }
  // A string that nlohmann's dump() writes back byte for byte, with its
  // quotes: escapes only as dump() writes them (\" \\ \b \f \n \r \t; no \u,
  // no \/), no raw control character, valid UTF-8.
  std::optional<std::string_view> canonical_string() {
    ws();
    const std::size_t start = i_;
    if (i_ >= s_.size() || s_[i_] != '"') return std::nullopt;
    for (++i_; i_ < s_.size(); ++i_) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        const std::string_view quoted = s_.substr(start, ++i_ - start);
        if (is_valid_utf8(quoted)) return quoted;
        break;
      }
      if (c < 0x20) break;
      if (c == '\\') {
        if (++i_ >= s_.size()) break;
        const char e = s_[i_];
        if (e != '"' && e != '\\' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') break;
      }
    }
    i_ = start;
    return std::nullopt;
  }
  // A non-negative integer of 1..18 digits without a leading zero (read and
  // written back by nlohmann as the same digits), as text.
  std::optional<std::string_view> plain_integer() {
    ws();
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    const std::size_t n = i_ - start;
    const bool next_is_number = i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E');
    if (n == 0 || n > 18 || (n > 1 && s_[start] == '0') || next_is_number) {
      i_ = start;
      return std::nullopt;
    }
    return s_.substr(start, n);
  }
  // An object, as text: from its '{' to its matching '}', strings skipped.
  std::optional<std::string_view> object_text() {
    ws();
    if (i_ >= s_.size() || s_[i_] != '{') return std::nullopt;
    const std::size_t start = i_;
    int depth = 0;
    bool in_string = false;
    for (; i_ < s_.size(); ++i_) {
      const char c = s_[i_];
      if (in_string) {
        if (c == '\\') {
          ++i_;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return s_.substr(start, ++i_ - start);
      }
    }
    return std::nullopt;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

// A payload object's text as nlohmann's dump() writes it, for the shape the
// store sends: a flat object of strings already written as dump() writes them
// and small non-negative integers, keys once each. dump() sorts the keys (its
// object is a std::map, ordered by the unescaped keys) and adds no spaces.
// Anything else: nullopt (the caller parses and dumps).
std::optional<std::string> canonical_flat_payload(std::string_view text) {
  Scanner in(text);
  if (!in.eat('{')) return std::nullopt;
  std::vector<std::pair<std::string_view, std::string_view>> fields;  // key (unquoted), value as written
  if (!in.eat('}')) {
    do {
      // Sorted by what is between the quotes, as dump() sorts: so no escape
      // in a key (its order would be the unescaped text's).
      const auto quoted_key = in.canonical_string();
      if (!quoted_key || !in.eat(':')) return std::nullopt;
      const std::string_view key = quoted_key->substr(1, quoted_key->size() - 2);
      if (key.find('\\') != std::string_view::npos) return std::nullopt;
      if (auto value = in.canonical_string()) {
        fields.emplace_back(key, *value);
      } else if (auto digits = in.plain_integer()) {
        fields.emplace_back(key, *digits);
      } else {
        return std::nullopt;
      }
    } while (in.eat(','));
    if (!in.eat('}')) return std::nullopt;
  }
  if (!in.at_end()) return std::nullopt;
  std::sort(fields.begin(), fields.end());
  std::string out = "{";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0 && fields[i].first == fields[i - 1].first) return std::nullopt;  // a key given twice
    if (i > 0) out += ',';
    out += '"';
    out += fields[i].first;
    out += "\":";
    out += fields[i].second;
  }
  out += '}';
  return out;
}

std::optional<UpsertPoint> fast_point(Scanner& in, std::size_t expected_dimension) {
  if (!in.eat('{')) return std::nullopt;
  UpsertPoint p;
  bool have_id = false, have_vector = false, have_payload = false;
  do {
    const auto key = in.plain_string();
    if (!key || !in.eat(':')) return std::nullopt;
    if (*key == "id" && !have_id) {
      const auto text = in.plain_string();
      if (!text) return std::nullopt;
      auto id = Uuid::parse(*text);
      if (!id) return std::nullopt;
      p.id = id->to_string();
      have_id = true;
    } else if (*key == "vector" && !have_vector) {
      p.vector.reserve(expected_dimension);
      if (!in.eat('[') || !in.number_array(p.vector)) return std::nullopt;
      have_vector = true;
    } else if (*key == "payload" && !have_payload) {
      const auto text = in.object_text();
      if (!text) return std::nullopt;
      if (auto canonical = canonical_flat_payload(*text)) {
        p.payload_json = std::move(*canonical);
      } else {
        const json payload = json::parse(*text, nullptr, false);
        if (payload.is_discarded() || !payload.is_object()) return std::nullopt;
        p.payload_json = payload.dump();
      }
      have_payload = true;
    } else {
      return std::nullopt;  // another key, or one given twice
    }
  } while (in.eat(','));
  if (!in.eat('}') || !have_id || !have_vector) return std::nullopt;
  if (!have_payload) p.payload_json = "{}";
  return p;
}

}  // namespace

std::optional<std::vector<UpsertPoint>> read_upsert_body_fast(std::string_view body,
                                                              std::size_t expected_dimension) {
  Scanner in(body);
  if (!in.eat('{')) return std::nullopt;
  const auto key = in.plain_string();
  if (!key || *key != "points" || !in.eat(':') || !in.eat('[')) return std::nullopt;
  std::vector<UpsertPoint> points;
  if (!in.eat(']')) {
    do {
      auto p = fast_point(in, expected_dimension);
      if (!p) return std::nullopt;
      points.push_back(std::move(*p));
    } while (in.eat(','));
    if (!in.eat(']')) return std::nullopt;
  }
  if (!in.eat('}') || !in.at_end()) return std::nullopt;
  return points;
}

UpsertRead read_upsert_body_general(std::string_view body, std::size_t dimension) {
  UpsertSax reader;
  if (!json::sax_parse(body, &reader) || !reader.root.is_object()) {
    return std::string("Format error in JSON body: not a JSON object");
  }
  const json& root = reader.root;
  if (!root.contains("points") || !root["points"].is_array()) {
    return std::string("Format error in JSON body: missing field `points`");
  }
  if (root.contains("ordering") && !root["ordering"].is_string()) {
    return std::string("Format error in JSON body: `ordering` must be weak, medium or strong");
  }
  const json& points = root["points"];
  std::vector<UpsertPoint> out;
  out.reserve(points.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    const json& p = points[i];
    if (!p.is_object() || !p.contains("id") || !p.contains("vector") || !p["vector"].is_array()) {
      return std::string("Format error in JSON body: a point needs `id` and `vector`");
    }
    auto id = point_id(p["id"]);
    if (!id) return std::string("Format error in JSON body: point id must be an unsigned integer or a UUID");
    // Every "vector" array of a point was read aside; never absent, but checked.
    if (i >= reader.vectors.size() || !reader.vectors[i]) {
      return std::string("Format error in JSON body: a point needs `id` and `vector`");
    }
    auto& read = reader.vectors[i];
    if (read->elements != dimension) return dimension_error(dimension, read->elements);
    if (!read->numbers_only) return std::string("Format error in JSON body: vector must hold numbers");
    out.push_back(UpsertPoint{std::move(*id), std::move(read->values), p.value("payload", json::object()).dump()});
  }
  return out;
}

UpsertRead read_upsert_body(std::string_view body, std::size_t dimension) {
  if (auto points = read_upsert_body_fast(body, dimension)) {
    for (const auto& p : *points) {
      if (p.vector.size() != dimension) return dimension_error(dimension, p.vector.size());
    }
    return std::move(*points);
  }
  return read_upsert_body_general(body, dimension);
}


const QdrantModel::Collection* QdrantModel::collection(const std::string& name) const {
  auto it = collections_.find(name);
  return it == collections_.end() ? nullptr : &it->second;
}

HttpResponse QdrantModel::handle(const HttpRequest& request) {
  ++requests_;
  if (request.body.size() > kQdrantMaxBodyBytes) {
    return error(400, fmt::format("Payload error: JSON payload ({} bytes) is larger than allowed "
                                  "(limit: {} bytes).",
                                  request.body.size(), kQdrantMaxBodyBytes));
  }
  const Target t = parse_target(request.target);
  if (t.path.size() < 2 || t.path[0] != "collections") return error(404, "Not found");
  const std::string& name = t.path[1];
  if (t.path.size() == 2) {
    if (request.method == "GET") {
      auto it = collections_.find(name);
      if (it == collections_.end()) {
        return error(404, fmt::format("Not found: Collection `{}` doesn't exist!", name));
      }
      return ok({{"status", "green"},
                 {"points_count", it->second.points.size()},
                 {"config", {{"params", {{"vectors", {{"size", it->second.size}, {"distance", "Cosine"}}}}}}}});
    }
    if (request.method == "PUT") {
      const json body = json::parse(request.body, nullptr, false);
      if (body.is_discarded() || !body.contains("vectors") || !body["vectors"].is_object() ||
          !body["vectors"].contains("size") || !body["vectors"]["size"].is_number_unsigned() ||
          body["vectors"].value("distance", "") != "Cosine") {
        return error(400, "Format error in JSON body: expected {\"vectors\": {\"size\": N, \"distance\": \"Cosine\"}}");
      }
      if (collections_.contains(name)) {
        return error(409, fmt::format("Wrong input: Collection `{}` already exists!", name));
      }
      collections_[name].size = body["vectors"]["size"].get<int>();
      return ok(true);
    }
    return error(405, "Method Not Allowed");
  }
  if (!collections_.contains(name)) {
    return error(404, fmt::format("Not found: Collection `{}` doesn't exist!", name));
  }
  if (t.path[2] != "points") return error(404, "Not found");
  const std::string action = t.path.size() > 3 ? t.path[3] : "";
  const bool wait = t.query.contains("wait") && t.query.at("wait") == "true";
  const bool writes = (action.empty() && request.method == "PUT") || action == "delete";
  if (writes && !wait) {
    // Validate now, as the server does, then queue: "acknowledged".
    const HttpResponse check = apply(name, action + "?dry-run", request);
    if (check.status != 200) return check;
    pending_.push_back(Pending{name, request});
    return ok({{"operation_id", next_operation_++}, {"status", "acknowledged"}});
  }
  return apply(name, action, request);
}

HttpResponse QdrantModel::apply(const std::string& name, const std::string& action_in,
                                const HttpRequest& request) {
  const bool dry_run = action_in.ends_with("?dry-run");
  const std::string action = dry_run ? action_in.substr(0, action_in.size() - 8) : action_in;
  Collection& c = collections_.at(name);
  if (action.empty() && request.method == "PUT") {  // upsert
    auto read = read_upsert_body(request.body, static_cast<std::size_t>(c.size));
    if (auto* message = std::get_if<std::string>(&read)) return error(400, *message);
    auto& points = std::get<std::vector<UpsertPoint>>(read);
    if (!dry_run) {
      for (auto& p : points) {
        Point point{std::move(p.vector), std::move(p.payload_json)};
        double norm = 0;
        for (const float x : point.vector) norm += static_cast<double>(x) * x;
        norm = std::sqrt(norm);
        if (norm > 0) {
          for (auto& x : point.vector) x = static_cast<float>(x / norm);
        }
        c.points[p.id] = std::move(point);
      }
    }
    return ok({{"operation_id", next_operation_++}, {"status", "completed"}});
  }
  const json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return error(400, "Format error in JSON body: not a JSON object");

  if (action == "delete" && request.method == "POST") {
    if (body.contains("points") && body["points"].is_array()) {
      std::vector<std::string> ids;
      for (const auto& id : body["points"]) {
        auto pid = point_id(id);
        if (!pid) return error(400, "Format error in JSON body: bad point id");
        ids.push_back(*pid);
      }
      if (!dry_run) {
        for (const auto& id : ids) c.points.erase(id);
      }
    } else if (body.contains("filter") && valid_filter(body["filter"])) {
      if (!dry_run) {
        std::erase_if(c.points, [&](const auto& kv) { return matches(body["filter"], kv.second.payload_json); });
      }
    } else {
      return error(400, "Format error in JSON body: expected `points` or `filter`");
    }
    return ok({{"operation_id", next_operation_++}, {"status", "completed"}});
  }
  if (action == "query" && request.method == "POST") {
    const json filter = body.value("filter", json());
    if (!body.contains("query") || !body["query"].is_array() || !valid_filter(filter)) {
      return error(400, "Format error in JSON body: expected `query` (a vector) and an optional `filter`");
    }
    if (static_cast<int>(body["query"].size()) != c.size) {
      return error(400, fmt::format("Wrong input: Vector dimension error: expected dim: {}, got {}",
                                    c.size, body["query"].size()));
    }
    std::vector<double> q;
    double norm = 0;
    for (const auto& x : body["query"]) {
      q.push_back(x.get<double>());
      norm += q.back() * q.back();
    }
    norm = std::sqrt(norm);
    const auto limit = static_cast<std::size_t>(body.value("limit", 10));
    std::vector<std::pair<double, const std::string*>> scored;
    for (const auto& [id, point] : c.points) {
      if (!matches(filter, point.payload_json)) continue;
      double dot = 0;
      for (std::size_t i = 0; i < q.size(); ++i) dot += q[i] * point.vector[i];
      scored.emplace_back(norm > 0 ? dot / norm : 0.0, &id);
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : *a.second < *b.second;
    });
    json points = json::array();
    const bool with_payload = body.value("with_payload", false);
    for (std::size_t i = 0; i < scored.size() && i < limit; ++i) {
      json p = {{"id", id_to_json(*scored[i].second)}, {"version", 0}, {"score", scored[i].first}};
      if (with_payload) p["payload"] = json::parse(c.points.at(*scored[i].second).payload_json);
      points.push_back(std::move(p));
    }
    return ok({{"points", std::move(points)}});
  }
  if (action == "count" && request.method == "POST") {
    const json filter = body.value("filter", json());
    if (!valid_filter(filter)) return error(400, "Format error in JSON body: bad `filter`");
    std::size_t n = 0;
    for (const auto& [id, point] : c.points) n += matches(filter, point.payload_json) ? 1 : 0;
    return ok({{"count", n}});
  }
  return error(404, "Not found");
}

void QdrantModel::apply_pending() {
  auto pending = std::move(pending_);
  pending_.clear();
  for (const auto& p : pending) {
    const Target t = parse_target(p.request.target);
    (void)apply(p.collection, t.path.size() > 3 ? t.path[3] : "", p.request);
  }
}

void QdrantModel::crash() { pending_.clear(); }

// ---------------------------------------------------------------------------

class FakeQdrant::Call final : public HttpCall {
 public:
  Call(FakeQdrant& owner, Executor completion, HttpHandler done)
      : owner_(&owner), completion_(std::move(completion)), done_(std::move(done)) {}

  void cancel() noexcept override {
    if (owner_ == nullptr || !done_) return;
    if (timer_id_ != 0) owner_->runtime_.context().cancel_timer(timer_id_);
    finish(fail(ErrorCode::Cancelled, false, "the HTTP call was cancelled"));
  }

  void respond_after(Duration latency, Result<HttpResponse> result) {
    timer_id_ = owner_->runtime_.context().schedule_at(
        owner_->runtime_.now() + latency,
        [self = self_.lock(), r = std::move(result)]() mutable {
          if (self && self->done_) self->finish(std::move(r));
        },
        "qdrant.response");
  }
  void finish(Result<HttpResponse> result) {
    auto done = std::move(done_);
    done_ = nullptr;
    boost::asio::post(completion_.get(),
                      [done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); });
  }
  void detach() noexcept { owner_ = nullptr; }

  std::weak_ptr<Call> self_;

 private:
  FakeQdrant* owner_;
  Executor completion_;
  HttpHandler done_;
  std::uint64_t timer_id_ = 0;
};

FakeQdrant::FakeQdrant(sim::SimRuntime& runtime, QdrantFaultPlan plan)
    : runtime_(runtime), plan_(plan) {}

FakeQdrant::~FakeQdrant() {
  *alive_ = false;
  for (auto& w : calls_) {
    if (auto c = w.lock()) c->detach();
  }
}

void FakeQdrant::fault(std::string_view label) {
  ++faults_;
  runtime_.fault_event(label);
}

std::shared_ptr<HttpCall> FakeQdrant::async_request(HttpRequest request, const Executor& completion,
                                                    HttpHandler done) {
  auto call = std::make_shared<Call>(*this, completion, std::move(done));
  call->self_ = call;
  std::erase_if(calls_, [](const auto& w) { return w.expired(); });
  calls_.push_back(call);
  Random& r = runtime_.fault_random();
  const Duration latency = plan_.latency.draw(r);
  struct Injected {
    double p;
    int status;
    const char* label;
    const char* message;
  };
  const Injected statuses[] = {
      {plan_.status_400, 400, "qdrant: 400 injected", "Bad request (injected)"},
      {plan_.status_408, 408, "qdrant: 408 wait_timeout", "Timeout error: wait_timeout expired"},
      {plan_.status_429, 429, "qdrant: 429 rate limited", "Too many requests"},
      {plan_.status_500, 500, "qdrant: 500", "Service internal error"},
      {plan_.status_503, 503, "qdrant: 503", "Service unavailable"},
  };
  for (const auto& s : statuses) {
    if (r.chance(s.p)) {
      fault(s.label);
      call->respond_after(latency, error(s.status, s.message));
      return call;
    }
  }
  auto no_answer = [&] {
    if (request_timeout_) {
      call->respond_after(*request_timeout_,
                          fail(ErrorCode::Timeout, true, "qdrant: no response within the request timeout"));
    }
    return call;  // without a request timeout: never answers; the caller's cancel ends it
  };
  if (r.chance(plan_.timeout)) {
    fault("qdrant: no response (timeout)");
    return no_answer();
  }
  const bool lose_response = r.chance(plan_.response_lost);
  HttpResponse response = model_.handle(request);
  if (model_.pending_operations() > 0) {
    // Acknowledged wait=false writes apply a little later, unless a crash comes first.
    runtime_.context().schedule_at(
        runtime_.now() + plan_.latency.draw(r),
        [this, alive = alive_] {
          if (*alive) model_.apply_pending();
        },
        "qdrant.apply_pending");
  }
  if (lose_response) {
    fault("qdrant: applied, response lost");
    return no_answer();
  }
  call->respond_after(latency, std::move(response));
  return call;
}

void FakeQdrant::crash() {
  if (model_.pending_operations() > 0 && runtime_.fault_random().chance(plan_.lose_acknowledged_on_crash)) {
    fault("qdrant: crash lost acknowledged writes");
    model_.crash();
  } else {
    model_.apply_pending();
  }
}

}  // namespace memfuse::fakes
