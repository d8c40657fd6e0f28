#include "core/remote/files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/io/file.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task_group.h"
#include "core/remote/ops_internal.h"

// The messages of a transfer (every field checked on arrival):
//   sender → receiver task:  {"reply": task, "name": s, "dir": s, "size": n,
//                             "mode": n, "mtime_ns": n, "overwrite": b}
//   receiver → sender:       {"ok": {"to": transfer task}} or {"error": status}
//   sender → transfer task:  {"seq": i, "data": bytes} ... {"end": chunks}
//                            or {"abort": why}
//   transfer task → sender:  {"ok": {"ack": i}} per chunk, {"ok": {"path": s}}
//                            at the end, or {"error": status} (and it ends)

namespace picos::remote {
namespace {

// Longest file name and subdirectory accepted (NAME_MAX; a bound for the
// subdirectory well under PATH_MAX with the receiver's own directory).
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxDirBytes = 1024;
constexpr size_t kMaxDirDepth = 32;
// Largest chunk a sender may choose: well under a Node's default
// max_frame_size (16 MiB), which a chunk and its envelope must fit.
constexpr size_t kMaxChunkSize = size_t{8} << 20;

Value Ok(Value v) { return Value::Map({{"ok", std::move(v)}}); }
Value Err(const absl::Status& s) { return Value::Map({{"error", ops::StatusFields(s)}}); }

absl::Status Errno(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, what);
}

// A file name as it will be created in a directory: one component.
absl::Status CheckName(const std::string& name) {
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("bad file name '", name, "'"));
  }
  if (name.size() > kMaxNameBytes) return absl::InvalidArgumentError("file name longer than 255 bytes");
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("a file name may hold neither '/' nor NUL");
  }
  return absl::OkStatus();
}

// A relative subdirectory as its components; "" gives none. Refuses an
// absolute path and any "..": nothing a sender names leads out of the
// receiver's directory by its spelling (symlinks are refused in MakeDirs).
absl::StatusOr<std::vector<std::string>> SplitDir(const std::string& dir) {
  if (dir.size() > kMaxDirBytes) return absl::InvalidArgumentError("subdirectory longer than 1024 bytes");
  if (!dir.empty() && dir[0] == '/') {
    return absl::InvalidArgumentError(absl::StrCat("absolute subdirectory '", dir, "'"));
  }
  if (dir.find('\0') != std::string::npos) return absl::InvalidArgumentError("NUL in the subdirectory");
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(dir, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") return absl::InvalidArgumentError(absl::StrCat("'..' in subdirectory '", dir, "'"));
    parts.emplace_back(p);
  }
  if (parts.size() > kMaxDirDepth) return absl::InvalidArgumentError("subdirectory deeper than 32");
  return parts;
}

// Creates root/parts... as needed and gives its path. A component that
// exists and is not a directory (a file, or a symlink to anywhere) is
// refused: lstat does not follow it.
absl::StatusOr<std::string> MakeDirs(const std::string& root, const std::vector<std::string>& parts) {
  std::string path = root;
  std::string rel;
  for (const std::string& c : parts) {
    path += "/" + c;
    rel += rel.empty() ? c : "/" + c;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::InvalidArgumentError(absl::StrCat("'", rel, "' exists and is not a directory"));
      }
      continue;
    }
    if (errno != ENOENT) return Errno(errno, absl::StrCat("lstat ", rel));
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return Errno(errno, absl::StrCat("mkdir ", rel));
  }
  return path;
}

// Removes the temporary file unless kept: whatever ends a transfer (an
// error, a timeout, the receiver destroyed with the task's frame) leaves
// nothing half-written.
struct PartialFile {
  std::string path;
  bool keep = false;
  PartialFile() = default;
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;
  ~PartialFile() {
    if (!keep && !path.empty()) ::unlink(path.c_str());
  }
};

