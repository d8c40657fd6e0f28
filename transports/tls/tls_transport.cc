#include "transports/tls/tls_transport.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/io/io_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos::tls {

namespace {

// Ciphertext read from the inner stream at once: many records per read
// when they are there (bulk), whatever is there when not.
constexpr size_t kCipherChunk = 256 * 1024;
// Plaintext encrypted per write to the inner stream: bounds the ciphertext
// held in memory whatever the size of one Write().
constexpr size_t kPlainChunk = 256 * 1024;
constexpr size_t kMaxParam = 1024;
// Reads of the inner stream one handshake may take: a peer dribbling a byte
// at a time is cut off here, or by the handshake deadline, whichever first.
constexpr int kMaxHandshakeReads = 4096;

std::string WithScheme(const std::string& address, const char* scheme) {
  size_t colon = address.find("://");
  if (colon == std::string::npos) return address;
  return absl::StrCat(scheme, address.substr(colon));
}

class TlsStream : public Stream {
 public:
  TlsStream(std::unique_ptr<Stream> inner, std::unique_ptr<TlsSession> session)
      : inner_(std::move(inner)),
        session_(std::move(session)),
        cipher_(kCipherChunk, '\0'),
        local_(WithScheme(inner_->local_address(), "tls")),
        peer_(WithScheme(inner_->peer_address(), "tls")),
        max_queue_(inner_->max_write_queue()) {}
  ~TlsStream() override { Close(); }

  Task<absl::StatusOr<size_t>> ReadSome(char* buf, size_t min_bytes, size_t max_bytes,
                                        absl::Duration timeout) override {
    if (min_bytes < 1 || min_bytes > max_bytes) {
      co_return absl::InvalidArgumentError("ReadSome needs 1 <= min_bytes <= max_bytes");
    }
    if (closed_) co_return absl::FailedPreconditionError("read of a closed TLS stream");
    const internal::Deadline deadline(timeout);
    // Plaintext kept from a read that timed out comes first.
    size_t got = std::min(pending_.size(), max_bytes);
    std::memcpy(buf, pending_.data(), got);
    pending_.erase(0, got);
    while (got < min_bytes) {
      size_t n = 0;
      TlsStep step = session_->Read(buf + got, max_bytes - got, &n);
      if (step == TlsStep::kDone) {
        got += n;
        // Enough for the caller, but decrypt what is already here too, up
        // to max_bytes: fewer, larger reads for bulk transfers.
        while (got >= min_bytes && got < max_bytes) {
          if (session_->Read(buf + got, max_bytes - got, &n) != TlsStep::kDone) break;
          got += n;
        }
        continue;
      }
      if (step == TlsStep::kClosed) break;  // close_notify: end of stream
      if (step == TlsStep::kError) {
        co_await FlushAlert();
        PICOS_LOG(warn, "TLS read from {} failed: {}", peer_address(), session_->error().ToString());
        co_return session_->error();
      }
      absl::StatusOr<size_t> r =
          co_await inner_->ReadSome(cipher_.data(), 1, cipher_.size(), deadline.Remaining());
      if (!r.ok()) {
        // Nothing is lost: what was decrypted waits for the next read.
        pending_.insert(0, buf, got);
        co_return r.status();
      }
      if (*r == 0) {
        session_->FeedEof();
      } else {
        // cipher_ is not read into again before the session asks for more.
        session_->FeedCiphertextInPlace(std::string_view(cipher_.data(), *r));
      }
    }
    co_return got;
  }

  Task<absl::Status> Write(std::string data, absl::Duration timeout) override {
    if (closed_ || shut_) co_return absl::FailedPreconditionError("write to a closed TLS stream");
    const internal::Deadline deadline(timeout);
    size_t off = 0;
    do {
      size_t chunk = std::min(kPlainChunk, data.size() - off);
      if (session_->Write(std::string_view(data).substr(off, chunk)) != TlsStep::kDone) {
        co_return session_->error();
      }
      off += chunk;
      absl::Status st = co_await inner_->Write(session_->TakeCiphertext(), deadline.Remaining());
      peak_ = std::max(peak_, inner_->peak_write_queue_bytes());
      if (!st.ok()) co_return st;
    } while (off < data.size());
    co_return absl::OkStatus();
  }

