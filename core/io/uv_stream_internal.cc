#include "core/io/uv_stream_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/io/uv_request_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/status.h"

namespace picos::internal {

// Memory follows the data, as in nginx and kj: an idle stream holds no
// buffer. libuv asks for a buffer only when the socket is readable, so a
// stream that holds none reads into one scratch buffer of its loop's thread
// (a loop runs on one thread) and then keeps only the bytes that arrived.
// Once it holds a buffer, the next reads land in it directly, with no copy
// (the bytes of a bulk transfer are copied once, to the reader), and the
// buffer goes back (internal::GiveBackBuffer) as soon as the reader has
// taken every byte. A bulk transfer drains and refills its buffer over and
// over: the thread's spares keep that buffer between one drain and the
// next fill, so it is neither freed nor grown again each time (freeing it
// on every drain and growing a fresh one to the read-ahead bound by
// appends cost a copy and fresh pages per byte: TCP bulk throughput fell
// from about 0.8 of the bare-libuv floor to about a tenth).
//
// A read asks the kernel for this much at least: as many system calls as
// the bare-libuv floor pays.
constexpr size_t kReadChunk = 64 * 1024;

char* Scratch() {
  thread_local std::unique_ptr<char[]> scratch(new char[kReadChunk]);
  return scratch.get();
}

struct UvStreamState {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  UvKind kind;
  int refs = 1;  // the handle's
  bool closing = false;
  StreamOptions options;

  // Read side: bytes read ahead and not yet taken, rbuf[rhead, rtail).
  // rbuf is storage: its size() is its capacity (reads land in its tail);
  // empty while nothing is buffered.
  std::string rbuf;
  size_t rhead = 0;
  size_t rtail = 0;
  size_t want = 0;  // bytes a waiting reader needs buffered (its min)
  bool reading = false;
  bool eof = false;
  absl::Status rerror;
  WaitSlot reader;

  // Write side.
  size_t queued = 0;  // bytes handed to libuv, not yet written
  size_t peak = 0;
  bool shut = false;
  absl::Status werror;
  WaitSlot writer;

  // Listener side: accepted handles not yet taken, and whether libuv holds
  // one more connection that waits for uv_accept.
  // A vector, not a deque: an empty std::deque allocates about 600 bytes,
  // paid by every connection's state.
  std::vector<UvStreamState*> accepted;
  bool accept_pending = false;
  absl::Status lerror;
  WaitSlot acceptor;
  std::string unlink_path;

  size_t buffered() const { return rtail - rhead; }
  // Reading pauses once this much is buffered.
  size_t read_bound() const { return std::max(options.max_read_buffer, want); }
};

namespace {

void Unref(UvStreamState* s) {
  if (--s->refs == 0) {
    for (UvStreamState* a : s->accepted) CloseUvStreamState(a);
    delete s;
  }
}

// An operation's hold on the state: lives in the coroutine frame, so a
// killed task releases it when its frame is destroyed.
class Hold {
 public:
  explicit Hold(UvStreamState* s) : s_(s) { ++s_->refs; }
  ~Hold() { Unref(s_); }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;

