#include "discovery/discovery.h"

#include <uv.h>

#include <algorithm>
#include <array>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/kernel/channel.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/system_message.h"
#include "core/kernel/value.h"
#include "core/net/ip_endpoint.h"
#include "core/net/udp.h"
#include "core/remote/handshake.h"
#include "core/wire/value_codec.h"
#include "transports/udp_multicast/udp_multicast.h"

namespace picos::discovery {

uint64_t DiscoveryStats::refused_total() const {
  uint64_t n = 0;
  for (uint64_t r : refused) n += r;
  return n;
}

std::string DefaultInterface(bool ipv6) {
  uv_interface_address_t* addrs = nullptr;
  int count = 0;
  std::string found;
  if (uv_interface_addresses(&addrs, &count) == 0) {
    for (int i = 0; i < count && found.empty(); ++i) {
      const int family = addrs[i].address.address4.sin_family;
      if (!addrs[i].is_internal && family == (ipv6 ? AF_INET6 : AF_INET)) found = addrs[i].name;
    }
    uv_free_interface_addresses(addrs, count);
  }
  return found.empty() ? "lo" : found;
}

absl::StatusOr<std::string> ListenUriOn(const std::string& iface) {
  absl::StatusOr<std::string> addr = InterfaceIpv4Address(iface.empty() ? DefaultInterface(false) : iface);
  if (!addr.ok()) return addr.status();
  return absl::StrCat("tcp://", *addr, ":0");
}

namespace internal {

// A peer heard on the group.
struct Known {
  std::string name;
  std::vector<std::string> uris;
  int64_t last_heard_ns = 0;
  bool dialling = false;  // a DialDiscovered task runs for it
};

// Everything a Discovery and its tasks share; lives while either does.
struct DiscoveryState {
  remote::Node* node = nullptr;
  DiscoveryOptions options;
  std::string self_pid;  // what this process announces: its own packets, looped back, are skipped
  std::string group_uri;
  std::unique_ptr<UdpSocket> socket;  // null without multicast
  IpEndpoint group;
  ReplayGuard guard;
  DiscoveryStats stats;
  absl::flat_hash_map<std::string, Known> known;  // by process id
  absl::flat_hash_set<std::string> connected;     // first URIs of connected peers (peer events)
  std::vector<TaskRef> tasks;
  SinkId events_sink;
  bool stopped = false;
  // What the last refusal summary counted, and when (scheduler clock).
  std::array<uint64_t, kRefusalCount> summarized{};
  int64_t summarized_ns = 0;

  explicit DiscoveryState(DiscoveryOptions o) : options(std::move(o)), guard(options.replay_window, options.replay_capacity) {}

  absl::Time WallNow() const { return options.wall_clock ? options.wall_clock() : absl::Now(); }

  Announcement Self(Announcement::Kind kind) const {
    Announcement a;
    a.kind = kind;
    a.process_id = self_pid;
    a.name = options.name;
    a.uris = options.uris.empty() ? node->uris() : options.uris;
    if (a.uris.size() > MaxUris()) a.uris.resize(MaxUris());
    a.protocol_version = remote::ProtocolVersion();
    return a;
  }

  Task<absl::Status> Announce(Announcement::Kind kind) {
    if (socket == nullptr || socket->closed()) co_return absl::OkStatus();
    absl::StatusOr<std::string> bytes = EncodeAnnouncement(Self(kind), options.secret, WallNow());
    if (!bytes.ok()) co_return bytes.status();
    absl::Status sent = co_await socket->SendTo(*std::move(bytes), group, absl::Seconds(5));
    if (sent.ok()) ++stats.sent;
    co_return sent;
  }

  void Spawn(const char* name, Task<> task) {
    std::erase_if(tasks, [](const TaskRef& t) { return t.done(); });
    tasks.push_back(ThisScheduler().Spawn(SpawnOptions{.name = name, .daemon = true}, std::move(task)));
  }

  void Shutdown() {
    if (stopped) return;
    stopped = true;
    if (socket != nullptr) socket->Close();
    (void)Channel(node->peer_events()).Unsubscribe(events_sink);
    for (const TaskRef& t : tasks) (void)t.Terminate();
    tasks.clear();
  }

  // Logs the packets refused since the last summary, by cause, at most once
  // per refusal_summary_interval: the per-packet lines are rate-limited,
  // this one says what they left out.
  void SummarizeRefusals() {
    const int64_t now = ThisScheduler().NowNs();
    if (now - summarized_ns < absl::ToInt64Nanoseconds(options.refusal_summary_interval)) return;
    std::vector<std::string> causes;
    uint64_t total = 0;
    for (size_t i = 0; i < kRefusalCount; ++i) {
      const uint64_t n = stats.refused[i] - summarized[i];
      if (n == 0) continue;
      total += n;
      causes.push_back(absl::StrCat(RefusalName(static_cast<Refusal>(i)), " ", n));
    }
    if (total == 0) return;
    PICOS_LOG(info, "discovery: refused {} packets in the last {}: {}", total,
              absl::FormatDuration(absl::Trunc(absl::Nanoseconds(now - summarized_ns), absl::Milliseconds(1))), absl::StrJoin(causes, ", "));
    summarized = stats.refused;
    summarized_ns = now;
  }

