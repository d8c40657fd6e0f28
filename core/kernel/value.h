// Value: what a picos message is. A Value is one of
//
//   null, bool, int (int64_t), uint (uint64_t), double, string (UTF-8 text),
//   bytes (arbitrary octets), list (of Values), map (string keys, sorted),
//   task (a TaskRef), channel (a ChannelRef)
//
// Scalars are held inline; strings, lists, maps and handles live on the heap,
// so a Value is 16 bytes and moving one copies 16 bytes. Copying is deep for
// containers and a reference-count increment for handles. Copying,
// comparing and destroying never overflow the stack, however deep the
// nesting (past a depth they use a work list instead of recursion).
//
//   Value msg = Value::Map({{"op", "add"}, {"args", Value::List({1, 2})}});
//   if (msg.is_map()) int64_t a = msg["args"][0].as_int();
//   PICOS_LOG(info, "got {}", msg.DebugString());
//
// User types travel as Values by specialising ValueTraits:
//
//   struct Point { double x, y; };
//   template <> struct picos::ValueTraits<Point> {
//     static Value ToValue(const Point& p) { return Value::List({p.x, p.y}); }
//     static absl::StatusOr<Point> FromValue(const Value& v) { ... }
//   };
//   Value v = ToValue(Point{1, 2});
//   absl::StatusOr<Point> p = FromValue<Point>(v);
//
// A Value is not thread-safe: one thread at a time. Values move between
// threads by moving them.
#ifndef PICOS_CORE_KERNEL_VALUE_H_
#define PICOS_CORE_KERNEL_VALUE_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/kernel/handles.h"

namespace picos {

class Value {
 public:
  enum class Type : uint8_t {
    kNull,
    kBool,
    kInt,
    kUint,
    kDouble,
    kString,
    kBytes,
    kList,
    kMap,
    kTask,
    kChannel,
  };
  using ListType = std::vector<Value>;
  using MapType = std::map<std::string, Value, std::less<>>;

