// Values over a byte stream: each Value is encoded by the codec
// (core/wire/value_codec.h) and travels as one length-prefixed message
// (core/io/framing.h). The easy way to talk Values over a socket, a pipe to
// a child process or a file.
//
//   // Client
//   PICOS_CO_RETURN_IF_ERROR(co_await picos::WriteValue(
//       sock, picos::Value::Map({{"op", "add"}, {"args", picos::Value::List({1, 2})}})));
//   // Server
//   PICOS_CO_ASSIGN_OR_RETURN(std::optional<picos::Value> request,
//                             co_await picos::ReadValue(conn.reader(), absl::Seconds(30)));
//   if (!request) co_return absl::OkStatus();  // the client closed the connection
//
// Bounds: CodecOptions::max_encoded_size is also the longest message either
// side sends or accepts, checked against a message's header before its
// bytes are read; the codec's other limits bound the decoding. Handles
// (TaskRef, ChannelRef) travel as identities through options.handle_codec:
// with the default codec a handle of another process decodes as
// kUnimplemented until the remote layer provides peers.
//
// Threads and tasks as in core/io/io.h: from a task of the scheduler that
// owns the stream; each call suspends the task. Errors: those of
// WriteMessage / ReadMessage (kResourceExhausted for an oversize message,
// kDataLoss for a truncated one, kDeadlineExceeded with nothing consumed),
// and the codec's (kInvalidArgument for bytes that are not a Value). A
// message that does not decode is consumed: the next one can be read.
#ifndef PICOS_CORE_WIRE_VALUE_STREAM_H_
#define PICOS_CORE_WIRE_VALUE_STREAM_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec.h"

namespace picos {

// Encodes `value` and writes it as one message. kResourceExhausted (nothing
// written) when it encodes to more than options.max_encoded_size or breaks
// another limit of `options`. Suspends.
Task<absl::Status> WriteValue(Writer& out, Value value,
                              absl::Duration timeout = absl::InfiniteDuration(),
                              CodecOptions options = {});

// The next Value, or std::nullopt when the stream ended cleanly between two
// messages. Suspends until a whole message has arrived.
Task<absl::StatusOr<std::optional<Value>>> ReadValue(
    BufferedReader& in, absl::Duration timeout = absl::InfiniteDuration(),
    CodecOptions options = {});

}  // namespace picos

#endif  // PICOS_CORE_WIRE_VALUE_STREAM_H_
