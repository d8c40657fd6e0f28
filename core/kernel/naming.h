// Naming (pycos register/locate): publish a task or a channel under a name
// on its scheduler, and find it by name, waiting for it to appear.
//
//   // In the server task:
//   PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("server", picos::Self()));
//   // In a client task:
//   absl::StatusOr<picos::TaskRef> server =
//       co_await picos::LocateTask("server", picos::Location::Local(), absl::Seconds(5));
//
// Tasks and channels have separate name spaces (as in pycos). A name is
// released when its task ends or its channel closes, or by Unregister*.
// Registering a name that is taken is kAlreadyExists.
//
// Location says where to look. Location::Local() is this scheduler's names;
// Peer and Anywhere go to the NameResolver that a higher layer (the remote
// layer) installs on the locating task's scheduler with SetNameResolver, and
// give kUnimplemented where none is installed.
//
// Threads: every call belongs on the scheduler thread of what is named (for
// Register/Unregister) or of the calling task (Locate), which is where the
// names live; elsewhere kFailedPrecondition. Only co_await Locate* suspends.
#ifndef PICOS_CORE_KERNEL_NAMING_H_
#define PICOS_CORE_KERNEL_NAMING_H_

#include <coroutine>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/channel.h"
#include "core/kernel/handles.h"
#include "core/kernel/proxy.h"
#include "core/kernel/task_internal.h"

namespace picos {

// Where a Locate looks: this process, one given peer, or every peer.
class Location {
 public:
  enum class Kind : uint8_t { kLocal, kPeer, kAnywhere };

  static Location Local() { return Location(Kind::kLocal, {}); }
  // The peer at `uri` (a transport URI, e.g. "tcp://10.0.0.2:9705").
  static Location Peer(std::string uri) { return Location(Kind::kPeer, std::move(uri)); }
  static Location Anywhere() { return Location(Kind::kAnywhere, {}); }

  Kind kind() const { return kind_; }
  bool is_local() const { return kind_ == Kind::kLocal; }
  // The peer's URI; empty unless kind() is kPeer.
  const std::string& peer() const { return peer_; }
  std::string DebugString() const;

 private:
  Location(Kind kind, std::string peer) : kind_(kind), peer_(std::move(peer)) {}
  Kind kind_;
  std::string peer_;
};

// Most bytes in a registered name, and most names per scheduler and kind.
inline constexpr size_t kMaxRegisteredNameLength = 256;
inline constexpr size_t kMaxRegisteredNames = 1 << 20;

// Registers `task` under `name` on the task's scheduler. kAlreadyExists if
// the name is taken (by this task too), kInvalidArgument for an empty or
// over-long name, kFailedPrecondition if the task has ended.
absl::Status RegisterTask(std::string name, const TaskRef& task);

// Releases `name`. kNotFound if no task is registered under it.
absl::Status UnregisterTask(const std::string& name);

// Registers `channel` under its own name on its scheduler. Errors as
// RegisterTask; kFailedPrecondition if it is closed.
absl::Status RegisterChannel(const Channel& channel);
absl::Status UnregisterChannel(const std::string& name);

template <typename Ref>
class LocateAwaiter;

// Awaitable from a task: the task (or channel) registered under `name` at
// `location`, waiting up to `timeout` for it to be registered. kNotFound if
// it is not registered by then (at once for a zero timeout); kCancelled (or
// the thrown error) on an interrupt. At a peer or anywhere: what the
// scheduler's NameResolver gives (a handle that works like a local one, or
// kNotFound, or kUnavailable when the peer is lost), kUnimplemented if the
// scheduler has none.
LocateAwaiter<TaskRef> LocateTask(std::string name, Location location = Location::Local(),
                                  absl::Duration timeout = absl::ZeroDuration());
LocateAwaiter<ChannelRef> LocateChannel(std::string name, Location location = Location::Local(),
                                        absl::Duration timeout = absl::ZeroDuration());

// Looks names up beyond this scheduler: the seam where the remote layer
// plugs in (core/remote/loopback_peer.h is an in-process double).
//
// Threads: Locate is called on the scheduler thread of the locating task;
// `done` may be completed from any thread. Must not block.
class NameResolver {
 public:
  enum class Kind : uint8_t { kTask, kChannel };
  virtual ~NameResolver() = default;

  // Looks up `name` of `kind` at `location` (Peer or Anywhere, never
  // Local), waiting up to `timeout` for it to be registered there. Completes
  // `done` with a Value holding the TaskRef or ChannelRef (a proxy, or the
  // local handle if the name is of this process), or kNotFound once
  // `timeout` has passed without it, or kUnavailable when the peer is lost.
  // Must complete it: the locating task waits for nothing else (a dropped
  // completer gives kUnavailable).
  virtual void Locate(Kind kind, const std::string& name, const Location& location,
                      absl::Duration timeout, Completer done) = 0;
};

// Makes `resolver` serve Locate* calls with a location other than Local()
// from tasks of `scheduler`; null removes it. Not owned: remove it before
// destroying it. Call on the scheduler's thread, or before its loop runs.
void SetNameResolver(Scheduler& scheduler, NameResolver* resolver);

// --- Awaiter type (public so that it can be named; use Locate*). ---

// Ref is TaskRef or ChannelRef. Defined for those two in naming.cc.
template <typename Ref>
class LocateAwaiter {
 public:
  LocateAwaiter(std::string name, Location location, absl::Duration timeout)
      : name_(std::move(name)),
        location_(std::move(location)),
        timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  LocateAwaiter(const LocateAwaiter&) = delete;
  LocateAwaiter& operator=(const LocateAwaiter&) = delete;
  // Takes its place off the wait list if the task is destroyed while waiting.
  ~LocateAwaiter();

  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);
  absl::StatusOr<Ref> await_resume();

 private:
  void Forget();

  bool listed_ = false;  // on the registry's wait list for name_
  uint32_t seq_ = 0;     // the wait it listed, to find its entry again
  internal::TaskCore* task_ = nullptr;
  std::string name_;
  Location location_;
  int64_t timeout_ns_;
  internal::CompletionWait remote_;  // a lookup at a peer or anywhere
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_NAMING_H_