 private:
  UvStreamState* s_;
};

void CloseHandle(UvStreamState* s, bool reset) {
  if (s->closing) return;
  s->closing = true;
  s->reader.Notify();
  s->writer.Notify();
  s->acceptor.Notify();
  if (!s->unlink_path.empty()) ::unlink(s->unlink_path.c_str());
  auto on_close = [](uv_handle_t* h) { Unref(static_cast<UvStreamState*>(h->data)); };
  if (reset && s->kind == UvKind::kTcp && !s->shut) {
    if (uv_tcp_close_reset(&s->h.tcp, on_close) == 0) return;
  }
  uv_close(&s->h.handle, on_close);
}

// The error a TCP socket holds for its next call (ECONNRESET after a
// reset), or 0. Reading it clears it.
int PendingSocketError(UvStreamState* s) {
  if (s->kind != UvKind::kTcp) return 0;
  uv_os_fd_t fd;
  if (uv_fileno(&s->h.handle, &fd) < 0) return 0;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return 0;
  return err;
}

// The biggest buffer a stream grows (twice its read-ahead bound, plus one
// read), and so the biggest spare it takes while data flows: at that size
// at most half of it is ever buffered, so AllocRead always finds room by
// moving the bytes to the front, which costs each byte at most one move.
size_t MaxStorage(const UvStreamState* s) { return 2 * s->read_bound() + kReadChunk; }

// `b` as the stream's storage: usable up to its capacity.
void AdoptStorage(UvStreamState* s, std::string b) {
  b.resize(b.capacity());  // no-op for a buffer that was storage before
  s->rbuf = std::move(b);
  s->rhead = 0;
  s->rtail = 0;
}

// Drained: the storage goes back, so that an idle stream holds none. It
// waits among the thread's spares for the next fill, of this stream or
// another.
void ReleaseIfDrained(UvStreamState* s) {
  if (s->buffered() > 0 || s->rbuf.empty()) return;
  GiveBackBuffer(std::exchange(s->rbuf, std::string()));
  s->rhead = 0;
  s->rtail = 0;
}

// libuv's alloc callback: where the next read lands.
void AllocRead(uv_handle_t* h, size_t, uv_buf_t* b) {
  auto* s = static_cast<UvStreamState*>(h->data);
  if (s->rbuf.empty()) {
    // Nothing buffered: the thread's scratch; OnRead keeps what arrived.
    *b = uv_buf_init(Scratch(), kReadChunk);
    return;
  }
  const size_t have = s->buffered();
  const size_t size = s->rbuf.size();
  if (size - s->rtail < kReadChunk) {
    if (have <= size / 2 && size - have >= kReadChunk) {
      // Room at the front: move the bytes left there (at most half the
      // buffer, so each byte moves at most once). Never in ReadSome: a
      // reader taking a little at a time would move the rest each time.
      std::memmove(s->rbuf.data(), s->rbuf.data() + s->rhead, have);
    } else {
      // Grow geometrically (appends would copy everything at every step).
      // With a reader waiting, into the biggest spare that fits (the
      // buffer of a bulk transfer, once grown, is not grown again); with
      // none, not much more than needed: nobody may read it soon.
      const size_t target =
          std::min(std::max(2 * size, have + kReadChunk), std::max(MaxStorage(s), have + kReadChunk));
      std::string bigger = s->want > 0 ? TakeBuffer(target, std::max(target, MaxStorage(s)), true)
                                       : TakeBuffer(target, 2 * target);
      bigger.resize(bigger.capacity());
      std::memcpy(bigger.data(), s->rbuf.data() + s->rhead, have);
      GiveBackBuffer(std::exchange(s->rbuf, std::move(bigger)));
    }
    s->rhead = 0;
    s->rtail = have;
  }
  // As much as fits, but past the read-ahead bound by no more than one
  // read (a spare may be much bigger than the bound).
  const size_t room = s->read_bound() > have ? s->read_bound() - have : 0;
  const size_t len = std::min({s->rbuf.size() - s->rtail, std::max(room, kReadChunk),
                               size_t{1} << 30});
  *b = uv_buf_init(s->rbuf.data() + s->rtail, static_cast<unsigned>(len));
}

void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<UvStreamState*>(stream->data);
  if (nread > 0) {
    const size_t n = static_cast<size_t>(nread);
    if (buf->base == Scratch()) {
      // Data flows into a stream that holds no buffer: one for it. With a
      // reader waiting (it takes the bytes at once) or a full read (more is
      // coming), any spare does, the bigger the better for what follows:
      // the buffer of a bulk transfer that went back at its last drain (else
      // it would be grown again, a copy per step). A few bytes nobody waits
      // for take a buffer their size, not a big spare that would sit with
      // them.
      const bool flowing = s->want > 0 || n == kReadChunk;
      AdoptStorage(s, flowing ? TakeBuffer(n, MaxStorage(s), /*biggest=*/true) : TakeBuffer(n));
      std::memcpy(s->rbuf.data(), buf->base, n);
    }
    // Else the bytes are in place, at rtail.
    s->rtail += n;
    if (s->buffered() >= s->read_bound()) {
      // Full: stop reading, so that the kernel's window closes and the
      // peer's writes wait (backpressure across the connection).
      uv_read_stop(stream);
      s->reading = false;
    }
  } else if (nread == UV_EOF) {
    // Linux TCP gives end-of-stream (read() = 0) for a peer that sent data
    // and then reset the connection, leaving the reset in SO_ERROR: without
    // this look a broken connection would pass for an orderly close.
    if (int err = PendingSocketError(s); err != 0) {
      s->rerror = UvStatus(-err, "read");
      PICOS_LOG(debug, "stream reset after its data: {}", s->rerror.ToString());
    } else {
      s->eof = true;
    }
    uv_read_stop(stream);
    s->reading = false;
  } else if (nread < 0) {
    s->rerror = UvStatus(static_cast<int>(nread), "read");
    PICOS_LOG(debug, "stream read failed: {}", s->rerror.ToString());
    uv_read_stop(stream);
    s->reading = false;
  } else {
    return;  // EAGAIN
  }
  if (s->buffered() >= s->want || s->eof || !s->rerror.ok()) s->reader.Notify();
}

void StartReading(UvStreamState* s) {
  if (s->reading || s->closing || s->eof || !s->rerror.ok() ||
      s->buffered() >= s->read_bound()) {
    return;
  }
  int rc = uv_read_start(&s->h.stream, AllocRead, OnRead);
  if (rc < 0) {
    s->rerror = UvStatus(rc, "read");
  } else {
    s->reading = true;
  }
}

// One uv_write in flight: a hold on the state (the callback touches it) and
// a share of the bytes (the caller's frame may go first). The writer does not
// await writes one by one: it waits for room in the queue, so the request
// is detached and its completion settles the queue.
struct WritePayload {
  WritePayload(UvStreamState* s, std::shared_ptr<std::string> d, size_t n)
      : hold(s), state(s), data(std::move(d)), len(n) {}
  void OnComplete(uv_write_t&, ssize_t status, bool) {
    state->queued -= len;
    if (status < 0 && state->werror.ok() && status != UV_ECANCELED) {
      state->werror = UvStatus(static_cast<int>(status), "write");
      PICOS_LOG(debug, "stream write failed: {}", state->werror.ToString());
    }
    state->writer.Notify();
  }
  Hold hold;
  UvStreamState* state;
  std::shared_ptr<std::string> data;
  size_t len;
};

// A shutdown in flight holds the state, and records an error in it even
// when nobody waits for it any more.
struct ShutdownPayload {
  explicit ShutdownPayload(UvStreamState* s) : hold(s), state(s) {}
  void OnComplete(uv_shutdown_t&, ssize_t status, bool) {
    if (status < 0 && status != UV_ECANCELED && state->werror.ok()) {
      state->werror = UvStatus(static_cast<int>(status), "shutdown");
    }
  }
  Hold hold;
  UvStreamState* state;
};

absl::Status Closed() { return absl::FailedPreconditionError("the stream is closed"); }

std::string HandleAddress(UvStreamState* s, const std::string& scheme, bool peer) {
  if (s->closing) return "";
  if (s->kind == UvKind::kTcp) {
    sockaddr_storage ss;
    int len = sizeof ss;
    int rc = peer ? uv_tcp_getpeername(&s->h.tcp, reinterpret_cast<sockaddr*>(&ss), &len)
                  : uv_tcp_getsockname(&s->h.tcp, reinterpret_cast<sockaddr*>(&ss), &len);
    if (rc < 0) return "";
    return SockaddrToUri(scheme, reinterpret_cast<sockaddr*>(&ss));
  }
  // Unix: read the address straight from the socket, which also shows an
  // abstract name (libuv's getsockname would hand back its leading NUL).
  uv_os_fd_t fd;
  if (uv_fileno(&s->h.handle, &fd) < 0) return "";
  sockaddr_un sun;
  socklen_t len = sizeof sun;
  std::memset(&sun, 0, sizeof sun);
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&sun), &len)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&sun), &len);
  if (rc < 0 || len <= offsetof(sockaddr_un, sun_path)) return "";
  size_t n = len - offsetof(sockaddr_un, sun_path);
  if (sun.sun_path[0] == '\0') return absl::StrCat(scheme, "://@", std::string(sun.sun_path + 1, n - 1));
  return absl::StrCat(scheme, "://", std::string(sun.sun_path, strnlen(sun.sun_path, n)));
}

