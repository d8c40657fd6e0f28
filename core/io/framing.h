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
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/io.h"
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

}  // namespace picos

#endif  // PICOS_CORE_IO_FRAMING_H_
