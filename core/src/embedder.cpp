#include "memfuse/embedder.h"

#include <cctype>
#include <cmath>
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

// Lower-cased ASCII letters and digits, and every byte of a non-ASCII UTF-8
// sequence, are word characters; everything else separates words.
std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::string w;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || std::isalnum(u) != 0) {
      w.push_back(u < 0x80 ? static_cast<char>(std::tolower(u)) : c);
    } else if (!w.empty()) {
      out.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) out.push_back(std::move(w));
  return out;
}

}  // namespace

HashingEmbedder::HashingEmbedder(int dimension) : dimension_(dimension) {
  MEMFUSE_ASSERT(dimension >= 1);
}

Result<std::vector<float>> HashingEmbedder::embed(std::string_view text) const {
  std::vector<double> acc(static_cast<std::size_t>(dimension_), 0.0);
  const auto dim = static_cast<std::uint64_t>(dimension_);
  auto add = [&](std::uint64_t h) {
    acc[static_cast<std::size_t>(h % dim)] += (h >> 63) != 0 ? -1.0 : 1.0;
  };
  const auto ws = words(text);
  for (std::size_t i = 0; i < ws.size(); ++i) {
    add(fnv1a(ws[i]));
    if (i + 1 < ws.size()) add(fnv1a(ws[i + 1], fnv1a(" ", fnv1a(ws[i]))));
  }
  if (ws.empty()) add(fnv1a(text, 0x84222325cbf29ce4ull));  // no words: hash the raw bytes
  double norm = 0;
  for (double x : acc) norm += x * x;
  if (norm == 0) {
    // Every feature cancelled out (possible with signed hashing): fall back to
    // the raw-bytes feature, which alone cannot cancel.
    acc[static_cast<std::size_t>(fnv1a(text, 0x84222325cbf29ce4ull) % dim)] = 1.0;
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
