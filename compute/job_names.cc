#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "compute/export.h"
#include "compute/job_names_internal.h"
#include "compute/protocol.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/value.h"

namespace picos::compute::internal {
namespace {

struct NameEntry {
  uint64_t job = 0;
  TaskRef inbox;
  TaskRef watcher;  // monitors `inbox`: its end frees the name
};

// Tells `registry` to free `name` once `inbox` ends (its job returned, or
// its worker was lost); the registry checks that `job` still holds it.
Task<> WatchName(TaskRef registry, std::string name, uint64_t job, TaskRef inbox) {
  if (Monitor(Self(), inbox).ok()) {
    absl::StatusOr<Value> ended = co_await Receive();
    if (!ended.ok()) co_return;  // terminated: the name was freed otherwise
  }
  (void)registry.Send(Value::Map({{std::string(kNamesKey), "unregister"}, {"name", name}, {"job", job}}));
}

Value Reply(const absl::Status& st) {
  return Value::Map({{std::string(kNamesKey), "reply"},
                     {"code", static_cast<int64_t>(st.code())},
                     {"message", std::string(st.message())}});
}

}  // namespace

absl::Status ValidJobName(std::string_view name) {
  if (name.empty() || name.size() > kJobNameMaxBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a job name has 1 to ", kJobNameMaxBytes, " bytes, not ", name.size()));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("a job name has no control characters: \"", absl::CHexEscape(std::string(name.substr(0, 64))), "\""));
    }
  }
  return absl::OkStatus();
}

Task<> JobNameRegistry(std::string computation) {
  absl::flat_hash_map<std::string, NameEntry> names;
  absl::flat_hash_map<uint64_t, std::string> by_job;
  // Ends the watchers with the registry (terminated: the computation ends).
  struct EndWatchers {
    absl::flat_hash_map<std::string, NameEntry>* names;
    ~EndWatchers() {
      for (auto& [name, e] : *names) (void)e.watcher.Terminate();
    }
  } end_watchers{&names};
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;
    std::string op, name;
    uint64_t job = 0;
    TaskRef reply_to, inbox;
    // Who to answer first: a request malformed otherwise is still answered.
    (void)MessageReader(*msg).Optional("reply_to", &reply_to).status();
    absl::Status read = MessageReader(*msg)
                            .Get(kNamesKey, &op)
                            .Get("name", &name)
                            .Optional("job", &job)
                            .Optional("inbox", &inbox)
                            .status();
    auto answer = [&reply_to](Value v) {
      if (!reply_to.valid()) return;
      absl::Status sent = reply_to.Send(std::move(v));
      if (!sent.ok()) PICOS_LOG_LIMITED(warn, "compute names: an answer not sent: {}", sent.ToString());
    };
    if (read.ok()) read = ValidJobName(name);
    if (!read.ok()) {
      PICOS_LOG_LIMITED(warn, "compute {} names: malformed request: {}", computation, read.ToString());
      answer(Reply(absl::InvalidArgumentError(absl::StrCat("malformed name request: ", read.message()))));
      continue;
    }
    if (op == "register") {
      if (!inbox.valid() || !reply_to.valid()) {
        PICOS_LOG_LIMITED(warn, "compute {} names: a register without inbox or reply_to", computation);
        answer(Reply(absl::InvalidArgumentError("a register names the job's inbox and a reply_to")));
        continue;
      }
      if (auto held = by_job.find(job); held != by_job.end()) {
        answer(Reply(absl::FailedPreconditionError(
            absl::StrCat("this job is named \"", held->second, "\" already (one name per job)"))));
        continue;
      }
      if (auto it = names.find(name); it != names.end()) {
        answer(Reply(absl::AlreadyExistsError(
            absl::StrCat("the name \"", name, "\" is taken by job ", it->second.job, " of this computation"))));
        continue;
      }
      if (names.size() >= kMaxJobNames) {
        answer(Reply(absl::ResourceExhaustedError(
            absl::StrCat("this computation has ", kMaxJobNames, " job names, the most it holds"))));
        continue;
      }
      NameEntry& e = names[name];
      e.job = job;
      e.inbox = inbox;
      e.watcher = ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.name", .daemon = true}, WatchName, Self(),
                                        name, job, inbox);
      by_job[job] = name;
      answer(Reply(absl::OkStatus()));
    } else if (op == "locate") {
      auto it = names.find(name);
      if (it == names.end()) {
        answer(Reply(absl::NotFoundError(absl::StrCat("no job named \"", name, "\" in this computation"))));
        continue;
      }
      Value r = Reply(absl::OkStatus());
      r.as_map()["inbox"] = Value(it->second.inbox);
      answer(std::move(r));
    } else if (op == "unregister") {
      auto it = names.find(name);
      if (it == names.end() || it->second.job != job) continue;  // freed already, or taken again since
      (void)it->second.watcher.Terminate();
      names.erase(it);
      by_job.erase(job);
    } else {
      PICOS_LOG_LIMITED(warn, "compute {} names: unknown op {}", computation, op.substr(0, 32));
      answer(Reply(absl::InvalidArgumentError(absl::StrCat("unknown name op \"", op.substr(0, 32), "\""))));
    }
  }
}

}  // namespace picos::compute::internal
