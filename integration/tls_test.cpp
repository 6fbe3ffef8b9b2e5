// TLS in the production HTTP transport: certificate verification is on by
// default, so a server with a self-signed certificate is refused unless the
// user passes its CA (vector_store.qdrant.ca_file).
//
// The test makes its own certificate with OpenSSL (EC P-256, CN and SAN
// "localhost", valid for an hour) and serves one HTTPS response per
// connection from a small Asio SSL server on a loopback port.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/asio_runtime.h"
#include "memfuse/beast_http_transport.h"
#include "memfuse/executor.h"

namespace memfuse {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Writes a self-signed certificate and its key as PEM files.
void make_self_signed(const std::filesystem::path& cert_path, const std::filesystem::path& key_path) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                                   std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value);
    ASSERT_NE(ext, nullptr);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  FILE* c = std::fopen(cert_path.c_str(), "w");
  FILE* k = std::fopen(key_path.c_str(), "w");
  ASSERT_TRUE(c != nullptr && k != nullptr);
  PEM_write_X509(c, cert);
  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(c);
  std::fclose(k);
  X509_free(cert);
  EVP_PKEY_free(key);
}

// Answers each connection's one request with 200 {"ok":true}, until stopped.
class TlsServer {
 public:
  TlsServer(const std::filesystem::path& cert, const std::filesystem::path& key)
      : ctx_(ssl::context::tls_server), acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    ctx_.use_certificate_chain_file(cert.string());
    ctx_.use_private_key_file(key.string(), ssl::context::pem);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsServer() {
    stopping_ = true;
    boost::system::error_code ec;
    tcp::socket poke(ioc_);
    poke.connect(acceptor_.local_endpoint(), ec);  // wake the blocking accept
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int handshakes_ok() const { return ok_.load(); }

 private:
  void serve() {
    while (true) {
      ssl::stream<tcp::socket> stream(ioc_, ctx_);
      boost::system::error_code ec;
      acceptor_.accept(stream.next_layer(), ec);
      if (ec || stopping_) return;
      stream.handshake(ssl::stream_base::server, ec);
      if (ec) continue;  // the client refused our certificate
      ++ok_;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(stream, buffer, req, ec);
      if (ec) continue;
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "application/json");
      res.keep_alive(false);
      res.body() = R"({"ok":true})";
      res.prepare_payload();
      http::write(stream, res, ec);
      stream.shutdown(ec);
    }
  }

  asio::io_context ioc_;
  ssl::context ctx_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> ok_{0};
  std::thread thread_;
};

struct TlsFixture : ::testing::Test {
  TlsFixture()
      : dir(std::filesystem::temp_directory_path() / ("memfuse-tls-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
    make_self_signed(dir / "cert.pem", dir / "key.pem");
    server.emplace(dir / "cert.pem", dir / "key.pem");
  }
  ~TlsFixture() override {
    server.reset();
    std::filesystem::remove_all(dir);
  }
  Result<HttpResponse> get(const std::string& ca_file) {
    AsioRuntime rt({.io_threads = 1, .blocking_threads = 1});
    auto transport = BeastHttpTransport::create(
        rt, {.base_url = "https://localhost:" + std::to_string(server->port()), .ca_file = ca_file});
    EXPECT_TRUE(transport.has_value()) << transport.error().to_string();
    std::promise<Result<HttpResponse>> p;
    (*transport)->async_request(HttpRequest{"GET", "/collections/c", {}, ""}, rt.executor(),
                                [&](Result<HttpResponse> r) { p.set_value(std::move(r)); });
    auto f = p.get_future();
    EXPECT_EQ(f.wait_for(60s), std::future_status::ready);
    return f.get();
  }
  std::filesystem::path dir;
  std::optional<TlsServer> server;
};

TEST_F(TlsFixture, ASelfSignedServerIsRefusedByDefault) {
  auto r = get("");
  ASSERT_FALSE(r.has_value()) << "status " << r->status;
  EXPECT_EQ(r.error().code(), ErrorCode::Unavailable);
  EXPECT_FALSE(r.error().retryable()) << "retrying cannot fix a certificate";
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("vector_store.qdrant.ca_file"));
  EXPECT_EQ(server->handshakes_ok(), 0);
}

TEST_F(TlsFixture, ASelfSignedServerIsAcceptedWithItsCa) {
  auto r = get((dir / "cert.pem").string());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"ok":true})");
  EXPECT_EQ(server->handshakes_ok(), 1);
}

}  // namespace
}  // namespace memfuse
