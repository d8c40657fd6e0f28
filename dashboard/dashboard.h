// A live web dashboard of a computation (pycos dispycos_httpd): its nodes,
// workers, running jobs, a job stream, per-function progress and recent
// events, updated live over a WebSocket, with actions (suspend/resume a
// node or a worker, terminate a job), served with /metrics on one port by
// the metrics server (metrics/http_server.h).
//
//   picos::dashboard::DashboardOptions d;
//   d.listen = "tcp://127.0.0.1:8181";
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::dashboard::Dashboard> dash,
//       co_await picos::dashboard::Dashboard::Start(picos::transports::DefaultTransports(), d));
//   std::printf("dashboard: %s\n", dash->login_url().c_str());
//   picos::compute::ComputationOptions o;
//   o.status_task = dash->status_task();   // the dashboard sees every event
//   ... Computation::Create(o) ...
//   dash->Attach(computation.get());        // for actions and waiting jobs
//   ...
//   dash->Detach();                         // before the computation goes
//
// The page (dashboard/web/, embedded in the binary) loads GET /api/state
// once (the whole model, dashboard/model.h) and then applies the deltas
// that GET /ws (a WebSocket) pushes as events arrive: never the whole
// state again. A page whose WebSocket falls more than max_ws_queue messages
// behind is dropped (logged); it reloads the state when it reconnects.
//
// Paths:
//   GET /login[?token=T]   the login form; with the right token: 303 to /
//                          with the session cookie set
//   POST /login            form field token=T: the same
//   GET /                  the page (303 to /login without the token)
//   GET /app.js, /style.css  the page's script and style
//   GET /api/state         the state as JSON, with "csrf": the CSRF token
//   GET /ws                the WebSocket of deltas (same origin only)
//   POST /api/action       {"op": "suspend_node"|"resume_node"|
//                          "suspend_worker"|"resume_worker", "target": uri}
//                          or {"op": "terminate_job", "job": id}, with the
//                          header X-CSRF-Token; {"ok": true} or an error
//   GET /metrics           options.registry's exposition (Prometheus)
// Security: every path but /login, /style.css and / needs the token: the cookie
// "picos_dashboard" (HttpOnly, SameSite=Strict, Secure over TLS) that
// login sets, or "Authorization: Bearer T"; a wrong one is 401. Actions
// also need the CSRF token (403 without it) and are confirmed in the page.
// A body over max_body_bytes is 413, malformed JSON 400, an unknown path
// 404; connection limits and timeouts are the metrics server's (1,000 idle
// connections leave it serving).
//
// Token: options.token, else 32 random bytes in hex, written to
// options.token_file (mode 0600; default $TMPDIR/picos-dashboard-<pid>.token,
// removed when the dashboard ends) and named in the log line with the URL
// (login_url() has the token itself).
//
// Threads: start, use and destroy it on one scheduler's thread (the
// client's); its server runs kj's loop there (one per thread: this
// dashboard's server also serves /metrics, do not start a MetricsServer
// beside it).
#ifndef PICOS_DASHBOARD_DASHBOARD_H_
#define PICOS_DASHBOARD_DASHBOARD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/kernel/handles.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "dashboard/model.h"
#include "metrics/metrics.h"

namespace picos::dashboard {

struct DashboardOptions {
  // Where to serve: tcp:// (loopback by default), unix://, or tls:// as the
  // registry's TLS transport is configured (then the cookie is Secure).
  std::string listen = "tcp://127.0.0.1:0";
  // The login token: at least 16 bytes of [!-~]. Empty: generated.
  std::string token;
  // Where a generated token is written (mode 0600). Empty: the default
  // above; "-": not written.
  std::string token_file;
  // Every status event is passed on to this task after the dashboard saw it
  // (the user's own status task, pycos dispycos_httpd2). Null: none.
  TaskRef forward_to;
  // Served at /metrics; must outlive the dashboard. Null: an empty registry.
  const metrics::Registry* registry = nullptr;
  ModelLimits limits;
  // Longest body of a POST.
  size_t max_body_bytes = 16 << 10;
  // Deltas queued for one WebSocket before it is dropped.
  size_t max_ws_queue = 1024;
  // How often waiting jobs are counted (Computation::jobs()).
  absl::Duration waiting_interval = absl::Seconds(1);
  // The metrics server's limits.
  size_t max_connections = 256;
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(30);
};

struct DashboardStats {
  uint64_t events = 0;       // status events seen
  uint64_t deltas = 0;       // deltas made
  uint64_t ws_opened = 0;    // WebSockets accepted
  uint64_t ws_dropped = 0;   // dropped for falling behind
  uint64_t actions = 0;      // actions done
};

class Dashboard {
 public:
  // Starts serving and the status task. kInvalidArgument for bad options,
  // the transport's error for a listen that fails, the file's for a token
  // that cannot be written. Suspends.
  static Task<absl::StatusOr<std::unique_ptr<Dashboard>>> Start(const TransportRegistry& transports,
                                                                DashboardOptions options);
  // Stops serving; its tasks end.
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // The task to give as ComputationOptions::status_task.
  TaskRef status_task() const;
  // The computation actions go to and waiting jobs are read from; until
  // then actions answer 503. Detach before the computation is destroyed.
  void Attach(compute::Computation* computation);
  void Detach() { Attach(nullptr); }

  // The address bound ("tcp://127.0.0.1:40312"), "http://host:port/" of a
  // tcp:// one ("https://" for tls://, "" for other transports), and that
  // URL's /login?token=... .
  std::string address() const;
  std::string url() const;
  std::string login_url() const;
  const std::string& token() const;
  // Where the token was written ("" if not).
  const std::string& token_file() const;
  const Model& model() const;
  DashboardStats stats() const;
  // WebSockets open now.
  size_t websockets() const;

  struct Impl;

 private:
  explicit Dashboard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace picos::dashboard

#endif  // PICOS_DASHBOARD_DASHBOARD_H_