  Task<absl::Status> Shutdown(absl::Duration timeout) override {
    if (closed_) co_return absl::FailedPreconditionError("shutdown of a closed TLS stream");
    if (shut_) co_return absl::OkStatus();
    shut_ = true;
    const internal::Deadline deadline(timeout);
    session_->Shutdown();
    absl::Status st = co_await inner_->Write(session_->TakeCiphertext(), deadline.Remaining());
    if (!st.ok()) co_return st;
    co_return co_await inner_->Shutdown(deadline.Remaining());
  }

  // Sends close_notify, so that the peer reads an orderly end rather than
  // a truncation, then closes. Close() may not suspend: the last bytes go
  // out from a small task that owns the inner stream from here on (a second
  // at most), or with the inner stream's own close if no task can run.
  void Close() override {
    if (closed_) return;
    closed_ = true;
    if (!shut_ && session_->handshake_done()) {
      session_->Shutdown();
      std::string notify = session_->TakeCiphertext();
      Scheduler* s = Scheduler::Current();
      if (s != nullptr && !notify.empty()) {
        auto flush = [](std::unique_ptr<Stream> inner, std::string bytes) -> Task<> {
          (void)co_await inner->Write(std::move(bytes), absl::Seconds(1));
          inner->Close();
        };
        s->Spawn(flush, std::move(inner_), std::move(notify));
        return;
      }
    }
    inner_->Close();
  }
  void Abort() override {
    closed_ = true;
    if (inner_) inner_->Abort();
  }

  size_t write_queue_bytes() const override { return inner_ ? inner_->write_queue_bytes() : 0; }
  size_t peak_write_queue_bytes() const override { return peak_; }
  size_t max_write_queue() const override { return max_queue_; }
  std::string local_address() const override { return local_; }
  std::string peer_address() const override { return peer_; }

 private:
  Task<> FlushAlert() {
    if (session_->HasCiphertext()) {
      (void)co_await inner_->Write(session_->TakeCiphertext(), absl::Seconds(1));
    }
  }

  std::unique_ptr<Stream> inner_;
  std::unique_ptr<TlsSession> session_;
  std::string cipher_;   // inner reads land here (owned by the stream, not a frame)
  std::string pending_;  // decrypted, not yet delivered
  // Kept here: after Close() the inner stream may belong to the task that
  // sends close_notify.
  std::string local_;
  std::string peer_;
  size_t max_queue_;
  size_t peak_ = 0;
  bool closed_ = false;
  bool shut_ = false;
};

// Handshakes run side by side, each in a task of its own, so that a client
// that stalls its handshake delays nobody else: Accept hands out whichever
// connection finished first. A pump task accepts from the inner listener
// while fewer than kMaxPending connections are handshaking or waiting to
// be accepted; beyond that the kernel's backlog holds them.
constexpr int kMaxPending = 64;

struct AcceptQueue {
  std::unique_ptr<Listener> inner;
  std::shared_ptr<const TlsContext> context;
  std::deque<std::unique_ptr<Stream>> ready;
  int handshaking = 0;
  absl::Status error;     // why the inner listener stopped; OK while it runs
  bool closed = false;
  internal::WaitSlot accepter;  // the task in Accept
  internal::WaitSlot pump;      // the pump, when kMaxPending is reached

