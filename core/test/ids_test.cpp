// Round, chunk and point ids: layout, ordering, determinism, parsing.
#include "memfuse/ids.h"

#include <set>
#include <unordered_set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse {
namespace {

TEST(RoundId, HasTheUuidV7Layout) {
  const RoundId id = make_round_id(0x0190'b4c2'1234, ~0ull, ~0ull);
  EXPECT_EQ(id.uuid.version(), 7);
  EXPECT_EQ(id.uuid.bytes[8] & 0xC0, 0x80) << "RFC 4122 variant bits";
  EXPECT_EQ(id.millis(), 0x0190'b4c2'1234);
  EXPECT_EQ(id.to_string().substr(0, 13), "0190b4c2-1234");
  EXPECT_EQ(id.to_string()[14], '7');
}

TEST(RoundId, OrdersByTimeFirst) {
  const RoundId early = make_round_id(1000, ~0ull, ~0ull);
  const RoundId late = make_round_id(1001, 0, 0);
  EXPECT_LT(early, late);
  EXPECT_LT(early.to_string(), late.to_string()) << "text order matches byte order";
}

TEST(RoundId, IsDeterministicInItsInputs) {
  EXPECT_EQ(make_round_id(5, 6, 7), make_round_id(5, 6, 7));
  EXPECT_NE(make_round_id(5, 6, 7), make_round_id(5, 6, 8));
  EXPECT_NE(make_round_id(5, 0x100, 7), make_round_id(5, 0x200, 7)) << "rand_a bits are used";
}

TEST(RoundId, ParsesWhatItPrints) {
  const RoundId id = make_round_id(123456789, 0xABC, 0x123456789ABCDEFull);
  auto back = RoundId::parse(id.to_string());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, id);
  EXPECT_FALSE(RoundId::parse("not-a-uuid").has_value());
  EXPECT_FALSE(RoundId::parse("0190b4c2x1234-7abc-8def-0123456789ab").has_value());
  EXPECT_FALSE(RoundId::parse("0190b4c2-1234-7abc-8def-0123456789ag").has_value());
  EXPECT_EQ(RoundId::parse("0190B4C2-1234-7ABC-8DEF-0123456789AB")->to_string(),
            "0190b4c2-1234-7abc-8def-0123456789ab");
}

TEST(ChunkId, IsDerivedFromRoundAndIndex) {
  const RoundId round = make_round_id(42, 1, 2);
  EXPECT_EQ(make_chunk_id(round, 3), make_chunk_id(round, 3));
  EXPECT_NE(make_chunk_id(round, 3), make_chunk_id(round, 4));
  EXPECT_EQ(make_chunk_id(round, 3).to_string(), round.to_string() + "/3");
  auto back = ChunkId::parse(make_chunk_id(round, 3).to_string());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, make_chunk_id(round, 3));
  EXPECT_FALSE(ChunkId::parse(round.to_string()).has_value());
  EXPECT_FALSE(ChunkId::parse(round.to_string() + "/").has_value());
  EXPECT_FALSE(ChunkId::parse(round.to_string() + "/x").has_value());
  EXPECT_FALSE(ChunkId::parse(round.to_string() + "/1x").has_value());
}

TEST(PointId, IsANameBasedUuidStableAcrossRuns) {
  const RoundId round = *RoundId::parse("0190b4c2-1234-7abc-8def-0123456789ab");
  const Uuid p = point_id_for(make_chunk_id(round, 0));
  EXPECT_EQ(p.version(), 5);
  EXPECT_EQ(p, point_id_for(make_chunk_id(round, 0)));
  EXPECT_NE(p, point_id_for(make_chunk_id(round, 1)));
  // Pinned (cross-checked with Python uuid.uuid5): a change would duplicate every stored vector.
  EXPECT_EQ(p.to_string(), point_id_for(*ChunkId::parse(round.to_string() + "/0")).to_string());
  EXPECT_EQ(p.to_string(), "c108bf97-806e-5660-978a-c64e284c8935");
}

TEST(Uuid, HashIsStableAndSpreads) {
  std::unordered_set<std::size_t> hashes;
  for (std::uint64_t i = 0; i < 1000; ++i) hashes.insert(std::hash<RoundId>{}(make_round_id(1, 0, i)));
  EXPECT_EQ(hashes.size(), 1000u);
  EXPECT_EQ(std::hash<Uuid>{}(Uuid{}), 0x88201fb960ff6465ull) << "FNV-1a of 16 zero bytes";
}

}  // namespace
}  // namespace memfuse
