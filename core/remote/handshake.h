// The handshake that opens every connection between two picos peers
// (core/remote/protocol.capnp has the exchange, step by step): a protocol
// version check, then a mutual HMAC-SHA256 challenge-response over fresh
// nonces under a shared secret. Nothing else is decoded from a connection
// until it succeeds. core/remote/node.h runs it on every stream it connects
// or accepts; tests run it on a bare stream.
//
//   picos::remote::HandshakeOptions o{.secret = *secret, .role = picos::remote::Role::kConnector};
//   absl::StatusOr<picos::remote::HandshakeResult> peer =
//       co_await picos::remote::Handshake(*stream, o);
//
// Bounded: at most three messages of protocol.capnp's maxHandshakeMessageBytes each are
// read, and the whole exchange must finish within `timeout` of the
// scheduler's clock (a VirtualClock's in simulations, core/kernel/clock.h).
//
// Errors, each naming its cause in its message (a log line built from it
// says "secret mismatch" only when that is the cause):
//   kUnauthenticated    "secret mismatch": the peer's proof is wrong, or the
//                       peer refused ours (its Verdict said so).
//   kFailedPrecondition "protocol version mismatch: ...", or a connection to
//                       this very process.
//   kInvalidArgument    "not a picos peer: ...": wrong magic, undecodable
//                       message, a length claim over the bound.
//   kUnavailable        the connection ended during the handshake
//                       (truncated), or the peer refused for another reason.
//   kDeadlineExceeded   `timeout` passed first.
//   kCancelled          the task was terminated.
//
// Threads: a task of the stream's scheduler. Suspends.
#ifndef PICOS_CORE_REMOTE_HANDSHAKE_H_
#define PICOS_CORE_REMOTE_HANDSHAKE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/stream.h"
#include "core/kernel/task.h"

namespace picos::remote {

// The protocol version this build speaks (protocol.capnp, protocolVersion).
uint32_t ProtocolVersion();

// Fewest bytes a shared secret may have.
inline constexpr size_t kMinSecretSize = 16;
// Most bytes a shared secret may have.
inline constexpr size_t kMaxSecretSize = 4096;

// OK for a usable secret: kMinSecretSize to kMaxSecretSize bytes, not all
// one byte. kInvalidArgument saying what is wrong (never quoting it).
absl::Status ValidateSecret(const std::string& secret);

// Which end of the connection this side is: proofs are bound to it, so a
// proof cannot be reflected back to its sender.
enum class Role : uint8_t { kConnector, kAcceptor };

struct HandshakeOptions {
  // The shared secret (ValidateSecret). Required: there is no default.
  std::string secret;
  Role role = Role::kConnector;
  // Bounds the whole exchange.
  absl::Duration timeout = absl::Seconds(10);
  // Sent in Hello: where this process listens, and its name.
  std::vector<std::string> uris;
  std::string name;
  // For tests: the version and process id this side claims (defaults:
  // ProtocolVersion(), picos::ProcessId()).
  uint32_t version = 0;
  std::string process_id;
};

// What the handshake learnt about the peer.
struct HandshakeResult {
  std::string process_id;         // kProcessIdSize bytes
  std::vector<std::string> uris;  // where it listens (may be empty)
  std::string name;
};

// Runs the handshake on `stream` (freshly connected or accepted; nothing read
// from it yet). On error the stream is left open for the caller to close.
Task<absl::StatusOr<HandshakeResult>> Handshake(Stream& stream, HandshakeOptions options);

}  // namespace picos::remote

#endif  // PICOS_CORE_REMOTE_HANDSHAKE_H_
