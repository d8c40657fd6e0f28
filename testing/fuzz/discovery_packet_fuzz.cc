// Fuzz target for the discovery packet decoder (discovery/packet.h), which
// reads datagrams anyone on the LAN may send to the multicast group.
//
// Each input is read two ways: as a datagram, under a secret the input
// cannot know (so it must be refused, by size, header or MAC, unless it is
// one of the seeds' valid packets), and as a body wrapped in a valid header
// and MAC under the fuzzer's secret, so the Cap'n Proto body decoder behind
// the MAC check is fuzzed too. Aborts if the decoder accepts an
// announcement out of the schema's bounds or gives an undocumented error.
//
// Driven by discovery_packet_fuzz_test (seeds and deterministic mutations).
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/wire/value_codec.h"
#include "discovery/packet.h"

namespace {

constexpr char kFuzzSecret[] = "discovery-fuzz-secret-0123456789";

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "discovery_packet_fuzz: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

void Decode(std::string_view datagram) {
  picos::discovery::Refusal why = picos::discovery::Refusal::kCount;
  absl::StatusOr<picos::discovery::Announcement> a =
      picos::discovery::DecodeAnnouncement(datagram, kFuzzSecret, &why);
  if (!a.ok()) {
    if (why == picos::discovery::Refusal::kNone || why == picos::discovery::Refusal::kCount) {
      Fail("a refusal without its cause", a.status());
    }
    if (a.status().code() != absl::StatusCode::kInvalidArgument &&
        a.status().code() != absl::StatusCode::kUnauthenticated) {
      Fail("an undocumented error", a.status());
    }
    return;
  }
  if (why != picos::discovery::Refusal::kNone) Fail("accepted with a refusal set", absl::OkStatus());
  if (a->process_id.size() != picos::kProcessIdSize || a->nonce.size() != picos::discovery::kNonceSize ||
      a->uris.size() > picos::discovery::MaxUris() || a->name.size() > picos::discovery::MaxNameSize()) {
    Fail("an announcement out of bounds was accepted", absl::OkStatus());
  }
  for (const std::string& u : a->uris) {
    if (u.empty() || u.size() > picos::discovery::MaxUriSize()) Fail("a URI out of bounds", absl::OkStatus());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Decode(input);
  // As a body, authenticated: padded to whole words, cut to the bound.
  std::string body(input.substr(0, picos::discovery::MaxPacketSize()));
  body.resize((body.size() + 7) / 8 * 8, '\0');
  std::string packet("PICOSDSC\x00\x01", 10);
  packet.push_back(static_cast<char>(body.size() >> 8));
  packet.push_back(static_cast<char>(body.size() & 0xff));
  packet += body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), kFuzzSecret, sizeof(kFuzzSecret) - 1, reinterpret_cast<const uint8_t*>(packet.data()),
       packet.size(), mac, &mac_len);
  packet.append(reinterpret_cast<const char*>(mac), mac_len);
  Decode(packet);
  return 0;
}
