// Unforgeable handles: the proof a process mints into every handle of its
// own tasks and channels that it sends to a peer, and checks on every
// handle and every operation a peer sends back. Erlang pids and pycos task
// ids can be guessed; a picos handle cannot: a peer can address only the
// tasks and channels it was given (in a message, as a locate's or a
// service's result), and any authenticated peer holding one can use it,
// even one that got it through a third process.
//
// A proof is the first kProofSize bytes of HMAC-SHA256, under a key of 32
// random bytes this process draws once (RAND_bytes), of
//   "picos-handle-v1" || "t" || node process id || task id (8 bytes, big endian)
//   "picos-handle-v1" || "c" || node process id || channel name
// The node's process id is in it so that two nodes of one process (tests)
// do not accept each other's proofs. 128 bits: a guess succeeds with
// probability 2^-128; a task's proof is worthless once the task ends, since
// ids are never reused. A channel's proof follows its name: a channel made
// later under the name of a closed one is reached by the old handles (names
// are how channels are located anyway).
//
// Internal to core/remote. Threads: any.
#ifndef PICOS_CORE_REMOTE_HANDLE_PROOF_INTERNAL_H_
#define PICOS_CORE_REMOTE_HANDLE_PROOF_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace picos::internal {

inline constexpr size_t kProofSize = 16;

// The proof of task `id` (channel `name`) of the node whose process id is
// `node_pid`.
std::string TaskProof(std::string_view node_pid, uint64_t id);
std::string ChannelProof(std::string_view node_pid, std::string_view name);

// True if `proof` is the one TaskProof (ChannelProof) gives; compared in
// constant time.
bool TaskProofValid(std::string_view node_pid, uint64_t id, std::string_view proof);
bool ChannelProofValid(std::string_view node_pid, std::string_view name, std::string_view proof);

}  // namespace picos::internal

#endif  // PICOS_CORE_REMOTE_HANDLE_PROOF_INTERNAL_H_
