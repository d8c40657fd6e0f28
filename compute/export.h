// Exporting task functions from a computation library (dispycos's
// computation code), header-only: a computation is a shared library built
// with picos_computation (compute/computation.bzl) that registers functions
// by name; a worker process dlopens it and runs them as jobs.
//
//   #include "compute/export.h"
//   // A job: bytes in, bytes out. Return 0 with the result in *out, or
//   // nonzero with an error message in *out (the client's Join gives it as
//   // kAborted).
//   int Square(std::string_view arg, std::string* out) {
//     int64_t n = 0;
//     if (!absl::SimpleAtoi(arg, &n)) { *out = "not a number"; return 1; }
//     *out = std::to_string(n * n);
//     return 0;
//   }
//   PICOS_COMPUTE_FUNCTION(square, Square);
//
//   // A job that talks (a remote task, issue 12): it gets a Job with its
//   // argument, Send (to the client task given as RunOptions::reply_to)
//   // and Receive (the messages sent to the job's TaskRef on the client).
//   int Sum(picos::compute::Job& job, std::string* out) {
//     int64_t total = 0;
//     std::string m;
//     while (job.Receive(&m, std::chrono::seconds(60)) == picos::compute::Job::kOk) {
//       if (m == "end") break;
//       total += std::stoll(m);
//       job.Send(std::to_string(total));          // a running total back
//     }
//     *out = std::to_string(total);
//     return 0;
//   }
//   PICOS_COMPUTE_JOB(sum, Sum);
//
// Why bytes and a C ABI: the library must link nothing of picos's
// implementation (a second copy of the kernel or of a registry inside the
// library would be a private one the worker never sees), so what crosses
// between worker and library is only what this header defines: a table of
// {name, C function pointer} found by dlsym of the one well-known symbol
// kComputeTableSymbol. Arguments and results are opaque bytes: the client
// encodes them as it likes (text, Cap'n Proto, core/wire's codec).
//
// Guarantees: names are what the macro was given (an identifier); a name
// registered twice keeps the first; the table is filled by the library's
// static initializers, so it is complete once dlopen returns. A function
// runs on a thread of the worker's own (not the one its networking runs
// on, so a long job does not make the worker look dead), one job at a time
// per worker; it may block.
//
// The job context (PICOS_COMPUTE_JOB), each guarantee tested with real
// workers (testing/compute_messages_test.cc):
//  * Receive gives, in the order they were sent, the messages sent to the
//    job's TaskRef on the client (Computation::Run's): a message that is
//    bytes or a string, as its bytes (any other Value is dropped there, with
//    a log line). Messages sent before the job started on its worker are
//    held on the client and given first. They wait in the job's mailbox
//    while it computes without receiving; the mailbox holds at most
//    kJobMailboxLimit messages on the worker and as many more on the client,
//    then TaskRef::Send on the job's handle gives kResourceExhausted (a
//    remote sender: the message is dropped there, as for any bounded picos
//    mailbox). Receive gives kDeadlineExceeded when `timeout` passes.
//  * Cancellation: when the job's TaskRef is terminated, the computation
//    closed with terminate, or the client task lost, cancelled() becomes
//    true and every Receive, waiting or later, gives kCancelled at once
//    (messages still queued are dropped). The job should then return; it
//    may still Send (a last result, pycos dispycos_kbd_int): the client
//    waits for a cancelled job to return, up to ComputationOptions::timeout,
//    so that message reaches reply_to before Close or CloseWorker return
//    and before the job's handle ends (a Terminate of the handle itself
//    ends the handle at once; the message still comes, later).
//  * Send(bytes) reaches the client task RunOptions::reply_to as the Value
//    map {"job": <the job's id, as in status events>, "data": <bytes>}, in
//    the order sent, each once; it blocks until the worker's networking has
//    queued it (kUnavailable if the client is lost, kFailedPrecondition
//    without a reply_to, kInvalidArgument beyond kJobMessageMaxBytes).
//  * A bytes-only function (PICOS_COMPUTE_FUNCTION) has no mailbox:
//    messages sent to its TaskRef are dropped when it ends.
//
// Setup hooks (pycos node_setup / server_setup, issue 12), each tested
// with real workers (testing/compute_setup_test.cc):
//
//   std::vector<int64_t>* g_table = nullptr;     // the worker's data
//   int LoadTable(std::string_view arg, std::string* error) {
//     g_table = new std::vector<int64_t>(Parse(arg));
//     return 0;                                   // nonzero: *error says why
//   }
//   PICOS_COMPUTE_SETUP(LoadTable);               // once per worker
//   PICOS_COMPUTE_NODE_SETUP(LoadNodeData);       // the node's part, below
//
//  * A worker runs the node setup (with its node's argument,
//    ComputationOptions::node_setup_arg or EnableNode's), then the worker
//    setup (ComputationOptions::worker_setup_arg or EnableWorker's), each
//    at most once, on the job thread, before it takes any job: the worker
//    refuses jobs (kFailedPrecondition) until every hook its library
//    registers has run and returned 0. What they leave in the library's
//    globals is what its jobs see (one dlopen per worker process; a setup
//    finishes before any job starts, CPU or I/O, so plain globals are safe
//    to read without a lock).
//  * Node setup runs in each worker of the node, not once per node: picos
//    workers are processes the node starts (exec, not fork), so nothing a
//    setup loaded in one process could reach the others' memory, as
//    pycos's node_setup reaches its forked servers. Per-node data given as
//    the node's argument is thus loaded by each of its workers; work that
//    must happen once per host can be guarded, in the node setup, by a
//    lock file (O_EXCL) at a path the argument names.
//  * A hook that returns nonzero leaves the worker unusable for good (it
//    refuses further setups and every job): the client sends the
//    worker_setup_failed event with the hook's message and the stage
//    ("node" or "worker"), closes that worker and sends it no job; other
//    workers go on serving (compute/computation.h).
//  * A restarted worker (restart_workers, CloseWorker(restart),
//    RestartNode) is a fresh process: its hooks run again with the same
//    arguments (RestartNode's for the node), so its state is fresh.
//  * One hook per stage: a second registration of a stage (from another
//    file; twice in one file does not compile) keeps the first.
//
//
// Names: jobs that find each other (pycos register/locate, dispycos_mas),
// each guarantee tested with real workers on two nodes
// (testing/compute_names_test.cc):
//  * Register(name) gives the job a name in its computation's scope: 1 to
//    kJobNameMaxBytes bytes, no control characters (else kInvalidArgument);
//    unique among the computation's running jobs (a name another job holds:
//    kAlreadyExists, saying so); one name per job (a second Register:
//    kFailedPrecondition). The name is freed when the job ends (returns, is
//    cancelled, or its worker is lost), so a later job can take it. Names
//    live on the client (the computation's name registry), so a job of
//    another computation, or of another client, never sees them.
//  * Locate(name) asks the registry whether a job of this computation holds
//    `name` now: kOk, or kNotFound ("no job named ..."). SendTo(name, bytes)
//    sends `bytes` straight to that job's worker (worker to worker: the
//    client only answers the Locate, once per name, and the handle is
//    cached) and returns once the target's worker took it: kOk, kNotFound for
//    a name no job holds (also one whose job ended since), kInvalidArgument
//    beyond kJobMessageMaxBytes, kUnavailable when the target's worker is lost
//    or unreachable. Messages from one job to another arrive in the order
//    sent, each once, and share the target's mailbox (and its bound, above:
//    beyond it they are dropped with a log line on the target's worker) with
//    the client's messages.
//  * ReceiveFrom(&from, &out) is Receive that also says who sent it: the
//    sender's registered name, or "" for a message from the client (or from
//    a job that registered none). Receive gives the same messages without it.
//
//
// Files (issue 12), each tested with real workers
// (testing/compute_files_test.cc):
//  * A worker's working directory is its computation's folder on the node
//    (Job::dir(), absolute): the data files given as
//    ComputationOptions::files, and those Computation::SendFile sent
//    there, open by relative name, also from a bytes-only function. A
//    job's own files (RunOptions::files) are in Job::job_dir(), put there
//    before the job starts. The folder goes when the computation closes.
//  * Job::SendFile(path) copies a file the job made to the client, into
//    ComputationOptions::dest_path there (with its mode and mtime, written
//    atomically: core/remote/files.h), and returns once the client has it
//    whole; the client's status task then hears "file_received". The
//    client's FileReceiver checks everything: a subdirectory that is
//    absolute, holds "..", or passes through a symlink is refused, and so
//    is a file beyond the client's max_file_size; the refusal is
//    SendFile's code and message.
//
//
// Versions: the library exports kComputeAbiSymbol, the kComputeAbiVersion
// of this header it was built against. 3 added setup hooks
// (kComputeSetupSymbol), job names (PicosComputeJobOps grew at its end) and
// files (grown again); a version 2 library reads only the fields before,
// so a worker still runs it. A worker runs libraries of
// kComputeAbiMinVersion .. kComputeAbiVersion and refuses (its start
// fails, with both versions in the message) any other, or none.
#ifndef PICOS_COMPUTE_EXPORT_H_
#define PICOS_COMPUTE_EXPORT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

