// The wire encoding of picos::Value: Cap'n Proto (core/wire/value.capnp), with
// decoding bounded so that bytes from the network can neither crash the
// process nor make it allocate without limit.
//
//   absl::StatusOr<std::string> bytes = picos::EncodeValue(
//       Value::Map({{"op", "add"}, {"args", Value::List({1, 2})}}));
//   ...
//   absl::StatusOr<Value> v = picos::DecodeValue(*bytes);   // same Value
//
// The bytes are a standard Cap'n Proto flat message (segment table followed
// by the segments), so any Cap'n Proto implementation can read them with
// core/wire/value.capnp. The RPC layer, which holds capnp builders and readers,
// uses core/wire/value_codec_capnp.h instead.
//
// Handles (TaskRef, ChannelRef) travel as identities: the 16-byte id of the
// process that owns them plus the task's id or the channel's name. A
// HandleCodec turns handles into identities and back. The default,
// LocalHandleCodec(), resolves identities of this process to the same live
// handles and refuses those of other processes; the remote layer plugs in
// its own codec that knows peers.
//
// Wire rules a decoder enforces beyond Cap'n Proto's own: map keys are
// unique (an encoder writes them in ascending byte order); no bytes may
// follow the message; a handle's process id is kProcessIdSize bytes, except
// a null handle, which has an empty identity. Strings are kept as octets
// (UTF-8 is not checked) and may hold NUL bytes. Union tags this version
// does not know are malformed.
//
// Errors: kInvalidArgument for malformed input (truncated, garbage, a wrong
// field), kResourceExhausted when a CodecOptions limit is exceeded (on either
// side), kNotFound for a handle of this process that was never exported or
// ended and is no longer kept (LocalHandleCodec), kUnimplemented for a handle
// of another process with a codec that knows no peers. The message says
// which, and where.
//
// Thread safety: EncodeValue and DecodeValue may run on any thread at once,
// with one exception: encoding a task handle reads the task's id and name and
// registers a hook in its control block, which belongs to the task's
// scheduler thread. Encode task handles on that thread (what the remote
// layer does), or while that scheduler's loop is not running.
#ifndef PICOS_CORE_WIRE_VALUE_CODEC_H_
#define PICOS_CORE_WIRE_VALUE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"

namespace picos {

// What names a task on the wire.
struct TaskIdentity {
  std::string process_id;  // kProcessIdSize bytes
  uint64_t task_id = 0;    // TaskRef::id() in that process
  std::string name;        // the task's name when encoded; informative only
  // Proof, minted by the task's process, that whoever holds this identity
  // was given the handle (at most kMaxProofSize bytes). The local codec
  // leaves it empty; a layer that lets other processes address tasks mints
  // and checks it (core/remote/handle_proof_internal.h).
  std::string proof;
};

// What names a channel on the wire.
struct ChannelIdentity {
  std::string process_id;  // kProcessIdSize bytes
  std::string name;
  std::string proof;  // as TaskIdentity::proof
};

// Size of a process id in bytes.
inline constexpr size_t kProcessIdSize = 16;
// Most bytes of a handle's proof; a longer one is refused by the decoder.
inline constexpr size_t kMaxProofSize = 64;
// How many exported tasks that have ended LocalHandleCodec() keeps, the
// most recent ones, so that a peer's late Join or Monitor gets their result.
inline constexpr size_t kEndedTasksKept = 4096;

// The 16 random bytes that name this process on the wire, drawn once (from
// /dev/urandom, or Abseil's random generator if that cannot be read). Any
// thread.
const std::string& ProcessId();

// Turns handles into identities and back. Implementations must be safe to
// call from every thread that encodes or decodes with them. Null handles
// never reach a HandleCodec: the codec encodes them itself.
class HandleCodec {
 public:
  virtual ~HandleCodec() = default;

  // The identity of a live or ended task. Called by EncodeValue for every
  // task handle; see the thread rule at the top of this file.
  virtual absl::StatusOr<TaskIdentity> ExportTask(const TaskRef& task) = 0;

  // The handle an identity names. Its process id has kProcessIdSize bytes.
  virtual absl::StatusOr<TaskRef> ImportTask(const TaskIdentity& identity) = 0;

  virtual absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef& channel) = 0;
  virtual absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity& identity) = 0;
};

// The process-wide codec for handles of this process.
//
//  * A task handle exports as {ProcessId(), task.id(), task.name()}, and the
//    task is put in an export table. Importing an identity of this process
//    gives back the same TaskRef while the task lives, and after it ended
//    while it is among the kEndedTasksKept exported tasks that ended last
//    (a finish hook, on its scheduler thread, moves it there): a late Join
//    or Monitor from another process then gets its result, as a local one
//    would. An ended task beyond that bound, or one never exported, gives
//    kNotFound. The table keeps each task's control block (56 bytes) and,
//    once it ended, its result alive, never the task's frame: memory is
//    bounded by the live exported tasks plus kEndedTasksKept results.
//  * A channel exports as {ProcessId(), name}; the table holds a reference
//    and drops it once the table's is the last one (checked as the table
//    grows). Two live exported channels with the same name are ambiguous:
//    exporting the second gives kFailedPrecondition.
//  * An identity of another process gives kUnimplemented ("remote handles
//    need a peer").
//
// Thread-safe: the tables are guarded by a mutex. Never destroyed.
HandleCodec& LocalHandleCodec();
// LocalHandleCodec().ImportTask of {ProcessId(), task_id}: the exported
// task of this process with that id, without building an identity (a
// remote send names its receiver by id alone). Errors as ImportTask.
absl::StatusOr<TaskRef> ImportLocalTask(uint64_t task_id);

