// EncodeValue builds its message in the string it returns, and DecodeValue
// reads word-aligned input where it is (value_codec.cc): the bytes on the
// wire must stay exactly what Cap'n Proto's own serialisation gives, and
// input at any alignment must decode the same.
#include <string>
#include <vector>

#include "capnp/message.h"
#include "capnp/serialize.h"
#include "core/kernel/value.h"
#include "core/wire/value.capnp.h"
#include "core/wire/value_codec.h"
#include "core/wire/value_codec_capnp.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

std::vector<Value> Samples() {
  Value::ListType batch;
  for (int i = 0; i < 512; ++i) {
    batch.push_back(Value::Map({{"op", "send"},
                                {"task", uint64_t{7}},
                                {"proof", Value::Bytes(std::string(16, 'k'))},
                                {"msg", std::string(64, 'p')}}));
  }
  return {Value(), Value(int64_t{-3}), Value(""), Value(std::string(1000, 'x')),
          Value::Bytes(std::string(9, '\0')), Value::List({}),
          Value::Map({{"a", Value::List({1, 2.5, true, Value::Map({{"", Value()}})})}}),
          Value(TaskRef()), Value(ChannelRef()), Value(std::move(batch))};
}

// What capnp::messageToFlatArray writes for `v` built in one segment (the
// encoding before the in-place build: one segment of the planned size).
std::string CapnpFlat(const Value& v) {
  capnp::MallocMessageBuilder message(1u << 20, capnp::AllocationStrategy::FIXED_SIZE);
  EXPECT_OK(BuildValue(v, message.initRoot<wire::Value>()));
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(flat.begin()), flat.asBytes().size());
}

TEST(ValueCodecInPlace, EncodingIsCapnpsFlatArray) {
  for (const Value& v : Samples()) {
    ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(v));
    EXPECT_EQ(bytes, CapnpFlat(v)) << v.DebugString().substr(0, 200);
  }
}

TEST(ValueCodecInPlace, DecodesAtEveryAlignment) {
  for (const Value& v : Samples()) {
    ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(v));
    for (size_t shift = 0; shift < 8; ++shift) {
      std::string buffer(shift, '#');
      buffer += bytes;
      ASSERT_OK_AND_ASSIGN(Value back, DecodeValue(std::string_view(buffer).substr(shift)));
      EXPECT_EQ(back, v) << "shifted by " << shift;
      // A truncated message fails the same way at any alignment.
      EXPECT_FALSE(DecodeValue(std::string_view(buffer).substr(shift, bytes.size() - 8)).ok());
    }
  }
}

}  // namespace
}  // namespace picos