extern "C" {

// Appends `n` bytes at `data` to the result held by `ctx`.
typedef void (*PicosComputeAppend)(void* ctx, const char* data, size_t n);

// A job's entry point as the worker calls it: 0 for success (the bytes
// appended are the result), nonzero for failure (they are the message).
typedef int (*PicosComputeFn)(const char* arg, size_t arg_len, void* ctx, PicosComputeAppend append);

// What a job function with a context gets from the worker: its argument
// and the worker's calls, each taking `ctx`. Codes are absl::StatusCode
// numbers (0 OK, 1 cancelled, 3 invalid argument, 4 deadline exceeded,
// 8 resource exhausted, 9 failed precondition, 14 unavailable).
struct PicosComputeJobOps {
  void* ctx;
  const char* arg;
  size_t arg_len;
  // The job's id on its client (Value "job" of its status events).
  uint64_t job_id;
  // Sends n bytes to the job's reply_to. Blocks until queued.
  int (*send)(void* ctx, const char* data, size_t n);
  // Waits up to timeout_ns (negative: no limit) for the next message and
  // appends it to `out` with `append`; 0, 1 (cancelled) or 4 (deadline).
  int (*receive)(void* ctx, int64_t timeout_ns, void* out, PicosComputeAppend append);
  // Nonzero once the job is cancelled.
  int (*cancelled)(void* ctx);
  // Appends to the job's result (or, when it fails, its message).
  void (*append_result)(void* ctx, const char* data, size_t n);
  // ABI 3, names (see the top of this file). Each returns a code as above
  // (5 not found, 6 already exists) and, when not 0, appends why to `err`.
  // Registers the job under the n bytes at `name`.
  int (*register_name)(void* ctx, const char* name, size_t n, void* err, PicosComputeAppend append);
  // Whether a job of the computation holds the name.
  int (*locate)(void* ctx, const char* name, size_t n, void* err, PicosComputeAppend append);
  // Sends len bytes at `data` to the job named `name`. Blocks until its
  // worker took them.
  int (*send_to)(void* ctx, const char* name, size_t n, const char* data, size_t len, void* err,
                 PicosComputeAppend append);
  // receive, also appending the sender's name to `from`.
  int (*receive_from)(void* ctx, int64_t timeout_ns, void* from, void* out, PicosComputeAppend append);
  // ABI 3, files: the computation's folder on the node (absolute; the worker's working
  // directory), `dir_len` bytes.
  const char* dir;
  size_t dir_len;
  // Sends the file at `path` (relative: to `dir`) to the client's
  // ComputationOptions::dest_path, into its subdirectory `subdir` ("" for
  // the folder itself), replacing a file there if `overwrite`. Blocks until
  // the client has the file whole; a code as above (also 5 not found, 6
  // already exists), with the reason appended to `err` with `append`.
  int (*send_file)(void* ctx, const char* path, size_t path_len, const char* subdir, size_t subdir_len,
                   int overwrite, void* err, PicosComputeAppend append);
};

// A job's entry point with a context: 0 for success, nonzero for failure.
typedef int (*PicosComputeJobFn)(const PicosComputeJobOps* ops);

// One registered function: exactly one of fn (bytes in, bytes out) and
// job_fn (with a context) is set.
struct PicosComputeEntry {
  const char* name;
  PicosComputeFn fn;
  PicosComputeJobFn job_fn;
};

// What dlsym(kComputeAbiSymbol) gives: the library's kComputeAbiVersion.
typedef int (*PicosComputeAbiFn)(void);

// What dlsym(kComputeTableSymbol) gives: the library's table, its length in
// *n.
typedef const PicosComputeEntry* (*PicosComputeTableFn)(size_t* n);

// A setup hook as the worker calls it: the same shape as PicosComputeFn
// (0 for success; nonzero for failure, the bytes appended its message).
typedef PicosComputeFn PicosComputeSetupFn;

// What dlsym(kComputeSetupSymbol) gives (ABI 3): the library's hook for
// `stage` (kComputeSetupNode or kComputeSetupWorker), null for none.
typedef PicosComputeSetupFn (*PicosComputeSetupTableFn)(int stage);

}  // extern "C"

