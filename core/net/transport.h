// The transport interface: byte streams and datagram sockets addressed by
// URIs, provided by plugins held in a TransportRegistry.
//
// A plugin (transports/tcp, transports/unix, transports/tls, ...) implements
// StreamTransport or DatagramTransport for one URI scheme. The registry is
// built once from explicit Register...() calls listed in one file
// (transports/default_transports.cc) and is immutable afterwards, so any
// thread may look a scheme up without locks.
//
//   picos::TransportRegistry::Builder b;
//   picos::transports::RegisterDefaultTransports(b);               // transports/default_transports.h
//   std::unique_ptr<const picos::TransportRegistry> registry = std::move(b).Build();
//
//   picos::Task<absl::Status> Hello(const picos::TransportRegistry& r) {
//     PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Stream> s,
//                               co_await r.Connect("tcp://127.0.0.1:9705", absl::Seconds(5)));
//     PICOS_CO_RETURN_IF_ERROR(co_await s->Write("hello\n"));
//     char buf[64];
//     PICOS_CO_ASSIGN_OR_RETURN(size_t n, co_await s->ReadSome(buf, 1, sizeof buf));
//     co_return absl::OkStatus();
//   }
//
// Threads: a Stream, Listener or DatagramSocket belongs to the scheduler of
// the task that made it (Connect, Listen, Accept, Bind). Use it from that
// scheduler's tasks only and destroy it on that thread before the scheduler
// is destroyed. One task at a time reads a stream and one at a time writes
// it (a reader and a writer may be different tasks). Every call returning
// Task<...> suspends the task and takes a timeout; each wait returns
// kCancelled if the task is terminated, or the error thrown into it.
//
// Status codes (see core/kernel/status.h): kUnavailable for a refused, reset or
// vanished peer (retry may help); kDeadlineExceeded for a timeout;
// kInvalidArgument for a malformed or unusable address; kFailedPrecondition
// for a call on a closed object; kResourceExhausted for a bound reached.
//
// Why this shape: ReadSome(buf, min, max) and an owning, backpressured
// Write are exactly what kj::AsyncIoStream needs (tryRead(buf, min, max),
// write), so the remote layer adapts any Stream to Cap'n Proto RPC; and a
// Stream can wrap another Stream (TLS over TCP or over a Unix socket)
// because nothing here is specific to sockets.
#ifndef PICOS_CORE_NET_TRANSPORT_H_
#define PICOS_CORE_NET_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/io/stream.h"
#include "core/kernel/task.h"
#include "core/net/datagram.h"
#include "core/net/ip_endpoint.h"
#include "core/net/uri.h"

namespace picos {

// A plugin providing streams for one scheme.
class StreamTransport {
 public:
  virtual ~StreamTransport() = default;

  // The lower-case URI scheme this plugin serves ("tcp").
  virtual std::string scheme() const = 0;

  // Connects to `uri` (its scheme is this plugin's). Suspends, resolving
  // host names first where the transport has them. kUnavailable when
  // refused or unreachable; kDeadlineExceeded after `timeout`;
  // kInvalidArgument for an address this transport cannot use.
  virtual Task<absl::StatusOr<std::unique_ptr<Stream>>> Connect(
      Uri uri, absl::Duration timeout, StreamOptions options) = 0;

  // Binds `uri` and listens. Suspends (name resolution). kInvalidArgument
  // for an unusable address; the bind error otherwise (kAlreadyExists or
  // kUnavailable for an address in use, per errno).
  virtual Task<absl::StatusOr<std::unique_ptr<Listener>>> Listen(
      Uri uri, StreamOptions options) = 0;
};

// --- Datagrams ---

// A bound datagram socket (UDP, multicast). Datagram transports speak IP, so
// addresses here are IpEndpoints (core/ip_endpoint.h) and what arrives is a
// Datagram (core/datagram.h), the same types as UdpSocket's.
class DatagramSocket {
 public:
  virtual ~DatagramSocket() = default;