  int pending() const { return handshaking + static_cast<int>(ready.size()); }
};

Task<> HandshakeOne(std::shared_ptr<AcceptQueue> q, std::unique_ptr<Stream> raw) {
  std::string peer = raw->peer_address();
  absl::StatusOr<std::unique_ptr<Stream>> tls =
      co_await Wrap(std::move(raw), q->context, std::string(),
                    absl::Milliseconds(q->context->config().handshake_timeout_ms));
  --q->handshaking;
  if (!tls.ok()) {
    PICOS_LOG(warn, "TLS handshake with {} failed: {}", peer, tls.status().ToString());
  } else if (!q->closed) {
    q->ready.push_back(*std::move(tls));
    q->accepter.Notify();
  }
  q->pump.Notify();
}

Task<> Pump(std::shared_ptr<AcceptQueue> q) {
  while (!q->closed) {
    if (q->pending() >= kMaxPending) {
      const internal::Deadline second(absl::Seconds(1));
      absl::Status woken = co_await q->pump.Wait(second);
      if (woken.code() == absl::StatusCode::kCancelled) break;
      continue;
    }
    absl::StatusOr<std::unique_ptr<Stream>> raw = co_await q->inner->Accept();
    if (!raw.ok()) {
      q->error = raw.status();
      q->accepter.Notify();
      co_return;
    }
    ++q->handshaking;
    ThisScheduler().Spawn(HandshakeOne, q, *std::move(raw));
  }
  q->error = absl::FailedPreconditionError("TLS listener closed");
  q->accepter.Notify();
}

class TlsListener : public Listener {
 public:
  TlsListener(std::unique_ptr<Listener> inner, std::shared_ptr<const TlsContext> context,
              std::string address)
      : q_(std::make_shared<AcceptQueue>()), address_(std::move(address)) {
    q_->inner = std::move(inner);
    q_->context = std::move(context);
    pump_ = ThisScheduler().Spawn(Pump, q_);
  }
  ~TlsListener() override { Close(); }

  // The next connection whose handshake succeeded. Clients whose handshake
  // fails or stalls are logged and dropped by their own task.
  Task<absl::StatusOr<std::unique_ptr<Stream>>> Accept(absl::Duration timeout) override {
    std::shared_ptr<AcceptQueue> q = q_;
    const internal::Deadline deadline(timeout);
    for (;;) {
      if (!q->ready.empty()) {
        std::unique_ptr<Stream> s = std::move(q->ready.front());
        q->ready.pop_front();
        q->pump.Notify();
        co_return s;
      }
      if (q->closed) co_return absl::FailedPreconditionError("accept on a closed TLS listener");
      if (!q->error.ok()) co_return q->error;
      absl::Status woken = co_await q->accepter.Wait(deadline);
      if (!woken.ok()) {
        if (woken.code() == absl::StatusCode::kDeadlineExceeded) {
          co_return absl::DeadlineExceededError("TLS accept timed out");
        }
        co_return woken;
      }
    }
  }

  void Close() override {
    if (q_->closed) return;
    q_->closed = true;
    q_->ready.clear();
    q_->inner->Close();  // the pump's Accept ends
    q_->accepter.Notify();
    q_->pump.Notify();
  }
  std::string address() const override { return address_; }

 private:
  std::shared_ptr<AcceptQueue> q_;
  TaskRef pump_;
  std::string address_;  // a tls:// URI a client can connect to
};

struct Parsed {
  TlsConfig config;
  std::string name;
  std::string inner = "tcp";
  std::string path;
};

absl::StatusOr<Parsed> ParseParams(const Uri& uri, const TlsConfig& defaults, TlsRole role) {
  Parsed p;
  p.config = defaults;
  p.name = uri.host;
  for (const auto& [key, value] : uri.query) {
    if (value.size() > kMaxParam) {
      return absl::InvalidArgumentError(absl::StrCat("tls: parameter ", key, " is too long"));
    }
    if (key == "ca") {
      p.config.ca_file = value;
    } else if (key == "cert") {
      p.config.cert_file = value;
    } else if (key == "key") {
      p.config.key_file = value;
    } else if (key == "verify" && (value == "0" || value == "1")) {
      p.config.verify_peer = value == "1";
    } else if (key == "require_client_cert" && (value == "0" || value == "1")) {
      p.config.require_client_cert = value == "1";
    } else if (key == "name") {
      p.name = value;
    } else if (key == "inner") {
      p.inner = value;
    } else if (key == "path") {
      p.path = value;
    } else if (key == "handshake_ms") {
      int ms = 0;
      if (!absl::SimpleAtoi(value, &ms) || ms < 1 || ms > 600'000) {
        return absl::InvalidArgumentError("tls: handshake_ms must be 1..600000");
      }
      p.config.handshake_timeout_ms = ms;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "tls: unknown or malformed parameter '", key, "' (known: ca, cert, key, verify=0|1, "
          "require_client_cert=0|1, name, inner, path, handshake_ms)"));
    }
  }
  if (role == TlsRole::kClient && p.name.empty() && p.config.verify_peer) {
    return absl::InvalidArgumentError("tls: a verifying client needs a host or name= to check");
  }
  return p;
}

