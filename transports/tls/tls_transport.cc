#include "transports/tls/tls_transport.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <list>
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
#include "core/kernel/task_group.h"

namespace picos::transports {

namespace {

// A TLS record on the wire: a 5-byte header (type, version, length) and at
// most 2^14 bytes of plaintext plus 2048 of expansion.
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecordBody = 16384 + 2048;
constexpr size_t kMaxRecord = kRecordHeader + kMaxRecordBody;
// Ciphertext read from the inner stream at once while data flows: many
// records per read for bulk transfers. At most kMaxSpareBuffer, so that the
// buffer is reused from one read to the next.
constexpr size_t kCipherChunk = 256 * 1024;
static_assert(kCipherChunk >= kMaxRecord && kCipherChunk <= internal::kMaxSpareBuffer);
// Plaintext encrypted per write to the inner stream: bounds the ciphertext
// held in memory whatever the size of one Write().
constexpr size_t kPlainChunk = 256 * 1024;
constexpr size_t kMaxParam = 1024;
// Bounds on handshake_timeout=.
constexpr absl::Duration kMinHandshakeTimeout = absl::Milliseconds(1);
constexpr absl::Duration kMaxHandshakeTimeout = absl::Minutes(10);
// Reads of the inner stream one handshake may take: a peer dribbling a byte
// at a time is cut off here, or by the handshake deadline, whichever first.
constexpr int kMaxHandshakeReads = 4096;
// What a server's half-open connection costs before any buffer: the inner
// stream, the handshake task and its frames (charged when accepted), and
// the TLS session with its handshake state (charged once the client has
// said something). Estimates, a little above what was measured (about 2 KB
// and 8 KB).
constexpr size_t kHalfOpenBytes = 4 * 1024;
constexpr size_t kHandshakeSessionBytes = 12 * 1024;
// Streams whose close_notify is still on its way, per scheduler.
constexpr size_t kMaxClosing = 4096;

std::string WithScheme(const std::string& address, const char* scheme) {
  size_t colon = address.find("://");
  if (colon == std::string::npos) return address;
  return absl::StrCat(scheme, address.substr(colon));
}

// Follows the record boundaries through the ciphertext read from the peer,
// so that a read knows how many bytes complete the record in progress, and
// whether what arrives looks like TLS at all.
class RecordTracker {
 public:
  void Consume(const char* p, size_t n) {
    while (n > 0) {
      if (body_left_ > 0) {
        size_t k = std::min(n, body_left_);
        body_left_ -= k;
        p += k;
        n -= k;
        continue;
      }
      size_t k = std::min(n, kRecordHeader - header_have_);
      std::memcpy(header_ + header_have_, p, k);
      header_have_ += k;
      p += k;
      n -= k;
      if (header_have_ == kRecordHeader) {
        body_left_ = (size_t{header_[3]} << 8) | header_[4];
        header_have_ = 0;
        // change_cipher_spec, alert, handshake, application_data; SSL 3 or
        // a TLS version; a length a record may have.
        if (header_[0] < 20 || header_[0] > 23 || header_[1] != 3 || body_left_ > kMaxRecordBody) {
          plausible_ = false;
        }
      }
    }
  }
  // Bytes that complete the record in progress: the rest of its header, or
  // of its body; 0 at a boundary.
  size_t Missing() const { return body_left_ > 0 ? body_left_ : header_have_ > 0 ? kRecordHeader - header_have_ : 0; }
  bool plausible() const { return plausible_; }

 private:
  unsigned char header_[kRecordHeader];
  size_t header_have_ = 0;
  size_t body_left_ = 0;
  bool plausible_ = true;
};

class TlsListener;

// Memory that a half-open connection holds, charged to its listener's
// budget (TlsConfig::max_half_open_bytes).
struct HalfOpen {
  TlsListener* listener;
  TaskRef task;
  size_t bytes = 0;    // charged now
  bool shed = false;   // told to end to make room: no longer counted
  void Charge(ptrdiff_t delta);
};

// Reads ciphertext from the inner stream into a session, holding no buffer
// while it waits: it waits for the next bytes in a few bytes of its own
// (the header of the next record, usually), and only then takes a buffer
// for that record and for whatever else has arrived, which the session
// reads in place. The buffer goes back as soon as the session has consumed
// it, so an idle connection, or a handshake that stalls, holds none.
class CipherIn {
 public:
  explicit CipherIn(size_t chunk, HalfOpen* charge = nullptr) : chunk_(chunk), charge_(charge) {}
  ~CipherIn() { Release(); }
  CipherIn(const CipherIn&) = delete;
  CipherIn& operator=(const CipherIn&) = delete;

