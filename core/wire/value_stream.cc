#include "core/wire/value_stream.h"

#include <string>
#include <utility>

#include "core/io/framing.h"
#include "core/kernel/status.h"

namespace picos {

Task<absl::Status> WriteValue(Writer& out, Value value, absl::Duration timeout,
                              CodecOptions options) {
  PICOS_CO_ASSIGN_OR_RETURN(std::string bytes, EncodeValue(value, options));
  co_return co_await WriteMessage(out, std::move(bytes), timeout,
                                  FramingOptions{.max_message_size = options.max_encoded_size});
}

Task<absl::StatusOr<std::optional<Value>>> ReadValue(BufferedReader& in, absl::Duration timeout,
                                                     CodecOptions options) {
  PICOS_CO_ASSIGN_OR_RETURN(
      std::optional<std::string> bytes,
      co_await ReadMessage(in, timeout, FramingOptions{.max_message_size = options.max_encoded_size}));
  if (!bytes) co_return std::optional<Value>();
  PICOS_CO_ASSIGN_OR_RETURN(Value v, DecodeValue(*bytes, options));
  co_return std::optional<Value>(std::move(v));
}

}  // namespace picos
