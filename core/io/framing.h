// Messages on a byte stream (pycos's send_msg / recv_msg): each message is
// a 4-byte big-endian length followed by that many bytes. Works on every
// Writer and on a BufferedReader over every Reader: sockets, a child
// process's pipes, files.
//
//   PICOS_CO_RETURN_IF_ERROR(co_await picos::WriteMessage(stream, "hello"));
//
//   picos::BufferedReader in(&stream);
//   PICOS_CO_ASSIGN_OR_RETURN(std::optional<std::string> msg,
//                             co_await picos::ReadMessage(in, absl::Seconds(5)));
//   if (!msg) { /* the peer ended the stream between two messages */ }
//
// transports/socket.h offers the same as Socket::WriteMessage and
// Socket::ReadMessage; core/wire/value_stream.h sends Values this way.
//
// What comes from the peer is input: the length is checked against
// FramingOptions::max_message_size before anything is allocated for the
// payload, and a message is handed out only once all of it has arrived.
//
// Threads and tasks as in core/io/io.h: call from a task of the scheduler
// that owns the stream; each call suspends the task; one task at a time
// reads and one writes.
//
// Errors: kResourceExhausted for a message longer than the limit (on either
// side); kDataLoss when the stream ends inside a message; kDeadlineExceeded
// when `timeout` passes, in which case nothing was consumed and the call
// can be repeated; and the stream's own errors (kUnavailable, kCancelled,
// ...). After any error but kDeadlineExceeded the framing is lost: close the
// stream.
#ifndef PICOS_CORE_IO_FRAMING_H_
#define PICOS_CORE_IO_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/io/stream.h"
#include "core/kernel/task.h"

namespace picos {

// Bytes before each message's payload: its length, big-endian.
inline constexpr size_t kFrameHeaderSize = 4;

// The longest payload a 4-byte header can announce.
inline constexpr size_t kMaxFramePayload = UINT32_MAX;

struct FramingOptions {
  // The longest payload sent or accepted, at most kMaxFramePayload. A reader
  // holds up to this much per stream while a message arrives: keep it as
  // small as the protocol allows when peers are not trusted.
  size_t max_message_size = size_t{1} << 20;
};

// Writes `payload` as one message. kResourceExhausted (nothing written) if
// it is longer than options.max_message_size. Backpressure and errors as
// Writer::Write. Suspends.
Task<absl::Status> WriteMessage(Writer& out, std::string payload,
                                absl::Duration timeout = absl::InfiniteDuration(),
                                FramingOptions options = {});

// The next message's payload, or std::nullopt when the stream ended cleanly
// between two messages. Suspends until a whole message has arrived.
Task<absl::StatusOr<std::optional<std::string>>> ReadMessage(
    BufferedReader& in, absl::Duration timeout = absl::InfiniteDuration(),
    FramingOptions options = {});

// Reads messages as ReadMessage does, from a Stream, into one buffer of its
// own that it reuses: once the buffer has grown to the largest message met,
// a message costs no allocation and one copy (the stream's buffer to this
// one), where ReadMessage over a BufferedReader allocates and copies each
// chunk read and each message handed out. What a connection that carries
// a flood of messages wants (core/remote's reader).
//
//   picos::FrameReader in(stream.get(), options);
//   for (;;) {
//     PICOS_CO_ASSIGN_OR_RETURN(std::optional<std::string_view> m, co_await in.Next());
//     if (!m) break;  // the peer ended the stream between two messages
//     Use(*m);        // valid until the next call to Next
//   }
//
// Each payload starts at an address aligned to 8 bytes, so a Cap'n Proto
// message is read in place (core/wire/value_codec.h). The buffer grows,
// doubling, only to hold a whole message (checked against
// options.max_message_size first): never past the longest frame accepted;
// a buffer grown past 1 MiB is given back once it is empty again (a large
// message does not leave its size behind). Errors as ReadMessage;
// after kDeadlineExceeded nothing is lost (call Next again); after any
// other error the framing is lost: close the stream.
class FrameReader {
 public:
  // `source` must outlive the reader.
  explicit FrameReader(Stream* source, FramingOptions options = {});
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // The next message's payload, or std::nullopt when the stream ended
  // cleanly between two messages. Suspends until a whole message has
  // arrived.
  Task<absl::StatusOr<std::optional<std::string_view>>> Next(
      absl::Duration timeout = absl::InfiniteDuration());

  // Bytes held for messages not yet handed out (tests).
  size_t buffered() const { return tail_ - head_; }
  // Bytes of its buffer (tests).
  size_t capacity() const { return capacity_; }

 private:
  // Makes room for `need` bytes from head_ on: moves what is buffered to
  // the front, and grows the storage when that is not enough.
  void Reserve(size_t need);
  // Reads until `need` bytes are buffered from head_ on, or the stream
  // ends (then fewer are). One wake per message: the stream is asked for at
  // least what is missing, and given all the room there is.
  Task<absl::Status> Fill(size_t need, absl::Duration timeout);

  Stream* source_;
  size_t max_;
  // Storage in words, so that its start is 8-aligned; bytes [head_, tail_)
  // are buffered and not handed out.
  std::unique_ptr<uint64_t[]> storage_;
  size_t capacity_ = 0;  // bytes
  size_t head_ = 0;
  size_t tail_ = 0;
  // Bytes the message handed out last still takes from head_ on (consumed
  // at the next call, so that its view stays valid until then).
  size_t pending_ = 0;
};

}  // namespace picos

#endif  // PICOS_CORE_IO_FRAMING_H_