  // Waits up to `timeout` for the next bytes from `inner`, taking no buffer.
  // OK(n): n bytes are held for the next Fill (0: the stream ended).
  Task<absl::StatusOr<size_t>> Wait(Stream* inner, absl::Duration timeout) {
    if (head_len_ > 0 || eof_) co_return head_len_;
    size_t want = tracker_.Missing();
    if (want == 0 || want > kRecordHeader) want = kRecordHeader;
    absl::StatusOr<size_t> n = co_await inner->ReadSome(head_, 1, want, timeout);
    if (!n.ok()) co_return n.status();
    tracker_.Consume(head_, *n);
    head_len_ = *n;
    if (*n == 0) eof_ = true;
    co_return *n;
  }

  // Reads what `session` needs next and feeds it (FeedEof at the end of the
  // stream). Only when the session asked for more (kWantRead): what was fed
  // before has been consumed. OK(bytes fed; 0 at the end), or the inner
  // stream's error, with nothing lost.
  Task<absl::StatusOr<size_t>> Fill(Stream* inner, TlsSession* session, absl::Duration timeout) {
    Release();
    const internal::Deadline deadline(timeout);
    absl::StatusOr<size_t> first = co_await Wait(inner, timeout);
    if (!first.ok()) co_return first.status();
    if (head_len_ == 0) {
      session->FeedEof();
      co_return size_t{0};
    }
    const size_t have = head_len_;
    size_t need = tracker_.Missing();
    if (need == 0 || !tracker_.plausible()) {
      // A record ends here, or this is not TLS (the session says why at
      // once, rather than after waiting for a record that never ends).
      session->FeedCiphertext(std::string_view(head_, have));
      head_len_ = 0;
      co_return have;
    }
    // Data flows: a buffer for the rest of this record and whatever else
    // has arrived.
    // Not much more than asked for: a handshake's buffer is charged to its
    // listener's budget.
    buf_ = internal::TakeBuffer(chunk_, 2 * chunk_);
    buf_.resize(chunk_);
    charged_ = buf_.capacity();
    if (charge_ != nullptr) charge_->Charge(static_cast<ptrdiff_t>(charged_));
    std::memcpy(buf_.data(), head_, have);
    absl::StatusOr<size_t> r = co_await inner->ReadSome(
        buf_.data() + have, std::min(need, chunk_ - have), chunk_ - have, deadline.Remaining());
    if (!r.ok()) {
      // What did not arrive in time stays in the inner stream; the head is
      // kept for the next Fill.
      Release();
      co_return r.status();
    }
    head_len_ = 0;
    tracker_.Consume(buf_.data() + have, *r);
    session->FeedCiphertextInPlace(std::string_view(buf_.data(), have + *r));
    if (*r == 0) {
      eof_ = true;
      session->FeedEof();
    }
    co_return have + *r;
  }

  // From a handshake to the stream it made: buffers are no longer charged
  // to a listener, and reads take bigger bites.
  void Detach(size_t chunk) {
    if (charge_ != nullptr) charge_->Charge(-static_cast<ptrdiff_t>(charged_));
    charge_ = nullptr;
    chunk_ = chunk;
  }

 private:
  void Release() {
    if (charged_ == 0) return;
    if (charge_ != nullptr) charge_->Charge(-static_cast<ptrdiff_t>(charged_));
    charged_ = 0;
    internal::GiveBackBuffer(std::exchange(buf_, std::string()));
  }