// The reply of a receiver: its "ok" value, or its error prefixed. A
// monitor message of the transfer task (it ended without a word, or its
// peer was lost) is an error too.
absl::StatusOr<Value> ReplyOf(const absl::StatusOr<Value>& m) {
  if (!m.ok()) return m.status();
  if (MonitorStatus::Is(*m)) {
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
    if (st.ok() && st->outcome == MonitorOutcome::kPeerLost) {
      return absl::UnavailableError(absl::StrCat("the receiver's peer was lost: ", st->error.message()));
    }
    return absl::AbortedError(absl::StrCat("the receiver's transfer task ended: ",
                                           st.ok() ? st->DebugString() : m->DebugString()));
  }
  if (m->is_map()) {
    if (const Value* e = m->Find("error")) {
      absl::Status s = ops::StatusOf(*e);
      return absl::Status(s.code(), absl::StrCat("receiver: ", s.message()));
    }
    if (const Value* ok = m->Find("ok")) return *ok;
  }
  return absl::DataLossError(absl::StrCat("malformed reply from the receiver: ", m->DebugString()));
}

}  // namespace

struct FileReceiver::Impl {
  explicit Impl(FileReceiverOptions o, std::string r)
      : options(std::move(o)), root(std::move(r)), tasks(ThisScheduler(), {.name = "picos.files"}) {}

  // Counts a transfer in progress while it lives.
  struct Active {
    explicit Active(Impl* i) : impl(i) { ++impl->active; }
    ~Active() { --impl->active; }
    Impl* impl;
  };

  static Task<absl::Status> Listen(Impl* self);
  static Task<absl::Status> Transfer(Impl* self, TaskRef sender, std::string dir_path, std::string rel_path,
                                     std::string name, uint64_t size, uint32_t mode, int64_t mtime_ns,
                                     bool overwrite);
  // Checks a begin message and starts its transfer, or says why not.
  absl::Status Begin(const Value& msg, TaskRef* sender);

  FileReceiverOptions options;
  std::string root;
  size_t active = 0;
  size_t received = 0;
  size_t failed = 0;
  TaskRef listener;
  TaskGroup tasks;  // last: destroyed first, while what its tasks use exists
};

absl::Status FileReceiver::Impl::Begin(const Value& msg, TaskRef* sender) {
  std::string name, dir;
  int64_t size = -1, mode = -1, mtime_ns = 0;
  bool overwrite = false;
  absl::Status read = MessageReader(msg)
                          .Get("reply", sender)
                          .Get("name", &name)
                          .Get("dir", &dir)
                          .Get("size", &size)
                          .Get("mode", &mode)
                          .Get("mtime_ns", &mtime_ns)
                          .Get("overwrite", &overwrite)
                          .status();
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat("malformed request: ", read.message()));
  PICOS_RETURN_IF_ERROR(CheckName(name));
  if (absl::StartsWith(name, ".picos-partial-")) {
    return absl::InvalidArgumentError("file names starting .picos-partial- are the receiver's own");
  }
  if (size < 0 || static_cast<uint64_t>(size) > options.max_file_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("size ", size, " is outside 0..", options.max_file_size, " (max_file_size)"));
  }
  if (mode < 0 || mode > 07777) return absl::InvalidArgumentError(absl::StrCat("bad mode ", mode));
  absl::StatusOr<std::vector<std::string>> parts = SplitDir(dir);
  if (!parts.ok()) return parts.status();
  if (active >= options.max_transfers) {
    return absl::ResourceExhaustedError(
        absl::StrCat(active, " transfers in progress already (max_transfers)"));
  }
  if (options.admit) PICOS_RETURN_IF_ERROR(options.admit(*parts, name, static_cast<uint64_t>(size)));
  absl::StatusOr<std::string> dir_path = MakeDirs(root, *parts);
  if (!dir_path.ok()) return dir_path.status();
  std::string rel = absl::StrJoin(*parts, "/");
  rel += rel.empty() ? name : "/" + name;
  struct stat st;
  if (!overwrite && ::lstat((*dir_path + "/" + name).c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("'", rel, "' exists (overwrite not asked)"));
  }
  absl::StatusOr<TaskRef> t =
      tasks.SpawnNamed("picos.files.transfer", &Impl::Transfer, this, *sender, *std::move(dir_path), rel, name,
                       static_cast<uint64_t>(size), static_cast<uint32_t>(mode), mtime_ns, overwrite);
  return t.status();
}

