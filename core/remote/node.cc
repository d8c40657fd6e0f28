// Frames after the handshake (each a Value map, length-prefixed):
//   [1, task, proof_hi, proof_lo, msg]   a message to a task of the
//                                    receiver: the positional form of
//                                    "send" (no map to build, encode,
//                                    decode and read for the hottest
//                                    operation; the 16-byte proof as two
//                                    big-endian numbers), used by this
//                                    version for every proof of that size
//   {op: "send"|"resume", task, msg|value}   to a task of the receiver
//   {op: "terminate", task}  {op: "throw", task, error}
//   {op: "join", task, req}          answered by a "reply" when the task ends
//   {op: "deliver", task, req, msg, timeout_ns}   answered by a "reply" once
//                                    the task's mailbox took msg
//   {op: "monitor", task, reg}       answered by a "monitor_msg" when it ends
//   {op: "locate", req, kind, name, timeout_ns}   answered by a "reply"
//   {op: "reply", req, ok, value|error}
//   {op: "monitor_msg", reg, msg}
//   {op: "where", req, pid}          answered by a "reply" with the URIs
//                                    process pid (connected to the
//                                    receiver) listens on
//   {op: "bye"}                      the sender leaves (Node::Close): the end
//                                    of its stream that follows is no break
//   {op: "ping", ack, sid}           a heartbeat, sent on an idle link; also
//                                    an acknowledgement (below)
//   {op: "select", keep, ack, sid}   the first frame on every connection,
//                                    sent only by the peer with the lower
//                                    process id (the arbiter of the pair):
//                                    keep it, or close it (another
//                                    connection between the two is kept).
//                                    The other peer sends nothing on a
//                                    connection before it is kept.
//   {op: "ch_sub", channel, sub, n}  subscribe to a channel of the receiver
//                                    for n subscribers of the sender (one
//                                    subscription per channel, however
//                                    many: one copy of each broadcast
//                                    crosses); its broadcasts come back as
//                                    "ch_msg"
//   {op: "ch_weight", sub, n}        now n subscribers behind it
//   {op: "ch_unsub", sub}            {op: "ch_msg", sub, msg}
//   {op: "ch_send"|"ch_close", channel[, msg]}
//   {op: "ch_deliver", req, channel, msg, n, timeout_ns}   answered by a "reply"
// `task` is the task's id in the receiver's process, and every frame that
// names a task or channel of the receiver (send to ch_deliver) carries the
// "proof" the receiver minted into its handle (handle_proof_internal.h). Errors travel as
// {code, message}. Frames travel in batches: each length-prefixed message is
// a Value list of up to kFramesPerBatch frames, so one capnp message (one
// encode, one decode) carries many; a frame that cannot be encoded is sent
// (or refused) alone, so it never costs the others.
//
// Sessions (protocol version 3). A peer is a session (a Connection) that
// outlives its streams. Every batch but a lone ping or select opens with a
// header [seq, ack] (a list; frames are maps): `seq` numbers the batches of one
// direction of the session from 1, without gaps; `ack` (in pings and
// selects too) is the last seq the sender received. The receiver applies a
// batch once (a seq it has seen is dropped) and acknowledges cumulatively on
// whatever it writes next, or with a ping after kAckEvery batches or at the
// heartbeat tick, so acks cost no round trip and nothing waits for one. The
// sender keeps each batch's bytes until acknowledged (counted against
// max_queued_frames). When a stream breaks (an error; an orderly end is a
// peer that left), the session waits for a new one: the connector redials
// (RedialLoop), the handshake proves the same process, the arbiter's select
// and the other's first ping carry `sid` (the sender's session id, random
// per session: a peer that lost the session, or a node started again with
// the same process id, is told apart) and `ack`, and each side writes again
// only the batches the other lacks, in order, before anything new.
#include "core/remote/node.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <fstream>
#include <optional>
#include <random>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "core/io/framing.h"
#include "core/io/io.h"
#include "core/kernel/channel.h"
#include "core/kernel/channel_proxy.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/sync.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task_group.h"
#include "core/remote/frames_internal.h"
#include "core/remote/handle_proof_internal.h"
#include "core/remote/handshake.h"
#include "core/remote/ops_internal.h"
#include "core/wire/value_codec.h"

namespace picos::remote {

namespace {

// Frames are read, statuses encoded and operations applied as the
// in-process double does (ops_internal.h): one code for both.
using ops::MonitorReg;
using ops::Subscription;

// Appends `bytes` to `out` as one length-prefixed message (core/io/framing.h).
void AppendFrame(const std::string& bytes, std::string* out) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  const char header[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                          static_cast<char>(n)};
  out->append(header, 4);
  out->append(bytes);
}

constexpr size_t kFramesPerBatch = 128;

// The first element of a positional frame (see the top of this file).
using internal::kSendFrame;

// Bytes [at, at + 8) of a proof as a big-endian number (0 past its end):
// how a send frame carries a proof.
uint64_t ProofHalf(std::string_view proof, size_t at) {
  uint64_t v = 0;
  for (size_t i = at; i < at + 8; ++i) v = (v << 8) | (i < proof.size() ? static_cast<uint8_t>(proof[i]) : 0);
  return v;
}

// The process id a node claims when its options name none: ProcessId() for
// the first node of this process, a fresh one for each later node. A node
// started after another ended in the same process is a new peer to the
// peers that still wait for the old one to reconnect (it never said
// goodbye), never mistaken for it.
std::string NodeProcessId() {
  static std::atomic<int> started{0};
  if (started.fetch_add(1) == 0) return ProcessId();
  std::string id(kProcessIdSize, '\0');
  absl::BitGen gen;
  for (char& ch : id) ch = static_cast<char>(absl::Uniform<uint8_t>(gen));
  return id;
}

// A handle that can only fail: a task of this process that crossed back
// after it ended (ids are never reused), or a task of a process this node
// has no connection to. Every call gives `why`.
class DeadTaskProxy final : public TaskProxy {
 public:
  DeadTaskProxy(uint64_t id, std::string name, absl::Status why)
      : id_(id), name_(std::move(name)), why_(std::move(why)) {}
  absl::Status Send(Value) override { return why_; }
  absl::Status Resume(Value) override { return why_; }
  absl::Status Terminate() override { return why_; }
  absl::Status Throw(absl::Status) override { return why_; }
  void Join(Completer done) override { done.Complete(why_); }
  absl::Status Monitor(const TaskRef&) override { return why_; }
  TaskState state() const override { return TaskState::kDone; }
  std::string name() const override { return name_; }
  uint64_t id() const override { return id_; }
  std::string DebugString() const override {
    return absl::StrCat(name_.empty() ? "task" : name_, "#", id_, " (", why_.message(), ")");
  }

 private:
  const uint64_t id_;
  const std::string name_;
  const absl::Status why_;
};

// A channel handle of this process that crosses back after the channel
// closed: closed, and every call fails cleanly.
class EndedChannelProxy final : public ChannelProxy {
 public:
  explicit EndedChannelProxy(std::string name) : name_(std::move(name)) {}
  absl::Status Subscribe(const TaskRef&, ChannelTransform) override { return Ended(); }
  absl::Status Subscribe(const ChannelRef&, ChannelTransform) override { return Ended(); }
  absl::Status Unsubscribe(const TaskRef&) override { return Ended(); }
  absl::Status Unsubscribe(const ChannelRef&) override { return Ended(); }
  absl::Status Send(Value) override { return Ended(); }
  void Deliver(Value, uint32_t, absl::Duration, Completer done) override { done.Complete(Ended()); }
  absl::Status Close() override { return Ended(); }
  bool closed() const override { return true; }
  std::string DebugString() const override { return absl::StrCat("channel:", name_, " (closed)"); }

 private:
  absl::Status Ended() const { return absl::FailedPreconditionError(DebugString()); }
  const std::string name_;
};

}  // namespace

class Connection;

// The connection of `node` to the process `pid`, or null. Node thread.
std::shared_ptr<Connection> ConnectionTo(NodeImpl* node, const std::string& pid);

// Turns handles into identities for one connection and back.
class ConnectionCodec final : public HandleCodec {
 public:
  explicit ConnectionCodec(Connection* c) : c_(c) {}
  absl::StatusOr<TaskIdentity> ExportTask(const TaskRef& task) override;
  absl::StatusOr<TaskRef> ImportTask(const TaskIdentity& identity) override;
  absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef& channel) override;
  absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity& identity) override;

 private:
  Connection* const c_;
};

// A frame queued for the writer. A send frame (kSendFrame) keeps its
// fields apart: the writer encodes [kSendFrame, task, proof_hi, proof_lo,
// body] in place (EncodeListInto), so a message sent to a remote task
// costs no Value list. Any other frame is `body` whole.
struct OutFrame {
  Value body;
  bool send = false;
  uint64_t task = 0;
  uint64_t proof_hi = 0;
  uint64_t proof_lo = 0;
};

// What the list [kSendFrame, task, proof_hi, proof_lo, message] adds to
// the message's encoded size (as EncodedSizeAtLeast counts both): the
// list's tag word and its five elements, 3 words each (a wire::Value); the
// root struct that held the message now holds the list.
constexpr size_t kSendFrameOverhead = 8 * (1 + 5 * 3);

