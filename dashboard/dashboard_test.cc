// The dashboard's HTTP side with no cluster: login and the token on every
// path, the state and its deltas over a WebSocket, actions and their CSRF
// token, and the bad requests a server on a port must survive. Events are
// sent to its status task as a computation would send them
// (testing/dashboard_browser_test.sh runs it against real picos-node
// processes and a browser).
#include "dashboard/dashboard.h"

#include <sys/resource.h>
#include <sys/stat.h>

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
#include "testing/coro_test.h"
#include "testing/tls_certs.h"
#include "transports/default_transports.h"

namespace picos::dashboard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Every wait here: only a hang reaches it.
constexpr absl::Duration kDeadline = absl::Seconds(60);
constexpr char kToken[] = "dashboard-test-token-0123456789";

const TransportRegistry& Transports() { return transports::DefaultTransports(); }

// One client connection speaking HTTP/1.1 (and then WebSocket frames).
class Client {
 public:
  static Task<absl::StatusOr<Client>> Open(std::string uri) {
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await Transports().Connect(uri);
    if (!s.ok()) co_return s.status();
    Client c;
    c.stream_ = std::move(*s);
    co_return c;
  }

  Task<absl::Status> Send(std::string bytes) { return stream_->Write(std::move(bytes), kDeadline); }

  // One response: its head and its Content-Length body.
  Task<absl::StatusOr<std::string>> Response() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      absl::Status more = co_await More();
      if (!more.ok()) co_return more;
    }
    std::string head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    size_t length = 0;
    if (size_t cl = head.find("Content-Length: "); cl != std::string::npos) {
      (void)absl::SimpleAtoi(head.substr(cl + 16, head.find("\r\n", cl) - cl - 16), &length);
    }
    while (buf_.size() < length) {
      absl::Status more = co_await More();
      if (!more.ok()) co_return more;
    }
    std::string out = head + buf_.substr(0, length);
    buf_.erase(0, length);
    co_return out;
  }

  // The next WebSocket text message from the server (unmasked frames).
  Task<absl::StatusOr<std::string>> Message() {
    for (;;) {
      if (buf_.size() >= 2) {
        const unsigned char* b = reinterpret_cast<const unsigned char*>(buf_.data());
        size_t len = b[1] & 0x7f, at = 2;
        if (len == 126 && buf_.size() >= 4) {
          len = (size_t{b[2]} << 8) | b[3];
          at = 4;
        } else if (len == 127 && buf_.size() >= 10) {
          len = 0;
          for (int i = 2; i < 10; ++i) len = (len << 8) | b[i];
          at = 10;
        }
        if (len < 126 || at > 2) {
          if (buf_.size() >= at + len) {
            const int opcode = b[0] & 0x0f;
            std::string payload = buf_.substr(at, len);
            buf_.erase(0, at + len);
            if (opcode == 8) co_return absl::UnavailableError("closed by the server");
            if (opcode == 1) co_return payload;
            continue;  // a ping or pong
          }
        }
      }
      absl::Status more = co_await More();
      if (!more.ok()) co_return more;
    }
  }

  // Reads until the server closes (bounded): what a dropped client sees.
  Task<absl::Status> UntilClosed() {
    for (int i = 0; i < 100000; ++i) {
      absl::StatusOr<std::string> more = co_await stream_->Read(1 << 16, kDeadline);
      if (!more.ok()) co_return absl::OkStatus();  // reset: closed too
      if (more->empty()) co_return absl::OkStatus();
    }
    co_return absl::DeadlineExceededError("still open");
  }

 private:
  Task<absl::Status> More() {
    absl::StatusOr<std::string> more = co_await stream_->Read(1 << 16, kDeadline);
    if (!more.ok()) co_return more.status();
    if (more->empty()) co_return absl::UnavailableError("closed");
    buf_ += *more;
    co_return absl::OkStatus();
  }

  std::unique_ptr<Stream> stream_;
  std::string buf_;
};

std::string Request(const std::string& method, const std::string& path,
                    const std::string& headers = "", const std::string& body = "") {
  std::string r = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", headers);
  if (!body.empty() || method == "POST") absl::StrAppend(&r, "Content-Length: ", body.size(), "\r\n");
  return absl::StrCat(r, "\r\n", body);
}
std::string Cookie() { return absl::StrCat("Cookie: other=1; picos_dashboard=", kToken, "\r\n"); }

