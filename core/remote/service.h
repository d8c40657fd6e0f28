// Remote services (pycos RPS / RTI): a process registers a named task
// function; another locates it, on a given peer or anywhere, and runs tasks
// with it on that peer, getting a handle it can message, monitor, terminate
// and join. Only registered functions can be run (a client never sends
// code), and the service can refuse a request with a status.
//
//   // On the serving peer, in a task of the node's scheduler:
//   picos::Task<absl::StatusOr<picos::Value>> Square(picos::Value arg) {
//     absl::StatusOr<int64_t> n = arg.As<int64_t>();
//     if (!n.ok()) co_return n.status();
//     co_return picos::Value(*n * *n);
//   }
//   absl::StatusOr<picos::remote::RegisteredService> reg =
//       picos::remote::RegisterService("square", Square);
//
//   // On a client peer:
//   absl::StatusOr<picos::remote::Service> square = co_await picos::remote::Service::Locate(
//       "square", picos::Location::Peer("tcp://10.0.0.2:9705"), absl::Seconds(5));
//   absl::StatusOr<picos::TaskRef> t = co_await square->Run(picos::Value(7));
//   absl::StatusOr<picos::Value> r = co_await t->Join();  // 49
//
// Built on the public remote layer only (node.h: LocateTask, remote TaskRef
// Send/Monitor/Join): a service is a server task registered under
// "picos.service.<name>" (kServiceTaskPrefix) that answers run requests.
// Messages, all Values (they cross the network, so every field is checked):
//
//   client helper -> server task:
//     {"op": "run", "req": <uint>, "reply_to": <helper task>, "arg": <any>,
//      "monitor": <task, optional>}
//   server task -> helper:
//     {"req": <uint>, "task": <the started task>}                 admitted
//     {"req": <uint>, "error": {"code": <int>, "message": <str>}} refused
//   client -> started task, once it holds the handle:
//     {"picos.service_start": <req>}      (kServiceStartMessage)
//
// The started task runs the function only after that start message: by
// then the client has asked for its result (a join), so a function that
// ends at once still gives its value to the client however many other
// tasks end meanwhile (the node keeps only the last kEndedTasksKept ended
// tasks for late joins: core/wire/value_codec.h); a task the client
// never starts (it vanished) ends after ServiceOptions::start_timeout with
// kDeadlineExceeded, without running the function. Messages the client sends
// to the task before the function reads them wait in its mailbox.
//
// Guarantees, each tested (testing/remote_service_test.cc):
//  * Join on the handle Run gives gives the function's value or error,
//    however soon the function ends and however late the join; a monitor
//    placed on it (picos::Monitor) gets one MonitorStatus. A lost peer gives
//    kUnavailable (MonitorStatus::PeerLost).
//  * A refused request (the admission check's status, kResourceExhausted
//    beyond ServiceOptions::max_running, kInvalidArgument for a malformed
//    request) comes back from Run with that status; the server keeps
//    serving. A malformed request without a usable reply_to is logged
//    (rate-limited) and dropped.
//  * Service::Locate of a name nobody registered gives kNotFound after its
//    timeout; a Run whose peer is lost before the reply gives kUnavailable
//    at once, and so does one whose service was unregistered (but see
//    below); one with no reply within its timeout gives kDeadlineExceeded.
//    The Service watches its server task with a remote Monitor placed at
//    Locate; a monitor frame is always answered, also for a task that
//    ended before it arrived (node.h; tested in testing/remote_test.cc and
//    remote_late_join_test.cc), so a service unregistered even before that
//    frame arrived is noticed at once.
//    Run never reads the calling task's mailbox (a helper task waits for
//    the reply).
//  * SetMonitor(task): every task started afterwards through this Service is
//    monitored by the server, which sends its MonitorStatus to `task`
//    (pycos rps.monitor): one message per started task, whatever its end.
//  * Close() terminates every task started through this Service that has
//    not ended (pycos close()); later Runs give kFailedPrecondition.
//
// The handle Run gives is this layer's (a proxy, core/kernel/proxy.h, over
// the node's handle of the task): every call goes to the remote task, but
// Join and Monitor are answered from the result this side already asked
// for. It cannot be put in a message to another process (the node refuses a
// handle of another layer with kUnimplemented); NetworkHandle() gives the
// node's own handle of the task for that, whose Join and Monitor reach the
// task while it runs and after it ended while its node keeps it
// (kEndedTasksKept, core/wire/value_codec.h).
//
// Threads: call RegisterService, RegisteredService's methods and
// Service::Locate / Run / Close from tasks of the scheduler that runs the
// node. Handles Run gives may be used from any thread.
#ifndef PICOS_CORE_REMOTE_SERVICE_H_
#define PICOS_CORE_REMOTE_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"

