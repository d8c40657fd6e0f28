#include "dashboard/dashboard.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <fcntl.h>
#include <kj/compat/http.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <deque>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task_group.h"
#include "dashboard/web_assets.h"
#include "metrics/http_routes_internal.h"
#include "metrics/http_server.h"

namespace picos::dashboard {
namespace {

constexpr char kCookie[] = "picos_dashboard";
constexpr char kJson[] = "application/json; charset=utf-8";
constexpr char kPlain[] = "text/plain; charset=utf-8";
// A page sends nothing but pings over its WebSocket.
constexpr size_t kMaxWsMessageBytes = 1024;

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<uint8_t*>(raw.data()), raw.size()) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool SameBytes(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The value of `key` in a query string or a form body (no %-decoding: a
// token is [!-~] and the page sends it as is; '%' and '+' are refused by
// the comparison).
std::string FormField(absl::string_view form, absl::string_view key) {
  for (absl::string_view part : absl::StrSplit(form, '&')) {
    if (absl::ConsumePrefix(&part, key) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

absl::Status WriteTokenFile(const std::string& path, const std::string& token) {
  ::unlink(path.c_str());  // O_EXCL below: never write through someone's link
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  const std::string line = token + "\n";
  const ssize_t n = ::write(fd, line.data(), line.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return absl::ErrnoToStatus(err, absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace

struct Dashboard::Impl final : public metrics::HttpRoutes {
  // One page's WebSocket: the deltas waiting to be sent (bounded), a
  // fulfiller that wakes its send loop, and one that drops it.
  struct Client {
    Impl* impl;
    uint64_t id;
    kj::Own<kj::WebSocket> ws;
    std::deque<std::string> queue;
    kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> wake;
    kj::Own<kj::PromiseFulfiller<void>> drop;
    ~Client() { impl->clients.erase(id); }
  };

  Impl(DashboardOptions o)
      : options(std::move(o)), model(options.limits), tasks(ThisScheduler(), {.name = "dashboard"}) {}

  ~Impl() noexcept(false) {
    server.reset();  // its connections (and their Clients) go first
    if (!token_file.empty()) ::unlink(token_file.c_str());  // the token dies with the dashboard
  }

  // HttpRoutes.
  void Attach(metrics::HttpServerApi& api, kj::HttpHeaderTable::Builder& headers) override {
    HttpRoutes::Attach(api, headers);
    set_cookie = headers.add("Set-Cookie");
    location = headers.add("Location");
    csrf_header = headers.add("X-CSRF-Token");
    origin = headers.add("Origin");
    cache_control = headers.add("Cache-Control");
    csp = headers.add("Content-Security-Policy");
    frame_options = headers.add("X-Frame-Options");
  }

  metrics::HttpServerApi& http() const { return HttpRoutes::server(); }

  // The login form and its style; "/" itself sends to the form.
  bool IsPublic(absl::string_view path) const override {
    return path == "/" || path == "/login" || path == "/style.css";
  }

  metrics::HttpHeaderList PageHeaders() const {
    return {{cache_control, "no-store"},
            {csp,
             "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
             "frame-ancestors 'none'"},
            {frame_options, "DENY"}};
  }

  kj::Promise<void> Redirect(metrics::HttpRequest& r, const char* to,
                             metrics::HttpHeaderList extra = {}) {
    extra.emplace_back(location, to);
    extra.emplace_back(cache_control, "no-store");
    return http().Send(*r.response, 303, "See Other", "", kPlain, std::move(extra));
  }

  kj::Promise<void> Asset(metrics::HttpRequest& r, const char* path) {
    const WebAsset* a = FindWebAsset(path, std::strlen(path));
    if (a == nullptr) return http().Refuse(*r.response, 404, "Not Found", "no such file");
    return http().Send(*r.response, 200, "OK", std::string(a->data, a->size), a->content_type,
                         PageHeaders(), r.method == kj::HttpMethod::HEAD);
  }

  kj::Promise<void> LoggedIn(metrics::HttpRequest& r) {
    const bool tls = absl::StartsWith(options.listen, "tls://");
    return Redirect(r, "/",
                    {{set_cookie, absl::StrCat(kCookie, "=", token,
                                               "; Path=/; HttpOnly; SameSite=Strict",
                                               tls ? "; Secure" : "")}});
  }

  kj::Maybe<kj::Promise<void>> Handle(metrics::HttpRequest& r) override {
    const bool get = r.method == kj::HttpMethod::GET || r.method == kj::HttpMethod::HEAD;
    const bool post = r.method == kj::HttpMethod::POST;
    if (r.path == "/login") {
      if (get) {
        std::string t = FormField(r.query, "token");
        if (!t.empty()) {
          if (SameBytes(t, token)) return LoggedIn(r);
          return http().Refuse(*r.response, 401, "Unauthorized", "wrong token");
        }
        return Asset(r, "/login.html");
      }
      if (post) {
        return http().ReadBody(r, options.max_body_bytes)
            .then([this, &r](kj::Maybe<std::string> body) -> kj::Promise<void> {
              KJ_IF_MAYBE(b, body) {
                if (SameBytes(FormField(*b, "token"), token)) return LoggedIn(r);
                return http().Refuse(*r.response, 401, "Unauthorized", "wrong token");
              }
              return kj::READY_NOW;  // refused already
            });
      }
      return MethodNotAllowed(r, "GET, HEAD, POST");
    }
    if (r.path == "/") {
      if (!get) return MethodNotAllowed(r, "GET, HEAD");
      if (!r.authenticated) return Redirect(r, "/login");
      return Asset(r, "/");
    }
    if (r.path == "/app.js" || r.path == "/style.css") {
      if (!get) return MethodNotAllowed(r, "GET, HEAD");
      return Asset(r, std::string(r.path).c_str());
    }
    if (r.path == "/api/state") {
      if (!get) return MethodNotAllowed(r, "GET, HEAD");
      std::string state = model.StateJson(absl::Now());
      state.pop_back();  // the closing brace: the CSRF token joins the object
      absl::StrAppend(&state, ",\"csrf\":\"", csrf, "\",\"attached\":",
                      computation != nullptr ? "true" : "false", "}");
      return http().Send(*r.response, 200, "OK", std::move(state), kJson,
                           {{cache_control, "no-store"}}, r.method == kj::HttpMethod::HEAD);
    }
    if (r.path == "/ws") {
      if (r.method != kj::HttpMethod::GET) return MethodNotAllowed(r, "GET");
      if (!r.headers->isWebSocket()) {
        return http().Refuse(*r.response, 400, "Bad Request", "a WebSocket upgrade is expected");
      }
      if (!SameOrigin(*r.headers)) {
        return http().Refuse(*r.response, 403, "Forbidden", "cross-origin WebSocket");
      }
      return ServeWebSocket(r);
    }
    if (r.path == "/api/action") {
      if (!post) return MethodNotAllowed(r, "POST");
      KJ_IF_MAYBE(c, r.headers->get(csrf_header)) {
        if (SameBytes(absl::string_view(c->cStr(), c->size()), csrf)) {
          return http().ReadBody(r, options.max_body_bytes)
              .then([this, &r](kj::Maybe<std::string> body) -> kj::Promise<void> {
                KJ_IF_MAYBE(b, body) { return Action(r, *b); }
                return kj::READY_NOW;
              });
        }
      }
      return http().Refuse(*r.response, 403, "Forbidden", "a valid X-CSRF-Token is required");
    }
    return nullptr;
  }

  kj::Promise<void> MethodNotAllowed(metrics::HttpRequest& r, const char* allow) {
    return http().Refuse(*r.response, 405, "Method Not Allowed", absl::StrCat("only ", allow));
  }

  // An Origin header, when a browser sends one, must name this server's
  // Host: another site's page cannot open the WebSocket with our cookie.
  bool SameOrigin(const kj::HttpHeaders& headers) const {
    KJ_IF_MAYBE(o, headers.get(origin)) {
      absl::string_view value(o->cStr(), o->size());
      if (!absl::ConsumePrefix(&value, "http://") && !absl::ConsumePrefix(&value, "https://")) {
        return false;
      }
      KJ_IF_MAYBE(h, headers.get(kj::HttpHeaderId::HOST)) {
        return value == absl::string_view(h->cStr(), h->size());
      }
      return false;
    }
    return true;  // not a browser
  }

  kj::Promise<void> ServeWebSocket(metrics::HttpRequest& r) {
    kj::HttpHeaders h(http().header_table());
    auto c = kj::heap<Client>();
    c->impl = this;
    c->id = ++next_client;
    c->ws = r.response->acceptWebSocket(h);
    http().Upgraded(r.connection);
    auto dropped = kj::newPromiseAndFulfiller<void>();
    c->drop = kj::mv(dropped.fulfiller);
    Client* client = c.get();
    clients[client->id] = client;
    ++stats.ws_opened;
    // Hello: the seq a page may compare with its state's.
    client->queue.push_back(absl::StrCat("{\"t\":\"hello\",\"seq\":", model.seq(), "}"));
    return ReceiveLoop(client)
        .exclusiveJoin(SendLoop(client))
        .exclusiveJoin(kj::mv(dropped.promise))
        .attach(kj::mv(c));
  }

  // What a page sends is read and dropped (a close ends the loop).
  kj::Promise<void> ReceiveLoop(Client* c) {
    return c->ws->receive(kMaxWsMessageBytes).then([this, c](kj::WebSocket::Message&& m) -> kj::Promise<void> {
      if (m.is<kj::WebSocket::Close>()) return kj::READY_NOW;
      return ReceiveLoop(c);
    });
  }

  kj::Promise<void> SendLoop(Client* c) {
    if (c->queue.empty()) {
      auto paf = kj::newPromiseAndFulfiller<void>();
      c->wake = kj::mv(paf.fulfiller);
      return paf.promise.then([this, c] { return SendLoop(c); });
    }
    kj::String text = kj::heapString(c->queue.front().data(), c->queue.front().size());
    c->queue.pop_front();
    kj::Promise<void> sent = c->ws->send(text.asArray());
    return sent.attach(kj::mv(text)).then([this, c] { return SendLoop(c); });
  }

  void Broadcast(const std::vector<std::string>& deltas) {
    stats.deltas += deltas.size();
    if (deltas.empty() || clients.empty()) return;
    std::vector<Client*> slow;
    for (auto& [id, c] : clients) {
      if (c->queue.size() + deltas.size() > options.max_ws_queue) {
        slow.push_back(c);
        continue;
      }
      for (const std::string& d : deltas) c->queue.push_back(d);
      KJ_IF_MAYBE(w, c->wake) {
        kj::Own<kj::PromiseFulfiller<void>> f = kj::mv(*w);
        c->wake = nullptr;
        f->fulfill();
      }
    }
    for (Client* c : slow) {
      // Out of the broadcast now; the object goes with its connection.
      clients.erase(c->id);
      ++stats.ws_dropped;
      PICOS_LOG_LIMITED(warn, "dashboard: dropped a page's WebSocket {} deltas behind",
                        c->queue.size());
      c->queue.clear();
      c->drop->fulfill();  // its route's promise ends; the connection closes
    }
  }

  kj::Promise<void> Answer(metrics::HttpRequest& r, unsigned code, kj::StringPtr text,
                           const std::string& message) {
    if (code == 200) {
      ++stats.actions;
      return http().Send(*r.response, 200, "OK", "{\"ok\":true}\n", kJson);
    }
    return http().Refuse(*r.response, code, text, message);
  }

  kj::Promise<void> Action(metrics::HttpRequest& r, const std::string& body) {
    std::string op, target;
    uint64_t job = 0;
    bool has_job = false;
    kj::Maybe<kj::Exception> bad = kj::runCatchingExceptions([&] {
      capnp::MallocMessageBuilder message;
      auto root = message.initRoot<capnp::JsonValue>();
      capnp::JsonCodec codec;
      codec.setMaxNestingDepth(8);
      codec.decodeRaw(kj::ArrayPtr<const char>(body.data(), body.size()), root);
      KJ_REQUIRE(root.isObject(), "not an object");
      for (auto field : root.getObject()) {
        kj::StringPtr name = field.getName();
        auto v = field.getValue();
        if (name == "op" && v.isString()) op = v.getString().cStr();
        if (name == "target" && v.isString()) target = v.getString().cStr();
        if (name == "job" && v.isNumber() && v.getNumber() >= 0 && v.getNumber() < 9.0e15) {
          job = static_cast<uint64_t>(v.getNumber());
          has_job = true;
        }
      }
    });
    if (bad != nullptr) return Answer(r, 400, "Bad Request", "the body is not a JSON object");
    if (op == "terminate_job") {
      if (!has_job) return Answer(r, 400, "Bad Request", "terminate_job needs \"job\"");
      std::optional<TaskRef> task = model.RunningJob(job);
      if (!task) return Answer(r, 404, "Not Found", absl::StrCat("no running job ", job));
      absl::Status s = task->Terminate();
      PICOS_LOG(info, "dashboard: terminate job {}: {}", job, s.ToString());
      if (!s.ok()) return Answer(r, 409, "Conflict", s.ToString());
      return Answer(r, 200, "OK", "");
    }
    absl::Status (compute::Computation::*fn)(const std::string&) = nullptr;
    if (op == "suspend_node") fn = &compute::Computation::SuspendNode;
    if (op == "resume_node") fn = &compute::Computation::ResumeNode;
    if (op == "suspend_worker") fn = &compute::Computation::SuspendWorker;
    if (op == "resume_worker") fn = &compute::Computation::ResumeWorker;
    if (fn == nullptr) return Answer(r, 400, "Bad Request", absl::StrCat("unknown op \"", op.substr(0, 64), "\""));
    if (target.empty()) return Answer(r, 400, "Bad Request", "the op needs \"target\"");
    if (computation == nullptr) {
      return Answer(r, 503, "Service Unavailable", "no computation is attached");
    }
    absl::Status s = (computation->*fn)(target);
    PICOS_LOG(info, "dashboard: {} {}: {}", op, target, s.ToString());
    if (s.ok()) return Answer(r, 200, "OK", "");
    if (s.code() == absl::StatusCode::kNotFound) return Answer(r, 404, "Not Found", s.ToString());
    return Answer(r, 409, "Conflict", s.ToString());
  }

  void OnEvent(const Value& event) {
    ++stats.events;
    std::vector<std::string> deltas;
    model.Apply(event, absl::Now(), &deltas);
    Broadcast(deltas);
    if (options.forward_to) {
      absl::Status s = options.forward_to.Send(event);
      if (!s.ok()) PICOS_LOG_LIMITED(warn, "dashboard: forwarding an event: {}", s.ToString());
    }
  }

  static Task<absl::Status> StatusLoop(Impl* impl) {
    for (;;) {
      absl::StatusOr<Value> event = co_await Receive();
      if (!event.ok()) co_return absl::OkStatus();  // terminated: the dashboard ends
      impl->OnEvent(*event);
    }
  }

  // Counts the jobs waiting for a worker, by function, now and then.
  static Task<absl::Status> WaitingLoop(Impl* impl) {
    for (;;) {
      absl::Status slept = co_await Sleep(impl->options.waiting_interval);
      if (!slept.ok()) co_return absl::OkStatus();
      if (impl->computation == nullptr) continue;
      absl::flat_hash_map<std::string, uint64_t> waiting;
      for (const compute::JobInfo& j : impl->computation->jobs()) {
        if (j.state == compute::JobState::kWaiting) ++waiting[j.fn];
      }
      std::vector<std::string> deltas;
      impl->model.SetWaiting(waiting, absl::Now(), &deltas);
      impl->Broadcast(deltas);
    }
  }

  DashboardOptions options;
  Model model;
  std::string token;
  std::string token_file;
  std::string csrf;
  compute::Computation* computation = nullptr;
  metrics::Registry own_registry;
  std::map<uint64_t, Client*> clients;
  uint64_t next_client = 0;
  DashboardStats stats;
  kj::HttpHeaderId set_cookie = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId location = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId csrf_header = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId origin = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId cache_control = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId csp = kj::HttpHeaderId::HOST;
  kj::HttpHeaderId frame_options = kj::HttpHeaderId::HOST;
  TaskRef status;
  std::unique_ptr<metrics::MetricsServer> server;  // serves http()
  TaskGroup tasks;  // last: its tasks end first
};

Task<absl::StatusOr<std::unique_ptr<Dashboard>>> Dashboard::Start(const TransportRegistry& transports,
                                                                  DashboardOptions options) {
  if (!options.token.empty()) {
    PICOS_CO_RETURN_IF_ERROR(metrics::ValidateBearerToken(options.token));
    if (options.token.size() < 16) {
      co_return absl::InvalidArgumentError("the dashboard token must have at least 16 bytes");
    }
  }
  if (options.max_body_bytes < 256 || options.max_body_bytes > (1 << 20)) {
    co_return absl::InvalidArgumentError("max_body_bytes must be in 256..1048576");
  }
  if (options.max_ws_queue < 16 || options.max_ws_queue > (1 << 20)) {
    co_return absl::InvalidArgumentError("max_ws_queue must be in 16..1048576");
  }
  if (options.waiting_interval < absl::Milliseconds(10)) {
    co_return absl::InvalidArgumentError("waiting_interval must be at least 10ms");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  DashboardOptions& o = impl->options;
  if (o.token.empty()) {
    PICOS_CO_ASSIGN_OR_RETURN(impl->token, RandomHex(32));
    if (o.token_file != "-") {
      if (o.token_file.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        o.token_file = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                                    "/picos-dashboard-", ::getpid(), ".token");
      }
      PICOS_CO_RETURN_IF_ERROR(WriteTokenFile(o.token_file, impl->token));
      impl->token_file = o.token_file;
    }
  } else {
    impl->token = o.token;
  }
  PICOS_CO_ASSIGN_OR_RETURN(impl->csrf, RandomHex(16));

  metrics::MetricsServerOptions m;
  m.listen = o.listen;
  m.bearer_token = impl->token;
  m.token_cookie = kCookie;
  m.routes = impl.get();
  m.max_connections = o.max_connections;
  m.request_timeout = o.request_timeout;
  m.idle_timeout = o.idle_timeout;
  const metrics::Registry& registry = o.registry != nullptr ? *o.registry : impl->own_registry;
  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server =
      co_await metrics::MetricsServer::Start(transports, registry, std::move(m));
  if (!server.ok()) co_return server.status();
  impl->server = std::move(*server);

  PICOS_CO_ASSIGN_OR_RETURN(impl->status, impl->tasks.Spawn(&Impl::StatusLoop, impl.get()));
  PICOS_CO_RETURN_IF_ERROR(impl->tasks.Spawn(&Impl::WaitingLoop, impl.get()).status());
  std::unique_ptr<Dashboard> d(new Dashboard(std::move(impl)));
  PICOS_LOG(info, "dashboard: serving {}{}", d->url().empty() ? d->address() : d->url(),
            d->token_file().empty() ? "" : absl::StrCat(" (token in ", d->token_file(), ")"));
  co_return d;
}

Dashboard::Dashboard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dashboard::~Dashboard() = default;

TaskRef Dashboard::status_task() const { return impl_->status; }
void Dashboard::Attach(compute::Computation* computation) { impl_->computation = computation; }
std::string Dashboard::address() const { return impl_->server->address(); }

std::string Dashboard::url() const {
  std::string a = address();
  a = a.substr(0, a.find('?'));  // a tls:// address's certificate files
  if (absl::StartsWith(a, "tcp://")) return absl::StrCat("http://", a.substr(6), "/");
  if (absl::StartsWith(a, "tls://")) return absl::StrCat("https://", a.substr(6), "/");
  return "";
}

std::string Dashboard::login_url() const {
  std::string u = url();
  return u.empty() ? "" : absl::StrCat(u, "login?token=", impl_->token);
}

const std::string& Dashboard::token() const { return impl_->token; }
const std::string& Dashboard::token_file() const { return impl_->token_file; }
const Model& Dashboard::model() const { return impl_->model; }
DashboardStats Dashboard::stats() const { return impl_->stats; }
size_t Dashboard::websockets() const { return impl_->clients.size(); }

}  // namespace picos::dashboard
