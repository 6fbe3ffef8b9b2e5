// Identifiers: round ids, chunk ids and vector-store point ids.
//
// - A RoundId is a time-ordered UUID in the UUIDv7 layout: 48 bits of
//   milliseconds, then random bits. The caller supplies both (from the Clock
//   and Random ports), so ids are deterministic under simulation. Time order
//   keeps SQLite's primary-key b-tree appending at its right edge; random ids
//   make inserts about 10x slower at a few million rows.
// - A ChunkId is derived from its round id and chunk index, never random, so
//   re-chunking after a retry yields the same ids and every store write is
//   idempotent.
// - A point id is a name-based (SHA-1, version 5) UUID of the chunk id's text,
//   as Qdrant requires UUID or integer point ids.
//
// All three are values: cheap to copy, totally ordered, hashable.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "memfuse/error.h"

namespace memfuse {

struct Uuid {
  std::array<std::uint8_t, 16> bytes{};

  // Canonical 36-character lower-case form, 8-4-4-4-12.
  [[nodiscard]] std::string to_string() const;
  // Accepts the canonical form in either case.
  [[nodiscard]] static Result<Uuid> parse(std::string_view text);

  [[nodiscard]] int version() const noexcept { return bytes[6] >> 4; }
  [[nodiscard]] bool is_nil() const noexcept;

  friend auto operator<=>(const Uuid&, const Uuid&) = default;
};

struct RoundId {
  Uuid uuid;
  [[nodiscard]] std::string to_string() const { return uuid.to_string(); }
  [[nodiscard]] static Result<RoundId> parse(std::string_view text);
  // The milliseconds field of the UUIDv7 layout.
  [[nodiscard]] std::int64_t millis() const noexcept;
  friend auto operator<=>(const RoundId&, const RoundId&) = default;
};

// Builds a UUIDv7-layout round id. clock_ms must fit in 48 bits (asserted);
// the low 12 bits of random_hi go to rand_a and 62 bits of random_lo to
// rand_b. (HybridBuffer puts a per-millisecond counter in rand_a, so its ids
// increase strictly; see HybridBuffer::Impl::next_id_tick.)
[[nodiscard]] RoundId make_round_id(std::int64_t clock_ms, std::uint64_t random_hi,
                                    std::uint64_t random_lo) noexcept;

struct ChunkId {
  RoundId round;
  std::uint32_t index = 0;
  // "<round uuid>/<index>", e.g. "0190b4c2-...-9f/3".
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] static Result<ChunkId> parse(std::string_view text);
  friend auto operator<=>(const ChunkId&, const ChunkId&) = default;
};

[[nodiscard]] inline ChunkId make_chunk_id(RoundId round, std::uint32_t index) noexcept {
  return ChunkId{round, index};
}

// Name-based UUID (version 5) of chunk.to_string() in memfuse's namespace.
[[nodiscard]] Uuid point_id_for(const ChunkId& chunk);

}  // namespace memfuse

template <>
struct std::hash<memfuse::Uuid> {
  std::size_t operator()(const memfuse::Uuid& u) const noexcept;
};
template <>
struct std::hash<memfuse::RoundId> {
  std::size_t operator()(const memfuse::RoundId& r) const noexcept {
    return std::hash<memfuse::Uuid>{}(r.uuid);
  }
};
template <>
struct std::hash<memfuse::ChunkId> {
  std::size_t operator()(const memfuse::ChunkId& c) const noexcept {
    return std::hash<memfuse::Uuid>{}(c.round.uuid) * 31u + c.index;
  }
};
