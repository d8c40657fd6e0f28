#include "testing/fuzz/discovery_packet_seeds.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/wire/value_codec.h"
#include "discovery/packet.h"

namespace picos::testing {

std::vector<std::string> DiscoveryPacketSeeds() {
  std::vector<std::string> seeds;
  const std::vector<std::vector<std::string>> uri_sets = {
      {}, {"tcp://10.99.0.1:9705"}, {"tcp://127.0.0.1:1", "unix://@x", "tls://[::1]:9705"},
      std::vector<std::string>(discovery::MaxUris(), "tcp://192.168.100.200:65535")};
  // The first secret is the target's (kFuzzSecret in discovery_packet_fuzz.cc).
  for (const char* secret : {"discovery-fuzz-secret-0123456789", "another-secret-abcdefghijklmnop"}) {
    for (const auto& uris : uri_sets) {
      for (auto kind : {discovery::Announcement::Kind::kHello, discovery::Announcement::Kind::kGoodbye}) {
        discovery::Announcement a;
        a.kind = kind;
        a.process_id = std::string(kProcessIdSize, '\x42');
        a.name = uris.empty() ? "" : "seed";
        a.uris = uris;
        absl::StatusOr<std::string> p = discovery::EncodeAnnouncement(a, secret, absl::FromUnixSeconds(1'800'000'000));
        if (!p.ok()) continue;
        seeds.push_back(*p);
        // The body alone: the target wraps it under its own secret.
        seeds.push_back(p->substr(discovery::kHeaderSize, p->size() - discovery::kHeaderSize - discovery::kMacSize));
      }
    }
  }
  return seeds;
}

}  // namespace picos::testing
