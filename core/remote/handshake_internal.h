// The decoders behind Handshake (handshake.h), for the fuzz target
// (testing/fuzz/handshake_fuzz.cc) and nothing else: each takes bytes
// exactly as they came from a peer and either refuses them with the error
// Handshake gives or returns what the peer claims. Bounded: a length claim
// is checked before anything is allocated for it, and a message is read
// with a traversal limit of its own size.
//
//   absl::StatusOr<uint32_t> n = picos::internal::HandshakeMessageLength(header, "Hello");
//   absl::StatusOr<picos::internal::PeerHello> hello =
//       picos::internal::DecodeHello(body, picos::remote::ProtocolVersion());
//
// Threads: any; pure functions.
#ifndef PICOS_CORE_REMOTE_HANDSHAKE_INTERNAL_H_
#define PICOS_CORE_REMOTE_HANDSHAKE_INTERNAL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace picos::internal {

// Bytes of a handshake message's length header (big-endian).
inline constexpr size_t kHandshakeHeaderSize = 4;

// The body length a 4-byte header announces, if a handshake message may
// have it (8 to maxHandshakeMessageBytes, a multiple of 8); else
// kInvalidArgument "not a picos peer: ...". `what` names the message.
absl::StatusOr<uint32_t> HandshakeMessageLength(std::string_view header, const char* what);

// What a peer's Hello says.
struct PeerHello {
  std::string process_id;  // kProcessIdSize bytes
  std::string nonce;       // 32 bytes
  std::vector<std::string> uris;
  std::string name;
};

// Decodes a Hello body; kInvalidArgument for garbage (a body of a length
// HandshakeMessageLength refuses included), kFailedPrecondition for a
// version other than `version`.
absl::StatusOr<PeerHello> DecodeHello(std::string_view body, uint32_t version);

// The MAC of a Proof body (any length: the caller compares it).
absl::StatusOr<std::string> DecodeProof(std::string_view body);

// OK for a Verdict that accepts; kUnauthenticated ("secret mismatch") or
// kUnavailable for one that refuses; kInvalidArgument for garbage.
absl::Status DecodeVerdict(std::string_view body);

}  // namespace picos::internal

#endif  // PICOS_CORE_REMOTE_HANDSHAKE_INTERNAL_H_
