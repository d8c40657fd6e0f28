// Sockets for tasks (pycos's AsyncSocket): a connected stream with buffered,
// bounded reads, and a server that accepts them. Any scheme of the registry
// given works: with picos::transports::DefaultTransports() (transports/default_transports.h)
// tcp://, unix:// and tls://.
//
//   picos::Task<absl::Status> Client(const picos::TransportRegistry& transports) {
//     PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Socket sock,
//                               co_await picos::transports::Socket::Connect(transports, "tcp://127.0.0.1:9705"));
//     PICOS_CO_RETURN_IF_ERROR(co_await sock.Write("hello\n"));
//     PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await sock.ReadLine(1024, absl::Seconds(5)));
//     co_return absl::OkStatus();
//   }
//
//   PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server server, co_await picos::transports::Server::Listen(transports, "tcp://127.0.0.1:0"));
//   PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Socket conn, co_await server.Accept());
//
// Messages instead of bytes (pycos's send_msg / recv_msg): each is a 4-byte
// length and its payload (core/io/framing.h), bounded on both sides;
// core/wire/value_stream.h sends Values the same way.
//
//   PICOS_CO_RETURN_IF_ERROR(co_await sock.WriteMessage("ping"));
//   PICOS_CO_ASSIGN_OR_RETURN(std::optional<std::string> reply,
//                             co_await sock.ReadMessage(absl::Seconds(5)));
//   if (!reply) { /* the peer closed between two messages */ }
//
// A Socket is a Reader and a Writer (core/io/io.h): code written for files and
// pipes takes it as is. Threads and errors as in core/net/transport.h: use a
// socket from tasks of the scheduler that made it; every call returning a
// Task suspends and takes a timeout.
#ifndef PICOS_TRANSPORTS_SOCKET_H_
#define PICOS_TRANSPORTS_SOCKET_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/framing.h"
#include "core/io/io.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"

namespace picos::transports {

class Socket : public Reader, public Writer {
 public:
  // Wraps a connected stream.
  explicit Socket(std::unique_ptr<Stream> stream);
  Socket(Socket&&) = default;
  Socket& operator=(Socket&&) = default;

  // Connects to `uri` through `transports`, which must outlive the call.
  // Suspends.
  static Task<absl::StatusOr<Socket>> Connect(const TransportRegistry& transports, std::string uri,
                                              absl::Duration timeout = absl::InfiniteDuration(),
                                              StreamOptions options = {});

  // Up to `max_bytes` (1 <= max_bytes <= kMaxReadChunk) as soon as any are
  // available; "" at the end of the stream. Suspends.
  Task<absl::StatusOr<std::string>> Read(
      size_t max_bytes, absl::Duration timeout = absl::InfiniteDuration()) override;
  // Exactly `n` bytes; kOutOfRange if the stream ends first. Suspends.
  Task<absl::StatusOr<std::string>> ReadExactly(
      size_t n, absl::Duration timeout = absl::InfiniteDuration());
  // A line with its '\n' (the last line may lack it; "" at the end).
  // kResourceExhausted if no '\n' within `max_length` bytes. Suspends.
  Task<absl::StatusOr<std::string>> ReadLine(
      size_t max_length, absl::Duration timeout = absl::InfiniteDuration());

  // Writes all of `data` with backpressure (see Stream::Write): the one
  // write call, there is no partial write to follow up. Suspends.
  Task<absl::Status> Write(std::string data,
                           absl::Duration timeout = absl::InfiniteDuration()) override;

  // One message: its length, then `payload` (core/io/framing.h).
  // kResourceExhausted, with nothing sent, when it is longer than
  // options.max_message_size. Suspends.
  Task<absl::Status> WriteMessage(std::string payload,
                                  absl::Duration timeout = absl::InfiniteDuration(),
                                  FramingOptions options = {});
  // The next message, or std::nullopt when the peer ended the stream between
  // two messages. kResourceExhausted for one announced longer than
  // options.max_message_size (refused before it is read), kDataLoss when the
  // stream ends inside one; on kDeadlineExceeded nothing was consumed.
  // Byte reads and message reads may be mixed: both go through one buffer.
  // Suspends.
  Task<absl::StatusOr<std::optional<std::string>>> ReadMessage(
      absl::Duration timeout = absl::InfiniteDuration(), FramingOptions options = {});

  // The buffer every read of this socket goes through, for readers built
  // on BufferedReader (picos::ReadValue in core/wire/value_stream.h).
  BufferedReader& reader() { return *reader_; }

  // Half-close: the peer reads the end of the stream. Suspends.
  Task<absl::Status> Shutdown(absl::Duration timeout = absl::InfiniteDuration()) {
    return stream_->Shutdown(timeout);
  }
  // Closes now. Does not suspend; the destructor closes too.
  void Close() { stream_->Close(); }

  std::string peer_address() const { return stream_->peer_address(); }
  std::string local_address() const { return stream_->local_address(); }
  // The stream underneath (for ReadSome into a caller's buffer, figures).
  Stream& stream() { return *stream_; }

 private:
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<BufferedReader> reader_;  // reads stream_ (a stable pointer)
};

// A listening socket.
class Server {
 public:
  explicit Server(std::unique_ptr<Listener> listener) : listener_(std::move(listener)) {}
  Server(Server&&) = default;
  Server& operator=(Server&&) = default;

  // Listens on `uri` through `transports`, which must outlive the call
  // ("tcp://127.0.0.1:0": any free port; see address()). Suspends (name
  // resolution).
  static Task<absl::StatusOr<Server>> Listen(const TransportRegistry& transports, std::string uri,
                                             StreamOptions options = {});

  // The next connection. Suspends; kDeadlineExceeded after `timeout`.
  Task<absl::StatusOr<Socket>> Accept(absl::Duration timeout = absl::InfiniteDuration());

  // Where clients connect, as a URI.
  std::string address() const { return listener_->address(); }
  // Stops listening. Does not suspend; the destructor closes too.
  void Close() { listener_->Close(); }

 private:
  std::unique_ptr<Listener> listener_;
};

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_SOCKET_H_
