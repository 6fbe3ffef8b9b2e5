#include "memfuse/embedder.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "memfuse/assert.h"

namespace memfuse {
namespace {

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

// Lower-cased ASCII letters and digits, and every byte of a non-ASCII UTF-8
// sequence, are word characters; everything else separates words. (ASCII
// rules on purpose: the C library's would follow the process's locale.)
// Returns the byte as it goes into a word, or -1 for a separator.
constexpr int word_byte_of(unsigned char u) noexcept {
  if (u >= 0x80) return u;
  if (u >= 'A' && u <= 'Z') return u - 'A' + 'a';
  if ((u >= 'a' && u <= 'z') || (u >= '0' && u <= '9')) return u;
  return -1;
}

constexpr std::array<std::int16_t, 256> kWordByte = [] {
  std::array<std::int16_t, 256> t{};
  for (int u = 0; u < 256; ++u) t[static_cast<std::size_t>(u)] = static_cast<std::int16_t>(word_byte_of(static_cast<unsigned char>(u)));
  return t;
}();

inline int word_byte(unsigned char u) noexcept { return kWordByte[u]; }

// h % d without a division (Lemire, Kaser, Kurz: "Faster remainder by direct
// computation", 2019): with m = ceil(2^128 / d), the remainder is the high 64
// bits of ((m * h) mod 2^128) * d. Exact for every 64-bit h and d >= 1.
__extension__ typedef unsigned __int128 U128;

constexpr U128 remainder_multiplier(std::uint64_t d) noexcept { return ~U128{0} / d + 1; }

inline std::uint64_t fast_remainder(std::uint64_t h, U128 m, std::uint64_t d) noexcept {
  const U128 low = m * h;
  const U128 bottom = (static_cast<U128>(static_cast<std::uint64_t>(low)) * d) >> 64;
  const U128 top = static_cast<U128>(static_cast<std::uint64_t>(low >> 64)) * d;
  return static_cast<std::uint64_t>((bottom + top) >> 64);
}

// Feeds every word's hash, and every adjacent pair's hash
// fnv1a(second, fnv1a(" ", fnv1a(first))), to `add`, in one pass with no
// allocation: the pair hash of a word is built alongside its own hash, seeded
// from the previous word's.
template <typename Add>
std::size_t hash_words(std::string_view text, Add add) {
  std::size_t count = 0;
  std::uint64_t word = 0, pair = 0, previous = 0;
  bool in_word = false;
  auto end_word = [&] {
    add(word);
    if (count > 0) add(pair);
    previous = word;
    ++count;
    in_word = false;
  };
  for (char c : text) {
    const int b = word_byte(static_cast<unsigned char>(c));
    if (b < 0) {
      if (in_word) end_word();
      continue;
    }
    if (!in_word) {
      in_word = true;
      word = 0xcbf29ce484222325ull;
      pair = (previous ^ static_cast<unsigned char>(' ')) * kFnvPrime;
    }
    word = (word ^ static_cast<std::uint64_t>(b)) * kFnvPrime;
    pair = (pair ^ static_cast<std::uint64_t>(b)) * kFnvPrime;
  }
  if (in_word) end_word();
  return count;
}

}  // namespace

HashingEmbedder::HashingEmbedder(int dimension) : dimension_(dimension) {
  MEMFUSE_ASSERT(dimension >= 1);
  const U128 m = remainder_multiplier(static_cast<std::uint64_t>(dimension));
  mod_m_hi_ = static_cast<std::uint64_t>(m >> 64);
  mod_m_lo_ = static_cast<std::uint64_t>(m);
}

Result<std::vector<float>> HashingEmbedder::embed(std::string_view text) const {
  std::vector<double> acc(static_cast<std::size_t>(dimension_), 0.0);
  const auto dim = static_cast<std::uint64_t>(dimension_);
  const U128 m = (static_cast<U128>(mod_m_hi_) << 64) | mod_m_lo_;
  auto add = [&](std::uint64_t h) {
    acc[static_cast<std::size_t>(fast_remainder(h, m, dim))] += (h >> 63) != 0 ? -1.0 : 1.0;
  };
  const std::size_t word_count = hash_words(text, add);
  if (word_count == 0) add(fnv1a(text, 0x84222325cbf29ce4ull));  // no words: hash the raw bytes
  double norm = 0;
  for (double x : acc) norm += x * x;
  if (norm == 0) {
    // Every feature cancelled out (possible with signed hashing): fall back to
    // the raw-bytes feature, which alone cannot cancel.
    acc[static_cast<std::size_t>(fast_remainder(fnv1a(text, 0x84222325cbf29ce4ull), m, dim))] = 1.0;
    norm = 1.0;
  }
  norm = std::sqrt(norm);
  std::vector<float> out(acc.size());
  for (std::size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<float>(acc[i] / norm);
  return out;
}

Result<void> validate_embedding(std::span<const float> vector, int dimension) {
  if (static_cast<int>(vector.size()) != dimension) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("embedding: the embedder returned {} values; embedding.dimension is {}",
                            vector.size(), dimension));
  }
  double norm = 0;
  for (std::size_t i = 0; i < vector.size(); ++i) {
    if (!std::isfinite(vector[i])) {
      return fail(ErrorCode::InvalidArgument, false,
                  fmt::format("embedding: value {} is {}, not a finite number", i, vector[i]));
    }
    norm += static_cast<double>(vector[i]) * vector[i];
  }
  if (norm == 0) return fail(ErrorCode::InvalidArgument, false, "embedding: the vector is all zeros");
  return {};
}

double cosine(std::span<const float> a, std::span<const float> b) noexcept {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return 0;
  return dot / (std::sqrt(na) * std::sqrt(nb));
}

}  // namespace memfuse