void AcceptOne(UvStreamState* server) {
  UvStreamState* c = NewUvStreamState(server->h.handle.loop, server->kind, server->options);
  int rc = uv_accept(&server->h.stream, &c->h.stream);
  if (rc < 0) {
    PICOS_LOG_LIMITED(warn, "accept failed: {}", uv_strerror(rc));
    CloseUvStreamState(c);
    return;
  }
  if (c->kind == UvKind::kTcp && server->options.no_delay) uv_tcp_nodelay(&c->h.tcp, 1);
  server->accepted.push_back(c);
}

// Connections accepted ahead of the task, before libuv is left holding the
// next one (it then stops polling, and the kernel's backlog takes over).
constexpr size_t kAcceptAhead = 64;

void OnConnection(uv_stream_t* server, int status) {
  auto* s = static_cast<UvStreamState*>(server->data);
  if (status < 0) {
    // EMFILE and friends: report to the accepting task, keep listening.
    s->lerror = UvStatus(status, "accept");
    PICOS_LOG_LIMITED(warn, "listener: {}", s->lerror.ToString());
  } else if (s->accepted.size() < kAcceptAhead) {
    AcceptOne(s);
  } else {
    s->accept_pending = true;
  }
  s->acceptor.Notify();
}

class UvListener final : public Listener {
 public:
  UvListener(UvStreamState* s, std::string scheme, std::string address)
      : s_(s), scheme_(std::move(scheme)), address_(std::move(address)) {}
  ~UvListener() override { Close(); }

