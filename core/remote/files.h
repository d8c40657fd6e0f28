// Sending files to peers (pycos's Pycos.send_file / dispycos's file
// transfer), over the remote layer's messages: a node that accepts files
// enables a FileReceiver on a destination directory; any peer then copies a
// file into it with SendFile.
//
//   // On the receiving peer (its scheduler has a Node listening):
//   picos::remote::FileReceiverOptions ro;
//   ro.dir = "/var/lib/app/incoming";
//   absl::StatusOr<std::unique_ptr<picos::remote::FileReceiver>> rx =
//       picos::remote::FileReceiver::Enable(ro);
//   // On the sending peer, in a task (options in a variable: g++ 12 and a
//   // braced list inside a co_await expression do not mix):
//   picos::remote::SendFileOptions o;
//   o.dir = "job7";
//   o.overwrite = true;
//   absl::Status sent = co_await picos::remote::SendFile(
//       picos::Location::Peer("tcp://10.0.0.2:9705"), "/tmp/data.bin", o);
//   // → /var/lib/app/incoming/job7/data.bin, with data.bin's mode and mtime
//
// How: the receiver registers a task named kFileReceiverName; SendFile
// locates it at the location, announces the file (name, size, mode, mtime,
// subdirectory, overwrite), and sends it in chunks of at most
// SendFileOptions::chunk_size bytes, each acknowledged before the next goes
// (flow control: one chunk in flight per transfer, so neither side buffers
// more than a chunk). Nothing in node.cc is specific to files.
//
// Guarantees, each tested (testing/remote_files_test.cc,
// testing/remote_files_admit_test.cc):
//  * Everything the receiver gets is network input. It refuses, with a
//    status the sender returns (the receiver's message, prefixed
//    "receiver: "): a name that is empty, ".", "..", or holds '/' or NUL;
//    a subdirectory that is absolute, holds a ".." component, or a
//    component that exists and is not a directory (a symlink inside the
//    destination cannot lead out of it); a size beyond max_file_size; a
//    chunk beyond max_chunk_size or past the announced size, or out of
//    order; an existing file when overwrite was not asked
//    (kAlreadyExists); more than max_transfers transfers at once
//    (kResourceExhausted); a file FileReceiverOptions::admit refuses (its
//    status), before anything is created.
//  * A file is written to a temporary file in its final directory and
//    renamed into place only once all of its bytes arrived: a broken
//    transfer (sender gone, a refusal, silence for idle_timeout, the
//    receiver destroyed) leaves nothing behind. Without overwrite the
//    final step cannot replace a file created meanwhile (link(2), not
//    rename(2)).
//  * The copy has the original's permission bits (mode & 0777: set-id bits
//    are not carried) and modification time (to the nanosecond where the
//    file systems keep it).
//
// Threads: a FileReceiver belongs to the scheduler of the task that enables
// it; destroy it on that thread before the scheduler ends. SendFile runs
// on the calling task's scheduler. Metadata calls (mkdir, lstat, link,
// rename, chmod, utimensat) are made directly from the scheduler's thread:
// they touch no file's data; reads and writes of data go through
// core/io/file.h (libuv's thread pool).
#ifndef PICOS_CORE_REMOTE_FILES_H_
#define PICOS_CORE_REMOTE_FILES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/task.h"

namespace picos::remote {

// The name under which a FileReceiver registers its task.
inline constexpr char kFileReceiverName[] = "picos.files";

struct FileReceiverOptions {
  // Where files land; must exist. A sender's subdirectories are created
  // under it.
  std::string dir;
  // Largest file accepted, in bytes.
  uint64_t max_file_size = uint64_t{1} << 30;
  // Largest chunk accepted, in bytes (SendFileOptions::chunk_size must not
  // exceed it).
  size_t max_chunk_size = size_t{4} << 20;
  // Transfers in progress at once; beyond it a new one is refused.
  size_t max_transfers = 16;
  // A transfer that hears nothing from its sender for this long is
  // abandoned (its temporary file removed).
  absl::Duration idle_timeout = absl::Seconds(60);
  // Called when a transfer is announced, after the checks above and before
  // anything is created or written, with the sender's subdirectory (its
  // components) and the file's name and size: a status other than OK
  // refuses the transfer with it (a quota: compute/node_daemon.h's
  // --max_computation_bytes). Runs on the receiver's scheduler, must not
  // block for long. Null: every transfer the checks allow.
  std::function<absl::Status(const std::vector<std::string>& dir, const std::string& name, uint64_t size)> admit;
};

class FileReceiver {
 public:
  // Registers kFileReceiverName on the calling task's scheduler (peers
  // locate it through the scheduler's Node). kInvalidArgument if
  // options.dir is not a directory or a bound is 0; kAlreadyExists if a
  // receiver is registered already. Does not suspend.
  static absl::StatusOr<std::unique_ptr<FileReceiver>> Enable(FileReceiverOptions options);

  // Unregisters the name and ends the transfers in progress, removing
  // their temporary files.
  ~FileReceiver();
  FileReceiver(const FileReceiver&) = delete;
  FileReceiver& operator=(const FileReceiver&) = delete;

  // The destination directory, as resolved (realpath).
  const std::string& dir() const;
  // Files received whole, and transfers refused or broken, so far.
  size_t files_received() const;
  size_t transfers_failed() const;

 private:
  struct Impl;
  explicit FileReceiver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct SendFileOptions {
  // Subdirectory of the receiver's directory to put the file in (relative,
  // '/'-separated, created when missing); empty for the directory itself.
  std::string dir;
  // Replace a file of the same name there; without it an existing file
  // is kAlreadyExists.
  bool overwrite = false;
  // Bounds each step: locating the receiver, and each acknowledgement.
  absl::Duration timeout = absl::Seconds(30);
  // Bytes per chunk (1 .. the receiver's max_chunk_size).
  size_t chunk_size = size_t{1} << 20;
};

// Copies the regular file at `path` (its last path component is the name
// it gets) to the FileReceiver at `location`. Suspends until the receiver
// has renamed the file into place, or fails: kNotFound (no file, or no
// receiver at the location), kInvalidArgument (not a regular file, a bad
// option), kDeadlineExceeded, kUnavailable (peer lost), or the receiver's
// refusal (see the header comment). Runs the transfer in a task of its
// own, so the caller's mailbox is left alone.
Task<absl::Status> SendFile(Location location, std::string path, SendFileOptions options = {});

}  // namespace picos::remote

#endif  // PICOS_CORE_REMOTE_FILES_H_
