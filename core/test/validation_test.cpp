// Validation of messages, rounds and chunks, and strict UTF-8.
#include "memfuse/validation.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse {
namespace {

using ::testing::HasSubstr;

Round good_round() {
  Round r;
  r.session_id = "session-1";
  r.messages = {{"user", "hello"}, {"assistant", "hi there"}};
  return r;
}

TEST(Validation, AcceptsAGoodRoundWithEveryRole) {
  Round r = good_round();
  r.messages.push_back({"system", "be brief"});
  r.messages.push_back({"tool", "{\"result\": 1}"});
  r.user_id = "u-1";
  EXPECT_TRUE(validate_round(r, RoundLimits{}).has_value());
}

TEST(Validation, AcceptsHostileButValidBytes) {
  Round r = good_round();
  r.session_id = std::string("s'; DROP TABLE rounds; --\0x", 28);
  r.messages[0].content = std::string("a\0b \"quoted\" ; SELECT 1", 23);
  EXPECT_TRUE(validate_round(r, RoundLimits{}).has_value());
}

struct BadRound {
  const char* name;
  Round round;
  const char* expected;
};

Round with(auto mutate) {
  Round r = good_round();
  mutate(r);
  return r;
}

class RoundRejects : public ::testing::TestWithParam<BadRound> {};

TEST_P(RoundRejects, WithAClearError) {
  const BadRound& bad = GetParam();
  RoundLimits limits;
  limits.max_message_bytes = 64;
  limits.max_messages_per_round = 4;
  const Round before = bad.round;
  auto ok = validate_round(bad.round, limits);
  ASSERT_FALSE(ok.has_value()) << bad.name;
  EXPECT_EQ(ok.error().code(), ErrorCode::InvalidArgument);
  EXPECT_FALSE(ok.error().retryable());
  EXPECT_THAT(ok.error().message(), HasSubstr(bad.expected)) << bad.name;
  EXPECT_EQ(bad.round, before) << "validation must not modify its input";
}

const BadRound kBadRounds[] = {
    {"empty_session", with([](Round& r) { r.session_id.clear(); }),
     "session_id: must not be empty"},
    {"long_session", with([](Round& r) { r.session_id.assign(257, 's'); }),
     "session_id: 257 bytes is too long (at most 256)"},
    {"session_invalid_utf8", with([](Round& r) { r.session_id = "s\xc3"; }),
     "session_id: \"s\\xc3\" is not valid UTF-8"},
    {"no_messages", with([](Round& r) { r.messages.clear(); }),
     "messages: a round needs at least one message"},
    {"too_many_messages", with([](Round& r) { r.messages.assign(5, Message{"user", "x"}); }),
     "messages: 5 messages is more than buffer.hybrid_buffer.max_messages_per_round (4)"},
    {"unknown_role", with([](Round& r) { r.messages[1].role = "bot"; }),
     "messages[1].role: \"bot\" is not a known role"},
    {"role_wrong_case", with([](Round& r) { r.messages[0].role = "User"; }),
     "messages[0].role: \"User\" is not a known role"},
    {"empty_role", with([](Round& r) { r.messages[0].role.clear(); }),
     "messages[0].role: \"\" is not a known role"},
    {"empty_content", with([](Round& r) { r.messages[1].content.clear(); }),
     "messages[1].content: must not be empty"},
    {"oversized_content", with([](Round& r) { r.messages[0].content.assign(65, 'x'); }),
     "messages[0].content: 65 bytes is more than buffer.hybrid_buffer.max_message_bytes (64)"},
    {"overlong_utf8", with([](Round& r) { r.messages[0].content = "\xc0\xaf"; }),
     "messages[0].content: is not valid UTF-8"},
    {"surrogate_utf8", with([](Round& r) { r.messages[0].content = "\xed\xa0\x80"; }),
     "messages[0].content: is not valid UTF-8"},
    {"truncated_utf8", with([](Round& r) { r.messages[0].content = "ok \xe2\x82"; }),
     "messages[0].content: is not valid UTF-8"},
    {"empty_user_id", with([](Round& r) { r.user_id = ""; }),
     "user_id: must not be empty when present"},
    {"long_user_id", with([](Round& r) { r.user_id = std::string(300, 'u'); }),
     "user_id: 300 bytes is too long"},
};

INSTANTIATE_TEST_SUITE_P(BadRounds, RoundRejects, ::testing::ValuesIn(kBadRounds),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(Utf8, AcceptsEveryEncodingLength) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9"));             // U+00E9
  EXPECT_TRUE(is_valid_utf8("\xe2\x82\xac"));            // U+20AC
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x98\x80"));        // U+1F600
  EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));        // U+10FFFF
  EXPECT_TRUE(is_valid_utf8(std::string("\0", 1)));      // NUL is valid
}