// One authenticated connection to one peer. The parts marked "node thread"
// are touched only there; the rest is guarded by mu_, for proxies used from
// any thread.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(NodeImpl* node, std::string my_pid, HandshakeResult peer, std::string dialled,
             size_t max_frame, size_t max_queued, size_t max_queued_bytes)
      : node(node),
        my_pid(std::move(my_pid)),
        peer(std::move(peer)),
        dialled(std::move(dialled)),
        max_frame(max_frame),
        max_queued(max_queued),
        max_queued_bytes(max_queued_bytes),
        codec(this) {}

  // Queues `frame` for the writer. Any thread. kUnavailable once lost.
  absl::Status Push(Value frame);
  // Queues the send frame [kSendFrame, task, proof_hi, proof_lo, message]
  // (RemoteTaskProxy::Send) as Push would.
  absl::Status PushSend(uint64_t task, uint64_t proof_hi, uint64_t proof_lo, Value message);
  // Queues a frame that expects a "reply"; `done` gets it.
  void Request(Value::MapType fields, Completer done);
  void Reply(uint64_t req, absl::StatusOr<Value> result);
  absl::StatusOr<uint64_t> AddMonitor(MonitorReg reg);
  Completer TakePending(uint64_t req);
  std::optional<MonitorReg> TakeMonitor(uint64_t reg);
  // The connection is gone: pending calls fail, monitors hear peer_lost.
  // Any thread; idempotent.
  void Fail(const absl::Status& why);
  bool lost() const {
    absl::MutexLock lock(&mu_);
    return lost_;
  }
  absl::Status Lost() const {
    return absl::UnavailableError(absl::StrCat("peer ", Describe(), " lost"));
  }
  std::string Describe() const {
    return absl::StrCat(peer.name.empty() ? "peer" : peer.name, "@",
                        !peer.uris.empty() ? peer.uris[0] : dialled);
  }
  // The writer's batch: every frame queued, emptied.
  bool outbox_empty() const {
    absl::MutexLock lock(&mu_);
    return outbox_.empty();
  }
  // Every frame queued, oldest first, into `out` (emptied first): the
  // writer writes them a part at a time (taking a part here would move the
  // rest of a long backlog each time). Taken frames count as unacknowledged
  // from here on (the per-peer bound holds them until the peer acknowledges
  // them, or Unsent gives them back).
  // `sizes` gets each frame's size as Push estimated it.
  void TakeOutbox(std::vector<OutFrame>* out, std::vector<uint32_t>* sizes) {
    absl::MutexLock lock(&mu_);
    out->clear();
    out->swap(outbox_);
    sizes->clear();
    sizes->swap(outbox_sizes_);
    kicked_ = false;
    unacked_frames_ += out->size();
  }
  // The writer woke: the next Push or KickWriter wakes it again.
  void Unkick() {
    absl::MutexLock lock(&mu_);
    kicked_ = false;
  }
  // Wakes the writer (for an ack, a ping or a resend). Any thread.
  void KickWriter() {
    TaskRef kick;
    {
      absl::MutexLock lock(&mu_);
      if (lost_ || kicked_ || !writer.valid()) return;
      kicked_ = true;
      kick = writer;
    }
    (void)kick.Send(Value());
  }

  // --- the session's sequence numbers (node thread) ---
  // A sequenced batch as written: kept, bytes and all, until the peer
  // acknowledges it, to be written again on the next connection if it
  // does not.
  struct Unacked {
    uint64_t seq;
    std::string bytes;  // the batch as encoded (written with its length first)
    size_t frames;
    size_t queued;  // its frames' sizes as counted by Push
  };
  // `n` frames of `bytes` (as Push counted them) taken from the outbox will
  // never be written (they could not be encoded): they no longer count
  // against the bounds.
  void Unsent(size_t n, size_t bytes) {
    std::vector<Completer> room;
    {
      absl::MutexLock lock(&mu_);
      unacked_frames_ -= std::min(n, unacked_frames_);
      queued_bytes_ -= std::min(bytes, queued_bytes_);
      room.swap(room_waiters_);
    }
    for (Completer& r : room) r.Complete(Value());
  }
  // RemoteTaskProxy::WaitForRoom: completes `room` when acknowledgements
  // (or frames that could not be sent) give back some of the bounds, at
  // once when nothing is queued, with kUnavailable once lost. Any thread.
  // Whatever is queued is written and acknowledged in time (or the peer is
  // lost), so a waiter that finds something queued is woken.
  void WaitForRoom(Completer room) {
    bool lost = false;
    {
      absl::MutexLock lock(&mu_);
      lost = lost_;
      if (!lost && queued_bytes_ > 0) {
        // Waiters that gave up go first: the list stays as long as the
        // tasks waiting now.
        room_waiters_.erase(std::remove_if(room_waiters_.begin(), room_waiters_.end(),
                                           [](const Completer& w) { return w.abandoned(); }),
                            room_waiters_.end());
        room_waiters_.push_back(std::move(room));
        return;
      }
    }
    room.Complete(lost ? absl::StatusOr<Value>(Lost()) : absl::StatusOr<Value>(Value()));
  }
  // The sequence number of the next batch written.
  uint64_t NextSeq() {
    absl::MutexLock lock(&mu_);
    return next_seq_++;
  }
  void KeepUnacked(Unacked u) {
    absl::MutexLock lock(&mu_);
    unacked_.push_back(std::move(u));
  }
  // The peer received every batch up to `ack`: they are dropped.
  // kInvalidArgument for an ack of a batch never sent.
  absl::Status Acked(uint64_t ack) {
    std::vector<Completer> room;
    absl::Cleanup wake = [&room] {
      for (Completer& r : room) r.Complete(Value());
    };
    absl::MutexLock lock(&mu_);
    if (ack >= next_seq_) {
      return absl::InvalidArgumentError(absl::StrCat("ack of batch ", ack, ", never sent"));
    }
    if (!unacked_.empty() && unacked_.front().seq <= ack) room.swap(room_waiters_);
    while (!unacked_.empty() && unacked_.front().seq <= ack) {
      unacked_frames_ -= std::min(unacked_.front().frames, unacked_frames_);
      queued_bytes_ -= std::min(unacked_.front().queued, queued_bytes_);
      // Its buffer is kept for a later batch, up to max_queued_bytes of
      // them: a flood then takes no fresh memory from the kernel (a page
      // fault per 4 KB was the sender's largest cost), and the memory kept
      // is bounded by the bound on what may be queued.
      std::string& bytes = unacked_.front().bytes;
      if (spare_bytes_ + bytes.capacity() <= max_queued_bytes) {
        spare_bytes_ += bytes.capacity();
        bytes.clear();
        spare_.push_back(std::move(bytes));
      }
      unacked_.pop_front();
    }
    return absl::OkStatus();
  }
  // The writer has been idle a while: the spare buffers go, and so does an
  // empty outbox's capacity. Any thread.
  void ReleaseSpareBuffers() {
    absl::MutexLock lock(&mu_);
    spare_.clear();
    spare_.shrink_to_fit();
    spare_bytes_ = 0;
    if (outbox_.empty()) {
      std::vector<OutFrame>().swap(outbox_);
      std::vector<uint32_t>().swap(outbox_sizes_);
    }
  }
  // What is kept for writing to the peer: unacknowledged batches and spare
  // buffers (Node::peer_stats). Any thread.
  uint64_t BufferBytes() const {
    absl::MutexLock lock(&mu_);
    uint64_t n = spare_bytes_;
    for (const Unacked& u : unacked_) n += u.bytes.capacity();
    return n;
  }
  // An empty buffer for a batch's copy, with capacity when one is spare.
  std::string SpareBuffer() {
    absl::MutexLock lock(&mu_);
    if (spare_.empty()) return std::string();
    std::string b = std::move(spare_.back());
    spare_.pop_back();
    spare_bytes_ -= std::min(b.capacity(), spare_bytes_);
    return b;
  }
  // Appends every unacknowledged batch to `out`, oldest first, each
  // length-prefixed.
  void AppendUnacked(std::string* out) const {
    absl::MutexLock lock(&mu_);
    for (const Unacked& u : unacked_) AppendFrame(u.bytes, out);
  }
  // No batch was ever numbered on this session.
  bool NothingSent() const {
    absl::MutexLock lock(&mu_);
    return next_seq_ == 1;
  }
  bool has_unacked() const {
    absl::MutexLock lock(&mu_);
    return !unacked_.empty();
  }
  size_t unacked_frames() const {
    absl::MutexLock lock(&mu_);
    return unacked_frames_;
  }
  // The proxy of the peer's task `id` (channel `name`), holding `proof` (the
  // peer's, unchecked here: the task's process checks it on every use).
  // The same proxy for the same task while the connection lives, unless
  // the proof differs: a handle with another proof (a forged one passed on
  // by a third process) never borrows the rights of a genuine one.
  TaskRef Proxy(uint64_t id, const std::string& name, const std::string& proof);
  ChannelRef ChannelProxyFor(const std::string& name, const std::string& proof);
  absl::Status Subscribe(Subscription sub, const std::string& proof);
  absl::Status Unsubscribe(const std::string& channel, const TaskRef& task, const ChannelRef& relay);
  // The subscriptions behind the peer's subscription `wire` (one per
  // channel of the peer and proof, however many subscribers this side has
  // to it), copied; all forgotten if `erase` (the channel closed).
  std::vector<Subscription> GroupMembers(uint64_t wire, bool erase);
  void AddSink(uint64_t sub, ChannelRef channel, SinkId sink);
  std::optional<std::pair<ChannelRef, SinkId>> TakeSink(uint64_t sub);
  std::optional<std::pair<ChannelRef, SinkId>> FindSink(uint64_t sub);
  Value LeaveGroup(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Node thread.
  NodeImpl* node;
  // The connection's stream now: owned by its reader task; null while the
  // session waits to be reconnected, and once lost.
  Stream* stream = nullptr;
  // Which stream: each new one attached bumps it, so that a reader or
  // writer of an older one that fails breaks nothing.
  uint64_t link = 0;
  TaskRef writer;
  TaskRef reader;
  TaskRef heartbeat;
  TaskRef redial;
  int64_t last_heard_ns = 0;  // the scheduler's clock
  int64_t broken_ns = 0;      // when the stream broke (stream null, not lost)
  absl::Status broken_why;
  bool sent_since_tick = false;
  bool writing = false;  // the writer has taken frames it has not finished writing
  // Whether this connection is the pair's one (see "select" above); kMerged:
  // an unselected one whose stream the arbiter kept for an existing session
  // (merged_into) of the same peer.
  enum class Selection { kPending, kKept, kDropped, kLost, kMerged };
  Selection selection = Selection::kPending;
  std::shared_ptr<Connection> merged_into;

  // Sequence numbers (node.cc's opening comment).
  uint64_t received = 0;  // the peer's last batch applied here
  uint64_t ack_sent = 0;  // the last `received` told the peer
  uint64_t session_id = 0;       // this side's, told the peer in every ping and select
  uint64_t peer_session_id = 0;  // the peer's, from its first ping or select
  bool opener_due = false;    // the first message of a new stream is due
  bool peer_resumed = false;  // the peer's first message on this stream arrived
  bool goodbye = false;       // the peer said "bye": its stream's end is its leaving
  bool resend_due = false;    // unacknowledged batches go out again first
  bool ping_due = false;      // the heartbeat asks for a ping
  // Traffic, for Node::peer_stats (node thread, like the rest above):
  // frames in batches written first time and applied, and bytes written
  // and read (length prefixes included, batches written again counted
  // again).
  uint64_t messages_sent = 0, messages_received = 0;
  uint64_t bytes_sent = 0, bytes_received = 0;
  uint64_t heartbeats_missed = 0;  // ticks that found the peer silent a whole interval

  const std::string my_pid;
  const HandshakeResult peer;
  const std::string dialled;
  const size_t max_frame;
  const size_t max_queued;
  const size_t max_queued_bytes;
  ConnectionCodec codec;

 private:
  // Push and PushSend: `frame`, of `n` bytes as EncodedSizeAtLeast counts.
  absl::Status Queue(OutFrame frame, size_t n);

  mutable absl::Mutex mu_;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<OutFrame> outbox_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> outbox_sizes_ ABSL_GUARDED_BY(mu_);  // each frame's, as Push estimated it
  // What Push counted of the frames queued, taken and not yet acknowledged
  // (bounded by max_queued_bytes).
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Unacked> unacked_ ABSL_GUARDED_BY(mu_);
  size_t unacked_frames_ ABSL_GUARDED_BY(mu_) = 0;  // taken from the outbox, not yet acknowledged
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::string> spare_ ABSL_GUARDED_BY(mu_);
  std::vector<Completer> room_waiters_ ABSL_GUARDED_BY(mu_);  // WaitForRoom's
  size_t spare_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // their capacities
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Completer> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, MonitorReg> monitors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, TaskRef> proxies_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ChannelRef> channel_proxies_ ABSL_GUARDED_BY(mu_);
  ops::SubscriptionTable subs_ ABSL_GUARDED_BY(mu_);
  // One copy of a broadcast crosses the connection however many subscribers
  // this side has to a channel of the peer: they form a group, keyed by the
  // channel's name and the proof they hold it with, that the peer knows as
  // one subscription (`wire`, the id of its first member) weighted by its
  // size (Channel::SetSinkWeight, so Deliver counts every subscriber).
  struct SubGroup {
    uint64_t wire = 0;
    std::vector<uint64_t> members;  // ids in subs_
  };
  absl::flat_hash_map<std::string, SubGroup> groups_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::string> group_by_wire_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::string> group_of_member_ ABSL_GUARDED_BY(mu_);
  // Subscriptions the peer holds to channels of this process: served by sinks.
  absl::flat_hash_map<uint64_t, std::pair<ChannelRef, SinkId>> sinks_ ABSL_GUARDED_BY(mu_);
};

namespace {

class RemoteTaskProxy final : public TaskProxy {
 public:
  RemoteTaskProxy(std::weak_ptr<Connection> c, const Connection* key, std::string home, uint64_t id,
                  std::string name, std::string proof)
      : c_(std::move(c)),
        key_(key),
        home_(std::move(home)),
        id_(id),
        name_(std::move(name)),
        proof_(std::move(proof)),
        proof_hi_(ProofHalf(proof_, 0)),
        proof_lo_(ProofHalf(proof_, 8)) {}

  // The hot path: a positional frame (kSendFrame), no map to build or read,
  // the proof as two numbers (no string to allocate on either side). A
  // proof of another size (not minted by this version) goes in the map form.
  absl::Status Send(Value message) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    if (proof_.size() != internal::kProofSize) return Op("send", "msg", std::move(message));
    return c->PushSend(id_, proof_hi_, proof_lo_, std::move(message));
  }
  void WaitForRoom(Completer room) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) {
      room.Complete(absl::UnavailableError("peer gone"));
      return;
    }
    c->WaitForRoom(std::move(room));
  }
  absl::Status Resume(Value value) override { return Op("resume", "value", std::move(value)); }
  absl::Status Terminate() override { return Op("terminate", "", Value()); }
  absl::Status Throw(absl::Status error) override { return Op("throw", "error", ops::StatusFields(error)); }

  void Join(Completer done) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) {
      done.Complete(absl::UnavailableError("peer gone"));
      return;
    }
    c->Request(Value::MapType{{"op", "join"}, {"task", id_}, {"proof", Value::Bytes(proof_)}}, std::move(done));
  }

  void Deliver(Value message, absl::Duration timeout, Completer done) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) {
      done.Complete(absl::UnavailableError("peer gone"));
      return;
    }
    c->Request(Value::MapType{{"op", "deliver"},
                              {"task", id_},
                              {"proof", Value::Bytes(proof_)},
                              {"msg", std::move(message)},
                              {"timeout_ns", absl::ToInt64Nanoseconds(timeout)}},
               std::move(done));
  }

  absl::Status Monitor(const TaskRef& monitor) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    absl::StatusOr<uint64_t> reg = c->AddMonitor(MonitorReg{monitor, id_, name_});
    if (!reg.ok()) return reg.status();
    return c->Push(Value::Map({{"op", "monitor"}, {"task", id_}, {"proof", Value::Bytes(proof_)}, {"reg", *reg}}));
  }

  TaskState state() const override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr || c->lost()) return TaskState::kDone;
    return TaskState::kWaiting;  // alive as far as this side knows
  }
  std::string name() const override { return name_; }
  uint64_t id() const override { return id_; }
  std::string DebugString() const override {
    std::shared_ptr<Connection> c = c_.lock();
    return absl::StrCat(name_.empty() ? "task" : name_, "#", id_, "@",
                        c ? c->Describe() : std::string("gone"));
  }
  const Connection* key() const { return key_; }
  // The process id of the task's process.
  const std::string& home() const { return home_; }
  // What that process minted for the task: sent with every operation.
  const std::string& proof() const { return proof_; }

 private:
  absl::Status Op(const char* op, const char* key, Value arg) {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    Value::MapType f{{"op", op}, {"task", id_}, {"proof", Value::Bytes(proof_)}};
    if (*key != '\0') f.emplace(key, std::move(arg));
    return c->Push(Value(std::move(f)));
  }

  const std::weak_ptr<Connection> c_;
  const Connection* const key_;
  const std::string home_;
  const uint64_t id_;
  const std::string name_;
  const std::string proof_;
  const uint64_t proof_hi_;  // proof_ as two big-endian numbers (when kProofSize long)
  const uint64_t proof_lo_;
};

class RemoteChannelProxy final : public ChannelProxy {
 public:
  RemoteChannelProxy(std::weak_ptr<Connection> c, const Connection* key, std::string home, std::string name,
                     std::string proof)
      : c_(std::move(c)), key_(key), home_(std::move(home)), name_(std::move(name)), proof_(std::move(proof)) {}

  absl::Status Subscribe(const TaskRef& task, ChannelTransform transform) override {
    return Sub(task, ChannelRef(), std::move(transform));
  }
  absl::Status Subscribe(const ChannelRef& channel, ChannelTransform transform) override {
    return Sub(TaskRef(), channel, std::move(transform));
  }
  absl::Status Unsubscribe(const TaskRef& task) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    return c->Unsubscribe(name_, task, ChannelRef());
  }
  absl::Status Unsubscribe(const ChannelRef& channel) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    return c->Unsubscribe(name_, TaskRef(), channel);
  }
  absl::Status Send(Value message) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    return c->Push(Value::Map(
        {{"op", "ch_send"}, {"channel", name_}, {"proof", Value::Bytes(proof_)}, {"msg", std::move(message)}}));
  }
  void Deliver(Value message, uint32_t n, absl::Duration timeout, Completer done) override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) {
      done.Complete(absl::UnavailableError("peer gone"));
      return;
    }
    Value::MapType f = ops::DeliverRequest(name_, std::move(message), n, timeout);
    f.emplace("proof", Value::Bytes(proof_));
    c->Request(std::move(f), std::move(done));
  }
  absl::Status Close() override {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    return c->Push(Value::Map({{"op", "ch_close"}, {"channel", name_}, {"proof", Value::Bytes(proof_)}}));
  }
  bool closed() const override {
    std::shared_ptr<Connection> c = c_.lock();
    return c == nullptr || c->lost();
  }
  std::string DebugString() const override {
    std::shared_ptr<Connection> c = c_.lock();
    return absl::StrCat("channel:", name_, "@", c ? c->Describe() : std::string("gone"));
  }
  const Connection* key() const { return key_; }
  // The process id of the channel's process.
  const std::string& home() const { return home_; }
  const std::string& proof() const { return proof_; }

 private:
  absl::Status Sub(const TaskRef& task, const ChannelRef& relay, ChannelTransform transform) {
    std::shared_ptr<Connection> c = c_.lock();
    if (c == nullptr) return absl::UnavailableError("peer gone");
    Subscription s{name_, task, relay, nullptr};
    if (transform) s.transform = std::make_shared<const ChannelTransform>(std::move(transform));
    return c->Subscribe(std::move(s), proof_);
  }

  const std::weak_ptr<Connection> c_;
  const Connection* const key_;
  const std::string home_;
  const std::string name_;
  const std::string proof_;
};

// A task or channel (Ref: TaskRef or ChannelRef) of a third process, named
// in a handle a peer sent, while this node connects to that process: the
// node asks the peer where it listens (a "where" frame), connects, and
// hands the proxy of that connection over (Resolved). Calls made meanwhile
// wait here in order, at most kMaxWaitingCalls of them (then
// kResourceExhausted), and are made on the real proxy as soon as it
// exists; if the process cannot be reached, each fails with why
// (kUnavailable), and so does every later call.
template <typename Ref>
class ThirdParty {
 public:
  static constexpr size_t kMaxWaitingCalls = 4096;
  ThirdParty(std::string home, std::string what, std::string proof)
      : home_(std::move(home)), what_(std::move(what)), proof_(std::move(proof)) {}

  // Node thread: the connection's proxy, or why there is none.
  void Resolved(absl::StatusOr<Ref> target) {
    std::deque<absl::AnyInvocable<void(const absl::StatusOr<Ref>&)>> calls;
    absl::MutexLock lock(&mu_);
    // Made under the lock, so that a call made meanwhile on another thread
    // cannot overtake the waiting ones.
    calls.swap(waiting_);
    for (auto& call : calls) call(target);
    target_ = std::move(target);
    resolved_ = true;
  }

  // A call that answers at once: made now once resolved, else queued (OK:
  // accepted, as a send to a remote task is).
  absl::Status Call(absl::AnyInvocable<absl::Status(const Ref&)> op) {
    absl::MutexLock lock(&mu_);
    if (resolved_) {
      if (!target_.ok()) return target_.status();
      return op(*target_);
    }
    if (waiting_.size() >= kMaxWaitingCalls) {
      return absl::ResourceExhaustedError(
          absl::StrCat(waiting_.size(), " calls wait for the connection to the process of ", what_));
    }
    waiting_.push_back([op = std::move(op)](const absl::StatusOr<Ref>& t) mutable {
      if (t.ok()) (void)op(*t);
    });
    return absl::OkStatus();
  }
  // A call that answers later: made on the target, or given why there is none.
  void Later(absl::AnyInvocable<void(const absl::StatusOr<Ref>&)> op) {
    absl::MutexLock lock(&mu_);
    if (resolved_) return op(target_);
    if (waiting_.size() >= kMaxWaitingCalls) {
      return op(absl::ResourceExhaustedError("too many calls wait for the connection"));
    }
    waiting_.push_back(std::move(op));
  }
  // Null while connecting.
  std::optional<absl::StatusOr<Ref>> target() const {
    absl::MutexLock lock(&mu_);
    if (!resolved_) return std::nullopt;
    return target_;
  }
  std::string DebugString() const {
    absl::MutexLock lock(&mu_);
    if (resolved_ && target_.ok()) return target_->DebugString();
    return absl::StrCat(what_, "@", resolved_ ? std::string(target_.status().message()) : "(connecting)");
  }
  const std::string& home() const { return home_; }
  const std::string& proof() const { return proof_; }

