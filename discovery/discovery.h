// Discovery: picos processes that find each other by authenticated UDP
// multicast on a LAN, or through a static peer list where multicast is not
// allowed, and connect their remote nodes (core/remote/node.h) to each other
// (pycos's netpycos discovery, without its failures: nothing is parsed
// before its MAC is checked, a peer that fails to answer is retried, not
// forgotten, and the interface is chosen, never guessed from the default
// route).
//
//   picos::discovery::DiscoveryOptions o;
//   o.secret = secret;                       // the node's shared secret
//   o.name = "worker";
//   o.peers = config.peers;                  // static peers, optional
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::discovery::Discovery> d,
//       co_await picos::discovery::Discovery::Start(*node, std::move(o)));
//   ... peers join node->peer_events() as they are found ...
//   (void)co_await d->Stop();                // says goodbye
//
// What it does:
//  * Announces this process (its process id, name, the node's URIs and
//    protocol version) on the multicast group `group` out of the interface
//    `iface` with TTL `ttl`, at once and then every `announce_interval`
//    (the second one sooner: a first datagram may be lost), in a packet of
//    discovery/packet.capnp authenticated by HMAC-SHA256 under the secret.
//  * Listens on the group. A packet is refused, counted by cause (stats())
//    and logged rate-limited when its size, header or MAC is wrong (never
//    parsed further), when its timestamp is out of `replay_window` or its
//    nonce was seen (ReplayGuard). A peer heard with this build's protocol
//    version and at least one URI is dialled (Node::Connect) unless the node
//    is connected to it already; a failed dial is retried with exponential
//    backoff from `retry_initial`, capped at `retry_max`, while the peer
//    keeps announcing (up to `forget_after` since it was last heard).
//  * Static peers (`peers`) are dialled the same way and retried with the
//    same backoff for as long as discovery runs, and dialled again when
//    lost, so a process started before its peer still joins it.
//  * Stop() sends a goodbye packet; a peer that hears it stops dialling
//    this process. The node's connection close then says "left" to its
//    peers; a process that dies is found "lost" by the node's heartbeats
//    (NodeOptions::heartbeat_interval * heartbeat_misses), and dialled again
//    once it announces again.
//  * Logs at info level the group and interface used, and each peer found,
//    joined, left and lost (from the node's peer_events()). Each refused
//    packet is logged with its cause, rate-limited (a flood writes a few
//    lines); so that no cause goes unseen, a line every
//    `refusal_summary_interval` in which packets were refused counts them
//    by cause ("refused 9000 packets in the last 10s: bad mac 8000, ...").
//
// Threads: a Discovery belongs to the scheduler of the task that starts it,
// the node's; call it from that scheduler's tasks and destroy it before its
// node. Its tasks are daemons: they do not keep RunMain alive.
#ifndef PICOS_DISCOVERY_DISCOVERY_H_
#define PICOS_DISCOVERY_DISCOVERY_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "discovery/packet.h"

namespace picos::discovery {

namespace internal {
struct DiscoveryState;  // discovery.cc
}  // namespace internal

// The default multicast group and port (administratively scoped IPv4; for
// IPv6 give a group such as "[ff02::7069:636f]:9706").
inline constexpr char kDefaultGroup[] = "239.255.97.5:9706";

// Capped exponential backoff: initial, 2x, 4x ... up to max, then max.
// Deterministic (no jitter): retries of a few peers do not herd, and tests
// can check the schedule. Pure; any thread.
class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max) : initial_(initial), max_(max), next_(initial) {}
  // The delay before the next attempt.
  absl::Duration Next() {
    const absl::Duration d = std::min(next_, max_);
    next_ = std::min(next_ * 2, max_);
    return d;
  }
  // After a success: the next failure waits `initial` again.
  void Reset() { next_ = initial_; }

 private:
  absl::Duration initial_, max_, next_;
};

