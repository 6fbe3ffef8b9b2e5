#include "memfuse/embedder.h"

#include <algorithm>
#include <array>
#include <bit>
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
  // The buckets count signed features: small integers, so int32 sums, and
  // their squares summed in 64 bits, are exact, and equal to the double
  // arithmetic the vectors were first defined with (every partial sum is an
  // integer far below 2^53). The stored vectors do not change by a bit
  // (HashingEmbedder.VectorsStayBitForBitTheSameAcrossVersions).
  const auto n = static_cast<std::size_t>(dimension_);
  constexpr std::size_t kOnStack = 2048;
  std::array<std::int32_t, kOnStack> stack_acc;  // no allocation up to 2 048 dimensions
  std::vector<std::int32_t> heap_acc;
  std::int32_t* acc = stack_acc.data();
  if (n > kOnStack) {
    heap_acc.resize(n);
    acc = heap_acc.data();
  }
  std::fill_n(acc, n, 0);
  // A chunk's features touch a few hundred of the buckets: those are noted as
  // they are counted, and only they are read back, instead of every bucket
  // twice (squares, then quotients). Text with more features than fit here
  // reads every bucket.
  constexpr std::size_t kMaxTouched = 512;
  std::array<std::uint32_t, kMaxTouched> touched;
  std::size_t touched_count = 0;
  const auto dim = static_cast<std::uint64_t>(dimension_);
  const U128 m = (static_cast<U128>(mod_m_hi_) << 64) | mod_m_lo_;
  auto add = [&](std::uint64_t h) {
    const auto bucket = static_cast<std::uint32_t>(fast_remainder(h, m, dim));
    acc[bucket] += (h >> 63) != 0 ? -1 : 1;
    if (touched_count < kMaxTouched) touched[touched_count] = bucket;
    ++touched_count;
  };
  const std::size_t word_count = hash_words(text, add);
  if (word_count == 0) add(fnv1a(text, 0x84222325cbf29ce4ull));  // no words: hash the raw bytes
  const bool sparse = touched_count <= kMaxTouched;

  // The nonzero buckets, each once (a bucket is zeroed once read): their
  // indices in touched[0, nonzero), their counts in count[].
  std::array<std::int32_t, kMaxTouched> count;
  std::size_t nonzero = 0;
  std::uint64_t sum_squares = 0;
  if (sparse) {
    for (std::size_t i = 0; i < touched_count; ++i) {
      const std::uint32_t bucket = touched[i];
      const std::int32_t v = acc[bucket];
      if (v == 0) continue;
      acc[bucket] = 0;
      touched[nonzero] = bucket;
      count[nonzero] = v;
      ++nonzero;
      sum_squares += static_cast<std::uint64_t>(static_cast<std::int64_t>(v) * v);
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const auto x = static_cast<std::int64_t>(acc[i]);
      sum_squares += static_cast<std::uint64_t>(x * x);
    }
  }
  // The features cannot all cancel out: there are 2w - 1 of them for w >= 1
  // words (w words, w - 1 pairs), or the one raw-bytes feature, each +1 or -1,
  // and an odd count of odd terms never sums to 0 in every bucket.
  MEMFUSE_ASSERT(sum_squares > 0);
  const double norm = std::sqrt(static_cast<double>(sum_squares));
  // Each bucket is count / norm. The counts are few distinct small integers,
  // so the quotients of -8..8 are worked out once (the same division, so the
  // same float) instead of one division per bucket; larger counts (repeated
  // words) are divided one by one. Empty buckets are 0 / norm: +0.0f, which
  // is what the vector starts as.
  constexpr std::int32_t kCached = 8;
  std::array<float, 2 * kCached + 1> quotient;
  for (std::int32_t v = -kCached; v <= kCached; ++v) {
    quotient[static_cast<std::size_t>(v + kCached)] = static_cast<float>(static_cast<double>(v) / norm);
  }
  auto quotient_of = [&](std::int32_t v) {
    return v >= -kCached && v <= kCached ? quotient[static_cast<std::size_t>(v + kCached)]
                                         : static_cast<float>(static_cast<double>(v) / norm);
  };
  std::vector<float> out(n);
  if (sparse) {
    for (std::size_t i = 0; i < nonzero; ++i) out[touched[i]] = quotient_of(count[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = quotient_of(acc[i]);
  }
  return out;
}

Result<void> validate_embedding(std::span<const float> vector, int dimension) {
  if (static_cast<int>(vector.size()) != dimension) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("embedding: the embedder returned {} values; embedding.dimension is {}",
                            vector.size(), dimension));
  }
  // The common case in one pass over the bits, with no chain of dependent
  // additions (the loop below, a double sum, took 0.35 us at 384 dimensions,
  // on every add()): every exponent short of all ones is a finite value, and
  // a non-zero magnitude anywhere is a non-zero norm (a float's square does
  // not underflow in double).
  std::uint32_t all_exponents = 0x7F800000u, any_magnitude = 0;
  for (const float f : vector) {
    const auto bits = std::bit_cast<std::uint32_t>(f);
    all_exponents &= (bits & 0x7F800000u) == 0x7F800000u ? 0u : 0x7F800000u;
    any_magnitude |= bits & 0x7FFFFFFFu;
  }
  if (all_exponents != 0 && any_magnitude != 0) return {};
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