// One request on a new connection; its response.
Task<absl::StatusOr<std::string>> Exchange(std::string uri, std::string request) {
  absl::StatusOr<Client> c = co_await Client::Open(uri);
  if (!c.ok()) co_return c.status();
  absl::Status sent = co_await c->Send(std::move(request));
  if (!sent.ok()) co_return sent;
  co_return co_await c->Response();
}

std::string BodyOf(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

// The value of "csrf" in a state.
std::string Csrf(const std::string& state) {
  size_t at = state.find("\"csrf\":\"");
  if (at == std::string::npos) return "";
  at += 8;
  return state.substr(at, state.find('"', at) - at);
}

// (No default argument: g++ 12 copies a coroutine's braced default
// argument bitwise, metrics/http_server.h says.)
Task<absl::StatusOr<std::unique_ptr<Dashboard>>> StartDashboard(DashboardOptions o) {
  if (o.token.empty()) o.token = kToken;
  co_return co_await Dashboard::Start(Transports(), std::move(o));
}
Task<absl::StatusOr<std::unique_ptr<Dashboard>>> StartDashboard() {
  DashboardOptions o;
  return StartDashboard(std::move(o));
}

Value Event(std::string type, Value::MapType fields) {
  fields["type"] = Value(std::move(type));
  return Value(std::move(fields));
}

// Waits (bounded) until `done()` holds, letting the status task run.
template <typename F>
Task<bool> Eventually(F done) {
  for (int i = 0; i < 6000; ++i) {
    if (done()) co_return true;
    (void)co_await Sleep(absl::Milliseconds(10));
  }
  co_return done();
}

PICOS_CORO_TEST(Dashboard, LoginSetsAStrictHttpOnlyCookieAndEveryPathNeedsTheToken) {
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard();
  CO_ASSERT_OK(dash);
  const std::string uri = (*dash)->address();
  EXPECT_THAT(uri, StartsWith("tcp://127.0.0.1:"));
  EXPECT_THAT((*dash)->login_url(), HasSubstr(absl::StrCat("/login?token=", kToken)));

  // Without the token: the page sends to the login form; the rest is 401.
  absl::StatusOr<std::string> r = co_await Exchange(uri, Request("GET", "/"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 303"));
  EXPECT_THAT(*r, HasSubstr("Location: /login\r\n"));
  r = co_await Exchange(uri, Request("GET", "/login"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(BodyOf(*r), HasSubstr("<form method=\"post\" action=\"/login\""));
  for (const char* path : {"/api/state", "/app.js", "/metrics", "/ws", "/no/such/path"}) {
    r = co_await Exchange(uri, Request("GET", path));
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, StartsWith("HTTP/1.1 401")) << path;
  }
  r = co_await Exchange(uri, Request("GET", "/api/state", "Cookie: picos_dashboard=wrong\r\n"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401"));
  r = co_await Exchange(uri, Request("GET", "/login?token=wrong"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401"));
  r = co_await Exchange(uri, Request("POST", "/login", "", "token=wrong"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401"));

  // The right token, by URL or by the form: the session cookie.
  const std::string cookie = absl::StrCat("Set-Cookie: picos_dashboard=", kToken,
                                          "; Path=/; HttpOnly; SameSite=Strict\r\n");
  r = co_await Exchange(uri, Request("GET", absl::StrCat("/login?token=", kToken)));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 303"));
  EXPECT_THAT(*r, HasSubstr(cookie));
  r = co_await Exchange(uri, Request("POST", "/login", "", absl::StrCat("token=", kToken)));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, HasSubstr(cookie));

  // With the cookie or the bearer token: the page, its files, the state, /metrics.
  for (const char* path : {"/", "/app.js", "/style.css", "/api/state", "/metrics"}) {
    r = co_await Exchange(uri, Request("GET", path, Cookie()));
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, StartsWith("HTTP/1.1 200")) << path;
  }
  r = co_await Exchange(uri, Request("GET", "/", absl::StrCat("Authorization: Bearer ", kToken, "\r\n")));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(*r, HasSubstr("Content-Security-Policy: default-src 'self'"));
  EXPECT_THAT(BodyOf(*r), HasSubstr("<script src=\"/app.js\"></script>"));
  r = co_await Exchange(uri, Request("GET", "/no/such/path", Cookie()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 404"));
}

PICOS_CORO_TEST(Dashboard, GeneratedTokenIsWrittenReadableOnlyByTheUser) {
  DashboardOptions o;
  o.token_file = absl::StrCat(::testing::TempDir(), "/dash.token");
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await Dashboard::Start(Transports(), o);
  CO_ASSERT_OK(dash);
  EXPECT_EQ((*dash)->token().size(), 64u);
  EXPECT_EQ((*dash)->token_file(), o.token_file);
  struct stat st;
  CO_ASSERT_TRUE(::stat(o.token_file.c_str(), &st) == 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> r = co_await Exchange(
      (*dash)->address(), Request("GET", "/api/state", absl::StrCat("Authorization: Bearer ", (*dash)->token(), "\r\n")));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));

  DashboardOptions short_token;
  short_token.token = "short";
  absl::StatusOr<std::unique_ptr<Dashboard>> bad = co_await Dashboard::Start(Transports(), short_token);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

PICOS_CORO_TEST(Dashboard, PagesGetTheStateOnceThenDeltasOverTheWebSocket) {
  DashboardOptions o;
  o.forward_to = Self();  // the user's own status task, after the dashboard's
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard(o);
  CO_ASSERT_OK(dash);
  const std::string uri = (*dash)->address();
  const TaskRef status = (*dash)->status_task();
  CO_ASSERT_OK(status.Send(Event("node_initialized", {{"node", Value("tcp://n1")}})));
  CO_ASSERT_OK(status.Send(Event("worker_initialized", {{"node", Value("tcp://n1")},
                                                         {"worker", Value("tcp://w1")}})));
  // Each event reaches the forward task too, in order.
  absl::StatusOr<Value> fwd = co_await Receive(kDeadline);
  CO_ASSERT_OK(fwd);
  EXPECT_EQ(fwd->GetOr<std::string>("type", ""), "node_initialized");
  fwd = co_await Receive(kDeadline);
  CO_ASSERT_OK(fwd);
  EXPECT_EQ(fwd->GetOr<std::string>("type", ""), "worker_initialized");

  absl::StatusOr<std::string> state = co_await Exchange(uri, Request("GET", "/api/state", Cookie()));
  CO_ASSERT_OK(state);
  EXPECT_THAT(BodyOf(*state), HasSubstr("\"uri\":\"tcp://n1\""));
  EXPECT_THAT(BodyOf(*state), HasSubstr("\"uri\":\"tcp://w1\""));

  // A WebSocket from the page's origin: a hello with the seq, then deltas.
  absl::StatusOr<Client> ws = co_await Client::Open(uri);
  CO_ASSERT_OK(ws);
  CO_ASSERT_OK(co_await ws->Send(Request(
      "GET", "/ws",
      absl::StrCat(Cookie(), "Origin: http://127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"))));
  absl::StatusOr<std::string> head = co_await ws->Response();
  CO_ASSERT_OK(head);
  EXPECT_THAT(*head, StartsWith("HTTP/1.1 101"));
  absl::StatusOr<std::string> m = co_await ws->Message();
  CO_ASSERT_OK(m);
  EXPECT_EQ(*m, absl::StrCat("{\"t\":\"hello\",\"seq\":", (*dash)->model().seq(), "}"));
  CO_ASSERT_TRUE(co_await Eventually([&] { return (*dash)->websockets() == 1; }));

  CO_ASSERT_OK(status.Send(Event("job_started", {{"job", Value(uint64_t{7})}, {"fn", Value("square")},
                                                 {"worker", Value("tcp://w1")}})));
  CO_ASSERT_OK(status.Send(Event("job_finished", {{"job", Value(uint64_t{7})}, {"fn", Value("square")},
                                                  {"worker", Value("tcp://w1")}, {"code", Value(0)}})));
  std::vector<std::string> got;
  for (int i = 0; i < 100 && (got.empty() || !absl::StrContains(got.back(), "\"outcome\":\"done\"")); ++i) {
    m = co_await ws->Message();
    CO_ASSERT_OK(m);
    got.push_back(*m);
  }
  CO_ASSERT_TRUE(!got.empty());
  EXPECT_THAT(got.back(), HasSubstr("\"t\":\"job\""));
  EXPECT_THAT(got.back(), HasSubstr("\"id\":7,"));
  // Deltas, never the whole state: each is small.
  for (const std::string& d : got) EXPECT_LT(d.size(), 2048u) << d;
  EXPECT_GE((*dash)->stats().events, 4u);
  (void)co_await Receive(kDeadline);  // the two job events, forwarded
  (void)co_await Receive(kDeadline);

  // A WebSocket from another site's page, or without the token: refused.
  absl::StatusOr<std::string> r = co_await Exchange(
      uri, Request("GET", "/ws",
                   absl::StrCat(Cookie(), "Origin: http://evil.example\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                          "Sec-WebSocket-Version: 13\r\n")));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 403"));
  r = co_await Exchange(uri, Request("GET", "/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                                   "Sec-WebSocket-Version: 13\r\n"));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401"));
}

PICOS_CORO_TEST(Dashboard, ASlowWebSocketIsDroppedNotBuffered) {
  DashboardOptions o;
  o.max_ws_queue = 16;
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard(o);
  CO_ASSERT_OK(dash);
  absl::StatusOr<Client> ws = co_await Client::Open((*dash)->address());
  CO_ASSERT_OK(ws);
  CO_ASSERT_OK(co_await ws->Send(Request(
      "GET", "/ws",
      absl::StrCat(Cookie(), "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"))));
  absl::StatusOr<std::string> head = co_await ws->Response();
  CO_ASSERT_OK(head);
  CO_ASSERT_TRUE(co_await Eventually([&] { return (*dash)->websockets() == 1; }));
  // A burst of events, more deltas than the queue holds, before the page
  // reads any: it is dropped, and the dashboard keeps going.
  const TaskRef status = (*dash)->status_task();
  for (int i = 0; i < 200; ++i) {
    CO_ASSERT_OK(status.Send(Event("node_health", {{"node", Value(absl::StrCat("tcp://n", i % 3))}})));
  }
  CO_ASSERT_TRUE(co_await Eventually([&] { return (*dash)->stats().ws_dropped == 1; }));
  CO_ASSERT_TRUE(co_await Eventually([&] { return (*dash)->websockets() == 0; }));
  CO_ASSERT_OK(co_await ws->UntilClosed());
  EXPECT_EQ((*dash)->model().nodes(), 3u);
  absl::StatusOr<std::string> r = co_await Exchange((*dash)->address(), Request("GET", "/api/state", Cookie()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
}

Task<absl::Status> Sleeper() {
  absl::Status s = co_await Sleep(absl::Hours(1));
  co_return s;
}

PICOS_CORO_TEST(Dashboard, ActionsNeedTheCsrfTokenAndValidJson) {
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard();
  CO_ASSERT_OK(dash);
  const std::string uri = (*dash)->address();
  absl::StatusOr<std::string> state = co_await Exchange(uri, Request("GET", "/api/state", Cookie()));
  CO_ASSERT_OK(state);
  const std::string csrf = Csrf(BodyOf(*state));
  CO_ASSERT_TRUE(csrf.size() == 32);
  const std::string with_csrf = absl::StrCat(Cookie(), "X-CSRF-Token: ", csrf, "\r\n");
  auto post = [&](std::string headers, std::string body) {
    return Exchange(uri, Request("POST", "/api/action", std::move(headers), std::move(body)));
  };

  // A running job (a local task stands for it), terminated from the page.
  TaskRef job = ThisScheduler().Spawn(Sleeper);
  CO_ASSERT_OK((*dash)->status_task().Send(Event(
      "job_started", {{"job", Value(uint64_t{3})}, {"fn", Value("f")}, {"worker", Value("tcp://w")},
                      {"task", Value(job)}})));
  CO_ASSERT_TRUE(co_await Eventually([&] { return (*dash)->model().running_jobs() == 1; }));

  const std::string terminate = "{\"op\": \"terminate_job\", \"job\": 3}";
  absl::StatusOr<std::string> r = co_await post(Cookie(), terminate);
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 403"));
  r = co_await post(absl::StrCat(Cookie(), "X-CSRF-Token: ", std::string(32, '0'), "\r\n"), terminate);
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 403"));
  r = co_await Exchange(uri, Request("GET", "/api/action", with_csrf));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 405"));
  for (const char* bad : {"{", "not json", "[1, 2]", "{\"op\": }", "\"x\"", "{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}"}) {
    r = co_await post(with_csrf, bad);
    CO_ASSERT_OK(r);
    EXPECT_THAT(*r, StartsWith("HTTP/1.1 400")) << bad;
  }
  r = co_await post(with_csrf, "{\"op\": \"format_disk\"}");
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 400"));
  r = co_await post(with_csrf, "{\"op\": \"terminate_job\", \"job\": 4}");
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 404"));
  r = co_await post(with_csrf, "{\"op\": \"suspend_node\", \"target\": \"tcp://n\"}");
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 503"));  // no computation attached
  EXPECT_EQ((*dash)->stats().actions, 0u);

  r = co_await post(with_csrf, terminate);
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(BodyOf(*r), "{\"ok\":true}\n");
  absl::StatusOr<Value> ended = co_await job.Join(kDeadline);
  EXPECT_EQ(ended.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ((*dash)->stats().actions, 1u);
}

PICOS_CORO_TEST(Dashboard, BadRequestsGetClearErrorsAndTheServerKeepsServing) {
  DashboardOptions o;
  o.max_body_bytes = 1024;
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard(o);
  CO_ASSERT_OK(dash);
  const std::string uri = (*dash)->address();
  absl::StatusOr<std::string> state = co_await Exchange(uri, Request("GET", "/api/state", Cookie()));
  CO_ASSERT_OK(state);
  const std::string with_csrf = absl::StrCat(Cookie(), "X-CSRF-Token: ", Csrf(BodyOf(*state)), "\r\n");

  // Oversized bodies: by Content-Length, and chunked.
  absl::StatusOr<std::string> r = co_await Exchange(
      uri, Request("POST", "/api/action", with_csrf, std::string(4096, ' ')));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 413"));
  std::string chunked = absl::StrCat("POST /api/action HTTP/1.1\r\nHost: x\r\n", with_csrf,
                                     "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 8; ++i) absl::StrAppend(&chunked, "200\r\n", std::string(512, ' '), "\r\n");
  absl::StrAppend(&chunked, "0\r\n\r\n");
  r = co_await Exchange(uri, chunked);
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 413"));
  r = co_await Exchange(uri, Request("POST", "/login", "", std::string(4096, 'x')));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 413"));
  // An oversized head.
  r = co_await Exchange(uri, Request("GET", "/api/state", absl::StrCat(Cookie(), "X-Pad: ", std::string(20 << 10, 'a'), "\r\n")));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 431"));
  // Unknown paths and methods.
  r = co_await Exchange(uri, Request("GET", "/../../etc/passwd", Cookie()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 404"));
  r = co_await Exchange(uri, Request("DELETE", "/api/state", Cookie()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 405"));
  r = co_await Exchange(uri, Request("GET", "/ws", Cookie()));  // not an upgrade
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 400"));

  // 1,000 connections that say nothing; then a page is still served.
  struct rlimit limit;
  CO_ASSERT_TRUE(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  if (limit.rlim_cur < 2200) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
    (void)setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < 2200) CO_SKIP("needs 2,200 file descriptors; the hard limit is " << limit.rlim_max);
  std::vector<Client> idle;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<Client> c = co_await Client::Open(uri);
    CO_ASSERT_OK(c);
    idle.push_back(std::move(*c));
  }
  r = co_await Exchange(uri, Request("GET", "/api/state", Cookie()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(BodyOf(*r), HasSubstr("\"csrf\""));
}

// Over TLS (a tls:// listen with a certificate, as every transport takes
// it): the same page, and the session cookie is Secure.
PICOS_CORO_TEST(Dashboard, ServesOverTlsWithASecureCookie) {
  const std::string dir = ::testing::TempDir();
  absl::StatusOr<picos::testing::TestPki> pki = picos::testing::MakeTestPki(dir);
  CO_ASSERT_OK(pki);
  DashboardOptions o;
  o.listen = absl::StrCat("tls://127.0.0.1:0?cert=", pki->server_cert, "&key=", pki->server_key);
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard(o);
  CO_ASSERT_OK(dash);
  EXPECT_THAT((*dash)->url(), StartsWith("https://127.0.0.1:"));
  EXPECT_THAT((*dash)->url(), Not(HasSubstr("?")));
  std::string address = (*dash)->address();
  address = address.substr(0, address.find('?'));
  const std::string client_uri = absl::StrCat(address, "?ca=", pki->ca_cert);
  absl::StatusOr<std::string> r =
      co_await Exchange(client_uri, Request("GET", absl::StrCat("/login?token=", kToken)));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 303"));
  EXPECT_THAT(*r, HasSubstr("; HttpOnly; SameSite=Strict; Secure\r\n"));
  r = co_await Exchange(client_uri, Request("GET", "/api/state", Cookie()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 200"));
}

}  // namespace
}  // namespace picos::dashboard