  RecordTracker tracker_;
  char head_[kRecordHeader];
  size_t head_len_ = 0;  // bytes in head_ not fed yet
  bool eof_ = false;
  std::string buf_;       // the session may read it in place until it asks for more
  size_t charged_ = 0;    // buf_'s capacity while held
  size_t chunk_;
  HalfOpen* charge_;
};

// Streams whose close_notify is still on its way (TlsStream::Close): a
// group per scheduler, bounded, ended with the scheduler.
struct ClosingStreams final : Scheduler::Extension {
  explicit ClosingStreams(Scheduler& s)
      : tasks(s, {.name = "tls close_notify", .max_tasks = kMaxClosing}) {}
  TaskGroup tasks;
};

TaskGroup& Closing(Scheduler& s) { return s.State<ClosingStreams>().tasks; }

Task<> FlushAndClose(std::unique_ptr<Stream> inner, std::string bytes) {
  (void)co_await inner->Write(std::move(bytes), absl::Seconds(1));
  inner->Close();
}

class TlsStream : public Stream {
 public:
  TlsStream(std::unique_ptr<Stream> inner, std::unique_ptr<TlsSession> session,
            std::unique_ptr<CipherIn> in)
      : inner_(std::move(inner)),
        in_(std::move(in)),
        session_(std::move(session)),
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
    if (got > 0) {
      std::memcpy(buf, pending_.data(), got);
      pending_.erase(0, got);
      if (pending_.empty()) std::string().swap(pending_);
    }
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
        PICOS_LOG_LIMITED(warn, "TLS read from {} failed: {}", peer_address(),
                          session_->error().ToString());
        co_return session_->error();
      }
      absl::StatusOr<size_t> r =
          co_await in_->Fill(inner_.get(), session_.get(), deadline.Remaining());
      if (!r.ok()) {
        // Nothing is lost: what was decrypted waits for the next read.
        pending_.insert(0, buf, got);
        co_return r.status();
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
  // out from a small task of the scheduler's closing group, which owns the
  // inner stream from here on (a second at most), or, when that cannot be
  // (no scheduler here, or kMaxClosing streams closing already), with the
  // inner stream's own close.
  void Close() override {
    if (closed_) return;
    closed_ = true;
    if (!shut_ && session_->handshake_done()) {
      session_->Shutdown();
      std::string notify = session_->TakeCiphertext();
      Scheduler* s = Scheduler::Current();
      if (s != nullptr && !notify.empty()) {
        absl::StatusOr<TaskRef> flush = Closing(*s).Spawn(FlushAndClose, std::move(inner_),
                                                          std::move(notify));
        if (flush.ok()) return;
        PICOS_LOG_LIMITED(debug, "TLS close_notify to {} not sent: {}", peer_,
                          flush.status().ToString());
      }
    }
    if (inner_) inner_->Close();
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
  // Before the session, which may read in_'s buffer in place: destroyed
  // after it.
  std::unique_ptr<CipherIn> in_;
  std::unique_ptr<TlsSession> session_;
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

// The handshake over `inner`; buffers and the session are charged to
// `charge` when a listener accepted the connection.
Task<absl::StatusOr<std::unique_ptr<Stream>>> Handshake(std::unique_ptr<Stream> inner,
                                                        std::shared_ptr<const TlsContext> context,
                                                        std::string server_name,
                                                        absl::Duration handshake_timeout,
                                                        HalfOpen* charge) {
  const internal::Deadline deadline(handshake_timeout);
  auto in = std::make_unique<CipherIn>(kMaxRecord, charge);
  auto timed_out = [&handshake_timeout](const absl::Status& st) {
    if (st.code() != absl::StatusCode::kDeadlineExceeded) return st;
    return absl::DeadlineExceededError(absl::StrCat(
        "TLS handshake did not complete within ", absl::FormatDuration(handshake_timeout)));
  };
  if (context->role() == TlsRole::kServer) {
    // A server has nothing to say before the client's hello: wait for its
    // first bytes before paying for a session.
    absl::StatusOr<size_t> first = co_await in->Wait(inner.get(), deadline.Remaining());
    if (!first.ok()) co_return timed_out(first.status());
    if (*first == 0) co_return absl::UnavailableError("TLS peer closed during handshake");
  }
  absl::StatusOr<std::unique_ptr<TlsSession>> created =
      TlsSession::Create(std::move(context), server_name);
  if (!created.ok()) co_return created.status();
  std::unique_ptr<TlsSession> session = *std::move(created);
  struct SessionCharge {
    HalfOpen* h;
    SessionCharge(HalfOpen* h) : h(h) {
      if (h) h->Charge(kHandshakeSessionBytes);
    }
    ~SessionCharge() {
      if (h) h->Charge(-static_cast<ptrdiff_t>(kHandshakeSessionBytes));
    }
  } session_charge(charge);
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
      in->Detach(kCipherChunk);
      co_return std::unique_ptr<Stream>(
          new TlsStream(std::move(inner), std::move(session), std::move(in)));
    }
    if (step == TlsStep::kError) co_return session->error();
    if (step == TlsStep::kClosed) co_return absl::UnavailableError("TLS peer closed during handshake");
    absl::StatusOr<size_t> r = co_await in->Fill(inner.get(), session.get(), deadline.Remaining());
    if (!r.ok()) co_return timed_out(r.status());
  }
  co_return absl::UnavailableError("TLS handshake: too many reads without completing");
}

// A server's listener. Every connection accepted from the inner listener
// handshakes in a task of its own, so that a client that stalls its
// handshake delays nobody else, and Accept hands out whichever connection
// finished first. There is no count of connections in their handshake:
// each is bounded in time (the handshake timeout) and all of them together
// in memory (TlsConfig::max_half_open_bytes): beyond it the oldest are told
// to end. Connections whose handshake finished wait for Accept, up to the
// backlog; beyond that the pump pauses and the kernel's backlog holds the
// rest, as with any listener. The pump and the handshakes belong to the
// listener's TaskGroup: they end with it.
class TlsListener : public Listener {
 public:
  TlsListener(std::unique_ptr<Listener> inner, std::shared_ptr<const TlsContext> context,
              std::string address, size_t max_ready)
      : inner_(std::move(inner)),
        context_(std::move(context)),
        address_(std::move(address)),
        max_ready_(std::max<size_t>(max_ready, 1)),
        budget_(context_->config().max_half_open_bytes),
        tasks_(ThisScheduler(), {.name = "tls listener"}) {
    absl::StatusOr<TaskRef> pump = tasks_.Spawn(&TlsListener::Pump, this);
    if (!pump.ok()) error_ = pump.status();
  }
  ~TlsListener() override { Close(); }

