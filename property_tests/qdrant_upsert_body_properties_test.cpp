// The fake Qdrant's two upsert readers agree: whenever the fast reader
// answers a body, the general reader (nlohmann's parser, the server's
// errors) answers it the same way - the same points, ids, payloads and the
// same float bits, or the same error. Bodies are drawn in the shape clients
// send, with varied number spellings, key orders, whitespace and escapes,
// then some are damaged byte by byte.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <charconv>
#include <initializer_list>
#include <string_view>
#include <cstring>
#include <variant>

#include <nlohmann/json.hpp>

#include "memfuse/fakes/qdrant_upsert_body.h"

namespace memfuse::fakes {
namespace {

using nlohmann::json;

std::string ws() {
  static const char* kSpaces[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
  return kSpaces[*rc::gen::inRange(0, 7)];
}

std::string number_text() {
  switch (*rc::gen::inRange(0, 13)) {
    case 0: {  // the shortest form of a float, as production writes it
      const std::uint32_t bits = *rc::gen::arbitrary<std::uint32_t>();
      float x = 0;
      std::memcpy(&x, &bits, sizeof x);
      if (!std::isfinite(x)) x = 1.5f;
      char buf[32];
      return std::string(buf, std::to_chars(buf, buf + sizeof buf, x).ptr);
    }
    case 1: return std::to_string(*rc::gen::inRange(-100000, 100000));
    case 2: return *rc::gen::element<std::string>("-0", "0", "-0.0", "0.0", "1e5", "1E+2", "-2.5e-3", "3.0e0");
    case 3: return *rc::gen::element<std::string>("1e-400", "123456789012345", "1234567890123456", "-9007199254740993",
                                                  "18446744073709551615", "1e999", "4.9e-324");
    case 4:
    case 5:
    case 6: return *rc::gen::element<std::string>("1.4e-45", "3.4028235e38", "3.4028236e38", "0.1", "1.00000001");
    case 7:  // not JSON numbers, or near the fast reader's shortcuts ("0" before a separator)
      return *rc::gen::element<std::string>("01", "00", "0.", "-", ".5", "+1", "0e", "1e+", "--1", "0x1",
                                            "Infinity", "NaN", "1.e5", "-01", "0 ", "0]", "0,");
    default: {
      const double d = *rc::gen::arbitrary<double>();
      char buf[40];
      return std::isfinite(d) ? std::string(buf, std::to_chars(buf, buf + sizeof buf, d).ptr) : std::string("2");
    }
  }
}

std::string id_text() {
  switch (*rc::gen::inRange(0, 13)) {
    case 0: return std::to_string(*rc::gen::inRange(0, 1000));  // an integer id: the general reader's
    case 1: return R"("not-a-uuid")";
    case 2: return R"("00000000-0000-5000-8000-0000000000AB")";
    default: {
      char buf[48];
      std::snprintf(buf, sizeof buf, "\"%08x-0000-5000-8000-%012x\"", *rc::gen::inRange(0, 1 << 30),
                    *rc::gen::inRange(0, 1 << 30));
      return buf;
    }
  }
}

std::string payload_text() {
  json p = json::object();
  const int fields = *rc::gen::inRange(0, 4);
  for (int i = 0; i < fields; ++i) {
    const std::string key = *rc::gen::element<std::string>("text", "session_id", "round_id", "chunk_index", "n");
    switch (*rc::gen::inRange(0, 4)) {
      case 0: p[key] = *rc::gen::element<std::string>("plain", "q\"uote", "back\\slash", "caf\xc3\xa9", "{[}]", "\x01"); break;
      case 1: p[key] = *rc::gen::inRange(0, 100); break;
      case 2: p[key] = json::array({1, "two", json::object({{"three", 3}})}); break;
      default: p[key] = nullptr;
    }
  }
  std::string text = p.dump();
  if (*rc::gen::inRange(0, 4) == 0) text = R"({"text":"\u0041\n\"x\"","n":1})";  // escapes as others write them
  if (*rc::gen::inRange(0, 3) == 0) {
    // Flat, as the store writes it (its key order, not dump()'s), or near it:
    // spaces, a key twice, numbers nlohmann reads otherwise than as they
    // are written, strings with escapes or other than printable ASCII.
    text = "{" + ws();
    const int n = *rc::gen::inRange(0, 5);
    for (int i = 0; i < n; ++i) {
      if (i > 0) text += "," + ws();
      text += "\"" + *rc::gen::element<std::string>("round_id", "session_id", "chunk_index", "text", "a", "",
                                                            "a b", "a!", "a\\n", "a\\u0041", "\xc3\xa9") + "\"";
      text += ws() + ":" + ws();
      text += *rc::gen::element<std::string>(
          "\"0189abcd-0000-7000-8000-000000000001\"", "\"s-1\"", "\"\"", "\"two words\"", "\"del\x7f\"",
          "\"tab\\there\"", "\"caf\xc3\xa9\"", "\"line\\nbreak \\\"q\\\" back\\\\slash\"",
          "\"\\u0041\"", "\"sl\\/ash\"", "\"bad\xff\"", "\"ctl\x01\"", "0", "7", "42", "007", "-3", "-0", "1.5", "2e3",
          "123456789012345678", "1234567890123456789", "18446744073709551616", "true", "null", "[1]", "{}");
      text += ws();
    }
    text += "}";
  }
  return text;
}

// Appends the parts (one statement each: chains of + on temporaries set off
// g++ 12's false -Wrestrict at -O2).
void cat(std::string& out, std::initializer_list<std::string_view> parts) {
  for (const auto part : parts) out.append(part);
}

std::string point_text() {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back("id", id_text());
  std::string v = "[";
  v += ws();
  const int n = *rc::gen::inRange(0, 6);
  for (int i = 0; i < n; ++i) cat(v, {i > 0 ? "," : "", i > 0 ? ws() : "", number_text(), ws()});
  v += "]";
  fields.emplace_back("vector", v);
  if (*rc::gen::inRange(0, 4) != 0) fields.emplace_back("payload", payload_text());
  if (*rc::gen::inRange(0, 30) == 0) fields.emplace_back("other", "1");
  if (*rc::gen::inRange(0, 30) == 0) fields.emplace_back("id", id_text());  // given twice
  const auto order = *rc::gen::container<std::vector<int>>(fields.size(), rc::gen::inRange(0, 100));
  std::vector<std::size_t> idx(fields.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return order[a] < order[b]; });
  std::string out = "{";
  for (std::size_t k = 0; k < idx.size(); ++k) {
    cat(out, {ws(), k > 0 ? "," : "", "\"", fields[idx[k]].first, "\"", ws(), ":", ws(), fields[idx[k]].second,
              ws()});
  }
  out += "}";
  return out;
}

