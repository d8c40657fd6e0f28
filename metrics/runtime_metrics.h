// The figures the runtime and the remote layer keep, as metrics
// (metrics/metrics.h): read from their owners at each scrape, nothing added
// to their hot paths.
//
//   picos::metrics::Registry registry;
//   auto sched = picos::metrics::SchedulerMetrics::Register(registry, picos::ThisScheduler());
//   auto peers = picos::metrics::NodeMetrics::Register(registry, *node);
//   // ... serve `registry` with metrics/http_server.h on the same scheduler
//
// SchedulerMetrics (label `scheduler`, the scheduler's name):
//   picos_scheduler_tasks                gauge    tasks spawned and not ended
//   picos_scheduler_daemon_tasks         gauge    of those, daemons
//   picos_scheduler_timers               gauge    timeouts pending
//   picos_scheduler_task_resumes_total   counter  times a task woke
// NodeMetrics:
//   picos_remote_peers_connected            gauge    peers connected now
//   picos_remote_peer_connected{peer}       gauge    1 per peer ("name@uri"),
//                                                    at most 1,000 shown
//   picos_remote_reconnects_total           counter  broken connections
//                                                    re-established
//   picos_remote_handshakes_refused_total   counter  (wrong secret, garbage...)
//   picos_remote_peer_events_total{event}   counter  joined, left, lost (since
//                                                    Register)
//   picos_remote_heartbeat_losses_total     counter  peers lost to missed
//                                                    heartbeats
//   picos_remote_peer_messages_sent_total{peer}, _messages_received_total,
//   picos_remote_peer_bytes_sent_total{peer}, _bytes_received_total,
//   picos_remote_peer_heartbeats_missed_total{peer}
//                                           counters each connected peer's
//                                                    traffic (remote::PeerStats),
//                                                    at most 1,000 peers shown
//   picos_remote_peer_buffer_bytes{peer}    gauge    bytes kept for writing to
//                                                    it (PeerStats::buffer_bytes)
//
// Threads: the figures belong to the scheduler's thread (the node's), so the
// callbacks read them only when the scrape runs there (a MetricsServer
// started on that scheduler); from another thread they show nothing and log
// why. Register on that thread; destroy the returned object there, before
// the scheduler or the node.
#ifndef PICOS_METRICS_RUNTIME_METRICS_H_
#define PICOS_METRICS_RUNTIME_METRICS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task_group.h"
#include "core/remote/node.h"
#include "metrics/metrics.h"

namespace picos::metrics {

class SchedulerMetrics {
 public:
  // kAlreadyExists when the registry has these families (one scheduler per
  // registry).
  static absl::StatusOr<std::unique_ptr<SchedulerMetrics>> Register(Registry& registry,
                                                                    Scheduler& scheduler);

 private:
  SchedulerMetrics() = default;
  std::vector<CallbackHandle> handles_;
};

class NodeMetrics {
 public:
  // Subscribes a daemon task of the calling scheduler to node.peer_events()
  // to count them. kAlreadyExists when the registry has these families.
  static absl::StatusOr<std::unique_ptr<NodeMetrics>> Register(Registry& registry,
                                                               const remote::Node& node);
  ~NodeMetrics();

  struct Counts;

 private:
  NodeMetrics();
  std::shared_ptr<Counts> counts_;
  std::vector<CallbackHandle> handles_;
  std::unique_ptr<TaskGroup> tasks_;  // last: ends first
};

}  // namespace picos::metrics

#endif  // PICOS_METRICS_RUNTIME_METRICS_H_
