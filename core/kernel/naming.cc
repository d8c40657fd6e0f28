#include "core/kernel/naming.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/channel_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task_internal.h"

namespace picos {

using internal::LocalChannel;
using internal::TaskCore;
using internal::WaitToken;

std::string Location::DebugString() const {
  switch (kind_) {
    case Kind::kLocal:
      return "local";
    case Kind::kPeer:
      return absl::StrCat("peer ", peer_);
    case Kind::kAnywhere:
      return "anywhere";
  }
  return "?";
}

namespace {

// One name space (tasks, or channels) of one scheduler.
template <typename Ref>
struct Names {
  absl::flat_hash_map<std::string, Ref> by_name;
  // Locate calls waiting for a name to appear.
  absl::flat_hash_map<std::string, std::vector<WaitToken>> waiters;

  void Appeared(const std::string& name) {
    auto it = waiters.find(name);
    if (it == waiters.end()) return;
    std::vector<WaitToken> w = std::move(it->second);
    waiters.erase(it);
    for (const WaitToken& t : w) internal::WakeToken(t, internal::kWakeEvent);
  }
};

// The names of one scheduler; lives in its state (Scheduler::State), so it
// goes with the scheduler, after its tasks (whose end hooks use it).
struct Registry final : Scheduler::Extension {
  Names<TaskRef> tasks;
  Names<ChannelRef> channels;
  // Names held by each task that has an end hook here (one hook per task,
  // however often it registers and unregisters).
  absl::flat_hash_map<TaskCore*, std::vector<std::string>> names_of;
  NameResolver* resolver = nullptr;  // SetNameResolver; not owned

  ~Registry() override {
    // A registered channel may outlive the scheduler: take our hooks back.
    for (auto& [name, ref] : channels.by_name) RemoveHook(ref.core()->AsLocal());
  }

  void RemoveHook(LocalChannel* ch) {
    auto& hooks = ch->close_hooks;
    hooks.erase(std::remove_if(hooks.begin(), hooks.end(),
                               [this](const auto& h) { return h.first == this; }),
                hooks.end());
  }

  void OnTaskEnd(TaskCore* c) {
    auto it = names_of.find(c);
    if (it == names_of.end()) return;
    for (const std::string& n : it->second) tasks.by_name.erase(n);
    names_of.erase(it);
  }
};

Registry& RegistryOf(Scheduler& s) { return s.State<Registry>(); }

absl::Status CheckName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("empty name");
  if (name.size() > kMaxRegisteredNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("name longer than ", kMaxRegisteredNameLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Registry*> CurrentRegistry(const char* what) {
  Scheduler* s = Scheduler::Current();
  if (s == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(what, " outside a scheduler's thread"));
  }
  return &RegistryOf(*s);
}

absl::Status NonLocal(const Location& where) {
  return absl::UnimplementedError(absl::StrCat(
      "locate at ", where.DebugString(),
      ": no layer looks names up on other processes for this scheduler (SetNameResolver); "
      "use Location::Local()"));
}

NameResolver* ResolverOf(TaskCore* c) {
  Scheduler* s = c->scheduler();
  return s == nullptr ? nullptr : RegistryOf(*s).resolver;
}

template <typename Ref>
Names<Ref>& NamesOf(Registry& r);
template <>
Names<TaskRef>& NamesOf(Registry& r) {
  return r.tasks;
}
template <>
Names<ChannelRef>& NamesOf(Registry& r) {
  return r.channels;
}

}  // namespace

void SetNameResolver(Scheduler& scheduler, NameResolver* resolver) {
  RegistryOf(scheduler).resolver = resolver;
}

absl::Status RegisterTask(std::string name, const TaskRef& task) {
  PICOS_RETURN_IF_ERROR(CheckName(name));
  if (!task.valid()) return absl::InvalidArgumentError("register of a null TaskRef");
  if (GetTaskProxy(task) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "only tasks of this process can be registered; ", task.DebugString(), " is elsewhere"));
  }
  TaskCore* c = task.core();
  if (c->flags & internal::kFlagFinished) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task.DebugString(), " has ended"));
  }
  Scheduler* s = c->scheduler();
  if (s == nullptr || !s->InLoopThread()) {
    return absl::FailedPreconditionError("RegisterTask outside the task's scheduler thread");
  }
  Registry& r = RegistryOf(*s);
  if (r.tasks.by_name.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("a task is already registered as '", name, "'"));
  }
  if (r.tasks.by_name.size() >= kMaxRegisteredNames) {
    return absl::ResourceExhaustedError("too many registered task names");
  }
  auto [it, first] = r.names_of.try_emplace(c);
  if (first) {
    Registry* reg = &r;
    c->Extra().finish_hooks.push_back([reg](TaskCore* core) { reg->OnTaskEnd(core); });
  }
  it->second.push_back(name);
  r.tasks.by_name.emplace(name, task);
  r.tasks.Appeared(name);
  return absl::OkStatus();
}

absl::Status UnregisterTask(const std::string& name) {
  PICOS_ASSIGN_OR_RETURN(Registry * r, CurrentRegistry("UnregisterTask"));
  auto it = r->tasks.by_name.find(name);
  if (it == r->tasks.by_name.end()) {
    return absl::NotFoundError(absl::StrCat("no task registered as '", name, "'"));
  }
  // The task keeps its (one) end hook, which then finds nothing to release.
  std::vector<std::string>& held = r->names_of[it->second.core()];
  held.erase(std::find(held.begin(), held.end(), name));
  r->tasks.by_name.erase(it);
  return absl::OkStatus();
}

