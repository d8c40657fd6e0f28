#include "transports/tls/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/net/ip_endpoint.h"

namespace picos::transports {

namespace {

SSL_CTX* Ctx(const TlsContext& c) { return static_cast<SSL_CTX*>(c.raw()); }

// The most specific reason BoringSSL queued, then clears the queue so that a
// later failure on this thread does not report ours.
std::string TakeErrors() {
  std::string out;
  uint32_t e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail" : out;
}

// An address is checked against the certificate's IP entries, a name
// against its DNS names; the one literal-address parser decides which.
bool IsIpAddress(std::string_view name) {
  return IpEndpoint::Parse(absl::string_view(name.data(), name.size()), 0).ok();
}

// The outgoing BIO appends to a std::string the session owns, which
// TakeCiphertext() then moves out: no growing BUF_MEM, no copy out of it.
int StringBioWrite(BIO* b, const char* data, int len) {
  static_cast<std::string*>(BIO_get_data(b))->append(data, static_cast<size_t>(len));
  return len;
}

long StringBioCtrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
      return static_cast<long>(static_cast<std::string*>(BIO_get_data(b))->size());
    default:
      return 0;
  }
}

const BIO_METHOD* StringBioMethod() {
  static const BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "picos string sink");
    BIO_meth_set_write(m, StringBioWrite);
    BIO_meth_set_ctrl(m, StringBioCtrl);
    return m;
  }();
  return method;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Create(const TlsConfig& config,
                                                                    TlsRole role) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed: " + TakeErrors());
  std::shared_ptr<const TlsContext> owner(new TlsContext(ctx, role, config));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Memory BIOs may move between buffers; allow a retried write to differ.
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

  if (role == TlsRole::kServer && (config.cert_file.empty() || config.key_file.empty())) {
    return absl::InvalidArgumentError("a TLS server needs cert_file and key_file");
  }
  if (!config.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load certificate chain ", config.cert_file, ": ", TakeErrors()));
    }
    if (config.key_file.empty() ||
        SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load private key ", config.key_file, ": ", TakeErrors()));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "private key ", config.key_file, " does not match certificate ", config.cert_file));
    }
  }
  if (!config.ca_file.empty() &&
      SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load CA file ", config.ca_file, ": ", TakeErrors()));
  }
  if (role == TlsRole::kClient) {
    if (config.verify_peer) {
      if (config.ca_file.empty()) {
        return absl::InvalidArgumentError(
            "a verifying TLS client needs ca_file (or verify_peer = false, for tests only)");
      }
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
      PICOS_LOG(warn, "TLS client with peer verification off: for tests only");
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
  } else if (config.require_client_cert) {
    if (config.ca_file.empty()) {
      return absl::InvalidArgumentError("require_client_cert needs ca_file to verify clients");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else if (!config.ca_file.empty()) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return owner;
}

TlsContext::~TlsContext() { SSL_CTX_free(static_cast<SSL_CTX*>(ctx_)); }

absl::StatusOr<std::unique_ptr<TlsSession>> TlsSession::Create(
    std::shared_ptr<const TlsContext> context, std::string_view server_name) {
  if (!context) return absl::InvalidArgumentError("TlsSession needs a context");
  ERR_clear_error();
  SSL* ssl = SSL_new(Ctx(*context));
  if (ssl == nullptr) return absl::InternalError("SSL_new failed: " + TakeErrors());
  std::unique_ptr<TlsSession> session(new TlsSession(context, ssl));
  if (context->role() == TlsRole::kClient) {
    SSL_set_connect_state(ssl);
    if (!server_name.empty()) {
      if (server_name.size() > 253) return absl::InvalidArgumentError("server name too long");
      std::string name(server_name);
      if (IsIpAddress(name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
          return absl::InvalidArgumentError("bad IP address for TLS name check: " + name);
        }
      } else {
        // SNI, and the name the certificate must carry.
        if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1 ||
            SSL_set1_host(ssl, name.c_str()) != 1) {
          return absl::InvalidArgumentError("bad TLS server name: " + name);
        }
      }
    } else if (context->config().verify_peer) {
      return absl::InvalidArgumentError("a verifying TLS client needs the server's name");
    }
  } else {
    SSL_set_accept_state(ssl);
  }
  return session;
}

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, void* ssl)
    : context_(std::move(context)), ssl_(ssl) {
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(StringBioMethod());
  BIO_set_data(wbio, &out_);
  BIO_set_init(wbio, 1);
  // An empty input BIO means "no data yet", not end of stream.
  BIO_set_mem_eof_return(rbio, -1);
  SSL_set_bio(static_cast<SSL*>(ssl), rbio, wbio);  // the SSL owns both
  rbio_ = rbio;
  wbio_ = wbio;
}

TlsSession::~TlsSession() { SSL_free(static_cast<SSL*>(ssl_)); }

void TlsSession::FeedCiphertext(std::string_view bytes) {
  if (bytes.empty()) return;
  BIO* r = static_cast<BIO*>(rbio_);
  if (rbio_in_place_) {
    // The in-place BIO is read-only: carry what it still holds into a
    // writable one.
    BIO* fresh = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(fresh, eof_ ? 0 : -1);
    char* left = nullptr;
    long n = BIO_get_mem_data(r, &left);
    if (n > 0) BIO_write(fresh, left, static_cast<int>(n));
    SSL_set0_rbio(static_cast<SSL*>(ssl_), fresh);  // frees the old one
    rbio_ = r = fresh;
    rbio_in_place_ = false;
  }
  BIO_write(r, bytes.data(), static_cast<int>(bytes.size()));
}

