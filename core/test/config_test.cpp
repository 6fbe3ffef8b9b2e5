// Config: parsing, validation with named keys, serialisation round trips.
#include "memfuse/config.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse {
namespace {

using ::testing::HasSubstr;

TEST(Config, EmptyObjectGivesTheSeedDefaults) {
  auto c = Config::from_json("{}");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  const auto& fm = c->buffer.flush_manager;
  EXPECT_EQ(fm.max_workers, 3);
  EXPECT_EQ(fm.max_queue_size, 100);
  EXPECT_EQ(fm.default_timeout, std::chrono::seconds(30));
  EXPECT_EQ(fm.flush_interval, std::chrono::seconds(60));
  EXPECT_TRUE(fm.enable_auto_flush);
  EXPECT_EQ(fm.retry.max_retries, 3);
  EXPECT_EQ(fm.queue_full_policy, QueueFullPolicy::Reject);
  const auto& hb = c->buffer.hybrid_buffer;
  EXPECT_EQ(hb.max_size, 5);
  EXPECT_EQ(hb.auto_flush_interval, std::chrono::seconds(60));
  EXPECT_TRUE(hb.enable_auto_flush);
  EXPECT_EQ(c->sqlite.synchronous, SqliteSynchronous::Normal);
  EXPECT_EQ(c->vector_store.kind, VectorStoreKind::Sqlite);
  EXPECT_EQ(c->vector_store.qdrant.max_request_bytes, 5u << 20);
  EXPECT_EQ(c->embedding.dimension, 384);
  EXPECT_EQ(*c, Config{});
}

TEST(Config, ReadsTheSeedDocumentsConfiguration) {
  auto c = Config::from_json(R"({
    "buffer": {
      "flush_manager": {"max_workers": 3, "max_queue_size": 100, "default_timeout": 30,
                        "flush_interval": 60, "enable_auto_flush": true},
      "hybrid_buffer": {"max_size": 5, "auto_flush_interval": 60.0, "enable_auto_flush": true}
    }
  })");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_EQ(*c, Config{});
}

TEST(Config, ReadsEveryKindOfValue) {
  auto c = Config::from_json(R"({
    "buffer": {"flush_manager": {"max_workers": 8, "default_timeout": 2.5,
                                 "queue_full_policy": "wait", "queue_full_wait_s": 0.25,
                                 "retry": {"max_retries": 0, "jitter": 0.0}},
               "hybrid_buffer": {"max_pending_bytes": 1048576, "enable_auto_flush": false}},
    "sqlite": {"path": "/tmp/x.db", "synchronous": "FULL", "busy_timeout_ms": 0},
    "vector_store": {"kind": "qdrant", "qdrant": {"url": "https://q.example:6333",
                     "api_key": "k", "request_timeout_s": 2}},
    "embedding": {"dimension": 768},
    "chunking": {"chunk_size_bytes": 64}
  })");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_EQ(c->buffer.flush_manager.max_workers, 8);
  EXPECT_EQ(c->buffer.flush_manager.default_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c->buffer.flush_manager.queue_full_policy, QueueFullPolicy::Wait);
  EXPECT_EQ(c->buffer.flush_manager.queue_full_wait, std::chrono::milliseconds(250));
  EXPECT_EQ(c->buffer.flush_manager.retry.max_retries, 0);
  EXPECT_EQ(c->buffer.hybrid_buffer.max_pending_bytes, 1048576u);
  EXPECT_FALSE(c->buffer.hybrid_buffer.enable_auto_flush);
  EXPECT_EQ(c->sqlite.path, "/tmp/x.db");
  EXPECT_EQ(c->sqlite.synchronous, SqliteSynchronous::Full);
  EXPECT_EQ(c->vector_store.kind, VectorStoreKind::Qdrant);
  EXPECT_EQ(c->vector_store.qdrant.api_key, "k");
  EXPECT_EQ(c->embedding.dimension, 768);
  EXPECT_EQ(c->chunking.chunk_size_bytes, 64u);
}

// Each bad configuration must be refused with an error naming the key.
struct BadConfig {
  const char* name;
  const char* json;
  const char* expected;  // a substring the error must contain (the key, and the rule)
};