namespace picos::compute {

inline constexpr char kComputeTableSymbol[] = "picos_compute_table";
inline constexpr char kComputeAbiSymbol[] = "picos_compute_abi";
inline constexpr char kComputeSetupSymbol[] = "picos_compute_setup";
// The layout of the structs above (see Versions at the top). 2: job
// contexts (1 had none, and no symbol). 3: setup hooks
// (kComputeSetupSymbol), names and files (PicosComputeJobOps grew at its
// end; a version 2 library reads only the fields before).
inline constexpr int kComputeAbiVersion = 3;
inline constexpr int kComputeAbiMinVersion = 2;
// The stages of PicosComputeSetupTableFn.
inline constexpr int kComputeSetupNode = 0;
inline constexpr int kComputeSetupWorker = 1;
// Longest job name (Job::Register), in bytes.
inline constexpr size_t kJobNameMaxBytes = 256;
// Most functions one library registers (the worker reads no more).
inline constexpr size_t kMaxComputeFunctions = 1024;
// Most messages a job's mailbox holds on its worker (and, again, on the
// client), see the top of this file.
inline constexpr size_t kJobMailboxLimit = 1024;
// Largest message a job sends or receives, in bytes.
inline constexpr size_t kJobMessageMaxBytes = 16 << 20;

// A job function as a user writes it.
using ComputeFunction = int (*)(std::string_view arg, std::string* out);

// A running job as a function registered with PICOS_COMPUTE_JOB sees it.
// Use it on the job's thread only (the one that called the function).
class Job {
 public:
  // Codes (absl::StatusCode numbers: the library links no Abseil of picos).
  enum Code : int {
    kOk = 0,
    kCancelled = 1,
    kInvalidArgument = 3,
    kDeadlineExceeded = 4,
    kNotFound = 5,
    kAlreadyExists = 6,
    kResourceExhausted = 8,
    kFailedPrecondition = 9,
    kUnavailable = 14,
  };

