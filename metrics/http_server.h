// /metrics over HTTP: a registry's exposition (metrics/metrics.h) served to
// Prometheus by kj's HTTP server (kj/compat/http.h) on kj's event loop run
// by the scheduler's libuv loop (core/remote/kj_on_uv_internal.h), over any
// picos stream transport.
//
//   picos::metrics::Registry registry;
//   picos::metrics::MetricsServerOptions options;
//   options.listen = "tcp://127.0.0.1:9464";
//   options.bearer_token = token;
//   absl::StatusOr<std::unique_ptr<picos::metrics::MetricsServer>> server =
//       co_await picos::metrics::MetricsServer::Start(
//           picos::transports::DefaultTransports(), registry, std::move(options));
//   // curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9464/metrics
//
// What it answers:
//   GET or HEAD /metrics (any query string)  200, text/plain; version=0.0.4
//   another path                             404
//   another method on /metrics               405, with Allow: GET, HEAD
//   a missing or wrong bearer token          401, with WWW-Authenticate
//   a request head over max_header_bytes     431, and the connection closed
//   what kj's parser refuses (a malformed request line or header)
//                                            400 (or the status kj chose)
// A client that connects and sends nothing (or dribbles a head) holds a
// connection for request_timeout at most, an idle kept-alive one for
// idle_timeout. At most max_connections are open at once;
// another closes the oldest connection that has not yet had a request
// answered (else the oldest), so 1,000 idle connections never lock a
// scraper out. Every refusal is a log line (rate-limited).
//
// Binds loopback unless told otherwise: the default listen URI is
// tcp://127.0.0.1:0, and a non-loopback address without a bearer token is
// logged as a warning (metrics name peers and functions).
//
// Other paths: MetricsServerOptions::routes (metrics/http_routes_internal.h)
// serves more paths on the same port, under the same limits and token (the
// dashboard, dashboard/dashboard.h); their answers are theirs, their
// refusals counted and logged as the server's.
//
// Threads: the server belongs to the scheduler of the task that starts it;
// the exposition (and the registry's callbacks) run on that thread. Destroy
// it there. It runs kj's event loop on that thread for its life: a thread has
// at most one kj loop, so no other user of kj_on_uv_internal.h may run on
// the same scheduler meanwhile.
#ifndef PICOS_METRICS_HTTP_SERVER_H_
#define PICOS_METRICS_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "metrics/metrics.h"

namespace picos::metrics {

class HttpRoutes;  // metrics/http_routes_internal.h

struct MetricsServerOptions {
  // Where to listen: any stream transport URI (tcp://, unix://, tls://).
  std::string listen = "tcp://127.0.0.1:0";
  // When not empty, every request must carry "Authorization: Bearer <token>"
  // (compared in constant time). At most 4096 bytes of [!-~] (printable
  // ASCII, no space).
  std::string bearer_token;
  // When not empty (and bearer_token is set), the token may come instead as
  // the cookie of this name (a browser's login, dashboard/dashboard.h). At
  // most 64 bytes of [A-Za-z0-9_-].
  std::string token_cookie;
  // More paths served beside /metrics (metrics/http_routes_internal.h);
  // must outlive the server. Null: only /metrics.
  HttpRoutes* routes = nullptr;
  // Most connections open at once (1..65536).
  size_t max_connections = 256;
  // A connection is closed when no complete request head arrived within
  // request_timeout of its start, or within idle_timeout of its last answer
  // (a kept-alive connection). Partial heads do not extend either.
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(30);
  // Longest request head (request line and headers), 1 KiB..64 KiB; a
  // longer one is answered 431 and the connection closed.
  size_t max_header_bytes = 16 << 10;
};

// What the server did so far: what tests and the server's own metrics read.
struct MetricsServerStats {
  uint64_t connections = 0;          // accepted
  uint64_t connections_evicted = 0;  // closed for a newer one (max_connections)
  uint64_t scrapes = 0;              // 200 answers
  uint64_t refused = 0;              // 4xx answers
  uint64_t routed = 0;               // requests handed to MetricsServerOptions::routes
};

class MetricsServer {
 public:
  // Listens on options.listen and serves `registry`, which must outlive the
  // server. kInvalidArgument for bad options, the transport's error for a
  // listen that fails. Suspends.
  // (No default argument for `options`: g++ 12 copies a braced default
  // argument of a coroutine bitwise, and a moved std::string then frees the
  // caller's stack. Build the options in a variable first.)
  static Task<absl::StatusOr<std::unique_ptr<MetricsServer>>> Start(
      const TransportRegistry& transports, const Registry& registry,
      MetricsServerOptions options);
  static Task<absl::StatusOr<std::unique_ptr<MetricsServer>>> Start(
      const TransportRegistry& transports, const Registry& registry);

  // Closes the listener and every connection at once.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The address bound, as a URI ("tcp://127.0.0.1:40312").
  std::string address() const;
  // The "http://host:port/metrics" of a tcp:// address; "" for other
  // transports.
  std::string url() const;
  // Connections open now.
  size_t open_connections() const;
  MetricsServerStats stats() const;

  struct Impl;

 private:
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks a bearer token as MetricsServerOptions wants it.
absl::Status ValidateBearerToken(const std::string& token);

}  // namespace picos::metrics

#endif  // PICOS_METRICS_HTTP_SERVER_H_