absl::StatusOr<Uri> InnerUri(const Uri& uri, const Parsed& p) {
  Uri inner;
  inner.scheme = p.inner;
  if (p.inner == "unix") {
    if (p.path.empty()) return absl::InvalidArgumentError("tls: inner=unix needs path=");
    inner.port = -1;
    if (p.path[0] == '@') {
      inner.path = p.path.substr(1);
      inner.abstract_socket = true;
    } else {
      inner.path = p.path;
    }
  } else {
    inner.host = uri.host;
    inner.port = uri.port;
  }
  return inner;
}

// SSL_CTX creation reads files; contexts are kept per configuration.
class ContextCache {
 public:
  absl::StatusOr<std::shared_ptr<const TlsContext>> Get(const TlsConfig& c, TlsRole role) {
    std::string key = absl::StrCat(role == TlsRole::kClient ? "c" : "s", "|", c.ca_file, "|",
                                   c.cert_file, "|", c.key_file, "|", c.verify_peer, "|",
                                   c.require_client_cert, "|", c.handshake_timeout_ms);
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    absl::StatusOr<std::shared_ptr<const TlsContext>> ctx = TlsContext::Create(c, role);
    if (!ctx.ok()) return ctx.status();
    if (cache_.size() >= 64) cache_.clear();  // bounded: configurations are few
    cache_[key] = *ctx;
    return *ctx;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const TlsContext>> cache_ ABSL_GUARDED_BY(mu_);
};

ContextCache& Contexts() {
  static ContextCache* const cache = new ContextCache;
  return *cache;
}

}  // namespace

Task<absl::StatusOr<std::unique_ptr<Stream>>> Wrap(std::unique_ptr<Stream> inner,
                                                   std::shared_ptr<const TlsContext> context,
                                                   std::string server_name,
                                                   absl::Duration handshake_timeout) {
  absl::StatusOr<std::unique_ptr<TlsSession>> created =
      TlsSession::Create(std::move(context), server_name);
  if (!created.ok()) co_return created.status();
  std::unique_ptr<TlsSession> session = *std::move(created);
  const internal::Deadline deadline(handshake_timeout);
  std::string buf(kCipherChunk, '\0');
  for (int reads = 0; reads < kMaxHandshakeReads; ++reads) {
    TlsStep step = session->Handshake();
    if (session->HasCiphertext()) {
      // On failure this is the alert telling the peer why: send it first.
      absl::Status sent = co_await inner->Write(session->TakeCiphertext(),
                                                std::min(deadline.Remaining(), absl::Seconds(1)));
      if (!sent.ok() && step != TlsStep::kError) co_return sent;
    }
    if (step == TlsStep::kDone) {
      PICOS_LOG(debug, "TLS with {}: {} {}", inner->peer_address(), session->protocol(),
                session->cipher());
      co_return std::unique_ptr<Stream>(new TlsStream(std::move(inner), std::move(session)));
    }
    if (step == TlsStep::kError) co_return session->error();
    if (step == TlsStep::kClosed) co_return absl::UnavailableError("TLS peer closed during handshake");
    absl::StatusOr<size_t> r = co_await inner->ReadSome(buf.data(), 1, buf.size(), deadline.Remaining());
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kDeadlineExceeded) {
        co_return absl::DeadlineExceededError(absl::StrCat(
            "TLS handshake did not complete within ", absl::FormatDuration(handshake_timeout)));
      }
      co_return r.status();
    }
    if (*r == 0) {
      session->FeedEof();
    } else {
      session->FeedCiphertext(std::string_view(buf.data(), *r));
    }
  }
  co_return absl::UnavailableError("TLS handshake: too many reads without completing");
}

