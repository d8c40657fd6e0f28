// A picos process as a peer on the network (netpycos): it listens on
// transport URIs, connects to other peers by URI, authenticates every
// connection (core/remote/handshake.h), and makes handles of tasks on other
// peers work like local ones: Send, Resume, Terminate, Throw, Join and
// Monitor on a TaskRef that names a remote task; Subscribe (a task or a
// relay channel, with a transform that runs on the subscriber's side),
// Unsubscribe, Send, Deliver with a count and Close on a ChannelRef that
// names a remote channel; LocateTask and LocateChannel at
// Location::Peer(uri) or Location::Anywhere().
//
//   const picos::TransportRegistry& t = picos::transports::DefaultTransports();
//   picos::remote::NodeOptions o{.secret = secret, .listen = {"tcp://0.0.0.0:9705"}};
//   absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
//       co_await picos::remote::Node::Start(t, std::move(o));
//   // ... in any task of this scheduler:
//   absl::StatusOr<picos::TaskRef> server = co_await picos::LocateTask(
//       "server", picos::Location::Peer("tcp://10.0.0.2:9705"), absl::Seconds(5));
//   (void)server->Send(picos::Value::Map({{"client", picos::Self()}, {"n", 7}}));
//   absl::StatusOr<picos::Value> result = co_await server->Join();
//
// Guarantees of this version, each tested (testing/remote_test.cc,
// testing/remote_reconnect_test.cc):
//  * Every connection runs the handshake before any other byte is decoded; a
//    wrong secret is refused on both sides and logged as "secret mismatch",
//    a version mismatch or a garbage peer as what it is.
//  * One connection per pair of peers, however many dials, from either side
//    and at the same moment: a peer is found by any URI it listens on or
//    was dialled at, and by its process id. Of the two, the peer with the
//    lower process id (the arbiter) chooses: the first connection whose
//    handshake ends on its side is kept, any other is declined and closed
//    while that one lives. The other peer sends nothing on a connection
//    until the arbiter has said it is kept (its Connect waits for that,
//    within connect_timeout), so no message is ever sent on a connection
//    that is then closed, and every Connect gives the kept connection.
//    Locate at a peer not yet connected connects first.
//  * One copy of each broadcast crosses a connection, however many tasks
//    and channels of this process subscribe to the peer's channel: they
//    share one subscription there, weighted by their number
//    (Channel::SetSinkWeight), so the peer's Deliver counts each of them;
//    each transform runs here, per subscriber. A subscriber task that ended
//    is dropped at the next broadcast, as by a local channel.
//  * co_await task.Deliver(msg, timeout) on a remote task's handle returns
//    once the task's mailbox took the message (a full bounded mailbox is
//    waited for there), with the error the task's own Deliver would give.
//  * Messages from one sender thread to one remote task arrive in the order
//    sent, also across a connection that broke and was re-established.
//    Everything queued for a peer goes out in one write as soon as the
//    writer runs (batching without holding anything back on an idle link).
//  * A peer is a session that outlives its connections. Exactly once while
//    the peer lives: every frame accepted for a peer (a Send, a call, a
//    reply, a monitor or channel frame) is applied there once, reconnects
//    included; batches are numbered and acknowledged (on traffic back, or a
//    ping every few batches or at the heartbeat tick: no round trip per
//    message), the sender keeps what is not acknowledged, and after a
//    reconnect each side writes again only what the other lacks, in order
//    (duplicates are dropped by number). When a connection breaks (a
//    reset, a failed read or write) the side that dialled dials the same URI
//    again, with backoff from 10 ms to 1 s, and the other waits; the
//    handshake proves the same process and each side's session id the same
//    session. Proxies, pending calls, monitors and subscriptions carry on;
//    no peer event is broadcast (reconnects() counts them).
//  * The peer is lost (below) when reconnect_grace passes without a new
//    connection; at once when the redial finds nothing listening at the
//    peer's address (a killed process: a dead peer is not kept for the
//    grace period by the side that dials), when it reaches another process
//    there (a restarted peer is a new peer; the old one is lost), when the
//    secret or version no longer match, and on missed heartbeats (a stream
//    that stays up but carries nothing: no redial). A stream that ends after
//    the peer's goodbye (Node::Close) is a peer that left: "left", no
//    redial; one that ends without it (a killed process: its kernel closes
//    the stream in order) is a break like any other, so a killed peer is
//    "lost". With the defaults a
//    dead peer is lost within 5 s on either side. What was accepted for a
//    lost peer and not acknowledged is reported failed (logged, with its
//    Join/Locate/Deliver failing), never sent to anyone again.
//  * Handles inside messages, replies and locate results cross as
//    identities: a handle sent back to its own process is the original local
//    handle; one of the peer becomes a proxy (the same proxy for the same
//    task while the connection lives); one of a third process is reached
//    over this node's own connection to that process. Without one, the node
//    asks the peer that sent the handle where that process listens (its
//    URIs do not travel in handles) and connects; calls made meanwhile wait
//    in order (at most 4096, then kResourceExhausted), and if the process
//    cannot be reached every call gives kUnavailable saying why (task and
//    channel handles alike). A handle of this process whose task has
//    ended comes back as the original handle while the task is among the
//    kEndedTasksKept (4096) exported tasks that ended last
//    (core/wire/value_codec.h), and beyond that as one that fails with
//    kFailedPrecondition.
//  * A Join or Monitor that reaches a task after it ended gets what a local
//    one gets: its value or error, its MonitorStatus, at once, while the
//    task is among those kept; beyond that a Join gets kFailedPrecondition
//    and a monitor a MonitorStatus "error" with kFailedPrecondition (and no
//    handle). A monitor with a wrong proof hears kPermissionDenied that way:
//    a monitor frame is always answered.
//  * Handles are unforgeable: a peer can address only the tasks and
//    channels of this process whose handles it was given (in a message, a
//    reply, a locate's result), or got from any peer that was. Each handle
//    this node sends carries a proof it minted
//    (core/remote/handle_proof_internal.h) and every operation names its
//    target with it; a fabricated or altered handle arrives as one that
//    fails with kPermissionDenied, and an operation without a valid proof
//    is refused (logged; a join gets kPermissionDenied), the connection kept.
//  * Bad input closes only the connection it came on, with a logged reason:
//    garbage or a 4 GiB length claim before the handshake, a malformed
//    frame after it. Each accepted connection handshakes in a task of its
//    own (at most max_pending_handshakes at once, each within
//    handshake_timeout), so 200 half-open connections do not delay a real
//    peer.
//  * Peers exchange heartbeats on an idle connection; one not heard from in
//    heartbeat_interval * heartbeat_misses is lost as if its connection
//    broke, at exactly that much silence.
//  * Every timer of the node (heartbeats, liveness, handshake_timeout,
//    connect_timeout, Flush's timeout) runs on the scheduler's clock: on a
//    VirtualClock (core/kernel/clock.h) two nodes on one scheduler keep a
//    link up for hours of simulated time in milliseconds.
//  * Memory per peer is bounded: at most max_queued_frames, and about
//    max_queued_bytes, wait to be written or acknowledged, then Send gives
//    kResourceExhausted until the peer catches up; SendWhenRoom
//    (core/kernel/task.h) waits and is woken by the peer's acknowledgement
//    (or kUnavailable when it is lost). Write buffers kept for a flood are
//    given back after a second with no frame written
//    (PeerStats::buffer_bytes), and a read buffer grown past 1 MiB for a
//    large message once it is empty (core/io/framing.h).
//  * When a peer is lost, pending Join, Locate and Deliver calls on it
//    fail with kUnavailable at once, monitors of its tasks get
//    MonitorStatus::PeerLost, its proxies say kDone (closed, for channels)
//    and give kUnavailable, and the peer's subscribers to channels of this
//    process are dropped.
//
// Protocol: after the handshake each direction carries batches of frames,
// each batch a length-prefixed Value (core/wire/value_codec.h) holding a
// list of frames: maps with an "op", and a positional list for a message
// to a task (the hot path); node.cc lists them. Why frames over the authenticated stream rather
// than Cap'n Proto RPC (capnp::TwoPartyVatNetwork) in this version: RPC
// needs kj's event loop driven from libuv and a bridge from kj promises to
// coroutines, each with known ways to crash (docs/pitfalls.md), and a call
// costs about as much as a hundred messages, so messages would be batched
// into calls anyway; frames batched into writes give the same batching with
// none of that risk. The schema (protocol.capnp) is versioned, so a move to
// RPC is a version bump.
//
// Not yet (issue 10): a redial by the side
// that accepted (it waits for the dialler, even when it knows the peer's
// URIs); an arbiter that has not seen its old stream break declines the
// redial until it does (a half-open old stream is then found by
// heartbeats, which lose the peer). Services are a layer above (core/remote/service.h),
// and so are the shared flags (core/remote/node_flags.h, --peer) and file
// transfer (files.h).
//
// Programs take their listen URIs, secret and peers to connect to at start
// (--listen, --secret_file, --peer, ...) from the flags of
// core/remote/node_flags.h.
//
// Threads: a Node belongs to the scheduler of the task that starts it; call
// its methods from that scheduler's tasks and destroy it on that thread
// before the scheduler ends. Proxies it makes may be used from any thread
// (core/kernel/proxy.h), and outlive it (they then give kUnavailable).
#ifndef PICOS_CORE_REMOTE_NODE_H_
#define PICOS_CORE_REMOTE_NODE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"

