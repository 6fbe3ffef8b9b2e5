// SqliteVectorStore: the embedded default, exact cosine top-k per session.
#include "memfuse/sqlite_vector_store.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/chunker.h"
#include "memfuse/embedder.h"
#include "memfuse/sqlite_round_store.h"

namespace memfuse {
namespace {

EmbeddedChunk embedded(const Embedder& e, std::uint64_t round, std::uint32_t index, std::string session,
                       std::string text) {
  const RoundId id = make_round_id(static_cast<std::int64_t>(round), round, round);
  EmbeddedChunk c{Chunk{make_chunk_id(id, index), id, std::move(session), index, std::move(text)}, {}};
  c.vector = *e.embed(c.chunk.text);
  return c;
}

struct Fixture : ::testing::Test {
  Fixture() : dir(std::filesystem::temp_directory_path() / ("memfuse-vec-test-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~Fixture() override { std::filesystem::remove_all(dir); }
  SqliteStoreOptions options() const { return {(dir / "m.db").string(), SqliteSynchronous::Normal, 1000, {}}; }
  std::filesystem::path dir;
  HashingEmbedder embedder{64};
};

TEST_F(Fixture, SearchesOneSessionByExactCosine) {
  auto store = SqliteVectorStore::open(options(), 64);
  ASSERT_TRUE(store.has_value()) << store.error().to_string();
  const std::vector<EmbeddedChunk> chunks = {
      embedded(embedder, 1, 0, "a", "the flush manager retries with backoff"),
      embedded(embedder, 2, 0, "a", "penguins live in antarctica"),
      embedded(embedder, 3, 0, "b", "the flush manager retries with backoff")};
  ASSERT_EQ((*store)->put(chunks).value(), 3u);
  const auto query = *embedder.embed("flush manager retries");
  const auto hits = (*store)->search("a", query, 5).value();
  ASSERT_EQ(hits.size(), 2u) << "session b's identical chunk must not appear";
  EXPECT_EQ(hits[0].chunk.id, chunks[0].chunk.id);
  EXPECT_EQ(hits[0].chunk.session_id, "a");
  EXPECT_EQ(hits[0].chunk.text, chunks[0].chunk.text);
  EXPECT_GT(hits[0].score, hits[1].score);
  EXPECT_NEAR(hits[0].score, cosine(query, chunks[0].vector), 1e-9);
  EXPECT_EQ((*store)->search("a", query, 1).value().size(), 1u);
}

TEST_F(Fixture, PutIsIdempotentAndSharesTheFileWithTheRoundStore) {
  auto rounds = SqliteRoundStore::open(options());
  auto store = SqliteVectorStore::open(options(), 64);
  ASSERT_TRUE(rounds.has_value() && store.has_value());
  const std::vector<EmbeddedChunk> chunks = {embedded(embedder, 1, 0, "s", "x"),
                                             embedded(embedder, 1, 1, "s", "y")};
  EXPECT_EQ((*store)->put(chunks).value(), 2u);
  EXPECT_EQ((*store)->put(chunks).value(), 0u) << "a retry stores nothing twice";
  EXPECT_EQ((*store)->count().value(), 2u);
}

TEST_F(Fixture, RefusesVectorsOfTheWrongDimensionAndStoresNone) {
  auto store = SqliteVectorStore::open(options(), 64);
  ASSERT_TRUE(store.has_value());
  std::vector<EmbeddedChunk> chunks = {embedded(embedder, 1, 0, "s", "x"), embedded(embedder, 2, 0, "s", "y")};
  chunks[1].vector.resize(10);
  auto r = (*store)->put(chunks);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("returned 10 values"));
  EXPECT_EQ((*store)->count().value(), 0u);
  EXPECT_FALSE((*store)->search("s", std::vector<float>(3, 1.0f), 1).has_value());
}

}  // namespace
}  // namespace memfuse