  // The next connection whose handshake succeeded. Clients whose handshake
  // fails or stalls are logged (rate-limited) and dropped by their task.
  Task<absl::StatusOr<std::unique_ptr<Stream>>> Accept(absl::Duration timeout) override {
    const internal::Deadline deadline(timeout);
    for (;;) {
      if (closed_) co_return absl::FailedPreconditionError("accept on a closed TLS listener");
      if (!ready_.empty()) {
        std::unique_ptr<Stream> s = std::move(ready_.front());
        ready_.pop_front();
        pump_.Notify();
        co_return s;
      }
      if (!error_.ok()) co_return error_;
      absl::Status woken = co_await accepter_.Wait(deadline);
      if (!woken.ok()) {
        if (woken.code() == absl::StatusCode::kDeadlineExceeded) {
          co_return absl::DeadlineExceededError("TLS accept timed out");
        }
        co_return woken;
      }
    }
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    // The pump and every handshake end now, closing their sockets.
    tasks_.Clear();
    half_open_.clear();
    shedding_.clear();
    ready_.clear();
    inner_->Close();
    accepter_.Notify();
  }
  std::string address() const override { return address_; }

  // A half-open connection's memory changed (HalfOpen::Charge).
  void Charged(ptrdiff_t delta) {
    half_open_bytes_ += delta;
    if (delta > 0) Shed(budget_);
  }

 private:
  using HalfOpenList = std::list<HalfOpen>;

  Task<> Pump() {
    for (;;) {
      if (ready_.size() >= max_ready_) {
        absl::Status woken = co_await pump_.Wait(internal::Deadline(absl::InfiniteDuration()));
        if (!woken.ok()) co_return;
        continue;
      }
      absl::StatusOr<std::unique_ptr<Stream>> raw = co_await inner_->Accept();
      if (raw.ok()) {
        Admit(*std::move(raw));
        continue;
      }
      const absl::StatusCode code = raw.status().code();
      if (code == absl::StatusCode::kFailedPrecondition || code == absl::StatusCode::kCancelled) {
        error_ = raw.status();  // the inner listener closed
        accepter_.Notify();
        co_return;
      }
      // One failed accept (out of descriptors, a connection reset before it
      // was taken): the listener goes on. Out of descriptors, connections
      // still in their handshake are the first to give theirs back.
      PICOS_LOG_LIMITED(warn, "TLS listener {}: {}", address_, raw.status().ToString());
      if (code == absl::StatusCode::kResourceExhausted) Shed(half_open_bytes_ / 2);
    }
  }

  void Admit(std::unique_ptr<Stream> raw) {
    half_open_.push_back(HalfOpen{this});
    HalfOpenList::iterator it = std::prev(half_open_.end());
    absl::StatusOr<TaskRef> t = tasks_.Spawn(&TlsListener::HandshakeOne, this, it, std::move(raw));
    if (!t.ok()) {
      PICOS_LOG_LIMITED(warn, "TLS listener {}: {}", address_, t.status().ToString());
      Forget(it);
      return;
    }
    it->task = *std::move(t);
    // May drop the oldest (never this one: the budget holds a few).
    it->Charge(kHalfOpenBytes);
  }

  // Removes a half-open connection that ended (shaken hands, failed, shed).
  void Forget(HalfOpenList::iterator it) {
    if (!it->shed) half_open_bytes_ -= it->bytes;
    (it->shed ? shedding_ : half_open_).erase(it);
  }

