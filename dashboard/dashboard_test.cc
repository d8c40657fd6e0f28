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
#include "testing/http_test_client.h"
#include "testing/tls_certs.h"
#include "transports/default_transports.h"

namespace picos::dashboard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using HttpTestClient = ::picos::testing::HttpTestClient;

// Every wait here: only a hang reaches it.
constexpr absl::Duration kDeadline = absl::Seconds(60);
constexpr char kToken[] = "dashboard-test-token-0123456789";

const TransportRegistry& Transports() { return transports::DefaultTransports(); }

std::string Request(const std::string& method, const std::string& path, const std::string& headers = "",
                    const std::string& body = "") {
  return picos::testing::HttpRequestText(method, path, headers, body);
}
std::string Cookie() { return absl::StrCat("Cookie: other=1; picos_dashboard=", kToken, "\r\n"); }

Task<absl::StatusOr<std::string>> Exchange(std::string uri, std::string request) {
  return picos::testing::HttpExchange(std::move(uri), std::move(request));
}

std::string BodyOf(const std::string& response) { return picos::testing::HttpBody(response); }

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
  absl::StatusOr<HttpTestClient> ws = co_await HttpTestClient::Open(uri);
  CO_ASSERT_OK(ws);
  CO_ASSERT_OK(co_await ws->Send(Request(
      "GET", "/ws",
      absl::StrCat(Cookie(), "Origin: http://127.0.0.1\r\n", picos::testing::WebSocketUpgradeHeaders()))));
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
                   absl::StrCat(Cookie(), "Origin: http://evil.example\r\n",
                                picos::testing::WebSocketUpgradeHeaders())));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 403"));
  r = co_await Exchange(uri, Request("GET", "/ws", picos::testing::WebSocketUpgradeHeaders()));
  CO_ASSERT_OK(r);
  EXPECT_THAT(*r, StartsWith("HTTP/1.1 401"));
}

PICOS_CORO_TEST(Dashboard, ASlowWebSocketIsDroppedNotBuffered) {
  DashboardOptions o;
  o.max_ws_queue = 16;
  absl::StatusOr<std::unique_ptr<Dashboard>> dash = co_await StartDashboard(o);
  CO_ASSERT_OK(dash);
  absl::StatusOr<HttpTestClient> ws = co_await HttpTestClient::Open((*dash)->address());
  CO_ASSERT_OK(ws);
  CO_ASSERT_OK(co_await ws->Send(Request(
      "GET", "/ws",
      absl::StrCat(Cookie(), picos::testing::WebSocketUpgradeHeaders()))));
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
  std::vector<HttpTestClient> idle;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<HttpTestClient> c = co_await HttpTestClient::Open(uri);
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
