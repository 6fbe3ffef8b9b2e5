#include "memfuse/qdrant_vector_store.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <charconv>
#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <boost/asio/post.hpp>

#include "json_text.h"
#include "memfuse/assert.h"
#include "memfuse/executor.h"
#include "memfuse/validation.h"

namespace memfuse {

using nlohmann::json;

namespace qdrant {
namespace {

// The error Qdrant put in its body ({"status": {"error": "..."}}), shortened:
// it comes from a peer, so it is bounded and never trusted to be text.
std::string peer_message(const HttpResponse& r) {
  const json body = json::parse(r.body, nullptr, false);
  std::string m;
  if (!body.is_discarded() && body.is_object() && body.contains("status") &&
      body["status"].is_object() && body["status"].contains("error") &&
      body["status"]["error"].is_string()) {
    m = body["status"]["error"].get<std::string>();
  }
  if (m.size() > 200) m = m.substr(0, 200) + "...";
  for (char& c : m) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return m.empty() ? std::string("no error message") : m;
}

Error status_error(const HttpResponse& r, std::string_view what) {
  const std::string msg = fmt::format("qdrant {}: HTTP {} ({})", what, r.status, peer_message(r));
  switch (r.status) {
    case 400:
      return Error(ErrorCode::InvalidArgument, false,
                   msg + "; the request was malformed or the vector dimension does not match the "
                         "collection: check embedding.dimension");
    case 401:
    case 403:
      return Error(ErrorCode::Unavailable, false, msg + "; check vector_store.qdrant.api_key");
    case 404:
      return Error(ErrorCode::NotFound, true, msg + "; the collection will be created again");
    case 408:
      return Error(ErrorCode::Timeout, true, msg);
    case 429:
      return Error(ErrorCode::Unavailable, true, msg + "; rate limited, retrying with backoff");
    default:
      if (r.status >= 500 && r.status <= 599) return Error(ErrorCode::Unavailable, true, msg);
      return Error(ErrorCode::Unavailable, false, msg + "; an unexpected status");
  }
}

Result<json> ok_result(const HttpResponse& r, std::string_view what) {
  if (r.status != 200) return Unexpected(status_error(r, what));
  json body = json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("result")) {
    return fail(ErrorCode::Unavailable, true,
                fmt::format("qdrant {}: HTTP 200 with a body that is not a Qdrant response", what));
  }
  return std::move(body["result"]);
}

}  // namespace

Result<void> check_write_response(const HttpResponse& response) {
  auto result = ok_result(response, "write");
  if (!result) return Unexpected(result.error());
  if (result->is_boolean() && result->get<bool>()) return {};  // collection created
  if (result->is_object() && result->contains("status") && (*result)["status"].is_string()) {
    const auto status = (*result)["status"].get<std::string>();
    if (status == "completed") return {};
    return fail(ErrorCode::Unavailable, true,
                fmt::format("qdrant write: status \"{}\", not \"completed\"; retrying",
                            status.substr(0, 40)));
  }
  return fail(ErrorCode::Unavailable, true, "qdrant write: HTTP 200 without a result status");
}

Result<std::vector<ScoredChunk>> parse_query_response(const HttpResponse& response,
                                                      std::string_view session) {
  if (response.status == 404) return std::vector<ScoredChunk>{};  // no collection, no points
  auto result = ok_result(response, "query");
  if (!result) return Unexpected(result.error());
  const json* points = &*result;
  if (result->is_object() && result->contains("points")) points = &(*result)["points"];
  if (!points->is_array()) {
    return fail(ErrorCode::Unavailable, true, "qdrant query: the result holds no points array");
  }
  auto corrupt = [](std::string_view why) {
    return fail(ErrorCode::Corrupt, false, fmt::format("qdrant query: a point {}", why));
  };
  std::vector<ScoredChunk> out;
  for (const auto& p : *points) {
    if (!p.is_object() || !p.contains("score") || !p["score"].is_number() ||
        !p.contains("payload") || !p["payload"].is_object()) {
      return corrupt("lacks a score or a payload");
    }
    const json& pl = p["payload"];
    if (!pl.contains("round_id") || !pl["round_id"].is_string() || !pl.contains("session_id") ||
        !pl["session_id"].is_string() || !pl.contains("chunk_index") ||
        !pl["chunk_index"].is_number_unsigned() || !pl.contains("text") || !pl["text"].is_string()) {
      return corrupt("has a malformed payload");
    }
    auto round = RoundId::parse(pl["round_id"].get<std::string>());
    if (!round) return corrupt("has a malformed round_id");
    if (pl["session_id"].get<std::string>() != session) {
      return corrupt("belongs to another session than the filter asked for");
    }
    const auto index = pl["chunk_index"].get<std::uint64_t>();
    if (index > UINT32_MAX) return corrupt("has a chunk_index out of range");
    const double score = p["score"].get<double>();
    if (!std::isfinite(score)) return corrupt("has a score that is not finite");
    ScoredChunk sc;
    sc.chunk.round_id = *round;
    sc.chunk.index = static_cast<std::uint32_t>(index);
    sc.chunk.id = make_chunk_id(*round, sc.chunk.index);
    sc.chunk.session_id = std::string(session);
    sc.chunk.text = pl["text"].get<std::string>();
    sc.score = score;
    out.push_back(std::move(sc));
  }
  return out;
}

namespace {

// One point as JSON, written directly: a json DOM per point cost an
// allocation per vector element, and the vector went out as doubles (17
// digits each). A float is written in its shortest form that reads back as
// the same float (std::to_chars), which is what Qdrant stores; strings are
// escaped by nlohmann, with invalid UTF-8 replaced.
// Chunk texts and session ids are checked UTF-8 before they are buffered;
// anything else still goes through nlohmann, which replaces bad bytes.
void append_json_string(std::string& out, const std::string& s) {
  if (is_valid_utf8(s)) {
    detail::append_json_string(out, s);
  } else {
    out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

// A float's shortest round-trip form is at most 15 characters ("-1.17549435e-38":
// 9 significant digits, the most a float needs, in scientific form; to_chars
// writes the fixed form only when it is no longer); with its comma, 16.
constexpr std::size_t kMaxFloatText = 16;

// The elements of `v`, comma-separated, written in place at the end of `out`
// (a string append per element, and its memcpy, cost as much as the
// conversion: 40 % of writing a 384-dimension point).
void append_floats(std::string& out, const std::vector<float>& v) {
  const std::size_t old = out.size();
  out.resize_and_overwrite(old + v.size() * kMaxFloatText, [&](char* data, std::size_t n) {
    char* w = data + old;
    char* const end = data + n;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) *w++ = ',';
      const float x = v[i];
      if (x == 0.0f) {  // most elements of the hashing embedder's sparse vectors
        w = std::signbit(x) ? std::copy_n("-0.0", 4, w)  // "-0" would read back as the integer 0
                            : std::copy_n("0", 1, w);    // what to_chars writes for it
      } else if (std::isfinite(x)) {
        const auto written = std::to_chars(w, end, x);  // shortest round-trip form
        // Checked in every build: past the bound, the body would carry unwritten bytes.
        if (written.ec != std::errc()) [[unlikely]] {
          detail::assertion_failed("a float's text fits kMaxFloatText", __FILE__, __LINE__, __func__);
        }
        w = written.ptr;
      } else {
        w = std::copy_n("null", 4, w);  // as nlohmann writes it; embeddings are checked finite before they get here
      }
    }
    return static_cast<std::size_t>(w - data);
  });
}

void append_point(std::string& out, const EmbeddedChunk& c) {
  out.reserve(out.size() + 160 + c.vector.size() * 12 + c.chunk.text.size() + c.chunk.session_id.size());
  out += R"({"id":")";
  out += point_id_for(c.chunk.id).to_string();
  out += R"(","vector":[)";
  append_floats(out, c.vector);
  out += R"(],"payload":{"round_id":")";
  out += c.chunk.round_id.to_string();
  out += R"(","session_id":)";
  append_json_string(out, c.chunk.session_id);
  out += R"(,"chunk_index":)";
  out += std::to_string(c.chunk.index);
  out += R"(,"text":)";
  append_json_string(out, c.chunk.text);
  out += "}}";
}

}  // namespace