 private:
  const std::string home_;
  const std::string what_;  // for messages: "name#id", "channel:name"
  const std::string proof_;
  mutable absl::Mutex mu_;
  bool resolved_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<Ref> target_ ABSL_GUARDED_BY(mu_) = absl::UnavailableError("not resolved");
  std::deque<absl::AnyInvocable<void(const absl::StatusOr<Ref>&)>> waiting_ ABSL_GUARDED_BY(mu_);
};

// The handle's proxy: the state above, shared with the task that connects.
class ThirdPartyTaskProxy final : public TaskProxy {
 public:
  ThirdPartyTaskProxy(std::shared_ptr<ThirdParty<TaskRef>> p, uint64_t id, std::string name)
      : p_(std::move(p)), id_(id), name_(std::move(name)) {}
  absl::Status Send(Value m) override {
    return p_->Call([m = std::move(m)](const TaskRef& t) mutable { return t.Send(std::move(m)); });
  }
  void WaitForRoom(Completer room) override {
    p_->Later([room = std::move(room)](const absl::StatusOr<TaskRef>& t) mutable {
      TaskProxy* p = t.ok() ? GetTaskProxy(*t) : nullptr;
      if (p == nullptr) {
        room.Complete(t.ok() ? absl::UnavailableError("not a remote task") : t.status());
        return;
      }
      p->WaitForRoom(std::move(room));
    });
  }
  absl::Status Resume(Value v) override {
    return p_->Call([v = std::move(v)](const TaskRef& t) mutable { return t.Resume(std::move(v)); });
  }
  absl::Status Terminate() override {
    return p_->Call([](const TaskRef& t) { return t.Terminate(); });
  }
  absl::Status Throw(absl::Status e) override {
    return p_->Call([e = std::move(e)](const TaskRef& t) { return t.Throw(e); });
  }
  void Join(Completer done) override {
    p_->Later([done = std::move(done)](const absl::StatusOr<TaskRef>& t) mutable {
      if (!t.ok()) return done.Complete(t.status());
      GetTaskProxy(*t)->Join(std::move(done));
    });
  }
  void Deliver(Value m, absl::Duration timeout, Completer done) override {
    p_->Later([m = std::move(m), timeout, done = std::move(done)](const absl::StatusOr<TaskRef>& t) mutable {
      if (!t.ok()) return done.Complete(t.status());
      GetTaskProxy(*t)->Deliver(std::move(m), timeout, std::move(done));
    });
  }
  absl::Status Monitor(const TaskRef& monitor) override {
    return p_->Call([monitor](const TaskRef& t) { return GetTaskProxy(t)->Monitor(monitor); });
  }
  TaskState state() const override {
    std::optional<absl::StatusOr<TaskRef>> t = p_->target();
    if (!t) return TaskState::kWaiting;
    return t->ok() ? (*t)->state() : TaskState::kDone;
  }
  std::string name() const override { return name_; }
  uint64_t id() const override { return id_; }
  std::string DebugString() const override { return p_->DebugString(); }
  const std::string& home() const { return p_->home(); }
  const std::string& proof() const { return p_->proof(); }

 private:
  const std::shared_ptr<ThirdParty<TaskRef>> p_;
  const uint64_t id_;
  const std::string name_;
};

class ThirdPartyChannelProxy final : public ChannelProxy {
 public:
  ThirdPartyChannelProxy(std::shared_ptr<ThirdParty<ChannelRef>> p, std::string name)
      : p_(std::move(p)), name_(std::move(name)) {}
  absl::Status Subscribe(const TaskRef& task, ChannelTransform transform) override {
    return p_->Call([task, f = std::move(transform)](const ChannelRef& c) mutable {
      return picos::Channel(c).Subscribe(task, std::move(f));
    });
  }
  absl::Status Subscribe(const ChannelRef& channel, ChannelTransform transform) override {
    return p_->Call([channel, f = std::move(transform)](const ChannelRef& c) mutable {
      return picos::Channel(c).Subscribe(picos::Channel(channel), std::move(f));
    });
  }
  absl::Status Unsubscribe(const TaskRef& task) override {
    return p_->Call([task](const ChannelRef& c) { return picos::Channel(c).Unsubscribe(task); });
  }
  absl::Status Unsubscribe(const ChannelRef& channel) override {
    return p_->Call(
        [channel](const ChannelRef& c) { return picos::Channel(c).Unsubscribe(picos::Channel(channel)); });
  }
  absl::Status Send(Value m) override {
    return p_->Call([m = std::move(m)](const ChannelRef& c) mutable { return picos::Channel(c).Send(std::move(m)); });
  }
  void Deliver(Value m, uint32_t n, absl::Duration timeout, Completer done) override {
    p_->Later([m = std::move(m), n, timeout, done = std::move(done)](const absl::StatusOr<ChannelRef>& c) mutable {
      if (!c.ok()) return done.Complete(c.status());
      GetChannelProxy(*c)->Deliver(std::move(m), n, timeout, std::move(done));
    });
  }
  absl::Status Close() override {
    return p_->Call([](const ChannelRef& c) { return picos::Channel(c).Close(); });
  }
  bool closed() const override {
    std::optional<absl::StatusOr<ChannelRef>> c = p_->target();
    return c && (!c->ok() || picos::Channel(**c).closed());
  }
  std::string DebugString() const override { return p_->DebugString(); }
  const std::string& home() const { return p_->home(); }
  const std::string& proof() const { return p_->proof(); }

 private:
  const std::shared_ptr<ThirdParty<ChannelRef>> p_;
  const std::string name_;
};

}  // namespace

// Starts connecting `node` to process `pid`, whose URIs `via` (connected to
// it) knows, and calls `reached` when done: with the connection, or null
// and why not. Node thread.
using Reached = absl::AnyInvocable<void(const std::shared_ptr<Connection>&, const absl::Status&)>;
void ReachThirdParty(NodeImpl* node, std::weak_ptr<Connection> via, std::string pid, Reached reached);

// --- Connection ---

absl::Status Connection::Push(Value frame) {
  OutFrame f;
  f.body = std::move(frame);
  return Queue(std::move(f), EncodedSizeAtLeast(f.body, max_frame));
}

absl::Status Connection::PushSend(uint64_t task, uint64_t proof_hi, uint64_t proof_lo, Value message) {
  OutFrame f;
  f.body = std::move(message);
  f.send = true;
  f.task = task;
  f.proof_hi = proof_hi;
  f.proof_lo = proof_lo;
  // What the list around the message adds: its pointer and five elements
  // (EncodedSizeAtLeast's count for the frame as a Value list, less the
  // message's own element counted with it).
  const size_t n = EncodedSizeAtLeast(f.body, max_frame);
  return Queue(std::move(f), n > max_frame ? n : n + kSendFrameOverhead);
}

absl::Status Connection::Queue(OutFrame frame, size_t n) {
  if (n > max_frame) {
    return absl::ResourceExhaustedError(absl::StrCat("a message of more than ", n, " bytes for ", Describe(),
                                                     " exceeds max_frame_size (", max_frame,
                                                     "): refused, the connection stays"));
  }
  TaskRef kick;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost();
    // Unacknowledged frames count: they are kept until the peer has them.
    if (outbox_.size() + unacked_frames_ >= max_queued) {
      return absl::ResourceExhaustedError(
          absl::StrCat(outbox_.size() + unacked_frames_, " frames wait to be written to or acknowledged by ",
                       Describe(), ": it reads slower than this process sends"));
    }
    // One frame is always taken when nothing waits, however large (up to
    // max_frame_size, above).
    if (queued_bytes_ > 0 && queued_bytes_ + n > max_queued_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(queued_bytes_, " bytes wait to be written to or acknowledged by ", Describe(),
                       " (max_queued_bytes ", max_queued_bytes, "): it reads slower than this process sends"));
    }
    queued_bytes_ += n;
    outbox_.push_back(std::move(frame));
    outbox_sizes_.push_back(static_cast<uint32_t>(n));
    if (!kicked_ && writer.valid()) {
      kicked_ = true;
      kick = writer;
    }
  }
  if (kick.valid()) (void)kick.Send(Value());
  return absl::OkStatus();
}

void Connection::Request(Value::MapType fields, Completer done) {
  uint64_t req = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!lost_) {
      req = next_id_++;
      pending_.emplace(req, std::move(done));
    }
  }
  if (req == 0) {
    done.Complete(Lost());
    return;
  }
  fields.emplace("req", req);
  absl::Status s = Push(Value(std::move(fields)));
  if (!s.ok()) TakePending(req).Complete(s);
}

void Connection::Reply(uint64_t req, absl::StatusOr<Value> result) {
  (void)Push(Value(ops::ReplyFields(req, std::move(result))));
}

absl::StatusOr<uint64_t> Connection::AddMonitor(MonitorReg reg) {
  absl::MutexLock lock(&mu_);
  if (lost_) return Lost();
  uint64_t id = next_id_++;
  monitors_.emplace(id, std::move(reg));
  return id;
}

Completer Connection::TakePending(uint64_t req) {
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(req);
  if (it == pending_.end()) return Completer();
  Completer c = std::move(it->second);
  pending_.erase(it);
  return c;
}

std::optional<MonitorReg> Connection::TakeMonitor(uint64_t reg) {
  absl::MutexLock lock(&mu_);
  auto it = monitors_.find(reg);
  if (it == monitors_.end()) return std::nullopt;
  std::optional<MonitorReg> m = std::move(it->second);
  monitors_.erase(it);
  return m;
}

TaskRef Connection::Proxy(uint64_t id, const std::string& name, const std::string& proof) {
  absl::MutexLock lock(&mu_);
  auto it = proxies_.find(id);
  if (it != proxies_.end()) {
    auto* p = static_cast<RemoteTaskProxy*>(GetTaskProxy(it->second));
    if (p->proof() == proof) return it->second;
    // Not the same handle: not cached, so it cannot replace the genuine one.
    return MakeTaskProxy(std::make_unique<RemoteTaskProxy>(weak_from_this(), this, peer.process_id, id, name, proof));
  }
  TaskRef proxy =
      MakeTaskProxy(std::make_unique<RemoteTaskProxy>(weak_from_this(), this, peer.process_id, id, name, proof));
  proxies_.emplace(id, proxy);
  return proxy;
}

ChannelRef Connection::ChannelProxyFor(const std::string& name, const std::string& proof) {
  absl::MutexLock lock(&mu_);
  auto it = channel_proxies_.find(name);
  if (it != channel_proxies_.end()) {
    auto* p = static_cast<RemoteChannelProxy*>(GetChannelProxy(it->second));
    if (p->proof() == proof) return it->second;
    return MakeChannelProxy(
        name, std::make_unique<RemoteChannelProxy>(weak_from_this(), this, peer.process_id, name, proof));
  }
  ChannelRef proxy = MakeChannelProxy(
      name, std::make_unique<RemoteChannelProxy>(weak_from_this(), this, peer.process_id, name, proof));
  channel_proxies_.emplace(name, proxy);
  return proxy;
}

absl::Status Connection::Subscribe(Subscription sub, const std::string& proof) {
  const std::string channel = sub.channel;
  std::string key = channel;
  key.push_back('\0');
  key += proof;
  uint64_t id;
  uint64_t wire;
  size_t n;
  bool first;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost();
    if (absl::Status dup = ops::CheckNotSubscribed(subs_, sub); !dup.ok()) return dup;
    id = next_id_++;
    subs_.emplace(id, std::move(sub));
    auto [g, fresh] = groups_.try_emplace(key);
    first = fresh;
    if (fresh) {
      g->second.wire = id;
      group_by_wire_.emplace(id, key);
    }
    g->second.members.push_back(id);
    group_of_member_.emplace(id, key);
    wire = g->second.wire;
    n = g->second.members.size();
  }
  absl::Status s =
      first ? Push(Value::Map({{"op", "ch_sub"},
                               {"channel", channel},
                               {"proof", Value::Bytes(proof)},
                               {"sub", wire},
                               {"n", uint64_t{1}}}))
            : Push(Value::Map({{"op", "ch_weight"}, {"sub", wire}, {"n", uint64_t{n}}}));
  if (!s.ok()) {
    std::optional<Subscription> gone;
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(id);
    if (it != subs_.end()) {
      gone = std::move(it->second);
      subs_.erase(it);
    }
    LeaveGroup(id);
  }
  return s;
}

// Removes member `id` from its group. Gives the frame that tells the peer
// (a smaller weight, or the end of the group's subscription), or null if
// it was in none. mu_ held.
Value Connection::LeaveGroup(uint64_t id) {
  auto m = group_of_member_.find(id);
  if (m == group_of_member_.end()) return Value();
  auto g = groups_.find(m->second);
  group_of_member_.erase(m);
  if (g == groups_.end()) return Value();
  std::vector<uint64_t>& members = g->second.members;
  members.erase(std::remove(members.begin(), members.end(), id), members.end());
  const uint64_t wire = g->second.wire;
  if (!members.empty()) return Value::Map({{"op", "ch_weight"}, {"sub", wire}, {"n", uint64_t{members.size()}}});
  group_by_wire_.erase(wire);
  groups_.erase(g);
  return Value::Map({{"op", "ch_unsub"}, {"sub", wire}});
}

absl::Status Connection::Unsubscribe(const std::string& channel, const TaskRef& task,
                                     const ChannelRef& relay) {
  std::optional<Subscription> gone;  // destroyed after the lock is released
  absl::StatusOr<uint64_t> id;
  Value tell;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost();
    id = ops::TakeSubscription(subs_, channel, task, relay, &gone);
    if (id.ok()) tell = LeaveGroup(*id);
  }
  if (!id.ok()) return id.status();
  if (tell.is_null()) return absl::OkStatus();
  return Push(std::move(tell));
}

std::vector<Subscription> Connection::GroupMembers(uint64_t wire, bool erase) {
  std::vector<Subscription> out;
  absl::MutexLock lock(&mu_);
  auto w = group_by_wire_.find(wire);
  if (w == group_by_wire_.end()) return out;
  auto g = groups_.find(w->second);
  if (g == groups_.end()) return out;
  out.reserve(g->second.members.size());
  for (uint64_t id : g->second.members) {
    auto it = subs_.find(id);
    if (it != subs_.end()) out.push_back(it->second);
    if (erase) {
      subs_.erase(id);
      group_of_member_.erase(id);
    }
  }
  if (erase) {
    groups_.erase(g);
    group_by_wire_.erase(w);
  }
  return out;
}

void Connection::AddSink(uint64_t sub, ChannelRef channel, SinkId sink) {
  absl::MutexLock lock(&mu_);
  sinks_.emplace(sub, std::make_pair(std::move(channel), sink));
}

