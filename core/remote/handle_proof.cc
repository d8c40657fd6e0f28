#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>

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

}  // namespace

std::string TaskProof(std::string_view node_pid, uint64_t id) { return Mint('t', node_pid, IdBytes(id)); }

std::string ChannelProof(std::string_view node_pid, std::string_view name) { return Mint('c', node_pid, name); }

bool TaskProofValid(std::string_view node_pid, uint64_t id, std::string_view proof) {
  return Same(TaskProof(node_pid, id), proof);
}

bool ChannelProofValid(std::string_view node_pid, std::string_view name, std::string_view proof) {
  return Same(ChannelProof(node_pid, name), proof);
}

}  // namespace picos::internal
