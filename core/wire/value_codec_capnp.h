// Adapter between picos::Value and its Cap'n Proto form, for code that
// already holds capnp builders and readers (the RPC layer). Everyone else
// uses core/wire/value_codec.h, which speaks bytes.
//
//   capnp::MallocMessageBuilder message;
//   absl::Status s = picos::BuildValue(v, message.initRoot<picos::wire::Value>());
//   ...
//   absl::StatusOr<picos::Value> back = picos::ReadValue(reader.getRoot<picos::wire::Value>());
//
// The limits of CodecOptions apply as in value_codec.h; in addition, a
// reader is bounded by the capnp::ReaderOptions of the message it came from
// (its traversal and nesting limits), which the caller sets. Both functions
// catch kj::Exception and report it as a status: nothing is thrown. Thread
// safety as in value_codec.h.
#ifndef PICOS_CORE_WIRE_VALUE_CODEC_CAPNP_H_
#define PICOS_CORE_WIRE_VALUE_CODEC_CAPNP_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/wire/value.capnp.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec.h"

namespace picos {

// Writes `value` into `builder` (a fresh struct). On error the builder holds
// a partial value and should be discarded.
absl::Status BuildValue(const Value& value, wire::Value::Builder builder,
                        const CodecOptions& options = {});

// Reads a Value, checking the limits of `options` as it goes.
absl::StatusOr<Value> ReadValue(wire::Value::Reader reader, const CodecOptions& options = {});

// The capnp nesting limit (capnp::ReaderOptions::nestingLimit) that lets a
// message of `max_depth` Value levels through: a map level is three pointer
// hops (Value -> entry list -> entry -> Value).
int CapnpNestingLimitFor(int max_depth);

}  // namespace picos

#endif  // PICOS_CORE_WIRE_VALUE_CODEC_CAPNP_H_
