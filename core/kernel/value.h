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

  // Checked access, for anything that came from outside the code reading it
  // (a received message, another task's result): never aborts. An error says
  // which field and what was wrong, kInvalidArgument (kOutOfRange for a
  // number that does not fit T). T is any type with ValueTraits: int64_t,
  // int, uint64_t, double, bool, std::string, TaskRef, ChannelRef, Value,
  // std::vector<...>, or a user type.
  //
  //   absl::StatusOr<int64_t> n = msg.Get<int64_t>("n");  // missing "n": an error
  //   int64_t limit = msg.GetOr<int64_t>("limit", 10);    // missing or wrong: 10
  //   absl::StatusOr<std::string> text = msg.As<std::string>();
  //
  // MessageReader (below) reads several fields with one error.
  template <typename T>
  absl::StatusOr<T> As() const;
  // The field `key` of a map.
  template <typename T>
  absl::StatusOr<T> Get(std::string_view key) const;
  // Item `index` of a list.
  template <typename T>
  absl::StatusOr<T> Get(size_t index) const;
  // The field `key` of a map, or `fallback` when this is not a map, the field
  // is missing, or it does not convert to T.
  template <typename T>
  T GetOr(std::string_view key, T fallback) const;

  // Asserting accessors: asking a string for an int is a bug and aborts the
  // process. Only for Values this code made, or after an is_*() test; read
  // anything received with the checked forms above.
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

  // List element; asserts a list and an index in range (Get<T>(index) does
  // not).
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

// --- Checked access ---

namespace internal {
absl::Status FieldError(std::string_view key, const absl::Status& why);
absl::Status MissingField(std::string_view key);
absl::Status ItemError(size_t index, const absl::Status& why);
absl::Status NoSuchItem(const Value& v, size_t index);
}  // namespace internal

template <typename T>
absl::StatusOr<T> Value::As() const {
  return ValueTraits<T>::FromValue(*this);
}

template <typename T>
absl::StatusOr<T> Value::Get(std::string_view key) const {
  if (!is_map()) return internal::WrongType(*this, "map");
  const Value* field = Find(key);
  if (field == nullptr) return internal::MissingField(key);
  absl::StatusOr<T> v = ValueTraits<T>::FromValue(*field);
  if (!v.ok()) return internal::FieldError(key, v.status());
  return v;
}

template <typename T>
absl::StatusOr<T> Value::Get(size_t index) const {
  if (!is_list() || index >= u_.l->size()) return internal::NoSuchItem(*this, index);
  absl::StatusOr<T> v = ValueTraits<T>::FromValue((*u_.l)[index]);
  if (!v.ok()) return internal::ItemError(index, v.status());
  return v;
}

template <typename T>
T Value::GetOr(std::string_view key, T fallback) const {
  const Value* field = Find(key);
  if (field == nullptr) return fallback;
  absl::StatusOr<T> v = ValueTraits<T>::FromValue(*field);
  return v.ok() ? *std::move(v) : std::move(fallback);
}

// Reads a message that is a map, field by field, into variables; the first
// thing wrong (not a map, a field missing, a field of the wrong type) is the
// one error, and the calls after it do nothing. For messages from other
// tasks or other processes: nothing here aborts.
//
//   picos::TaskRef client;
//   int64_t n = 0;
//   std::string op = "square";  // optional: kept when the field is absent
//   absl::Status s = picos::MessageReader(msg)
//                        .Get("client", &client)
//                        .Get("n", &n)
//                        .Optional("op", &op)
//                        .status();
//   // s: OK, or e.g. INVALID_ARGUMENT: field "n": expected integer, got string
//
// In a coroutine, `PICOS_CO_RETURN_IF_ERROR(MessageReader(msg)...status());`
// ends the task with that error instead. Each variable's type picks the
// conversion (ValueTraits), so user types with ValueTraits read the same way,
// and a ValueTraits<T>::FromValue can be written with a MessageReader.
// The reader refers to `message`, which must outlive it: use it within one
// expression, as above.
class MessageReader {
 public:
  explicit MessageReader(const Value& message) : message_(message) {
    if (!message.is_map()) status_ = internal::WrongType(message, "map");
  }
  MessageReader(const MessageReader&) = delete;
  MessageReader& operator=(const MessageReader&) = delete;

  // The field `key` into `*out`: an error if it is missing or does not
  // convert to T. `*out` is untouched on error.
  template <typename T>
  MessageReader& Get(std::string_view key, T* out) {
    return Read(key, out, /*required=*/true);
  }

  // The field `key` into `*out` if present and not null; an error if present
  // and not convertible to T.
  template <typename T>
  MessageReader& Optional(std::string_view key, T* out) {
    return Read(key, out, /*required=*/false);
  }

  // OK, or the first error met.
  absl::Status status() const { return status_; }
  bool ok() const { return status_.ok(); }

 private:
  template <typename T>
  MessageReader& Read(std::string_view key, T* out, bool required) {
    if (!status_.ok()) return *this;
    const Value* field = message_.Find(key);
    if (field == nullptr || (!required && field->is_null())) {
      if (required) status_ = internal::MissingField(key);
      return *this;
    }
    absl::StatusOr<T> v = ValueTraits<T>::FromValue(*field);
    if (!v.ok()) {
      status_ = internal::FieldError(key, v.status());
    } else {
      *out = *std::move(v);
    }
    return *this;
  }

  const Value& message_;
  absl::Status status_;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_VALUE_H_
