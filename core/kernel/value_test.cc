#include "core/kernel/value.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/status_matchers.h"

namespace {

struct Point {
  double x = 0;
  double y = 0;
  friend bool operator==(const Point&, const Point&) = default;
};

}  // namespace

template <>
struct picos::ValueTraits<Point> {
  static Value ToValue(const Point& p) { return Value::List({p.x, p.y}); }
  static absl::StatusOr<Point> FromValue(const Value& v) {
    if (!v.is_list() || v.as_list().size() != 2) return internal::WrongType(v, "point");
    absl::StatusOr<double> x = picos::FromValue<double>(v[0]);
    absl::StatusOr<double> y = picos::FromValue<double>(v[1]);
    if (!x.ok()) return x.status();
    if (!y.ok()) return y.status();
    return Point{*x, *y};
  }
};

namespace picos {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

TEST(Value, TypesOfConstructors) {
  EXPECT_TRUE(Value().is_null());
  EXPECT_TRUE(Value(nullptr).is_null());
  EXPECT_TRUE(Value(true).is_bool());
  EXPECT_TRUE(Value(int8_t{-1}).is_int());
  EXPECT_TRUE(Value(-1L).is_int());
  EXPECT_TRUE(Value(uint8_t{1}).is_uint());
  EXPECT_TRUE(Value(1UL).is_uint());
  EXPECT_TRUE(Value(1.5f).is_double());
  EXPECT_TRUE(Value("s").is_string());
  EXPECT_TRUE(Value(std::string_view("s")).is_string());
  EXPECT_TRUE(Value::Bytes("b").is_bytes());
  EXPECT_TRUE(Value::List({1}).is_list());
  EXPECT_TRUE(Value::Map({{"a", 1}}).is_map());
  EXPECT_TRUE(Value(TaskRef()).is_task());
  EXPECT_TRUE(Value(ChannelRef()).is_channel());
  EXPECT_EQ(sizeof(Value), 16u);
}

TEST(Value, CopyIsDeepAndMoveLeavesNull) {
  Value a = Value::Map({{"l", Value::List({1, "x"})}});
  Value b = a;
  EXPECT_EQ(a, b);
  b.as_map()["l"].as_list().push_back(3);
  EXPECT_NE(a, b);
  EXPECT_EQ(a["l"].as_list().size(), 2u);
  Value c = std::move(b);
  EXPECT_TRUE(b.is_null());  // NOLINT: moved-from state is specified
  EXPECT_EQ(c["l"].as_list().size(), 3u);
  c = a;
  EXPECT_EQ(c, a);
  c = c;  // self-assignment is harmless
  EXPECT_EQ(c, a);
  Value d("text");
  d = std::move(c);
  EXPECT_EQ(d, a);
  d.swap(b);
  EXPECT_TRUE(d.is_null());
  EXPECT_EQ(b, a);
}

TEST(Value, Equality) {
  EXPECT_EQ(Value(), Value());
  EXPECT_NE(Value(1), Value(uint64_t{1}));  // int and uint are distinct types
  EXPECT_NE(Value("a"), Value::Bytes("a"));
  EXPECT_EQ(Value(std::nan("")), Value(std::nan("")));  // NaN equals NaN here
  EXPECT_EQ(Value(0.0), Value(-0.0));
  EXPECT_NE(Value::List({1, 2}), Value::List({2, 1}));
  EXPECT_EQ(Value::Map({{"a", 1}, {"b", 2}}), Value::Map({{"b", 2}, {"a", 1}}));
  EXPECT_NE(Value(TaskRef()), Value(ChannelRef()));
}

TEST(Value, Lookup) {
  Value m = Value::Map({{"a", 1}});
  EXPECT_EQ(m["a"], Value(1));
  EXPECT_TRUE(m["missing"].is_null());
  EXPECT_EQ(m.Find("missing"), nullptr);
  EXPECT_NE(m.Find("a"), nullptr);
  EXPECT_TRUE(Value(5)["a"].is_null());
  EXPECT_EQ(Value::List({4, 5})[1], Value(5));
}

TEST(Value, DebugString) {
  EXPECT_EQ(Value().DebugString(), "null");
  EXPECT_EQ(Value(true).DebugString(), "true");
  EXPECT_EQ(Value(-3).DebugString(), "-3");
  EXPECT_EQ(Value(uint64_t{3}).DebugString(), "3u");
  EXPECT_EQ(Value("a\"b\n").DebugString(), "\"a\\\"b\\n\"");
  EXPECT_EQ(Value::Bytes("\x01\xff").DebugString(), "b'01ff'");
  EXPECT_EQ(Value::List({1, "x"}).DebugString(), "[1, \"x\"]");
  EXPECT_EQ(Value::Map({{"k", Value()}}).DebugString(), "{\"k\": null}");
  EXPECT_EQ(Value(TaskRef()).DebugString(), "<null task>");
  // Long contents are elided, so a log line stays bounded.
  EXPECT_LT(Value(std::string(10000, 'x')).DebugString().size(), 300u);
  Value::ListType many(1000, Value(1));
  EXPECT_LT(Value(many).DebugString().size(), 200u);
}

TEST(Value, TraitsOfBuiltinTypes) {
  EXPECT_EQ(*FromValue<int>(Value(uint64_t{5})), 5);
  EXPECT_THAT(FromValue<int8_t>(Value(1000)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(FromValue<uint32_t>(Value(-1)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*FromValue<uint64_t>(Value(std::numeric_limits<uint64_t>::max())),
            std::numeric_limits<uint64_t>::max());
  EXPECT_THAT(FromValue<int>(Value("5")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected integer")));
  EXPECT_EQ(*FromValue<double>(Value(2)), 2.0);
  EXPECT_EQ(*FromValue<std::string>(Value::Bytes("b")), "b");
  EXPECT_THAT(FromValue<bool>(Value(1)), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<int> ints = {1, 2, 3};
  EXPECT_EQ(*FromValue<std::vector<int>>(ToValue(ints)), ints);
  EXPECT_THAT(FromValue<std::vector<int>>(Value::List({1, "x"})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FromValue<TaskRef>(Value(1)), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Value, TraitsOfAUserType) {
  static_assert(ValueConvertible<Point>);
  Point p{1.5, -2};
  Value v = ToValue(p);
  EXPECT_EQ(v, Value::List({1.5, -2.0}));
  EXPECT_EQ(*FromValue<Point>(v), p);
  EXPECT_THAT(FromValue<Point>(Value("no")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("point")));
  std::vector<Point> ps = {p, {3, 4}};
  EXPECT_EQ(*FromValue<std::vector<Point>>(ToValue(ps)), ps);
}

// Lists `depth` deep with 7 at the bottom; every tenth level a map.
Value Nest(int depth) {
  Value v(7);
  for (int i = 0; i < depth; ++i) {
    if (i % 10) {
      Value::ListType l;
      l.push_back(std::move(v));
      v = Value(std::move(l));
    } else {
      Value::MapType m;
      m.emplace("k", std::move(v));
      v = Value(std::move(m));
    }
  }
  return v;
}

TEST(Value, DeepNestingDoesNotOverflowTheStackOnCopyCompareOrDestroy) {
  // About a million levels: recursion this deep overflows an 8 MiB stack.
  constexpr int kDepth = 1'000'000;
  Value deep = Nest(kDepth);
  Value copy = deep;
  EXPECT_TRUE(copy == deep);
  // A difference at the very bottom is seen.
  Value other = deep;
  Value* bottom = &other;
  for (int i = kDepth - 1; i >= 0; --i) {
    bottom = (i % 10) ? &bottom->as_list()[0] : &bottom->as_map().find("k")->second;
  }
  EXPECT_EQ(*bottom, Value(7));
  *bottom = Value(8);
  EXPECT_FALSE(copy == other);
  EXPECT_TRUE(copy == deep);
  // Both destroyed here, and `other`, without recursion past a bound.
  copy = Value();
  deep = Value();
  EXPECT_TRUE(deep.is_null());
}

TEST(Value, DeepAndWideValuesCopyExactly) {
  // Past the recursion bound the copy goes through a work list: maps keep
  // their keys and order, lists their items, handles their identity.
  Value wide = Value::Map({{"a", Value::List({1, "two", Value::Bytes("3"), 4.5})},
                           {"b", Value::Map({{"x", nullptr}, {"y", true}})},
                           {"c", Value(ChannelRef())}});
  Value deep = wide;
  for (int i = 0; i < 1000; ++i) {
    Value::ListType l;
    l.push_back(wide);
    l.push_back(std::move(deep));
    l.push_back(i);
    deep = Value(std::move(l));
  }
  Value copy = deep;
  EXPECT_EQ(copy, deep);
  const Value* v = &copy;
  for (int i = 999; i >= 0; --i) {
    EXPECT_EQ((*v)[size_t{0}], wide);
    EXPECT_EQ((*v)[2], Value(i));
    v = &(*v)[1];
  }
  EXPECT_EQ(*v, wide);
}

TEST(ValueChecked, GetNamesTheFieldAndWhatWasWrong) {
  Value msg = Value::Map({{"n", 42}, {"s", "text"}, {"big", uint64_t{1} << 40}, {"nil", nullptr}});
  EXPECT_EQ(msg.Get<int64_t>("n").value(), 42);
  EXPECT_EQ(msg.Get<std::string>("s").value(), "text");
  EXPECT_THAT(msg.Get<int64_t>("s"), StatusIs(absl::StatusCode::kInvalidArgument,
                                               "field \"s\": expected integer, got string"));
  EXPECT_THAT(msg.Get<int>("missing"),
              StatusIs(absl::StatusCode::kInvalidArgument, "missing field \"missing\""));
  EXPECT_THAT(msg.Get<int32_t>("big"),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("field \"big\"")));
  EXPECT_THAT(msg.Get<TaskRef>("nil"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected task, got null")));
  // Not a map at all: no abort, an error.
  EXPECT_THAT(Value(5).Get<int>("n"),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected map, got int"));
  EXPECT_THAT(Value("s").As<int>(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Value(3).As<double>().value(), 3.0);
}

TEST(ValueChecked, GetOrFallsBack) {
  Value msg = Value::Map({{"n", 42}, {"s", "text"}});
  EXPECT_EQ(msg.GetOr<int64_t>("n", 7), 42);
  EXPECT_EQ(msg.GetOr<int64_t>("s", 7), 7);
  EXPECT_EQ(msg.GetOr<int64_t>("missing", 7), 7);
  EXPECT_EQ(Value::List({1}).GetOr<int64_t>("n", 7), 7);
  EXPECT_EQ(msg.GetOr<std::string>("s", ""), "text");
}

TEST(ValueChecked, ListItems) {
  Value list = Value::List({1, "two"});
  EXPECT_EQ(list.Get<int>(0).value(), 1);
  EXPECT_THAT(list.Get<int>(1), StatusIs(absl::StatusCode::kInvalidArgument,
                                         "item 1: expected integer, got string"));
  EXPECT_THAT(list.Get<int>(2), StatusIs(absl::StatusCode::kInvalidArgument,
                                         "no item 2 in a list of 2"));
  EXPECT_THAT(Value("x").Get<int>(0),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected list, got string"));
}

TEST(MessageReader, ReadsFieldsIntoVariables) {
  Value msg = Value::Map({{"client", Value(TaskRef())},
                          {"n", 9},
                          {"where", Value::List({1.5, 2})},
                          {"tags", Value::List({"a", "b"})}});
  TaskRef client;
  int64_t n = 0;
  Point where;
  std::vector<std::string> tags;
  std::string op = "square";
  EXPECT_OK(MessageReader(msg)
                .Get("client", &client)
                .Get("n", &n)
                .Get("where", &where)
                .Get("tags", &tags)
                .Optional("op", &op)
                .status());
  EXPECT_EQ(n, 9);
  EXPECT_EQ(where, (Point{1.5, 2}));
  EXPECT_EQ(tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(op, "square");  // absent: kept
}

TEST(MessageReader, FirstErrorWinsAndLaterFieldsAreUntouched) {
  Value msg = Value::Map({{"n", "nine"}, {"m", 1}, {"op", nullptr}});
  int64_t n = -1;
  int64_t m = -1;
  std::string op = "keep";
  absl::Status s = MessageReader(msg).Optional("op", &op).Get("n", &n).Get("m", &m).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "field \"n\": expected integer, got string"));
  EXPECT_EQ(n, -1);
  EXPECT_EQ(m, -1);        // not read after the error
  EXPECT_EQ(op, "keep");   // null counts as absent for Optional
  EXPECT_THAT(MessageReader(msg).Get("absent", &n).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "missing field \"absent\""));
  EXPECT_THAT(MessageReader(msg).Optional("n", &n).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field \"n\"")));
  EXPECT_THAT(MessageReader(Value::List({1})).Get("n", &n).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected map, got list"));
}

TEST(MessageReader, HostileKeysAreBoundedInErrors) {
  std::string key(1000, 'k');
  key[0] = '\n';
  int n;
  absl::Status s = MessageReader(Value::Map({})).Get(key, &n).status();
  EXPECT_LT(s.message().size(), 100u);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\\n")));
}

}  // namespace
}  // namespace picos