Task<absl::Status> FileReceiver::Impl::Listen(Impl* self) {
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return msg.status();  // terminated: the receiver is going
    TaskRef sender;
    absl::Status begun = self->Begin(*msg, &sender);
    if (begun.ok()) continue;
    ++self->failed;
    PICOS_LOG_LIMITED(warn, "files: refused a transfer from {}: {}",
                      sender.valid() ? sender.DebugString() : std::string("an unknown sender"), begun.ToString());
    if (sender.valid()) (void)sender.Send(Err(begun));
  }
}

Task<absl::Status> FileReceiver::Impl::Transfer(Impl* self, TaskRef sender, std::string dir_path,
                                                std::string rel_path, std::string name, uint64_t size,
                                                uint32_t mode, int64_t mtime_ns, bool overwrite) {
  Active active(self);
  PartialFile partial;
  absl::BitGen random;
  partial.path = absl::StrFormat("%s/.picos-partial-%016x", dir_path, absl::Uniform<uint64_t>(random));
  const std::string target = dir_path + "/" + name;
  // Everything below ends here on an error: say why to the sender, log it,
  // and let `partial` remove the temporary file.
  auto fail = [&](absl::Status s) {
    ++self->failed;
    PICOS_LOG_LIMITED(warn, "files: transfer of '{}' from {} failed: {}", rel_path, sender.DebugString(),
                      s.ToString());
    (void)sender.Send(Err(s));
    return s;
  };
  absl::StatusOr<std::unique_ptr<File>> file =
      co_await File::Open(partial.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (!file.ok()) co_return fail(file.status());
  // A sender that ends or whose peer is lost ends the transfer at once, not
  // after idle_timeout.
  if (absl::Status watched = Monitor(Self(), sender); !watched.ok()) co_return fail(watched);
  PICOS_CO_RETURN_IF_ERROR(sender.Send(Ok(Value::Map({{"to", Self()}}))));
  uint64_t written = 0;
  int64_t seq = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive(self->options.idle_timeout);
    if (!msg.ok()) {
      co_return fail(absl::Status(msg.status().code(), absl::StrCat("no word from the sender: ", msg.status().message())));
    }
    if (MonitorStatus::Is(*msg)) {
      absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*msg);
      co_return fail(absl::AbortedError(
          absl::StrCat("the sender ended: ", st.ok() ? st->DebugString() : msg->DebugString())));
    }
    if (!msg->is_map()) co_return fail(absl::InvalidArgumentError("malformed message"));
    if (const Value* why = msg->Find("abort")) {
      ++self->failed;
      PICOS_LOG_LIMITED(info, "files: the sender of '{}' gave up: {}", rel_path, why->DebugString());
      co_return absl::CancelledError("the sender gave up");
    }
    if (const Value* end = msg->Find("end")) {
      if (!end->is_int() || end->as_int() != seq) co_return fail(absl::InvalidArgumentError("bad end"));
      if (written != size) {
        co_return fail(absl::DataLossError(absl::StrCat("got ", written, " bytes of ", size)));
      }
      absl::Status closed = co_await (*file)->Close();
      if (!closed.ok()) co_return fail(closed);
      // Set-id bits are not carried: a peer must not make setuid programs.
      if (::chmod(partial.path.c_str(), mode & 0777) != 0) co_return fail(Errno(errno, "chmod"));
      struct timespec times[2];
      times[0].tv_sec = times[1].tv_sec = mtime_ns / 1'000'000'000;
      times[0].tv_nsec = times[1].tv_nsec = mtime_ns % 1'000'000'000;
      if (times[1].tv_nsec < 0) {  // before 1970: floor, not truncation
        times[0].tv_sec = --times[1].tv_sec;
        times[0].tv_nsec = times[1].tv_nsec += 1'000'000'000;
      }
      if (::utimensat(AT_FDCWD, partial.path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        co_return fail(Errno(errno, "utimensat"));
      }
      if (overwrite) {
        if (::rename(partial.path.c_str(), target.c_str()) != 0) co_return fail(Errno(errno, "rename"));
        partial.keep = true;
      } else {
        // link(2) fails if the name exists: a file made meanwhile is kept.
        if (::link(partial.path.c_str(), target.c_str()) != 0) {
          const int err = errno;
          co_return fail(err == EEXIST ? absl::AlreadyExistsError(absl::StrCat("'", rel_path, "' exists"))
                                       : Errno(err, "link"));
        }
      }
      ++self->received;
      PICOS_LOG(info, "files: received '{}' ({} bytes) from {}", rel_path, size, sender.DebugString());
      (void)sender.Send(Ok(Value::Map({{"path", rel_path}})));
      co_return absl::OkStatus();  // `partial` unlinks the temporary name, when linked
    }
    int64_t n = -1;
    std::string data;
    const Value* bytes = msg->Find("data");
    if (!MessageReader(*msg).Get("seq", &n).ok() || bytes == nullptr || !bytes->is_bytes()) {
      co_return fail(absl::InvalidArgumentError("malformed chunk"));
    }
    if (n != seq) co_return fail(absl::InvalidArgumentError(absl::StrCat("chunk ", n, " where ", seq, " was due")));
    data = bytes->as_string();  // the octets of the bytes
    if (data.size() > self->options.max_chunk_size) {
      co_return fail(absl::InvalidArgumentError(
          absl::StrCat("chunk of ", data.size(), " bytes (max_chunk_size ", self->options.max_chunk_size, ")")));
    }
    if (data.size() > size - written) {
      co_return fail(absl::InvalidArgumentError(absl::StrCat("more than the ", size, " bytes announced")));
    }
    written += data.size();
    absl::Status w = co_await (*file)->Write(std::move(data));
    if (!w.ok()) co_return fail(w);
    PICOS_CO_RETURN_IF_ERROR(sender.Send(Ok(Value::Map({{"ack", seq}}))));
    ++seq;
  }
}

