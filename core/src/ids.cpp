#include "memfuse/ids.h"

#include <charconv>

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid.hpp>
#include <fmt/format.h>

#include "memfuse/assert.h"

namespace memfuse {
namespace {

// The namespace of memfuse's name-based point ids. Fixed forever: changing it
// changes every point id and would duplicate every vector on re-flush.
constexpr Uuid kPointNamespace{{0x6f, 0x0c, 0x1d, 0x8e, 0x2b, 0x7a, 0x4c, 0x55, 0x9a, 0x3e, 0x4d,
                                0x2f, 0x7c, 0x1b, 0x9e, 0x10}};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Uuid::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xF]);
  }
  return out;
}

Result<Uuid> Uuid::parse(std::string_view text) {
  auto bad = [&] {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("\"{}\" is not a UUID (expected 8-4-4-4-12 hex digits)", text));
  };
  if (text.size() != 36) return bad();
  Uuid u;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < u.bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      if (text[pos] != '-') return bad();
      ++pos;
    }
    const int hi = hex_value(text[pos]);
    const int lo = hex_value(text[pos + 1]);
    if (hi < 0 || lo < 0) return bad();
    u.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    pos += 2;
  }
  return u;
}

bool Uuid::is_nil() const noexcept {
  for (auto b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

Result<RoundId> RoundId::parse(std::string_view text) {
  auto uuid = Uuid::parse(text);
  if (!uuid) return Unexpected(uuid.error());
  return RoundId{*uuid};
}

std::int64_t RoundId::millis() const noexcept {
  std::int64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = ms << 8 | uuid.bytes[static_cast<std::size_t>(i)];
  return ms;
}

RoundId make_round_id(std::int64_t clock_ms, std::uint64_t random_hi,
                      std::uint64_t random_lo) noexcept {
  MEMFUSE_ASSERT(clock_ms >= 0);
  MEMFUSE_ASSERT(clock_ms < (std::int64_t{1} << 48));
  RoundId id;
  auto& b = id.uuid.bytes;
  for (int i = 0; i < 6; ++i) {
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(clock_ms >> (40 - 8 * i));
  }
  // rand_a: 12 bits after the version nibble.
  b[6] = static_cast<std::uint8_t>(0x70 | ((random_hi >> 8) & 0x0F));
  b[7] = static_cast<std::uint8_t>(random_hi);
  // rand_b: 62 bits after the variant bits 10.
  for (int i = 0; i < 8; ++i) {
    b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(random_lo >> (56 - 8 * i));
  }
  b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3F));
  return id;
}

std::string ChunkId::to_string() const { return fmt::format("{}/{}", round.to_string(), index); }

Result<ChunkId> ChunkId::parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  auto bad = [&] {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("\"{}\" is not a chunk id (expected <round uuid>/<index>)", text));
  };
  if (slash == std::string_view::npos) return bad();
  auto round = RoundId::parse(text.substr(0, slash));
  if (!round) return bad();
  const std::string_view digits = text.substr(slash + 1);
  std::uint32_t index = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return bad();
  return ChunkId{*round, index};
}

Uuid point_id_for(const ChunkId& chunk) {
  boost::uuids::uuid ns;
  std::copy(kPointNamespace.bytes.begin(), kPointNamespace.bytes.end(), ns.begin());
  boost::uuids::name_generator_sha1 generate(ns);
  const boost::uuids::uuid u = generate(chunk.to_string());
  Uuid out;
  std::copy(u.begin(), u.end(), out.bytes.begin());
  return out;
}

}  // namespace memfuse

std::size_t std::hash<memfuse::Uuid>::operator()(const memfuse::Uuid& u) const noexcept {
  // FNV-1a over the bytes: stable across runs and platforms (no address or
  // per-process seed), so hash-ordered iteration is reproducible.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto b : u.bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  return static_cast<std::size_t>(h);
}