class ConfigRejects : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ConfigRejects, NamesTheKey) {
  const BadConfig& bad = GetParam();
  auto c = Config::from_json(bad.json);
  ASSERT_FALSE(c.has_value()) << bad.name << " was accepted";
  EXPECT_EQ(c.error().code(), ErrorCode::InvalidArgument);
  EXPECT_FALSE(c.error().retryable());
  EXPECT_THAT(c.error().message(), HasSubstr(bad.expected)) << bad.name;
}

const BadConfig kBadConfigs[] = {
    {"misspelt_worker_key", R"({"buffer":{"flush_manager":{"max_wrokers":3}}})",
     "buffer.flush_manager.max_wrokers: unknown key (did you mean max_workers?)"},
    {"misspelt_section", R"({"bufer":{}})", "bufer: unknown key (did you mean buffer?)"},
    {"unknown_key_far_from_any", R"({"sqlite":{"zzzzzzzzzzzz":1}})",
     "sqlite.zzzzzzzzzzzz: unknown key (known keys here: busy_timeout_ms, path, synchronous)"},
    {"zero_workers", R"({"buffer":{"flush_manager":{"max_workers":0}}})",
     "buffer.flush_manager.max_workers: 0 is out of range (allowed 1..256)"},
    {"too_many_workers", R"({"buffer":{"flush_manager":{"max_workers":100000}}})",
     "buffer.flush_manager.max_workers: 100000 is out of range"},
    {"workers_as_string", R"({"buffer":{"flush_manager":{"max_workers":"3"}}})",
     "buffer.flush_manager.max_workers: expected an integer, got a string"},
    {"workers_fractional", R"({"buffer":{"flush_manager":{"max_workers":2.5}}})",
     "buffer.flush_manager.max_workers: expected an integer, got a number with a fraction"},
    {"workers_huge_unsigned", R"({"buffer":{"flush_manager":{"max_workers":18446744073709551615}}})",
     "buffer.flush_manager.max_workers: 18446744073709551615 is out of range"},
    {"zero_timeout", R"({"buffer":{"flush_manager":{"default_timeout":0}}})",
     "buffer.flush_manager.default_timeout: 0 s is out of range"},
    {"negative_timeout", R"({"buffer":{"flush_manager":{"default_timeout":-1}}})",
     "buffer.flush_manager.default_timeout: -1 s is out of range"},
    {"timeout_longer_than_deadline",
     R"({"buffer":{"flush_manager":{"default_timeout":400,"delivery_deadline_s":300}}})",
     "buffer.flush_manager.default_timeout: 400 s is longer than "
     "buffer.flush_manager.delivery_deadline_s"},
    {"auto_flush_not_bool", R"({"buffer":{"flush_manager":{"enable_auto_flush":1}}})",
     "buffer.flush_manager.enable_auto_flush: expected true or false, got an integer"},
    {"unknown_policy", R"({"buffer":{"flush_manager":{"queue_full_policy":"block"}}})",
     "buffer.flush_manager.queue_full_policy: \"block\" is not allowed (allowed: \"reject\", "
     "\"wait\")"},
    {"negative_retries", R"({"buffer":{"flush_manager":{"retry":{"max_retries":-1}}}})",
     "buffer.flush_manager.retry.max_retries: -1 is out of range (allowed 0..100)"},
    {"jitter_above_one", R"({"buffer":{"flush_manager":{"retry":{"jitter":1.5}}}})",
     "buffer.flush_manager.retry.jitter: 1.5 is out of range (allowed 0..1)"},
    {"backoff_base_above_cap",
     R"({"buffer":{"flush_manager":{"retry":{"backoff_base_s":20,"backoff_cap_s":10}}}})",
     "buffer.flush_manager.retry.backoff_base_s: 20 s is more than "
     "buffer.flush_manager.retry.backoff_cap_s"},
    {"retry_not_object", R"({"buffer":{"flush_manager":{"retry":3}}})",
     "buffer.flush_manager.retry: expected an object, got an integer"},
    {"zero_max_size", R"({"buffer":{"hybrid_buffer":{"max_size":0}}})",
     "buffer.hybrid_buffer.max_size: 0 is out of range"},
    {"max_size_above_pending_rounds",
     R"({"buffer":{"hybrid_buffer":{"max_size":50,"max_pending_rounds":10}}})",
     "buffer.hybrid_buffer.max_size: 50 is more than buffer.hybrid_buffer.max_pending_rounds"},
    {"negative_pending_bytes", R"({"buffer":{"hybrid_buffer":{"max_pending_bytes":-5}}})",
     "buffer.hybrid_buffer.max_pending_bytes: -5 is out of range"},
    {"pending_bytes_tiny", R"({"buffer":{"hybrid_buffer":{"max_pending_bytes":10}}})",
     "buffer.hybrid_buffer.max_pending_bytes: 10 is out of range (allowed 1024.."},
    {"misspelt_auto_flush_interval", R"({"buffer":{"hybrid_buffer":{"auto_flush_intervall":5}}})",
     "buffer.hybrid_buffer.auto_flush_intervall: unknown key (did you mean auto_flush_interval?)"},
    {"empty_sqlite_path", R"({"sqlite":{"path":""}})", "sqlite.path: must not be empty"},
    {"synchronous_lower_case", R"({"sqlite":{"synchronous":"full"}})",
     "sqlite.synchronous: \"full\" is not allowed (allowed: \"NORMAL\", \"FULL\")"},
    {"busy_timeout_negative", R"({"sqlite":{"busy_timeout_ms":-1}})",
     "sqlite.busy_timeout_ms: -1 is out of range"},
    {"unknown_vector_store", R"({"vector_store":{"kind":"pinecone"}})",
     "vector_store.kind: \"pinecone\" is not allowed"},
    {"qdrant_url_without_scheme", R"({"vector_store":{"qdrant":{"url":"localhost:6333"}}})",
     "vector_store.qdrant.url: \"localhost:6333\" is not an http:// or https:// URL"},
    {"qdrant_bad_collection", R"({"vector_store":{"qdrant":{"collection":"a b"}}})",
     "vector_store.qdrant.collection: \"a b\" must be 1..255 characters"},
    {"qdrant_request_over_32mib",
     R"({"vector_store":{"qdrant":{"max_request_bytes":40000000}}})",
     "vector_store.qdrant.max_request_bytes: 40000000 is out of range"},
    {"qdrant_request_timeout_above_flush_timeout",
     R"({"vector_store":{"kind":"qdrant","qdrant":{"request_timeout_s":60}}})",
     "vector_store.qdrant.request_timeout_s: 60 s is longer than "
     "buffer.flush_manager.default_timeout"},
    {"api_key_not_string", R"({"vector_store":{"qdrant":{"api_key":123}}})",
     "vector_store.qdrant.api_key: expected a string, got an integer"},
    {"zero_dimension", R"({"embedding":{"dimension":0}})",
     "embedding.dimension: 0 is out of range (allowed 1..65536)"},
    {"dimension_null", R"({"embedding":{"dimension":null}})",
     "embedding.dimension: expected an integer, got null"},
    {"chunk_size_tiny", R"({"chunking":{"chunk_size_bytes":4}})",
     "chunking.chunk_size_bytes: 4 is out of range (allowed 16..1048576)"},
    {"top_level_array", R"([1,2,3])", "the top level must be an object, got an array"},
    {"not_json", R"({"buffer": )", "not valid JSON (byte"},
    {"trailing_garbage", R"({} x)", "not valid JSON"},
};