absl::StatusOr<std::unique_ptr<FileReceiver>> FileReceiver::Enable(FileReceiverOptions options) {
  if (options.max_file_size == 0 || options.max_chunk_size == 0 || options.max_transfers == 0) {
    return absl::InvalidArgumentError("FileReceiverOptions: a bound of 0");
  }
  char resolved[PATH_MAX];
  if (options.dir.empty() || ::realpath(options.dir.c_str(), resolved) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("no directory '", options.dir, "'"));
  }
  struct stat st;
  if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("'", options.dir, "' is not a directory"));
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::string(resolved));
  absl::StatusOr<TaskRef> listener = impl->tasks.SpawnNamed("picos.files", &Impl::Listen, impl.get());
  if (!listener.ok()) return listener.status();
  impl->listener = *listener;
  absl::Status registered = RegisterTask(kFileReceiverName, impl->listener);
  if (!registered.ok()) return registered;
  return std::unique_ptr<FileReceiver>(new FileReceiver(std::move(impl)));
}

FileReceiver::FileReceiver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FileReceiver::~FileReceiver() { (void)UnregisterTask(kFileReceiverName); }

const std::string& FileReceiver::dir() const { return impl_->root; }
size_t FileReceiver::files_received() const { return impl_->received; }
size_t FileReceiver::transfers_failed() const { return impl_->failed; }

