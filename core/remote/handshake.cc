#include "core/remote/handshake.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/remote/handshake_internal.h"
#include "core/remote/protocol.capnp.h"
#include "core/wire/value_codec.h"

namespace picos::remote {

namespace {

constexpr size_t kNonceSize = 32;
constexpr size_t kMacSize = 32;
constexpr size_t kMaxUris = 16;
constexpr char kLabel[] = "picos-remote-v1";

std::string Flatten(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// The handshake's deadline, on the scheduler's clock (a VirtualClock in
// simulations), in nanoseconds.
using Deadline = int64_t;

// The remaining time before `deadline`, never negative.
absl::Duration Left(Deadline deadline) {
  return absl::Nanoseconds(std::max<int64_t>(deadline - ThisScheduler().NowNs(), 0));
}

absl::Status Truncated(const char* what) {
  return absl::UnavailableError(
      absl::StrCat("the connection ended during the handshake (truncated ", what, ")"));
}

// Writes one handshake message: its length, big-endian, then the bytes.
Task<absl::Status> WriteOne(Stream& stream, std::string body, Deadline deadline) {
  std::string out(4, '\0');
  const uint32_t n = static_cast<uint32_t>(body.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out += body;
  co_return co_await stream.Write(std::move(out), Left(deadline));
}

// Reads exactly `n` bytes (never more: what follows the handshake stays in
// the stream for whoever reads next).
Task<absl::StatusOr<std::string>> ReadExact(Stream& stream, size_t n, Deadline deadline,
                                            const char* what) {
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    absl::StatusOr<size_t> r = co_await stream.ReadSome(buf.data() + got, n - got, n - got, Left(deadline));
    if (!r.ok()) {
      if (absl::IsDeadlineExceeded(r.status())) {
        co_return absl::DeadlineExceededError(
            absl::StrCat("the peer did not finish the handshake in time (waiting for its ", what, ")"));
      }
      co_return r.status();
    }
    if (*r == 0) co_return Truncated(what);
    got += *r;
  }
  co_return buf;
}

// Reads one handshake message, refusing a length over the bound before
// reading (let alone allocating) its body.
Task<absl::StatusOr<std::string>> ReadOne(Stream& stream, Deadline deadline, const char* what) {
  absl::StatusOr<std::string> header = co_await ReadExact(stream, internal::kHandshakeHeaderSize, deadline, what);
  if (!header.ok()) co_return header.status();
  absl::StatusOr<uint32_t> n = internal::HandshakeMessageLength(*header, what);
  if (!n.ok()) co_return n.status();
  co_return co_await ReadExact(stream, *n, deadline, what);
}

// Decodes `bytes` as the root struct T, bounded; any failure is garbage.
template <typename T, typename F>
absl::Status Decode(std::string_view bytes, const char* what, F&& read) {
  if (bytes.empty() || bytes.size() > protocol::MAX_HANDSHAKE_MESSAGE_BYTES ||
      bytes.size() % sizeof(capnp::word) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("not a picos peer: its ", what, " has ", bytes.size(),
                                                   " bytes (a handshake message has 8 to ",
                                                   protocol::MAX_HANDSHAKE_MESSAGE_BYTES,
                                                   ", a multiple of 8)"));
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions limits;
  limits.traversalLimitInWords = protocol::MAX_HANDSHAKE_MESSAGE_BYTES / sizeof(capnp::word);
  limits.nestingLimit = 4;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), limits);
    return read(reader.getRoot<T>());
  } catch (const kj::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not a picos peer: its ", what,
                                                   " does not decode (", e.getDescription().cStr(), ")"));
  }
}

std::string Mac(const std::string& secret, Role sender, const std::string& receiver_nonce,
                const std::string& sender_nonce, const std::string& sender_pid,
                const std::string& receiver_pid) {
  std::string data = kLabel;
  data += sender == Role::kConnector ? "|connector|" : "|acceptor|";
  data += receiver_nonce;
  data += sender_nonce;
  data += sender_pid;
  data += receiver_pid;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), secret.data(), secret.size(), reinterpret_cast<const uint8_t*>(data.data()),
       data.size(), out, &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

}  // namespace

uint32_t ProtocolVersion() { return protocol::PROTOCOL_VERSION; }

