#include "transports/default_transports.h"

#include <cstdlib>
#include <optional>
#include <string>

#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "testing/coro_test.h"
#include "testing/tls_certs.h"
#include "transports/socket.h"

namespace picos::transports {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

TEST(DefaultTransports, ListsTcpAndUnix) {
  const TransportRegistry& r = DefaultTransports();
  EXPECT_OK(r.StreamFor("tcp"));
  EXPECT_OK(r.StreamFor("UNIX"));
  EXPECT_THAT(r.StreamFor("gopher"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("known: ")));
  EXPECT_THAT(r.StreamFor("gopher"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tcp")));
}

PICOS_CORO_TEST(Socket, LinesExactAndGarbage) {
  absl::StatusOr<Server> server = co_await Server::Listen(picos::transports::DefaultTransports(), "tcp://127.0.0.1:0");
  CO_ASSERT_OK(server);
  absl::StatusOr<Socket> client = co_await Socket::Connect(picos::transports::DefaultTransports(), server->address(), absl::Minutes(1));
  CO_ASSERT_OK(client);
  absl::StatusOr<Socket> conn = co_await server->Accept(absl::Minutes(1));
  CO_ASSERT_OK(conn);
  CO_ASSERT_OK(co_await client->Write("one\ntwo\n0123456789"));
  absl::StatusOr<std::string> line = co_await conn->ReadLine(100, absl::Minutes(1));
  CO_ASSERT_OK(line);
  EXPECT_EQ(*line, "one\n");
  line = co_await conn->ReadLine(100, absl::Minutes(1));
  CO_ASSERT_OK(line);
  EXPECT_EQ(*line, "two\n");
  absl::StatusOr<std::string> exact = co_await conn->ReadExactly(10, absl::Minutes(1));
  CO_ASSERT_OK(exact);
  EXPECT_EQ(*exact, "0123456789");
  // A peer sending garbage with no newline: a bounded line read says so.
  CO_ASSERT_OK(co_await client->Write(std::string(100'000, '\x07')));
  line = co_await conn->ReadLine(4096, absl::Minutes(1));
  EXPECT_THAT(line, StatusIs(absl::StatusCode::kResourceExhausted));
  // The peer vanishes before the promised bytes: kOutOfRange, not a hang.
  client->Close();
  exact = co_await conn->ReadExactly(1'000'000, absl::Minutes(1));
  EXPECT_THAT(exact, StatusIs(absl::StatusCode::kOutOfRange));
}

// Messages (Socket::WriteMessage / ReadMessage) over a listener at
// `listen_uri`; the client adds `client_query` to the address it dials.
Task<> MessagesRoundTrip(std::string listen_uri, std::string client_query) {
  absl::StatusOr<Server> server = co_await Server::Listen(DefaultTransports(), listen_uri);
  CO_ASSERT_OK(server);
  absl::StatusOr<Socket> client = co_await Socket::Connect(
      DefaultTransports(), server->address() + client_query, absl::Seconds(10));
  CO_ASSERT_OK(client);
  absl::StatusOr<Socket> conn = co_await server->Accept(absl::Seconds(10));
  CO_ASSERT_OK(conn);
  // A line and messages on one stream: both read through the same buffer.
  // Written by a task of their own: more than the socket buffers hold.
  Socket* out = &*client;
  auto write_all = [out]() -> Task<absl::Status> {
    PICOS_CO_RETURN_IF_ERROR(co_await out->Write("hello\n", absl::Seconds(10)));
    for (int i = 0; i < 50; ++i) {
      PICOS_CO_RETURN_IF_ERROR(co_await out->WriteMessage(
          std::string(i * 1000, static_cast<char>(i)), absl::Seconds(10)));
    }
    co_return co_await out->WriteMessage("", absl::Seconds(10));
  };
  TaskRef writer = ThisScheduler().Spawn(write_all);
  absl::StatusOr<std::string> line = co_await conn->ReadLine(100, absl::Seconds(10));
  CO_ASSERT_OK(line);
  EXPECT_EQ(*line, "hello\n");
  for (int i = 0; i < 50; ++i) {
    absl::StatusOr<std::optional<std::string>> m = co_await conn->ReadMessage(absl::Seconds(10));
    CO_ASSERT_OK(m);
    EXPECT_EQ(*m, std::string(i * 1000, static_cast<char>(i)));
  }
  absl::StatusOr<std::optional<std::string>> empty = co_await conn->ReadMessage(absl::Seconds(10));
  CO_ASSERT_OK(empty);
  EXPECT_EQ(*empty, std::string());
  CO_ASSERT_OK(co_await writer.Join(absl::Seconds(10)));
  // Over the receiver's bound: refused from the header alone.
  CO_ASSERT_OK(co_await client->WriteMessage(std::string(5000, 'x')));
  EXPECT_THAT(co_await conn->ReadMessage(absl::Seconds(10), {.max_message_size = 4096}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("5000 bytes")));
  // A peer that stops inside a message: kDataLoss, not a hang.
  absl::StatusOr<Socket> client2 = co_await Socket::Connect(
      DefaultTransports(), server->address() + client_query, absl::Seconds(10));
  CO_ASSERT_OK(client2);
  absl::StatusOr<Socket> conn2 = co_await server->Accept(absl::Seconds(10));
  CO_ASSERT_OK(conn2);
  CO_ASSERT_OK(co_await client2->Write(std::string("\0\0\0\x10half", 8)));
  CO_ASSERT_OK(co_await client2->Shutdown(absl::Seconds(10)));
  EXPECT_THAT(co_await conn2->ReadMessage(absl::Seconds(10)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("4 of 16 bytes")));
}

PICOS_CORO_TEST(Socket, MessagesOverTcp) { co_await MessagesRoundTrip("tcp://127.0.0.1:0", ""); }

PICOS_CORO_TEST(Socket, MessagesOverUnix) {
  co_await MessagesRoundTrip("unix://@picos-socket-messages-test", "");
}

PICOS_CORO_TEST(Socket, MessagesOverTls) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  absl::StatusOr<testing::TestPki> pki = testing::MakeTestPki(tmp ? tmp : "/tmp");
  CO_ASSERT_OK(pki);
  co_await MessagesRoundTrip(
      "tls://127.0.0.1:0?cert=" + pki->server_cert + "&key=" + pki->server_key,
      "?ca=" + pki->ca_cert);
}

PICOS_CORO_TEST(Socket, EndOfStreamBetweenMessages) {
  absl::StatusOr<Server> server = co_await Server::Listen(DefaultTransports(), "tcp://127.0.0.1:0");
  CO_ASSERT_OK(server);
  absl::StatusOr<Socket> client =
      co_await Socket::Connect(DefaultTransports(), server->address(), absl::Seconds(10));
  CO_ASSERT_OK(client);
  absl::StatusOr<Socket> conn = co_await server->Accept(absl::Seconds(10));
  CO_ASSERT_OK(conn);
  CO_ASSERT_OK(co_await client->WriteMessage("last"));
  client->Close();
  absl::StatusOr<std::optional<std::string>> m = co_await conn->ReadMessage(absl::Seconds(10));
  CO_ASSERT_OK(m);
  EXPECT_EQ(*m, std::string("last"));
  m = co_await conn->ReadMessage(absl::Seconds(10));
  CO_ASSERT_OK(m);
  EXPECT_EQ(*m, std::nullopt);
}

}  // namespace
}  // namespace picos::transports