std::vector<std::string> upsert_bodies(const std::vector<EmbeddedChunk>& chunks,
                                       std::size_t max_request_bytes) {
  static constexpr std::string_view kHead = R"({"points":[)";
  static constexpr std::string_view kTail = "]}";
  std::vector<std::string> bodies;
  std::string body;
  std::size_t points = 0;
  auto close = [&] {
    if (points == 0) return;
    body += kTail;
    bodies.push_back(std::move(body));
    body.clear();
    points = 0;
  };
  for (const auto& c : chunks) {
    // Written straight into the body; a point that would take the body over
    // the limit moves to the next one (the only copy, once per body).
    if (points == 0) body = kHead;
    const std::size_t mark = body.size();
    if (points > 0) body += ',';
    append_point(body, c);
    if (points > 0 && body.size() + kTail.size() > max_request_bytes) {
      std::string point = body.substr(mark + 1);
      body.resize(mark);
      close();
      body = kHead;
      body += point;
    }
    ++points;
  }
  close();
  return bodies;
}

}  // namespace qdrant

struct QdrantVectorStore::Impl : std::enable_shared_from_this<Impl> {
  HttpTransport& transport;
  QdrantStoreOptions options;
  Logger log;
  std::atomic<bool> collection_ready{false};
  std::atomic<std::uint64_t> requests{0};

