#include "core/net/uri.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/net/ip_endpoint.h"

namespace picos {
namespace {

absl::Status Bad(absl::string_view text, absl::string_view why) {
  // Quote at most a prefix: the text may be hostile and huge.
  return absl::InvalidArgumentError(
      absl::StrCat("bad transport URI \"", absl::CHexEscape(text.substr(0, 200)), "\": ", why));
}

bool IsSchemeChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

// Characters allowed in a host name or an IPv4 literal (and, inside
// brackets, an IPv6 literal with an optional %zone).
bool IsHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view in, absl::string_view whole) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return Bad(whole, "truncated %-escape");
    int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return Bad(whole, "bad %-escape");
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return Bad(whole, "%00 in a query value");
    out.push_back(c);
    i += 2;
  }
  return out;
}

bool NeedsEscape(char c) {
  return !(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == ':' || c == '/');
}

std::string PercentEncode(absl::string_view in) {
  std::string out;
  for (char c : in) {
    if (NeedsEscape(c)) {
      absl::StrAppend(&out, "%", absl::string_view("0123456789ABCDEF" + ((c >> 4) & 0xf), 1),
                      absl::string_view("0123456789ABCDEF" + (c & 0xf), 1));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::Status ParseQuery(absl::string_view q, absl::string_view whole, Uri* uri) {
  if (q.empty()) return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(q, '&')) {
    if (part.empty()) return Bad(whole, "empty query parameter");
    size_t eq = part.find('=');
    absl::string_view key = part.substr(0, eq);
    absl::string_view value = eq == absl::string_view::npos ? "" : part.substr(eq + 1);
    if (key.empty()) return Bad(whole, "query parameter without a name");
    absl::StatusOr<std::string> k = PercentDecode(key, whole);
    if (!k.ok()) return k.status();
    absl::StatusOr<std::string> v = PercentDecode(value, whole);
    if (!v.ok()) return v.status();
    uri->query.emplace_back(std::move(*k), std::move(*v));
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> Uri::Param(absl::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::string Uri::HostPort() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::string Uri::ToString() const {
  std::string out = absl::StrCat(scheme, "://");
  if (port < 0) {
    absl::StrAppend(&out, abstract_socket ? "@" : "", path);
  } else {
    absl::StrAppend(&out, HostPort());
  }
  for (size_t i = 0; i < query.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "?" : "&", PercentEncode(query[i].first), "=",
                    PercentEncode(query[i].second));
  }
  return out;
}

absl::StatusOr<Uri> ParseUri(absl::string_view text) {
  if (text.size() > kMaxUriLength) {
    return Bad(text, absl::StrCat("longer than ", kMaxUriLength, " bytes"));
  }
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == ' ') return Bad(text, "control, space or non-ASCII byte");
  }
  if (text.find('#') != absl::string_view::npos) return Bad(text, "fragments are not allowed");
  size_t sep = text.find("://");
  if (sep == absl::string_view::npos) return Bad(text, "expected scheme://...");
  Uri uri;
  absl::string_view scheme = text.substr(0, sep);
  if (scheme.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(scheme[0]))) {
    return Bad(text, "the scheme must start with a letter");
  }
  for (char c : scheme) {
    if (!IsSchemeChar(c)) return Bad(text, "bad character in the scheme");
  }
  uri.scheme = absl::AsciiStrToLower(scheme);
  absl::string_view rest = text.substr(sep + 3);
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }

  if (uri.scheme == "unix") {
    // Path form: unix:///path (empty authority, absolute path) or
    // unix://@name (abstract namespace).
    if (absl::StartsWith(rest, "@")) {
      uri.abstract_socket = true;
      uri.path = std::string(rest.substr(1));
      if (uri.path.empty()) return Bad(text, "empty abstract socket name");
    } else if (absl::StartsWith(rest, "/")) {
      uri.path = std::string(rest);
      if (uri.path.size() < 2) return Bad(text, "empty socket path");
    } else {
      return Bad(text, "expected unix:///absolute/path or unix://@name");
    }
    if (uri.path.find('%') != std::string::npos) {
      return Bad(text, "%-escapes are not allowed in socket paths");
    }
    if (absl::Status s = ParseQuery(query, text, &uri); !s.ok()) return s;
    return uri;
  }

  // Host form: host:port, [v6]:port; an optional trailing '/'.
  if (absl::EndsWith(rest, "/")) rest.remove_suffix(1);
  if (rest.find('/') != absl::string_view::npos) return Bad(text, "unexpected path");
  if (rest.find('@') != absl::string_view::npos) return Bad(text, "user information is not allowed");
  absl::string_view host, port;
  if (absl::StartsWith(rest, "[")) {
    size_t close = rest.find(']');
    if (close == absl::string_view::npos) return Bad(text, "unterminated [IPv6 address]");
    host = rest.substr(1, close - 1);
    absl::string_view after = rest.substr(close + 1);
    if (!absl::StartsWith(after, ":")) return Bad(text, "expected :port after ]");
    port = after.substr(1);
    if (host.empty()) return Bad(text, "empty IPv6 address");
    if (host.find(':') == absl::string_view::npos) return Bad(text, "brackets around a non-IPv6 host");
    // The one parser of literal addresses decides (issue 9: "[zz::zz]").
    if (absl::StatusOr<IpEndpoint> ip = IpEndpoint::Parse(host, 0); !ip.ok()) {
      return Bad(text, ip.status().message());
    }
  } else {
    size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) return Bad(text, "missing :port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return Bad(text, "an IPv6 address must be in brackets");
    }
    for (char c : host) {
      if (!IsHostChar(c)) return Bad(text, "bad character in the host");
    }
    // Digits and dots only cannot be a name (no top-level domain is
    // numeric): it is an IPv4 address, or a mistake such as "1.2.3.256".
    if (!host.empty() && host.find_first_not_of("0123456789.") == absl::string_view::npos) {
      if (absl::StatusOr<IpEndpoint> ip = IpEndpoint::Parse(host, 0); !ip.ok()) {
        return Bad(text, ip.status().message());
      }
    }
  }
  if (host.empty()) return Bad(text, "empty host");
  if (host.size() > 253) return Bad(text, "host longer than 253 bytes");
  if (port.empty() || port.size() > 5) return Bad(text, "the port must be 0..65535");
  int p = 0;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return Bad(text, "the port must be 0..65535");
    p = p * 10 + (c - '0');
  }
  if (p > 65535) return Bad(text, "the port must be 0..65535");
  uri.host = std::string(host);
  uri.port = p;
  if (absl::Status s = ParseQuery(query, text, &uri); !s.ok()) return s;
  return uri;
}

}  // namespace picos