absl::Status ValidateSecret(const std::string& secret) {
  if (secret.size() < kMinSecretSize) {
    return absl::InvalidArgumentError(absl::StrCat("the shared secret has ", secret.size(),
                                                   " bytes; it needs at least ", kMinSecretSize));
  }
  if (secret.size() > kMaxSecretSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("the shared secret has ", secret.size(), " bytes; at most ", kMaxSecretSize));
  }
  if (secret.find_first_not_of(secret[0]) == std::string::npos) {
    return absl::InvalidArgumentError("the shared secret repeats one byte: not a secret");
  }
  return absl::OkStatus();
}

Task<absl::StatusOr<HandshakeResult>> Handshake(Stream& stream, HandshakeOptions options) {
  PICOS_CO_RETURN_IF_ERROR(ValidateSecret(options.secret));
  const Deadline deadline =
      ThisScheduler().NowNs() + absl::ToInt64Nanoseconds(std::min(options.timeout, absl::Hours(24 * 365)));
  const uint32_t version = options.version != 0 ? options.version : ProtocolVersion();
  const std::string my_pid = options.process_id.empty() ? ProcessId() : options.process_id;
  const Role peer_role = options.role == Role::kConnector ? Role::kAcceptor : Role::kConnector;

  std::string my_nonce(kNonceSize, '\0');
  if (RAND_bytes(reinterpret_cast<uint8_t*>(my_nonce.data()), my_nonce.size()) != 1) {
    co_return absl::InternalError("RAND_bytes failed: no nonce for the handshake");
  }

  // 1. Hello, both ways.
  std::string hello_bytes;
  {
    capnp::MallocMessageBuilder message;
    protocol::Hello::Builder hello = message.initRoot<protocol::Hello>();
    hello.setMagic(protocol::MAGIC);
    hello.setVersion(version);
    hello.setProcessId(kj::arrayPtr(reinterpret_cast<const kj::byte*>(my_pid.data()), my_pid.size()));
    hello.setNonce(kj::arrayPtr(reinterpret_cast<const kj::byte*>(my_nonce.data()), my_nonce.size()));
    const size_t n_uris = std::min(options.uris.size(), kMaxUris);
    capnp::List<capnp::Text>::Builder uris = hello.initUris(n_uris);
    for (size_t i = 0; i < n_uris; ++i) uris.set(i, options.uris[i].c_str());
    hello.setName(options.name.substr(0, 256).c_str());
    hello_bytes = Flatten(message);
  }
  if (hello_bytes.size() > protocol::MAX_HANDSHAKE_MESSAGE_BYTES) {
    co_return absl::InvalidArgumentError("this side's Hello is too long: fewer or shorter URIs");
  }
  PICOS_CO_RETURN_IF_ERROR(co_await WriteOne(stream, std::move(hello_bytes), deadline));

  absl::StatusOr<std::string> peer_hello = co_await ReadOne(stream, deadline, "Hello");
  if (!peer_hello.ok()) co_return peer_hello.status();
  absl::StatusOr<internal::PeerHello> hello = internal::DecodeHello(*peer_hello, version);
  if (!hello.ok()) co_return hello.status();
  HandshakeResult result;
  result.process_id = std::move(hello->process_id);
  result.uris = std::move(hello->uris);
  result.name = std::move(hello->name);
  const std::string peer_nonce = std::move(hello->nonce);
  if (result.process_id == my_pid) {
    co_return absl::FailedPreconditionError("the peer is this very process: a connection to itself");
  }
  if (peer_nonce == my_nonce) {
    co_return absl::InvalidArgumentError("not a picos peer: it echoed this side's nonce");
  }

  // 2. Proofs, both ways: each bound to the other side's fresh nonce.
  {
    capnp::MallocMessageBuilder message;
    std::string mac = Mac(options.secret, options.role, peer_nonce, my_nonce, my_pid, result.process_id);
    message.initRoot<protocol::Proof>().setMac(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(mac.data()), mac.size()));
    PICOS_CO_RETURN_IF_ERROR(co_await WriteOne(stream, Flatten(message), deadline));
  }
  absl::StatusOr<std::string> peer_proof = co_await ReadOne(stream, deadline, "Proof");
  if (!peer_proof.ok()) co_return peer_proof.status();
  const std::string expected =
      Mac(options.secret, peer_role, my_nonce, peer_nonce, result.process_id, my_pid);
  absl::StatusOr<std::string> mac = internal::DecodeProof(*peer_proof);
  if (!mac.ok()) co_return mac.status();
  const bool proof_ok = mac->size() == kMacSize && expected.size() == kMacSize &&
                        CRYPTO_memcmp(mac->data(), expected.data(), kMacSize) == 0;

  // 3. Verdicts, both ways.
  {
    capnp::MallocMessageBuilder message;
    protocol::Verdict::Builder verdict = message.initRoot<protocol::Verdict>();
    verdict.setOk(proof_ok);
    if (!proof_ok) verdict.setReason("secret mismatch");
    absl::Status sent = co_await WriteOne(stream, Flatten(message), deadline);
    if (proof_ok && !sent.ok()) co_return sent;
  }
  if (!proof_ok) {
    co_return absl::UnauthenticatedError(
        "secret mismatch: the peer's proof does not match this process's shared secret");
  }
  absl::StatusOr<std::string> peer_verdict = co_await ReadOne(stream, deadline, "Verdict");
  if (!peer_verdict.ok()) co_return peer_verdict.status();
  PICOS_CO_RETURN_IF_ERROR(internal::DecodeVerdict(*peer_verdict));
  co_return result;
}

}  // namespace picos::remote

