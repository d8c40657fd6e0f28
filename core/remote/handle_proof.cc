#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <cstring>

#include "core/kernel/log.h"
#include "core/remote/handle_proof_internal.h"

namespace picos::internal {

namespace {

constexpr std::string_view kContext = "picos-handle-v1";

// The key, drawn once. Without randomness no proof could be trusted, so the
// process stops rather than mint guessable ones.
const std::array<uint8_t, 32>& Key() {
  static const std::array<uint8_t, 32>* const key = [] {
    auto* k = new std::array<uint8_t, 32>();
    if (RAND_bytes(k->data(), k->size()) != 1) {
      PICOS_LOG(critical, "RAND_bytes failed: no key for handle proofs");
      std::abort();
    }
    return k;
  }();
  return *key;
}

std::string Mint(char kind, std::string_view node_pid, std::string_view subject) {
  HMAC_CTX ctx;
  HMAC_CTX_init(&ctx);
  HMAC_Init_ex(&ctx, Key().data(), Key().size(), EVP_sha256(), nullptr);
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(kContext.data()), kContext.size());
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(&kind), 1);
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(node_pid.data()), node_pid.size());
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(subject.data()), subject.size());
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC_Final(&ctx, mac, &n);
  HMAC_CTX_cleanup(&ctx);
  return std::string(reinterpret_cast<const char*>(mac), kProofSize);
}

std::string IdBytes(uint64_t id) {
  std::string b(8, '\0');
  for (int i = 7; i >= 0; --i, id >>= 8) b[i] = static_cast<char>(id & 0xff);
  return b;
}

bool Same(const std::string& want, std::string_view got) {
  return got.size() == want.size() && CRYPTO_memcmp(want.data(), got.data(), want.size()) == 0;
}

// The task proofs this thread minted last, by task id: a stream of frames
// to one task (or to a few hundred) is checked against a proof minted once
// instead of one HMAC per frame, which was the largest cost of receiving a
// message (about 12% of the receiver's CPU, and a third of its
// instructions, in remote_bench's one-way figure). An entry holds only what
// Mint computed here, so a hit gives exactly what Mint would; the
// comparison with what a peer sent stays constant-time. Plain data with no
// constructor: 6 KiB of zeros per thread, no guard on access.
constexpr size_t kCachedPidSize = 16;  // picos process ids; others are not cached
struct CachedTaskProof {
  bool used;
  uint64_t id;
  char pid[kCachedPidSize];
  char proof[kProofSize];
};
constexpr size_t kCachedTaskProofs = 128;  // a power of two
thread_local CachedTaskProof t_task_proofs[kCachedTaskProofs];

// The proof of task `id` of `node_pid`, from this thread's cache or minted
// into it. Valid until the next call on this thread.
const char* TaskProofBytes(std::string_view node_pid, uint64_t id, std::string* minted) {
  if (node_pid.size() != kCachedPidSize) {
    *minted = Mint('t', node_pid, IdBytes(id));
    return minted->data();
  }
  CachedTaskProof& e = t_task_proofs[id & (kCachedTaskProofs - 1)];
  if (e.used && e.id == id && std::memcmp(e.pid, node_pid.data(), kCachedPidSize) == 0) return e.proof;
  const std::string proof = Mint('t', node_pid, IdBytes(id));
  e.used = true;
  e.id = id;
  std::memcpy(e.pid, node_pid.data(), kCachedPidSize);
  std::memcpy(e.proof, proof.data(), kProofSize);
  return e.proof;
}

}  // namespace

std::string TaskProof(std::string_view node_pid, uint64_t id) {
  std::string minted;
  return std::string(TaskProofBytes(node_pid, id, &minted), kProofSize);
}

std::string ChannelProof(std::string_view node_pid, std::string_view name) { return Mint('c', node_pid, name); }

bool TaskProofValid(std::string_view node_pid, uint64_t id, std::string_view proof) {
  std::string minted;
  const char* want = TaskProofBytes(node_pid, id, &minted);
  return proof.size() == kProofSize && CRYPTO_memcmp(want, proof.data(), kProofSize) == 0;
}

bool ChannelProofValid(std::string_view node_pid, std::string_view name, std::string_view proof) {
  return Same(ChannelProof(node_pid, name), proof);
}

}  // namespace picos::internal
