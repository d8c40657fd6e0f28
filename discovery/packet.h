// Discovery announcements on the wire (packet.capnp has the layout): encode
// one under the shared secret, and decode one from bytes anyone may have
// sent, refusing it before anything beyond its 12-byte fixed header is
// parsed unless its HMAC-SHA256 matches. ReplayGuard then refuses a packet
// whose timestamp is outside the replay window or whose nonce was seen.
//
//   picos::discovery::Announcement a;
//   a.process_id = picos::ProcessId(); a.name = "worker"; a.uris = node->uris();
//   absl::StatusOr<std::string> bytes = picos::discovery::EncodeAnnouncement(a, secret, absl::Now());
//   ...
//   picos::discovery::Refusal why;
//   absl::StatusOr<picos::discovery::Announcement> heard =
//       picos::discovery::DecodeAnnouncement(datagram.data, secret, &why);
//   if (heard.ok()) why = guard.Check(*heard, absl::Now());   // kNone: accept it
//
// Threads: any; the functions are pure, a ReplayGuard is not thread-safe.
#ifndef PICOS_DISCOVERY_PACKET_H_
#define PICOS_DISCOVERY_PACKET_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace picos::discovery {

// Bounds of packet.capnp, for code that builds announcements.
inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMacSize = 32;
inline constexpr size_t kNonceSize = 16;
size_t MaxPacketSize();  // packet.capnp maxPacketBytes
size_t MaxUris();
size_t MaxUriSize();
size_t MaxNameSize();

// What an announcement says.
struct Announcement {
  enum class Kind { kHello, kGoodbye };
  Kind kind = Kind::kHello;
  std::string process_id;  // kProcessIdSize (16) bytes
  std::string name;
  std::vector<std::string> uris;
  uint32_t protocol_version = 0;  // 0 in EncodeAnnouncement: this build's
  int64_t timestamp_ms = 0;       // set by EncodeAnnouncement
  std::string nonce;              // set by EncodeAnnouncement
};

// Why a datagram was refused: what Discovery counts, and names in its log.
enum class Refusal {
  kNone = 0,
  kSize,             // shorter than header + MAC, or over MaxPacketSize()
  kMagic,            // not "PICOSDSC": not a picos discovery packet
  kFormat,           // another formatVersion
  kLength,           // the header's body length does not match the datagram
  kMac,              // wrong HMAC: another secret, or altered on the way
  kMalformed,        // authenticated, but the body does not decode or is out of bounds
  kStale,            // timestamp outside the replay window
  kReplay,           // nonce seen already within the window
  kReplayCacheFull,  // more fresh nonces than the cache holds
  kCount,            // (number of values)
};
inline constexpr size_t kRefusalCount = static_cast<size_t>(Refusal::kCount);

// A short lowercase name ("bad mac", "replay", ...), for logs and counters.
const char* RefusalName(Refusal r);

// The datagram for `a` under `secret`, stamped with `now` (Unix ms) and a
// fresh random nonce (or a.nonce when it has kNonceSize bytes, for tests).
// kInvalidArgument when a field is out of the schema's bounds (a process id
// of the wrong size, too many or too long URIs, a long name) or the packet
// would exceed MaxPacketSize(); kInternal when no random bytes are to be had.
absl::StatusOr<std::string> EncodeAnnouncement(Announcement a, std::string_view secret, absl::Time now);

// Decodes a datagram from anyone. Checks, in order: size, magic, format,
// length, MAC (constant time); only then decodes the body, read with a
// traversal limit of its own size, and checks every field's bounds.
// kInvalidArgument ("<refusal name>: detail") or kUnauthenticated (bad
// MAC), with *refusal (when not null) set to the cause, kNone on success.
// Does not check time or nonce: ReplayGuard does.
absl::StatusOr<Announcement> DecodeAnnouncement(std::string_view datagram, std::string_view secret,
                                                Refusal* refusal = nullptr);

// Refuses replayed announcements: one whose timestamp is more than `window`
// away from the receiver's clock (either way: clocks of hosts differ a
// little), or whose nonce was accepted before. Remembers each accepted
// nonce until it is older than twice the window (by then its packet is
// stale anyway), and at most `capacity` of them: past that, new packets are
// refused (kReplayCacheFull) rather than old nonces forgotten early, which
// would reopen a replay. Only authenticated packets reach it, so only a
// holder of the secret can fill it.
class ReplayGuard {
 public:
  explicit ReplayGuard(absl::Duration window = absl::Seconds(30), size_t capacity = 4096);

  // kNone and the nonce remembered, or why `a` is refused at `now`.
  Refusal Check(const Announcement& a, absl::Time now);

  size_t size() const { return seen_.size(); }

 private:
  void Expire(absl::Time now);

  const absl::Duration window_;
  const size_t capacity_;
  absl::flat_hash_set<std::string> seen_;
  std::deque<std::pair<absl::Time, std::string>> order_;  // by time accepted
};

}  // namespace picos::discovery

#endif  // PICOS_DISCOVERY_PACKET_H_
