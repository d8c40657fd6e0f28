#include "core/wire/value_codec.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <atomic>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "capnp/message.h"
#include "capnp/serialize.h"
#include "core/kernel/channel_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "core/wire/value.capnp.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec_capnp.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

Value RoundTrip(const Value& v, const CodecOptions& o = {}) {
  absl::StatusOr<std::string> bytes = EncodeValue(v, o);
  EXPECT_OK(bytes) << v.DebugString();
  if (!bytes.ok()) return Value("<encode failed>");
  absl::StatusOr<Value> back = DecodeValue(*bytes, o);
  EXPECT_OK(back) << v.DebugString();
  if (!back.ok()) return Value("<decode failed>");
  return *std::move(back);
}

// A list nested `depth` deep: depth 1 is the scalar 7.
Value Nested(int depth) {
  Value v = 7;
  for (int i = 1; i < depth; ++i) v = Value::List({std::move(v)});
  return v;
}

TEST(ValueCodec, Scalars) {
  for (const Value& v : std::vector<Value>{
           Value(), Value(true), Value(false), Value(0), Value(-1),
           Value(std::numeric_limits<int64_t>::min()), Value(std::numeric_limits<int64_t>::max()),
           Value(uint64_t{0}), Value(std::numeric_limits<uint64_t>::max()), Value(0.0),
           Value(-0.0), Value(3.25), Value(std::numeric_limits<double>::infinity()),
           Value(-std::numeric_limits<double>::infinity()),
           Value(std::numeric_limits<double>::denorm_min()),
           Value(std::numeric_limits<double>::quiet_NaN())}) {
    Value back = RoundTrip(v);
    EXPECT_EQ(back, v) << v.DebugString() << " came back as " << back.DebugString();
    EXPECT_EQ(back.type(), v.type());
  }
  // Signed zero survives (== cannot tell).
  EXPECT_TRUE(std::signbit(RoundTrip(Value(-0.0)).as_double()));
  // int and uint stay apart.
  EXPECT_TRUE(RoundTrip(Value(uint64_t{5})).is_uint());
  EXPECT_TRUE(RoundTrip(Value(int64_t{5})).is_int());
}

TEST(ValueCodec, StringsAndBytes) {
  const std::string with_nul("a\0b", 3);
  for (const Value& v : std::vector<Value>{
           Value(""), Value("hello"), Value("h\xC3\xA9llo, \xE4\xB8\x96\xE7\x95\x8C, \xF0\x9F\x8E\x89"),
           Value(with_nul), Value(std::string(1000, 'x')), Value::Bytes(""),
           Value::Bytes(std::string("\x00\xff\x80\x01", 4)), Value::Bytes(std::string(4097, '\xAB'))}) {
    Value back = RoundTrip(v);
    EXPECT_EQ(back, v) << v.DebugString();
    EXPECT_EQ(back.type(), v.type());
  }
  EXPECT_EQ(RoundTrip(Value(with_nul)).as_string().size(), 3u);
}

TEST(ValueCodec, ListsAndMaps) {
  Value v = Value::Map({
      {"", Value::List({})},
      {"empty map", Value(Value::MapType{})},
      {"list", Value::List({1, "two", 3.0, Value(), Value::List({Value::List({true})})})},
      {"\xE2\x98\x83 key", Value::Map({{"a", uint64_t{1}}, {"b", Value::Bytes("z")}})},
      {std::string("k\0ey", 4), -5},
  });
  EXPECT_EQ(RoundTrip(v), v) << v.DebugString();
  EXPECT_EQ(RoundTrip(Value::List({})), Value::List({}));
  Value::ListType big;
  for (int i = 0; i < 10000; ++i) big.push_back(i % 3 ? Value(i) : Value(absl::StrCat("s", i)));
  EXPECT_EQ(RoundTrip(Value(big)), Value(big));
}

