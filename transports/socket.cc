#include "transports/socket.h"

#include <utility>

#include "core/kernel/status.h"

namespace picos::transports {

Socket::Socket(std::unique_ptr<Stream> stream)
    : stream_(std::move(stream)), reader_(std::make_unique<BufferedReader>(stream_.get())) {}

Task<absl::StatusOr<Socket>> Socket::Connect(const TransportRegistry& transports, std::string uri, absl::Duration timeout,
                                             StreamOptions options) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> s,
                            co_await transports.Connect(std::move(uri), timeout, options));
  co_return Socket(std::move(s));
}

Task<absl::StatusOr<std::string>> Socket::Read(size_t max_bytes, absl::Duration timeout) {
  return reader_->Read(max_bytes, timeout);
}

Task<absl::StatusOr<std::string>> Socket::ReadExactly(size_t n, absl::Duration timeout) {
  return reader_->ReadExactly(n, timeout);
}

Task<absl::StatusOr<std::string>> Socket::ReadLine(size_t max_length, absl::Duration timeout) {
  return reader_->ReadLine(max_length, timeout);
}

Task<absl::Status> Socket::Write(std::string data, absl::Duration timeout) {
  return stream_->Write(std::move(data), timeout);
}

Task<absl::Status> Socket::WriteMessage(std::string payload, absl::Duration timeout,
                                        FramingOptions options) {
  return picos::WriteMessage(*stream_, std::move(payload), timeout, options);
}

Task<absl::StatusOr<std::optional<std::string>>> Socket::ReadMessage(absl::Duration timeout,
                                                                     FramingOptions options) {
  return picos::ReadMessage(*reader_, timeout, options);
}

Task<absl::StatusOr<Server>> Server::Listen(const TransportRegistry& transports, std::string uri,
                                             StreamOptions options) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Listener> l,
                            co_await transports.Listen(std::move(uri), options));
  co_return Server(std::move(l));
}

Task<absl::StatusOr<Socket>> Server::Accept(absl::Duration timeout) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> s, co_await listener_->Accept(timeout));
  co_return Socket(std::move(s));
}

}  // namespace picos::transports
