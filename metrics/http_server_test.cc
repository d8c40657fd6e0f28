#include "metrics/http_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/io/stream.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/metrics.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::metrics {
namespace {

using ::picos::testing::StatusIs;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Every wait of a client here: only a hang reaches it.
constexpr absl::Duration kDeadline = absl::Seconds(60);

const TransportRegistry& Transports() { return transports::DefaultTransports(); }

// Reads one HTTP response from `stream`: the head, then Content-Length bytes
// of body (none for a HEAD), or up to the end of the stream without one.
Task<absl::StatusOr<std::string>> ReadResponse(Stream* stream, bool head = false) {
  std::string in;
  size_t body_at = std::string::npos;
  while (body_at == std::string::npos) {
    absl::StatusOr<std::string> more = co_await stream->Read(1 << 16, kDeadline);
    if (!more.ok()) co_return more.status();
    if (more->empty()) co_return in;  // closed
    in += *more;
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) body_at = end + 4;
  }
  size_t length = 0;
  size_t cl = in.find("Content-Length: ");
  if (head || cl == std::string::npos || cl > body_at ||
      !absl::SimpleAtoi(in.substr(cl + 16, in.find("\r\n", cl) - cl - 16), &length)) {
    co_return in;
  }
  while (in.size() < body_at + length) {
    absl::StatusOr<std::string> more = co_await stream->Read(1 << 16, kDeadline);
    if (!more.ok()) co_return more.status();
    if (more->empty()) break;
    in += *more;
  }
  co_return in;
}

// One request on a new connection; its response.
Task<absl::StatusOr<std::string>> Exchange(std::string uri, std::string request,
                                           bool head = false) {
  absl::StatusOr<std::unique_ptr<Stream>> s = co_await Transports().Connect(uri);
  if (!s.ok()) co_return s.status();
  absl::Status w = co_await (*s)->Write(request, kDeadline);
  if (!w.ok()) co_return w;
  co_return co_await ReadResponse(s->get(), head);
}

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n", extra_headers, "\r\n");
}

std::string Body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

struct Fixture {
  Registry registry;
  Counter* scrapes_seen = nullptr;
  Fixture() {
    scrapes_seen = (*registry.AddCounter("test_events_total", "Events.", {"kind"}))
                       ->WithLabels({"a \"quoted\" one"});
    scrapes_seen->Increment(42);
  }
};