void TlsSession::FeedCiphertextInPlace(std::string_view bytes) {
  if (bytes.empty()) return;
  // A read-only memory BIO over the caller's bytes: BoringSSL advances a
  // pointer through it. A writable memory BIO would instead copy the bytes
  // in and memmove the rest down after every record it reads, which costs
  // more than the cipher on bulk transfers.
  BIO* b = BIO_new_mem_buf(bytes.data(), static_cast<ssize_t>(bytes.size()));
  BIO_set_mem_eof_return(b, eof_ ? 0 : -1);
  SSL_set0_rbio(static_cast<SSL*>(ssl_), b);  // frees the old, drained one
  rbio_ = b;
  rbio_in_place_ = true;
}

void TlsSession::FeedEof() {
  eof_ = true;
  BIO_set_mem_eof_return(static_cast<BIO*>(rbio_), 0);
}

bool TlsSession::HasCiphertext() const { return !out_.empty(); }

std::string TlsSession::TakeCiphertext() { return std::exchange(out_, std::string()); }

TlsStep TlsSession::Fail(int ret, const char* operation) {
  SSL* ssl = static_cast<SSL*>(ssl_);
  int err = SSL_get_error(ssl, ret);
  // With the input at end of stream BoringSSL reports a truncated record or
  // handshake as SSL_ERROR_SYSCALL: the peer went away.
  if (err == SSL_ERROR_WANT_READ || (eof_ && err == SSL_ERROR_SYSCALL)) {
    if (!eof_) return TlsStep::kWantRead;
    ERR_clear_error();
    error_ = absl::UnavailableError(
        absl::StrCat("TLS ", operation, ": the peer closed the connection ",
                     handshake_done_ ? "without close_notify" : "during the handshake"));
    return TlsStep::kError;
  }
  if (err == SSL_ERROR_ZERO_RETURN) return TlsStep::kClosed;
  long verify = SSL_get_verify_result(ssl);
  // INVALID_CALL: no chain was checked (no certificate yet): not the cause.
  if (verify != X509_V_OK && verify != X509_V_ERR_INVALID_CALL) {
    error_ = absl::UnauthenticatedError(absl::StrCat("TLS ", operation,
                                                     ": certificate verification failed: ",
                                                     X509_verify_cert_error_string(verify)));
    ERR_clear_error();
  } else {
    std::string detail = TakeErrors();
    if (detail.find("ALERT") != std::string::npos || detail.find("alert") != std::string::npos) {
      error_ = absl::UnavailableError(absl::StrCat("TLS ", operation, " failed: ", detail));
    } else {
      error_ = absl::InvalidArgumentError(absl::StrCat("TLS ", operation, " failed: ", detail));
    }
  }
  return TlsStep::kError;
}

TlsStep TlsSession::Handshake() {
  if (handshake_done_) return TlsStep::kDone;
  if (!error_.ok()) return TlsStep::kError;
  ERR_clear_error();
  int ret = SSL_do_handshake(static_cast<SSL*>(ssl_));
  if (ret == 1) {
    handshake_done_ = true;
    return TlsStep::kDone;
  }
  return Fail(ret, "handshake");
}

TlsStep TlsSession::Read(char* buf, size_t len, size_t* n) {
  *n = 0;
  if (!error_.ok()) return TlsStep::kError;
  if (len == 0) return TlsStep::kDone;
  ERR_clear_error();
  int ret = SSL_read(static_cast<SSL*>(ssl_), buf, static_cast<int>(std::min<size_t>(len, 1 << 30)));
  if (ret > 0) {
    *n = static_cast<size_t>(ret);
    return TlsStep::kDone;
  }
  return Fail(ret, "read");
}

TlsStep TlsSession::Write(std::string_view bytes) {
  if (!error_.ok()) return TlsStep::kError;
  if (!handshake_done_) {
    error_ = absl::FailedPreconditionError("TLS write before the handshake completed");
    return TlsStep::kError;
  }
  // Room for the records in one allocation: 16 KiB records each grow by a
  // header and a tag, well under 1/64.
  out_.reserve(out_.size() + bytes.size() + bytes.size() / 64 + 512);
  while (!bytes.empty()) {
    ERR_clear_error();
    int chunk = static_cast<int>(std::min<size_t>(bytes.size(), 1 << 20));
    int ret = SSL_write(static_cast<SSL*>(ssl_), bytes.data(), chunk);
    if (ret <= 0) return Fail(ret, "write");
    bytes.remove_prefix(static_cast<size_t>(ret));
  }
  return TlsStep::kDone;
}

std::string TlsSession::protocol() const { return SSL_get_version(static_cast<SSL*>(ssl_)); }

std::string TlsSession::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(static_cast<SSL*>(ssl_));
  return c ? SSL_CIPHER_standard_name(c) : "";
}

void TlsSession::Shutdown() {
  ERR_clear_error();
  if (handshake_done_) SSL_shutdown(static_cast<SSL*>(ssl_));
  ERR_clear_error();
}

}  // namespace picos::transports
