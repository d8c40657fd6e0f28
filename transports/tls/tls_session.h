// TLS for any byte stream, on BoringSSL with memory BIOs.
//
// A TlsSession is the TLS state machine of one connection and nothing else:
// it never touches a socket. The caller moves bytes: ciphertext that arrived
// from the peer goes in with FeedCiphertext(); ciphertext to send to the peer
// comes out of TakeCiphertext(). That is what lets TLS wrap any stream
// transport (TCP, a Unix socket, a pipe) — see tls_transport.h for the
// transport plugin that pumps a stream through it.
//
//   TlsConfig config;
//   config.ca_file = "ca.pem";                     // verify the server
//   PICOS_ASSIGN_OR_RETURN(auto ctx, TlsContext::Create(config, TlsRole::kClient));
//   PICOS_ASSIGN_OR_RETURN(auto tls, TlsSession::Create(ctx, "example.org"));
//   for (;;) {
//     TlsStep step = tls->Handshake();            // kWantRead: feed more bytes
//     send(tls->TakeCiphertext());
//     if (step == TlsStep::kDone) break;
//     if (step == TlsStep::kError) return tls->error();
//     tls->FeedCiphertext(receive());
//   }
//
// Thread-compatible: one thread at a time per session. A TlsContext is
// immutable once created and may be shared by sessions on any thread.
#ifndef PICOS_TRANSPORTS_TLS_TLS_SESSION_H_
#define PICOS_TRANSPORTS_TLS_TLS_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace picos::transports {

enum class TlsRole { kClient, kServer };

struct TlsConfig {
  // PEM certificate chain and private key. Required for a server; a client
  // that presents one sends it when the server asks.
  std::string cert_file;
  std::string key_file;
  // PEM file of the certificate authorities to trust. A client verifies the
  // server against it (required unless verify_peer is false); a server given
  // one verifies client certificates against it.
  std::string ca_file;
  // Client: check the server's chain and name. Turning it off is for tests
  // only, and logged.
  bool verify_peer = true;
  // Server: refuse clients without a certificate that verifies.
  bool require_client_cert = false;
  // Give up a handshake that has not completed within this long; enforced
  // by the transport, which owns the clock.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Server: the memory that connections still in their handshake may hold
  // all together (TLS state, buffers); beyond it the oldest are dropped.
  // This, not a count, bounds them: a stalled handshake holds a few KB and
  // delays nobody. Enforced by the transport.
  size_t max_half_open_bytes = size_t{64} << 20;
};

// Immutable BoringSSL context shared by the sessions of one role.
class TlsContext {
 public:
  // kInvalidArgument for a missing or unreadable file, a key that does not
  // match its certificate, or a server without a certificate.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Create(const TlsConfig& config,
                                                                 TlsRole role);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  TlsRole role() const { return role_; }
  const TlsConfig& config() const { return config_; }
  void* raw() const { return ctx_; }  // actually SSL_CTX*

 private:
  TlsContext(void* ctx, TlsRole role, TlsConfig config)
      : ctx_(ctx), role_(role), config_(std::move(config)) {}
  void* ctx_;  // actually SSL_CTX*
  TlsRole role_;
  TlsConfig config_;
};

enum class TlsStep {
  kDone,       // the handshake is complete (or the operation succeeded)
  kWantRead,   // more ciphertext from the peer is needed: FeedCiphertext()
  kClosed,     // the peer closed the TLS session cleanly (close_notify)
  kError,      // failed: error() says why; flush TakeCiphertext() (the alert)
};

class TlsSession {
 public:
  // `server_name`, for a client: sent as SNI and checked against the
  // server's certificate (DNS name or IP address). Ignored for servers.
  static absl::StatusOr<std::unique_ptr<TlsSession>> Create(
      std::shared_ptr<const TlsContext> context, std::string_view server_name = {});
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext that arrived from the peer (copied).
  void FeedCiphertext(std::string_view bytes);
  // The same without a copy, for bulk reads: `bytes` must stay valid and
  // unchanged until a step next returns kWantRead (all of it consumed) or
  // the session is destroyed. Only after kWantRead, with nothing pending.
  void FeedCiphertextInPlace(std::string_view bytes);
  // The peer's stream ended (EOF). Reads then report kClosed or an error.
  void FeedEof();
  // Moves out the ciphertext waiting to be sent to the peer.
  std::string TakeCiphertext();
  bool HasCiphertext() const;

  // Advances the handshake with what has been fed so far.
  TlsStep Handshake();
  bool handshake_done() const { return handshake_done_; }
  // After the handshake: "TLSv1.3", and the cipher suite's standard name.
  std::string protocol() const;
  std::string cipher() const;

  // Decrypts into `buf`. kDone with *n > 0 bytes, kWantRead, kClosed, kError.
  TlsStep Read(char* buf, size_t len, size_t* n);

  // Encrypts all of `bytes` (after the handshake); the records are then in
  // TakeCiphertext(). kDone or kError.
  TlsStep Write(std::string_view bytes);

  // Sends close_notify (into TakeCiphertext()).
  void Shutdown();

  // Why the last step was kError: kUnauthenticated for a certificate that
  // does not verify or a name that does not match, kUnavailable for a
  // handshake the peer broke off, kInvalidArgument for garbage.
  const absl::Status& error() const { return error_; }

 private:
  TlsSession(std::shared_ptr<const TlsContext> context, void* ssl);
  TlsStep Fail(int ret, const char* operation);

  std::shared_ptr<const TlsContext> context_;
  void* ssl_;  // actually SSL*
  void* rbio_;  // actually BIO*: ciphertext in
  void* wbio_;  // actually BIO*: appends the ciphertext out to out_
  std::string out_;
  bool handshake_done_ = false;
  bool eof_ = false;
  bool rbio_in_place_ = false;  // rbio_ reads the caller's bytes in place
  absl::Status error_;
};

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_TLS_TLS_SESSION_H_