std::optional<std::pair<ChannelRef, SinkId>> Connection::FindSink(uint64_t sub) {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(sub);
  if (it == sinks_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::pair<ChannelRef, SinkId>> Connection::TakeSink(uint64_t sub) {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(sub);
  if (it == sinks_.end()) return std::nullopt;
  std::optional<std::pair<ChannelRef, SinkId>> s = std::move(it->second);
  sinks_.erase(it);
  return s;
}

void Connection::Fail(const absl::Status& why) {
  absl::flat_hash_map<uint64_t, Completer> pending;
  absl::flat_hash_map<uint64_t, MonitorReg> monitors;
  absl::flat_hash_map<uint64_t, TaskRef> proxies;
  absl::flat_hash_map<std::string, ChannelRef> channel_proxies;
  ops::SubscriptionTable subs;
  absl::flat_hash_map<uint64_t, std::pair<ChannelRef, SinkId>> sinks;
  std::vector<OutFrame> outbox;
  std::vector<Completer> room;
  size_t unacked_frames = 0;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return;
    lost_ = true;
    unacked_frames = unacked_frames_;
    unacked_frames_ = 0;
    queued_bytes_ = 0;
    unacked_.clear();
    spare_.clear();
    spare_bytes_ = 0;
    outbox_sizes_.clear();
    pending.swap(pending_);
    monitors.swap(monitors_);
    proxies.swap(proxies_);
    channel_proxies.swap(channel_proxies_);
    subs.swap(subs_);
    groups_.clear();
    group_by_wire_.clear();
    group_of_member_.clear();
    sinks.swap(sinks_);
    outbox.swap(outbox_);
    room.swap(room_waiters_);
  }
  // The peer's subscribers behind this connection are dropped.
  for (auto& [sub, s] : sinks) (void)picos::Channel(s.first).Unsubscribe(s.second);
  // Sends accepted but not acknowledged may or may not have been applied:
  // reported, never sent again to anyone (exactly once, or failed).
  // (Quietly when the peer left or this node closed: its last frames are
  // usually there, only not acknowledged yet.)
  if (unacked_frames + outbox.size() > 0) {
    if (absl::StrContains(why.message(), "closed")) {
      PICOS_LOG(debug, "remote: {} frames for {} unacknowledged when it closed ({} never written)",
                unacked_frames + outbox.size(), Describe(), outbox.size());
    } else {
      PICOS_LOG(info, "remote: {} frames for {} failed: it was lost before acknowledging them ({} never written)",
                unacked_frames + outbox.size(), Describe(), outbox.size());
    }
  }
  // Outside the lock: each of these may call back into the connection
  // (which now refuses) or run a task's destructors.
  const absl::Status lost = absl::UnavailableError(absl::StrCat("peer ", Describe(), " lost: ", why.message()));
  for (auto& [req, done] : pending) done.Complete(lost);
  for (Completer& r : room) r.Complete(lost);
  for (auto& [reg, m] : monitors) {
    auto it = proxies.find(m.watched_id);
    TaskRef watched = it == proxies.end() ? TaskRef() : it->second;
    absl::Status sent =
        m.monitor.Send(MonitorStatus::PeerLost(watched, m.watched_name, m.watched_id, lost).ToValue());
    if (!sent.ok()) PICOS_LOG(debug, "peer_lost for a gone monitor dropped: {}", sent.ToString());
  }
}

absl::StatusOr<TaskIdentity> ConnectionCodec::ExportTask(const TaskRef& task) {
  if (TaskProxy* p = GetTaskProxy(task); p != nullptr) {
    auto* mine = dynamic_cast<RemoteTaskProxy*>(p);
    if (auto* third = dynamic_cast<ThirdPartyTaskProxy*>(p); third != nullptr) {
      return TaskIdentity{third->home(), p->id(), p->name(), third->proof()};
    }
    if (mine == nullptr) {
      return absl::UnimplementedError(absl::StrCat("task ", task.DebugString(), " is of another layer"));
    }
    // A proxy names its task where it lives: sent back there it is the
    // original; sent to a third process, that process reaches it over its own
    // connection to the task's process.
    return TaskIdentity{mine->home(), p->id(), p->name(), mine->proof()};
  }
  absl::StatusOr<TaskIdentity> id = LocalHandleCodec().ExportTask(task);
  if (id.ok()) {
    id->process_id = c_->my_pid;
    id->proof = internal::TaskProof(c_->my_pid, id->task_id);
  }
  return id;
}

namespace {
// What a handle of this process whose proof is wrong becomes: one that fails
// every call, so that the message carrying it is still delivered. Logged:
// an authenticated peer that fabricates handles is worth knowing about.
absl::Status Forged(const Connection& c, const char* kind, const std::string& what) {
  PICOS_LOG_LIMITED(warn, "refused a fabricated or altered handle of {} {} from {}", kind, what, c.Describe());
  return absl::PermissionDeniedError(
      absl::StrCat("handle of ", kind, " ", what, " has no valid proof: it was not given to its sender"));
}
}  // namespace

absl::StatusOr<TaskRef> ConnectionCodec::ImportTask(const TaskIdentity& identity) {
  if (identity.process_id == c_->my_pid) {
    if (!internal::TaskProofValid(c_->my_pid, identity.task_id, identity.proof)) {
      return MakeTaskProxy(std::make_unique<DeadTaskProxy>(
          identity.task_id, identity.name, Forged(*c_, "task", absl::StrCat("#", identity.task_id))));
    }
    TaskIdentity local = identity;
    local.process_id = ProcessId();
    absl::StatusOr<TaskRef> t = LocalHandleCodec().ImportTask(local);
    if (absl::IsNotFound(t.status())) {
      // Ended (or never exported): a handle that fails cleanly, rather than
      // a batch that cannot be decoded.
      return MakeTaskProxy(std::make_unique<DeadTaskProxy>(
          identity.task_id, identity.name,
          absl::FailedPreconditionError(
              absl::StrCat("task #", identity.task_id, " has ended and its result is no longer kept"))));
    }
    return t;
  }
  if (identity.process_id == c_->peer.process_id) {
    return c_->Proxy(identity.task_id, identity.name, identity.proof);
  }
  // A task of a third process: reached over this node's connection to it.
  if (std::shared_ptr<Connection> third = ConnectionTo(c_->node, identity.process_id); third != nullptr) {
    return third->Proxy(identity.task_id, identity.name, identity.proof);
  }
  // Not connected to it yet: ask the peer that sent the handle where it
  // is, and connect (calls wait meanwhile).
  auto state = std::make_shared<ThirdParty<TaskRef>>(
      identity.process_id, absl::StrCat(identity.name, "#", identity.task_id), identity.proof);
  ReachThirdParty(c_->node, c_->weak_from_this(), identity.process_id,
                  [state, id = identity.task_id, name = identity.name](const std::shared_ptr<Connection>& c,
                                                                     const absl::Status& why) {
                    state->Resolved(c != nullptr ? absl::StatusOr<TaskRef>(c->Proxy(id, name, state->proof()))
                                                 : absl::StatusOr<TaskRef>(why));
                  });
  return MakeTaskProxy(std::make_unique<ThirdPartyTaskProxy>(std::move(state), identity.task_id, identity.name));
}

absl::StatusOr<ChannelIdentity> ConnectionCodec::ExportChannel(const ChannelRef& channel) {
  if (ChannelProxy* p = GetChannelProxy(channel); p != nullptr) {
    // A proxy names its channel where it lives (as for tasks above): sent
    // to a third process, that process reaches it over its own connection.
    if (auto* third = dynamic_cast<ThirdPartyChannelProxy*>(p); third != nullptr) {
      return ChannelIdentity{third->home(), channel.name(), third->proof()};
    }
    auto* mine = dynamic_cast<RemoteChannelProxy*>(p);
    if (mine == nullptr) {
      return absl::UnimplementedError(absl::StrCat("channel ", channel.DebugString(), " is of another layer"));
    }
    return ChannelIdentity{mine->home(), channel.name(), mine->proof()};
  }
  absl::StatusOr<ChannelIdentity> id = LocalHandleCodec().ExportChannel(channel);
  if (id.ok()) {
    id->process_id = c_->my_pid;
    id->proof = internal::ChannelProof(c_->my_pid, id->name);
  }
  return id;
}

absl::StatusOr<ChannelRef> ConnectionCodec::ImportChannel(const ChannelIdentity& identity) {
  if (identity.process_id == c_->my_pid) {
    if (!internal::ChannelProofValid(c_->my_pid, identity.name, identity.proof)) {
      (void)Forged(*c_, "channel", identity.name);
      return MakeChannelProxy(identity.name, std::make_unique<EndedChannelProxy>(identity.name));
    }
    ChannelIdentity local = identity;
    local.process_id = ProcessId();
    absl::StatusOr<ChannelRef> ch = LocalHandleCodec().ImportChannel(local);
    if (absl::IsNotFound(ch.status())) {
      return MakeChannelProxy(identity.name, std::make_unique<EndedChannelProxy>(identity.name));
    }
    return ch;
  }
  if (identity.process_id == c_->peer.process_id) return c_->ChannelProxyFor(identity.name, identity.proof);
  // A channel of a third process: reached over this node's connection to
  // it, made on demand (as for tasks, ImportTask).
  if (std::shared_ptr<Connection> third = ConnectionTo(c_->node, identity.process_id); third != nullptr) {
    return third->ChannelProxyFor(identity.name, identity.proof);
  }
  auto state = std::make_shared<ThirdParty<ChannelRef>>(identity.process_id, absl::StrCat("channel:", identity.name),
                                                         identity.proof);
  ReachThirdParty(c_->node, c_->weak_from_this(), identity.process_id,
                  [state, name = identity.name](const std::shared_ptr<Connection>& c, const absl::Status& why) {
                    state->Resolved(c != nullptr ? absl::StatusOr<ChannelRef>(c->ChannelProxyFor(name, state->proof()))
                                                 : absl::StatusOr<ChannelRef>(why));
                  });
  return MakeChannelProxy(identity.name, std::make_unique<ThirdPartyChannelProxy>(std::move(state), identity.name));
}

// --- NodeImpl ---

class NodeImpl final : public NameResolver {
 public:
  NodeImpl(const TransportRegistry& transports, NodeOptions options)
      : transports_(&transports),
        options_(std::move(options)),
        my_pid_(options_.process_id.empty() ? NodeProcessId() : options_.process_id),
        scheduler_(&ThisScheduler()),
        handshakes_(*scheduler_, TaskGroup::Options{.name = "remote-handshake",
                                                    .max_tasks = options_.max_pending_handshakes}),
        tasks_(*scheduler_, TaskGroup::Options{.name = "remote-node"}) {
    // Session ids differ between nodes of one process id (a node started
    // again in the same process): a peer never takes a new session for the
    // old one it still holds.
    std::random_device rd;
    next_session_id_ = ((uint64_t{rd()} << 32) | rd()) | 1;
  }

  const ChannelRef& peer_events() const { return events_.ref(); }
  // Broadcasts a peer event (kPeerEventMessage).
  void PeerEvent(const char* event, const Connection& c, const absl::Status& why) {
    Value::MapType m{{"event", event},
                     {"name", c.peer.name},
                     {"uri", !c.peer.uris.empty() ? c.peer.uris[0] : c.dialled}};
    if (!why.ok()) m.emplace("reason", std::string(why.message()));
    (void)events_.Send(SystemMessage(kPeerEventMessage, Value(std::move(m))));
  }

  ~NodeImpl() override {
    SetNameResolver(*scheduler_, nullptr);
    for (auto& [pid, waiting] : reaching_) {
      for (Reached& reached : waiting) reached(nullptr, absl::UnavailableError("this node closed"));
    }
    reaching_.clear();
    (void)events_.Close();
    for (auto& [pid, c] : by_pid_) {
      c->Fail(absl::UnavailableError("this node closed"));
      c->node = nullptr;
      c->stream = nullptr;
    }
    for (auto& c : unselected_) {
      c->Fail(absl::UnavailableError("this node closed"));
      c->node = nullptr;
      c->stream = nullptr;
    }
    for (auto& l : listeners_) l->Close();
    // tasks_ is destroyed next (declared last): the readers' frames go, and
    // with them the streams they own, on this thread.
  }

  Task<absl::Status> StartListening();
  Task<absl::StatusOr<std::shared_ptr<Connection>>> Connect(std::string uri);

  void Locate(Kind kind, const std::string& name, const Location& location, absl::Duration timeout,
              Completer done) override;

  const std::vector<std::string>& uris() const { return uris_; }
  std::vector<std::string> peers() const {
    std::vector<std::string> out;
    for (const auto& [pid, c] : by_pid_) out.push_back(c->Describe());
    return out;
  }
  size_t refused_handshakes() const { return refused_; }
  size_t reconnects() const { return reconnects_; }
  size_t heartbeat_losses() const { return heartbeat_losses_; }
  std::vector<PeerStats> peer_stats() const {
    std::vector<PeerStats> out;
    for (const auto& [pid, c] : by_pid_) {
      out.push_back({c->Describe(), c->messages_sent, c->messages_received, c->bytes_sent, c->bytes_received,
                     c->heartbeats_missed, c->BufferBytes()});
    }
    return out;
  }
  // Nothing accepted is left to write: a session waiting to be reconnected
  // is flushed once it is (its unacknowledged batches written again) or lost.
  bool flushed() const {
    for (const auto& [pid, c] : by_pid_) {
      if (c->lost()) continue;
      if (c->writing || !c->outbox_empty()) return false;
      if (c->stream == nullptr && c->has_unacked()) return false;
    }
    return true;
  }
  // Node::Close: a goodbye after everything queued for each peer.
  void SayGoodbye() {
    for (auto& [pid, c] : by_pid_) (void)c->Push(Value::Map({{"op", "bye"}}));
  }
  std::shared_ptr<Connection> ByPid(const std::string& pid) const {
    auto it = by_pid_.find(pid);
    return it == by_pid_.end() ? nullptr : it->second;
  }
  // ReachThirdParty: one connecting task per process, however many handles
  // of it arrive meanwhile.
  void Reach(std::weak_ptr<Connection> via, const std::string& pid, Reached reached) {
    std::vector<Reached>& waiting = reaching_[pid];
    waiting.push_back(std::move(reached));
    if (waiting.size() > 1) return;
    absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("remote-reach", &NodeImpl::ReachTask, this, std::move(via), pid);
    if (!t.ok()) FinishReach(pid, nullptr, t.status());
  }

 private:
  friend class Node;
  Task<absl::Status> AcceptLoop(Listener* listener);
  Task<absl::Status> AcceptOne(std::unique_ptr<Stream> stream);
  HandshakeOptions Handshaking(Role role) const {
    HandshakeOptions h;
    h.secret = options_.secret;
    h.role = role;
    h.timeout = options_.handshake_timeout;
    h.uris = uris_;
    h.name = options_.name;
    h.process_id = my_pid_;
    return h;
  }
  // Takes a connection whose handshake succeeded; gives the one to use.
  std::shared_ptr<Connection> Adopt(std::unique_ptr<Stream> stream, HandshakeResult peer,
                                    std::string dialled);
  void Lost(const std::shared_ptr<Connection>& c, const absl::Status& why);
  // The stream `link` of `c` failed (`why`): a kept session waits for a new
  // one (its connector redials) for reconnect_grace; anything else is lost.
  void Broken(const std::shared_ptr<Connection>& c, uint64_t link, const absl::Status& why);
  // `stream` (its handshake proved c's peer) is c's stream from now on.
  void Attach(const std::shared_ptr<Connection>& c, std::unique_ptr<Stream> stream);
  // A new stream of `c` is up: its first message, then the resend.
  void BeginLink(const std::shared_ptr<Connection>& c);
  // The connector of a session whose stream broke dials its peer again,
  // with backoff, until the grace period ends.
  static Task<absl::Status> RedialLoop(NodeImpl* self, std::shared_ptr<Connection> c);
  // The peer's session id, from its ping or select: the first is recorded;
  // another means the peer lost this session (kFailedPrecondition).
  absl::Status PeerSession(const std::shared_ptr<Connection>& c, uint64_t sid);
  // Makes `c` the pair's connection: reachable by its peer's id and URIs,
  // heartbeats, "joined". `peer_sid`: the arbiter's session id from its
  // select; when it names the session of the peer this node has already
  // (its stream broke), c's stream is merged into that session instead.
  void Keep(const std::shared_ptr<Connection>& c, uint64_t peer_sid = 0);
  // The arbiter's "select" on an unselected connection.
  absl::Status Select(const std::shared_ptr<Connection>& c, bool keep, uint64_t sid);
  // Waits (until `give_up_ns`) for the arbiter's choice about `c`; gives the
  // pair's connection.
  Task<absl::StatusOr<std::shared_ptr<Connection>>> AwaitSelection(std::shared_ptr<Connection> c,
                                                                    int64_t give_up_ns);
  // The arbiter closing a connection it does not keep: "select" with keep
  // false, then the peer closes it; bounded by handshake_timeout.
  static Task<absl::Status> Decline(std::unique_ptr<Stream> stream, absl::Duration timeout);
  std::shared_ptr<Connection> Find(const std::string& uri) const {
    auto it = by_uri_.find(uri);
    return it == by_uri_.end() ? nullptr : it->second;
  }
  static Task<absl::Status> ReachTask(NodeImpl* self, std::weak_ptr<Connection> via, std::string pid);
  void FinishReach(const std::string& pid, const std::shared_ptr<Connection>& c, const absl::Status& why) {
    auto it = reaching_.find(pid);
    if (it == reaching_.end()) return;
    std::vector<Reached> waiting = std::move(it->second);
    reaching_.erase(it);
    for (Reached& reached : waiting) reached(c, why);
  }
  static Task<absl::Status> ReaderLoop(NodeImpl* self, std::shared_ptr<Connection> c,
                                       std::unique_ptr<Stream> stream, uint64_t link);
  static Task<absl::Status> WriterLoop(NodeImpl* self, std::shared_ptr<Connection> c);
  static Task<absl::Status> HeartbeatLoop(NodeImpl* self, std::shared_ptr<Connection> c);
  // Applies one frame of a batch; `frame` may be taken apart (a message
  // moved out of it).
  absl::Status Dispatch(const std::shared_ptr<Connection>& c, Value& frame);
  // A send frame, its fields read (frames_internal.h ReadFrame).
  absl::Status DispatchSend(const std::shared_ptr<Connection>& c, uint64_t id, uint64_t proof_hi, uint64_t proof_lo,
                            Value message);
  static Task<absl::Status> LocateAt(NodeImpl* self, std::string uri, std::string kind, std::string name,
                                     absl::Duration timeout, std::shared_ptr<Completer> done);
  static Task<absl::Status> ServeLocate(std::weak_ptr<Connection> c, uint64_t req, bool want_channel,
                                        std::string name, int64_t timeout_ns);
  static Task<absl::Status> ServeDeliver(std::weak_ptr<Connection> c, uint64_t req, ChannelRef channel,
                                         Value message, uint32_t n, int64_t timeout_ns);
  static Task<absl::Status> ServeTaskDeliver(std::weak_ptr<Connection> c, uint64_t req, TaskRef task,
                                             Value message, int64_t timeout_ns);

  const TransportRegistry* transports_;
  NodeOptions options_;
  const std::string my_pid_;
  Scheduler* scheduler_;
  std::vector<std::string> uris_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  absl::flat_hash_map<std::string, std::shared_ptr<Connection>> by_pid_;
  absl::flat_hash_map<std::string, std::shared_ptr<Connection>> by_uri_;
  // Third processes being connected to, with the handles waiting for it.
  absl::flat_hash_map<std::string, std::vector<Reached>> reaching_;
  // Connections of which the arbiter (the peer) has not said yet whether
  // they are kept; nothing is sent on them.
  std::vector<std::shared_ptr<Connection>> unselected_;
  // Notified whenever a connection is kept, dropped or lost: what a Connect
  // waiting for the arbiter's choice waits for.
  Condition selection_changed_;
  size_t refused_ = 0;
  size_t reconnects_ = 0;
  size_t heartbeat_losses_ = 0;
  uint64_t next_session_id_ = 1;
  Channel events_ = Channel::Create("picos.peer_events");
  // Last: destroyed first, while what their tasks use exists.
  TaskGroup handshakes_;  // accepted connections in their handshake
  TaskGroup tasks_;
};

Task<absl::Status> NodeImpl::StartListening() {
  for (const std::string& uri : options_.listen) {
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await transports_->Listen(uri);
    if (!l.ok()) {
      co_return absl::Status(l.status().code(),
                             absl::StrCat("listening on ", uri, ": ", l.status().message()));
    }
    if (options_.advertise.empty()) uris_.push_back((*l)->address());
    listeners_.push_back(*std::move(l));
  }
  if (!options_.advertise.empty()) uris_ = options_.advertise;
  for (auto& l : listeners_) {
    absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("remote-accept", &NodeImpl::AcceptLoop, this, l.get());
    if (!t.ok()) co_return t.status();
  }
  SetNameResolver(*scheduler_, this);
  co_return absl::OkStatus();
}

Task<absl::Status> NodeImpl::AcceptLoop(Listener* listener) {
  for (;;) {
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await listener->Accept();
    if (!s.ok()) {
      if (absl::IsFailedPrecondition(s.status())) co_return absl::OkStatus();  // closed
      PICOS_LOG_LIMITED(warn, "remote: accept on {} failed: {}", listener->address(), s.status().ToString());
      continue;
    }
    // Each handshake in a task of its own, bounded by handshake_timeout, so
    // a silent client never delays the next.
    absl::StatusOr<TaskRef> t =
        handshakes_.SpawnNamed("remote-handshake", &NodeImpl::AcceptOne, this, *std::move(s));
    if (!t.ok()) {
      // The stream was not taken: it closes with `s`, at the end of this turn.
      ++refused_;
      PICOS_LOG_LIMITED(warn, "remote: refused a connection on {}: {} handshakes pending already",
                        listener->address(), options_.max_pending_handshakes);
    }
  }
}

Task<absl::Status> NodeImpl::AcceptOne(std::unique_ptr<Stream> stream) {
  absl::StatusOr<HandshakeResult> peer = co_await Handshake(*stream, Handshaking(Role::kAcceptor));
  if (!peer.ok()) {
    ++refused_;
    PICOS_LOG_LIMITED(warn, "remote: refused a connection from {}: {}", stream->peer_address(),
                      peer.status().ToString());
    stream->Close();
    co_return absl::OkStatus();
  }
  (void)Adopt(std::move(stream), *std::move(peer), std::string());
  co_return absl::OkStatus();
}

Task<absl::StatusOr<std::shared_ptr<Connection>>> NodeImpl::Connect(std::string uri) {
  if (std::shared_ptr<Connection> c = Find(uri); c != nullptr) co_return c;
  const int64_t give_up_ns =
      ThisScheduler().NowNs() + absl::ToInt64Nanoseconds(std::min(options_.connect_timeout, absl::Hours(24 * 365)));
  absl::StatusOr<std::unique_ptr<Stream>> s = co_await transports_->Connect(uri, options_.connect_timeout);
  if (!s.ok()) {
    co_return absl::Status(s.status().code(), absl::StrCat("connecting to ", uri, ": ", s.status().message()));
  }
  absl::StatusOr<HandshakeResult> peer = co_await Handshake(**s, Handshaking(Role::kConnector));
  if (!peer.ok()) {
    ++refused_;
    PICOS_LOG_LIMITED(warn, "remote: handshake with {} failed: {}", uri, peer.status().ToString());
    (*s)->Close();
    co_return absl::Status(peer.status().code(),
                           absl::StrCat("handshake with ", uri, ": ", peer.status().message()));
  }
  std::shared_ptr<Connection> c = Adopt(*std::move(s), *std::move(peer), uri);
  if (c->selection == Connection::Selection::kKept) co_return c;
  co_return co_await AwaitSelection(std::move(c), give_up_ns);
}

Task<absl::StatusOr<std::shared_ptr<Connection>>> NodeImpl::AwaitSelection(std::shared_ptr<Connection> c,
                                                                           int64_t give_up_ns) {
  absl::StatusOr<LockGuard> held = co_await selection_changed_.Acquire();
  if (!held.ok()) co_return held.status();
  for (;;) {
    switch (c->selection) {
      case Connection::Selection::kKept:
        co_return c;
      case Connection::Selection::kMerged:
        co_return c->merged_into;
      case Connection::Selection::kLost:
        co_return c->Lost();
      case Connection::Selection::kDropped:
        // The arbiter keeps another connection between the two: it comes
        // up here too (if it has not yet).
        if (std::shared_ptr<Connection> kept = ByPid(c->peer.process_id); kept != nullptr) {
          if (!c->dialled.empty()) by_uri_.emplace(c->dialled, kept);  // the next Connect finds it
          co_return kept;
        }
        break;
      case Connection::Selection::kPending:
        break;
    }
    const int64_t left_ns = give_up_ns - ThisScheduler().NowNs();
    if (left_ns <= 0) {
      co_return absl::DeadlineExceededError(absl::StrCat(
          "connected to ", c->Describe(), ", which did not choose between simultaneous connections in time"));
    }
    absl::Status waited = co_await selection_changed_.Wait(absl::Nanoseconds(left_ns));
    if (!waited.ok() && !absl::IsDeadlineExceeded(waited)) co_return waited;
  }
}

Task<absl::Status> NodeImpl::Decline(std::unique_ptr<Stream> stream, absl::Duration timeout) {
  std::string out;
  absl::StatusOr<std::string> bytes = EncodeValue(Value::List({Value::Map({{"op", "select"}, {"keep", false}})}));
  if (bytes.ok()) AppendFrame(*bytes, &out);
  absl::Status wrote = co_await stream->Write(std::move(out), timeout);
  if (wrote.ok()) {
    // Until the peer closes: it sends nothing on an unselected connection,
    // and closing first could reset what was written.
    char buf[64];
    for (;;) {
      absl::StatusOr<size_t> n = co_await stream->ReadSome(buf, 1, sizeof buf, timeout);
      if (!n.ok() || *n == 0) break;
    }
  }
  stream->Close();
  co_return absl::OkStatus();
}

// One connection per pair of peers, whoever dials: the peer with the lower
// process id (the arbiter) decides, on its own thread, for each connection
// as its handshake ends: the first is kept, any other while that one lives
// is declined ("select" with keep false) and closed. The other peer sends
// nothing on a connection until the arbiter's "select" says it is kept, so
// nothing is ever sent on a connection that is then closed, and both sides
// connecting at once ends with one connection.
std::shared_ptr<Connection> NodeImpl::Adopt(std::unique_ptr<Stream> stream, HandshakeResult peer,
                                            std::string dialled) {
  const bool arbiter = my_pid_ < peer.process_id;
  if (arbiter) {
    auto existing = by_pid_.find(peer.process_id);
    if (existing != by_pid_.end()) {
      std::shared_ptr<Connection> c = existing->second;
      if (!dialled.empty()) by_uri_.emplace(dialled, c);
      if (c->stream == nullptr && !c->lost()) {
        // Its stream broke and the peer dialled again: this is the
        // session's stream now (the peer's first ping proves it is the
        // same session, PeerSession).
        Attach(c, std::move(stream));
        return c;
      }
      PICOS_LOG(debug, "remote: a second connection to {}: declined", c->Describe());
      absl::StatusOr<TaskRef> t =
          tasks_.SpawnNamed("remote-decline", &NodeImpl::Decline, std::move(stream), options_.handshake_timeout);
      (void)t;  // not spawned (the node is closing): the stream closes with the task's arguments
      return c;
    }
  }
  auto c = std::make_shared<Connection>(this, my_pid_, std::move(peer), std::move(dialled),
                                        options_.max_frame_size, options_.max_queued_frames,
                                        options_.max_queued_bytes);
  c->session_id = next_session_id_++;
  c->stream = stream.get();
  c->link = 1;
  absl::StatusOr<TaskRef> w = tasks_.SpawnNamed("remote-writer", &NodeImpl::WriterLoop, this, c);
  absl::StatusOr<TaskRef> r =
      tasks_.SpawnNamed("remote-reader", &NodeImpl::ReaderLoop, this, c, std::move(stream), c->link);
  if (w.ok()) c->writer = *w;  // before any proxy of the connection exists: no other thread reads it yet
  if (r.ok()) c->reader = *r;
  c->last_heard_ns = scheduler_->NowNs();
  // Liveness from the start: an arbiter that never says "select" is lost
  // like a silent peer.
  absl::StatusOr<TaskRef> h = tasks_.SpawnNamed("remote-heartbeat", &NodeImpl::HeartbeatLoop, this, c);
  if (h.ok()) c->heartbeat = *h;
  if (!w.ok() || !r.ok()) {
    c->selection = Connection::Selection::kKept;  // so that Lost says so
    by_pid_.emplace(c->peer.process_id, c);
    Lost(c, absl::UnavailableError("this node is closing"));
    return c;
  }
  if (arbiter) {
    // The first message on the connection is the select; a new session has
    // nothing to resend, so nothing waits for the peer's first ping.
    c->opener_due = true;
    c->peer_resumed = true;
    Keep(c);
    c->KickWriter();
  } else {
    unselected_.push_back(c);
  }
  return c;
}

void NodeImpl::Attach(const std::shared_ptr<Connection>& c, std::unique_ptr<Stream> stream) {
  if (c->stream != nullptr) c->stream->Close();  // its reader ends; its link number is stale
  ++c->link;
  c->stream = stream.get();
  absl::StatusOr<TaskRef> r =
      tasks_.SpawnNamed("remote-reader", &NodeImpl::ReaderLoop, this, c, std::move(stream), c->link);
  if (!r.ok()) {
    c->stream = nullptr;
    Lost(c, absl::UnavailableError("this node is closing"));
    return;
  }
  c->reader = *r;
  BeginLink(c);
}

void NodeImpl::BeginLink(const std::shared_ptr<Connection>& c) {
  c->last_heard_ns = scheduler_->NowNs();
  c->sent_since_tick = false;
  c->opener_due = true;
  // Sequenced batches wait for the peer's first message on this stream: it
  // says what the peer received (only the rest is written again) and proves
  // that the peer still has this session.
  c->peer_resumed = false;
  c->resend_due = true;
  ++reconnects_;
  PICOS_LOG(info, "remote: reconnected to {} after {}", c->Describe(),
            absl::FormatDuration(absl::Nanoseconds(scheduler_->NowNs() - c->broken_ns)));
  c->KickWriter();
}

void NodeImpl::Keep(const std::shared_ptr<Connection>& c, uint64_t peer_sid) {
  if (auto old = by_pid_.find(c->peer.process_id); old != by_pid_.end() && old->second != c) {
    std::shared_ptr<Connection> s = old->second;
    if (peer_sid != 0 && s->peer_session_id == peer_sid && !s->lost() &&
        options_.reconnect_grace > absl::ZeroDuration()) {
      // The arbiter kept a new stream of the session this node has with it:
      // c's stream (and its reader, which switches to s after this frame)
      // continues s. The old stream, if this side has not seen it break
      // yet, is closed.
      std::erase(unselected_, c);
      c->selection = Connection::Selection::kMerged;
      c->merged_into = s;
      if (s->stream != nullptr) s->stream->Close();
      ++s->link;
      s->stream = c->stream;
      s->reader = c->reader;
      c->stream = nullptr;
      if (c->writer.valid()) (void)c->writer.Terminate();
      if (c->heartbeat.valid()) (void)c->heartbeat.Terminate();
      c->Fail(absl::UnavailableError("merged into the session"));  // it holds nothing
      if (!c->dialled.empty()) by_uri_.emplace(c->dialled, s);
      BeginLink(s);
      selection_changed_.NotifyAll();
      return;
    }
    // The arbiter keeps a new one of a new session: the old one is gone
    // there (the peer lost it, or it broke there first and no grace).
    Lost(s, absl::UnavailableError("the peer replaced the connection"));
  }
  std::erase(unselected_, c);
  c->selection = Connection::Selection::kKept;
  by_pid_.emplace(c->peer.process_id, c);
  if (!c->dialled.empty()) by_uri_.emplace(c->dialled, c);
  for (const std::string& u : c->peer.uris) by_uri_.emplace(u, c);
  if (c->peer_session_id == 0) c->peer_session_id = peer_sid;
  if (my_pid_ > c->peer.process_id) {
    // Not the arbiter: the select was the peer's first message; this
    // side's first (a ping saying what it received) is due.
    c->opener_due = true;
    c->KickWriter();
  }
  PICOS_LOG(debug, "remote: connected to {}", c->Describe());
  PeerEvent("joined", *c, absl::OkStatus());
  selection_changed_.NotifyAll();
}

absl::Status NodeImpl::Select(const std::shared_ptr<Connection>& c, bool keep, uint64_t sid) {
  if (my_pid_ < c->peer.process_id || c->selection != Connection::Selection::kPending) {
    return absl::InvalidArgumentError("a select from a peer that does not choose, or twice");
  }
  if (keep) {
    Keep(c, sid);
    return absl::OkStatus();
  }
  c->selection = Connection::Selection::kDropped;
  Lost(c, absl::UnavailableError("the peer keeps another connection between the two"));
  return absl::OkStatus();
}

absl::Status NodeImpl::PeerSession(const std::shared_ptr<Connection>& c, uint64_t sid) {
  if (sid == 0 || c->peer_session_id == sid) return absl::OkStatus();
  if (c->peer_session_id == 0) {
    c->peer_session_id = sid;
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError("the peer started a new session: it lost this one");
}

void NodeImpl::Broken(const std::shared_ptr<Connection>& c, uint64_t link, const absl::Status& why) {
  if (c->node == nullptr || c->link != link || c->stream == nullptr || c->lost()) return;
  if (c->selection != Connection::Selection::kKept || options_.reconnect_grace <= absl::ZeroDuration()) {
    Lost(c, why);
    return;
  }
  // The session outlives its stream: the connector dials again; both keep
  // what was not acknowledged. Lost only when the grace period ends (the
  // heartbeat loop) or the redial finds nothing listening.
  PICOS_LOG(info, "remote: connection to {} broke ({}); {} within {}", c->Describe(), why.ToString(),
            c->dialled.empty() ? "waiting for it to reconnect" : "reconnecting",
            absl::FormatDuration(options_.reconnect_grace));
  c->stream->Close();
  c->stream = nullptr;
  ++c->link;
  c->broken_ns = scheduler_->NowNs();
  c->broken_why = why;
  c->writing = false;
  if (!c->dialled.empty()) {
    absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("remote-redial", &NodeImpl::RedialLoop, this, c);
    if (t.ok()) c->redial = *t;
  }
}

namespace {
// A redial that finds nothing listening at the peer's address: its process
// is gone (a restarted one is a new peer anyway), so waiting out the grace
// period would only delay what is certain.
bool NothingListens(const absl::Status& s) {
  return absl::IsNotFound(s) || absl::StrContains(s.message(), "connection refused");
}
}  // namespace

Task<absl::Status> NodeImpl::RedialLoop(NodeImpl* self, std::shared_ptr<Connection> c) {
  const int64_t give_up_ns = c->broken_ns + absl::ToInt64Nanoseconds(self->options_.reconnect_grace);
  const std::string uri = c->dialled;
  absl::Duration backoff = absl::Milliseconds(10);
  auto done = [&]() { return c->node == nullptr || c->lost() || c->stream != nullptr; };
  for (;;) {
    if (done()) co_return absl::OkStatus();
    const int64_t left_ns = give_up_ns - ThisScheduler().NowNs();
    if (left_ns <= 0) co_return absl::OkStatus();  // the heartbeat loop loses it
    const absl::Duration left = absl::Nanoseconds(left_ns);
    absl::StatusOr<std::unique_ptr<Stream>> s =
        co_await self->transports_->Connect(uri, std::min(self->options_.connect_timeout, left));
    if (done()) co_return absl::OkStatus();
    absl::Status failed;
    if (!s.ok()) {
      if (NothingListens(s.status())) {
        self->Lost(c, absl::Status(c->broken_why.code(),
                                   absl::StrCat(c->broken_why.message(), "; nothing listens at ", uri,
                                                " any more (", s.status().message(), ")")));
        co_return absl::OkStatus();
      }
      failed = s.status();
    } else {
      HandshakeOptions h = self->Handshaking(Role::kConnector);
      h.timeout = std::min(h.timeout, left);
      absl::StatusOr<HandshakeResult> peer = co_await Handshake(**s, h);
      if (done()) co_return absl::OkStatus();
      if (!peer.ok()) {
        (*s)->Close();
        if (absl::IsUnauthenticated(peer.status()) || absl::IsFailedPrecondition(peer.status())) {
          self->Lost(c, peer.status());  // it will not get better
          co_return absl::OkStatus();
        }
        failed = peer.status();
      } else if (peer->process_id != c->peer.process_id) {
        // Another process at that address: a new peer; the old one is lost.
        self->Lost(c, absl::UnavailableError(absl::StrCat(c->broken_why.message(),
                                                          "; it restarted (a new process id)")));
        (void)self->Adopt(*std::move(s), *std::move(peer), uri);
        co_return absl::OkStatus();
      } else {
        std::shared_ptr<Connection> got = self->Adopt(*std::move(s), *std::move(peer), uri);
        if (got->selection == Connection::Selection::kPending) {
          // Not the arbiter: kept (merged into c), or declined while the
          // arbiter still holds the old stream (then again, after backoff).
          absl::StatusOr<std::shared_ptr<Connection>> kept =
              co_await self->AwaitSelection(got, ThisScheduler().NowNs() + left_ns);
          if (!kept.ok()) failed = kept.status();
        }
        if (done()) co_return absl::OkStatus();
      }
    }
    PICOS_LOG(debug, "remote: redialling {} at {}: {}", c->Describe(), uri, failed.ToString());
    const int64_t wait_ns = std::min(absl::ToInt64Nanoseconds(backoff), give_up_ns - ThisScheduler().NowNs());
    if (wait_ns > 0) {
      absl::Status slept = co_await Sleep(absl::Nanoseconds(wait_ns));
      if (!slept.ok()) co_return absl::OkStatus();
    }
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

void NodeImpl::Lost(const std::shared_ptr<Connection>& c, const absl::Status& why) {
  if (c->stream == nullptr && c->lost()) return;
  const bool joined = c->selection == Connection::Selection::kKept;
  // Declined by the arbiter stays kDropped; anything else is lost.
  if (c->selection != Connection::Selection::kDropped) c->selection = Connection::Selection::kLost;
  std::erase(unselected_, c);
  selection_changed_.NotifyAll();
  if (joined) {
    PICOS_LOG(info, "remote: connection to {} closed: {}", c->Describe(), why.ToString());
  } else {
    PICOS_LOG(debug, "remote: unselected connection to {} closed: {}", c->Describe(), why.ToString());
  }
  c->Fail(why);
  if (c->stream != nullptr) c->stream->Close();
  c->stream = nullptr;
  ++c->link;
  if (auto it = by_pid_.find(c->peer.process_id); it != by_pid_.end() && it->second == c) by_pid_.erase(it);
  for (auto it = by_uri_.begin(); it != by_uri_.end();) {
    if (it->second == c) {
      by_uri_.erase(it++);
    } else {
      ++it;
    }
  }
  if (c->writer.valid()) (void)c->writer.Terminate();
  if (c->heartbeat.valid()) (void)c->heartbeat.Terminate();
  if (!joined) return;
  PeerEvent(absl::IsUnavailable(why) && absl::StrContains(why.message(), "closed the connection") ? "left"
                                                                                                  : "lost",
            *c, why);
}

// Wakes at each ping tick (every heartbeat_interval since the connection
// came up) and at the moment the peer's silence reaches
// heartbeat_interval * heartbeat_misses, whichever comes first, so that a
// silent peer is lost after exactly that much of the scheduler's time.
// While the session waits to be reconnected it wakes at each tick and when
// the grace period ends, and loses the session then.
Task<absl::Status> NodeImpl::HeartbeatLoop(NodeImpl* self, std::shared_ptr<Connection> c) {
  const int64_t interval_ns = absl::ToInt64Nanoseconds(self->options_.heartbeat_interval);
  const int64_t dead_after_ns = interval_ns * std::max(1, self->options_.heartbeat_misses);
  const int64_t grace_ns = absl::ToInt64Nanoseconds(self->options_.reconnect_grace);
  int64_t next_tick_ns = ThisScheduler().NowNs() + interval_ns;
  for (;;) {
    const int64_t now_ns = ThisScheduler().NowNs();
    if (c->stream == nullptr) {
      const int64_t give_up_ns = c->broken_ns + grace_ns;
      if (now_ns >= give_up_ns) {
        self->Lost(c, absl::Status(c->broken_why.code(),
                                   absl::StrCat(c->broken_why.message(), "; not reconnected within ",
                                                absl::FormatDuration(self->options_.reconnect_grace))));
        co_return absl::OkStatus();
      }
      absl::Status slept = co_await Sleep(absl::Nanoseconds(std::min(give_up_ns, now_ns + interval_ns) - now_ns));
      if (!slept.ok() || c->lost()) co_return absl::OkStatus();
      next_tick_ns = ThisScheduler().NowNs() + interval_ns;
      continue;
    }
    // A reader that is ready to run has bytes from the peer waiting: heard
    // (this process was busy, not the peer silent).
    if (c->reader.valid() && c->reader.state() == TaskState::kReady) c->last_heard_ns = now_ns;
    const int64_t silent_ns = now_ns - c->last_heard_ns;
    if (silent_ns >= dead_after_ns) {
      // Missed heartbeats lose the peer at once, without redialling: a
      // stream that stays up but carries nothing means a peer that is hung
      // or cut off, and the liveness bound is a promise.
      ++self->heartbeat_losses_;
      self->Lost(c, absl::DeadlineExceededError(absl::StrCat(
                        "heard nothing for ", absl::FormatDuration(absl::Nanoseconds(silent_ns)),
                        " (", self->options_.heartbeat_misses, " heartbeats missed)")));
      co_return absl::OkStatus();
    }
    if (now_ns >= next_tick_ns) {
      if (silent_ns >= interval_ns) ++c->heartbeats_missed;
      // Nothing goes on a connection the arbiter has not kept. A ping also
      // carries the acknowledgement of what arrived since the last one.
      if ((!c->sent_since_tick || c->received != c->ack_sent) &&
          c->selection == Connection::Selection::kKept) {
        c->ping_due = true;
        c->KickWriter();
      }
      c->sent_since_tick = false;
      while (next_tick_ns <= now_ns) next_tick_ns += interval_ns;
    }
    const int64_t wake_ns = std::min(next_tick_ns, c->last_heard_ns + dead_after_ns);
    absl::Status slept = co_await Sleep(absl::Nanoseconds(wake_ns - now_ns));
    if (!slept.ok() || c->lost()) co_return absl::OkStatus();
  }
}

namespace {
// An unsequenced message of one frame (ping or select) with the sender's
// acknowledgement and session id, length-prefixed, appended to `out`.
void AppendControl(Value::MapType frame, uint64_t ack, uint64_t sid, std::string* out) {
  frame.emplace("ack", ack);
  frame.emplace("sid", sid);
  absl::StatusOr<std::string> bytes = EncodeValue(Value::List({Value(std::move(frame))}));
  if (bytes.ok()) AppendFrame(*bytes, out);
}
}  // namespace

Task<absl::Status> NodeImpl::WriterLoop(NodeImpl* self, std::shared_ptr<Connection> c) {
  CodecOptions codec;
  codec.handle_codec = &c->codec;
  codec.max_encoded_size = c->max_frame;
  // Bytes per write: enough to batch, few enough that one write's buffer
  // stays small and is the same size each time, so the allocator hands the
  // same warm memory back (fresh pages cost a fault each: a buffer of
  // megabytes per write made page faults the sender's largest cost).
  constexpr size_t kWriteBytes = 64 << 10;
  // A writer that has written no frame for this long gives back its
  // buffers and the connection's spare ones (an idle connection holds
  // none). Counted from the last frame, not the last write: a heartbeat's
  // ping every second must not keep a flood's buffers forever.
  constexpr int64_t kKeepBuffersNs = 1'000'000'000;
  std::vector<OutFrame> frames;  // taken from the outbox; those from `next` on not yet written
  std::vector<uint32_t> sizes;  // frames[i]'s size as Push counted it
  // The write's bytes, and a batch's items before it is encoded: both kept
  // from one write to the next, so a busy connection allocates neither (a
  // write buffer freed each time made malloc consolidate its free lists).
  std::string out;
  std::vector<ListItem> items;
  size_t next = 0;
  bool more = false;
  int64_t frames_ns = 0;  // when the last frame was written
  bool holding = false;   // buffers kept since then
  auto release = [&] {
    if (next < frames.size()) return;  // frames still to write (a link to be reconnected)
    out = std::string();
    items = std::vector<ListItem>();
    frames = std::vector<OutFrame>();
    sizes = std::vector<uint32_t>();
    c->ReleaseSpareBuffers();
    holding = false;
  };
  for (;;) {
    if (!more) {
      absl::Duration keep = absl::InfiniteDuration();
      if (holding) {
        const int64_t idle_ns = ThisScheduler().NowNs() - frames_ns;
        if (idle_ns >= kKeepBuffersNs) {
          release();
        } else {
          keep = absl::Nanoseconds(kKeepBuffersNs - idle_ns);
        }
      }
      absl::StatusOr<Value> kick = co_await Receive(keep);
      if (absl::IsDeadlineExceeded(kick.status())) {
        release();
        kick = co_await Receive();
      }
      if (!kick.ok()) co_return absl::OkStatus();  // terminated: the connection is gone
      // Awake: whatever is pushed or asked for from here on kicks again (the
      // writer may go back to waiting without taking the outbox).
      c->Unkick();
    } else {
      // A backlog goes out a write at a time with a turn for the others
      // between: a write the kernel takes at once does not suspend, and the
      // reader (the peer's acknowledgements and pings) and the heartbeat
      // must not wait for the whole backlog.
      co_await Yield();
    }
    more = false;
    // No stream (waiting to be reconnected; BeginLink kicks), or not kept
    // yet: what is queued waits.
    if (c->stream == nullptr || c->selection != Connection::Selection::kKept) {
      c->Unkick();  // (TakeOutbox does it otherwise)
      continue;
    }
    Stream* const stream = c->stream;
    const uint64_t link = c->link;
    out.clear();
    if (c->opener_due) {
      c->opener_due = false;
      const bool arbiter = c->my_pid < c->peer.process_id;
      AppendControl(arbiter ? Value::MapType{{"op", "select"}, {"keep", true}} : Value::MapType{{"op", "ping"}},
                    c->received, c->session_id, &out);
    }
    if (c->peer_resumed) {
      if (c->resend_due) {
        c->resend_due = false;
        c->AppendUnacked(&out);  // what the peer lacks, in order, as first written
      }
      if (next == frames.size()) {
        c->TakeOutbox(&frames, &sizes);
        next = 0;
      }
      // The write's buffer, sized once from what Push counted (a lone
      // message in a ping-pong takes a small one; a flood the same large
      // one each time, which the allocator hands back warm).
      size_t expected = out.size();
      for (size_t k = next; k < sizes.size() && expected < kWriteBytes; ++k) expected += sizes[k] + 64;
      out.reserve(std::min(expected, kWriteBytes + (kWriteBytes >> 2)));
      // Each batch opens with its header [seq, ack]: its sequence number and
      // the acknowledgement of what arrived from the peer (a list of two
      // numbers: cheaper to encode and decode than a map). A number is taken
      // once and used by the next batch that encodes, so the peer never
      // sees a gap.
      uint64_t seq = 0;
      Value ack;  // the header's second number
      // Encodes `batch`, whose first item is left for the header, and
      // appends it to the write.
      auto emit = [&](std::vector<ListItem>& batch, size_t n, size_t queued) -> absl::Status {
        if (seq == 0) seq = c->NextSeq();
        ack = Value(c->received);
        batch[0] = ListItem();
        batch[0].value = &ack;
        batch[0].uints[0] = seq;
        batch[0].n_uints = 1;  // [seq, ack]
        // Encoded straight into a buffer kept from an acknowledged batch.
        Connection::Unacked u{seq, c->SpareBuffer(), n, queued};
        PICOS_RETURN_IF_ERROR(EncodeListInto(batch, codec, &u.bytes));
        AppendFrame(u.bytes, &out);
        c->messages_sent += n;
        c->KeepUnacked(std::move(u));
        seq = 0;
        return absl::OkStatus();
      };
      // The item that encodes `f` (which must outlive it).
      auto item_of = [](const OutFrame& f) {
        ListItem item;
        item.value = &f.body;
        if (f.send) {
          item.uints[0] = kSendFrame;
          item.uints[1] = f.task;
          item.uints[2] = f.proof_hi;
          item.uints[3] = f.proof_lo;
          item.n_uints = 4;
        }
        return item;
      };
      size_t i = next;
      const size_t first = next;
      for (; i < frames.size() && out.size() < kWriteBytes; i += kFramesPerBatch) {
        const size_t end = std::min(frames.size(), i + kFramesPerBatch);
        items.clear();
        items.emplace_back();  // the header
        size_t queued = 0;
        for (size_t k = i; k < end; ++k) {
          items.push_back(item_of(frames[k]));
          queued += sizes[k];
        }
        if (emit(items, end - i, queued).ok()) continue;
        // One of them cannot cross: each alone, so that only it is lost.
        for (size_t k = i; k < end; ++k) {
          const OutFrame& frame = frames[k];
          items.resize(1);
          items.push_back(item_of(frame));
          absl::Status sent = emit(items, 1, sizes[k]);
          if (sent.ok()) continue;
          c->Unsent(1, sizes[k]);
          // A message that cannot cross (a handle no peer can name, over the
          // size bound): the sender was told OK ("accepted"); a request gets
          // the error as its reply.
          PICOS_LOG_LIMITED(warn, "remote: a frame for {} cannot be sent: {}", c->Describe(), sent.ToString());
          if (frame.send) continue;
          absl::StatusOr<uint64_t> req = ops::U64(frame.body, "req");
          if (const Value* op = frame.body.Find("op"); op != nullptr && op->is_string() && req.ok()) {
            if (op->as_string() == "reply") {
              const Value error(ops::ReplyFields(*req, sent));
              items.resize(1);
              items.emplace_back().value = &error;
              (void)emit(items, 0, 0);
            } else {
              c->TakePending(*req).Complete(sent);
            }
          }
        }
      }
      // A number taken by frames none of which could cross: an empty batch
      // uses it.
      if (seq != 0) {
        items.resize(1);
        (void)emit(items, 0, 0);
      }
      next = std::min(i, frames.size());
      more = next < frames.size();  // the writer goes on without waiting for a kick
      if (next > first) {
        frames_ns = ThisScheduler().NowNs();
        holding = true;
      }
    } else {
      c->Unkick();
    }
    if (out.empty() && (c->ping_due || c->received != c->ack_sent)) {
      AppendControl(Value::MapType{{"op", "ping"}}, c->received, c->session_id, &out);
    }
    if (out.empty()) {
      c->writing = false;
      continue;
    }
    // Everything written carries the acknowledgement of what arrived.
    c->ack_sent = c->received;
    c->ping_due = false;
    c->sent_since_tick = true;
    c->writing = true;
    c->bytes_sent += out.size();
    absl::Status s = co_await stream->WriteFrom(&out);
    c->writing = false;
    if (!s.ok()) self->Broken(c, link, s);
  }
}

Task<absl::Status> NodeImpl::ReaderLoop(NodeImpl* self, std::shared_ptr<Connection> c,
                                        std::unique_ptr<Stream> stream, uint64_t link) {
  // Acknowledged without waiting for traffic back after this many batches
  // (a one-way flood): the sender's unacknowledged batches stay few.
  constexpr uint64_t kAckEvery = 8;
  CodecOptions codec;
  codec.handle_codec = &c->codec;
  codec.max_encoded_size = c->max_frame;
  FramingOptions framing{.max_message_size = c->max_frame};
  // One buffer per connection, reused: a batch costs no allocation to
  // read, and is decoded where it lies (FrameReader aligns it).
  FrameReader in(stream.get(), framing);
  absl::Status why;
  // Lost, not redialled: the peer broke the protocol, or ended the stream in
  // order (a node that closes, a process that exits: it left). A stream
  // that breaks (reset, a failed read) leaves the session waiting for a new
  // one.
  bool fatal = false;
  // Whether this reader's stream is still the one of `c`.
  auto current = [&]() { return c->node != nullptr && c->link == link && !c->lost(); };
  for (;;) {
    absl::StatusOr<std::optional<std::string_view>> m = co_await in.Next();
    if (!current()) co_return absl::OkStatus();  // replaced, lost or closed meanwhile
    if (!m.ok()) {
      why = m.status();
      // A batch over this node's max_frame_size: the peer allows larger
      // ones (the two must agree). Redialling would bring the same batch
      // again, so the peer is lost, saying why.
      if (absl::IsResourceExhausted(why)) {
        why = absl::ResourceExhaustedError(absl::StrCat(why.message(), ": peers must use the same max_frame_size"));
        fatal = true;
      }
      break;
    }
    if (!m->has_value()) {
      if (c->goodbye) {
        why = absl::UnavailableError("the peer closed the connection");
        fatal = true;
      } else {
        // No goodbye first: the process died, or something between cut the
        // link in order. As for a broken stream, the session waits for a
        // redial (refused at once if the process is gone).
        why = absl::UnavailableError("the connection ended without a goodbye");
      }
      break;
    }
    c->last_heard_ns = ThisScheduler().NowNs();
    c->bytes_received += (*m)->size() + 4;  // and its length prefix
    absl::StatusOr<ListDecoder> batch = internal::OpenBatch(**m, codec);
    if (!batch.ok()) {
      why = batch.status();
      fatal = true;
      break;
    }
    // The batch's first element: its header [seq, ack] (a list: frames are
    // maps or positional sends of five), or a ping or select, which carry
    // the sender's acknowledgement and session id too. Frames of a batch
    // without a header are applied as they come (only pings and selects
    // travel so between peers of this version).
    // Read in place, as most batches open (no Value list and no status
    // built for it: a ping-pong reads one per message).
    uint64_t seq = 0;
    uint64_t header_ack = 0;
    absl::StatusOr<bool> has_header = internal::ReadBatchHeader(*batch, &seq, &header_ack);
    if (!has_header.ok()) {
      why = has_header.status();
      fatal = true;
      break;
    }
    std::optional<uint64_t> ack;
    Value head;
    if (!*has_header && batch->size() > 0) {
      absl::StatusOr<internal::Frame> h = internal::ReadFrame(*batch, 0);
      if (!h.ok()) {
        why = h.status();
        fatal = true;
        break;
      }
      head = std::move(h->value);
      if (h->is_send) head = Value();  // a send first: no header, applied below
      if (head.is_list()) {
        // A list that is no [seq, ack] of unsigned integers.
        why = absl::DataLossError(absl::StrCat("malformed batch header: ", head.DebugString().substr(0, 64)));
        fatal = true;
        break;
      }
    }
    size_t first = 0;
    bool apply = true;
    if (*has_header) {
      first = 1;
      ack = header_ack;
      if (seq <= c->received) {
        apply = false;  // a duplicate: written again after a reconnect, applied already
      } else {
        if (seq != c->received + 1) {
          PICOS_LOG_LIMITED(info, "remote: batches {} to {} from {} were dropped", c->received + 1, seq - 1,
                            c->Describe());
        }
        c->received = seq;
      }
    }
    if (apply && first == 1) c->messages_received += batch->size() - 1;  // not pings and selects
    for (size_t i = first; apply && i < batch->size(); ++i) {
      absl::StatusOr<internal::Frame> f = internal::ReadFrame(*batch, i);
      if (!f.ok()) {
        if (absl::IsDataLoss(f.status())) {
          why = f.status();
          fatal = true;
          break;
        }
        // A handle this version cannot name (a third process): that frame
        // is dropped, the connection stays.
        PICOS_LOG_LIMITED(info, "remote: dropped a frame from {}: {}", c->Describe(), f.status().ToString());
        continue;
      }
      absl::Status s = f->is_send ? self->DispatchSend(c, f->task, f->proof_hi, f->proof_lo, std::move(f->value))
                                  : self->Dispatch(c, f->value);
      if (!s.ok()) PICOS_LOG(debug, "remote: frame from {}: {}", c->Describe(), s.ToString());
      if (c->selection == Connection::Selection::kMerged) {
        // The arbiter kept this stream for the session this node already
        // has with it: it carries that session from here on.
        c = c->merged_into;
        link = c->link;
        codec.handle_codec = &c->codec;
        batch->set_handle_codec(&c->codec);
      }
      if (!current()) break;
    }
    if (fatal) break;
    if (!current()) break;  // lost while dispatching
    bool head_is_select = false;
    if (head.is_map()) {
      const Value& head_op = ops::Field(head, "op");
      head_is_select = head_op == Value("select");
      if (head_op == Value("ping") || head_op == Value("select")) {
        absl::StatusOr<uint64_t> sid = ops::U64(head, "sid");
        if (sid.ok()) {
          if (absl::Status same = self->PeerSession(c, *sid); !same.ok()) {
            why = same;
            fatal = true;
            break;
          }
        }
        if (absl::StatusOr<uint64_t> a = ops::U64(head, "ack"); a.ok()) ack = *a;
      }
    }
    if (ack.has_value()) {
      if (absl::Status acked = c->Acked(*ack); !acked.ok()) {
        if (head_is_select && c->NothingSent()) {
          // The arbiter resumes a session this node has lost (it declared
          // the peer lost, e.g. silent past the liveness bound, and the
          // peer redialled): its ack counts batches of that session. Not
          // a broken protocol: this node's first ping carries its new
          // session id, from which the peer learns that the old session
          // is gone (PeerSession) and loses it, as this node did.
          PICOS_LOG(info, "remote: {} resumes a session this node lost; it will be told", c->Describe());
        } else {
          why = absl::DataLossError(acked.message());
          fatal = true;
          break;
        }
      }
    }
    if (!c->peer_resumed && c->selection == Connection::Selection::kKept) {
      // The peer's first message on this stream: what it lacks goes out
      // again, then everything queued meanwhile.
      c->peer_resumed = true;
      c->KickWriter();
    }
    if (c->received - c->ack_sent >= kAckEvery) c->KickWriter();
    // The tasks this batch made ready take their messages before the next
    // batch is read (a read brings hundreds): a broadcast to a hundred
    // local subscribers otherwise piles up a read's worth of messages in
    // each mailbox, gone cold in the cache by the time they are received.
    co_await Yield();
    if (!current()) break;
  }
  if (!current()) co_return absl::OkStatus();
  if (fatal) {
    self->Lost(c, why);
  } else {
    self->Broken(c, link, why);
  }
  co_return absl::OkStatus();
}

absl::Status NodeImpl::DispatchSend(const std::shared_ptr<Connection>& c, uint64_t id, uint64_t proof_hi,
                                    uint64_t proof_lo, Value message) {
  char proof[internal::kProofSize];
  for (size_t i = 0; i < 8; ++i) {
    proof[i] = static_cast<char>(proof_hi >> (56 - 8 * i));
    proof[8 + i] = static_cast<char>(proof_lo >> (56 - 8 * i));
  }
  if (!internal::TaskProofValid(c->my_pid, id, std::string_view(proof, sizeof proof))) {
    return Forged(*c, "task", absl::StrCat("#", id));
  }
  absl::StatusOr<TaskRef> t = ImportLocalTask(id);
  if (!t.ok()) return t.status();  // ended (and no longer kept): a send to it is dropped, as locally
  return t->Send(std::move(message));
}

absl::Status NodeImpl::Dispatch(const std::shared_ptr<Connection>& c, Value& frame) {
  if (frame.is_list()) {
    Value::ListType& f = frame.as_list();
    // ReadFrame takes every well-formed send (its four integers): what
    // comes here is not one.
    if (f.size() == 5 && f[0] == Value(uint64_t{kSendFrame})) return absl::InvalidArgumentError("malformed send frame");
    return absl::InvalidArgumentError("an unknown positional frame");
  }
  const Value& op_v = ops::Field(frame, "op");
  if (!op_v.is_string()) return absl::InvalidArgumentError("a frame without an op");
  const std::string& op = op_v.as_string();
  std::weak_ptr<Connection> weak = c;
  // What the shared appliers send back on: the connection, held weakly (a
  // task may end or a channel broadcast after the peer went).
  ops::PushFrame push = [weak](Value f) -> absl::Status {
    std::shared_ptr<Connection> l = weak.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    return l->Push(std::move(f));
  };
  // A task or channel of this process named by a frame: only with the proof
  // this process minted into the handle the peer was given.
  auto proof = [&]() -> std::string_view {
    const Value& p = ops::Field(frame, "proof");
    return p.is_bytes() ? std::string_view(p.as_string()) : std::string_view();
  };
  auto find_task = [&]() -> absl::StatusOr<TaskRef> {
    absl::StatusOr<uint64_t> id = ops::U64(frame, "task");
    if (!id.ok()) return id.status();
    if (!internal::TaskProofValid(c->my_pid, *id, proof())) return Forged(*c, "task", absl::StrCat("#", *id));
    absl::StatusOr<TaskRef> t = LocalHandleCodec().ImportTask(TaskIdentity{ProcessId(), *id, "", ""});
    // Its proof says it was given out, so it existed: it has ended (ids are
    // never reused) and is no longer kept (kEndedTasksKept, value_codec.h).
    // A task that ended more recently is found, and answers as a local one.
    if (absl::IsNotFound(t.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("task #", *id, " has ended and its result is no longer kept"));
    }
    return t;
  };

  if (op == "send" || op == "resume" || op == "terminate" || op == "throw") {
    absl::StatusOr<TaskRef> t = find_task();
    if (!t.ok()) return t.status();
    return ops::ApplyTaskOp(op, frame, *t);
  }
  if (op == "join") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    absl::StatusOr<TaskRef> t = find_task();
    if (!t.ok()) {
      c->Reply(*req, t.status());
      return t.status();
    }
    NotifyWhenDone(*t, Completer([weak, req = *req](absl::StatusOr<Value> r) {
                     if (std::shared_ptr<Connection> l = weak.lock()) l->Reply(req, std::move(r));
                   }));
    return absl::OkStatus();
  }
  if (op == "deliver") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    absl::StatusOr<TaskRef> t = find_task();
    absl::StatusOr<int64_t> timeout_ns = FromValue<int64_t>(ops::Field(frame, "timeout_ns"));
    if (!t.ok() || !timeout_ns.ok()) {
      absl::Status bad = t.ok() ? absl::InvalidArgumentError("malformed deliver frame") : t.status();
      c->Reply(*req, bad);
      return bad;
    }
    absl::StatusOr<TaskRef> server = tasks_.SpawnNamed("remote-deliver", &NodeImpl::ServeTaskDeliver, weak, *req,
                                                       *t, ops::Field(frame, "msg"), *timeout_ns);
    if (!server.ok()) c->Reply(*req, absl::UnavailableError("the peer is closing"));
    return absl::OkStatus();
  }
  if (op == "monitor") {
    absl::StatusOr<uint64_t> reg = ops::U64(frame, "reg");
    if (!reg.ok()) return reg.status();
    absl::StatusOr<TaskRef> t = find_task();
    if (!t.ok()) {
      // Answered all the same: a monitor that hears nothing waits forever.
      absl::StatusOr<uint64_t> id = ops::U64(frame, "task");
      ops::RefuseMonitor(id.ok() ? *id : 0, *reg, t.status(), push);
      return t.status();
    }
    ops::MonitorForPeer(*t, *reg, push);
    return absl::OkStatus();
  }
  if (op == "monitor_msg") {
    absl::StatusOr<uint64_t> reg = ops::U64(frame, "reg");
    if (!reg.ok()) return reg.status();
    std::optional<MonitorReg> m = c->TakeMonitor(*reg);
    if (!m) return absl::NotFoundError("unknown monitor registration");
    return m->monitor.Send(ops::Field(frame, "msg"));
  }
  if (op == "reply") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    Completer done = c->TakePending(*req);
    if (!done) return absl::NotFoundError("reply to no pending request");
    ops::CompleteReply(frame, std::move(done));
    return absl::OkStatus();
  }
  if (op == "bye") {
    // Everything the peer sent came before this: its stream's end is its
    // leaving ("left"), not a break to redial.
    c->goodbye = true;
    return absl::OkStatus();
  }
  if (op == "where") {
    // Where a process this node is connected to listens: how a peer that
    // got a handle of it from here reaches it.
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    const Value& pid = ops::Field(frame, "pid");
    std::shared_ptr<Connection> there = pid.is_bytes() ? ByPid(pid.as_string()) : nullptr;
    if (there == nullptr || there->peer.uris.empty()) {
      c->Reply(*req, absl::NotFoundError("not connected to that process, or it listens nowhere"));
      return absl::OkStatus();
    }
    Value::ListType uris;
    for (const std::string& u : there->peer.uris) uris.push_back(Value(u));
    c->Reply(*req, Value(std::move(uris)));
    return absl::OkStatus();
  }
  if (op == "ping") return absl::OkStatus();  // heard: the reader noted the time and the ack
  if (op == "select") {
    const Value& keep = ops::Field(frame, "keep");
    if (!keep.is_bool()) return absl::InvalidArgumentError("frame field 'keep' is not a bool");
    // A select without a session id (a hand-made peer) merges into nothing.
    absl::StatusOr<uint64_t> sid = ops::U64(frame, "sid");
    return Select(c, keep.as_bool(), sid.ok() ? *sid : 0);
  }
  auto find_channel = [&]() -> absl::StatusOr<ChannelRef> {
    absl::StatusOr<std::string> name = ops::Str(frame, "channel");
    if (!name.ok()) return name.status();
    if (!internal::ChannelProofValid(c->my_pid, *name, proof())) return Forged(*c, "channel", *name);
    return LocalHandleCodec().ImportChannel(ChannelIdentity{ProcessId(), *std::move(name), ""});
  };
  if (op == "ch_sub") {
    absl::StatusOr<ChannelRef> ch = find_channel();
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    if (!ch.ok()) return ch.status();
    if (!sub.ok()) return sub.status();
    absl::StatusOr<SinkId> sink = ops::SubscribeForPeer(*ch, *sub, push);
    if (!sink.ok()) return sink.status();
    c->AddSink(*sub, *ch, *sink);
    // How many of the peer's subscribers this one subscription stands for.
    if (absl::StatusOr<uint32_t> n = FromValue<uint32_t>(ops::Field(frame, "n")); n.ok()) {
      return picos::Channel(*ch).SetSinkWeight(*sink, *n);
    }
    return absl::OkStatus();
  }
  if (op == "ch_weight") {
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    absl::StatusOr<uint32_t> n = FromValue<uint32_t>(ops::Field(frame, "n"));
    if (!sub.ok()) return sub.status();
    if (!n.ok()) return n.status();
    std::optional<std::pair<ChannelRef, SinkId>> sink = c->FindSink(*sub);
    if (!sink) return absl::NotFoundError("weight of an unknown subscription");
    return picos::Channel(sink->first).SetSinkWeight(sink->second, *n);
  }
  if (op == "ch_unsub") {
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    if (!sub.ok()) return sub.status();
    std::optional<std::pair<ChannelRef, SinkId>> sink = c->TakeSink(*sub);
    if (!sink) return absl::NotFoundError("unknown subscription");
    return picos::Channel(sink->first).Unsubscribe(sink->second);
  }
  if (op == "ch_msg") {
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    if (!sub.ok()) return sub.status();
    const Value& msg = ops::Field(frame, "msg");
    const bool closing = IsChannelClosedMessage(msg);
    std::vector<Subscription> group = c->GroupMembers(*sub, closing);
    if (group.empty()) return absl::NotFoundError("message for no subscription");
    absl::Status first_error;
    for (const Subscription& s : group) {
      absl::Status d = ops::DeliverToSubscriber(s, msg, closing);
      if (d.ok()) continue;
      if (first_error.ok()) first_error = d;
      // A subscriber task that ended is dropped, as a local channel drops
      // it: the peer then counts one fewer.
      if (!closing && s.task.valid() && s.task.state() == TaskState::kDone) {
        (void)c->Unsubscribe(s.channel, s.task, s.relay);
      }
    }
    return first_error;
  }
  if (op == "ch_send" || op == "ch_close") {
    absl::StatusOr<ChannelRef> ch = find_channel();
    if (!ch.ok()) return ch.status();
    if (op == "ch_close") return picos::Channel(*ch).Close();
    return picos::Channel(*ch).Send(ops::Field(frame, "msg"));
  }
  if (op == "ch_deliver") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    absl::StatusOr<ChannelRef> ch = find_channel();
    absl::StatusOr<uint32_t> n = FromValue<uint32_t>(ops::Field(frame, "n"));
    absl::StatusOr<int64_t> timeout_ns = FromValue<int64_t>(ops::Field(frame, "timeout_ns"));
    if (!ch.ok() || !n.ok() || !timeout_ns.ok()) {
      absl::Status bad = ch.ok() ? absl::InvalidArgumentError("malformed deliver frame") : ch.status();
      c->Reply(*req, bad);
      return bad;
    }
    absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("remote-deliver", &NodeImpl::ServeDeliver, weak, *req, *ch,
                                                  ops::Field(frame, "msg"), *n, *timeout_ns);
    if (!t.ok()) c->Reply(*req, absl::UnavailableError("the peer is closing"));
    return absl::OkStatus();
  }
  if (op == "locate") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    const Value& name = ops::Field(frame, "name");
    absl::StatusOr<int64_t> timeout_ns = FromValue<int64_t>(ops::Field(frame, "timeout_ns"));
    if (!req.ok() || !name.is_string() || !timeout_ns.ok()) {
      return absl::InvalidArgumentError("malformed locate frame");
    }
    const bool want_channel = ops::Field(frame, "kind") == Value("channel");
    absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("remote-locate", &NodeImpl::ServeLocate, weak, *req,
                                                  want_channel, name.as_string(), *timeout_ns);
    if (!t.ok()) c->Reply(*req, absl::UnavailableError("the peer is closing"));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown frame op '", op.substr(0, 32), "'"));
}

