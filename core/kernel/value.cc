#include "core/kernel/value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/status.h"

namespace picos {

Value::Value(TaskRef t) noexcept : type_(Type::kTask) {
  u_.t = t.core();
  if (u_.t) internal::Ref(u_.t);
}

Value::Value(ChannelRef c) noexcept : type_(Type::kChannel) {
  u_.c = c.core();
  if (u_.c) internal::Ref(u_.c);
}

Value Value::Bytes(std::string data) {
  Value v(std::move(data));
  v.type_ = Type::kBytes;
  return v;
}

namespace {

// Copies, destructions and comparisons of nested lists and maps recurse, one
// level of the C++ stack per level of the Value, until this depth; deeper
// levels go through an explicit work list instead, so that a Value nested a
// million deep (which a program can build) cannot overflow the stack.
// Shallow values, every message in practice, never pay for the list.
constexpr int kMaxRecursion = 128;

thread_local int t_destroy_depth = 0;
// The containers handed over by destructions deeper than kMaxRecursion, owned
// by the outermost destruction running on this thread; null when none runs.
thread_local std::vector<Value>* t_deferred = nullptr;
thread_local int t_copy_depth = 0;
thread_local int t_compare_depth = 0;

// Increments a depth counter for as long as it lives (also when a copy
// throws bad_alloc).
class DepthScope {
 public:
  explicit DepthScope(int& depth) : depth_(depth) { ++depth_; }
  ~DepthScope() { --depth_; }
  DepthScope(const DepthScope&) = delete;
  DepthScope& operator=(const DepthScope&) = delete;