namespace picos::remote {

// The name a service's server task is registered under is this prefix and
// the service's name.
inline constexpr char kServiceTaskPrefix[] = "picos.service.";
// The system message a client sends a started task to let it run.
inline constexpr char kServiceStartMessage[] = "picos.service_start";
// Longest service name.
inline constexpr size_t kMaxServiceNameLength = 200;

// What a service runs: one task per admitted request, with the request's
// argument. Its value (or error) is what Join on the client gives. It runs
// as the started task itself, so Receive() reads that task's messages.
using ServiceFunction = std::function<Task<absl::StatusOr<Value>>(Value arg)>;

// Decides whether a request may run: OK, or the status Run gives the client
// (pycos services validate their request). Runs in the server task, must
// not block; `arg` came from the network, so read it with checked accessors.
using ServiceAdmission = std::function<absl::Status(const Value& arg)>;

struct ServiceOptions {
  // Null admits every request.
  ServiceAdmission admit;
  // Most tasks of this service running (or waiting to start) at once; a
  // request beyond it is refused with kResourceExhausted.
  size_t max_running = 4096;
  // How long a started task waits for its client's start message before it
  // ends with kDeadlineExceeded without running the function.
  absl::Duration start_timeout = absl::Seconds(60);
};

// A registered service, for as long as this object lives (or until
// Unregister). Move-only.
class RegisteredService {
 public:
  RegisteredService(RegisteredService&& other) noexcept;
  RegisteredService& operator=(RegisteredService&& other) noexcept;
  RegisteredService(const RegisteredService&) = delete;
  RegisteredService& operator=(const RegisteredService&) = delete;
  ~RegisteredService();  // Unregister()

  // Releases the name (a Locate no longer finds it) and ends the server
  // task. Tasks already started keep running. Idempotent.
  void Unregister();

  const std::string& name() const { return name_; }
  // The server task (what Locate finds).
  const TaskRef& server() const { return server_; }

 private:
  friend absl::StatusOr<RegisteredService> RegisterService(std::string, ServiceFunction, ServiceOptions);
  RegisteredService(std::string name, TaskRef server) : name_(std::move(name)), server_(std::move(server)) {}
  std::string name_;
  TaskRef server_;
};

// Registers `fn` as the service `name` on the calling task's scheduler:
// spawns its server task (a daemon) and registers it under
// kServiceTaskPrefix + name. kInvalidArgument for an empty or over-long name
// or a null function, kAlreadyExists if the name is taken. Call from a task.
absl::StatusOr<RegisteredService> RegisterService(std::string name, ServiceFunction fn,
                                                  ServiceOptions options = {});

// A client's handle of a located service. Copies share their state (the
// monitor, the tasks started, closed or not).
class Service {
 public:
  // Locates the service `name` at `location` (Location::Peer(uri),
  // Anywhere() or Local()), waiting up to `timeout` for it to be
  // registered. kNotFound if it is not by then; kUnavailable if the peer is
  // lost; what LocateTask gives otherwise. Suspends.
  static Task<absl::StatusOr<Service>> Locate(std::string name, Location location,
                                              absl::Duration timeout);

  // Runs a task with the service's function and `arg` on the service's
  // peer and gives its handle (see the top of this file). The refusal's
  // status if the service refuses; kUnavailable if the peer is lost or the
  // service unregistered before replying; kDeadlineExceeded after
  // `timeout`; kFailedPrecondition after Close(). Suspends.
  Task<absl::StatusOr<TaskRef>> Run(Value arg, absl::Duration timeout = absl::Seconds(60));

  // Makes the server send the MonitorStatus of every task started by later
  // Runs to `monitor` (a task anywhere); a null handle stops it for later
  // Runs.
  void SetMonitor(TaskRef monitor);

  // Terminates every task started through this Service that has not ended;
  // later Runs fail. The first error met (a lost peer: kUnavailable), after
  // trying them all.
  absl::Status Close();

  const std::string& name() const;
  // The service's server task.
  const TaskRef& server() const;

  struct State;

 private:
  explicit Service(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

// The node's own handle of a task that Run started (for a message to
// another process), or `task` itself for any other handle.
TaskRef NetworkHandle(const TaskRef& task);

}  // namespace picos::remote

#endif  // PICOS_CORE_REMOTE_SERVICE_H_
