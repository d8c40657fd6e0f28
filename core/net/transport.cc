#include "core/net/transport.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/kernel/status.h"

namespace picos {

void TransportRegistry::Builder::RegisterStream(std::unique_ptr<StreamTransport> transport) {
  PICOS_ASSERT(transport != nullptr);
  std::string scheme = absl::AsciiStrToLower(transport->scheme());
  PICOS_ASSERT(!scheme.empty());
  streams_[scheme] = std::move(transport);
}

void TransportRegistry::Builder::RegisterDatagram(std::unique_ptr<DatagramTransport> transport) {
  PICOS_ASSERT(transport != nullptr);
  std::string scheme = absl::AsciiStrToLower(transport->scheme());
  PICOS_ASSERT(!scheme.empty());
  datagrams_[scheme] = std::move(transport);
}

std::unique_ptr<const TransportRegistry> TransportRegistry::Builder::Build() && {
  std::unique_ptr<TransportRegistry> r(new TransportRegistry());
  r->streams_ = std::move(streams_);
  r->datagrams_ = std::move(datagrams_);
  return r;
}

std::vector<std::string> TransportRegistry::stream_schemes() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : streams_) out.push_back(k);
  return out;
}

std::vector<std::string> TransportRegistry::datagram_schemes() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : datagrams_) out.push_back(k);
  return out;
}

absl::StatusOr<StreamTransport*> TransportRegistry::StreamFor(absl::string_view scheme) const {
  auto it = streams_.find(absl::AsciiStrToLower(scheme));
  if (it == streams_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no stream transport for scheme \"", absl::CHexEscape(scheme.substr(0, 32)),
                     "\"; known: ", absl::StrJoin(stream_schemes(), ", ")));
  }
  return it->second.get();
}

absl::StatusOr<DatagramTransport*> TransportRegistry::DatagramFor(absl::string_view scheme) const {
  auto it = datagrams_.find(absl::AsciiStrToLower(scheme));
  if (it == datagrams_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no datagram transport for scheme \"", absl::CHexEscape(scheme.substr(0, 32)),
                     "\"; known: ", absl::StrJoin(datagram_schemes(), ", ")));
  }
  return it->second.get();
}

Task<absl::StatusOr<std::unique_ptr<Stream>>> TransportRegistry::Connect(
    std::string uri, absl::Duration timeout, StreamOptions options) const {
  PICOS_CO_ASSIGN_OR_RETURN(Uri parsed, ParseUri(uri));
  PICOS_CO_ASSIGN_OR_RETURN(StreamTransport * t, StreamFor(parsed.scheme));
  co_return co_await t->Connect(std::move(parsed), timeout, options);
}

Task<absl::StatusOr<std::unique_ptr<Listener>>> TransportRegistry::Listen(
    std::string uri, StreamOptions options) const {
  PICOS_CO_ASSIGN_OR_RETURN(Uri parsed, ParseUri(uri));
  PICOS_CO_ASSIGN_OR_RETURN(StreamTransport * t, StreamFor(parsed.scheme));
  co_return co_await t->Listen(std::move(parsed), options);
}

Task<absl::StatusOr<std::unique_ptr<DatagramSocket>>> TransportRegistry::Bind(
    std::string uri) const {
  PICOS_CO_ASSIGN_OR_RETURN(Uri parsed, ParseUri(uri));
  PICOS_CO_ASSIGN_OR_RETURN(DatagramTransport * t, DatagramFor(parsed.scheme));
  co_return co_await t->Bind(std::move(parsed));
}

}  // namespace picos