  explicit Job(const PicosComputeJobOps* ops) : ops_(ops) {}
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  std::string_view arg() const { return std::string_view(ops_->arg, ops_->arg_len); }
  uint64_t id() const { return ops_->job_id; }

  // Sends `bytes` to the job's reply_to (see the top of this file).
  Code Send(std::string_view bytes) { return static_cast<Code>(ops_->send(ops_->ctx, bytes.data(), bytes.size())); }

  // The next message into *out (replacing it): kOk, kCancelled, or
  // kDeadlineExceeded once `timeout` passes (a negative one: no limit).
  Code Receive(std::string* out, std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    out->clear();
    return static_cast<Code>(ops_->receive(ops_->ctx, static_cast<int64_t>(timeout.count()), out, &AppendString));
  }

  // True once the job is cancelled (see the top of this file).
  bool cancelled() const { return ops_->cancelled(ops_->ctx) != 0; }

  // Names (see the top of this file). When the code is not kOk and `error`
  // is given, *error says why.
  // Gives this job `name` in its computation: kOk, kAlreadyExists,
  // kFailedPrecondition (it has one), kInvalidArgument, kUnavailable.
  Code Register(std::string_view name, std::string* error = nullptr) {
    std::string why;
    const auto rc = static_cast<Code>(ops_->register_name(ops_->ctx, name.data(), name.size(), &why, &AppendString));
    if (error != nullptr) *error = std::move(why);
    return rc;
  }
  // Whether a job of the computation holds `name`: kOk or kNotFound.
  Code Locate(std::string_view name, std::string* error = nullptr) {
    std::string why;
    const auto rc = static_cast<Code>(ops_->locate(ops_->ctx, name.data(), name.size(), &why, &AppendString));
    if (error != nullptr) *error = std::move(why);
    return rc;
  }
  // Sends `bytes` to the job named `name`, worker to worker: kOk once its
  // worker took them, kNotFound, kInvalidArgument, kUnavailable.
  Code SendTo(std::string_view name, std::string_view bytes, std::string* error = nullptr) {
    std::string why;
    const auto rc = static_cast<Code>(
        ops_->send_to(ops_->ctx, name.data(), name.size(), bytes.data(), bytes.size(), &why, &AppendString));
    if (error != nullptr) *error = std::move(why);
    return rc;
  }
  // Receive, with the sender's name in *from ("" for the client).
  Code ReceiveFrom(std::string* from, std::string* out,
                   std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    from->clear();
    out->clear();
    return static_cast<Code>(
        ops_->receive_from(ops_->ctx, static_cast<int64_t>(timeout.count()), from, out, &AppendString));
  }

