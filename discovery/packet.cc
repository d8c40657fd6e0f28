#include "discovery/packet.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/remote/handshake.h"
#include "core/wire/value_codec.h"
#include "discovery/packet.capnp.h"

namespace picos::discovery {
namespace {

namespace pk = ::picos::discovery::packet;

constexpr size_t kMagicSize = 8;

std::string Hmac(std::string_view secret, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), secret.data(), secret.size(), reinterpret_cast<const uint8_t*>(data.data()), data.size(),
       out, &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

uint16_t ReadU16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) | static_cast<uint8_t>(b[at + 1]));
}

void AppendU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

absl::Status Refuse(Refusal r, Refusal* out, std::string detail) {
  if (out != nullptr) *out = r;
  std::string message = absl::StrCat(RefusalName(r), ": ", detail);
  return r == Refusal::kMac ? absl::UnauthenticatedError(message) : absl::InvalidArgumentError(message);
}

// The fields' bounds, for both directions: what Encode refuses to write is
// what Decode refuses to accept.
absl::Status CheckFields(const Announcement& a) {
  if (a.process_id.size() != kProcessIdSize) {
    return absl::InvalidArgumentError(absl::StrCat("a process id has ", kProcessIdSize, " bytes, not ",
                                                   a.process_id.size()));
  }
  if (a.name.size() > pk::MAX_NAME_BYTES) {
    return absl::InvalidArgumentError(absl::StrCat("a name of ", a.name.size(), " bytes (at most ",
                                                   pk::MAX_NAME_BYTES, ")"));
  }
  if (a.uris.size() > pk::MAX_URIS) {
    return absl::InvalidArgumentError(absl::StrCat(a.uris.size(), " URIs (at most ", pk::MAX_URIS, ")"));
  }
  for (const std::string& u : a.uris) {
    if (u.empty() || u.size() > pk::MAX_URI_BYTES) {
      return absl::InvalidArgumentError(absl::StrCat("a URI of ", u.size(), " bytes (1 to ", pk::MAX_URI_BYTES,
                                                     ")"));
    }
  }
  if (a.nonce.size() != kNonceSize) {
    return absl::InvalidArgumentError(absl::StrCat("a nonce of ", a.nonce.size(), " bytes, not ", kNonceSize));
  }
  return absl::OkStatus();
}

}  // namespace

size_t MaxPacketSize() { return pk::MAX_PACKET_BYTES; }
size_t MaxUris() { return pk::MAX_URIS; }
size_t MaxUriSize() { return pk::MAX_URI_BYTES; }
size_t MaxNameSize() { return pk::MAX_NAME_BYTES; }

const char* RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "accepted";
    case Refusal::kSize:
      return "bad size";
    case Refusal::kMagic:
      return "not a discovery packet";
    case Refusal::kFormat:
      return "other format version";
    case Refusal::kLength:
      return "bad length";
    case Refusal::kMac:
      return "bad mac";
    case Refusal::kMalformed:
      return "malformed";
    case Refusal::kStale:
      return "stale";
    case Refusal::kReplay:
      return "replay";
    case Refusal::kReplayCacheFull:
      return "replay cache full";
    case Refusal::kCount:
      break;
  }
  return "?";
}

absl::StatusOr<std::string> EncodeAnnouncement(Announcement a, std::string_view secret, absl::Time now) {
  if (a.nonce.size() != kNonceSize) {
    a.nonce.assign(kNonceSize, '\0');
    if (RAND_bytes(reinterpret_cast<uint8_t*>(a.nonce.data()), a.nonce.size()) != 1) {
      return absl::InternalError("RAND_bytes failed: no nonce for an announcement");
    }
  }
  if (a.protocol_version == 0) a.protocol_version = remote::ProtocolVersion();
  a.timestamp_ms = absl::ToUnixMillis(now);
  if (absl::Status s = CheckFields(a); !s.ok()) return s;

  capnp::MallocMessageBuilder message;
  pk::Announcement::Builder b = message.initRoot<pk::Announcement>();
  b.setKind(a.kind == Announcement::Kind::kGoodbye ? pk::Announcement::Kind::GOODBYE
                                                   : pk::Announcement::Kind::HELLO);
  b.setProcessId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(a.process_id.data()), a.process_id.size()));
  b.setName(capnp::Text::Reader(a.name.data(), a.name.size()));
  capnp::List<capnp::Text>::Builder uris = b.initUris(a.uris.size());
  for (size_t i = 0; i < a.uris.size(); ++i) uris.set(i, capnp::Text::Reader(a.uris[i].data(), a.uris[i].size()));
  b.setProtocolVersion(a.protocol_version);
  b.setTimestampMs(a.timestamp_ms);
  b.setNonce(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(a.nonce.data()), a.nonce.size()));
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> body = words.asBytes();
  if (body.size() > pk::MAX_BODY_BYTES) {
    return absl::InvalidArgumentError(absl::StrCat("an announcement of ", body.size(), " bytes (at most ",
                                                   pk::MAX_BODY_BYTES, "): fewer or shorter URIs"));
  }
  std::string out(pk::MAGIC.get().cStr(), kMagicSize);
  AppendU16(out, pk::FORMAT_VERSION);
  AppendU16(out, static_cast<uint16_t>(body.size()));
  out.append(reinterpret_cast<const char*>(body.begin()), body.size());
  out += Hmac(secret, out);
  return out;
}