TEST(ValueCodec, NestingUpToTheLimit) {
  CodecOptions o;
  o.max_depth = 10;
  EXPECT_EQ(RoundTrip(Nested(10), o), Nested(10));
  EXPECT_THAT(EncodeValue(Nested(11), o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_depth")));
  // Maps count as levels too.
  Value m = 1;
  for (int i = 1; i < 11; ++i) m = Value::Map({{"k", std::move(m)}});
  EXPECT_THAT(EncodeValue(m, o), StatusIs(absl::StatusCode::kResourceExhausted));
}

// The estimate a hot path uses to refuse a surely oversized message: never
// above the real size, exact for values without handles, and it stops
// counting past `stop`.
TEST(ValueCodec, EncodedSizeAtLeastNeverExceedsTheEncoding) {
  std::vector<Value> values = {
      Value(), Value(true), Value(-5), Value(uint64_t{7}), Value(2.5), Value(""), Value("hello"),
      Value::Bytes(std::string(16, 'p')), Value(std::string(1000, 'x')),
      Value::List({uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{4}, std::string(64, 'p')}),
      Value::Map({{"op", "send"}, {"task", uint64_t{9}}, {"msg", Value::List({1, "two", Value::Map({})})}}),
  };
  for (const Value& v : values) {
    absl::StatusOr<std::string> bytes = EncodeValue(v);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(EncodedSizeAtLeast(v, SIZE_MAX), bytes->size()) << v.DebugString();
  }
  Value big = Value::List({Value(std::string(1 << 20, 'b')), Value(std::string(1 << 20, 'c'))});
  EXPECT_GT(EncodedSizeAtLeast(big, 1000), 1000u);
  EXPECT_LE(EncodedSizeAtLeast(big, 1000), (1u << 20) + 1000u) << "stops once past the bound";
  // Deeper than any limit: counted all the same (with a stack of its own).
  Value deep;
  for (int i = 0; i < 10'000; ++i) {
    Value::ListType one;
    one.push_back(std::move(deep));
    deep = Value(std::move(one));
  }
  EXPECT_GT(EncodedSizeAtLeast(deep, SIZE_MAX), 10'000u * 8);
}

TEST(ValueCodec, EncodeRefusesTooLargeValues) {
  CodecOptions o;
  o.max_encoded_size = 1000;
  EXPECT_THAT(EncodeValue(Value(std::string(2000, 'x')), o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_encoded_size")));
  o = {};
  o.max_string_size = 10;
  EXPECT_THAT(EncodeValue(Value(std::string(11, 'x')), o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_string_size")));
  EXPECT_THAT(EncodeValue(Value::Map({{std::string(11, 'k'), 1}}), o),
              StatusIs(absl::StatusCode::kResourceExhausted));
  o = {};
  o.max_elements = 5;
  EXPECT_THAT(EncodeValue(Value::List({1, 2, 3, 4, 5}), o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_elements")));
  EXPECT_OK(EncodeValue(Value::List({1, 2, 3, 4}), o));
}

TEST(ValueCodec, EncodedSizeIsPlannedExactly) {
  // The planner refuses too-large values from its own count of words, so the
  // count must match what capnp writes, or values near the limit would be
  // refused (count too high) or built first (too low).
  std::vector<Value> values = {
      Value(), Value("x"), Value(""), Value::Bytes(""), Value::Bytes("12345678"),
      Value::List({}), Value::List({1, "ab", Value::Map({{"", 2}})}),
      Value::Map({{"abcdefgh", Value::List({Value::Bytes("q")})}}), Value(TaskRef()),
      Value(ChannelRef())};
  for (const Value& v : values) {
    ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(v));
    CodecOptions o;
    o.max_encoded_size = bytes.size();
    EXPECT_OK(EncodeValue(v, o)) << v.DebugString();
    o.max_encoded_size = bytes.size() - 1;
    EXPECT_THAT(EncodeValue(v, o), StatusIs(absl::StatusCode::kResourceExhausted))
        << v.DebugString();
  }
}

Task<int> Idle() {
  (void)co_await Suspend(absl::Seconds(30));
  co_return 1;
}

PICOS_CORO_TEST(ValueCodec, TaskHandleRoundTripsToTheSameTask) {
  TaskRef t = ThisScheduler().SpawnNamed("idle", Idle());
  Value v = Value::Map({{"reply_to", t}, {"also", Value::List({t, Self()})}});
  absl::StatusOr<std::string> bytes = EncodeValue(v);
  CO_ASSERT_OK(bytes);
  absl::StatusOr<Value> back = DecodeValue(*bytes);
  CO_ASSERT_OK(back);
  EXPECT_EQ(*back, v);
  EXPECT_EQ((*back)["reply_to"].as_task(), t);
  EXPECT_EQ((*back)["also"][1].as_task(), Self());
  // Handles are planned exactly too (see EncodedSizeIsPlannedExactly).
  CodecOptions exact;
  exact.max_encoded_size = bytes->size();
  EXPECT_OK(EncodeValue(v, exact));
  exact.max_encoded_size = bytes->size() - 1;
  EXPECT_THAT(EncodeValue(v, exact), StatusIs(absl::StatusCode::kResourceExhausted));
  // The decoded handle works.
  (void)co_await Yield();  // let the task reach its Suspend
  EXPECT_OK((*back)["reply_to"].as_task().Resume());
  EXPECT_THAT(co_await t.Join(), IsOk());
  // Once the task has ended its identity still resolves, to the same
  // handle, whose Join gives the result (the ended tasks kept).
  absl::StatusOr<Value> late = DecodeValue(*bytes);
  CO_ASSERT_OK(late);
  EXPECT_EQ((*late)["reply_to"].as_task(), t);
  absl::StatusOr<Value> result = co_await (*late)["reply_to"].as_task().Join();
  CO_ASSERT_OK(result);
  EXPECT_EQ(*result, Value(1));
}

Task<int64_t> Return(int64_t n) { co_return n; }

PICOS_CORO_TEST(ValueCodec, EndedExportedTasksAreKeptUpToTheBound) {
  // Exports kEndedTasksKept + 1 tasks and lets them end, in order: the
  // first is forgotten (kNotFound), the last still resolves to its result.
  // Tasks other tests ended earlier are older, so they do not change this.
  std::string first, last;
  for (size_t i = 0; i <= kEndedTasksKept; ++i) {
    TaskRef t = ThisScheduler().Spawn(Return, static_cast<int64_t>(i));
    absl::StatusOr<std::string> bytes = EncodeValue(Value(t));
    CO_ASSERT_OK(bytes);
    absl::StatusOr<Value> r = co_await t.Join();
    CO_ASSERT_OK(r);
    if (i == 0) first = *bytes;
    if (i == kEndedTasksKept) last = *bytes;
    if (i == kEndedTasksKept - 1) {
      // Exactly the bound kept so far: the first still resolves.
      EXPECT_OK(DecodeValue(first));
    }
  }
  EXPECT_THAT(DecodeValue(first), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no longer kept")));
  absl::StatusOr<Value> back = DecodeValue(last);
  CO_ASSERT_OK(back);
  CO_ASSERT_TRUE(back->is_task());
  EXPECT_TRUE(back->as_task().done());
  absl::StatusOr<Value> result = co_await back->as_task().Join();
  CO_ASSERT_OK(result);
  EXPECT_EQ(*result, Value(static_cast<int64_t>(kEndedTasksKept)));
}

PICOS_CORO_TEST(ValueCodec, EndedTaskEncodesButDoesNotResolve) {
  TaskRef t = ThisScheduler().Spawn([]() -> Task<> { co_return; });
  EXPECT_THAT(co_await t.Join(), IsOk());
  CO_ASSERT_TRUE(t.done());
  absl::StatusOr<std::string> bytes = EncodeValue(Value(t));
  CO_ASSERT_OK(bytes);
  EXPECT_THAT(DecodeValue(*bytes),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("has ended")));
}

TEST(ValueCodec, TaskHandleOutsideTheLoop) {
  // Encoded while the loop does not run, resolved until the scheduler ends it.
  std::string bytes;
  {
    Scheduler s;
    TaskRef t = s.Spawn(Idle());
    ASSERT_OK_AND_ASSIGN(bytes, EncodeValue(Value(t)));
    ASSERT_OK_AND_ASSIGN(Value back, DecodeValue(bytes));
    EXPECT_EQ(back.as_task(), t);
    EXPECT_EQ(back.as_task().id(), t.id());
  }  // the scheduler destroys the suspended task: the finish hook runs
  // It is kept as ended: the handle resolves, and says how it ended.
  ASSERT_OK_AND_ASSIGN(Value back, DecodeValue(bytes));
  ASSERT_TRUE(back.is_task());
  EXPECT_TRUE(back.as_task().done());
}

TEST(ValueCodec, NullHandles) {
  EXPECT_EQ(RoundTrip(Value(TaskRef())), Value(TaskRef()));
  EXPECT_EQ(RoundTrip(Value(ChannelRef())), Value(ChannelRef()));
  EXPECT_TRUE(RoundTrip(Value(TaskRef())).is_task());
}

TEST(ValueCodec, ChannelHandleRoundTrips) {
  ChannelRef c = ChannelRef::Adopt(new internal::ChannelCore("codec-test-news"));
  Value v = Value::List({c, c});
  Value back = RoundTrip(v);
  EXPECT_EQ(back, v);
  EXPECT_EQ(back[0].as_channel(), c);
  // A second live channel of the same name cannot be told apart on the wire.
  ChannelRef twin = ChannelRef::Adopt(new internal::ChannelCore("codec-test-news"));
  EXPECT_THAT(EncodeValue(Value(twin)), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                 HasSubstr("codec-test-news")));
  ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(Value(c)));
  c = ChannelRef();
  back = Value();
  v = Value();
  // Only the export table holds it now: gone for decoding, and the name is
  // free for another channel.
  EXPECT_THAT(DecodeValue(bytes), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::string twin_bytes, EncodeValue(Value(twin)));
  ASSERT_OK_AND_ASSIGN(Value twin_back, DecodeValue(twin_bytes));
  EXPECT_EQ(twin_back.as_channel(), twin);
}

TEST(ValueCodec, ConcurrentEncodesAndDecodes) {
  // The export table is shared by every thread; run under --config=asan (or
  // TSan) this shows the locking holds.
  ChannelRef c = ChannelRef::Adopt(new internal::ChannelCore("codec-test-threads"));
  Value v = Value::Map({{"ch", c}, {"n", Value::List({1, "two", Value::Bytes("3")})}});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        absl::StatusOr<std::string> bytes = EncodeValue(v);
        absl::StatusOr<Value> back = bytes.ok() ? DecodeValue(*bytes) : bytes.status();
        if (!back.ok() || *back != v) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// Rewrites the process id of every handle in an encoding, as if another
// process had sent it.
std::string FromAnotherProcess(const Value& v) {
  capnp::MallocMessageBuilder message;
  EXPECT_OK(BuildValue(v, message.initRoot<wire::Value>()));
  auto root = message.getRoot<wire::Value>();
  std::string other(kProcessIdSize, '\x42');
  capnp::Data::Reader other_id(reinterpret_cast<const kj::byte*>(other.data()), other.size());
  if (root.isTask()) root.getTask().setProcessId(other_id);
  if (root.isChannel()) root.getChannel().setProcessId(other_id);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(flat.begin()), flat.asBytes().size());
}

PICOS_CORO_TEST(ValueCodec, RemoteHandlesNeedAPeer) {
  EXPECT_THAT(DecodeValue(FromAnotherProcess(Value(Self()))),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("remote handles need a peer")));
  ChannelRef c = ChannelRef::Adopt(new internal::ChannelCore("codec-test-remote"));
  EXPECT_THAT(DecodeValue(FromAnotherProcess(Value(c))),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("codec-test-remote")));
  co_return;
}

TEST(ValueCodec, ProcessIdIsStable) {
  EXPECT_EQ(ProcessId().size(), kProcessIdSize);
  EXPECT_EQ(ProcessId(), ProcessId());
  EXPECT_NE(ProcessId(), std::string(kProcessIdSize, '\0'));
}

// A HandleCodec of one's own is used both ways.
class FakePeerCodec : public HandleCodec {
 public:
  absl::StatusOr<TaskIdentity> ExportTask(const TaskRef& task) override {
    return TaskIdentity{std::string(kProcessIdSize, 'p'), 77, "fake"};
  }
  absl::StatusOr<TaskRef> ImportTask(const TaskIdentity& id) override {
    imported = id;
    return TaskRef();
  }
  absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef&) override {
    return absl::PermissionDeniedError("no channels here");
  }
  absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity&) override {
    return absl::PermissionDeniedError("no channels here");
  }
  TaskIdentity imported;
};

PICOS_CORO_TEST(ValueCodec, PluggedHandleCodec) {
  FakePeerCodec fake;
  CodecOptions o;
  o.handle_codec = &fake;
  absl::StatusOr<std::string> bytes = EncodeValue(Value(Self()), o);
  CO_ASSERT_OK(bytes);
  EXPECT_OK(DecodeValue(*bytes, o));
  EXPECT_EQ(fake.imported.task_id, 77u);
  EXPECT_EQ(fake.imported.name, "fake");
  ChannelRef c = ChannelRef::Adopt(new internal::ChannelCore("codec-test-denied"));
  EXPECT_THAT(EncodeValue(Value(c), o), StatusIs(absl::StatusCode::kPermissionDenied));
  co_return;
}

// --- Malformed input ---------------------------------------------------------

TEST(ValueCodecDecode, EmptyInput) {
  EXPECT_THAT(DecodeValue(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(ValueCodecDecode, EveryTruncationFails) {
  Value v = Value::Map({{"list", Value::List({1, "two", Value::Bytes("three")})},
                        {"s", "hello world, a string of some length"}});
  ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(v));
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<Value> r = DecodeValue(std::string_view(bytes).substr(0, n));
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument)) << "truncated to " << n;
  }
  EXPECT_THAT(DecodeValue(bytes + std::string(8, '\0')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("follow")));
}

TEST(ValueCodecDecode, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string junk(8 * (1 + rng() % 16), '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    // Small segment counts keep some inputs past the segment table.
    if (i % 2) junk[0] = static_cast<char>(rng() % 2), junk[1] = junk[2] = junk[3] = 0;
    absl::StatusOr<Value> r = DecodeValue(junk);
    if (!r.ok()) {
      EXPECT_NE(r.status().code(), absl::StatusCode::kInternal) << r.status();
    }
  }
}

TEST(ValueCodecDecode, TooDeep) {
  CodecOptions deep;
  deep.max_depth = 200;
  ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(Nested(100), deep));
  EXPECT_OK(DecodeValue(bytes, deep));
  EXPECT_THAT(DecodeValue(bytes),  // default max_depth 64
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_depth")));
}

TEST(ValueCodecDecode, TooLarge) {
  ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(Value(std::string(5000, 'x'))));
  CodecOptions o;
  o.max_encoded_size = 4096;
  EXPECT_THAT(DecodeValue(bytes, o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_encoded_size")));
  o = {};
  o.max_string_size = 4999;
  EXPECT_THAT(DecodeValue(bytes, o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_string_size")));
  ASSERT_OK_AND_ASSIGN(std::string list, EncodeValue(Value::List({1, 2, 3, 4, 5, 6})));
  o = {};
  o.max_elements = 6;
  EXPECT_THAT(DecodeValue(list, o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_elements")));
  o.max_elements = 7;
  EXPECT_OK(DecodeValue(list, o));
}

// Little-endian words of a hand-made message.
std::string Words(std::initializer_list<uint64_t> words) {
  std::string out;
  for (uint64_t w : words) {
    char b[8];
    std::memcpy(b, &w, 8);
    out.append(b, 8);
  }
  return out;
}

constexpr uint64_t kRootValuePointer = (uint64_t{2} << 32) | (uint64_t{1} << 48);  // 2 data, 1 ptr

// A list pointer: offset 0, element size code `size`, `count` elements.
constexpr uint64_t ListPointer(uint64_t size, uint64_t count) {
  return 1 | (size << 32) | (count << 35);
}

// One segment: the root Value of kind `tag`, whose pointer is `pointer`,
// followed by `extra` words.
std::string BombMessage(uint16_t tag, uint64_t pointer, std::initializer_list<uint64_t> extra) {
  std::vector<uint64_t> seg = {kRootValuePointer, tag, 0, pointer};
  seg.insert(seg.end(), extra);
  std::string out = Words({uint64_t{seg.size()} << 32});  // 1 segment of seg.size() words
  for (uint64_t w : seg) out += Words({w});
  return out;
}

TEST(ValueCodecDecode, SizeBombListOfZeroSizedElements) {
  // A List(Value) that claims 2^29-1 elements of size zero (element size
  // code 0, "void"): eight bytes that would ask for 8 GiB of Values.
  std::string bomb = BombMessage(wire::Value::LIST, ListPointer(0, (uint64_t{1} << 29) - 1), {});
  absl::StatusOr<Value> r = DecodeValue(bomb);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument)) << r.status();
  // The same with an inline-composite list whose tag claims 2^29-1 structs of
  // zero words.
  uint64_t tag_word = ((uint64_t{1} << 29) - 1) << 2;  // struct "pointer": count in offset field
  std::string bomb2 = BombMessage(wire::Value::LIST, ListPointer(7, 0), {tag_word});
  r = DecodeValue(bomb2);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument)) << r.status();
  // A map claiming as many entries.
  std::string bomb3 = BombMessage(wire::Value::MAP, ListPointer(0, (uint64_t{1} << 29) - 1), {});
  EXPECT_FALSE(DecodeValue(bomb3).ok());
}

TEST(ValueCodecDecode, SizeBombCaughtByOwnLimitToo) {
  // Through ReadValue with a reader that has no traversal limit (a careless
  // caller): the element limit alone refuses the list before reserving.
  std::string bomb = BombMessage(wire::Value::LIST, ListPointer(0, (uint64_t{1} << 29) - 1), {});
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bomb.size() / 8);
  std::memcpy(words.begin(), bomb.data(), bomb.size());
  capnp::ReaderOptions ro;
  ro.traversalLimitInWords = std::numeric_limits<uint64_t>::max();
  capnp::FlatArrayMessageReader message(words, ro);
  EXPECT_THAT(ReadValue(message.getRoot<wire::Value>()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_elements")));
}

TEST(ValueCodecDecode, SegmentCountThatWrapsIsMalformed) {
  // A well-formed one-segment message, then its table made to claim 2^32
  // segments: the count field holds 0xffffffff (count minus one).
  std::string good = BombMessage(wire::Value::INT, 0, {});
  ASSERT_OK(DecodeValue(good));
  std::string wrapped = good;
  std::memset(wrapped.data(), 0xff, 4);
  EXPECT_THAT(DecodeValue(wrapped),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4294967296 segments")));
  // Far fewer, but more than any writer makes.
  std::string many = good;
  uint32_t count_minus_one = 100000;
  std::memcpy(many.data(), &count_minus_one, 4);
  EXPECT_THAT(DecodeValue(many), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValueCodecDecode, UnknownUnionTag) {
  std::string msg = BombMessage(/*tag=*/200, 0, {});
  EXPECT_THAT(DecodeValue(msg),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown kind")));
}

TEST(ValueCodecDecode, DuplicateMapKeys) {
  capnp::MallocMessageBuilder message;
  auto entries = message.initRoot<wire::Value>().initMap(2);
  entries[0].setKey("k");
  entries[0].initValue().setInt(1);
  entries[1].setKey("k");
  entries[1].initValue().setInt(2);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  std::string bytes(reinterpret_cast<const char*>(flat.begin()), flat.asBytes().size());
  EXPECT_THAT(DecodeValue(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("appears twice")));
}

TEST(ValueCodecDecode, BadProcessIdLength) {
  capnp::MallocMessageBuilder message;
  auto t = message.initRoot<wire::Value>().initTask();
  t.setTaskId(5);
  t.setProcessId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("abc"), 3));
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  std::string bytes(reinterpret_cast<const char*>(flat.begin()), flat.asBytes().size());
  EXPECT_THAT(DecodeValue(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("process id")));
}

TEST(ValueCodecDecode, MultiSegmentMessagesAreRead) {
  // Another writer may split a message into segments.
  capnp::MallocMessageBuilder message(1, capnp::AllocationStrategy::FIXED_SIZE);
  Value v = Value::List({"a", Value::Map({{"b", 2}}), Value::Bytes("ccc")});
  ASSERT_OK(BuildValue(v, message.initRoot<wire::Value>()));
  EXPECT_GT(message.getSegmentsForOutput().size(), 1u);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  std::string bytes(reinterpret_cast<const char*>(flat.begin()), flat.asBytes().size());
  ASSERT_OK_AND_ASSIGN(Value back, DecodeValue(bytes));
  EXPECT_EQ(back, v);
}

}  // namespace
}  // namespace picos

namespace picos {
namespace {

TEST(ListDecoder, ReadsElementsAndPositionalIntegersAsDecodeValueWould) {
  const Value batch = Value::List({Value::List({uint64_t{3}, uint64_t{2}}),
                                   Value::List({uint64_t{1}, uint64_t{7}, uint64_t{8}, uint64_t{9}, "payload"}),
                                   Value::Map({{"op", "ping"}}), Value::List({int64_t{1}, "not a uint"}), 42});
  ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(batch));
  ASSERT_OK_AND_ASSIGN(ListDecoder d, ListDecoder::Open(bytes));
  ASSERT_EQ(d.size(), 5u);
  for (size_t i = 0; i < d.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(Value e, d.Decode(i));
    EXPECT_EQ(e, batch.as_list()[i]) << "element " << i;
  }
  uint64_t fields[4] = {};
  Value last;
  ASSERT_OK_AND_ASSIGN(bool positional, d.DecodeUintsThenValue(1, absl::MakeSpan(fields), &last));
  EXPECT_TRUE(positional);
  EXPECT_EQ(fields[0], 1u);
  EXPECT_EQ(fields[3], 9u);
  EXPECT_EQ(last, Value("payload"));
  // Not that shape: a header of two, a map, a signed integer first, a
  // scalar; nothing is decoded.
  for (size_t i : {0, 2, 3, 4}) {
    Value untouched("untouched");
    ASSERT_OK_AND_ASSIGN(bool p, d.DecodeUintsThenValue(i, absl::MakeSpan(fields), &untouched));
    EXPECT_FALSE(p) << "element " << i;
    EXPECT_EQ(untouched, Value("untouched"));
  }
  uint64_t one[1];
  ASSERT_OK_AND_ASSIGN(bool header, d.DecodeUintsThenValue(0, absl::MakeSpan(one), &last));
  EXPECT_TRUE(header) << "[3, 2] is one uint then a value";
  EXPECT_EQ(one[0], 3u);
  EXPECT_EQ(last, Value(uint64_t{2}));
  EXPECT_THAT(d.Decode(5), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(ListDecoder, ABatchOfPositionalFramesIsReadWithinTheTraversalLimit) {
  // Each element read once: capnp counts every getList() against a limit
  // of twice the message, which reading a frame field by field overran.
  Value::ListType frames;
  for (uint64_t k = 0; k < 2000; ++k) {
    frames.push_back(Value::List({uint64_t{1}, k, k + 1, k + 2, std::string(64, 'p')}));
  }
  ASSERT_OK_AND_ASSIGN(std::string bytes, EncodeValue(Value(std::move(frames))));
  ASSERT_OK_AND_ASSIGN(ListDecoder d, ListDecoder::Open(bytes));
  for (size_t i = 0; i < d.size(); ++i) {
    uint64_t f[4];
    Value msg;
    ASSERT_OK_AND_ASSIGN(bool positional, d.DecodeUintsThenValue(i, absl::MakeSpan(f), &msg));
    ASSERT_TRUE(positional);
    ASSERT_EQ(f[1], i);
    ASSERT_EQ(msg.as_string().size(), 64u);
  }
}

TEST(ListDecoder, RefusesWhatDecodeValueRefusesAndCountsTheWholeMessage) {
  ASSERT_OK_AND_ASSIGN(std::string scalar, EncodeValue(Value(1)));
  EXPECT_THAT(ListDecoder::Open(scalar), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a list")));
  EXPECT_THAT(ListDecoder::Open(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  ASSERT_OK_AND_ASSIGN(std::string list, EncodeValue(Value::List({"a", "b"})));
  for (size_t n = 0; n < list.size(); ++n) {
    absl::StatusOr<ListDecoder> d = ListDecoder::Open(std::string_view(list).substr(0, n));
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << "truncated to " << n;
      continue;
    }
    for (size_t i = 0; i < d->size(); ++i) EXPECT_NE(d->Decode(i).status().code(), absl::StatusCode::kInternal);
  }
  // A list claiming more elements than max_elements is refused at once, as
  // DecodeValue refuses it; below that, max_elements counts every Value
  // decoded from the message, element by element: the list (1), then each
  // element with its items (4 each here).
  Value::ListType items(10, Value(std::string(20, 'x')));
  ASSERT_OK_AND_ASSIGN(std::string ten, EncodeValue(Value(items)));
  CodecOptions o;
  o.max_elements = 6;
  EXPECT_THAT(ListDecoder::Open(ten, o), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_elements")));
  const Value three = Value::List({"a", "b", "c"});
  ASSERT_OK_AND_ASSIGN(std::string nested, EncodeValue(Value::List({three, three, three})));
  o.max_elements = 9;
  ASSERT_OK_AND_ASSIGN(ListDecoder d, ListDecoder::Open(nested, o));
  int decoded = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    absl::StatusOr<Value> e = d.Decode(i);
    if (!e.ok()) {
      EXPECT_THAT(e, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_elements")));
      break;
    }
    ++decoded;
  }
  EXPECT_EQ(decoded, 2) << "1 + 4 + 4 values fit in 9, a third element does not";
  EXPECT_THAT(DecodeValue(nested, o), StatusIs(absl::StatusCode::kResourceExhausted)) << "as DecodeValue counts";
  // Random garbage never crashes, whatever is asked of it.
  std::mt19937_64 rng(777);
  for (int round = 0; round < 5000; ++round) {
    std::string junk(8 * (1 + rng() % 16), '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    junk[0] = static_cast<char>(rng() % 2), junk[1] = junk[2] = junk[3] = 0;
    absl::StatusOr<ListDecoder> g = ListDecoder::Open(junk);
    if (!g.ok()) {
      EXPECT_NE(g.status().code(), absl::StatusCode::kInternal);
      continue;
    }
    for (size_t i = 0; i < std::min<size_t>(g->size(), 64); ++i) {
      uint64_t f[4];
      Value v;
      EXPECT_NE(g->DecodeUintsThenValue(i, absl::MakeSpan(f), &v).status().code(), absl::StatusCode::kInternal);
      EXPECT_NE(g->Decode(i).status().code(), absl::StatusCode::kInternal);
    }
  }
}

}  // namespace
}  // namespace picos

namespace picos {
namespace {

// The Value list that `items` describe.
Value ListOf(absl::Span<const ListItem> items) {
  Value::ListType list;
  for (const ListItem& item : items) {
    if (item.n_uints == 0) {
      list.push_back(*item.value);
      continue;
    }
    Value::ListType fields;
    for (uint8_t k = 0; k < item.n_uints; ++k) fields.push_back(Value(item.uints[k]));
    fields.push_back(*item.value);
    list.push_back(Value(std::move(fields)));
  }
  return Value(std::move(list));
}

TEST(EncodeListInto, GivesTheBytesOfTheValueListItDescribes) {
  const Value header = Value::List({uint64_t{3}, uint64_t{2}});
  const Value payload(std::string(64, 'p'));
  const Value map = Value::Map({{"op", "ping"}, {"n", Value::List({1, 2.5, Value::Bytes("b")})}});
  const Value task = Value::List({Value(), true, int64_t{-5}});
  std::vector<ListItem> items(5);
  items[0].value = &header;
  items[1].value = &payload;
  items[1].uints[0] = 1, items[1].uints[1] = 7, items[1].uints[2] = ~uint64_t{0}, items[1].uints[3] = 0;
  items[1].n_uints = 4;
  items[2].value = &map;
  items[3].value = &task;
  items[3].uints[0] = 9;
  items[3].n_uints = 1;
  items[4].value = &map;
  items[4].n_uints = 2;
  std::string out = "garbage that is replaced";
  ASSERT_OK(EncodeListInto(items, {}, &out));
  ASSERT_OK_AND_ASSIGN(std::string expected, EncodeValue(ListOf(items)));
  EXPECT_EQ(out, expected);
  ASSERT_OK_AND_ASSIGN(Value back, DecodeValue(out));
  EXPECT_EQ(back, ListOf(items));
  // Read back as the remote reader reads it.
  ASSERT_OK_AND_ASSIGN(ListDecoder d, ListDecoder::Open(out));
  uint64_t f[4];
  Value msg;
  ASSERT_OK_AND_ASSIGN(bool positional, d.DecodeUintsThenValue(1, absl::MakeSpan(f), &msg));
  EXPECT_TRUE(positional);
  EXPECT_EQ(f[2], ~uint64_t{0});
  EXPECT_EQ(msg, payload);
  // No items: an empty list.
  ASSERT_OK(EncodeListInto({}, {}, &out));
  ASSERT_OK_AND_ASSIGN(Value empty, DecodeValue(out));
  EXPECT_EQ(empty, Value(Value::ListType{}));
}

TEST(EncodeListInto, RefusesWhatEncodeValueRefuses) {
  const Value payload(std::string(100, 'p'));
  std::vector<ListItem> items(3);
  for (ListItem& item : items) {
    item.value = &payload;
    item.n_uints = 3;
  }
  const Value as_list = ListOf(items);
  std::string out;
  // Each limit, just below and at what the list takes: the same verdicts.
  CodecOptions o;
  for (size_t max : {size_t{9}, size_t{10}, size_t{12}, size_t{13}}) {
    o.max_elements = max;
    absl::Status want = EncodeValue(as_list, o).status();
    absl::Status got = EncodeListInto(items, o, &out);
    EXPECT_EQ(got.code(), want.code()) << "max_elements " << max << ": " << got << " / " << want;
  }
  o = CodecOptions();
  for (int depth : {1, 2, 3}) {
    o.max_depth = depth;
    EXPECT_EQ(EncodeListInto(items, o, &out).code(), EncodeValue(as_list, o).status().code()) << "depth " << depth;
  }
  o = CodecOptions();
  ASSERT_OK_AND_ASSIGN(std::string fits, EncodeValue(as_list));
  for (size_t max : {fits.size() - 8, fits.size()}) {
    o.max_encoded_size = max;
    EXPECT_EQ(EncodeListInto(items, o, &out).code(), EncodeValue(as_list, o).status().code()) << "size " << max;
  }
  // What it cannot describe.
  items[0].n_uints = ListItem::kMaxUints + 1;
  EXPECT_THAT(EncodeListInto(items, {}, &out), StatusIs(absl::StatusCode::kInvalidArgument));
  items[0].n_uints = 0;
  items[0].value = nullptr;
  EXPECT_THAT(EncodeListInto(items, {}, &out), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace picos
