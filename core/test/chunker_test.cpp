// The "message" chunker and the hashing embedder.
#include "memfuse/chunker.h"

#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/embedder.h"
#include "memfuse/validation.h"

namespace memfuse {
namespace {

using ::testing::ElementsAre;

Round round_of(std::vector<Message> messages) {
  Round r;
  r.id = make_round_id(1000, 1, 2);
  r.session_id = "s1";
  r.messages = std::move(messages);
  return r;
}

std::vector<std::string> texts(const std::vector<Chunk>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) out.push_back(c.text);
  return out;
}

TEST(Chunker, PacksRoleContentLinesIntoOneChunkWhenTheyFit) {
  const auto chunks = chunk_round(round_of({{"user", "hello"}, {"assistant", "hi"}}), 1024);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].text, "[user]: hello\n[assistant]: hi");
  EXPECT_EQ(chunks[0].id, make_chunk_id(chunks[0].round_id, 0));
  EXPECT_EQ(chunks[0].session_id, "s1");
  EXPECT_TRUE(validate_chunk(chunks[0]).has_value());
}

TEST(Chunker, StartsANewChunkRatherThanSplittingALineThatFitsAlone) {
  const auto chunks = chunk_round(round_of({{"user", std::string(20, 'a')}, {"user", std::string(20, 'b')}}), 32);
  EXPECT_THAT(texts(chunks), ElementsAre("[user]: " + std::string(20, 'a'), "[user]: " + std::string(20, 'b')));
  EXPECT_EQ(chunks[1].index, 1u);
}

TEST(Chunker, SplitsALongLineAtWhitespaceAndNeverInsideUtf8) {
  std::string content;
  for (int i = 0; i < 40; ++i) content += "caf\xc3\xa9 ";  // 6 bytes a word, 2 of them one code point
  const auto chunks = chunk_round(round_of({{"user", content}}), 32);
  ASSERT_GT(chunks.size(), 5u);
  std::string joined;
  for (const auto& c : chunks) {
    EXPECT_LE(c.text.size(), 32u);
    EXPECT_TRUE(is_valid_utf8(c.text)) << c.text;
    joined += c.text;
  }
  EXPECT_EQ(joined, "[user]: " + content) << "nothing lost or duplicated";
}

TEST(Chunker, IsDeterministic) {
  const Round r = round_of({{"user", std::string(500, 'x')}, {"tool", "{\"a\":1}"}});
  EXPECT_EQ(chunk_round(r, 64), chunk_round(r, 64));
}

TEST(HashingEmbedder, GivesUnitVectorsOfTheConfiguredDimension) {
  const HashingEmbedder e(384);
  for (const char* text : {"hello world", "", "!!!", "caf\xc3\xa9 au lait"}) {
    auto v = e.embed(text);
    ASSERT_TRUE(v.has_value());
    EXPECT_TRUE(validate_embedding(*v, 384).has_value()) << text;
    double norm = 0;
    for (float x : *v) norm += static_cast<double>(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-6) << text;
  }
}

TEST(HashingEmbedder, IsDeterministicAndRanksSimilarTextHigher) {
  const HashingEmbedder e(384);
  const auto a = *e.embed("the flush manager retries with backoff");
  EXPECT_EQ(a, *e.embed("the flush manager retries with backoff"));
  const auto near = *e.embed("the flush manager retries");
  const auto far = *e.embed("penguins live in antarctica");
  EXPECT_GT(cosine(a, near), cosine(a, far));
  EXPECT_GT(cosine(a, near), 0.5);
  EXPECT_NEAR(cosine(a, a), 1.0, 1e-9);
}

// The vectors are part of the stored data: a query embedded by a newer build
// must match what an older build stored. This pins every bit of them, over
// texts with every kind of byte, at several dimensions.
TEST(HashingEmbedder, VectorsStayBitForBitTheSameAcrossVersions) {
  std::vector<std::string> texts = {"", "!!!", "a", "hello world", "Hello, World! hello world",
                                    "caf\xc3\xa9 au lait \xe2\x82\xac 42", std::string("nul\0byte", 8),
                                    "the flush manager retries with backoff", "\xff\xfe raw bytes \x80"};
  std::string long_text;
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 3000; ++i) {  // xorshift: bytes of every class, words of every length
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    long_text.push_back(static_cast<char>(x % 7 == 0 ? ' ' : static_cast<char>(x >> 56)));
  }
  texts.push_back(long_text);
  std::uint64_t digest = 0xcbf29ce484222325ull;
  for (const int dim : {1, 7, 64, 384, 1536}) {
    const HashingEmbedder e(dim);
    for (const auto& t : texts) {
      const auto v = e.embed(t);
      ASSERT_TRUE(v.has_value());
      for (const float f : *v) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &f, sizeof bits);
        for (int b = 0; b < 4; ++b) digest = (digest ^ ((bits >> (8 * b)) & 0xFF)) * 0x100000001b3ull;
      }
    }
  }
  EXPECT_EQ(digest, 0x83418c74783b252aull) << std::hex << "digest 0x" << digest;
}

TEST(ValidateEmbedding, RefusesWrongDimensionNanInfinityAndZero) {
  EXPECT_THAT(validate_embedding(std::vector<float>{1, 0}, 3).error().message(),
              ::testing::HasSubstr("returned 2 values; embedding.dimension is 3"));
  EXPECT_THAT(validate_embedding(std::vector<float>{1, std::nanf(""), 0}, 3).error().message(),
              ::testing::HasSubstr("value 1 is nan"));
  EXPECT_THAT(validate_embedding(std::vector<float>{1, 0, INFINITY}, 3).error().message(),
              ::testing::HasSubstr("value 2 is inf"));
  EXPECT_THAT(validate_embedding(std::vector<float>{0, 0, 0}, 3).error().message(),
              ::testing::HasSubstr("all zeros"));
}

}  // namespace
}  // namespace memfuse