Task<absl::Status> NodeImpl::ServeLocate(std::weak_ptr<Connection> c, uint64_t req, bool want_channel,
                                         std::string name, int64_t timeout_ns) {
  absl::StatusOr<Value> result = co_await ops::LocateHere(want_channel, std::move(name), ops::TimeoutOf(timeout_ns));
  if (std::shared_ptr<Connection> l = c.lock()) l->Reply(req, std::move(result));
  co_return absl::OkStatus();
}

Task<absl::Status> NodeImpl::ServeTaskDeliver(std::weak_ptr<Connection> c, uint64_t req, TaskRef task,
                                              Value message, int64_t timeout_ns) {
  absl::Status s = co_await task.Deliver(std::move(message), ops::TimeoutOf(timeout_ns));
  if (std::shared_ptr<Connection> l = c.lock()) l->Reply(req, s.ok() ? absl::StatusOr<Value>(Value()) : s);
  co_return absl::OkStatus();
}

Task<absl::Status> NodeImpl::ServeDeliver(std::weak_ptr<Connection> c, uint64_t req, ChannelRef channel,
                                          Value message, uint32_t n, int64_t timeout_ns) {
  absl::StatusOr<Value> result =
      co_await ops::DeliverHere(std::move(channel), std::move(message), n, ops::TimeoutOf(timeout_ns));
  if (std::shared_ptr<Connection> l = c.lock()) l->Reply(req, std::move(result));
  co_return absl::OkStatus();
}

