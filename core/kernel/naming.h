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
// Location says where to look. Only Location::Local() (this scheduler) is
// served now; Peer and Anywhere are part of the API so that callers need not
// change when lookups on other processes arrive, and give kUnimplemented.
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
// it is not registered by then (at once for a zero timeout); kUnimplemented
// for a non-local location; kCancelled (or the thrown error) on an interrupt.
LocateAwaiter<TaskRef> LocateTask(std::string name, Location location = Location::Local(),
                                  absl::Duration timeout = absl::ZeroDuration());
LocateAwaiter<ChannelRef> LocateChannel(std::string name, Location location = Location::Local(),
                                        absl::Duration timeout = absl::ZeroDuration());

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
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_NAMING_H_
