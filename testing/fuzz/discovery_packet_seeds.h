// Seed inputs for the discovery packet decoder's fuzz target
// (discovery_packet_fuzz.cc): valid announcements, hello and goodbye, with
// no URI up to the most a packet carries, under the target's secret and
// another one, and the body of each alone (the target wraps a body in a
// valid header and MAC under its secret).
//
//   for (const std::string& seed : picos::testing::DiscoveryPacketSeeds()) ...
#ifndef PICOS_TESTING_FUZZ_DISCOVERY_PACKET_SEEDS_H_
#define PICOS_TESTING_FUZZ_DISCOVERY_PACKET_SEEDS_H_

#include <string>
#include <vector>

namespace picos::testing {

// Packets made with EncodeAnnouncement at a fixed time; their nonces are
// random, the rest deterministic. Any thread.
std::vector<std::string> DiscoveryPacketSeeds();

}  // namespace picos::testing

#endif  // PICOS_TESTING_FUZZ_DISCOVERY_PACKET_SEEDS_H_