  Impl(HttpTransport& t, QdrantStoreOptions o, Logger l)
      : transport(t), options(std::move(o)), log(std::move(l)) {}

  [[nodiscard]] HttpRequest request(std::string method, std::string target, std::string body) const {
    HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.headers.emplace_back("content-type", "application/json");
    if (!options.api_key.empty()) r.headers.emplace_back("api-key", options.api_key);
    return r;
  }
  [[nodiscard]] std::string collection_path() const { return "/collections/" + options.collection; }
};

namespace {

// One logical store call: a chain of HTTP exchanges, cancellable as a whole,
// completing exactly once.
template <typename T>
class Chain final : public StoreCall, public std::enable_shared_from_this<Chain<T>> {
 public:
  using Step = std::move_only_function<void(Result<HttpResponse>)>;

  Chain(std::shared_ptr<QdrantVectorStore::Impl> store, Executor completion, StoreHandler<T> done)
      : store_(std::move(store)), completion_(std::move(completion)), done_(std::move(done)) {}

  void cancel() noexcept override {
    std::shared_ptr<HttpCall> call;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      cancelled_ = true;
      call = current_;
    }
    if (call) call->cancel();  // its handler then finishes the chain with Cancelled
  }

  // Sends one request; `next` gets its response on the completion executor.
  // Called from the starting call or from a previous step's handler.
  void send(HttpRequest request, Step next) {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    store_->requests.fetch_add(1, std::memory_order_relaxed);
    current_ = store_->transport.async_request(
        std::move(request), completion_,
        [self = this->shared_from_this(), next = std::move(next)](Result<HttpResponse> r) mutable {
          {
            std::lock_guard guard(self->mutex_);
            self->current_.reset();
            if (self->cancelled_ && r) {
              r = fail(ErrorCode::Cancelled, false, "qdrant: the call was cancelled");
            }
          }
          if (!r && r.error().code() == ErrorCode::Cancelled) {
            self->finish(Unexpected(r.error()));
            return;
          }
          next(std::move(r));
        });
  }

  // Completes the call; later calls do nothing. Runs on the completion
  // executor (from a step's handler), never inside put() or search().
  void finish(Result<T> result) {
    StoreHandler<T> done;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      finished_ = true;
      done = std::move(done_);  // released after it runs: it may hold the caller's state
    }
    done(std::move(result));
  }

  QdrantVectorStore::Impl& store() { return *store_; }

 private:
  std::shared_ptr<QdrantVectorStore::Impl> store_;
  Executor completion_;
  StoreHandler<T> done_;
  std::mutex mutex_;
  bool finished_ = false;
  bool cancelled_ = false;
  std::shared_ptr<HttpCall> current_;
};

// Ensures the collection, then runs `then` (on the completion executor).
template <typename T>
void ensure(const std::shared_ptr<Chain<T>>& chain, std::move_only_function<void()> then) {
  auto& s = chain->store();
  if (s.collection_ready.load()) {
    then();
    return;
  }
  chain->send(s.request("GET", s.collection_path(), {}),
              [chain, then = std::move(then)](Result<HttpResponse> r) mutable {
                auto& st = chain->store();
                if (!r) return chain->finish(Unexpected(r.error()));
                if (r->status == 200) {
                  const json body = json::parse(r->body, nullptr, false);
                  const json* size = nullptr;
                  if (!body.is_discarded() && body.is_object()) {
                    const json::json_pointer ptr("/result/config/params/vectors/size");
                    if (body.contains(ptr) && body.at(ptr).is_number_integer()) size = &body.at(ptr);
                  }
                  if (size != nullptr && size->get<long long>() != st.options.dimension) {
                    return chain->finish(fail(
                        ErrorCode::InvalidArgument, false,
                        fmt::format("qdrant: collection {} holds vectors of size {}; "
                                    "embedding.dimension is {}: use another collection",
                                    st.options.collection, size->get<long long>(),
                                    st.options.dimension)));
                  }
                  st.collection_ready.store(true);
                  return then();
                }
                if (r->status != 404) {
                  return chain->finish(Unexpected(qdrant::check_write_response(*r).error()));
                }
                const json create = {{"vectors", {{"size", st.options.dimension}, {"distance", "Cosine"}}}};
                chain->send(st.request("PUT", st.collection_path(), create.dump()),
                            [chain, then = std::move(then)](Result<HttpResponse> c) mutable {
                              if (!c) return chain->finish(Unexpected(c.error()));
                              // 409: created meanwhile by someone else; fine.
                              if (c->status != 409) {
                                if (auto ok = qdrant::check_write_response(*c); !ok) {
                                  return chain->finish(Unexpected(ok.error()));
                                }
                              }
                              chain->store().log.info("qdrant: created collection {} (size {}, Cosine)",
                                                      chain->store().options.collection,
                                                      chain->store().options.dimension);
                              chain->store().collection_ready.store(true);
                              then();
                            });
              });
}