PICOS_CORO_TEST(MetricsServer, ServesTheExposition) {
  Fixture f;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      co_await MetricsServer::Start(Transports(), f.registry);
  CO_ASSERT_OK(server);
  const std::string uri = (*server)->address();
  EXPECT_THAT(uri, StartsWith("tcp://127.0.0.1:"));
  EXPECT_THAT((*server)->url(), StartsWith("http://127.0.0.1:"));

  absl::StatusOr<std::string> r = co_await Exchange(uri, Get("/metrics"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(*r, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  EXPECT_EQ(Body(*r), f.registry.Exposition());
  EXPECT_THAT(Body(*r), HasSubstr("test_events_total{kind=\"a \\\"quoted\\\" one\"} 42\n"));

  // A query string is ignored; HEAD gives the head only.
  r = co_await Exchange(uri, Get("/metrics?name[]=x"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200 OK\r\n"));
  r = co_await Exchange(uri, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", /*head=*/true);
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Body(*r), "");

  // Two requests on one kept-alive connection.
  absl::StatusOr<std::unique_ptr<Stream>> s = co_await Transports().Connect(uri);
  CO_ASSERT_OK(s);
  for (int i = 0; i < 2; ++i) {
    f.scrapes_seen->Increment();
    CO_ASSERT_OK(co_await (*s)->Write(Get("/metrics"), kDeadline));
    r = co_await ReadResponse(s->get());
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, HasSubstr(absl::StrCat("} ", 43 + i, "\n")));
  }
  EXPECT_EQ((*server)->stats().scrapes, 5u);
  EXPECT_EQ((*server)->stats().refused, 0u);
}

PICOS_CORO_TEST(MetricsServer, RefusesWhatItDoesNotServe) {
  Fixture f;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      co_await MetricsServer::Start(Transports(), f.registry);
  CO_ASSERT_OK(server);
  const std::string uri = (*server)->address();

  absl::StatusOr<std::string> r = co_await Exchange(uri, Get("/"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Body(*r), Not(HasSubstr("test_events")));
  r = co_await Exchange(uri, Get("/metrics/../secret"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 404"));

  r = co_await Exchange(uri, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(*r, HasSubstr("Allow: GET, HEAD\r\n"));

  // Not HTTP at all.
  r = co_await Exchange(uri, "\x16\x03\x01 garbage that is not a request line\r\n\r\n");
  CO_ASSERT_OK(r);
  // kj answers an unknown method 501.
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 501 Not Implemented\r\n"));
  EXPECT_THAT(Body(*r), Not(HasSubstr("test_events")));
  r = co_await Exchange(uri, "GET /metrics HTTP/1.1\r\nBad Header Without Colon\r\n\r\n");
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 4"));

  // A head over max_header_bytes (16 KiB), in one header or in many.
  for (const std::string& padding :
       {absl::StrCat("X-Padding: ", std::string(1 << 20, 'a'), "\r\n"),
        [] {
          std::string many;
          for (int i = 0; i < 2000; ++i) absl::StrAppend(&many, "X-H", i, ": v\r\n");
          return many;
        }()}) {
    absl::StatusOr<std::unique_ptr<Stream>> big = co_await Transports().Connect(uri);
    CO_ASSERT_OK(big);
    // The server answers and closes before it read everything: the write
    // may fail, the answer is what counts.
    (void)co_await (*big)->Write(Get("/metrics", padding), kDeadline);
    r = co_await ReadResponse(big->get());
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        << padding.size();
    EXPECT_THAT(Body(*r), Not(HasSubstr("test_events")));
  }
  // And it still serves.
  r = co_await Exchange(uri, Get("/metrics"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_GE((*server)->stats().refused, 5u);
}

PICOS_CORO_TEST(MetricsServer, RequiresTheBearerTokenWhenGivenOne) {
  Fixture f;
  MetricsServerOptions options;
  options.bearer_token = "s3cret-Token_1";
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      co_await MetricsServer::Start(Transports(), f.registry, std::move(options));
  CO_ASSERT_OK(server);
  const std::string uri = (*server)->address();
  absl::StatusOr<std::string> r = co_await Exchange(uri, Get("/metrics"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401 Unauthorized\r\n"));
  EXPECT_THAT(*r, HasSubstr("WWW-Authenticate: Bearer\r\n"));
  EXPECT_THAT(Body(*r), Not(HasSubstr("test_events")));
  // A path that does not exist says 401 too: nothing is told without the token.
  r = co_await Exchange(uri, Get("/other"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401"));
  for (const char* wrong : {"Bearer s3cret-Token_2", "Bearer s3cret-Token_1x", "Basic s3cret-Token_1",
                            "Bearer ", "s3cret-Token_1"}) {
    r = co_await Exchange(uri, Get("/metrics", absl::StrCat("Authorization: ", wrong, "\r\n")));
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, StartsWith("HTTP/1.1 401")) << wrong;
  }
  r = co_await Exchange(uri, Get("/metrics", "Authorization: Bearer s3cret-Token_1\r\n"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(Body(*r), HasSubstr("test_events_total"));
}

PICOS_CORO_TEST(MetricsServer, BadOptionsAreRefused) {
  Registry registry;
  MetricsServerOptions spaced;
  spaced.bearer_token = "has space";
  absl::StatusOr<std::unique_ptr<MetricsServer>> s =
      co_await MetricsServer::Start(Transports(), registry, std::move(spaced));
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  MetricsServerOptions long_token;
  long_token.bearer_token = std::string(5000, 'a');
  s = co_await MetricsServer::Start(Transports(), registry, std::move(long_token));
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  MetricsServerOptions no_connections;
  no_connections.max_connections = 0;
  s = co_await MetricsServer::Start(Transports(), registry, std::move(no_connections));
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  MetricsServerOptions bogus;
  bogus.listen = "bogus://x";
  s = co_await MetricsServer::Start(Transports(), registry, std::move(bogus));
  EXPECT_FALSE(s.ok());
}

// 1,000 clients connect and say nothing: the server keeps at most
// max_connections of them, closing the oldest silent ones, and a scraper
// that comes after them is answered.
PICOS_CORO_TEST(MetricsServer, ThousandIdleConnectionsDoNotLockOutAScraper) {
  // Both ends live in this process: 2,000 descriptors and some, over the
  // usual soft limit of 1,024. Raise it to the hard limit.
  struct rlimit limit;
  CO_ASSERT_TRUE(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  if (limit.rlim_cur < 2200) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
    (void)setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < 2200) {
    CO_SKIP("needs 2,200 file descriptors; the hard limit is " << limit.rlim_max);
  }
  Fixture f;
  MetricsServerOptions options;
  options.max_connections = 256;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      co_await MetricsServer::Start(Transports(), f.registry, std::move(options));
  CO_ASSERT_OK(server);
  const std::string uri = (*server)->address();
  std::vector<std::unique_ptr<Stream>> idle;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await Transports().Connect(uri);
    CO_ASSERT_OK(s);
    idle.push_back(std::move(*s));
  }
  absl::StatusOr<std::string> r = co_await Exchange(uri, Get("/metrics"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(Body(*r), HasSubstr("test_events_total"));
  EXPECT_LE((*server)->open_connections(), 256u);
  EXPECT_GE((*server)->stats().connections, 1001u);
  EXPECT_GE((*server)->stats().connections_evicted, 1001u - 256u);
  // The first idle ones were closed by the server: they read the end.
  absl::StatusOr<std::string> end = co_await idle[0]->Read(100, kDeadline);
  CO_ASSERT_OK(end);
  EXPECT_EQ(*end, "");
}

// A client that connects and never sends a request is closed after
// request_timeout (real time: a wide margin, only a hang fails it).
PICOS_CORO_TEST(MetricsServer, SilentConnectionIsClosedAfterTheRequestTimeout) {
  Fixture f;
  MetricsServerOptions options;
  options.request_timeout = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      co_await MetricsServer::Start(Transports(), f.registry, std::move(options));
  CO_ASSERT_OK(server);
  absl::StatusOr<std::unique_ptr<Stream>> s = co_await Transports().Connect((*server)->address());
  CO_ASSERT_OK(s);
  std::string got;
  for (int i = 0; i < 100; ++i) {  // bounded: a 408 answer, then the end
    absl::StatusOr<std::string> more = co_await (*s)->Read(4096, kDeadline);
    CO_ASSERT_OK(more);
    if (more->empty()) break;
    got += *more;
  }
  // kj closes without an answer, or with 408: either way the connection ends.
  EXPECT_TRUE(got.empty() || absl::StartsWith(got, "HTTP/1.1 408")) << got;
}

}  // namespace
}  // namespace picos::metrics