Task<absl::Status> NodeImpl::LocateAt(NodeImpl* self, std::string uri, std::string kind, std::string name,
                                      absl::Duration timeout, std::shared_ptr<Completer> done) {
  absl::StatusOr<std::shared_ptr<Connection>> c = co_await self->Connect(uri);
  if (!c.ok()) {
    done->Complete(c.status());
    co_return absl::OkStatus();
  }
  (*c)->Request(ops::LocateRequest(kind == "channel", name, timeout), std::move(*done));
  co_return absl::OkStatus();
}

void NodeImpl::Locate(Kind kind, const std::string& name, const Location& location,
                      absl::Duration timeout, Completer done) {
  const std::string kind_name = kind == Kind::kTask ? "task" : "channel";
  if (location.kind() == Location::Kind::kPeer) {
    auto shared = std::make_shared<Completer>(std::move(done));
    absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("remote-locate", &NodeImpl::LocateAt, this, location.peer(),
                                                  kind_name, name, timeout, shared);
    if (!t.ok()) shared->Complete(t.status());
    return;
  }
  // Anywhere: every connected peer at once; the first handle wins, and
  // kNotFound only once every peer said so.
  struct First {
    absl::Mutex mu;
    Completer done;
    size_t left;
  };
  auto first = std::make_shared<First>();
  first->done = std::move(done);
  first->left = by_pid_.size();
  if (first->left == 0) {
    first->done.Complete(
        absl::NotFoundError(absl::StrCat("no ", kind_name, " '", name, "': no peer is connected")));
    return;
  }
  for (auto& [pid, c] : by_pid_) {
    c->Request(ops::LocateRequest(kind == Kind::kChannel, name, timeout),
               Completer([first](absl::StatusOr<Value> r) {
                 Completer done;
                 {
                   absl::MutexLock lock(&first->mu);
                   if (!first->done) return;
                   if (r.ok() || --first->left == 0) done = std::move(first->done);
                 }
                 if (done) done.Complete(std::move(r));
               }));
  }
}