 private:
  int& depth_;
};

}  // namespace

void Value::Reset() noexcept {
  switch (type_) {
    case Type::kString:
    case Type::kBytes:
      delete u_.s;
      break;
    case Type::kList:
    case Type::kMap:
      DestroyContainer();
      return;
    case Type::kTask:
      if (u_.t) internal::Unref(u_.t);
      break;
    case Type::kChannel:
      if (u_.c) internal::Unref(u_.c);
      break;
    default:
      break;
  }
  type_ = Type::kNull;
  u_.i = 0;
}

void Value::DeleteContainer() noexcept {
  if (type_ == Type::kList) {
    delete u_.l;
  } else {
    delete u_.m;
  }
  type_ = Type::kNull;
  u_.i = 0;
}

void Value::DestroyContainer() noexcept {
  if (t_deferred == nullptr) {
    // The outermost destruction on this thread: it owns the work list that
    // deeper ones hand their containers to, and destroys what they handed
    // over once the stack has unwound. Work that those destructions hand over
    // in turn lands on the same list, so the stack never grows past
    // kMaxRecursion levels.
    std::vector<Value> deferred;
    t_deferred = &deferred;
    t_destroy_depth = 1;
    DeleteContainer();
    while (!deferred.empty()) {
      Value next = std::move(deferred.back());
      deferred.pop_back();
      next.DeleteContainer();  // at depth 1 again
    }
    t_destroy_depth = 0;
    t_deferred = nullptr;
    return;
  }
  if (t_destroy_depth >= kMaxRecursion) {
    // Too deep to recurse: the outermost destruction takes it (the move
    // leaves this Value null).
    t_deferred->push_back(std::move(*this));
    return;
  }
  DepthScope depth(t_destroy_depth);
  DeleteContainer();
}

void Value::CopyFrom(const Value& other) {
  Reset();
  switch (other.type_) {
    case Type::kString:
    case Type::kBytes:
      u_.s = new std::string(*other.u_.s);
      break;
    case Type::kList:
    case Type::kMap:
      if (t_copy_depth >= kMaxRecursion) {
        CopyDeep(other);
        return;
      } else {
        DepthScope depth(t_copy_depth);
        if (other.type_ == Type::kList) {
          u_.l = new ListType(*other.u_.l);
        } else {
          u_.m = new MapType(*other.u_.m);
        }
      }
      break;
    case Type::kTask:
      u_.t = other.u_.t;
      if (u_.t) internal::Ref(u_.t);
      break;
    case Type::kChannel:
      u_.c = other.u_.c;
      if (u_.c) internal::Ref(u_.c);
      break;
    default:
      u_ = other.u_;
      break;
  }
  type_ = other.type_;
}

void Value::CopyDeep(const Value& other) {
  // Builds into `out` so that an exception (out of memory) leaves *this null
  // and frees what was built. Containers are made with null items first, then
  // each item is filled from the work list: no recursion at all.
  Value out;
  std::vector<std::pair<Value*, const Value*>> work;
  work.emplace_back(&out, &other);
  while (!work.empty()) {
    auto [to, from] = work.back();
    work.pop_back();
    if (from->type_ == Type::kList) {
      to->u_.l = new ListType(from->u_.l->size());
      to->type_ = Type::kList;
      for (size_t i = 0; i < from->u_.l->size(); ++i) {
        work.emplace_back(&(*to->u_.l)[i], &(*from->u_.l)[i]);
      }
    } else if (from->type_ == Type::kMap) {
      to->u_.m = new MapType;
      to->type_ = Type::kMap;
      for (const auto& [key, item] : *from->u_.m) {
        auto it = to->u_.m->emplace_hint(to->u_.m->end(), key, Value());
        work.emplace_back(&it->second, &item);
      }
    } else {
      to->CopyFrom(*from);  // not a container: no recursion
    }
  }
  swap(out);
}

bool Value::as_bool() const {
  PICOS_ASSERT(type_ == Type::kBool);
  return u_.b;
}
int64_t Value::as_int() const {
  PICOS_ASSERT(type_ == Type::kInt);
  return u_.i;
}
uint64_t Value::as_uint() const {
  PICOS_ASSERT(type_ == Type::kUint);
  return u_.u;
}
double Value::as_double() const {
  PICOS_ASSERT(type_ == Type::kDouble);
  return u_.d;
}
const std::string& Value::as_string() const {
  PICOS_ASSERT(type_ == Type::kString || type_ == Type::kBytes);
  return *u_.s;
}
const Value::ListType& Value::as_list() const {
  PICOS_ASSERT(type_ == Type::kList);
  return *u_.l;
}
Value::ListType& Value::as_list() {
  PICOS_ASSERT(type_ == Type::kList);
  return *u_.l;
}
const Value::MapType& Value::as_map() const {
  PICOS_ASSERT(type_ == Type::kMap);
  return *u_.m;
}
Value::MapType& Value::as_map() {
  PICOS_ASSERT(type_ == Type::kMap);
  return *u_.m;
}
TaskRef Value::as_task() const {
  PICOS_ASSERT(type_ == Type::kTask);
  if (u_.t) internal::Ref(u_.t);
  return TaskRef::Adopt(u_.t);
}
ChannelRef Value::as_channel() const {
  PICOS_ASSERT(type_ == Type::kChannel);
  if (u_.c) internal::Ref(u_.c);
  return ChannelRef::Adopt(u_.c);
}

const Value& Value::operator[](size_t index) const {
  PICOS_ASSERT(type_ == Type::kList && index < u_.l->size());
  return (*u_.l)[index];
}

const Value* Value::Find(std::string_view key) const {
  if (type_ != Type::kMap) return nullptr;
  auto it = u_.m->find(key);
  return it == u_.m->end() ? nullptr : &it->second;
}

const Value& Value::operator[](std::string_view key) const {
  static const Value* const kNull = new Value();
  const Value* v = Find(key);
  return v ? *v : *kNull;
}

bool Value::ShallowEqual(const Value& a, const Value& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Value::Type::kNull:
      return true;
    case Value::Type::kBool:
      return a.u_.b == b.u_.b;
    case Value::Type::kInt:
      return a.u_.i == b.u_.i;
    case Value::Type::kUint:
      return a.u_.u == b.u_.u;
    case Value::Type::kDouble:
      return a.u_.d == b.u_.d || (std::isnan(a.u_.d) && std::isnan(b.u_.d));
    case Value::Type::kString:
    case Value::Type::kBytes:
      return *a.u_.s == *b.u_.s;
    case Value::Type::kList:
      return a.u_.l->size() == b.u_.l->size();
    case Value::Type::kMap:
      return a.u_.m->size() == b.u_.m->size();
    case Value::Type::kTask:
      return a.u_.t == b.u_.t;
    case Value::Type::kChannel:
      return a.u_.c == b.u_.c;
  }
  return false;
}

bool Value::EqualDeep(const Value& a, const Value& b) {
  std::vector<std::pair<const Value*, const Value*>> work;
  work.emplace_back(&a, &b);
  while (!work.empty()) {
    auto [x, y] = work.back();
    work.pop_back();
    if (!ShallowEqual(*x, *y)) return false;
    if (x->type_ == Type::kList) {
      for (size_t i = 0; i < x->u_.l->size(); ++i) {
        work.emplace_back(&(*x->u_.l)[i], &(*y->u_.l)[i]);
      }
    } else if (x->type_ == Type::kMap) {
      for (auto i = x->u_.m->begin(), j = y->u_.m->begin(); i != x->u_.m->end(); ++i, ++j) {
        if (i->first != j->first) return false;
        work.emplace_back(&i->second, &j->second);
      }
    }
  }
  return true;
}