namespace {

// The sender's side, in a task of its own (its mailbox holds only the
// receiver's replies).
Task<absl::Status> SendTask(Location location, std::string path, SendFileOptions options) {
  if (options.chunk_size == 0 || options.chunk_size > kMaxChunkSize) {
    co_return absl::InvalidArgumentError(absl::StrCat("chunk_size ", options.chunk_size, " is outside 1..", kMaxChunkSize));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) co_return Errno(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode)) co_return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  const std::string name = path.substr(path.find_last_of('/') + 1);
  PICOS_CO_RETURN_IF_ERROR(CheckName(name));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;

  absl::StatusOr<std::unique_ptr<File>> file = co_await File::Open(path, O_RDONLY | O_CLOEXEC);
  if (!file.ok()) co_return file.status();
  absl::StatusOr<TaskRef> receiver = co_await LocateTask(kFileReceiverName, location, options.timeout);
  if (!receiver.ok()) co_return receiver.status();
  PICOS_CO_RETURN_IF_ERROR(receiver->Send(Value::Map({{"reply", Self()},
                                                      {"name", name},
                                                      {"dir", options.dir},
                                                      {"size", static_cast<int64_t>(size)},
                                                      {"mode", static_cast<int64_t>(st.st_mode & 07777)},
                                                      {"mtime_ns", mtime_ns},
                                                      {"overwrite", options.overwrite}})));
  absl::StatusOr<Value> ready = ReplyOf(co_await Receive(options.timeout));
  if (!ready.ok()) co_return ready.status();
  TaskRef to;
  PICOS_CO_RETURN_IF_ERROR(MessageReader(*ready).Get("to", &to).status());
  // A transfer task that ends, or whose peer is lost, says so at once
  // rather than after `timeout`.
  PICOS_CO_RETURN_IF_ERROR(Monitor(Self(), to));

  // From here on a local failure tells the transfer task, which then
  // removes its temporary file at once instead of after its idle_timeout.
  auto give_up = [&to](absl::Status s) {
    (void)to.Send(Value::Map({{"abort", std::string(s.message())}}));
    return s;
  };
  uint64_t sent = 0;
  int64_t seq = 0;
  while (sent < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(options.chunk_size, size - sent));
    absl::StatusOr<std::string> data = co_await (*file)->Read(want);
    if (!data.ok()) co_return give_up(data.status());
    if (data->empty()) co_return give_up(absl::DataLossError(absl::StrCat(path, " shrank while being sent")));
    sent += data->size();
    absl::Status pushed = to.Send(Value::Map({{"seq", seq}, {"data", Value::Bytes(*std::move(data))}}));
    if (!pushed.ok()) co_return give_up(pushed);
    // One chunk in flight: the acknowledgement is the flow control.
    absl::StatusOr<Value> ack = ReplyOf(co_await Receive(options.timeout));
    if (!ack.ok()) co_return give_up(ack.status());
    int64_t acked = -1;
    if (!MessageReader(*ack).Get("ack", &acked).ok() || acked != seq) {
      co_return give_up(absl::DataLossError(absl::StrCat("chunk ", seq, " acknowledged as ", ack->DebugString())));
    }
    ++seq;
  }
  PICOS_CO_RETURN_IF_ERROR(to.Send(Value::Map({{"end", seq}})));
  absl::StatusOr<Value> done = ReplyOf(co_await Receive(options.timeout));
  co_return done.status();
}

}  // namespace

Task<absl::Status> SendFile(Location location, std::string path, SendFileOptions options) {
  TaskRef t = ThisScheduler().SpawnNamed("picos.files.send", SendTask, std::move(location), std::move(path),
                                         std::move(options));
  absl::StatusOr<Value> r = co_await t.Join();
  // The caller was terminated: the transfer ends with it (it tells the
  // receiver, whose monitor of it fires).
  if (!t.done()) (void)t.Terminate();
  co_return r.status();
}

}  // namespace picos::remote
