// Seed inputs for the remote layer's fuzz targets: handshake messages
// (protocol.capnp) as a peer sends them, and batches of frames
// (core/remote/node.cc lists the ops) alone and as a stream.
//
//   for (const std::string& seed : picos::testing::HandshakeSeeds()) ...
#ifndef PICOS_TESTING_FUZZ_REMOTE_SEEDS_H_
#define PICOS_TESTING_FUZZ_REMOTE_SEEDS_H_

#include <string>
#include <vector>

namespace picos::testing {

// Each Hello, Proof and Verdict body alone, and whole exchanges (each
// message behind its 4-byte length); valid, then with a wrong magic,
// version, id size, too many URIs, a refusing Verdict. Deterministic. Any
// thread.
std::vector<std::string> HandshakeSeeds();

// Batches of every op, alone and as length-prefixed streams. Deterministic.
// Any thread.
std::vector<std::string> FrameBatchSeeds();

}  // namespace picos::testing

#endif  // PICOS_TESTING_FUZZ_REMOTE_SEEDS_H_
