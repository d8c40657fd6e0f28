// The seam for channels that live elsewhere: the channel counterpart of
// TaskProxy (core/kernel/proxy.h). A ChannelRef made by MakeChannelProxy names a
// channel that a higher layer (the remote layer; core/remote/loopback_peer.h
// in tests) reaches, and the Channel calls of core/kernel/channel.h on it go here.
//
//   picos::ChannelRef news = picos::MakeChannelProxy("news", std::make_unique<MyProxy>(...));
//   (void)picos::Channel(news).Subscribe(picos::Self());  // MyProxy::Subscribe
//
// A channel of this process pays nothing for it: ChannelCore::AsLocal()
// already tells the two apart on the send path.
//
// Threads: every method may be called from any thread (Channel::Send from
// any; the others from the calling task's scheduler thread, which for a
// proxy is not the channel's), at the same time from several: an
// implementation is thread-safe. None may block for long. The proxy is
// destroyed with the last ChannelRef to it, on the thread that drops it.
//
// Errors: as documented in core/kernel/channel.h for the same calls, plus
// kUnavailable when the channel's peer is lost. OK from Send means accepted.
#ifndef PICOS_CORE_KERNEL_CHANNEL_PROXY_H_
#define PICOS_CORE_KERNEL_CHANNEL_PROXY_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/channel.h"
#include "core/kernel/handles.h"
#include "core/kernel/proxy.h"
#include "core/kernel/value.h"

namespace picos {

class ChannelProxy {
 public:
  virtual ~ChannelProxy() = default;

  // `task` (anywhere) receives the channel's broadcasts, through `transform`
  // if set. The transform runs in this process, where it was given (it is
  // code, not data): the layer applies it to what arrives for the task.
  virtual absl::Status Subscribe(const TaskRef& task, ChannelTransform transform) = 0;
  // `channel` (usually of this process) re-broadcasts the channel's messages.
  virtual absl::Status Subscribe(const ChannelRef& channel, ChannelTransform transform) = 0;
  virtual absl::Status Unsubscribe(const TaskRef& task) = 0;
  virtual absl::Status Unsubscribe(const ChannelRef& channel) = 0;

  // Broadcasts `message`; in order per sender thread.
  virtual absl::Status Send(Value message) = 0;

  // Channel::Deliver: completes `done` with the number of end points reached
  // as a uint Value, or the error Deliver documents (kDeadlineExceeded when
  // `n` subscribers did not appear within `timeout`), or kUnavailable when
  // the peer is lost. `done` may complete on any thread.
  virtual void Deliver(Value message, uint32_t n, absl::Duration timeout, Completer done) = 0;

  virtual absl::Status Close() = 0;
  // What the layer last knew; true once the peer is lost.
  virtual bool closed() const = 0;
  // "channel:name@where" for logs.
  virtual std::string DebugString() const = 0;
};

// A handle named `name` whose every operation goes to `proxy` (owned, shared
// by its copies). A null ChannelRef for a null proxy.
ChannelRef MakeChannelProxy(std::string name, std::unique_ptr<ChannelProxy> proxy);

// The proxy behind `channel`, or null for a channel of this process (and a
// null or bare handle). Any thread.
ChannelProxy* GetChannelProxy(const ChannelRef& channel);

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_CHANNEL_PROXY_H_