  // Forgets peers not heard for forget_after (a dialler still running
  // forgets its own), so that known() and max_peers count live ones only.
  void ForgetSilent() {
    const int64_t limit_ns = ThisScheduler().NowNs() - absl::ToInt64Nanoseconds(options.forget_after);
    for (auto it = known.begin(); it != known.end();) {
      if (!it->second.dialling && it->second.last_heard_ns < limit_ns) {
        PICOS_LOG(info, "discovery: forgetting {} at {}: not heard for {}", it->second.name, it->second.uris[0],
                  absl::FormatDuration(options.forget_after));
        known.erase(it++);
      } else {
        ++it;
      }
    }
  }

  // The node's peer events: which peers are connected, and the log.
  absl::Status OnPeerEvent(const Value& msg) {
    const Value* p = SystemMessagePayload(msg, remote::kPeerEventMessage);
    if (p == nullptr || !(*p)["event"].is_string() || !(*p)["uri"].is_string()) return absl::OkStatus();
    const std::string& event = (*p)["event"].as_string();
    const std::string& uri = (*p)["uri"].as_string();
    const std::string name = (*p)["name"].is_string() ? (*p)["name"].as_string() : "";
    if (event == "joined") {
      connected.insert(uri);
      PICOS_LOG(info, "discovery: peer {} joined at {}", name, uri);
    } else {
      connected.erase(uri);
      const std::string why = (*p)["reason"].is_string() ? (*p)["reason"].as_string() : "";
      PICOS_LOG(info, "discovery: peer {} at {} {}: {}", name, uri, event, why);
    }
    return absl::OkStatus();
  }
};

}  // namespace internal

namespace {

using State = internal::DiscoveryState;
using internal::Known;

Task<> AnnounceLoop(std::shared_ptr<State> s) {
  // At once, again soon after (a first datagram may be lost, and peers that
  // start together hear each other sooner), then every interval.
  absl::Duration wait = std::min(s->options.announce_interval, absl::Milliseconds(200));
  s->summarized_ns = ThisScheduler().NowNs();
  while (!s->stopped) {
    s->ForgetSilent();
    s->SummarizeRefusals();
    absl::Status sent = co_await s->Announce(Announcement::Kind::kHello);
    if (!sent.ok() && !s->stopped) PICOS_LOG_LIMITED(warn, "discovery: announcing failed: {}", sent.ToString());
    absl::Status slept = co_await Sleep(wait);
    if (!slept.ok()) break;
    wait = s->options.announce_interval;
  }
}

// Dials a discovered peer until the node is connected to it, it said
// goodbye, it has been silent for forget_after, or discovery stops.
Task<> DialDiscovered(std::shared_ptr<State> s, std::string pid) {
  Backoff backoff(s->options.retry_initial, s->options.retry_max);
  for (size_t attempt = 0; !s->stopped; ++attempt) {
    auto it = s->known.find(pid);
    if (it == s->known.end()) co_return;  // goodbye
    if (ThisScheduler().NowNs() - it->second.last_heard_ns > absl::ToInt64Nanoseconds(s->options.forget_after)) {
      PICOS_LOG(info, "discovery: forgetting {} at {}: not heard for {}", it->second.name, it->second.uris[0],
                absl::FormatDuration(s->options.forget_after));
      s->known.erase(it);
      co_return;
    }
    const std::string name = it->second.name;
    const std::string uri = it->second.uris[attempt % it->second.uris.size()];
    ++s->stats.dials;
    absl::Status c = co_await s->node->Connect(uri);
    if (s->stopped) co_return;
    if (c.ok()) break;
    ++s->stats.failed_dials;
    const absl::Duration wait = backoff.Next();
    PICOS_LOG_LIMITED(info, "discovery: dialling {} at {} failed: {}; again in {}", name, uri, c.ToString(),
                      absl::FormatDuration(wait));
    absl::Status slept = co_await Sleep(wait);
    if (!slept.ok()) co_return;
  }
  if (auto it = s->known.find(pid); it != s->known.end()) it->second.dialling = false;
}

// Keeps a static peer connected for as long as discovery runs.
Task<> DialStatic(std::shared_ptr<State> s, std::string uri) {
  Backoff backoff(s->options.retry_initial, s->options.retry_max);
  while (!s->stopped) {
    ++s->stats.dials;
    // Cheap while connected: the node finds the connection by its URI.
    absl::Status c = co_await s->node->Connect(uri);
    if (s->stopped) co_return;
    absl::Duration wait;
    if (c.ok()) {
      backoff.Reset();
      wait = s->options.announce_interval;
    } else {
      ++s->stats.failed_dials;
      wait = backoff.Next();
      PICOS_LOG_LIMITED(info, "discovery: static peer {} did not answer: {}; again in {}", uri, c.ToString(),
                        absl::FormatDuration(wait));
    }
    absl::Status slept = co_await Sleep(wait);
    if (!slept.ok()) co_return;
  }
}

void OnDatagram(const std::shared_ptr<State>& s, const Datagram& d) {
  ++s->stats.received;
  Refusal why = Refusal::kNone;
  absl::StatusOr<Announcement> a = DecodeAnnouncement(d.data, s->options.secret, &why);
  if (a.ok() && a->process_id == s->self_pid) return;  // our own, looped back
  if (a.ok()) why = s->guard.Check(*a, s->WallNow());
  if (why != Refusal::kNone) {
    ++s->stats.refused[static_cast<size_t>(why)];
    PICOS_LOG_LIMITED(warn, "discovery: refused a packet of {} bytes from {}: {}", d.data.size(),
                      d.from.ToString(), a.ok() ? std::string(RefusalName(why)) : std::string(a.status().message()));
    return;
  }
  ++s->stats.accepted;
  if (a->kind == Announcement::Kind::kGoodbye) {
    if (auto it = s->known.find(a->process_id); it != s->known.end()) {
      PICOS_LOG(info, "discovery: {} at {} said goodbye", it->second.name,
                it->second.uris.empty() ? "-" : it->second.uris[0]);
      s->known.erase(it);
    }
    return;
  }
  if (a->protocol_version != remote::ProtocolVersion()) {
    ++s->stats.incompatible;
    PICOS_LOG_LIMITED(warn, "discovery: cannot join {} from {}: protocol version {}, this one speaks {}", a->name,
                      d.from.ToString(), a->protocol_version, remote::ProtocolVersion());
    return;
  }
  if (a->uris.empty()) return;  // a client-only process: it dials us
  auto it = s->known.find(a->process_id);
  if (it == s->known.end()) {
    if (s->known.size() >= s->options.max_peers) {
      ++s->stats.ignored;
      return;
    }
    it = s->known.emplace(a->process_id, Known{}).first;
    PICOS_LOG(info, "discovery: found {} at {} (from {})", a->name, absl::StrJoin(a->uris, " "), d.from.ToString());
  }
  Known& k = it->second;
  k.name = a->name;
  k.uris = a->uris;
  k.last_heard_ns = ThisScheduler().NowNs();
  if (k.dialling || s->connected.contains(k.uris[0])) return;
  k.dialling = true;
  s->Spawn("discovery-dial", DialDiscovered(s, a->process_id));
}

Task<> ListenLoop(std::shared_ptr<State> s) {
  while (!s->stopped) {
    absl::StatusOr<Datagram> d = co_await s->socket->ReceiveFrom();
    if (!d.ok()) {
      if (!s->stopped) PICOS_LOG(warn, "discovery: the group socket failed: {}", d.status().ToString());
      co_return;
    }
    OnDatagram(s, *d);
  }
}

absl::Status Validate(const DiscoveryOptions& o) {
  if (absl::Status s = remote::ValidateSecret(o.secret); !s.ok()) return s;
  if (o.ttl < 0 || o.ttl > 255) return absl::InvalidArgumentError(absl::StrCat("ttl ", o.ttl, " (0 to 255)"));
  for (absl::Duration d : {o.announce_interval, o.retry_initial, o.retry_max, o.forget_after, o.replay_window,
                           o.refusal_summary_interval}) {
    if (d <= absl::ZeroDuration() || d > absl::Hours(24)) {
      return absl::InvalidArgumentError(absl::StrCat("a discovery duration of ", absl::FormatDuration(d),
                                                     " (more than 0, at most a day)"));
    }
  }
  if (o.retry_initial > o.retry_max) return absl::InvalidArgumentError("retry_initial over retry_max");
  if (o.replay_capacity == 0 || o.max_peers == 0) return absl::InvalidArgumentError("a capacity of 0");
  if (o.name.size() > MaxNameSize()) {
    return absl::InvalidArgumentError(absl::StrCat("a name of ", o.name.size(), " bytes (at most ", MaxNameSize(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

Task<absl::StatusOr<std::unique_ptr<Discovery>>> Discovery::Start(remote::Node& node, DiscoveryOptions options) {
  if (absl::Status v = Validate(options); !v.ok()) co_return v;
  auto s = std::make_shared<State>(std::move(options));
  s->node = &node;
  s->self_pid = s->options.process_id.empty() ? ProcessId() : s->options.process_id;
  // Refuse at start what an announcement could not carry.
  if (absl::StatusOr<std::string> probe =
          EncodeAnnouncement(s->Self(Announcement::Kind::kHello), s->options.secret, absl::Now());
      !probe.ok()) {
    co_return absl::InvalidArgumentError(absl::StrCat("this process cannot be announced: ", probe.status().message()));
  }
  if (!s->options.group.empty()) {
    const bool v6 = absl::StrContains(s->options.group, '[');
    if (s->options.iface.empty()) s->options.iface = DefaultInterface(v6);
    transports::McastEndpoint ep;
    ep.iface = s->options.iface;
    ep.ttl = s->options.ttl;
    ep.loop = true;  // other processes of this host hear us (our own are skipped)
    absl::StatusOr<transports::McastEndpoint> parsed = transports::ParseMcastUri(
        absl::StrCat("mcast://", s->options.group, "?iface=", s->options.iface, "&ttl=", s->options.ttl));
    if (!parsed.ok()) {
      co_return absl::InvalidArgumentError(absl::StrCat("discovery group ", s->options.group, " on ",
                                                        s->options.iface, ": ", parsed.status().message()));
    }
    UdpOptions uo;
    uo.max_datagram = MaxPacketSize();  // longer ones are dropped (and counted) by the socket
    uo.queue_limit = 1024;
    absl::StatusOr<std::unique_ptr<UdpSocket>> sock = transports::OpenMulticast(*parsed, uo);
    if (!sock.ok()) co_return sock.status();
    s->socket = *std::move(sock);
    // Port 0 bound a free port: the group is where the socket listens.
    // An IPv6 link-local group needs the interface as its scope to be sent
    // to ("network is unreachable" without it).
    const bool named_iface = !absl::StrContains(s->options.iface, ':') && !absl::StrContains(s->options.iface, '.');
    absl::StatusOr<IpEndpoint> group = IpEndpoint::Parse(
        parsed->group.is_v6() && named_iface ? absl::StrCat(parsed->group.host(), "%", s->options.iface)
                                             : parsed->group.host(),
        s->socket->local_address().port());
    if (!group.ok()) co_return group.status();
    parsed->group = *group;
    s->group = *group;
    s->group_uri = parsed->ToUri();
    const std::vector<std::string> uris = s->Self(Announcement::Kind::kHello).uris;
    PICOS_LOG(info, "discovery: announcing {} on group {} (interface {}, ttl {}) every {}",
              uris.empty() ? std::string("no URI (a client: it dials, is not dialled)") : absl::StrJoin(uris, " "), s->group.ToString(), s->options.iface,
              s->options.ttl, absl::FormatDuration(s->options.announce_interval));
  } else {
    PICOS_LOG(info, "discovery: no multicast group; static peers only");
  }
  std::weak_ptr<State> weak = s;
  absl::StatusOr<SinkId> sink = Channel(node.peer_events()).SubscribeSink([weak](const Value& m) -> absl::Status {
    std::shared_ptr<State> st = weak.lock();
    if (st == nullptr || st->stopped) return absl::CancelledError("discovery stopped");
    return st->OnPeerEvent(m);
  });
  if (!sink.ok()) co_return sink.status();
  s->events_sink = *sink;
  for (const std::string& p : node.peers()) {
    // "name@uri": peers connected before discovery started.
    if (size_t at = p.find('@'); at != std::string::npos) s->connected.insert(p.substr(at + 1));
  }
  if (s->socket != nullptr) {
    s->Spawn("discovery-listen", ListenLoop(s));
    s->Spawn("discovery-announce", AnnounceLoop(s));
  }
  if (!s->options.peers.empty()) {
    PICOS_LOG(info, "discovery: static peers {}", absl::StrJoin(s->options.peers, " "));
  }
  for (const std::string& p : s->options.peers) s->Spawn("discovery-static", DialStatic(s, p));
  co_return std::unique_ptr<Discovery>(new Discovery(std::move(s)));
}

Discovery::Discovery(std::shared_ptr<internal::DiscoveryState> state) : state_(std::move(state)) {}

Discovery::~Discovery() { state_->Shutdown(); }

Task<absl::Status> Discovery::Stop() {
  if (state_->stopped) co_return absl::OkStatus();
  std::shared_ptr<State> s = state_;
  absl::Status bye = co_await s->Announce(Announcement::Kind::kGoodbye);
  s->Shutdown();
  co_return bye;
}

const std::string& Discovery::group_uri() const { return state_->group_uri; }
DiscoveryStats Discovery::stats() const { return state_->stats; }

std::vector<std::string> Discovery::known() const {
  std::vector<std::string> out;
  for (const auto& [pid, k] : state_->known) out.push_back(absl::StrCat(k.name, "@", k.uris[0]));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace picos::discovery