  // The computation's folder on this node, absolute: the worker's working
  // directory, where the data files (ComputationOptions::files) and files
  // the client sent (Computation::SendFile) are. The workers of one node
  // share it.
  std::string_view dir() const { return std::string_view(ops_->dir, ops_->dir_len); }
  // This job's own folder, dir()/jobs/<id>: where RunOptions::files were
  // put (it exists only if the job was given files).
  std::string job_dir() const { return std::string(dir()) + "/jobs/" + std::to_string(id()); }

  // Sends the file at `path` (relative: to dir()) to the client, into
  // ComputationOptions::dest_path/<subdir>/<its name> there, with its mode
  // and mtime (see the top of this file). kOk once the client has it whole;
  // else a code with the reason in *error (if given): kFailedPrecondition
  // when the client takes no files, kNotFound for no such file, kAlreadyExists
  // (a file of that name there, without `overwrite`), kInvalidArgument (an
  // absolute `subdir` or one that leads out, beyond the client's
  // max_file_size, ...), kUnavailable.
  Code SendFile(std::string_view path, std::string* error = nullptr, std::string_view subdir = {},
                bool overwrite = false) {
    std::string ignored;
    std::string* err = error != nullptr ? error : &ignored;
    err->clear();
    return static_cast<Code>(ops_->send_file(ops_->ctx, path.data(), path.size(), subdir.data(), subdir.size(),
                                             overwrite ? 1 : 0, err, &AppendString));
  }

 private:
  static void AppendString(void* out, const char* data, size_t n) { static_cast<std::string*>(out)->append(data, n); }
  const PicosComputeJobOps* ops_;
};

// A job function with a context as a user writes it: 0 for success with
// the result in *out, nonzero with an error message in *out.
using JobFunction = int (*)(Job& job, std::string* out);

namespace export_internal {

struct Table {
  PicosComputeEntry entries[kMaxComputeFunctions];
  size_t n = 0;
  PicosComputeSetupFn setup[2] = {nullptr, nullptr};  // by stage
};

// One table per library: the header is compiled into the library only,
// and the symbol below is looked up in the library's own handle.
inline Table& TheTable() {
  static Table t;
  return t;
}

}  // namespace export_internal
}  // namespace picos::compute

// The table's one entry point, what the worker finds with dlsym. An inline
// function (every file of the library that includes this header has the
// same one), emitted because Add below stores its address in a volatile:
// an inline function nothing odr-uses is not emitted at all (nor is one
// whose address only an unused static takes, at -O2).
extern "C" __attribute__((visibility("default"))) inline const PicosComputeEntry* picos_compute_table(
    size_t* n) {
  picos::compute::export_internal::Table& t = picos::compute::export_internal::TheTable();
  *n = t.n;
  return t.entries;
}