  Task<absl::StatusOr<std::unique_ptr<Stream>>> Accept(absl::Duration timeout) override {
    UvStreamState* s = s_;
    if (s == nullptr) co_return absl::FailedPreconditionError("the listener is closed");
    Hold hold(s);
    const Deadline deadline(timeout);
    for (;;) {  // each wake follows a connection, an error or the close
      if (s->closing) co_return absl::FailedPreconditionError("the listener is closed");
      if (!s->accepted.empty()) {
        UvStreamState* c = s->accepted.front();
        s->accepted.erase(s->accepted.begin());  // at most kAcceptAhead
        if (s->accept_pending) {
          s->accept_pending = false;
          AcceptOne(s);
        }
        co_return MakeUvStream(c, scheme_);
      }
      if (!s->lerror.ok()) co_return std::exchange(s->lerror, absl::OkStatus());
      PICOS_CO_RETURN_IF_ERROR(co_await s->acceptor.Wait(deadline));
    }
  }

  void Close() override {
    if (s_ == nullptr) return;
    UvStreamState* s = std::exchange(s_, nullptr);
    for (UvStreamState* a : s->accepted) CloseUvStreamState(a);
    s->accepted.clear();
    CloseHandle(s, false);
  }

  std::string address() const override { return address_; }

 private:
  UvStreamState* s_;
  std::string scheme_;
  std::string address_;
};

}  // namespace

// --- UvStream ---

UvStream::UvStream(UvStreamState* s, std::string scheme)
    : s_(s),
      scheme_(std::move(scheme)),
      max_write_queue_(s->options.max_write_queue),
      max_read_buffer_(s->options.max_read_buffer) {}

UvStream::~UvStream() { Close(); }

Task<absl::StatusOr<size_t>> UvStream::ReadSome(char* buf, size_t min_bytes, size_t max_bytes,
                                                absl::Duration timeout) {
  if (min_bytes == 0 || min_bytes > max_bytes) {
    co_return absl::InvalidArgumentError("ReadSome needs 1 <= min_bytes <= max_bytes");
  }
  UvStreamState* s = s_;
  if (s == nullptr) co_return Closed();
  Hold hold(s);
  const Deadline deadline(timeout);
  for (;;) {  // each wake follows bytes, the end, an error or the close

    if (s->buffered() >= min_bytes || (s->buffered() > 0 && (s->eof || !s->rerror.ok()))) {
      size_t n = std::min(max_bytes, s->buffered());
      std::memcpy(buf, s->rbuf.data() + s->rhead, n);
      s->rhead += n;
      // No compaction here: the next read makes room (AllocRead).
      ReleaseIfDrained(s);
      s->want = 0;
      StartReading(s);  // room again: let the peer go on
      co_return n;
    }
    if (s->closing || s->eof) co_return size_t{0};
    if (!s->rerror.ok()) co_return s->rerror;
    s->want = min_bytes;
    StartReading(s);
    if (!s->rerror.ok()) continue;
    absl::Status st = co_await s->reader.Wait(deadline);
    if (!st.ok()) {
      s->want = 0;
      co_return st;
    }
  }
}