struct DiscoveryOptions {
  // The shared secret (the node's): announcements are authenticated with it.
  // Required.
  std::string secret;
  // Multicast group and port, "239.255.97.5:9706" or "[ff02::1:2]:9706";
  // empty: no multicast (static peers only).
  std::string group = kDefaultGroup;
  // The interface to announce and listen on: a name ("eth0", "lo") or, for
  // IPv4, one of its addresses. Empty: the first interface that is up, not
  // loopback and has an address of the group's family, else "lo" (a host
  // whose only address is loopback still discovers its own processes).
  std::string iface;
  // Multicast TTL / hop limit: 1 stays on the link.
  int ttl = 1;
  // Static peers to dial (URIs the node's transports know).
  std::vector<std::string> peers;
  // This process's name in announcements (for logs); and the URIs announced
  // (empty: the node's uris()).
  std::string name;
  std::vector<std::string> uris;
  absl::Duration announce_interval = absl::Seconds(1);
  absl::Duration retry_initial = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(5);
  // A discovered peer whose dial fails is retried until it has not been
  // heard for this long.
  absl::Duration forget_after = absl::Seconds(30);
  // At most one summary line of refused packets per interval (see above).
  absl::Duration refusal_summary_interval = absl::Seconds(10);
  // ReplayGuard's window and nonce capacity.
  absl::Duration replay_window = absl::Seconds(30);
  size_t replay_capacity = 4096;
  // Most peers remembered at once; announcements from more are ignored
  // (counted in stats().ignored) until some are forgotten.
  size_t max_peers = 1024;
  // For tests that run several nodes in one process: the process id to
  // announce, the node's NodeOptions::process_id. Empty: picos::ProcessId().
  std::string process_id;
  // The wall clock packets are stamped and checked with (absl::Now when
  // null); tests move it. Timers (announcements, backoff) use the
  // scheduler's clock.
  std::function<absl::Time()> wall_clock;
};

// What a Discovery has seen so far.
struct DiscoveryStats {
  uint64_t received = 0;  // datagrams read from the group
  uint64_t accepted = 0;  // authenticated, fresh announcements from others
  std::array<uint64_t, kRefusalCount> refused{};  // by Refusal
  uint64_t incompatible = 0;  // accepted but another protocol version
  uint64_t ignored = 0;       // over max_peers
  uint64_t dials = 0;         // Node::Connect calls made
  uint64_t failed_dials = 0;
  uint64_t sent = 0;  // announcements sent

  uint64_t refused_total() const;
};

class Discovery {
 public:
  // Validates `options` (kInvalidArgument for a bad secret, group, TTL or
  // duration), opens the multicast socket (the transport's error, or
  // kNotFound for an interface that does not exist) and starts announcing,
  // listening and dialling static peers. `node` must outlive the Discovery.
  // Suspends.
  static Task<absl::StatusOr<std::unique_ptr<Discovery>>> Start(remote::Node& node, DiscoveryOptions options);

  // Stops at once, without a goodbye (Stop() says goodbye).
  ~Discovery();
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  // Sends a goodbye packet (when multicast is on) and stops: no more
  // announcements, dials or listening. Idempotent. Suspends.
  Task<absl::Status> Stop();

  // The mcast:// URI of the group socket ("" without multicast), with the
  // interface chosen.
  const std::string& group_uri() const;
  DiscoveryStats stats() const;
  // Peers heard on the group and not yet forgotten, as "name@first-uri".
  std::vector<std::string> known() const;

 private:
  explicit Discovery(std::shared_ptr<internal::DiscoveryState> state);
  // Shared with the tasks, which may outlive the object by a turn of the loop.
  std::shared_ptr<internal::DiscoveryState> state_;
};

// The interface Discovery chooses when DiscoveryOptions::iface is empty, for
// a group of the given family. Any thread.
std::string DefaultInterface(bool ipv6);

// "tcp://ADDR:0" with ADDR the IPv4 address of `iface` (DefaultInterface(false)
// when empty): a listen URI on the interface discovery announces on, so
// that the URIs announced are ones peers on that link can dial (a node
// listening on 0.0.0.0 would announce an address no peer can reach).
// kNotFound when the interface has no IPv4 address. Any thread.
absl::StatusOr<std::string> ListenUriOn(const std::string& iface);

}  // namespace picos::discovery

#endif  // PICOS_DISCOVERY_DISCOVERY_H_
