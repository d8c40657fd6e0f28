// A compute cluster's figures as Prometheus metrics (metrics/metrics.h), fed
// by the status events of one or more Computations (compute/computation.h).
//
//   picos::metrics::Registry registry;
//   absl::StatusOr<std::unique_ptr<picos::compute::ComputationMetrics>> m =
//       picos::compute::ComputationMetrics::Register(registry);
//   picos::compute::ComputationOptions o;
//   o.metrics = m->get();          // the Computation feeds it every event
//   ... serve `registry` (metrics/http_server.h, or the dashboard) ...
//
// A Computation given ComputationOptions::metrics calls Observe with each
// status event it makes (whether or not it has a status task), and
// JobQueued / JobDropped for what has no event (a job spawned, a job that
// ended while waiting for a worker). A program may also feed Observe from a
// status task of its own instead.
//
// Families (`function` is the job's function name, `node` a node's URI):
//   picos_compute_jobs{function,state}          gauge    waiting, running now
//   picos_compute_jobs_submitted_total{function} counter  jobs spawned
//   picos_compute_jobs_total{function,state}    counter  done, failed, lost,
//                                                        terminated (how jobs
//                                                        ended), rerun (times a
//                                                        job ran again after
//                                                        its worker was lost)
//   picos_compute_job_duration_seconds{function} histogram from job_started
//                                                        to job_finished (done
//                                                        or failed), on the
//                                                        calling scheduler's clock
//   picos_compute_workers{state}                gauge    disabled (discovered,
//                                                        waiting for EnableNode
//                                                        or EnableWorker), idle,
//                                                        busy, suspended,
//                                                        closed, lost
//   picos_compute_worker_restarts_total         counter  workers restarted
//   picos_compute_worker_setup_failures_total{stage}
//                                               counter  worker_setup_failed
//                                                        events, by the hook
//                                                        that failed: node or
//                                                        worker (its setup)
//   picos_compute_nodes{state}                  gauge    disabled, initialized,
//                                                        suspended, closed (also
//                                                        by CloseNode), lost
//   picos_compute_node_cpu_available_percent{node}, _memory_total_bytes,
//   _memory_available_bytes, _swap_total_bytes, _swap_free_bytes,
//   _disk_total_bytes, _disk_free_bytes, picos_compute_node_load{node,minutes}
//                                               gauges   the node's latest
//                                                        facts (node_discovered,
//                                                        node_initialized,
//                                                        node_health), for
//                                                        nodes neither lost
//                                                        nor closed
// Every state of a family is always shown (0 included), so a dashboard sees
// the whole set from the first scrape.
//
// Bounded: function names come from the client's code, node URIs from its
// Schedule calls, but a long-lived client may use many. At most
// Options::max_functions distinct functions get series of their own; later
// ones share the function label kOverflowLabelValue ("__overflow__").
// At most max_nodes nodes and max_workers workers are tracked (later ones
// are not shown, logged once), and at most max_jobs jobs alive (beyond,
// jobs are counted but not their durations).
//
// Threads: Observe, JobQueued and JobDropped may be called from any thread
// (they take a lock); the scrape's callbacks take the same lock, so a
// scrape may run on any thread too. Destroy the object after the
// Computations that feed it, and before the registry.
#ifndef PICOS_COMPUTE_COMPUTATION_METRICS_H_
#define PICOS_COMPUTE_COMPUTATION_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/kernel/value.h"
#include "metrics/metrics.h"

namespace picos::compute {

class ComputationMetrics {
 public:
  struct Options {
    size_t max_functions = 100;
    size_t max_nodes = 1000;
    size_t max_workers = 10000;
    size_t max_jobs = size_t{1} << 20;
    // Bucket bounds of the job durations, in seconds.
    std::vector<double> duration_buckets = metrics::DurationBuckets();
  };

  // Adds the families above to `registry`, which must outlive the object.
  // kAlreadyExists when the registry has them already (one per registry).
  static absl::StatusOr<std::unique_ptr<ComputationMetrics>> Register(metrics::Registry& registry,
                                                                      Options options);
  static absl::StatusOr<std::unique_ptr<ComputationMetrics>> Register(metrics::Registry& registry);
  ~ComputationMetrics();
  ComputationMetrics(const ComputationMetrics&) = delete;
  ComputationMetrics& operator=(const ComputationMetrics&) = delete;

  // One status event (a Value map with "type", "computation" and the fields
  // computation.h lists). Events of other types, and fields missing or of
  // the wrong type, are ignored: a status task may pass on anything it got.
  void Observe(const Value& event);
  // Job `job` of `computation`, running `fn`, was spawned and waits for a
  // worker.
  void JobQueued(const std::string& computation, uint64_t job, const std::string& fn);
  // The job ended while waiting, without an event (no worker could ever
  // take it, the computation closed): counted as failed.
  void JobDropped(const std::string& computation, uint64_t job);

  struct State;

 private:
  explicit ComputationMetrics(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_COMPUTATION_METRICS_H_
