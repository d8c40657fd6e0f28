// tls:// passes the transport conformance suite, over TCP and over a Unix
// socket, and refuses what it must: a server its client cannot verify, a
// name that does not match, a handshake that stalls, a peer talking plain
// text, a malformed parameter.
#include "transports/tls/tls_transport.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"
#include "testing/tls_certs.h"
#include "testing/transport_conformance.h"
#include "core/kernel/status.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/unix/unix_transport.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

const TestPki& Pki() {
  static const TestPki* const pki = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    absl::StatusOr<TestPki> p = MakeTestPki(tmp ? tmp : "/tmp");
    if (!p.ok()) {
      ADD_FAILURE() << p.status();
      return new TestPki();
    }
    return new TestPki(*p);
  }();
  return *pki;
}

// Server certificate and key, and the CA clients trust, as defaults.
void RegisterTestTls(TransportRegistry::Builder& b) {
  tls::TlsConfig defaults;
  defaults.cert_file = Pki().server_cert;
  defaults.key_file = Pki().server_key;
  defaults.ca_file = Pki().ca_cert;
  defaults.handshake_timeout_ms = 2000;
  // What TLS runs over in these tests; lives as long as the process.
  static const TransportRegistry* inner = [] {
    TransportRegistry::Builder plain;
    transports::RegisterTcpTransport(plain);
    transports::RegisterUnixTransport(plain);
    return std::move(plain).Build().release();
  }();
  tls::RegisterTlsTransport(b, *inner, defaults);
}

INSTANTIATE_TEST_SUITE_P(
    Tls, TransportConformanceTest,
    ::testing::Values(
        ConformanceParam{"over_tcp", RegisterTestTls,
                         [] { return std::string("tls://127.0.0.1:0"); }},
        ConformanceParam{"over_unix", RegisterTestTls,
                         [] {
                           // The listener's address keeps inner= and path=.
                           std::string unix_uri = UniqueUnixUri(/*abstract=*/true);
                           return "tls://localhost:0?inner=unix&path=@" +
                                  unix_uri.substr(unix_uri.find('@') + 1);
                         }}),
    ConformanceName);

std::unique_ptr<const TransportRegistry> Registry(bool with_tcp) {
  TransportRegistry::Builder b;
  RegisterTestTls(b);
  if (with_tcp) transports::RegisterTcpTransport(b);
  return std::move(b).Build();
}

TEST(TlsTransport, UntrustedServerAndWrongNameAreUnauthenticated) {
  auto reg = Registry(false);
  RunCoroTest([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen("tls://127.0.0.1:0");
    CO_ASSERT_OK(l);
    Listener* listener = l->get();
    // The server side keeps accepting; failed handshakes are logged, skipped.
    TaskRef acceptor = ThisScheduler().Spawn([listener]() -> Task<> {
      absl::StatusOr<std::unique_ptr<Stream>> s = co_await listener->Accept();
      (void)s;
    });
    std::string port = listener->address().substr(listener->address().rfind(':') + 1);
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await reg->Connect(
        "tls://127.0.0.1:" + port + "?ca=" + Pki().other_ca_cert, absl::Seconds(5));
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("verif")));
    s = co_await reg->Connect("tls://127.0.0.1:" + port + "?name=example.org", absl::Seconds(5));
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated));
    // And the right one still gets in.
    s = co_await reg->Connect("tls://127.0.0.1:" + port, absl::Seconds(5));
    CO_ASSERT_OK(s);
    CO_ASSERT_OK(co_await acceptor.Join());
  });
}

