// MetricsServerOptions::routes (http_routes_internal.h): more paths on the
// /metrics server under its token, its limits and its refusals.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/http_routes_internal.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "testing/coro_test.h"
#include "testing/http_test_client.h"
#include "transports/default_transports.h"

namespace picos::metrics {
namespace {

using ::picos::testing::HttpBody;
using ::picos::testing::HttpExchange;
using ::picos::testing::HttpRequestText;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kToken[] = "routes-test-token";

// /hello (any method) says whether the request had the token; /public is
// reachable without it; /echo answers its body, at most 16 bytes.
class TestRoutes final : public HttpRoutes {
 public:
  bool IsPublic(absl::string_view path) const override { return path == "/public"; }
  kj::Maybe<kj::Promise<void>> Handle(HttpRequest& r) override {
    if (r.path == "/hello" || r.path == "/public") {
      ++handled;
      return server().Send(*r.response, 200, "OK",
                           absl::StrCat(r.path, " ", r.authenticated ? "in" : "out", " ", r.query, "\n"),
                           "text/plain");
    }
    if (r.path == "/echo") {
      return server().ReadBody(r, 16).then([this, &r](kj::Maybe<std::string> body) -> kj::Promise<void> {
        KJ_IF_MAYBE(b, body) { return server().Send(*r.response, 200, "OK", *b, "text/plain"); }
        return kj::READY_NOW;  // answered 413 already
      });
    }
    return nullptr;
  }
  int handled = 0;
};

Task<absl::StatusOr<std::unique_ptr<MetricsServer>>> Start(const Registry& registry, TestRoutes* routes) {
  MetricsServerOptions o;
  o.bearer_token = kToken;
  o.token_cookie = "session";
  o.routes = routes;
  return MetricsServer::Start(transports::DefaultTransports(), registry, std::move(o));
}

PICOS_CORO_TEST(HttpRoutes, ServeBesideMetricsUnderTheSameToken) {
  Registry registry;
  TestRoutes routes;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = co_await Start(registry, &routes);
  CO_ASSERT_OK(server);
  const std::string uri = (*server)->address();
  const std::string bearer = absl::StrCat("Authorization: Bearer ", kToken, "\r\n");

  absl::StatusOr<std::string> r = co_await HttpExchange(uri, HttpRequestText("GET", "/hello?x=1", bearer));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(HttpBody(*r), "/hello in x=1\n");
  // The cookie named by token_cookie is as good as the bearer token.
  r = co_await HttpExchange(uri, HttpRequestText("GET", "/hello", absl::StrCat("Cookie: a=b; session=", kToken, "\r\n")));
  CO_ASSERT_OK(r);
  EXPECT_EQ(HttpBody(*r), "/hello in \n");
  for (const std::string& wrong : {std::string(), std::string("Cookie: session=nope\r\n"),
                                   absl::StrCat("Cookie: sessionx=", kToken, "\r\n")}) {
    r = co_await HttpExchange(uri, HttpRequestText("GET", "/hello", wrong));
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, StartsWith("HTTP/1.1 401")) << wrong;
  }
  // A public path is reached without the token, and knows it.
  r = co_await HttpExchange(uri, HttpRequestText("GET", "/public"));
  CO_ASSERT_OK(r);
  EXPECT_EQ(HttpBody(*r), "/public out \n");
  // /metrics stays the server's, and other paths are 404.
  r = co_await HttpExchange(uri, HttpRequestText("GET", "/metrics", bearer));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
  r = co_await HttpExchange(uri, HttpRequestText("GET", "/other", bearer));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 404"));
  EXPECT_EQ(routes.handled, 3);
  EXPECT_EQ((*server)->stats().routed, 3u);

  // Bodies: within the bound, over it by Content-Length, over it chunked.
  r = co_await HttpExchange(uri, HttpRequestText("POST", "/echo", bearer, "0123456789"));
  CO_ASSERT_OK(r);
  EXPECT_EQ(HttpBody(*r), "0123456789");
  r = co_await HttpExchange(uri, HttpRequestText("POST", "/echo", bearer, std::string(17, 'x')));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 413"));
  r = co_await HttpExchange(uri, absl::StrCat("POST /echo HTTP/1.1\r\nHost: x\r\n", bearer,
                                              "Transfer-Encoding: chunked\r\n\r\n10\r\n", std::string(16, 'y'),
                                              "\r\n1\r\nz\r\n0\r\n\r\n"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 413"));
  EXPECT_GE((*server)->stats().refused, 5u);
}

PICOS_CORO_TEST(HttpRoutes, ABadCookieNameIsRefused) {
  Registry registry;
  MetricsServerOptions o;
  o.token_cookie = "semi;colon";
  absl::StatusOr<std::unique_ptr<MetricsServer>> s =
      co_await MetricsServer::Start(transports::DefaultTransports(), registry, std::move(o));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace picos::metrics
