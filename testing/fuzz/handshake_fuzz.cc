// Fuzz target for the handshake's decoders (core/remote/handshake_internal.h),
// the only code that reads a connection's bytes before its peer is
// authenticated.
//
// Each input is read two ways: as the stream a peer sends (length-prefixed
// Hello, Proof, Verdict, each checked as Handshake checks it, stopping at
// the first refusal), and as one message body given to each decoder. Aborts
// if a decoder gives an error Handshake does not document, or accepts a
// Hello with an id, nonce or URI list out of bounds. Crashes and unbounded
// allocations are what the sanitizers and libFuzzer's -rss_limit_mb catch.
//
// Driven by handshake_fuzz_test (seeds and deterministic mutations, g++).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "core/remote/handshake.h"
#include "core/remote/handshake_internal.h"
#include "core/wire/value_codec.h"

namespace {

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "handshake_fuzz: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

// The codes handshake.h documents for a peer's bytes.
void CheckRefusal(const char* what, const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnavailable:
      return;
    default:
      Fail(what, s);
  }
}

// Decodes `body` as the `index`th handshake message. False once refused.
bool DecodeAs(int index, std::string_view body) {
  switch (index) {
    case 0: {
      absl::StatusOr<picos::internal::PeerHello> hello =
          picos::internal::DecodeHello(body, picos::remote::ProtocolVersion());
      if (!hello.ok()) {
        CheckRefusal("Hello", hello.status());
        return false;
      }
      if (hello->process_id.size() != picos::kProcessIdSize || hello->nonce.size() != 32 ||
          hello->uris.size() > 16) {
        Fail("a Hello out of bounds was accepted", absl::OkStatus());
      }
      return true;
    }
    case 1: {
      absl::StatusOr<std::string> mac = picos::internal::DecodeProof(body);
      if (!mac.ok()) {
        CheckRefusal("Proof", mac.status());
        return false;
      }
      if (mac->size() > body.size()) Fail("a MAC longer than its message", absl::OkStatus());
      return true;
    }
    default: {
      absl::Status verdict = picos::internal::DecodeVerdict(body);
      if (!verdict.ok()) CheckRefusal("Verdict", verdict);
      return verdict.ok();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // As a peer's stream.
  static const char* const kNames[] = {"Hello", "Proof", "Verdict"};
  std::string_view rest = input;
  for (int i = 0; i < 3; ++i) {
    if (rest.size() < picos::internal::kHandshakeHeaderSize) break;  // truncated: Handshake waits
    absl::StatusOr<uint32_t> n =
        picos::internal::HandshakeMessageLength(rest.substr(0, picos::internal::kHandshakeHeaderSize), kNames[i]);
    if (!n.ok()) {
      CheckRefusal("a length header", n.status());
      break;
    }
    rest.remove_prefix(picos::internal::kHandshakeHeaderSize);
    if (rest.size() < *n) break;
    if (!DecodeAs(i, rest.substr(0, *n))) break;
    rest.remove_prefix(*n);
  }
  // As one body, to each decoder.
  for (int i = 0; i < 3; ++i) (void)DecodeAs(i, input);
  return 0;
}