TEST(TlsTransport, StalledHandshakeTimesOutAndPlainTextIsRefused) {
  auto reg = Registry(true);
  RunCoroTest([&]() -> Task<> {
    // A TCP server that accepts and says nothing: the TLS client gives up.
    absl::StatusOr<std::unique_ptr<Listener>> mute = co_await reg->Listen("tcp://127.0.0.1:0");
    CO_ASSERT_OK(mute);
    Listener* m = mute->get();
    TaskRef holder = ThisScheduler().Spawn([m]() -> Task<> {
      absl::StatusOr<std::unique_ptr<Stream>> s = co_await m->Accept();
      if (s.ok()) (void)co_await Sleep(absl::Seconds(3));
    });
    std::string port = m->address().substr(m->address().rfind(':') + 1);
    absl::StatusOr<std::unique_ptr<Stream>> s =
        co_await reg->Connect("tls://127.0.0.1:" + port + "?handshake_ms=200", absl::Seconds(5));
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("handshake")));
    CO_ASSERT_OK(holder.Terminate());
    (void)co_await holder.Join();

    // A plain-text client against a TLS server: the server drops it and
    // serves the next, real, client.
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen("tls://127.0.0.1:0");
    CO_ASSERT_OK(l);
    Listener* listener = l->get();
    TaskRef server = ThisScheduler().Spawn([listener]() -> Task<absl::Status> {
      PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> st, co_await listener->Accept(absl::Seconds(10)));
      co_return co_await st->Write("hello over tls");
    });
    std::string tls_port = listener->address().substr(listener->address().rfind(':') + 1);
    absl::StatusOr<std::unique_ptr<Stream>> plain =
        co_await reg->Connect("tcp://127.0.0.1:" + tls_port, absl::Seconds(5));
    CO_ASSERT_OK(plain);
    CO_ASSERT_OK(co_await (*plain)->Write("GET / HTTP/1.0\r\n\r\n"));
    char buf[64];
    absl::StatusOr<size_t> n = co_await (*plain)->ReadSome(buf, 1, sizeof buf, absl::Seconds(5));
    // The server answers garbage with an alert or a close, never with data.
    if (n.ok() && *n > 0) EXPECT_NE(std::string(buf, *n).find('\x15'), std::string::npos);
    absl::StatusOr<std::unique_ptr<Stream>> good =
        co_await reg->Connect("tls://127.0.0.1:" + tls_port, absl::Seconds(5));
    CO_ASSERT_OK(good);
    n = co_await (*good)->ReadSome(buf, 14, sizeof buf, absl::Seconds(5));
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "hello over tls");
    CO_ASSERT_OK(co_await server.Join());
  });
}

// A client that connects and never handshakes must not hold up the next
// one: handshakes run side by side.
TEST(TlsTransport, StalledClientDoesNotDelayOthers) {
  auto reg = Registry(true);
  RunCoroTest([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Listener>> l =
        co_await reg->Listen("tls://127.0.0.1:0?handshake_ms=5000");
    CO_ASSERT_OK(l);
    std::string address = (*l)->address();
    std::string port = address.substr(address.rfind(':') + 1);
    absl::StatusOr<std::unique_ptr<Stream>> stalled =
        co_await reg->Connect("tcp://127.0.0.1:" + port, absl::Seconds(5));
    CO_ASSERT_OK(stalled);
    co_await Sleep(absl::Milliseconds(20));  // the server has taken it and waits for its hello
    Listener* listener = l->get();
    auto accepted = std::make_shared<absl::StatusOr<std::unique_ptr<Stream>>>(
        absl::UnknownError("not accepted"));
    auto accept = [listener, accepted]() -> Task<> {
      *accepted = co_await listener->Accept(absl::Seconds(10));
    };
    TaskRef acceptor = ThisScheduler().Spawn(accept);
    absl::StatusOr<std::unique_ptr<Stream>> good = co_await reg->Connect(address, absl::Seconds(10));
    CO_ASSERT_OK(good);
    CO_ASSERT_OK(co_await acceptor.Join());
    CO_ASSERT_OK(*accepted);
    // The stalled client's handshake is still pending: the server has
    // neither answered nor dropped it.
    char buf[8];
    absl::StatusOr<size_t> n = co_await (*stalled)->ReadSome(buf, 1, sizeof buf, absl::ZeroDuration());
    EXPECT_THAT(n, StatusIs(absl::StatusCode::kDeadlineExceeded));
    CO_ASSERT_OK(co_await (**accepted)->Write("ok"));
    n = co_await (*good)->ReadSome(buf, 2, sizeof buf, absl::Seconds(5));
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "ok");
    (*stalled)->Close();  // its handshake task then ends at once
  });
}

TEST(TlsTransport, BadParametersAreInvalidArguments) {
  auto reg = Registry(false);
  RunCoroTest([&]() -> Task<> {
    for (std::string bad : {"tls://127.0.0.1:1?verify=maybe", "tls://127.0.0.1:1?colour=red",
                            "tls://127.0.0.1:1?handshake_ms=0",
                            "tls://127.0.0.1:1?inner=unix", "tls://127.0.0.1:1?inner=carrier",
                            "tls://127.0.0.1:1?ca=/nonexistent.pem"}) {
      absl::StatusOr<std::unique_ptr<Stream>> s = co_await reg->Connect(bad, absl::Seconds(2));
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    }
  });
}

}  // namespace
}  // namespace picos::testing