TlsTransport::TlsTransport(const TransportRegistry& inner, TlsConfig defaults)
    : inner_(inner), defaults_(std::move(defaults)) {}

void RegisterTlsTransport(TransportRegistry::Builder& builder, const TransportRegistry& inner,
                          TlsConfig defaults) {
  builder.RegisterStream(std::make_unique<TlsTransport>(inner, std::move(defaults)));
}

Task<absl::StatusOr<std::unique_ptr<Stream>>> TlsTransport::Connect(Uri uri,
                                                                    absl::Duration timeout,
                                                                    StreamOptions options) {
  absl::StatusOr<Parsed> p = ParseParams(uri, defaults_, TlsRole::kClient);
  if (!p.ok()) co_return p.status();
  absl::StatusOr<Uri> inner_uri = InnerUri(uri, *p);
  if (!inner_uri.ok()) co_return inner_uri.status();
  absl::StatusOr<StreamTransport*> inner = inner_.StreamFor(p->inner);
  if (!inner.ok()) co_return inner.status();
  absl::StatusOr<std::shared_ptr<const TlsContext>> ctx = Contexts().Get(p->config, TlsRole::kClient);
  if (!ctx.ok()) co_return ctx.status();
  const internal::Deadline deadline(timeout);
  absl::StatusOr<std::unique_ptr<Stream>> raw =
      co_await (*inner)->Connect(*inner_uri, timeout, options);
  if (!raw.ok()) co_return raw.status();
  absl::Duration handshake =
      std::min(deadline.Remaining(), absl::Milliseconds(p->config.handshake_timeout_ms));
  co_return co_await Wrap(*std::move(raw), *ctx, p->name, handshake);
}

Task<absl::StatusOr<std::unique_ptr<Listener>>> TlsTransport::Listen(Uri uri,
                                                                     StreamOptions options) {
  absl::StatusOr<Parsed> p = ParseParams(uri, defaults_, TlsRole::kServer);
  if (!p.ok()) co_return p.status();
  absl::StatusOr<Uri> inner_uri = InnerUri(uri, *p);
  if (!inner_uri.ok()) co_return inner_uri.status();
  absl::StatusOr<StreamTransport*> inner = inner_.StreamFor(p->inner);
  if (!inner.ok()) co_return inner.status();
  absl::StatusOr<std::shared_ptr<const TlsContext>> ctx = Contexts().Get(p->config, TlsRole::kServer);
  if (!ctx.ok()) co_return ctx.status();
  absl::StatusOr<std::unique_ptr<Listener>> raw = co_await (*inner)->Listen(*inner_uri, options);
  if (!raw.ok()) co_return raw.status();
  // What a client connects to: the inner address in tls:// form, keeping
  // the parameters that say how to reach it (not the server's files).
  std::string address;
  if (p->inner == "tcp") {
    address = WithScheme((*raw)->address(), "tls");
  } else {
    Uri client = uri;
    client.query.clear();
    client.query.emplace_back("inner", p->inner);
    client.query.emplace_back("path", p->path);
    address = client.ToString();
  }
  co_return std::unique_ptr<Listener>(new TlsListener(*std::move(raw), *ctx, std::move(address)));
}

}  // namespace picos::tls
