#include "metrics/runtime_metrics.h"

#include <string>
#include <utility>

#include "core/kernel/channel.h"
#include "core/kernel/log.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"

namespace picos::metrics {
namespace {

// True when the scrape runs on `owner`'s thread; logs why not otherwise.
bool OnThread(const Scheduler* owner, const char* what) {
  if (Scheduler::Current() == owner) return true;
  PICOS_LOG_LIMITED(warn, "metrics: {} read from another thread than its scheduler's: not shown",
                    what);
  return false;
}

// One sample without labels, read on the owner's thread.
template <typename F>
SampleCallback One(const Scheduler* owner, const char* what, F read) {
  return [owner, what, read]() -> std::vector<Sample> {
    if (!OnThread(owner, what)) return {};
    return {Sample{{}, static_cast<double>(read())}};
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<SchedulerMetrics>> SchedulerMetrics::Register(Registry& registry,
                                                                              Scheduler& scheduler) {
  std::unique_ptr<SchedulerMetrics> m(new SchedulerMetrics());
  const Scheduler* s = &scheduler;
  auto labelled = [s](double (*read)(const Scheduler&)) -> SampleCallback {
    return [s, read]() -> std::vector<Sample> {
      if (!OnThread(s, "a scheduler's figures")) return {};
      return {Sample{{s->name()}, read(*s)}};
    };
  };
  struct Def {
    const char* name;
    const char* help;
    Type type;
    double (*read)(const Scheduler&);
  };
  const Def defs[] = {
      {"picos_scheduler_tasks", "Tasks spawned and not yet ended, daemons included.", Type::kGauge,
       [](const Scheduler& x) { return double(x.task_count()); }},
      {"picos_scheduler_daemon_tasks", "Daemon tasks spawned and not yet ended.", Type::kGauge,
       [](const Scheduler& x) { return double(x.daemon_count()); }},
      {"picos_scheduler_timers", "Timeouts pending in the scheduler's timer heap.", Type::kGauge,
       [](const Scheduler& x) { return double(x.timer_count()); }},
      {"picos_scheduler_task_resumes_total", "Times a task was resumed.", Type::kCounter,
       [](const Scheduler& x) { return double(x.resume_count()); }},
  };
  for (const Def& d : defs) {
    PICOS_ASSIGN_OR_RETURN(
        CallbackHandle h,
        registry.AddCallback({.name = d.name, .help = d.help, .label_names = {"scheduler"}}, d.type,
                             labelled(d.read)));
    m->handles_.push_back(std::move(h));
  }
  return m;
}

struct NodeMetrics::Counts {
  std::atomic<uint64_t> joined{0};
  std::atomic<uint64_t> left{0};
  std::atomic<uint64_t> lost{0};
};

NodeMetrics::NodeMetrics() : counts_(std::make_shared<Counts>()) {}
NodeMetrics::~NodeMetrics() = default;

namespace {

Task<absl::Status> CountPeerEvents(std::shared_ptr<NodeMetrics::Counts> counts) {
  SetDaemon(Self());  // counting never keeps a program alive
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return absl::OkStatus();  // terminated: the metrics are going
    const Value* ev = SystemMessagePayload(*m, remote::kPeerEventMessage);
    if (ev == nullptr) continue;  // the channel's close, or a stray message
    absl::StatusOr<std::string> event = ev->Get<std::string>("event");
    if (!event.ok()) continue;
    if (*event == "joined") ++counts->joined;
    if (*event == "left") ++counts->left;
    if (*event == "lost") ++counts->lost;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<NodeMetrics>> NodeMetrics::Register(Registry& registry,
                                                                   const remote::Node& node) {
  std::unique_ptr<NodeMetrics> m(new NodeMetrics());
  const Scheduler* s = &ThisScheduler();
  const remote::Node* n = &node;
  auto add = [&](FamilyOptions o, Type type, SampleCallback cb) -> absl::Status {
    PICOS_ASSIGN_OR_RETURN(CallbackHandle h, registry.AddCallback(std::move(o), type, std::move(cb)));
    m->handles_.push_back(std::move(h));
    return absl::OkStatus();
  };
  PICOS_RETURN_IF_ERROR(add({.name = "picos_remote_peers_connected", .help = "Peers connected now."},
                            Type::kGauge,
                            One(s, "a node's peers", [n] { return n->peers().size(); })));
  PICOS_RETURN_IF_ERROR(add(
      {.name = "picos_remote_peer_connected",
       .help = "1 for each peer connected now, by name@uri.",
       .label_names = {"peer"}},
      Type::kGauge, [s, n]() -> std::vector<Sample> {
        if (!OnThread(s, "a node's peers")) return {};
        std::vector<Sample> out;
        for (std::string& p : n->peers()) out.push_back({{std::move(p)}, 1});
        return out;
      }));
  PICOS_RETURN_IF_ERROR(
      add({.name = "picos_remote_reconnects_total",
           .help = "Broken connections to peers re-established (sessions that went on)."},
          Type::kCounter, One(s, "a node's reconnects", [n] { return n->reconnects(); })));
  PICOS_RETURN_IF_ERROR(add(
      {.name = "picos_remote_handshakes_refused_total",
       .help = "Connections refused in the handshake (wrong secret or version, garbage)."},
      Type::kCounter, One(s, "a node's handshakes", [n] { return n->refused_handshakes(); })));
  PICOS_RETURN_IF_ERROR(
      add({.name = "picos_remote_heartbeat_losses_total",
           .help = "Peers lost because they missed heartbeat_misses heartbeats in a row."},
          Type::kCounter, One(s, "a node's heartbeat losses", [n] { return n->heartbeat_losses(); })));
  // Each peer's traffic (remote::PeerStats), one family per figure.
  struct PeerDef {
    const char* name;
    const char* help;
    uint64_t remote::PeerStats::*field;
    Type type = Type::kCounter;
  };
  const PeerDef peer_defs[] = {
      {"picos_remote_peer_messages_sent_total", "Frames (messages, calls, replies) sent to each peer.",
       &remote::PeerStats::messages_sent},
      {"picos_remote_peer_messages_received_total", "Frames received from each peer and applied.",
       &remote::PeerStats::messages_received},
      {"picos_remote_peer_bytes_sent_total", "Bytes written to each peer's connections.",
       &remote::PeerStats::bytes_sent},
      {"picos_remote_peer_bytes_received_total", "Bytes read from each peer's connections.",
       &remote::PeerStats::bytes_received},
      {"picos_remote_peer_heartbeats_missed_total",
       "Heartbeat intervals in which a peer was not heard from.", &remote::PeerStats::heartbeats_missed},
      {"picos_remote_peer_buffer_bytes",
       "Bytes kept for writing to each peer: unacknowledged batches and spare buffers.",
       &remote::PeerStats::buffer_bytes, Type::kGauge},
  };
  for (const PeerDef& d : peer_defs) {
    auto field = d.field;
    PICOS_RETURN_IF_ERROR(add({.name = d.name, .help = d.help, .label_names = {"peer"}}, d.type,
                              [s, n, field]() -> std::vector<Sample> {
                                if (!OnThread(s, "a node's peers")) return {};
                                std::vector<Sample> out;
                                for (remote::PeerStats& p : n->peer_stats()) {
                                  const double v = static_cast<double>(p.*field);
                                  out.push_back({{std::move(p.peer)}, v});
                                }
                                return out;
                              }));
  }
  std::shared_ptr<Counts> counts = m->counts_;
  PICOS_RETURN_IF_ERROR(add(
      {.name = "picos_remote_peer_events_total",
       .help = "Peers that joined, left or were lost since the metrics were registered.",
       .label_names = {"event"}},
      Type::kCounter, [counts]() -> std::vector<Sample> {
        return {{{"joined"}, double(counts->joined.load())},
                {{"left"}, double(counts->left.load())},
                {{"lost"}, double(counts->lost.load())}};
      }));
  m->tasks_ = std::make_unique<TaskGroup>(ThisScheduler(), TaskGroup::Options{.name = "node-metrics"});
  PICOS_ASSIGN_OR_RETURN(TaskRef counter, m->tasks_->Spawn(&CountPeerEvents, counts));
  PICOS_RETURN_IF_ERROR(Channel(node.peer_events()).Subscribe(counter));
  return m;
}

}  // namespace picos::metrics
