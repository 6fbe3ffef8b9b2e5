// HashingEmbedder is fast on purpose (a remainder by multiplication, counts in
// int32, only the touched buckets read back, a table of quotients), and its
// vectors are stored data: they must equal, bit for bit, the definition below,
// written the plain way (a `%` per feature, doubles, every bucket). Property:
// for any text - prose-like words, raw bytes, long runs of short words that
// overflow the touched-bucket list - and any dimension, the two agree. A
// failure prints its RC_PARAMS replay string.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/embedder.h"

namespace memfuse {
namespace {

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Words are maximal runs of ASCII letters and digits (lower-cased) and bytes
// >= 0x80. Features: each word's hash, each adjacent pair's hash of
// "first second" built as fnv1a(second, fnv1a(" ", fnv1a(first))); with no
// words, the raw bytes' hash under another seed. A feature adds +1 (top bit
// clear) or -1 to bucket hash % dimension; the vector is counts / L2 norm.
std::vector<float> reference_embedding(std::string_view text, int dimension) {
  std::vector<std::string> words;
  std::string current;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z')) {
      current += c;
    } else if (u >= 'A' && u <= 'Z') {
      current += static_cast<char>(u - 'A' + 'a');
    } else if (!current.empty()) {
      words.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  std::vector<std::uint64_t> features;
  for (std::size_t i = 0; i < words.size(); ++i) {
    features.push_back(fnv1a(words[i]));
    if (i > 0) features.push_back(fnv1a(words[i], fnv1a(" ", fnv1a(words[i - 1]))));
  }
  if (words.empty()) features.push_back(fnv1a(text, 0x84222325cbf29ce4ull));
  const auto d = static_cast<std::uint64_t>(dimension);
  std::vector<double> acc(static_cast<std::size_t>(dimension), 0.0);
  for (const std::uint64_t h : features) acc[h % d] += (h >> 63) != 0 ? -1.0 : 1.0;
  double sum_squares = 0;
  for (const double x : acc) sum_squares += x * x;
  const double norm = std::sqrt(sum_squares);
  std::vector<float> out;
  for (const double x : acc) out.push_back(static_cast<float>(x / norm));
  return out;
}

std::vector<std::uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<std::uint32_t> bits(v.size());
  std::memcpy(bits.data(), v.data(), v.size() * sizeof(float));
  return bits;
}

// Text shaped like prose (words of every class of byte, separators, case),
// or any bytes at all.
rc::Gen<std::string> text() {
  const auto word_char = rc::gen::oneOf(rc::gen::inRange('a', static_cast<char>('z' + 1)),
                                        rc::gen::inRange('A', static_cast<char>('Z' + 1)),
                                        rc::gen::inRange('0', static_cast<char>('9' + 1)),
                                        rc::gen::map(rc::gen::inRange(0x80, 0x100),
                                                     [](int b) { return static_cast<char>(b); }));
  const auto separator = rc::gen::element(' ', ' ', '\n', ',', '.', '!', '-', '\0', '\t');
  const auto word = rc::gen::map(
      rc::gen::pair(rc::gen::resize(8, rc::gen::nonEmpty(rc::gen::container<std::string>(word_char))),
                    rc::gen::resize(3, rc::gen::nonEmpty(rc::gen::container<std::string>(separator)))),
      [](const std::pair<std::string, std::string>& p) { return p.first + p.second; });
  const auto prose = rc::gen::map(rc::gen::container<std::vector<std::string>>(word),
                                  [](const std::vector<std::string>& ws) {
                                    std::string s;
                                    for (const auto& w : ws) s += w;
                                    return s;
                                  });
  // Over 512 features: one-letter words, repeated.
  const auto many_short_words = rc::gen::map(rc::gen::inRange(200, 1200), [](int words) {
    std::string s;
    for (int i = 0; i < words; ++i) {
      s += static_cast<char>('a' + (i * 7) % 26);
      s += ' ';
    }
    return s;
  });
  return rc::gen::oneOf(prose, rc::gen::string<std::string>(), many_short_words);
}

RC_GTEST_PROP(HashingEmbedderProperties, EqualsThePlainDefinitionBitForBit, ()) {
  const int dimension = *rc::gen::oneOf(rc::gen::element(1, 2, 3, 384, 768, 1536, 3072),
                                        rc::gen::inRange(1, 4097));
  const std::string t = *text();
  const HashingEmbedder embedder(dimension);
  const auto v = embedder.embed(t);
  RC_ASSERT(v.has_value());
  RC_ASSERT(bits_of(*v) == bits_of(reference_embedding(t, dimension)));
}

}  // namespace
}  // namespace memfuse