// Limits and plug-ins of the codec. The defaults suit messages between
// processes; raise them for bulk data.
struct CodecOptions {
  // Most bytes of an encoded message (both directions).
  size_t max_encoded_size = 64u << 20;
  // Deepest nesting of lists and maps: a scalar at the top is depth 1.
  int max_depth = 64;
  // Most Values in one message, counting containers, their items and map
  // keys' values (each a heap allocation when decoded).
  size_t max_elements = 1u << 20;
  // Longest string, bytes, map key or handle name, in bytes.
  size_t max_string_size = 32u << 20;
  // Turns handles into identities and back; null means LocalHandleCodec().
  HandleCodec* handle_codec = nullptr;
};

// Encodes `value` as a Cap'n Proto flat message. kResourceExhausted when it
// exceeds a limit of `options`; the HandleCodec's error for a handle it
// cannot export.
absl::StatusOr<std::string> EncodeValue(const Value& value, const CodecOptions& options = {});

// The same encoding, into `*out` (replacing what it held) and reusing its
// capacity: a caller that encodes often (a connection's writer) keeps one
// buffer warm instead of taking fresh pages from the kernel for every
// large message. `*out` is unspecified after an error.
absl::Status EncodeValueInto(const Value& value, const CodecOptions& options, std::string* out);

// One element of a list that EncodeListInto writes: `*value`, or, with
// n_uints > 0, the list [uints[0], ..., uints[n_uints - 1], *value] (a
// positional frame, what ListDecoder::DecodeUintsThenValue reads) without a
// Value list made for it. `value` must not be null.
struct ListItem {
  static constexpr size_t kMaxUints = 4;
  const Value* value = nullptr;
  uint64_t uints[kMaxUints] = {};
  uint8_t n_uints = 0;
};

// Encodes the list of `items` as EncodeValueInto encodes the Value list
// they describe (the same bytes, the same limits and errors): what a writer
// of many small frames wants (core/remote's writer), since it builds no
// Value for the batch nor for a frame's fixed fields.
absl::Status EncodeListInto(absl::Span<const ListItem> items, const CodecOptions& options, std::string* out);

// At least the bytes EncodeValue gives for `value`, counting no further than
// `stop` (the result is then above `stop`): handles are counted without
// their identities, and nothing is exported or checked. Cheap enough for a
// hot path that must refuse a surely oversized message at once (a remote
// peer's Send) rather than after encoding it.
size_t EncodedSizeAtLeast(const Value& value, size_t stop);

// Decodes bytes made by EncodeValue (or any writer of core/wire/value.capnp).
// Never crashes and allocates at most about `options.max_encoded_size` plus
// what the limits allow, whatever `bytes` hold; errors as described above.
absl::StatusOr<Value> DecodeValue(std::string_view bytes, const CodecOptions& options = {});

// Decodes a message whose top is a list (a batch of frames) one element at
// a time, and reads a positional element's leading unsigned integers in
// place: what a reader of many small frames wants (no Value
// for the batch, none for a frame's fixed fields; core/remote's reader).
//
//   PICOS_ASSIGN_OR_RETURN(ListDecoder batch, ListDecoder::Open(bytes, options));
//   for (size_t i = 0; i < batch.size(); ++i) {
//     uint64_t fields[4];
//     Value msg;
//     PICOS_ASSIGN_OR_RETURN(bool positional, batch.DecodeUintsThenValue(i, absl::MakeSpan(fields), &msg));
//     if (!positional) { PICOS_ASSIGN_OR_RETURN(Value frame, batch.Decode(i)); ... }
//   }
//
// The checks, limits and errors are DecodeValue's, over the whole message:
// Open makes DecodeValue's checks of the message as a whole (size,
// segments, that its top is a list: else kInvalidArgument), and what is
// decoded counts against max_elements as DecodeValue would count it. A
// malformed element fails when it is decoded, so the elements before it can
// be used. `bytes` must outlive the decoder.
class ListDecoder {
 public:
  static absl::StatusOr<ListDecoder> Open(std::string_view bytes, const CodecOptions& options = {});
  ListDecoder(ListDecoder&&) noexcept;
  ListDecoder& operator=(ListDecoder&&) noexcept;
  ~ListDecoder();

  // Elements of the list.
  size_t size() const;
  // Element i, decoded.
  absl::StatusOr<Value> Decode(size_t i);
  // When element i is a list of uints.size() + 1 items whose first
  // uints.size() (at most ListItem::kMaxUints) are unsigned integers (a
  // positional frame, as EncodeListInto writes it): fills `uints`,
  // decodes the last item into *last and gives true. Otherwise false, with
  // nothing decoded (Decode(i) then). Errors as Decode.
  absl::StatusOr<bool> DecodeUintsThenValue(size_t i, absl::Span<uint64_t> uints, Value* last);
  // The handle codec for the elements decoded from now on (a connection
  // whose session moved to another mid-batch).
  void set_handle_codec(HandleCodec* codec);

  struct Impl;

 private:
  explicit ListDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace picos

#endif  // PICOS_CORE_WIRE_VALUE_CODEC_H_
