// The batch decoder's header and frames (frames_internal.h), on batches
// encoded as a peer writes them.
#include "core/remote/frames_internal.h"

#include <string>

#include "absl/status/status.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos::internal {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

// A batch of `frames`, opened as the reader opens it.
ListDecoder Open(const Value::ListType& frames, std::string* bytes) {
  *bytes = EncodeValue(Value(frames)).value();
  return OpenBatch(*bytes, CodecOptions()).value();
}

TEST(ReadBatchHeader, ReadsSeqAndAckInPlaceThenTheFramesFollow) {
  std::string bytes;
  ListDecoder batch = Open({Value::List({Value(uint64_t{7}), Value(uint64_t{5})}),
                            Value::List({Value(kSendFrame), Value(uint64_t{42}), Value(uint64_t{1}),
                                         Value(uint64_t{2}), Value("hello")})},
                           &bytes);
  uint64_t seq = 0, ack = 0;
  EXPECT_EQ(ReadBatchHeader(batch, &seq, &ack).value(), true);
  EXPECT_EQ(seq, 7u);
  EXPECT_EQ(ack, 5u);
  absl::StatusOr<Frame> send = ReadFrame(batch, 1);
  ASSERT_TRUE(send.ok()) << send.status();
  EXPECT_TRUE(send->is_send);
  EXPECT_EQ(send->task, 42u);
  EXPECT_EQ(send->value, Value("hello"));
}

TEST(ReadBatchHeader, AnythingElseFirstIsLeftForReadFrame) {
  uint64_t seq = 9, ack = 9;
  std::string bytes;
  // A ping (a map), a send first (no header), three numbers, an empty batch.
  for (const Value::ListType& frames :
       {Value::ListType{Value::Map({{"op", "ping"}, {"ack", uint64_t{3}}})},
        Value::ListType{Value::List({Value(kSendFrame), Value(uint64_t{1}), Value(uint64_t{2}), Value(uint64_t{3}),
                                     Value(1)})},
        Value::ListType{Value::List({Value(uint64_t{1}), Value(uint64_t{2}), Value(uint64_t{3})})},
        Value::ListType{}}) {
    ListDecoder batch = Open(frames, &bytes);
    EXPECT_EQ(ReadBatchHeader(batch, &seq, &ack).value(), false) << Value(frames).DebugString();
    EXPECT_EQ(seq, 9u);  // untouched
    EXPECT_EQ(ack, 9u);
  }
}

TEST(ReadBatchHeader, ASeqWithAnAckThatIsNoNumberIsAMalformedBatch) {
  uint64_t seq = 0, ack = 0;
  std::string bytes;
  ListDecoder batch = Open({Value::List({Value(uint64_t{7}), Value("five")})}, &bytes);
  EXPECT_THAT(ReadBatchHeader(batch, &seq, &ack),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("malformed batch header: [7, ")));
  ListDecoder negative = Open({Value::List({Value(uint64_t{7}), Value(-1)})}, &bytes);
  EXPECT_THAT(ReadBatchHeader(negative, &seq, &ack), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace picos::internal
