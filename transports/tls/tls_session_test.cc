#include "transports/tls/tls_session.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/tls_certs.h"

namespace picos::transports {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    auto pki = picos::testing::MakeTestPki(tmp ? tmp : "/tmp");
    ASSERT_OK(pki);
    pki_ = *pki;
  }

  TlsConfig ServerConfig() {
    TlsConfig c;
    c.cert_file = pki_.server_cert;
    c.key_file = pki_.server_key;
    return c;
  }
  TlsConfig ClientConfig() {
    TlsConfig c;
    c.ca_file = pki_.ca_cert;
    return c;
  }

  // Moves ciphertext both ways until neither side makes progress. Returns
  // the last handshake steps.
  static std::pair<TlsStep, TlsStep> Pump(TlsSession& client, TlsSession& server) {
    TlsStep c = TlsStep::kWantRead, s = TlsStep::kWantRead;
    for (int i = 0; i < 20; ++i) {
      c = client.Handshake();
      server.FeedCiphertext(client.TakeCiphertext());
      s = server.Handshake();
      client.FeedCiphertext(server.TakeCiphertext());
      if ((c == TlsStep::kDone || c == TlsStep::kError) &&
          (s == TlsStep::kDone || s == TlsStep::kError)) {
        break;
      }
    }
    return {c, s};
  }

  static std::string ReadAll(TlsSession& from, size_t want) {
    std::string out;
    char buf[16384];
    while (out.size() < want) {
      size_t n = 0;
      if (from.Read(buf, sizeof(buf), &n) != TlsStep::kDone) break;
      out.append(buf, n);
    }
    return out;
  }

  picos::testing::TestPki pki_;
};

TEST_F(TlsSessionTest, HandshakeAndDataBothWays) {
  ASSERT_OK_AND_ASSIGN(auto sctx, TlsContext::Create(ServerConfig(), TlsRole::kServer));
  ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(ClientConfig(), TlsRole::kClient));
  ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
  ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, "localhost"));
  auto [c, s] = Pump(*client, *server);
  ASSERT_EQ(c, TlsStep::kDone) << client->error();
  ASSERT_EQ(s, TlsStep::kDone) << server->error();

  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  ASSERT_EQ(client->Write(big), TlsStep::kDone);
  std::string wire = client->TakeCiphertext();
  EXPECT_GT(wire.size(), big.size());
  EXPECT_EQ(wire.find(big.substr(0, 64)), std::string::npos) << "plaintext on the wire";
  server->FeedCiphertext(wire);
  EXPECT_EQ(ReadAll(*server, big.size()), big);

  ASSERT_EQ(server->Write("pong"), TlsStep::kDone);
  client->FeedCiphertext(server->TakeCiphertext());
  EXPECT_EQ(ReadAll(*client, 4), "pong");

  // close_notify reads as a clean close.
  client->Shutdown();
  server->FeedCiphertext(client->TakeCiphertext());
  char buf[16];
  size_t n;
  EXPECT_EQ(server->Read(buf, sizeof(buf), &n), TlsStep::kClosed);
}

TEST_F(TlsSessionTest, ServerSignedByAnotherCaIsRefused) {
  TlsConfig cc = ClientConfig();
  cc.ca_file = pki_.other_ca_cert;
  ASSERT_OK_AND_ASSIGN(auto sctx, TlsContext::Create(ServerConfig(), TlsRole::kServer));
  ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(cc, TlsRole::kClient));
  ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
  ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, "localhost"));
  auto [c, s] = Pump(*client, *server);
  EXPECT_EQ(c, TlsStep::kError);
  EXPECT_THAT(client->error(), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("verif")));
  // The client's alert reached the server, which knows why it failed.
  EXPECT_EQ(s, TlsStep::kError);
  EXPECT_FALSE(server->error().ok());
}

TEST_F(TlsSessionTest, NameMismatchIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto sctx, TlsContext::Create(ServerConfig(), TlsRole::kServer));
  ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(ClientConfig(), TlsRole::kClient));
  for (const char* name : {"example.org", "10.1.2.3"}) {
    ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
    ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, name));
    auto [c, s] = Pump(*client, *server);
    EXPECT_EQ(c, TlsStep::kError) << name;
    EXPECT_THAT(client->error(), StatusIs(absl::StatusCode::kUnauthenticated)) << name;
  }
  for (const char* name : {"127.0.0.1", "::1"}) {
    ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
    ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, name));
    auto [c, s] = Pump(*client, *server);
    EXPECT_EQ(c, TlsStep::kDone) << name << ": " << client->error();
  }
}

TEST_F(TlsSessionTest, ClientCertificatesWhenRequired) {
  TlsConfig sc = ServerConfig();
  sc.ca_file = pki_.ca_cert;
  sc.require_client_cert = true;
  ASSERT_OK_AND_ASSIGN(auto sctx, TlsContext::Create(sc, TlsRole::kServer));
  {
    ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(ClientConfig(), TlsRole::kClient));
    ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
    ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, "localhost"));
    auto [c, s] = Pump(*client, *server);
    EXPECT_EQ(s, TlsStep::kError) << "a client without a certificate got in";
  }
  {
    TlsConfig cc = ClientConfig();
    cc.cert_file = pki_.client_cert;
    cc.key_file = pki_.client_key;
    ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(cc, TlsRole::kClient));
    ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
    ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, "localhost"));
    auto [c, s] = Pump(*client, *server);
    EXPECT_EQ(c, TlsStep::kDone) << client->error();
    EXPECT_EQ(s, TlsStep::kDone) << server->error();
  }
}

TEST_F(TlsSessionTest, GarbageAndTruncationAreErrorsNotCrashes) {
  ASSERT_OK_AND_ASSIGN(auto sctx, TlsContext::Create(ServerConfig(), TlsRole::kServer));
  {
    ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
    server->FeedCiphertext(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(server->Handshake(), TlsStep::kError);
    EXPECT_THAT(server->error(), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(ClientConfig(), TlsRole::kClient));
    ASSERT_OK_AND_ASSIGN(auto client, TlsSession::Create(cctx, "localhost"));
    ASSERT_OK_AND_ASSIGN(auto server, TlsSession::Create(sctx));
    EXPECT_EQ(client->Handshake(), TlsStep::kWantRead);
    std::string hello = client->TakeCiphertext();
    server->FeedCiphertext(hello.substr(0, hello.size() / 2));
    server->FeedEof();  // the peer vanished mid-handshake
    EXPECT_EQ(server->Handshake(), TlsStep::kError);
    EXPECT_THAT(server->error(), StatusIs(absl::StatusCode::kUnavailable));
  }
}

TEST_F(TlsSessionTest, BadConfigurationIsAClearError) {
  TlsConfig sc;
  EXPECT_THAT(TlsContext::Create(sc, TlsRole::kServer),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cert_file")));
  sc = ServerConfig();
  sc.cert_file = "/nonexistent/cert.pem";
  EXPECT_THAT(TlsContext::Create(sc, TlsRole::kServer),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/nonexistent/cert.pem")));
  sc = ServerConfig();
  sc.key_file = pki_.client_key;  // not the server certificate's key
  EXPECT_THAT(TlsContext::Create(sc, TlsRole::kServer),
              StatusIs(absl::StatusCode::kInvalidArgument));
  TlsConfig cc;
  EXPECT_THAT(TlsContext::Create(cc, TlsRole::kClient),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ca_file")));
  ASSERT_OK_AND_ASSIGN(auto cctx, TlsContext::Create(ClientConfig(), TlsRole::kClient));
  EXPECT_THAT(TlsSession::Create(cctx, ""), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace picos::transports