  Value() noexcept : type_(Type::kNull) { u_.i = 0; }
  Value(std::nullptr_t) noexcept : Value() {}
  Value(bool b) noexcept : type_(Type::kBool) { u_.i = 0; u_.b = b; }
  // Every signed integer type is an int, every unsigned one a uint.
  template <typename I, std::enable_if_t<std::is_integral_v<I> && std::is_signed_v<I> &&
                                             !std::is_same_v<I, bool>,
                                         int> = 0>
  Value(I i) noexcept : type_(Type::kInt) {
    u_.i = i;
  }
  template <typename U, std::enable_if_t<std::is_integral_v<U> && std::is_unsigned_v<U> &&
                                             !std::is_same_v<U, bool>,
                                         int> = 0>
  Value(U u) noexcept : type_(Type::kUint) {
    u_.u = u;
  }
  Value(double d) noexcept : type_(Type::kDouble) { u_.d = d; }
  Value(float d) noexcept : Value(static_cast<double>(d)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(std::string s) : type_(Type::kString) { u_.s = new std::string(std::move(s)); }
  Value(ListType l) : type_(Type::kList) { u_.l = new ListType(std::move(l)); }
  Value(MapType m) : type_(Type::kMap) { u_.m = new MapType(std::move(m)); }
  Value(TaskRef t) noexcept;
  Value(ChannelRef c) noexcept;

  // Octets that are not text.
  static Value Bytes(std::string data);
  static Value List(std::initializer_list<Value> items) { return Value(ListType(items)); }
  static Value Map(std::initializer_list<std::pair<const std::string, Value>> items) {
    return Value(MapType(items));
  }

  Value(const Value& other) : type_(Type::kNull) { CopyFrom(other); }
  Value(Value&& other) noexcept : type_(other.type_), u_(other.u_) {
    other.type_ = Type::kNull;
    other.u_.i = 0;
  }
  Value& operator=(const Value& other) {
    if (this != &other) {
      Value tmp(other);
      swap(tmp);
    }
    return *this;
  }
  Value& operator=(Value&& other) noexcept {
    if (this != &other) {
      if (HasHeap()) Reset();
      type_ = other.type_;
      u_ = other.u_;
      other.type_ = Type::kNull;
      other.u_.i = 0;
    }
    return *this;
  }
  // Scalars own nothing: only the heap kinds pay for the out-of-line Reset.
  // Every message passes through here several times.
  ~Value() {
    if (HasHeap()) Reset();
  }

  void swap(Value& other) noexcept {
    std::swap(type_, other.type_);
    std::swap(u_, other.u_);
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_uint() const { return type_ == Type::kUint; }
  bool is_double() const { return type_ == Type::kDouble; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_bytes() const { return type_ == Type::kBytes; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_map() const { return type_ == Type::kMap; }
  bool is_task() const { return type_ == Type::kTask; }
  bool is_channel() const { return type_ == Type::kChannel; }

  // Accessors assert the type: asking a string for an int is a bug. Use the
  // is_*() tests, or FromValue<T>() which returns a status, on untrusted data.
  bool as_bool() const;
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_double() const;
  // The text of a string or the octets of bytes.
  const std::string& as_string() const;
  const ListType& as_list() const;
  ListType& as_list();
  const MapType& as_map() const;
  MapType& as_map();
  TaskRef as_task() const;
  ChannelRef as_channel() const;

  // List element; asserts a list and an index in range.
  const Value& operator[](size_t index) const;
  // Map lookup; a missing key (or a non-map) gives a null Value.
  const Value& operator[](std::string_view key) const;
  // Map lookup that tells a missing key apart.
  const Value* Find(std::string_view key) const;

  // Readable rendering for logs: strings quoted and escaped, bytes as hex,
  // handles by name. Long contents are elided.
  std::string DebugString() const;

  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  friend class ValueTestPeer;
  bool HasHeap() const { return type_ >= Type::kString; }
  void Reset() noexcept;
  void CopyFrom(const Value& other);
  // Lists and maps: recursion bounded in depth, then a work list (value.cc).
  void DestroyContainer() noexcept;
  void DeleteContainer() noexcept;
  void CopyDeep(const Value& other);
  static bool ShallowEqual(const Value& a, const Value& b);
  static bool EqualDeep(const Value& a, const Value& b);

  Type type_;
  union Rep {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    std::string* s;
    ListType* l;
    MapType* m;
    internal::TaskCore* t;
    internal::ChannelCore* c;
  } u_;
};

static_assert(sizeof(Value) == 16, "Value must stay two words");

const char* ValueTypeName(Value::Type type);

// Conversion of user types to and from Value: specialise for your type.
template <typename T, typename = void>
struct ValueTraits;

template <typename T>
concept ValueConvertible = requires(const T& t, const Value& v) {
  { ValueTraits<T>::ToValue(t) } -> std::convertible_to<Value>;
  { ValueTraits<T>::FromValue(v) } -> std::convertible_to<absl::StatusOr<T>>;
};

template <typename T>
Value ToValue(const T& t) {
  return ValueTraits<T>::ToValue(t);
}

template <typename T>
absl::StatusOr<T> FromValue(const Value& v) {
  return ValueTraits<T>::FromValue(v);
}

namespace internal {
absl::Status WrongType(const Value& v, const char* wanted);
}

template <>
struct ValueTraits<Value> {
  static Value ToValue(const Value& v) { return v; }
  static absl::StatusOr<Value> FromValue(const Value& v) { return v; }
};

template <>
struct ValueTraits<bool> {
  static Value ToValue(bool b) { return Value(b); }
  static absl::StatusOr<bool> FromValue(const Value& v) {
    if (!v.is_bool()) return internal::WrongType(v, "bool");
    return v.as_bool();
  }
};

// Integers convert between int and uint when the number fits the target.
template <typename I>
struct ValueTraits<I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>>> {
  static Value ToValue(I i) { return Value(i); }
  static absl::StatusOr<I> FromValue(const Value& v) {
    if (v.is_int()) {
      int64_t x = v.as_int();
      if (std::in_range<I>(x)) return static_cast<I>(x);
    } else if (v.is_uint()) {
      uint64_t x = v.as_uint();
      if (std::in_range<I>(x)) return static_cast<I>(x);
    } else {
      return internal::WrongType(v, "integer");
    }
    return absl::OutOfRangeError("integer does not fit the requested type");
  }
};

template <>
struct ValueTraits<double> {
  static Value ToValue(double d) { return Value(d); }
  static absl::StatusOr<double> FromValue(const Value& v) {
    if (v.is_double()) return v.as_double();
    if (v.is_int()) return static_cast<double>(v.as_int());
    if (v.is_uint()) return static_cast<double>(v.as_uint());
    return internal::WrongType(v, "double");
  }
};

template <>
struct ValueTraits<std::string> {
  static Value ToValue(const std::string& s) { return Value(s); }
  static absl::StatusOr<std::string> FromValue(const Value& v) {
    if (!v.is_string() && !v.is_bytes()) return internal::WrongType(v, "string");
    return v.as_string();
  }
};

template <>
struct ValueTraits<TaskRef> {
  static Value ToValue(const TaskRef& t) { return Value(t); }
  static absl::StatusOr<TaskRef> FromValue(const Value& v) {
    if (!v.is_task()) return internal::WrongType(v, "task");
    return v.as_task();
  }
};

template <>
struct ValueTraits<ChannelRef> {
  static Value ToValue(const ChannelRef& c) { return Value(c); }
  static absl::StatusOr<ChannelRef> FromValue(const Value& v) {
    if (!v.is_channel()) return internal::WrongType(v, "channel");
    return v.as_channel();
  }
};

// Only for element types that convert themselves: otherwise ValueTraits of
// the vector stays undefined, and ValueConvertible<std::vector<T>> is false
// instead of a hard error deep inside a template.
template <typename T>
struct ValueTraits<std::vector<T>,
                   std::enable_if_t<!std::is_same_v<T, Value> && ValueConvertible<T>>> {
  static Value ToValue(const std::vector<T>& items) {
    Value::ListType l;
    l.reserve(items.size());
    for (const T& t : items) l.push_back(ValueTraits<T>::ToValue(t));
    return Value(std::move(l));
  }
  static absl::StatusOr<std::vector<T>> FromValue(const Value& v) {
    if (!v.is_list()) return internal::WrongType(v, "list");
    std::vector<T> out;
    out.reserve(v.as_list().size());
    for (const Value& item : v.as_list()) {
      absl::StatusOr<T> t = ValueTraits<T>::FromValue(item);
      if (!t.ok()) return t.status();
      out.push_back(*std::move(t));
    }
    return out;
  }
};

template <>
struct ValueTraits<Value::ListType> {
  static Value ToValue(const Value::ListType& l) { return Value(l); }
  static absl::StatusOr<Value::ListType> FromValue(const Value& v) {
    if (!v.is_list()) return internal::WrongType(v, "list");
    return v.as_list();
  }
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_VALUE_H_
