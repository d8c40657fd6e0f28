#include "testing/http_test_client.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(60);

}  // namespace

Task<absl::StatusOr<HttpTestClient>> HttpTestClient::Open(std::string uri) {
  absl::StatusOr<std::unique_ptr<Stream>> s = co_await transports::DefaultTransports().Connect(uri);
  if (!s.ok()) co_return s.status();
  HttpTestClient c;
  c.stream_ = std::move(*s);
  co_return c;
}

Task<absl::Status> HttpTestClient::Send(std::string bytes) { return stream_->Write(std::move(bytes), kDeadline); }

Task<absl::StatusOr<std::string>> HttpTestClient::Response() {
  size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    absl::Status more = co_await More();
    if (!more.ok()) co_return more;
  }
  std::string head = buf_.substr(0, end + 4);
  buf_.erase(0, end + 4);
  size_t length = 0;
  if (size_t cl = head.find("Content-Length: "); cl != std::string::npos) {
    (void)absl::SimpleAtoi(head.substr(cl + 16, head.find("\r\n", cl) - cl - 16), &length);
  }
  while (buf_.size() < length) {
    absl::Status more = co_await More();
    if (!more.ok()) co_return more;
  }
  std::string out = head + buf_.substr(0, length);
  buf_.erase(0, length);
  co_return out;
}

Task<absl::StatusOr<std::string>> HttpTestClient::Message() {
  for (;;) {
    if (buf_.size() >= 2) {
      const unsigned char* b = reinterpret_cast<const unsigned char*>(buf_.data());
      size_t len = b[1] & 0x7f, at = 2;
      if (len == 126 && buf_.size() >= 4) {
        len = (size_t{b[2]} << 8) | b[3];
        at = 4;
      } else if (len == 127 && buf_.size() >= 10) {
        len = 0;
        for (int i = 2; i < 10; ++i) len = (len << 8) | b[i];
        at = 10;
      }
      if ((len < 126 || at > 2) && buf_.size() >= at + len) {
        const int opcode = b[0] & 0x0f;
        std::string payload = buf_.substr(at, len);
        buf_.erase(0, at + len);
        if (opcode == 8) co_return absl::UnavailableError("closed by the server");
        if (opcode == 1) co_return payload;
        continue;  // a ping or pong
      }
    }
    absl::Status more = co_await More();
    if (!more.ok()) co_return more;
  }
}

Task<absl::Status> HttpTestClient::UntilClosed() {
  for (int i = 0; i < 100000; ++i) {
    absl::StatusOr<std::string> more = co_await stream_->Read(1 << 16, kDeadline);
    if (!more.ok()) co_return absl::OkStatus();  // reset: closed too
    if (more->empty()) co_return absl::OkStatus();
  }
  co_return absl::DeadlineExceededError("still open");
}

Task<absl::Status> HttpTestClient::More() {
  absl::StatusOr<std::string> more = co_await stream_->Read(1 << 16, kDeadline);
  if (!more.ok()) co_return more.status();
  if (more->empty()) co_return absl::UnavailableError("closed");
  buf_ += *more;
  co_return absl::OkStatus();
}

std::string HttpRequestText(const std::string& method, const std::string& path, const std::string& headers,
                            const std::string& body) {
  std::string r = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", headers);
  if (!body.empty() || method == "POST") absl::StrAppend(&r, "Content-Length: ", body.size(), "\r\n");
  return absl::StrCat(r, "\r\n", body);
}

std::string WebSocketUpgradeHeaders() {
  return "Upgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
}

Task<absl::StatusOr<std::string>> HttpExchange(std::string uri, std::string request) {
  absl::StatusOr<HttpTestClient> c = co_await HttpTestClient::Open(uri);
  if (!c.ok()) co_return c.status();
  absl::Status sent = co_await c->Send(std::move(request));
  if (!sent.ok()) co_return sent;
  co_return co_await c->Response();
}

std::string HttpBody(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

}  // namespace picos::testing