bool operator==(const Value& a, const Value& b) {
  if (!Value::ShallowEqual(a, b)) return false;
  if (a.type_ != Value::Type::kList && a.type_ != Value::Type::kMap) return true;
  if (t_compare_depth >= kMaxRecursion) return Value::EqualDeep(a, b);
  DepthScope depth(t_compare_depth);
  if (a.type_ == Value::Type::kList) return *a.u_.l == *b.u_.l;
  return *a.u_.m == *b.u_.m;
}

const char* ValueTypeName(Value::Type type) {
  switch (type) {
    case Value::Type::kNull:
      return "null";
    case Value::Type::kBool:
      return "bool";
    case Value::Type::kInt:
      return "int";
    case Value::Type::kUint:
      return "uint";
    case Value::Type::kDouble:
      return "double";
    case Value::Type::kString:
      return "string";
    case Value::Type::kBytes:
      return "bytes";
    case Value::Type::kList:
      return "list";
    case Value::Type::kMap:
      return "map";
    case Value::Type::kTask:
      return "task";
    case Value::Type::kChannel:
      return "channel";
  }
  return "unknown";
}

namespace {

// Bounds what one DebugString prints: log lines stay readable whatever
// arrived from the network.
constexpr size_t kMaxPrintedChars = 200;
constexpr size_t kMaxPrintedItems = 32;
constexpr int kMaxPrintedDepth = 8;

void Print(const Value& v, std::string* out, int depth) {
  if (depth > kMaxPrintedDepth) {
    out->append("...");
    return;
  }
  switch (v.type()) {
    case Value::Type::kNull:
      out->append("null");
      return;
    case Value::Type::kBool:
      out->append(v.as_bool() ? "true" : "false");
      return;
    case Value::Type::kInt:
      absl::StrAppend(out, v.as_int());
      return;
    case Value::Type::kUint:
      absl::StrAppend(out, v.as_uint(), "u");
      return;
    case Value::Type::kDouble: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", v.as_double());
      out->append(buf);
      return;
    }
    case Value::Type::kString: {
      const std::string& s = v.as_string();
      absl::StrAppend(out, "\"", absl::CHexEscape(s.substr(0, kMaxPrintedChars)),
                      s.size() > kMaxPrintedChars ? "\"..." : "\"");
      return;
    }
    case Value::Type::kBytes: {
      const std::string& s = v.as_string();
      absl::StrAppend(out, "b'", absl::BytesToHexString(s.substr(0, kMaxPrintedChars / 2)),
                      s.size() > kMaxPrintedChars / 2 ? "'..." : "'");
      return;
    }
    case Value::Type::kList: {
      out->append("[");
      size_t i = 0;
      for (const Value& item : v.as_list()) {
        if (i) out->append(", ");
        if (i++ == kMaxPrintedItems) {
          out->append("...");
          break;
        }
        Print(item, out, depth + 1);
      }
      out->append("]");
      return;
    }
    case Value::Type::kMap: {
      out->append("{");
      size_t i = 0;
      for (const auto& [k, item] : v.as_map()) {
        if (i) out->append(", ");
        if (i++ == kMaxPrintedItems) {
          out->append("...");
          break;
        }
        absl::StrAppend(out, "\"", absl::CHexEscape(k.substr(0, kMaxPrintedChars)), "\": ");
        Print(item, out, depth + 1);
      }
      out->append("}");
      return;
    }
    case Value::Type::kTask:
      out->append(v.as_task().DebugString());
      return;
    case Value::Type::kChannel:
      out->append(v.as_channel().DebugString());
      return;
  }
}

}  // namespace

std::string Value::DebugString() const {
  std::string out;
  Print(*this, &out, 0);
  return out;
}

namespace internal {
absl::Status WrongType(const Value& v, const char* wanted) {
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", wanted, ", got ", ValueTypeName(v.type())));
}

namespace {
// Keys come from the code that reads, but may be long: bounded and escaped.
std::string QuotedKey(std::string_view key) {
  absl::string_view shown(key.data(), std::min<size_t>(key.size(), 64));
  return absl::StrCat("\"", absl::CHexEscape(shown), key.size() > 64 ? "...\"" : "\"");
}
}  // namespace

absl::Status FieldError(std::string_view key, const absl::Status& why) {
  return absl::Status(why.code(), absl::StrCat("field ", QuotedKey(key), ": ", why.message()));
}

absl::Status MissingField(std::string_view key) {
  return absl::InvalidArgumentError(absl::StrCat("missing field ", QuotedKey(key)));
}

absl::Status ItemError(size_t index, const absl::Status& why) {
  return absl::Status(why.code(), absl::StrCat("item ", index, ": ", why.message()));
}

absl::Status NoSuchItem(const Value& v, size_t index) {
  if (!v.is_list()) return WrongType(v, "list");
  return absl::InvalidArgumentError(
      absl::StrCat("no item ", index, " in a list of ", v.as_list().size()));
}
}  // namespace internal

}  // namespace picos
