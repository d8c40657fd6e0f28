// Internals of channels: the control block behind a ChannelRef. The channel
// operations (subscribe, send, deliver) live in channel.h.
//
// A ChannelCore is all a ChannelRef needs: a name and a reference count (a
// decoder of remote handles may make bare ones). A channel made by
// Channel::Create is a LocalChannel, which adds the subscribers; one made by
// MakeChannelProxy (channel_proxy.h) is a ProxyChannel, whose operations go
// to a higher layer. AsLocal() and AsProxy() tell them apart without RTTI.
#ifndef PICOS_CORE_KERNEL_CHANNEL_INTERNAL_H_
#define PICOS_CORE_KERNEL_CHANNEL_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "core/kernel/handles.h"
#include "core/kernel/task_internal.h"
#include "core/kernel/value.h"

namespace picos {
class Scheduler;
class ChannelProxy;

namespace internal {

struct LocalChannel;

struct ChannelCore {
  explicit ChannelCore(std::string n) : name(std::move(n)) {}
  virtual ~ChannelCore() = default;

  // The channel with subscribers behind this handle, if it lives in this
  // process; null for a bare handle (a remote channel's, later).
  virtual LocalChannel* AsLocal() { return nullptr; }
  // The layer that reaches a channel elsewhere, for a ProxyChannel.
  virtual ChannelProxy* AsProxy() { return nullptr; }
  // ChannelRef::DebugString().
  virtual std::string DebugString() const;

  std::atomic<uint32_t> refs{1};
  const std::string name;
};

// A channel that lives elsewhere (channel_proxy.h). Defined in channel.cc.
struct ProxyChannel final : ChannelCore {
  ProxyChannel(std::string n, std::unique_ptr<ChannelProxy> p);
  ~ProxyChannel() override;
  ChannelProxy* AsProxy() override { return proxy.get(); }
  std::string DebugString() const override;
  const std::unique_ptr<ChannelProxy> proxy;
};

// One subscription. A subscriber is a task, a channel, or a sink (a callback
// that a remote link, later, uses to forward to another process).
struct ChannelSubscriber {
  enum Kind : uint8_t { kNone, kTask, kChannel, kSink };
  Kind kind = kNone;  // kNone: unsubscribed, removed when no send is running
  bool failure_logged = false;  // its transform threw once: said in the log
  uint64_t sink_id = 0;
  uint32_t weight = 1;  // end points a sink stands for (SetSinkWeight)
  TaskRef task;
  ChannelRef channel;
  // Shared so that a call survives the vector growing under it (a transform
  // or sink that subscribes something).
  std::shared_ptr<const std::function<std::optional<Value>(const Value&)>> transform;
  std::shared_ptr<const std::function<absl::Status(const Value&)>> sink;
};

// A Deliver() waiting for `min_subscribers` subscribers.
struct DeliverWaiter {
  WaitToken token;
  uint32_t min_subscribers;
};

struct LocalChannel final : ChannelCore {
  LocalChannel(std::string n, Scheduler* s, uint8_t index, uint32_t generation)
      : ChannelCore(std::move(n)), scheduler(s), sched_index(index), sched_gen(generation) {}
  LocalChannel* AsLocal() override { return this; }

  // Whose thread every operation but Send runs on. Another thread compares
  // with it but never dereferences it (it may be under destruction): it
  // posts through the slot (SchedulerHooks::PostToSlot).
  Scheduler* const scheduler;
  const uint8_t sched_index;
  const uint32_t sched_gen;
  // Written on the scheduler's thread; read by Send on any thread, which
  // refuses a closed channel at once.
  std::atomic<bool> closed{false};
  bool has_dead = false;       // some subscriber is kNone
  uint32_t sending = 0;        // depth of broadcasts running over `subscribers`
  uint64_t next_sink_id = 1;
  std::vector<ChannelSubscriber> subscribers;
  std::vector<DeliverWaiter> deliver_waiters;
  // Run once by Close(), keyed so that their owner can take them back.
  std::vector<std::pair<const void*, absl::AnyInvocable<void(LocalChannel*)>>> close_hooks;
};

}  // namespace internal
}  // namespace picos

#endif  // PICOS_CORE_KERNEL_CHANNEL_INTERNAL_H_