std::shared_ptr<Connection> ConnectionTo(NodeImpl* node, const std::string& pid) {
  return node == nullptr ? nullptr : node->ByPid(pid);
}

void ReachThirdParty(NodeImpl* node, std::weak_ptr<Connection> via, std::string pid, Reached reached) {
  if (node == nullptr) {
    reached(nullptr, absl::UnavailableError("this node closed"));
    return;
  }
  node->Reach(std::move(via), pid, std::move(reached));
}

// Most URIs taken from a "where" reply.
constexpr size_t kMaxWhereUris = 16;

Task<absl::Status> NodeImpl::ReachTask(NodeImpl* self, std::weak_ptr<Connection> via, std::string pid) {
  std::shared_ptr<Connection> reached = self->ByPid(pid);
  absl::Status why = absl::UnavailableError("a task of a process this node cannot reach");
  if (reached == nullptr) {
    // Where does it listen? The peer that sent the handle knows, if it is
    // connected to it.
    struct Box {
      std::optional<absl::StatusOr<Value>> result;
      TaskRef waiter;
      bool suspended = false;
    };
    auto box = std::make_shared<Box>();
    box->waiter = Self();
    if (std::shared_ptr<Connection> v = via.lock(); v != nullptr) {
      v->Request(Value::MapType{{"op", "where"}, {"pid", Value::Bytes(pid)}},
                 Completer([box](absl::StatusOr<Value> r) {
                   box->result = std::move(r);
                   if (box->suspended) (void)box->waiter.Resume();
                 }));
    } else {
      box->result = absl::UnavailableError("the peer that sent the handle is gone");
    }
    if (!box->result) {
      box->suspended = true;
      (void)co_await Suspend(self->options_.connect_timeout);
      box->suspended = false;
    }
    std::vector<std::string> uris;
    if (!box->result) {
      why = absl::DeadlineExceededError("no answer to where the process of a handle listens");
    } else if (!box->result->ok()) {
      why = absl::UnavailableError(
          absl::StrCat("cannot learn where the process of a handle listens: ", box->result->status().message()));
    } else if ((*box->result)->is_list()) {
      for (const Value& u : (*box->result)->as_list()) {
        if (uris.size() < kMaxWhereUris && u.is_string() && u.as_string().size() <= 1024) uris.push_back(u.as_string());
      }
    }
    for (const std::string& uri : uris) {
      absl::StatusOr<std::shared_ptr<Connection>> c = co_await self->Connect(uri);
      if (!c.ok()) {
        why = c.status();
        continue;
      }
      if ((*c)->peer.process_id != pid) {
        why = absl::UnavailableError(absl::StrCat(uri, " is another process now"));
        continue;
      }
      reached = *c;
      break;
    }
  }
  self->FinishReach(pid, reached, why);
  co_return absl::OkStatus();
}