void upsert_from(const std::shared_ptr<Chain<void>>& chain,
                 std::shared_ptr<std::vector<std::string>> bodies, std::size_t i) {
  if (i == bodies->size()) return chain->finish({});
  auto& s = chain->store();
  std::string body = std::move((*bodies)[i]);
  chain->send(s.request("PUT", s.collection_path() + "/points?wait=true", std::move(body)),
              [chain, bodies, i](Result<HttpResponse> r) {
                if (!r) return chain->finish(Unexpected(r.error()));
                if (auto ok = qdrant::check_write_response(*r); !ok) {
                  if (r->status == 404) chain->store().collection_ready.store(false);
                  return chain->finish(Unexpected(ok.error()));
                }
                upsert_from(chain, bodies, i + 1);
              });
}

bool safe_collection_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

QdrantVectorStore::QdrantVectorStore(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
QdrantVectorStore::~QdrantVectorStore() = default;

Result<std::unique_ptr<QdrantVectorStore>> QdrantVectorStore::create(HttpTransport& transport,
                                                                     QdrantStoreOptions options,
                                                                     Logger logger) {
  if (!safe_collection_name(options.collection)) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("vector_store.qdrant.collection: \"{}\" must be 1..255 characters of "
                            "[A-Za-z0-9_-]",
                            options.collection.substr(0, 64)));
  }
  if (options.dimension < 1) {
    return fail(ErrorCode::InvalidArgument, false, "embedding.dimension: must be at least 1");
  }
  if (options.max_request_bytes < 1024) {
    return fail(ErrorCode::InvalidArgument, false,
                "vector_store.qdrant.max_request_bytes: must be at least 1024");
  }
  return std::unique_ptr<QdrantVectorStore>(new QdrantVectorStore(
      std::make_shared<Impl>(transport, std::move(options), std::move(logger))));
}

StoreCallPtr QdrantVectorStore::put(ChunkBatch chunks, const Executor& completion,
                                    StoreHandler<void> done) {
  auto chain = std::make_shared<Chain<void>>(impl_, completion, std::move(done));
  auto bodies = std::make_shared<std::vector<std::string>>(
      qdrant::upsert_bodies(*chunks, impl_->options.max_request_bytes));
  if (bodies->empty()) {
    // Nothing to write: still complete through the executor, never inline.
    boost::asio::post(completion.get(), [chain] { chain->finish({}); });
    return chain;
  }
  ensure(chain, [chain, bodies] { upsert_from(chain, bodies, 0); });
  return chain;
}

StoreCallPtr QdrantVectorStore::search(std::string session, std::vector<float> query,
                                       std::size_t top_k, const Executor& completion,
                                       StoreHandler<std::vector<ScoredChunk>> done) {
  auto chain = std::make_shared<Chain<std::vector<ScoredChunk>>>(impl_, completion, std::move(done));
  const json body = {
      {"query", query},
      {"limit", top_k},
      {"with_payload", true},
      {"filter", {{"must", json::array({{{"key", "session_id"}, {"match", {{"value", session}}}}})}}}};
  chain->send(impl_->request("POST", impl_->collection_path() + "/points/query",
                             body.dump(-1, ' ', false, json::error_handler_t::replace)),
              [chain, session = std::move(session)](Result<HttpResponse> r) {
                if (!r) return chain->finish(Unexpected(r.error()));
                chain->finish(qdrant::parse_query_response(*r, session));
              });
  return chain;
}

StoreCallPtr QdrantVectorStore::ensure_collection(const Executor& completion,
                                                  StoreHandler<void> done) {
  impl_->collection_ready.store(false);
  auto chain = std::make_shared<Chain<void>>(impl_, completion, std::move(done));
  ensure(chain, [chain] { chain->finish({}); });
  return chain;
}

std::uint64_t QdrantVectorStore::requests_sent() const noexcept { return impl_->requests.load(); }

}  // namespace memfuse