namespace picos::remote {

struct NodeOptions {
  // The shared secret every peer must prove it holds (ValidateSecret in
  // handshake.h). Required: there is no default. LoadSecret reads one from
  // a file or the environment.
  std::string secret;
  // URIs to listen on ("tcp://0.0.0.0:0", "unix://@name", "tls://..."); empty
  // for a process that only connects.
  std::vector<std::string> listen;
  // URIs to advertise to peers instead of the bound ones (NAT, containers);
  // empty: the bound addresses.
  std::vector<std::string> advertise;
  // Shown to peers, for their logs.
  std::string name;
  // Bounds a connection's handshake, and a connect to a peer.
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(10);
  // Longest message (a batch of frames) sent or accepted. A message to a
  // peer that surely exceeds it is refused by Send (Deliver, ...) with
  // kResourceExhausted, the connection kept; a longer batch from a peer loses
  // that peer (no redial: it would come again), so peers must agree on it.
  size_t max_frame_size = size_t{16} << 20;
  // Most frames (messages and calls) queued for one peer and not yet
  // written or not yet acknowledged by it (kept to be written again after a
  // reconnect): beyond it Send on that peer's handles gives kResourceExhausted
  // (and Join, Locate, Deliver fail with it), so memory stays bounded when a
  // peer reads slower than this process sends. The stream's own bound
  // (StreamOptions::max_write_queue) holds the bytes being written.
  size_t max_queued_frames = size_t{1} << 20;
  // The same bound in bytes: the frames queued for one peer and not yet
  // acknowledged, each counted at its encoded size (estimated from below
  // when queued). One frame is always accepted when nothing waits, so a
  // message up to max_frame_size still crosses. The node also keeps up to
  // this much of the buffers of acknowledged batches for the next ones (a
  // flood then takes no fresh memory from the kernel).
  size_t max_queued_bytes = size_t{8} << 20;
  // Liveness: a peer that sends nothing for heartbeat_interval gets a ping
  // (nothing is sent on a busy link); a peer heard from not once in
  // heartbeat_interval * heartbeat_misses is lost (its connection closed,
  // its monitors told peer_lost) the moment its silence reaches that. The
  // defaults detect a dead peer in 5 s. Scheduler time (a VirtualClock's,
  // in simulations).
  absl::Duration heartbeat_interval = absl::Seconds(1);
  int heartbeat_misses = 5;
  // Reconnection: a connection that breaks (reset, a failed read or write)
  // while the peer may live does not lose the peer. The side that dialled
  // dials again (the URI it used), with backoff from 10 ms to 1 s, and the
  // other waits; the handshake proves the same process, and each side then
  // writes again only what the other did not receive, in order. The peer
  // is lost when reconnect_grace passes without a new connection, at once
  // when the redial finds nothing listening (a killed process: its port
  // refuses), and at once on missed heartbeats (a stream that stays up but
  // carries nothing is a hung or cut-off peer: no redial). The default, the
  // default liveness bound, keeps a dead peer lost within 5 s on either
  // side. Zero: a broken connection loses the peer at once.
  absl::Duration reconnect_grace = absl::Seconds(5);
  // Most accepted connections in their handshake at once; beyond it a new
  // one is closed at once (logged, rate-limited). Each handshakes in a task
  // of its own, bounded by handshake_timeout, so silent or slow clients
  // never delay a real peer.
  size_t max_pending_handshakes = 256;
  // For tests that run two nodes in one process: the process id this node
  // claims (16 bytes). Empty: picos::ProcessId() for the first node of the
  // process, a fresh random id for each later one (so that a node started
  // after another ended is a new peer, not the old one reconnecting).
  std::string process_id;
};

// The shared secret from `path` (its first line, without the newline) when
// `path` is not empty, else from the environment variable `env_var`.
// Validated (ValidateSecret). kNotFound when neither gives one; the message
// never quotes the secret.
absl::StatusOr<std::string> LoadSecret(const std::string& path,
                                       const std::string& env_var = "PICOS_REMOTE_SECRET");

// The system message (core/kernel/system_message.h) of peer events, sent on
// Node::peer_events():
//   {"picos.peer": {"event": "joined"|"left"|"lost", "name": <its name>,
//                   "uri": <its first URI, or the one it was dialled at>,
//                   "reason": <why, for "left" and "lost">}}
// "left": the peer closed the connection; "lost": it broke and was not
// re-established (reconnect_grace), or missed heartbeats. A connection
// re-established within the grace period is no event.
inline constexpr char kPeerEventMessage[] = "picos.peer";

// What a node counts of one connected peer's traffic since its session
// began (reconnects included): Node::peer_stats.
struct PeerStats {
  std::string peer;  // "name@uri", as peers() gives it
  // Frames (messages, calls, replies ...) in batches written the first time,
  // and in batches from the peer applied here (duplicates not counted).
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  // Bytes written to and read from its connections, length prefixes
  // included (batches written again after a reconnect count again).
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  // Heartbeat ticks that found the peer silent for a whole interval (one
  // short of heartbeat_misses in a row loses it).
  uint64_t heartbeats_missed = 0;
  // Memory kept for writing to it: batches not acknowledged yet (kept to
  // be written again after a reconnect) and spare buffers for the next
  // batches; the spares are given back once no frame was written for a
  // second, so an idle peer holds none.
  uint64_t buffer_bytes = 0;
};

class NodeImpl;

class Node {
 public:
  // Listens on every URI of options.listen through `transports` (which must
  // outlive the node) and installs the node as the NameResolver of the
  // calling task's scheduler. kInvalidArgument for a bad secret or URI; the
  // transport's error for a listen that fails. Suspends.
  static Task<absl::StatusOr<std::unique_ptr<Node>>> Start(const TransportRegistry& transports,
                                                           NodeOptions options);