absl::Status RegisterChannel(const Channel& channel) {
  if (!channel.valid()) return absl::InvalidArgumentError("register of a null ChannelRef");
  const std::string& name = channel.name();
  PICOS_RETURN_IF_ERROR(CheckName(name));
  LocalChannel* ch = channel.ref().core()->AsLocal();
  if (ch == nullptr) return absl::InvalidArgumentError("only channels of this process can be registered");
  if (!ch->scheduler->InLoopThread()) {
    return absl::FailedPreconditionError("RegisterChannel outside the channel's scheduler thread");
  }
  if (ch->closed) return absl::FailedPreconditionError(absl::StrCat("channel ", name, " is closed"));
  Registry& r = RegistryOf(*ch->scheduler);
  if (r.channels.by_name.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("a channel is already registered as '", name, "'"));
  }
  if (r.channels.by_name.size() >= kMaxRegisteredNames) {
    return absl::ResourceExhaustedError("too many registered channel names");
  }
  Registry* reg = &r;
  ch->close_hooks.emplace_back(reg, [reg](LocalChannel* closing) {
    auto it = reg->channels.by_name.find(closing->name);
    if (it != reg->channels.by_name.end() && it->second.core() == closing) {
      reg->channels.by_name.erase(it);
    }
  });
  r.channels.by_name.emplace(name, channel.ref());
  r.channels.Appeared(name);
  return absl::OkStatus();
}

absl::Status UnregisterChannel(const std::string& name) {
  PICOS_ASSIGN_OR_RETURN(Registry * r, CurrentRegistry("UnregisterChannel"));
  auto it = r->channels.by_name.find(name);
  if (it == r->channels.by_name.end()) {
    return absl::NotFoundError(absl::StrCat("no channel registered as '", name, "'"));
  }
  r->RemoveHook(it->second.core()->AsLocal());
  r->channels.by_name.erase(it);
  return absl::OkStatus();
}

LocateAwaiter<TaskRef> LocateTask(std::string name, Location location, absl::Duration timeout) {
  return LocateAwaiter<TaskRef>(std::move(name), std::move(location), timeout);
}

LocateAwaiter<ChannelRef> LocateChannel(std::string name, Location location,
                                        absl::Duration timeout) {
  return LocateAwaiter<ChannelRef>(std::move(name), std::move(location), timeout);
}

// --- LocateAwaiter ---

template <typename Ref>
LocateAwaiter<Ref>::~LocateAwaiter() {
  Forget();
}

template <typename Ref>
void LocateAwaiter<Ref>::Forget() {
  if (!listed_) return;
  listed_ = false;
  Scheduler* s = task_->scheduler();
  if (s == nullptr) return;
  auto& waiters = NamesOf<Ref>(RegistryOf(*s)).waiters;
  auto it = waiters.find(name_);
  if (it == waiters.end()) return;  // woken: the list went with the wake
  auto& v = it->second;
  v.erase(std::remove_if(v.begin(), v.end(),
                         [&](const WaitToken& t) { return t.task.core() == task_ && t.seq == seq_; }),
          v.end());
  if (v.empty()) waiters.erase(it);
}

template <typename Ref>
bool LocateAwaiter<Ref>::await_ready() {
  TaskCore* c = internal::CurrentTaskOrDie("Locate");
  if (internal::InterruptPending(c)) return true;
  if (!location_.is_local()) return ResolverOf(c) == nullptr;
  if (timeout_ns_ <= 0) return true;
  return NamesOf<Ref>(RegistryOf(*c->scheduler())).by_name.contains(name_);
}

template <typename Ref>
void LocateAwaiter<Ref>::await_suspend(std::coroutine_handle<> h) {
  TaskCore* c = internal::t_current_task;
  if (!location_.is_local()) {
    // The resolver bounds the lookup by the timeout and always completes.
    internal::Block(c, h, TaskState::kWaiting, absl::InfiniteDuration());
    constexpr NameResolver::Kind kKind = std::is_same_v<Ref, TaskRef> ? NameResolver::Kind::kTask
                                                                      : NameResolver::Kind::kChannel;
    ResolverOf(c)->Locate(kKind, name_, location_, absl::Nanoseconds(timeout_ns_), remote_.Start(c));
    return;
  }
  internal::Block(c, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
  NamesOf<Ref>(RegistryOf(*c->scheduler())).waiters[name_].push_back(internal::TokenFor(c));
  listed_ = true;
  seq_ = c->wait_seq;
  task_ = c;
}

template <typename Ref>
absl::StatusOr<Ref> LocateAwaiter<Ref>::await_resume() {
  Forget();
  TaskCore* c = internal::t_current_task;
  std::optional<absl::StatusOr<Value>> remote = remote_.Take();
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  if (!location_.is_local()) {
    if (!remote) return NonLocal(location_);
    if (!remote->ok()) return remote->status();
    if constexpr (std::is_same_v<Ref, TaskRef>) {
      if ((*remote)->is_task() && (*remote)->as_task().valid()) return (*remote)->as_task();
    } else {
      if ((*remote)->is_channel() && (*remote)->as_channel().valid()) return (*remote)->as_channel();
    }
    return absl::InternalError(absl::StrCat("the name resolver gave no ", std::is_same_v<Ref, TaskRef> ? "task" : "channel",
                                            " handle for '", name_, "'"));
  }
  auto& names = NamesOf<Ref>(RegistryOf(*c->scheduler())).by_name;
  auto it = names.find(name_);
  if (it == names.end()) {
    return absl::NotFoundError(absl::StrCat("no ", std::is_same_v<Ref, TaskRef> ? "task" : "channel",
                                            " registered as '", name_, "' here within ",
                                            absl::FormatDuration(absl::Nanoseconds(timeout_ns_))));
  }
  return it->second;
}

template class LocateAwaiter<TaskRef>;
template class LocateAwaiter<ChannelRef>;

}  // namespace picos