std::string body_text() {
  std::string out;
  cat(out, {ws(), "{", ws(), "\"points\"", ws(), ":", ws(), "[", ws()});
  const int n = *rc::gen::inRange(0, 4);
  for (int i = 0; i < n; ++i) cat(out, {i > 0 ? "," : "", ws(), point_text(), ws()});
  cat(out, {"]", ws()});
  if (*rc::gen::inRange(0, 10) == 0) out += R"(,"ordering":"weak")";
  cat(out, {"}", ws()});
  return out;
}

void damage(std::string& s) {
  const int edits = *rc::gen::inRange(1, 4);
  static const std::string kBytes = "{}[],:\"\\-+0123456789eE. x\x80";
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const auto at = static_cast<std::size_t>(*rc::gen::inRange<std::size_t>(0, s.size()));
    const char c = kBytes[static_cast<std::size_t>(*rc::gen::inRange<std::size_t>(0, kBytes.size()))];
    switch (*rc::gen::inRange(0, 3)) {
      case 0: s.erase(at, 1); break;
      case 1: s.insert(at, 1, c); break;
      default: s[at] = c;
    }
  }
}

bool same(const UpsertRead& a, const UpsertRead& b) {
  if (a.index() != b.index()) return false;
  if (const auto* m = std::get_if<std::string>(&a)) return *m == std::get<std::string>(b);
  const auto& pa = std::get<std::vector<UpsertPoint>>(a);
  const auto& pb = std::get<std::vector<UpsertPoint>>(b);
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    if (pa[i].id != pb[i].id || pa[i].payload_json != pb[i].payload_json) return false;
    if (pa[i].vector.size() != pb[i].vector.size()) return false;
    // Bit for bit: -0.0 and 0.0 compare equal as floats.
    if (!pa[i].vector.empty() &&
        std::memcmp(pa[i].vector.data(), pb[i].vector.data(), pa[i].vector.size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

std::string describe(const UpsertRead& r) {
  if (const auto* m = std::get_if<std::string>(&r)) return "error: " + *m;
  std::string out;
  for (const auto& p : std::get<std::vector<UpsertPoint>>(r)) {
    out += p.id + " [";
    for (const float x : p.vector) {
      char buf[32];
      out += std::string(buf, std::to_chars(buf, buf + sizeof buf, x).ptr) + " ";
    }
    out += "] " + p.payload_json + "\n";
  }
  return out;
}

RC_GTEST_PROP(QdrantUpsertBody, TheFastReaderAnswersAsTheGeneralReaderDoes, ()) {
  std::string body = body_text();
  const bool damaged = *rc::gen::inRange(0, 3) == 0;
  if (damaged) damage(body);
  const bool fast = read_upsert_body_fast(body).has_value();
  RC_CLASSIFY(fast, "the fast reader answered");
  RC_CLASSIFY(damaged, "damaged");
  for (const std::size_t dimension : {std::size_t{0}, std::size_t{2}, std::size_t{5}}) {
    const UpsertRead chosen = read_upsert_body(body, dimension);
    const UpsertRead general = read_upsert_body_general(body, dimension);
    if (fast && !same(chosen, general)) {
      RC_FAIL("body " + body + "\nfast: " + describe(chosen) + "\ngeneral: " + describe(general));
    }
  }
}

}  // namespace
}  // namespace memfuse::fakes
