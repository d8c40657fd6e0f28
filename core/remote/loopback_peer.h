// LoopbackPeer: an in-process stand-in for the remote layer, for tests. It
// proves the seams of core/kernel/proxy.h, core/kernel/channel_proxy.h and NameResolver
// (core/kernel/naming.h) the way the network layer will use them: a handle it gives
// out is a proxy, and every operation on it is a frame (a Value) that one end
// encodes with the Value codec (core/wire/value_codec.h) and the other end
// decodes, then applies to the real task or channel. Handles inside messages
// cross as identities, like on the wire: a task handle sent back to its own
// end is the original handle, one of the other end becomes a proxy.
//
//   picos::remote::LoopbackPeer peer(picos::ThisScheduler());
//   absl::StatusOr<picos::TaskRef> far = peer.Remote(server);  // a proxy of `server`
//   (void)far->Send(picos::Value::Map({{"reply_to", picos::Self()}}));
//   absl::StatusOr<picos::Value> r = co_await far->Join();
//   picos::SetNameResolver(picos::ThisScheduler(), peer.resolver());
//   auto svc = co_await picos::LocateTask("svc", picos::Location::Peer(peer.uri()), absl::Seconds(1));
//   peer.Vanish();   // monitors of its proxies get "peer_lost"; pending calls kUnavailable
//
// Two ends, two made-up process ids. End A is "the other process": what
// Remote() is given lives there. End B is "this process", holding proxies.
// Both are tasks and channels of this OS process; the ends only say which
// codec encodes a frame and which decodes it.
//
// Threads: frames cross on `scheduler`'s thread (the "connection"): a call on
// a proxy from that thread is applied before it returns and gives the real
// status (as a local call would); from another thread it is posted there and
// gives OK (accepted), in order per sender thread. The channels it serves
// must live on `scheduler`, and Remote, Vanish and the destructor belong on
// its thread (or before its loop runs). Proxies may outlive the peer: they
// then give kUnavailable.
//
// Not modelled (the real layer's business): batching, flow control, proof in
// handles (a fabricated id is refused only when used: kNotFound), and more
// than one peer.
#ifndef PICOS_CORE_REMOTE_LOOPBACK_PEER_H_
#define PICOS_CORE_REMOTE_LOOPBACK_PEER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/kernel/handles.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"

namespace picos::remote {

class LoopbackLink;

class LoopbackPeer {
 public:
  struct Options {
    // The URI that Location::Peer must name to reach this peer.
    std::string uri = "loopback://peer";
  };

  explicit LoopbackPeer(Scheduler& scheduler) : LoopbackPeer(scheduler, Options()) {}
  LoopbackPeer(Scheduler& scheduler, Options options);
  // Closes the link as Vanish() does.
  ~LoopbackPeer();
  LoopbackPeer(const LoopbackPeer&) = delete;
  LoopbackPeer& operator=(const LoopbackPeer&) = delete;

  // The handle that a process across the link holds for `task` (a task of
  // this process, which end A exports): a proxy, the same one each time
  // while the link lives. kUnavailable once vanished.
  absl::StatusOr<TaskRef> Remote(const TaskRef& task);
  // Likewise for a channel of `scheduler`.
  absl::StatusOr<ChannelRef> Remote(const ChannelRef& channel);

  // Answers Locate* at Location::Peer(uri()) and Location::Anywhere() with
  // the names registered on `scheduler` (end A), as proxies. Install it with
  // SetNameResolver on the locating tasks' scheduler; remove it before the
  // peer goes.
  NameResolver* resolver();
  const std::string& uri() const;

  // The peer is lost: monitors of its proxies get MonitorStatus::PeerLost,
  // pending Join, Locate and Deliver calls fail with kUnavailable at once,
  // and every later call on its proxies gives kUnavailable (their state is
  // kDone, their channels closed). Idempotent.
  void Vanish();
  bool vanished() const;

  // Frames encoded so far (each decoded once by the other end): what a test
  // checks to know that a call went through the codec.
  uint64_t frames() const;

 private:
  std::shared_ptr<LoopbackLink> link_;
  std::unique_ptr<NameResolver> resolver_;
};

}  // namespace picos::remote

#endif  // PICOS_CORE_REMOTE_LOOPBACK_PEER_H_