absl::StatusOr<Announcement> DecodeAnnouncement(std::string_view d, std::string_view secret, Refusal* refusal) {
  if (refusal != nullptr) *refusal = Refusal::kNone;
  // The fixed header: nothing here is trusted, each field only bounds a check.
  if (d.size() < kHeaderSize + 8 + kMacSize || d.size() > pk::MAX_PACKET_BYTES) {
    return Refuse(Refusal::kSize, refusal, absl::StrCat(d.size(), " bytes"));
  }
  if (std::memcmp(d.data(), pk::MAGIC.get().cStr(), kMagicSize) != 0) {
    return Refuse(Refusal::kMagic, refusal, "wrong magic");
  }
  if (const uint16_t v = ReadU16(d, kMagicSize); v != pk::FORMAT_VERSION) {
    return Refuse(Refusal::kFormat, refusal, absl::StrCat("format ", v, ", this build reads ", pk::FORMAT_VERSION));
  }
  const size_t n = ReadU16(d, kMagicSize + 2);
  if (n % sizeof(capnp::word) != 0 || kHeaderSize + n + kMacSize != d.size()) {
    return Refuse(Refusal::kLength, refusal, absl::StrCat("a body of ", n, " bytes in ", d.size()));
  }
  const std::string expected = Hmac(secret, d.substr(0, kHeaderSize + n));
  if (expected.size() != kMacSize ||
      CRYPTO_memcmp(expected.data(), d.data() + kHeaderSize + n, kMacSize) != 0) {
    return Refuse(Refusal::kMac, refusal, "another secret, or altered");
  }

  // Authenticated: the body is from a holder of the secret, but still
  // checked as input (a bug or an older build may send anything).
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(n / sizeof(capnp::word));
  std::memcpy(words.begin(), d.data() + kHeaderSize, n);
  capnp::ReaderOptions limits;
  limits.traversalLimitInWords = n / sizeof(capnp::word) + 1;
  limits.nestingLimit = 4;
  Announcement a;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), limits);
    pk::Announcement::Reader r = reader.getRoot<pk::Announcement>();
    switch (r.getKind()) {
      case pk::Announcement::Kind::HELLO:
        a.kind = Announcement::Kind::kHello;
        break;
      case pk::Announcement::Kind::GOODBYE:
        a.kind = Announcement::Kind::kGoodbye;
        break;
      default:
        return Refuse(Refusal::kMalformed, refusal, "unknown kind");
    }
    capnp::Data::Reader pid = r.getProcessId();
    a.process_id.assign(reinterpret_cast<const char*>(pid.begin()), pid.size());
    capnp::Text::Reader name = r.getName();
    a.name.assign(name.begin(), name.size());
    capnp::List<capnp::Text>::Reader uris = r.getUris();
    if (uris.size() > pk::MAX_URIS) {
      return Refuse(Refusal::kMalformed, refusal, absl::StrCat(uris.size(), " URIs"));
    }
    for (capnp::Text::Reader u : uris) a.uris.emplace_back(u.begin(), u.size());
    a.protocol_version = r.getProtocolVersion();
    a.timestamp_ms = r.getTimestampMs();
    capnp::Data::Reader nonce = r.getNonce();
    a.nonce.assign(reinterpret_cast<const char*>(nonce.begin()), nonce.size());
  } catch (const kj::Exception& e) {
    return Refuse(Refusal::kMalformed, refusal, absl::StrCat("does not decode (", e.getDescription().cStr(), ")"));
  }
  if (absl::Status s = CheckFields(a); !s.ok()) return Refuse(Refusal::kMalformed, refusal, std::string(s.message()));
  return a;
}

ReplayGuard::ReplayGuard(absl::Duration window, size_t capacity) : window_(window), capacity_(capacity) {}

void ReplayGuard::Expire(absl::Time now) {
  while (!order_.empty() && now - order_.front().first > 2 * window_) {
    seen_.erase(order_.front().second);
    order_.pop_front();
  }
}

Refusal ReplayGuard::Check(const Announcement& a, absl::Time now) {
  const absl::Time stamped = absl::FromUnixMillis(a.timestamp_ms);
  if (absl::AbsDuration(now - stamped) > window_) return Refusal::kStale;
  Expire(now);
  // The sender's id and nonce: two senders never need to agree on nonces.
  std::string key = a.process_id + a.nonce;
  if (seen_.contains(key)) return Refusal::kReplay;
  if (seen_.size() >= capacity_) return Refusal::kReplayCacheFull;
  seen_.insert(key);
  order_.emplace_back(now, std::move(key));
  return Refusal::kNone;
}

}  // namespace picos::discovery