// --- Node ---

Task<absl::StatusOr<std::unique_ptr<Node>>> Node::Start(const TransportRegistry& transports,
                                                        NodeOptions options) {
  PICOS_CO_RETURN_IF_ERROR(ValidateSecret(options.secret));
  if (options.heartbeat_interval <= absl::ZeroDuration() || options.heartbeat_misses < 1) {
    co_return absl::InvalidArgumentError("heartbeat_interval must be positive and heartbeat_misses at least 1");
  }
  if (options.reconnect_grace < absl::ZeroDuration()) {
    co_return absl::InvalidArgumentError("reconnect_grace must not be negative");
  }
  if (options.max_frame_size == 0 || options.max_queued_frames == 0 || options.max_queued_bytes == 0) {
    co_return absl::InvalidArgumentError("max_frame_size, max_queued_frames and max_queued_bytes must be positive");
  }
  if (!options.process_id.empty() && options.process_id.size() != kProcessIdSize) {
    co_return absl::InvalidArgumentError("NodeOptions::process_id must have 16 bytes");
  }
  auto impl = std::make_unique<NodeImpl>(transports, std::move(options));
  PICOS_CO_RETURN_IF_ERROR(co_await impl->StartListening());
  co_return std::unique_ptr<Node>(new Node(std::move(impl)));
}

Node::Node(std::unique_ptr<NodeImpl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;

const std::vector<std::string>& Node::uris() const { return impl_->uris(); }

Location Node::location() const {
  return Location::Peer(impl_->uris().empty() ? std::string() : impl_->uris()[0]);
}

Task<absl::Status> Node::Connect(std::string uri) {
  absl::StatusOr<std::shared_ptr<Connection>> c = co_await impl_->Connect(std::move(uri));
  co_return c.status();
}

Task<absl::Status> Node::Close(absl::Duration timeout) {
  impl_->SayGoodbye();
  co_return co_await Flush(timeout);
}

Task<absl::Status> Node::Flush(absl::Duration timeout) {
  // The scheduler's clock, as every timer of the node.
  const int64_t give_up_ns =
      ThisScheduler().NowNs() + absl::ToInt64Nanoseconds(std::min(timeout, absl::Hours(24 * 365)));
  while (!impl_->flushed()) {
    if (ThisScheduler().NowNs() >= give_up_ns) {
      co_return absl::DeadlineExceededError(
          absl::StrCat("frames for peers still unwritten after ", absl::FormatDuration(timeout)));
    }
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));
    if (!slept.ok()) co_return slept;
  }
  co_return absl::OkStatus();
}

std::vector<std::string> Node::peers() const { return impl_->peers(); }
ChannelRef Node::peer_events() const { return impl_->peer_events(); }
size_t Node::refused_handshakes() const { return impl_->refused_handshakes(); }
std::vector<PeerStats> Node::peer_stats() const { return impl_->peer_stats(); }
size_t Node::heartbeat_losses() const { return impl_->heartbeat_losses(); }
size_t Node::reconnects() const { return impl_->reconnects(); }

absl::StatusOr<std::string> LoadSecret(const std::string& path, const std::string& env_var) {
  std::string secret;
  std::string from;
  if (!path.empty()) {
    std::ifstream f(path);
    if (!f) return absl::NotFoundError(absl::StrCat("cannot read the secret file ", path));
    std::getline(f, secret);
    from = absl::StrCat("the file ", path);
  } else {
    const char* v = env_var.empty() ? nullptr : std::getenv(env_var.c_str());
    if (v == nullptr || *v == '\0') {
      return absl::NotFoundError(absl::StrCat("no shared secret: give a file, or set ", env_var));
    }
    secret = v;
    from = absl::StrCat("$", env_var);
  }
  absl::Status valid = ValidateSecret(secret);
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(from, ": ", valid.message()));
  return secret;
}

}  // namespace picos::remote
