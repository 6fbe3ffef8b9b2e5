// Embedder: the port that turns chunk text into a vector.
//
// The default, HashingEmbedder, needs no model download: signed feature
// hashing of lower-cased word unigrams and bigrams into `dimension` buckets,
// L2-normalised. It is deterministic across runs and platforms (FNV-1a),
// cheap, and good enough for exact-match-ish recall in tests and the
// embedded default. A remote embedder (an HTTP model server) implements the
// same interface; HybridBuffer validates every vector it returns.
//
// Thread-safety: embed() may be called from several threads at once.
#pragma once

#include <memory>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "memfuse/error.h"

namespace memfuse {

class Embedder {
 public:
  virtual ~Embedder() = default;
  [[nodiscard]] virtual int dimension() const noexcept = 0;
  // A vector of dimension() finite floats, L2-normalised, or an error.
  [[nodiscard]] virtual Result<std::vector<float>> embed(std::string_view text) const = 0;
};

class HashingEmbedder final : public Embedder {
 public:
  // REQUIRES: dimension >= 1.
  explicit HashingEmbedder(int dimension);
  [[nodiscard]] int dimension() const noexcept override { return dimension_; }
  [[nodiscard]] Result<std::vector<float>> embed(std::string_view text) const override;

 private:
  int dimension_;
  // ceil(2^128 / dimension), for the remainder by multiplication (a 64-bit
  // division per feature was a quarter of embed()).
  std::uint64_t mod_m_hi_ = 0;
  std::uint64_t mod_m_lo_ = 0;
};

// Checks what an embedder returned: the dimension, finite values, a non-zero
// norm. InvalidArgument names what is wrong.
[[nodiscard]] Result<void> validate_embedding(std::span<const float> vector, int dimension);

// Cosine similarity of two vectors of one dimension (0 when either is zero).
[[nodiscard]] double cosine(std::span<const float> a, std::span<const float> b) noexcept;

}  // namespace memfuse
