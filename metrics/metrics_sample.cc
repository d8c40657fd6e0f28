// What a picos process serves at /metrics, for //metrics:promtool_test: a
// node with a peer connected and a wrong-secret one refused, the scheduler's
// and the node's figures (metrics/runtime_metrics.h), and families of each
// type with awkward label values; scraped over HTTP from its own
// MetricsServer (metrics/http_server.h) and printed on standard output.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/io/stream.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "metrics/runtime_metrics.h"
#include "transports/default_transports.h"

namespace {

using picos::Task;
namespace metrics = picos::metrics;
namespace remote = picos::remote;

constexpr absl::Duration kDeadline = absl::Seconds(60);

// The body of GET /metrics at `uri`.
Task<absl::StatusOr<std::string>> Scrape(std::string uri) {
  const picos::TransportRegistry& t = picos::transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Stream> s, co_await t.Connect(uri));
  std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  PICOS_CO_RETURN_IF_ERROR(co_await s->Write(request, kDeadline));
  // The head, then Content-Length bytes (the connection is kept alive).
  std::string in;
  size_t body_at = std::string::npos;
  size_t length = 0;
  for (int i = 0; i < 100000; ++i) {  // bounded
    if (body_at == std::string::npos && in.find("\r\n\r\n") != std::string::npos) {
      body_at = in.find("\r\n\r\n") + 4;
      size_t cl = in.find("Content-Length: ");
      if (cl == std::string::npos || cl > body_at ||
          !absl::SimpleAtoi(in.substr(cl + 16, in.find("\r\n", cl) - cl - 16), &length)) {
        co_return absl::InternalError(absl::StrCat("no Content-Length: ", in.substr(0, 200)));
      }
    }
    if (body_at != std::string::npos && in.size() >= body_at + length) break;
    absl::StatusOr<std::string> more = co_await s->Read(1 << 16, kDeadline);
    if (!more.ok()) co_return more.status();
    if (more->empty()) co_return absl::InternalError("the server closed mid-answer");
    in += *more;
  }
  if (!absl::StartsWith(in, "HTTP/1.1 200 OK\r\n")) {
    co_return absl::InternalError(absl::StrCat("scrape answered: ", in.substr(0, 200)));
  }
  co_return in.substr(body_at, length);
}

Task<absl::Status> Main() {
  const picos::TransportRegistry& t = picos::transports::DefaultTransports();
  metrics::Registry registry;

  // The application's own families, with label values from "outside".
  PICOS_CO_ASSIGN_OR_RETURN(
      metrics::CounterFamily * jobs,
      registry.AddCounter("picos_sample_jobs_total", "Jobs ended, by function and state.",
                          {"function", "state"}));
  jobs->WithLabels({"square", "done"})->Increment(7);
  jobs->WithLabels({"a \"quoted\" \\ name\nwith a newline", "failed"})->Increment();
  jobs->WithLabels({std::string("bad utf8 \xff here"), "done"})->Increment(2);
  jobs->WithLabels({"naïve ünïcode", "done"})->Increment(3);
  metrics::FamilyOptions durations{.name = "picos_sample_job_duration_seconds",
                                   .help = "How long jobs ran.",
                                   .label_names = {"function"}};
  PICOS_CO_ASSIGN_OR_RETURN(metrics::HistogramFamily * hist,
                            registry.AddHistogram(durations, metrics::DurationBuckets()));
  for (int i = 0; i < 100; ++i) hist->WithLabels({"square"})->Observe(0.0001 * i * i);
  PICOS_CO_ASSIGN_OR_RETURN(metrics::GaugeFamily * queue,
                            registry.AddGauge("picos_sample_queue_length", "Jobs waiting."));
  queue->Get()->Set(3);

  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<metrics::SchedulerMetrics> sched,
                            metrics::SchedulerMetrics::Register(registry, picos::ThisScheduler()));

  // A node, a peer connected to it, and a peer with the wrong secret.
  remote::NodeOptions a_options{.secret = "the sample's secret", .listen = {"tcp://127.0.0.1:0"},
                                .name = "a"};
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> a,
                            co_await remote::Node::Start(t, std::move(a_options)));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<metrics::NodeMetrics> node_metrics,
                            metrics::NodeMetrics::Register(registry, *a));
  remote::NodeOptions b_options{.secret = "the sample's secret", .name = "b"};
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> b,
                            co_await remote::Node::Start(t, std::move(b_options)));
  PICOS_CO_RETURN_IF_ERROR(co_await b->Connect(a->uris()[0]));
  remote::NodeOptions c_options{.secret = "not the sample's secret", .name = "c"};
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> c,
                            co_await remote::Node::Start(t, std::move(c_options)));
  absl::Status refused = co_await c->Connect(a->uris()[0]);
  if (refused.ok()) co_return absl::InternalError("a wrong secret was accepted");

  metrics::MetricsServerOptions options;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<metrics::MetricsServer> server,
                            co_await metrics::MetricsServer::Start(t, registry, std::move(options)));
  // The peer's "joined" reaches the counting task as a message: scrape until
  // it shows (bounded), as a scraper would see it.
  std::string body;
  for (int i = 0; i < 6000; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(body, co_await Scrape(server->address()));
    if (absl::StrContains(body, "picos_remote_peer_events_total{event=\"joined\"} 1\n") &&
        absl::StrContains(body, "picos_remote_handshakes_refused_total 1\n")) {
      break;
    }
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(10));
    PICOS_CO_RETURN_IF_ERROR(slept);
  }
  std::fwrite(body.data(), 1, body.size(), stdout);
  std::fflush(stdout);
  server.reset();
  node_metrics.reset();
  c.reset();
  PICOS_CO_RETURN_IF_ERROR(co_await b->Close());
  b.reset();
  a.reset();
  co_return absl::OkStatus();
}

}  // namespace

int main() { return picos::RunMain("metrics_sample", Main); }