absl::StatusOr<size_t> UvStream::WriteNow(std::string_view data) {
  UvStreamState* s = s_;
  if (s == nullptr || s->closing) return Closed();
  if (s->shut) return absl::FailedPreconditionError("write after Shutdown()");
  if (!s->werror.ok()) return s->werror;
  if (data.empty() || s->queued != 0) return size_t{0};
  uv_buf_t b = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(std::min<size_t>(data.size(), 1u << 30)));
  int n = uv_try_write(&s->h.stream, &b, 1);
  if (n < 0 && n != UV_EAGAIN) {
    s->werror = UvStatus(n, "write");
    return s->werror;
  }
  return n > 0 ? static_cast<size_t>(n) : size_t{0};
}

Task<absl::Status> UvStream::Write(std::string data, absl::Duration timeout) {
  absl::StatusOr<size_t> off = WriteNow(data);
  if (!off.ok()) co_return off.status();
  if (*off == data.size()) co_return absl::OkStatus();
  co_return co_await WriteQueued(std::move(data), *off, timeout);
}

Task<absl::Status> UvStream::WriteFrom(std::string* buffer, absl::Duration timeout) {
  absl::StatusOr<size_t> off = WriteNow(*buffer);
  if (!off.ok() || *off == buffer->size()) {
    buffer->clear();  // capacity kept
    co_return off.status();
  }
  std::string data = std::move(*buffer);
  buffer->clear();
  co_return co_await WriteQueued(std::move(data), *off, timeout);
}

Task<absl::Status> UvStream::WriteQueued(std::string data, size_t off, absl::Duration timeout) {
  UvStreamState* s = s_;
  if (s == nullptr || s->closing) co_return Closed();
  Hold hold(s);
  auto shared = std::make_shared<std::string>(std::move(data));
  const size_t size = shared->size();
  const size_t limit = std::max<size_t>(s->options.max_write_queue, 1);
  const Deadline deadline(timeout);
  // Each round queues a chunk, or waits for a completion, which frees room.
  for (;;) {
    if (s->closing) co_return Closed();
    if (!s->werror.ok()) co_return s->werror;
    if (off == size && s->queued == 0) co_return absl::OkStatus();
    if (off < size && s->queued < limit) {
      size_t chunk = std::min(size - off, limit - s->queued);
      UvRequest<uv_write_t, WritePayload> op(s, shared, chunk);
      uv_buf_t b = uv_buf_init(shared->data() + off, static_cast<unsigned>(chunk));
      absl::Status started = op.Started(uv_write(op.req(), &s->h.stream, &b, 1, op.callback()), "write");
      if (!started.ok()) {
        s->werror = started;
        co_return s->werror;
      }
      op.Detach();
      s->queued += chunk;
      s->peak = std::max(s->peak, s->queued);
      off += chunk;
      continue;
    }
    PICOS_CO_RETURN_IF_ERROR(co_await s->writer.Wait(deadline));
  }
}

Task<absl::Status> UvStream::Shutdown(absl::Duration timeout) {
  UvStreamState* s = s_;
  if (s == nullptr || s->closing) co_return Closed();
  if (s->shut) co_return absl::OkStatus();
  UvRequest<uv_shutdown_t, ShutdownPayload> op(s);
  PICOS_CO_RETURN_IF_ERROR(
      op.Started(uv_shutdown(op.req(), &s->h.stream, op.callback()), "shutdown"));
  s->shut = true;
  // libuv completes it once every earlier write has completed, or when the
  // stream closes (UV_ECANCELED).
  const Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(deadline));
  if (s->closing) co_return Closed();
  co_return s->werror;
}