namespace picos::internal {

using remote::Decode;  // the file-local template above
namespace protocol = remote::protocol;

absl::StatusOr<uint32_t> HandshakeMessageLength(std::string_view header, const char* what) {
  if (header.size() != kHandshakeHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("not a picos peer: a truncated ", what, " header"));
  }
  const auto* h = reinterpret_cast<const unsigned char*>(header.data());
  const uint32_t n = (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | h[3];
  if (n == 0 || n > protocol::MAX_HANDSHAKE_MESSAGE_BYTES || n % sizeof(capnp::word) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a picos peer: its ", what, " claims ", n, " bytes (a handshake message has 8 to ",
        protocol::MAX_HANDSHAKE_MESSAGE_BYTES, ", a multiple of 8)"));
  }
  return n;
}

absl::StatusOr<PeerHello> DecodeHello(std::string_view body, uint32_t version) {
  PeerHello result;
  absl::Status ok = Decode<protocol::Hello>(body, "Hello", [&](protocol::Hello::Reader hello) -> absl::Status {
    if (hello.getMagic() != protocol::MAGIC) {
      return absl::InvalidArgumentError("not a picos peer: its first message has the wrong magic");
    }
    if (hello.getVersion() != version) {
      return absl::FailedPreconditionError(
          absl::StrCat("protocol version mismatch: the peer speaks version ", hello.getVersion(),
                       ", this process version ", version));
    }
    capnp::Data::Reader pid = hello.getProcessId();
    capnp::Data::Reader nonce = hello.getNonce();
    if (pid.size() != kProcessIdSize || nonce.size() != remote::kNonceSize) {
      return absl::InvalidArgumentError("not a picos peer: its Hello has a malformed id or nonce");
    }
    if (hello.getUris().size() > remote::kMaxUris) {
      return absl::InvalidArgumentError("not a picos peer: its Hello lists too many URIs");
    }
    result.process_id.assign(reinterpret_cast<const char*>(pid.begin()), pid.size());
    result.nonce.assign(reinterpret_cast<const char*>(nonce.begin()), nonce.size());
    for (capnp::Text::Reader u : hello.getUris()) result.uris.emplace_back(u.cStr(), u.size());
    result.name.assign(hello.getName().cStr(), hello.getName().size());
    return absl::OkStatus();
  });
  if (!ok.ok()) return ok;
  return result;
}

absl::StatusOr<std::string> DecodeProof(std::string_view body) {
  std::string mac;
  absl::Status ok = Decode<protocol::Proof>(body, "Proof", [&](protocol::Proof::Reader proof) -> absl::Status {
    capnp::Data::Reader m = proof.getMac();
    mac.assign(reinterpret_cast<const char*>(m.begin()), m.size());
    return absl::OkStatus();
  });
  if (!ok.ok()) return ok;
  return mac;
}

absl::Status DecodeVerdict(std::string_view body) {
  return Decode<protocol::Verdict>(body, "Verdict", [&](protocol::Verdict::Reader v) -> absl::Status {
    if (v.getOk()) return absl::OkStatus();
    std::string reason(v.getReason().cStr(), std::min<size_t>(v.getReason().size(), 200));
    if (reason == "secret mismatch") {
      return absl::UnauthenticatedError(
          "secret mismatch: the peer refused this process's proof of the shared secret");
    }
    return absl::UnavailableError(absl::StrCat("the peer refused the handshake: ", reason));
  });
}

}  // namespace picos::internal