  // Closes every connection (pending calls on them fail with kUnavailable,
  // monitors hear peer_lost) and listener, and removes the NameResolver.
  // Frames not yet written are dropped: await Close() (or Flush()) first to
  // send what was accepted (a program's last messages). Without Close(),
  // peers see this process go as they would see it die: lost, not left.
  ~Node();

  // Leaves every peer cleanly: a goodbye follows everything accepted for
  // it, and all is written (as Flush, within `timeout`); peers then report
  // this node "left" when its connections close (the destructor), where a
  // process that dies, or a node destroyed without Close, is "lost" to
  // them (its connections end without a goodbye: the dialler's redial is
  // refused, the other side waits for it up to reconnect_grace). Calls made
  // after Close still go out until the destructor. Suspends.
  Task<absl::Status> Close(absl::Duration timeout = absl::Seconds(10));
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // The URIs peers reach this node at: the advertised ones, else the bound
  // ones with their actual ports.
  const std::vector<std::string>& uris() const;
  // Location::Peer of the first URI (what a peer passes to LocateTask).
  Location location() const;

  // Connects to the peer at `uri` unless connected already, and
  // authenticates; when the peer was dialling this node at the same time,
  // gives the one connection the two keep. Suspends. kUnauthenticated
  // ("secret mismatch"), kFailedPrecondition (version mismatch),
  // kUnavailable, kDeadlineExceeded.
  Task<absl::Status> Connect(std::string uri);

