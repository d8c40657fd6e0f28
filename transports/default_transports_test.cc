#include "transports/default_transports.h"

#include <string>

#include "testing/coro_test.h"
#include "transports/socket.h"

namespace picos {
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
  absl::StatusOr<Server> server = co_await Server::Listen(picos::DefaultTransports(), "tcp://127.0.0.1:0");
  CO_ASSERT_OK(server);
  absl::StatusOr<Socket> client = co_await Socket::Connect(picos::DefaultTransports(), server->address(), absl::Minutes(1));
  CO_ASSERT_OK(client);
  absl::StatusOr<Socket> conn = co_await server->Accept(absl::Minutes(1));
  CO_ASSERT_OK(conn);
  CO_ASSERT_OK(co_await client->WriteAll("one\ntwo\n0123456789"));
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
  CO_ASSERT_OK(co_await client->WriteAll(std::string(100'000, '\x07')));
  line = co_await conn->ReadLine(4096, absl::Minutes(1));
  EXPECT_THAT(line, StatusIs(absl::StatusCode::kResourceExhausted));
  // The peer vanishes before the promised bytes: kOutOfRange, not a hang.
  client->Close();
  exact = co_await conn->ReadExactly(1'000'000, absl::Minutes(1));
  EXPECT_THAT(exact, StatusIs(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace picos