  // Tells the oldest half-open connections to end until at most `limit`
  // bytes are charged.
  void Shed(size_t limit) {
    while (half_open_bytes_ > limit && !half_open_.empty()) {
      HalfOpenList::iterator oldest = half_open_.begin();
      oldest->shed = true;
      half_open_bytes_ -= oldest->bytes;
      ++shed_;
      PICOS_LOG_LIMITED(warn,
                        "TLS listener {}: dropping the oldest connection still in its handshake "
                        "({} dropped so far) to stay within {} bytes",
                        address_, shed_, budget_);
      (void)oldest->task.Terminate();
      shedding_.splice(shedding_.end(), half_open_, oldest);
    }
  }

  Task<> HandshakeOne(HalfOpenList::iterator it, std::unique_ptr<Stream> raw) {
    struct Done {
      TlsListener* l;
      HalfOpenList::iterator it;
      ~Done() { l->Forget(it); }  // also when the task is destroyed
    } done{this, it};
    std::string peer = raw->peer_address();
    absl::StatusOr<std::unique_ptr<Stream>> tls =
        co_await Handshake(std::move(raw), context_, std::string(),
                           context_->config().handshake_timeout, &*it);
    if (!tls.ok()) {
      if (it->shed) co_return;  // said when it was shed
      PICOS_LOG_LIMITED(warn, "TLS handshake with {} failed: {}", peer, tls.status().ToString());
      co_return;
    }
    ready_.push_back(*std::move(tls));
    accepter_.Notify();
  }

  std::unique_ptr<Listener> inner_;
  std::shared_ptr<const TlsContext> context_;
  std::string address_;  // a tls:// URI a client can connect to
  const size_t max_ready_;
  const size_t budget_;
  std::deque<std::unique_ptr<Stream>> ready_;  // shaken hands, waiting for Accept
  absl::Status error_;  // why the inner listener stopped; OK while it runs
  bool closed_ = false;
  internal::WaitSlot accepter_;  // the task in Accept
  internal::WaitSlot pump_;      // the pump, while ready_ is full
  HalfOpenList half_open_;       // in their handshake, oldest first
  HalfOpenList shedding_;        // told to end, not ended yet
  size_t half_open_bytes_ = 0;   // charged by half_open_
  uint64_t shed_ = 0;
  // Last: destroyed first, while what its tasks use still exists.
  TaskGroup tasks_;
};

void HalfOpen::Charge(ptrdiff_t delta) {
  bytes += delta;
  if (!shed) listener->Charged(delta);
}

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
    } else if (key == "handshake_timeout") {
      // A Duration, as everywhere in picos: "10s", "250ms", "1m".
      absl::Duration d;
      if (value.size() > 32 || !absl::ParseDuration(value, &d) || d < kMinHandshakeTimeout ||
          d > kMaxHandshakeTimeout) {
        return absl::InvalidArgumentError(
            absl::StrCat("tls: handshake_timeout must be a duration from ",
                         absl::FormatDuration(kMinHandshakeTimeout), " to ",
                         absl::FormatDuration(kMaxHandshakeTimeout), " (such as 10s or 250ms)"));
      }
      p.config.handshake_timeout = d;
    } else if (key == "half_open_kb") {
      int64_t kb = 0;
      if (!absl::SimpleAtoi(value, &kb) || kb < 64 || kb > (int64_t{1} << 30)) {
        return absl::InvalidArgumentError("tls: half_open_kb must be 64..1073741824");
      }
      p.config.max_half_open_bytes = static_cast<size_t>(kb) * 1024;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "tls: unknown or malformed parameter '", key, "' (known: ca, cert, key, verify=0|1, "
          "require_client_cert=0|1, name, inner, path, handshake_timeout, half_open_kb)"));
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
                                   c.require_client_cert, "|", absl::FormatDuration(c.handshake_timeout), "|",
                                   c.max_half_open_bytes);
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

Task<absl::StatusOr<std::unique_ptr<Stream>>> WrapTls(std::unique_ptr<Stream> inner,
                                                   std::shared_ptr<const TlsContext> context,
                                                   std::string server_name,
                                                   absl::Duration handshake_timeout) {
  return Handshake(std::move(inner), std::move(context), std::move(server_name), handshake_timeout,
                   nullptr);
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
      std::min(deadline.Remaining(), p->config.handshake_timeout);
  co_return co_await WrapTls(*std::move(raw), *ctx, p->name, handshake);
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
  co_return std::unique_ptr<Listener>(
      new TlsListener(*std::move(raw), *ctx, std::move(address), options.backlog));
}

}  // namespace picos::transports