  // Sends one datagram to `to`, an address of the socket's family with a
  // port in 1..65535. Suspends until the system took it. kInvalidArgument
  // for an oversized datagram or an unusable address.
  virtual Task<absl::Status> SendTo(std::string data, IpEndpoint to,
                                    absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // Sends one datagram to the socket's default destination (the group and
  // port of an mcast:// socket). kFailedPrecondition if it has none.
  virtual Task<absl::Status> Send(std::string data,
                                  absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // The next datagram and its sender. Suspends. kDeadlineExceeded after
  // `timeout`. Datagrams arriving faster than they are received are dropped
  // beyond a bounded queue (datagrams may be lost anyway).
  virtual Task<absl::StatusOr<Datagram>> ReceiveFrom(
      absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // Joins / leaves the multicast `group` (its port is ignored) on `iface`,
  // an interface name or address; empty: the socket's own interface. Does
  // not suspend.
  virtual absl::Status JoinGroup(const IpEndpoint& group, absl::string_view iface = {}) = 0;
  virtual absl::Status LeaveGroup(const IpEndpoint& group, absl::string_view iface = {}) = 0;

  // Closes now; a waiting ReceiveFrom returns kFailedPrecondition. Idempotent.
  virtual void Close() = 0;

  // The address bound (the actual port when 0 was asked for).
  virtual IpEndpoint local_address() const = 0;
  // The socket as a URI of its scheme, with the actual port: Bind() of it
  // gives a socket of the same kind (another member of the same group).
  virtual std::string address() const = 0;
};

// A plugin providing datagram sockets for one scheme.
class DatagramTransport {
 public:
  virtual ~DatagramTransport() = default;
  virtual std::string scheme() const = 0;

  // Binds a socket to `uri`. For mcast://group:port?iface=&ttl= the socket
  // binds the port (0: a free one), joins the group on `iface`, sends to
  // the group out of `iface` with `ttl`. Suspends (name resolution where it
  // applies).
  virtual Task<absl::StatusOr<std::unique_ptr<DatagramSocket>>> Bind(Uri uri) = 0;
};

// --- The registry ---

// Plugins by scheme. Built once by a Builder, then immutable: look-ups are
// safe from any thread without locks.
class TransportRegistry {
 public:
  class Builder {
   public:
    // Adds a plugin. A second plugin for the same scheme replaces the first
    // (tests substitute fakes this way). Asserts on an empty scheme.
    void RegisterStream(std::unique_ptr<StreamTransport> transport);
    void RegisterDatagram(std::unique_ptr<DatagramTransport> transport);

    std::unique_ptr<const TransportRegistry> Build() &&;

   private:
    std::map<std::string, std::unique_ptr<StreamTransport>> streams_;
    std::map<std::string, std::unique_ptr<DatagramTransport>> datagrams_;
  };

  // The plugin for `scheme` (case-insensitive). kInvalidArgument naming the
  // known schemes when there is none. Any thread; does not suspend.
  absl::StatusOr<StreamTransport*> StreamFor(absl::string_view scheme) const;
  absl::StatusOr<DatagramTransport*> DatagramFor(absl::string_view scheme) const;

  // Parses `uri`, finds its plugin and connects / listens / binds.
  // Suspends. Errors as ParseUri, StreamFor and the plugin's call.
  Task<absl::StatusOr<std::unique_ptr<Stream>>> Connect(
      std::string uri, absl::Duration timeout = absl::InfiniteDuration(),
      StreamOptions options = {}) const;
  Task<absl::StatusOr<std::unique_ptr<Listener>>> Listen(std::string uri,
                                                         StreamOptions options = {}) const;
  Task<absl::StatusOr<std::unique_ptr<DatagramSocket>>> Bind(std::string uri) const;

  // Registered schemes, sorted: "tcp, unix" style listing for messages.
  std::vector<std::string> stream_schemes() const;
  std::vector<std::string> datagram_schemes() const;

 private:
  TransportRegistry() = default;
  std::map<std::string, std::unique_ptr<StreamTransport>> streams_;
  std::map<std::string, std::unique_ptr<DatagramTransport>> datagrams_;
};

}  // namespace picos

#endif  // PICOS_CORE_NET_TRANSPORT_H_