  // Waits until everything accepted for every peer so far has been written
  // to its connection (handed to the kernel). Suspends. kDeadlineExceeded
  // after `timeout`.
  Task<absl::Status> Flush(absl::Duration timeout = absl::Seconds(10));

  // Peers connected now, each as "name@uri" (its first URI, or the one it
  // was dialled at).
  std::vector<std::string> peers() const;

  // A channel of this node's scheduler on which every peer joining, leaving
  // or being lost is broadcast as a kPeerEventMessage (pycos peer_status).
  // Subscribe a task to it; it closes with the node.
  ChannelRef peer_events() const;

  // Handshakes refused so far (any cause): what tests of bad peers check.
  size_t refused_handshakes() const;
  // Broken connections re-established so far (sessions that went on).
  size_t reconnects() const;
  // Peers lost to missed heartbeats so far (heard nothing for
  // heartbeat_interval * heartbeat_misses).
  size_t heartbeat_losses() const;
  // The traffic of each peer connected now (plain counters the node's
  // thread keeps: nothing is added to the hot path but an addition).
  std::vector<PeerStats> peer_stats() const;

 private:
  explicit Node(std::unique_ptr<NodeImpl> impl);
  std::unique_ptr<NodeImpl> impl_;
};

}  // namespace picos::remote

#endif  // PICOS_CORE_REMOTE_NODE_H_
