#include "testing/fuzz/remote_seeds.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/kernel/value.h"
#include "core/remote/handshake.h"
#include "core/remote/protocol.capnp.h"
#include "core/wire/value_codec.h"

namespace picos::testing {
namespace {

std::string Flatten(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(words.asBytes().begin()), words.asBytes().size());
}

std::string Prefixed(const std::string& body) {
  const uint32_t n = static_cast<uint32_t>(body.size());
  std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                     static_cast<char>(n)};
  return out + body;
}

kj::ArrayPtr<const kj::byte> Bytes(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string Hello(uint64_t magic, uint32_t version, size_t pid_size, size_t n_uris) {
  capnp::MallocMessageBuilder message;
  remote::protocol::Hello::Builder hello = message.initRoot<remote::protocol::Hello>();
  hello.setMagic(magic);
  hello.setVersion(version);
  const std::string pid(pid_size, '\x11');
  const std::string nonce(32, '\x22');
  hello.setProcessId(Bytes(pid));
  hello.setNonce(Bytes(nonce));
  capnp::List<capnp::Text>::Builder uris = hello.initUris(n_uris);
  for (size_t i = 0; i < n_uris; ++i) uris.set(i, i % 2 ? "unix://@peer" : "tcp://10.0.0.2:9705");
  hello.setName("fuzz-peer");
  return Flatten(message);
}

std::string Proof(size_t mac_size) {
  capnp::MallocMessageBuilder message;
  const std::string mac(mac_size, '\x33');
  message.initRoot<remote::protocol::Proof>().setMac(Bytes(mac));
  return Flatten(message);
}

std::string Verdict(bool ok, const char* reason) {
  capnp::MallocMessageBuilder message;
  remote::protocol::Verdict::Builder v = message.initRoot<remote::protocol::Verdict>();
  v.setOk(ok);
  if (!ok) v.setReason(reason);
  return Flatten(message);
}

std::string Encode(const Value& v) {
  absl::StatusOr<std::string> bytes = EncodeValue(v);
  if (!bytes.ok()) std::abort();  // the seeds are ours: they encode
  return *bytes;
}

}  // namespace

std::vector<std::string> HandshakeSeeds() {
  const uint64_t magic = remote::protocol::MAGIC;
  const uint32_t version = remote::ProtocolVersion();
  const std::string hello = Hello(magic, version, 16, 2);
  const std::string proof = Proof(32);
  const std::string yes = Verdict(true, "");
  std::vector<std::string> seeds = {
      hello,
      Hello(magic, version, 16, 0),
      Hello(magic ^ 1, version, 16, 1),
      Hello(magic, version + 1, 16, 1),
      Hello(magic, version, 15, 1),
      Hello(magic, version, 16, 17),
      proof,
      Proof(0),
      Proof(300),
      yes,
      Verdict(false, "secret mismatch"),
      Verdict(false, "busy"),
  };
  seeds.push_back(Prefixed(hello) + Prefixed(proof) + Prefixed(yes));
  seeds.push_back(Prefixed(hello) + Prefixed(proof) + Prefixed(Verdict(false, "secret mismatch")));
  seeds.push_back(Prefixed(Hello(magic, version + 1, 16, 0)));
  seeds.push_back(Prefixed(hello) + Prefixed(Proof(31)));
  return seeds;
}

std::vector<std::string> FrameBatchSeeds() {
  const Value error = Value::Map({{"code", 14}, {"message", "peer lost"}});
  const std::vector<Value> frames = {
      Value::Map({{"op", "send"}, {"task", uint64_t{7}}, {"msg", Value::Map({{"n", 1}, {"s", "x"}})}}),
      Value::Map({{"op", "resume"}, {"task", uint64_t{7}}, {"value", 3.5}}),
      Value::Map({{"op", "terminate"}, {"task", uint64_t{7}}}),
      Value::Map({{"op", "throw"}, {"task", uint64_t{7}}, {"error", error}}),
      Value::Map({{"op", "join"}, {"task", uint64_t{7}}, {"req", uint64_t{1}}}),
      Value::Map({{"op", "monitor"}, {"task", uint64_t{7}}, {"reg", uint64_t{2}}}),
      Value::Map({{"op", "locate"}, {"req", uint64_t{3}}, {"kind", "task"}, {"name", "echo"},
                  {"timeout_ns", int64_t{1000000000}}}),
      Value::Map({{"op", "reply"}, {"req", uint64_t{3}}, {"ok", true}, {"value", "done"}}),
      Value::Map({{"op", "reply"}, {"req", uint64_t{4}}, {"ok", false}, {"error", error}}),
      Value::Map({{"op", "monitor_msg"}, {"reg", uint64_t{2}}, {"msg", Value::Map({{"picos.monitor", 1}})}}),
      Value::Map({{"op", "ping"}}),
      Value::Map({{"op", "select"}, {"keep", true}}),
      Value::Map({{"op", "ch_sub"}, {"channel", "news"}, {"sub", uint64_t{5}}}),
      Value::Map({{"op", "ch_unsub"}, {"channel", "news"}, {"sub", uint64_t{5}}}),
      Value::Map({{"op", "ch_msg"}, {"sub", uint64_t{5}}, {"msg", Value::List({1, 2, 3})}}),
      Value::Map({{"op", "ch_send"}, {"channel", "news"}, {"msg", "hi"}}),
      Value::Map({{"op", "ch_close"}, {"channel", "news"}}),
      Value::Map({{"op", "ch_deliver"}, {"req", uint64_t{6}}, {"channel", "news"}, {"msg", "m"},
                  {"n", uint32_t{2}}, {"timeout_ns", int64_t{5}}}),
  };
  std::vector<std::string> seeds;
  std::string stream;
  for (const Value& f : frames) {
    std::string one = Encode(Value(Value::ListType{f}));
    seeds.push_back(one);
    stream += Prefixed(one);
  }
  seeds.push_back(Encode(Value(Value::ListType(frames.begin(), frames.end()))));
  seeds.push_back(Encode(Value(Value::ListType{})));
  seeds.push_back(Encode(Value::Map({{"op", "ping"}})));  // not a list: malformed
  seeds.push_back(stream);
  return seeds;
}

}  // namespace picos::testing