TEST(Utf8, RejectsMalformedSequences) {
  EXPECT_FALSE(is_valid_utf8("\x80"));                   // lone continuation
  EXPECT_FALSE(is_valid_utf8("\xc3"));                   // truncated
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\x80"));           // overlong 3-byte
  EXPECT_FALSE(is_valid_utf8("\xf0\x80\x80\x80"));       // overlong 4-byte
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));       // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xf8\x88\x80\x80\x80"));   // 5-byte form
  EXPECT_FALSE(is_valid_utf8("\xc3\x28"));               // bad continuation
  EXPECT_FALSE(is_valid_utf8("\xff"));
}

// Long ASCII runs are checked eight bytes at a time: a bad or good sequence
// at every offset and alignment among them is judged as on its own.
TEST(Utf8, JudgesSequencesAtEveryOffsetInsideAsciiRuns) {
  const std::vector<std::string> good = {"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
  const std::vector<std::string> bad = {"\x80", "\xc3", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80",
                                        "\xf8\x88\x80\x80\x80", "\xc3\x28", "\xff", "\xed\xa0\x80"};
  for (std::size_t before = 0; before < 20; ++before) {
    for (std::size_t after = 0; after < 12; ++after) {
      const std::string head(before, 'a');
      const std::string tail(after, 'z');
      for (const auto& g : good) EXPECT_TRUE(is_valid_utf8(head + g + tail)) << before << "/" << after;
      for (const auto& b : bad) EXPECT_FALSE(is_valid_utf8(head + b + tail)) << before << "/" << after;
    }
  }
  EXPECT_TRUE(is_valid_utf8(std::string(1000, 'x')));
  EXPECT_FALSE(is_valid_utf8(std::string(1000, 'x') + "\xc3"));  // truncated at the very end
}

TEST(Validation, ChunkMustMatchItsRound) {
  const RoundId round = make_round_id(1000, 1, 2);
  Chunk c{make_chunk_id(round, 2), round, "s", 2, "text"};
  EXPECT_TRUE(validate_chunk(c).has_value());

  Chunk wrong_round = c;
  wrong_round.round_id = make_round_id(1000, 9, 9);
  EXPECT_THAT(validate_chunk(wrong_round).error().message(), HasSubstr("does not belong to round"));
  Chunk wrong_index = c;
  wrong_index.index = 3;
  EXPECT_THAT(validate_chunk(wrong_index).error().message(), HasSubstr("id index"));
  Chunk empty = c;
  empty.text.clear();
  EXPECT_THAT(validate_chunk(empty).error().message(), HasSubstr("text is empty"));
  Chunk no_session = c;
  no_session.session_id.clear();
  EXPECT_THAT(validate_chunk(no_session).error().message(), HasSubstr("session_id"));
}

TEST(Round, PayloadBytesCountsEveryText) {
  Round r = good_round();
  r.user_id = "uu";
  EXPECT_EQ(r.payload_bytes(), std::string("session-1").size() + 2 + 4 + 5 + 9 + 8);
}

}  // namespace
}  // namespace memfuse