INSTANTIATE_TEST_SUITE_P(BadConfigurations, ConfigRejects, ::testing::ValuesIn(kBadConfigs),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(Config, ReportsEveryProblemAtOnceOnePerLine) {
  auto c = Config::from_json(
      R"({"buffer":{"flush_manager":{"max_workers":0,"max_queue_size":0}},"embeding":{}})");
  ASSERT_FALSE(c.has_value());
  const std::string& m = c.error().message();
  EXPECT_THAT(m, HasSubstr("\n  embeding: unknown key (did you mean embedding?)"));
  EXPECT_THAT(m, HasSubstr("\n  buffer.flush_manager.max_workers: 0 is out of range"));
  EXPECT_THAT(m, HasSubstr("\n  buffer.flush_manager.max_queue_size: 0 is out of range"));
}

TEST(Config, RoundTripsThroughJsonWithEveryKeyChanged) {
  Config c;
  c.buffer.flush_manager.max_workers = 7;
  c.buffer.flush_manager.default_timeout = std::chrono::milliseconds(4321);
  c.buffer.flush_manager.queue_full_policy = QueueFullPolicy::Wait;
  c.buffer.flush_manager.retry.jitter = 0.125;
  c.buffer.flush_manager.retry.backoff_base = std::chrono::nanoseconds(123'456'789);
  c.buffer.hybrid_buffer.max_pending_bytes = 123'456'789;
  c.buffer.hybrid_buffer.enable_auto_flush = false;
  c.sqlite.path = "dir/with \"quotes\" and ;/file.db";
  c.sqlite.synchronous = SqliteSynchronous::Full;
  c.vector_store.kind = VectorStoreKind::Qdrant;
  c.vector_store.qdrant.api_key = "secret-key";
  c.vector_store.qdrant.request_timeout = std::chrono::seconds(3);
  c.embedding.dimension = 17;
  c.chunking.chunk_size_bytes = 99;
  ASSERT_TRUE(c.validate().has_value()) << c.validate().error().to_string();
  auto back = Config::from_json(c.to_json());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(back->to_json(), c.to_json());
}

TEST(Config, SerialisesEveryKey) {
  const std::string json = Config{}.to_json();
  for (const auto& key : Config::keys()) {
    const auto leaf = key.substr(key.rfind('.') + 1);
    EXPECT_THAT(json, HasSubstr("\"" + leaf + "\"")) << key;
  }
  EXPECT_GE(Config::keys().size(), 30u);
}

TEST(Config, RedactedJsonHidesTheApiKey) {
  Config c;
  c.vector_store.qdrant.api_key = "sk-very-secret";
  EXPECT_THAT(c.to_json(), HasSubstr("sk-very-secret"));
  EXPECT_THAT(c.to_redacted_json(), ::testing::Not(HasSubstr("sk-very-secret")));
  EXPECT_THAT(c.to_redacted_json(), HasSubstr("<redacted>"));
}

TEST(Config, ValidateCatchesValuesSetInCode) {
  Config c;
  c.buffer.flush_manager.max_workers = 0;
  c.buffer.flush_manager.default_timeout = Duration::zero();
  auto ok = c.validate();
  ASSERT_FALSE(ok.has_value());
  EXPECT_THAT(ok.error().message(), HasSubstr("buffer.flush_manager.max_workers"));
  EXPECT_THAT(ok.error().message(), HasSubstr("buffer.flush_manager.default_timeout"));
  EXPECT_TRUE(Config{}.validate().has_value());
}

TEST(Config, InvalidUtf8InAStringIsRefused) {
  auto c = Config::from_json("{\"sqlite\":{\"path\":\"\xff\xfe\"}}");
  ASSERT_FALSE(c.has_value());
  EXPECT_THAT(c.error().message(), HasSubstr("not valid JSON"));
  Config code;
  code.sqlite.path = "\xff";
  ASSERT_FALSE(code.validate().has_value());
  EXPECT_THAT(code.validate().error().message(), HasSubstr("sqlite.path: is not valid UTF-8"));
}

TEST(Config, FromFileReadsAndNamesTheFileOnError) {
  const auto dir = std::filesystem::temp_directory_path() / "memfuse_config_test";
  std::filesystem::create_directories(dir);
  const auto good = dir / "good.json";
  const auto bad = dir / "bad.json";
  std::ofstream(good) << R"({"buffer":{"hybrid_buffer":{"max_size":9}}})";
  std::ofstream(bad) << R"({"buffer":{"hybrid_buffer":{"max_sise":9}}})";
  auto g = Config::from_file(good);
  ASSERT_TRUE(g.has_value()) << g.error().to_string();
  EXPECT_EQ(g->buffer.hybrid_buffer.max_size, 9);
  auto b = Config::from_file(bad);
  ASSERT_FALSE(b.has_value());
  EXPECT_THAT(b.error().message(), HasSubstr("bad.json"));
  EXPECT_THAT(b.error().message(), HasSubstr("did you mean max_size?"));
  auto missing = Config::from_file(dir / "missing.json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::NotFound);
  std::filesystem::remove_all(dir);
}

// docs/configuration.md must document every key the parser accepts.
TEST(Config, EveryKeyIsDocumented) {
  std::ifstream in(std::string(MEMFUSE_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md is missing";
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& key : Config::keys()) {
    EXPECT_THAT(text.str(), HasSubstr("`" + key + "`")) << key << " is not documented";
  }
}

}  // namespace
}  // namespace memfuse
