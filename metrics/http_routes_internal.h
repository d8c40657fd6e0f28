// Extra paths on the /metrics server (metrics/http_server.h): what lets one
// server, one port and one set of limits serve /metrics and a web
// application beside it (dashboard/), instead of a second kj HTTP server,
// which a thread could not run anyway (one kj loop per thread).
//
//   class MyRoutes : public picos::metrics::HttpRoutes {
//     kj::Maybe<kj::Promise<void>> Handle(picos::metrics::HttpRequest& r) override {
//       if (r.path != "/hello") return nullptr;          // not ours: 404
//       return server().Send(r.response, 200, "OK", "hi\n", "text/plain");
//     }
//   };
//   MyRoutes routes;
//   options.routes = &routes;   // MetricsServerOptions; outlives the server
//
// The server does, for every request, before any route sees it: the
// connection limits and timeouts, the 431 for a long head, the token check
// (Authorization: Bearer, or the cookie named by
// MetricsServerOptions::token_cookie), and the 401 for a missing or wrong
// token unless the route calls the path public. /metrics stays the
// server's own. Every refusal a route makes through Refuse is counted and
// logged as the server's own are.
//
// kj types appear here, so this header is internal: for picos packages
// that adapt kj (tools/checks/layering.py lists who may include it).
// Threads: everything runs on the server's scheduler thread, inside kj's
// event loop there (core/remote/kj_on_uv_internal.h).
#ifndef PICOS_METRICS_HTTP_ROUTES_INTERNAL_H_
#define PICOS_METRICS_HTTP_ROUTES_INTERNAL_H_

#include <kj/compat/http.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace picos::metrics {

// Extra headers of an answer.
using HttpHeaderList = std::vector<std::pair<kj::HttpHeaderId, std::string>>;

// One request, as a route sees it. Valid until the route's promise ends
// (the server attaches it to that promise).
struct HttpRequest {
  uint64_t connection = 0;  // the server's id of the connection
  kj::HttpMethod method = kj::HttpMethod::GET;
  absl::string_view path;   // without the query string
  absl::string_view query;  // after '?', or ""
  const kj::HttpHeaders* headers = nullptr;
  kj::AsyncInputStream* body = nullptr;
  kj::HttpService::Response* response = nullptr;
  // The request carried the server's token (always true without one).
  bool authenticated = false;
};

// What the server offers its routes.
class HttpServerApi {
 public:
  virtual ~HttpServerApi() noexcept(false) = default;  // kj members may throw
  // The server's header table (with the ids the routes added).
  virtual const kj::HttpHeaderTable& header_table() const = 0;
  // Sends a whole answer. HEAD requests get the head only when `head`.
  virtual kj::Promise<void> Send(kj::HttpService::Response& response, unsigned code,
                                 kj::StringPtr text, std::string body,
                                 kj::StringPtr content_type, HttpHeaderList extra = {},
                                 bool head = false) = 0;
  // Sends a refusal (4xx/5xx): counted in MetricsServerStats::refused and
  // logged (rate-limited) with `why`, which is also the body.
  virtual kj::Promise<void> Refuse(kj::HttpService::Response& response, unsigned code,
                                   kj::StringPtr text, std::string why,
                                   HttpHeaderList extra = {}) = 0;
  // Reads the request's body, at most `max_bytes`: more (by Content-Length
  // or by the bytes sent) is answered 413 here and gives null, as does a
  // body that breaks off.
  virtual kj::Promise<kj::Maybe<std::string>> ReadBody(HttpRequest& request,
                                                       size_t max_bytes) = 0;
  // The connection carries a WebSocket from now on: its request and idle
  // timeouts no longer apply (the route's promise holds it open and ends
  // it), and its bytes are no longer watched as request heads.
  virtual void Upgraded(uint64_t connection) = 0;
  // kj's timer on this loop, armed from libuv (kj_on_uv_internal.h).
  virtual kj::Promise<void> AfterDelay(kj::Duration delay) = 0;
};

// A set of paths served beside /metrics. Owned by the caller; must outlive
// the server.
class HttpRoutes {
 public:
  virtual ~HttpRoutes() noexcept(false) = default;
  // Called once as the server starts, before any request: the header names
  // the routes read or write are added to `headers`; `server` stays valid
  // for the server's life. An override calls HttpRoutes::Attach too.
  virtual void Attach(HttpServerApi& server, kj::HttpHeaderTable::Builder& headers) {
    (void)headers;
    server_ = &server;
  }
  // Paths a request may reach without the token (a login page); the route
  // then sees HttpRequest::authenticated false.
  virtual bool IsPublic(absl::string_view path) const {
    (void)path;
    return false;
  }
  // Serves the request, or null when the path is not one of these routes
  // (the server answers 404).
  virtual kj::Maybe<kj::Promise<void>> Handle(HttpRequest& request) = 0;

 protected:
  HttpServerApi& server() const { return *server_; }

 private:
  HttpServerApi* server_ = nullptr;
};

}  // namespace picos::metrics

#endif  // PICOS_METRICS_HTTP_ROUTES_INTERNAL_H_
