// The "tls" stream transport: TLS (BoringSSL) over any other stream
// transport, TCP by default.
//
//   tls://host:port?ca=/etc/picos/ca.pem                       client, verifying
//   tls://0.0.0.0:9705?cert=server.pem&key=server.key          server
//   tls://host:port?ca=ca.pem&cert=client.pem&key=client.key   client certificate
//   tls://host:port?inner=unix&path=/run/picos.sock&ca=...     over a Unix socket
//
// Query parameters (each at most 1024 bytes; unknown ones are an error, so a
// typo never silently weakens security):
//   ca=FILE          CAs to trust: a client verifies the server against them;
//                    a server given one verifies client certificates
//   cert=, key=      PEM certificate chain and key (server: required)
//   verify=0         client only: no verification (tests only; logged)
//   require_client_cert=1   server: refuse clients without a certificate
//   name=NAME        client: the name to check in the server's certificate
//                    (default: the URI's host)
//   inner=SCHEME     the stream transport underneath (default tcp)
//   path=PATH        with inner=unix: the socket path
//   handshake_timeout=DURATION   give up a handshake not done within it
//                    (absl::ParseDuration: 10s, 250ms; 1ms to 10m; default 10s)
//   half_open_kb=N   server: memory all connections still in their
//                    handshake may hold together (default 65536 KiB);
//                    beyond it the oldest are dropped
//
// A server accepts without a cap on connections in their handshake: each
// handshakes in a task of its own, bounded by the handshake timeout, and
// all of them by half_open_kb, so silent or slow clients never delay a
// real one. A connection that has not sent a byte holds no TLS session and
// no buffer (about 2 KB in all); an idle established one holds no buffer
// either. Failed handshakes are logged, at most a few lines per period.
// Defaults for ca/cert/key may also be given at registration, for programs
// that configure TLS once (flags) rather than per URI.
//
// WrapTls(...) turns an already connected Stream of any kind into a TLS one.
#ifndef PICOS_TRANSPORTS_TLS_TLS_TRANSPORT_H_
#define PICOS_TRANSPORTS_TLS_TLS_TRANSPORT_H_

#include <memory>
#include <string>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "transports/tls/tls_session.h"

namespace picos::transports {

// Runs the handshake over `inner` and gives the TLS stream on top of it.
// `server_name` (client role): checked against the certificate. The
// handshake must finish within `handshake_timeout` (kDeadlineExceeded);
// a certificate that does not verify is kUnauthenticated, a peer that
// vanishes or talks garbage kUnavailable / kInvalidArgument. The alert
// that tells the peer why is sent before the error is returned.
Task<absl::StatusOr<std::unique_ptr<Stream>>> WrapTls(std::unique_ptr<Stream> inner,
                                                   std::shared_ptr<const TlsContext> context,
                                                   std::string server_name,
                                                   absl::Duration handshake_timeout);

class TlsTransport : public StreamTransport {
 public:
  // Wraps `inner`, the registry of stream transports TLS may run over (a
  // URI's inner= names one of them; tcp by default), as kj's wrapNetwork
  // wraps a network: the caller chooses what lies underneath and keeps it
  // alive for as long as this plugin lives. `defaults` fill in parameters a
  // URI leaves out.
  TlsTransport(const TransportRegistry& inner, TlsConfig defaults);

  std::string scheme() const override { return "tls"; }
  Task<absl::StatusOr<std::unique_ptr<Stream>>> Connect(Uri uri, absl::Duration timeout,
                                                        StreamOptions options) override;
  Task<absl::StatusOr<std::unique_ptr<Listener>>> Listen(Uri uri,
                                                         StreamOptions options) override;

 private:
  const TransportRegistry& inner_;
  TlsConfig defaults_;
};

// Adds the tls plugin to `builder`, running over the stream transports of
// `inner` (for example a registry of tcp and unix), which must outlive the
// registry built from `builder`.
void RegisterTlsTransport(TransportRegistry::Builder& builder, const TransportRegistry& inner,
                          TlsConfig defaults = {});

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_TLS_TLS_TRANSPORT_H_
