// A client of picos's HTTP servers for tests (metrics/http_server.h and what
// it serves, dashboard/dashboard.h): raw HTTP/1.1 over any picos stream
// transport, so a test sends exactly the bytes it means, malformed ones
// too, and then WebSocket frames.
//
//   absl::StatusOr<std::string> r = co_await picos::testing::HttpExchange(
//       uri, picos::testing::HttpRequestText("GET", "/metrics"));
//   EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
//   EXPECT_THAT(picos::testing::HttpBody(*r), HasSubstr("..."));
//
// Every read is bounded by 60 s (only a hang reaches it). Threads: the
// scheduler thread of the task that opens it.
#ifndef PICOS_TESTING_HTTP_TEST_CLIENT_H_
#define PICOS_TESTING_HTTP_TEST_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/stream.h"
#include "core/kernel/task.h"

namespace picos::testing {

// One connection speaking HTTP/1.1 (and then WebSocket frames).
class HttpTestClient {
 public:
  static Task<absl::StatusOr<HttpTestClient>> Open(std::string uri);

  Task<absl::Status> Send(std::string bytes);
  // One response: its head and its Content-Length body.
  Task<absl::StatusOr<std::string>> Response();
  // The next WebSocket text message from the server (unmasked frames);
  // kUnavailable when the server closes.
  Task<absl::StatusOr<std::string>> Message();
  // Reads until the server closes (bounded): what a dropped client sees.
  Task<absl::Status> UntilClosed();

 private:
  Task<absl::Status> More();

  std::unique_ptr<Stream> stream_;
  std::string buf_;
};

// A request's bytes; a Content-Length for a body (and for any POST).
std::string HttpRequestText(const std::string& method, const std::string& path,
                            const std::string& headers = "", const std::string& body = "");
// The headers a WebSocket upgrade needs (the key is RFC 6455's example).
std::string WebSocketUpgradeHeaders();
// One request on a new connection; its response. Suspends.
Task<absl::StatusOr<std::string>> HttpExchange(std::string uri, std::string request);
// The body of a response ("" without one).
std::string HttpBody(const std::string& response);

}  // namespace picos::testing

#endif  // PICOS_TESTING_HTTP_TEST_CLIENT_H_