void UvStream::Close() {
  if (s_ == nullptr) return;
  peak_after_close_ = s_->peak;
  CloseHandle(std::exchange(s_, nullptr), false);
}

void UvStream::Abort() {
  if (s_ == nullptr) return;
  peak_after_close_ = s_->peak;
  CloseHandle(std::exchange(s_, nullptr), true);
}

size_t UvStream::write_queue_bytes() const { return s_ ? s_->queued : 0; }
size_t UvStream::peak_write_queue_bytes() const { return s_ ? s_->peak : peak_after_close_; }

std::string UvStream::local_address() const { return s_ ? HandleAddress(s_, scheme_, false) : ""; }
std::string UvStream::peer_address() const { return s_ ? HandleAddress(s_, scheme_, true) : ""; }

void UvStream::StartReadAhead() {
  if (s_ != nullptr) StartReading(s_);
}

size_t UvStream::max_read_buffer() const { return max_read_buffer_; }

void UvStream::set_max_read_buffer(size_t bytes) {
  max_read_buffer_ = std::max<size_t>(bytes, 1);
  if (s_ == nullptr) return;
  s_->options.max_read_buffer = max_read_buffer_;
  // Reading stopped at the old bound resumes; a lower bound takes effect at
  // the next read callback.
  StartReading(s_);
}

// --- Handles ---

UvStreamState* NewUvStreamState(uv_loop_s* loop, UvKind kind, const StreamOptions& options) {
  auto* s = new UvStreamState;
  s->kind = kind;
  s->options = options;
  int rc = kind == UvKind::kTcp ? uv_tcp_init(loop, &s->h.tcp) : uv_pipe_init(loop, &s->h.pipe, 0);
  PICOS_ASSERT(rc == 0);  // init only fills the struct
  s->h.handle.data = s;
  return s;
}

uv_stream_s* UvHandle(UvStreamState* s) { return &s->h.stream; }

void CloseUvStreamState(UvStreamState* s) { CloseHandle(s, false); }

Task<absl::Status> UvTcpConnect(UvStreamState* s, const struct sockaddr* addr,
                                Deadline deadline) {
  UvRequest<uv_connect_t> op;
  PICOS_CO_RETURN_IF_ERROR(
      op.Started(uv_tcp_connect(op.req(), &s->h.tcp, addr, op.callback()), "connect"));
  absl::Status st = co_await op.Wait(deadline);
  // On a timeout the connect stays in flight until the caller closes the
  // handle, which cancels it; its callback then frees the request.
  if (st.code() == absl::StatusCode::kDeadlineExceeded) {
    co_return absl::DeadlineExceededError("connect timed out");
  }
  PICOS_CO_RETURN_IF_ERROR(st);
  co_return UvStatus(static_cast<int>(op.result()), "connect");
}

std::unique_ptr<UvStream> MakeUvStream(UvStreamState* s, std::string scheme) {
  return std::make_unique<UvStream>(s, std::move(scheme));
}

absl::StatusOr<std::unique_ptr<Listener>> UvListen(uv_loop_s* loop, UvKind kind,
                                                   UvStreamState* server, std::string scheme,
                                                   std::string address, std::string unlink_path,
                                                   const StreamOptions& options) {
  server->unlink_path = std::move(unlink_path);
  int rc = uv_listen(&server->h.stream, std::max(options.backlog, 1), OnConnection);
  if (rc < 0) {
    CloseUvStreamState(server);
    return UvStatus(rc, "listen");
  }
  if (address.empty()) address = HandleAddress(server, scheme, false);
  return std::unique_ptr<Listener>(
      std::make_unique<UvListener>(server, std::move(scheme), std::move(address)));
}

std::string SockaddrToUri(const std::string& scheme, const struct sockaddr* sa) {
  // libuv formats both families (uv_ip_name); the I/O package sits below
  // core/net, so IpEndpoint is not used here, but the text is the same.
  char host[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return "";
  if (uv_ip_name(sa, host, sizeof host) != 0) return "";
  if (sa->sa_family == AF_INET) {
    return absl::StrCat(scheme, "://", host, ":", ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port));
  }
  return absl::StrCat(scheme, "://[", host, "]:",
                      ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port));
}

}  // namespace picos::internal
