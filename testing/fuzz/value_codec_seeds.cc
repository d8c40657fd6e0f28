#include "testing/fuzz/value_codec_seeds.h"

#include <cstdlib>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"
#include "capnp/message.h"
#include "capnp/serialize.h"
#include "core/wire/value.capnp.h"
#include "core/wire/value_codec.h"

namespace picos::testing {
namespace {

// A task and a channel of another process, written directly: a live
// TaskRef would need a scheduler. Decoding them gives kUnimplemented, after
// they are parsed.
std::string RemoteHandles() {
  capnp::MallocMessageBuilder message;
  auto list = message.initRoot<wire::Value>().initList(2);
  std::string process(kProcessIdSize, '\x5a');
  capnp::Data::Reader process_id(reinterpret_cast<const kj::byte*>(process.data()),
                                 process.size());
  auto task = list[0].initTask();
  task.setProcessId(process_id);
  task.setTaskId(42);
  task.setName("worker");
  auto channel = list[1].initChannel();
  channel.setProcessId(process_id);
  channel.setName("news");
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(flat.begin()), flat.asBytes().size());
}

}  // namespace

std::vector<std::string> ValueCodecSeeds() {
  Value deep = 1;
  for (int i = 0; i < 20; ++i) deep = (i % 2) ? Value::List({deep, i}) : Value::Map({{"d", deep}});
  std::vector<Value> values = {
      Value(),
      Value(true),
      Value(std::numeric_limits<int64_t>::min()),
      Value(std::numeric_limits<uint64_t>::max()),
      Value(std::numeric_limits<double>::quiet_NaN()),
      Value(-0.0),
      Value(""),
      Value("h\xC3\xA9llo \xF0\x9F\x8E\x89"),
      Value::Bytes(std::string("\x00\x01\xfe\xff", 4)),
      Value::List({}),
      Value::List({1, "two", 3.0, Value::Bytes("4"), Value(), false}),
      Value::Map({{"op", "add"}, {"args", Value::List({1, 2})}, {"", Value::Map({})}}),
      deep,
      Value::List({Value(TaskRef()), Value(ChannelRef())}),
  };
  std::vector<std::string> seeds;
  for (const Value& v : values) {
    absl::StatusOr<std::string> bytes = EncodeValue(v);
    if (!bytes.ok()) {
      std::fprintf(stderr, "seed %s: %s\n", v.DebugString().c_str(),
                   bytes.status().ToString().c_str());
      std::abort();
    }
    seeds.push_back(*std::move(bytes));
  }
  seeds.push_back(RemoteHandles());
  return seeds;
}

}  // namespace picos::testing
