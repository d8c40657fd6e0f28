#include "metrics/http_server.h"

#include <kj/compat/http.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task_group.h"
#include "core/remote/kj_on_uv_internal.h"
#include "metrics/http_routes_internal.h"

namespace picos::metrics {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kPlain[] = "text/plain; charset=utf-8";
constexpr size_t kMaxTokenBytes = 4096;
constexpr size_t kMaxCookieNameBytes = 64;

bool ConstantTimeEquals(kj::StringPtr a, const std::string& b) {
  // The length is not secret (a token's length says little); the bytes are.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < b.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

kj::Duration ToKj(absl::Duration d) { return absl::ToInt64Nanoseconds(d) * kj::NANOSECONDS; }

// Whether a listen URI names a loopback address or a local socket.
bool IsLocal(const std::string& uri) {
  if (absl::StartsWith(uri, "unix://")) return true;
  absl::string_view rest = uri;
  size_t scheme = rest.find("://");
  if (scheme == absl::string_view::npos) return false;
  rest.remove_prefix(scheme + 3);
  return absl::StartsWith(rest, "127.") || absl::StartsWith(rest, "[::1]") ||
         absl::StartsWith(rest, "localhost:");
}

}  // namespace

absl::Status ValidateBearerToken(const std::string& token) {
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the bearer token is longer than ", kMaxTokenBytes, " bytes"));
  }
  for (char c : token) {
    if (c < '!' || c > '~') {
      return absl::InvalidArgumentError(
          "the bearer token must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

struct MetricsServer::Impl final : public HttpServerApi {
  class HeadBound;
  // A connection: its task, whether it had a request answered (those are
  // the last to be closed for a newer connection), when it is closed if
  // no complete request head arrives first, and whether it became a
  // WebSocket (no deadline then: its route ends it).
  struct Conn {
    TaskRef task;
    bool answered = false;
    bool upgraded = false;
    HeadBound* bound = nullptr;
    kj::TimePoint deadline = kj::origin<kj::TimePoint>();
  };

  // The client's bytes on their way to kj's parser, watched: a run of more
  // than max_header_bytes without the blank line that ends a request head
  // is answered 431 here and the connection ended (kj 0.9.2's own bound is
  // 128 KiB, answered with nothing); each complete head pushes the
  // connection's deadline back.
  class HeadBound final : public kj::AsyncIoStream {
   public:
    HeadBound(Impl* impl, uint64_t id, kj::Own<kj::AsyncIoStream> inner)
        : impl_(impl), id_(id), inner_(kj::mv(inner)) {}

    kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
      if (refused_) return size_t{0};
      if (passthrough_) return inner_->tryRead(buffer, min_bytes, max_bytes);
      return inner_->tryRead(buffer, min_bytes, max_bytes)
          .then([this, buffer](size_t n) -> kj::Promise<size_t> {
            if (passthrough_) return n;
            const char* p = static_cast<const char*>(buffer);
            bool over = false;
            for (size_t i = 0; i < n && !over; ++i) {
              const char c = p[i];
              if (c == '\r') continue;
              if (c == '\n' && newline_) {
                run_ = 0;
                impl_->HeadArrived(id_);
              } else {
                over = ++run_ > impl_->options.max_header_bytes;
              }
              newline_ = c == '\n';
            }
            if (!over) return n;
            refused_ = true;
            ++impl_->stats.refused;
            PICOS_LOG_LIMITED(warn, "metrics http: refused a request head over {} bytes",
                              impl_->options.max_header_bytes);
            static constexpr char kAnswer[] =
                "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\n\r\n"
                "request headers are too large\r\n\r\n";
            return inner_->write(kAnswer, sizeof kAnswer - 1).then([] { return size_t{0}; });
          });
    }
    kj::Promise<void> write(const void* buffer, size_t size) override {
      if (refused_) return kj::READY_NOW;  // kj's answer to a head we cut short
      return inner_->write(buffer, size);
    }
    kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
      if (refused_) return kj::READY_NOW;
      return inner_->write(pieces);
    }
    kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
    void shutdownWrite() override { inner_->shutdownWrite(); }
    void abortRead() override { inner_->abortRead(); }
    // A WebSocket's frames are not request heads.
    void PassThrough() { passthrough_ = true; }

   private:
    Impl* impl_;
    uint64_t id_;
    kj::Own<kj::AsyncIoStream> inner_;
    size_t run_ = 0;        // bytes since the last blank line
    bool newline_ = false;  // the last byte (CRs aside) was a newline
    bool refused_ = false;
    bool passthrough_ = false;
  };

  // kj's answer to what its parser refuses: the status it suggests, counted
  // and logged.
  class ErrorHandler final : public kj::HttpServerErrorHandler {
   public:
    explicit ErrorHandler(Impl* impl) : impl_(impl) {}
    kj::Promise<void> handleClientProtocolError(kj::HttpHeaders::ProtocolError error,
                                                kj::HttpService::Response& response) override {
      ++impl_->stats.refused;
      PICOS_LOG_LIMITED(warn, "metrics http: refused a request: {} {} ({})", error.statusCode,
                        error.statusMessage.cStr(), error.description.cStr());
      return impl_->Send(response, error.statusCode, error.statusMessage,
                         absl::StrCat(error.description.cStr(), "\n"), kPlain);
    }

   private:
    Impl* impl_;
  };

  // One per connection, made by kj's server when the connection starts.
  class ConnService final : public kj::HttpService {
   public:
    ConnService(Impl* impl, uint64_t id) : impl_(impl), id_(id) {}
    kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                              const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                              Response& response) override {
      return impl_->Handle(id_, method, url, headers, body, response);
    }

   private:
    Impl* impl_;
    uint64_t id_;
  };

  Impl(const Registry& registry, MetricsServerOptions options)
      : registry(&registry),
        options(std::move(options)),
        kj(std::make_unique<::picos::internal::KjOnUv>(ThisScheduler())),
        error_handler(this),
        tasks(ThisScheduler(), {.name = "metrics-http"}) {
    kj::HttpHeaderTable::Builder builder;
    authorization = builder.add("Authorization");
    www_authenticate = builder.add("WWW-Authenticate");
    allow = builder.add("Allow");
    cookie = builder.add("Cookie");
    if (this->options.routes != nullptr) this->options.routes->Attach(*this, builder);
    table = builder.build();
    kj::HttpServerSettings settings;
    settings.headerTimeout = ToKj(this->options.request_timeout);
    settings.pipelineTimeout = ToKj(this->options.idle_timeout);
    settings.errorHandler = error_handler;
    server = kj::heap<kj::HttpServer>(
        kj->timer(), *table,
        [this](kj::AsyncIoStream& stream) -> kj::Own<kj::HttpService> {
          auto it = by_stream.find(&stream);
          return kj::heap<ConnService>(this, it == by_stream.end() ? 0 : it->second);
        },
        settings);
  }

  // HttpServerApi.
  const kj::HttpHeaderTable& header_table() const override { return *table; }

  kj::Promise<void> Send(kj::HttpService::Response& response, unsigned code, kj::StringPtr text,
                         std::string body, kj::StringPtr content_type, HttpHeaderList extra = {},
                         bool head = false) override {
    kj::HttpHeaders h(*table);
    h.set(kj::HttpHeaderId::CONTENT_TYPE, content_type);
    // The strings must outlive `h` only until send() copied the head.
    for (const auto& [id, value] : extra) h.set(id, kj::StringPtr(value.c_str()));
    kj::Own<kj::AsyncOutputStream> out = response.send(code, text, h, uint64_t{body.size()});
    if (head || body.empty()) return kj::READY_NOW;
    kj::String bytes = kj::heapString(body.data(), body.size());
    kj::Promise<void> written = out->write(bytes.begin(), bytes.size());
    return written.attach(kj::mv(out), kj::mv(bytes));
  }

  kj::Promise<void> Refuse(kj::HttpService::Response& response, unsigned code, kj::StringPtr text,
                           std::string why, HttpHeaderList extra = {}) override {
    ++stats.refused;
    PICOS_LOG_LIMITED(info, "metrics http: {} {}: {}", code, text.cStr(), why);
    return Send(response, code, text, why + "\n", kPlain, std::move(extra));
  }

  kj::Promise<kj::Maybe<std::string>> ReadBody(HttpRequest& request, size_t max_bytes) override {
    kj::HttpService::Response& response = *request.response;
    KJ_IF_MAYBE(length, request.headers->get(kj::HttpHeaderId::CONTENT_LENGTH)) {
      uint64_t n = 0;
      if (absl::SimpleAtoi(absl::string_view(length->cStr(), length->size()), &n) && n > max_bytes) {
        return Refuse(response, 413, "Payload Too Large",
                      absl::StrCat("the body is over ", max_bytes, " bytes"))
            .then([]() -> kj::Maybe<std::string> { return nullptr; });
      }
    }
    // One byte more than allowed tells a chunked body that is too long.
    return request.body->readAllText(max_bytes + 1)
        .then(
            [this, &response, max_bytes](kj::String text) -> kj::Promise<kj::Maybe<std::string>> {
              if (text.size() > max_bytes) {
                return Refuse(response, 413, "Payload Too Large",
                              absl::StrCat("the body is over ", max_bytes, " bytes"))
                    .then([]() -> kj::Maybe<std::string> { return nullptr; });
              }
              return kj::Maybe<std::string>(std::string(text.cStr(), text.size()));
            },
            [this, &response, max_bytes](kj::Exception&&) -> kj::Promise<kj::Maybe<std::string>> {
              // kj's limit throws, or the body broke off.
              return Refuse(response, 413, "Payload Too Large",
                            absl::StrCat("the body is over ", max_bytes, " bytes or broke off"))
                  .then([]() -> kj::Maybe<std::string> { return nullptr; });
            });
  }

  void Upgraded(uint64_t id) override {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    it->second.upgraded = true;
    if (it->second.bound != nullptr) it->second.bound->PassThrough();
  }

  kj::Promise<void> AfterDelay(kj::Duration delay) override {
    return kj->AfterDelay(absl::Nanoseconds(delay / kj::NANOSECONDS));
  }

  // Whether the request carries the token: as a bearer token, or as the
  // token cookie.
  bool Authenticated(const kj::HttpHeaders& headers) const {
    if (options.bearer_token.empty()) return true;
    KJ_IF_MAYBE(auth, headers.get(authorization)) {
      absl::string_view value(auth->cStr(), auth->size());
      if (absl::ConsumePrefix(&value, "Bearer ") &&
          ConstantTimeEquals(kj::StringPtr(value.data(), value.size()), options.bearer_token)) {
        return true;
      }
    }
    if (options.token_cookie.empty()) return false;
    KJ_IF_MAYBE(c, headers.get(cookie)) {
      for (absl::string_view part : absl::StrSplit(absl::string_view(c->cStr(), c->size()), ';')) {
        part = absl::StripAsciiWhitespace(part);
        if (absl::ConsumePrefix(&part, options.token_cookie) && absl::ConsumePrefix(&part, "=") &&
            ConstantTimeEquals(kj::StringPtr(part.data(), part.size()), options.bearer_token)) {
          return true;
        }
      }
    }
    return false;
  }

  kj::Promise<void> Handle(uint64_t id, kj::HttpMethod method, kj::StringPtr url,
                           const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                           kj::HttpService::Response& response) {
    absl::string_view path(url.cStr(), url.size());
    absl::string_view query;
    if (size_t q = path.find('?'); q != absl::string_view::npos) {
      query = path.substr(q + 1);
      path = path.substr(0, q);
    }
    const bool authenticated = Authenticated(headers);
    const bool is_public = options.routes != nullptr && path != "/metrics" &&
                           options.routes->IsPublic(path);
    if (!authenticated && !is_public) {
      const bool sent = headers.get(authorization) != nullptr;
      return Refuse(response, 401, "Unauthorized",
                    sent ? "wrong bearer token" : "a bearer token is required",
                    {{www_authenticate, "Bearer"}});
    }
    auto conn = conns.find(id);
    if (path != "/metrics") {
      if (options.routes != nullptr) {
        // On the heap, held by the route's promise: a route may read the
        // request after a body or a WebSocket message arrives.
        auto request = kj::heap<HttpRequest>();
        request->connection = id;
        request->method = method;
        request->path = path;
        request->query = query;
        request->headers = &headers;
        request->body = &body;
        request->response = &response;
        request->authenticated = authenticated;
        KJ_IF_MAYBE(served, options.routes->Handle(*request)) {
          ++stats.routed;
          if (conn != conns.end()) conn->second.answered = true;
          Touch(id, options.request_timeout + options.idle_timeout);
          return served->attach(kj::mv(request));
        }
      }
      return Refuse(response, 404, "Not Found", "metrics are at /metrics");
    }
    if (method != kj::HttpMethod::GET && method != kj::HttpMethod::HEAD) {
      return Refuse(response, 405, "Method Not Allowed", "only GET and HEAD",
                    {{allow, "GET, HEAD"}});
    }
    if (conn != conns.end()) conn->second.answered = true;
    ++stats.scrapes;
    Touch(id, options.idle_timeout);
    return Send(response, 200, "OK", registry->Exposition(), kContentType, {},
                method == kj::HttpMethod::HEAD);
  }

  // A complete request head arrived on connection `id`: it has
  // request_timeout to be answered and then idle_timeout for the next one.
  void HeadArrived(uint64_t id) { Touch(id, options.request_timeout + options.idle_timeout); }

  void Touch(uint64_t id, absl::Duration d) {
    auto it = conns.find(id);
    if (it != conns.end()) it->second.deadline = kj->timer().now() + ToKj(d);
  }

  // Resolves when connection `id` passed its deadline (or is gone): what
  // ends a silent or idle connection. kj's own header timeout is not relied
  // on: its timer is armed from libuv only by KjOnUv::AfterDelay.
  kj::Promise<void> Watch(uint64_t id) {
    auto it = conns.find(id);
    if (it == conns.end()) return kj::READY_NOW;
    if (it->second.upgraded) return kj::NEVER_DONE;  // its route ends it
    const kj::TimePoint now = kj->timer().now();
    if (it->second.deadline <= now) {
      PICOS_LOG_LIMITED(info, "metrics http: closed a connection that sent no request in time");
      return kj::READY_NOW;
    }
    const int64_t left_ns = (it->second.deadline - now) / kj::NANOSECONDS;
    return kj->AfterDelay(absl::Nanoseconds(left_ns) + absl::Milliseconds(1))
        .then([this, id] { return Watch(id); });
  }

  // Closes the oldest connection that has had no answer (a client that
  // connected and said nothing), else the oldest.
  void EvictOne() {
    auto victim = conns.begin();
    for (auto it = conns.begin(); it != conns.end(); ++it) {
      if (!it->second.answered) {
        victim = it;
        break;
      }
    }
    if (victim == conns.end()) return;
    victim->second.task.Terminate();
    conns.erase(victim);
    ++stats.connections_evicted;
    PICOS_LOG_LIMITED(warn, "metrics http: {} connections open: closed the oldest for a new one",
                      options.max_connections);
  }

  Task<absl::Status> Serve(uint64_t id, std::unique_ptr<Stream> stream) {
    kj::Own<HeadBound> bound = kj::heap<HeadBound>(
        this, id, kj::heap<::picos::internal::KjStream>(std::move(stream)));
    if (auto it = conns.find(id); it != conns.end()) it->second.bound = bound.get();
    kj::Own<kj::AsyncIoStream> io = kj::mv(bound);
    kj::AsyncIoStream* key = io.get();
    by_stream[key] = id;
    Touch(id, options.request_timeout);
    kj::Promise<void> served = server->listenHttp(kj::mv(io)).exclusiveJoin(Watch(id));
    absl::Status s = co_await ::picos::internal::AwaitKjVoid(kj::mv(served));
    by_stream.erase(key);
    conns.erase(id);
    if (!s.ok() && s.code() != absl::StatusCode::kCancelled) {
      PICOS_LOG(debug, "metrics http: a connection ended: {}", s.ToString());
    }
    co_return absl::OkStatus();
  }

  Task<absl::Status> AcceptLoop() {
    for (;;) {
      absl::StatusOr<std::unique_ptr<Stream>> stream = co_await listener->Accept();
      if (!stream.ok()) {
        if (stream.status().code() == absl::StatusCode::kFailedPrecondition ||
            stream.status().code() == absl::StatusCode::kCancelled) {
          co_return absl::OkStatus();
        }
        // Out of descriptors, say: wait a little rather than spin.
        PICOS_LOG_LIMITED(warn, "metrics http: accept failed: {}", stream.status().ToString());
        absl::Status slept = co_await Sleep(absl::Milliseconds(50));
        if (!slept.ok()) co_return absl::OkStatus();
        continue;
      }
      while (conns.size() >= options.max_connections) EvictOne();
      const uint64_t id = ++next_id;
      ++stats.connections;
      conns[id] = Conn{};
      absl::StatusOr<TaskRef> task = tasks.Spawn(&Impl::Serve, this, id, std::move(*stream));
      if (!task.ok()) {
        conns.erase(id);
        continue;
      }
      auto it = conns.find(id);
      if (it != conns.end()) it->second.task = *task;
    }
  }

  const Registry* registry;
  MetricsServerOptions options;
  std::unique_ptr<::picos::internal::KjOnUv> kj;  // before every kj object: destroyed last
  kj::Own<kj::HttpHeaderTable> table;
  kj::HttpHeaderId authorization = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId www_authenticate = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId allow = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId cookie = kj::HttpHeaderId::HOST;
  ErrorHandler error_handler;
  kj::Own<kj::HttpServer> server;
  std::unique_ptr<Listener> listener;
  std::map<uint64_t, Conn> conns;  // by id: the oldest first
  absl::flat_hash_map<kj::AsyncIoStream*, uint64_t> by_stream;
  uint64_t next_id = 0;
  MetricsServerStats stats;
  TaskGroup tasks;  // last: its tasks end first, while all of the above exists
};

Task<absl::StatusOr<std::unique_ptr<MetricsServer>>> MetricsServer::Start(
    const TransportRegistry& transports, const Registry& registry, MetricsServerOptions options) {
  PICOS_CO_RETURN_IF_ERROR(ValidateBearerToken(options.bearer_token));
  if (options.token_cookie.size() > kMaxCookieNameBytes ||
      !std::all_of(options.token_cookie.begin(), options.token_cookie.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      })) {
    co_return absl::InvalidArgumentError("token_cookie must be at most 64 bytes of [A-Za-z0-9_-]");
  }
  if (options.max_connections < 1 || options.max_connections > 65536) {
    co_return absl::InvalidArgumentError("max_connections must be in 1..65536");
  }
  if (options.max_header_bytes < 1024 || options.max_header_bytes > 65536) {
    co_return absl::InvalidArgumentError("max_header_bytes must be in 1024..65536");
  }
  if (options.request_timeout <= absl::ZeroDuration() ||
      options.idle_timeout <= absl::ZeroDuration()) {
    co_return absl::InvalidArgumentError("request_timeout and idle_timeout must be positive");
  }
  if (!IsLocal(options.listen) && options.bearer_token.empty()) {
    PICOS_LOG(warn, "metrics http: serving {} beyond this host without a bearer token",
              options.listen);
  }
  std::string listen = options.listen;
  absl::StatusOr<std::unique_ptr<Listener>> listener = co_await transports.Listen(listen);
  if (!listener.ok()) co_return listener.status();
  auto impl = std::make_unique<Impl>(registry, std::move(options));
  impl->listener = std::move(*listener);
  absl::StatusOr<TaskRef> loop = impl->tasks.Spawn(&Impl::AcceptLoop, impl.get());
  if (!loop.ok()) co_return loop.status();
  PICOS_LOG(info, "metrics http: serving /metrics at {}", impl->listener->address());
  co_return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

Task<absl::StatusOr<std::unique_ptr<MetricsServer>>> MetricsServer::Start(
    const TransportRegistry& transports, const Registry& registry) {
  MetricsServerOptions options;
  return Start(transports, registry, std::move(options));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() {
  if (impl_ && impl_->listener) impl_->listener->Close();
}

std::string MetricsServer::address() const { return impl_->listener->address(); }

std::string MetricsServer::url() const {
  std::string a = address();
  if (!absl::StartsWith(a, "tcp://")) return "";
  return absl::StrCat("http://", a.substr(6), "/metrics");
}

size_t MetricsServer::open_connections() const { return impl_->conns.size(); }

MetricsServerStats MetricsServer::stats() const { return impl_->stats; }

}  // namespace picos::metrics