// The ABI version this library was built against (kComputeAbiSymbol; see
// Versions at the top).
extern "C" __attribute__((visibility("default"))) inline int picos_compute_abi(void) {
  return picos::compute::kComputeAbiVersion;
}

// The library's setup hooks (kComputeSetupSymbol).
extern "C" __attribute__((visibility("default"))) inline PicosComputeSetupFn picos_compute_setup(int stage) {
  if (stage != picos::compute::kComputeSetupNode && stage != picos::compute::kComputeSetupWorker) return nullptr;
  return picos::compute::export_internal::TheTable().setup[stage];
}

namespace picos::compute::export_internal {

inline bool Add(const char* name, PicosComputeFn fn, PicosComputeJobFn job_fn = nullptr) {
  volatile PicosComputeTableFn keep = &picos_compute_table;  // see picos_compute_table
  (void)keep;
  volatile PicosComputeAbiFn keep_abi = &picos_compute_abi;
  (void)keep_abi;
  Table& t = TheTable();
  for (size_t i = 0; i < t.n; ++i) {
    if (std::strcmp(t.entries[i].name, name) == 0) return false;
  }
  if (t.n == kMaxComputeFunctions) return false;
  t.entries[t.n++] = PicosComputeEntry{name, fn, job_fn};
  return true;
}

inline bool AddSetup(int stage, PicosComputeSetupFn fn) {
  volatile PicosComputeTableFn keep = &picos_compute_table;  // see picos_compute_table
  (void)keep;
  volatile PicosComputeAbiFn keep_abi = &picos_compute_abi;
  (void)keep_abi;
  volatile PicosComputeSetupTableFn keep_setup = &picos_compute_setup;
  (void)keep_setup;
  Table& t = TheTable();
  if (t.setup[stage] != nullptr) return false;
  t.setup[stage] = fn;
  return true;
}

template <ComputeFunction F>
int Thunk(const char* arg, size_t arg_len, void* ctx, PicosComputeAppend append) {
  std::string out;
  const int rc = F(std::string_view(arg, arg_len), &out);
  append(ctx, out.data(), out.size());
  return rc;
}

template <JobFunction F>
int JobThunk(const PicosComputeJobOps* ops) {
  Job job(ops);
  std::string out;
  const int rc = F(job, &out);
  ops->append_result(ops->ctx, out.data(), out.size());
  return rc;
}

}  // namespace picos::compute::export_internal

// Registers `fn` (a picos::compute::ComputeFunction) under the name `name`
// (an identifier, used as the job's function name).
#define PICOS_COMPUTE_FUNCTION(name, fn)                                                          \
  [[maybe_unused]] static const bool picos_compute_registered_##name =                          \
      ::picos::compute::export_internal::Add(#name, &::picos::compute::export_internal::Thunk<fn>)

// Registers `fn` (a picos::compute::JobFunction, which gets a Job) under
// the name `name`.
#define PICOS_COMPUTE_JOB(name, fn)                                                               \
  [[maybe_unused]] static const bool picos_compute_registered_##name =                          \
      ::picos::compute::export_internal::Add(#name, nullptr, &::picos::compute::export_internal::JobThunk<fn>)

// Registers `fn` (a picos::compute::ComputeFunction: the argument in, 0 or
// nonzero with an error message in *out) as the worker setup hook: run
// once in each worker before it takes jobs (see the top of this file).
#define PICOS_COMPUTE_SETUP(fn)                                                                   \
  [[maybe_unused]] static const bool picos_compute_setup_registered_worker =                    \
      ::picos::compute::export_internal::AddSetup(::picos::compute::kComputeSetupWorker,        \
                                                  &::picos::compute::export_internal::Thunk<fn>)

// Registers `fn` as the node setup hook: run in each worker of a node, with
// the node's argument, before the worker setup (see the top of this file).
#define PICOS_COMPUTE_NODE_SETUP(fn)                                                              \
  [[maybe_unused]] static const bool picos_compute_setup_registered_node =                      \
      ::picos::compute::export_internal::AddSetup(::picos::compute::kComputeSetupNode,          \
                                                  &::picos::compute::export_internal::Thunk<fn>)

#endif  // PICOS_COMPUTE_EXPORT_H_
