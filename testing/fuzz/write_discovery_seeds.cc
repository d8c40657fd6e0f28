// Writes the seed corpus of the discovery packet fuzz target (discovery_packet_seeds.h)
// into a directory, one file per seed: used by run_discovery_fuzz.sh.
//
//   write_discovery_seeds /tmp/corpus
#include <cstdio>
#include <string>

#include "testing/fuzz/discovery_packet_seeds.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  int n = 0;
  for (const std::string& seed : picos::testing::DiscoveryPacketSeeds()) {
    std::string path = std::string(argv[1]) + "/seed-" + std::to_string(n++);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(seed.data(), 1, seed.size(), f) != seed.size() || std::fclose(f) != 0) {
      std::perror(path.c_str());
      return 1;
    }
  }
  std::printf("wrote %d seeds to %s\n", n, argv[1]);
  return 0;
}
