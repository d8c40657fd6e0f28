#include "core/wire/value_codec.h"

#include <endian.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "capnp/message.h"
#include "capnp/serialize.h"
#include "core/kernel/channel_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/proxy.h"
#include "core/kernel/status.h"
#include "core/kernel/task_internal.h"
#include "core/wire/value.capnp.h"
#include "core/wire/value_codec_capnp.h"
#include "kj/exception.h"

namespace picos {
namespace {

// Recursion in the codec follows the nesting of the Value; this keeps a
// caller's generous max_depth from turning into a stack overflow.
constexpr int kMaxDepthCap = 1024;

// Most segments a message may have: what Cap'n Proto's own stream reader
// accepts. Writers grow segments geometrically and never come near it.
constexpr uint32_t kMaxSegments = 512;

int DepthLimit(const CodecOptions& o) { return std::clamp(o.max_depth, 0, kMaxDepthCap); }

HandleCodec& CodecOf(const CodecOptions& o) {
  return o.handle_codec ? *o.handle_codec : LocalHandleCodec();
}

// --- Process id -------------------------------------------------------------

std::string DrawProcessId() {
  std::string id(kProcessIdSize, '\0');
  // libuv's uv_random: getrandom(2), or /dev/urandom where that is missing.
  // Without a loop or callback it runs synchronously, here, once per process.
  int rc = uv_random(nullptr, nullptr, id.data(), id.size(), 0, nullptr);
  if (rc != 0) {
    // No entropy source at all (a strict sandbox): uniqueness, not secrecy,
    // is what a process id needs, and Abseil's generator is seeded anyway.
    PICOS_LOG(error, "uv_random failed ({}): process id from absl::BitGen", uv_strerror(rc));
    absl::BitGen gen;
    for (char& c : id) c = static_cast<char>(absl::Uniform<uint8_t>(gen));
  }
  return id;
}

// --- The local handle codec -------------------------------------------------

absl::Status RemoteHandle(const char* what, const std::string& name) {
  return absl::UnimplementedError(absl::StrCat(
      what, " '", name,
      "' belongs to another process: remote handles need a peer, and this codec "
      "(LocalHandleCodec) has none"));
}

class LocalCodec final : public HandleCodec {
 public:
  absl::StatusOr<TaskIdentity> ExportTask(const TaskRef& task) override {
    if (GetTaskProxy(task) != nullptr) return RemoteHandle("task", task.DebugString());
    TaskIdentity identity{ProcessId(), task.id(), task.name()};
    // An ended task that was never exported is named but not put in the
    // table: importing it gives kNotFound (nobody elsewhere can hold it).
    if (task.done()) return identity;
    bool added;
    {
      absl::MutexLock lock(&mu_);
      added = tasks_.try_emplace(identity.task_id, Exported{task, false}).second;
      if (added && tasks_.size() >= task_sweep_at_) {
        // Entries whose finish hook never ran (a task spawned from another
        // thread and dropped unstarted when its scheduler stopped) go here;
        // a task that ended and whose hook is still to run is put back by
        // the hook.
        for (auto i = tasks_.begin(); i != tasks_.end();) {
          if (!i->second.ended && i->second.task.done()) {
            tasks_.erase(i++);
          } else {
            ++i;
          }
        }
        task_sweep_at_ = std::max<size_t>(kFirstSweep, 2 * tasks_.size());
      }
    }
    if (added) {
      // Moves the entry to the ended tasks kept when the task ends.
      // Registered on the task's scheduler thread (the rule in
      // value_codec.h), which is the only one that ends tasks, so the task
      // cannot end between the done() check above and this line.
      task.core()->Extra().finish_hooks.push_back(
          [this](internal::TaskCore* c) { KeepEnded(TaskRef::Adopt((internal::Ref(c), c))); });
    }
    return identity;
  }

  absl::StatusOr<TaskRef> ImportTask(const TaskIdentity& identity) override {
    if (identity.process_id != ProcessId()) {
      return RemoteHandle("task", absl::StrCat(identity.name, "#", identity.task_id));
    }
    return ImportLocal(identity.task_id, identity.name);
  }

  absl::StatusOr<TaskRef> ImportLocal(uint64_t task_id, absl::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) {
      return absl::NotFoundError(absl::StrCat("task ", name, "#", task_id,
                                              " of this process has ended and is no longer kept (",
                                              kEndedTasksKept, " most recent kept), or was never sent"));
    }
    // Live, or ended and kept: the handle gives what a local one gives
    // (an ended task's Join its result).
    return it->second.task;
  }

  absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef& channel) override {
    if (channel.core()->AsProxy() != nullptr) return RemoteHandle("channel", channel.name());
    ChannelIdentity identity{ProcessId(), channel.name()};
    absl::MutexLock lock(&mu_);
    auto [it, added] = channels_.try_emplace(identity.name, channel);
    if (!added && it->second != channel) {
      if (!OnlyTableHolds(it->second)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "two live channels are named '", identity.name,
            "': a channel sent to another process needs a unique name"));
      }
      it->second = channel;
    }
    if (added && channels_.size() >= sweep_at_) {
      for (auto i = channels_.begin(); i != channels_.end();) {
        if (OnlyTableHolds(i->second)) {
          channels_.erase(i++);
        } else {
          ++i;
        }
      }
      sweep_at_ = std::max<size_t>(kFirstSweep, 2 * channels_.size());
    }
    return identity;
  }

  absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity& identity) override {
    if (identity.process_id != ProcessId()) return RemoteHandle("channel", identity.name);
    absl::MutexLock lock(&mu_);
    auto it = channels_.find(identity.name);
    if (it == channels_.end() || OnlyTableHolds(it->second)) {
      return absl::NotFoundError(absl::StrCat("channel '", identity.name,
                                              "' of this process is gone or was never sent"));
    }
    return it->second;
  }

 private:
  static constexpr size_t kFirstSweep = 64;

  // True when the table's reference is the only one: nobody else can reach
  // the channel (a new reference is made only from an existing one, and the
  // table's is taken only under mu_), so it may be dropped.
  static bool OnlyTableHolds(const ChannelRef& c) {
    return c.core()->refs.load(std::memory_order_acquire) == 1;
  }

  // Called by an exported task's finish hook: its entry stays, marked
  // ended, among the kEndedTasksKept most recent; the oldest beyond that is
  // forgotten.
  void KeepEnded(TaskRef task) {
    TaskRef forgotten;  // released after the lock: it may hold a large result
    absl::MutexLock lock(&mu_);
    const uint64_t id = task.id();
    tasks_.insert_or_assign(id, Exported{std::move(task), true});
    if (ended_order_.size() < kEndedTasksKept) {
      ended_order_.push_back(id);
      return;
    }
    uint64_t& oldest = ended_order_[ended_next_];
    if (auto it = tasks_.find(oldest); it != tasks_.end()) {
      forgotten = std::move(it->second.task);
      tasks_.erase(it);
    }
    oldest = id;
    ended_next_ = (ended_next_ + 1) % kEndedTasksKept;
  }

  struct Exported {
    TaskRef task;
    bool ended;  // its finish hook ran: it is in ended_order_
  };

  absl::Mutex mu_;
  // Exported tasks by id: the live ones, and the kEndedTasksKept that
  // ended last. The reference keeps the control block (56 bytes) and, once
  // the task has ended, its result alive, never the task's frame.
  absl::flat_hash_map<uint64_t, Exported> tasks_ ABSL_GUARDED_BY(mu_);
  size_t task_sweep_at_ ABSL_GUARDED_BY(mu_) = kFirstSweep;
  // Ids of the ended tasks kept, a ring: ended_order_[ended_next_] is the
  // oldest once it is full.
  std::vector<uint64_t> ended_order_ ABSL_GUARDED_BY(mu_);
  size_t ended_next_ ABSL_GUARDED_BY(mu_) = 0;
  // Exported channels by name, each holding a reference; swept as it grows.
  absl::flat_hash_map<std::string, ChannelRef> channels_ ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = kFirstSweep;
};

// --- Encoding ---------------------------------------------------------------

constexpr uint64_t kValueWords =
    wire::Value::_capnpPrivate::dataWordSize + wire::Value::_capnpPrivate::pointerCount;
constexpr uint64_t kEntryWords = wire::Value::MapEntry::_capnpPrivate::dataWordSize +
                                 wire::Value::MapEntry::_capnpPrivate::pointerCount;
constexpr uint64_t kTaskWords = wire::TaskIdentity::_capnpPrivate::dataWordSize +
                                wire::TaskIdentity::_capnpPrivate::pointerCount;
constexpr uint64_t kChannelWords = wire::ChannelIdentity::_capnpPrivate::dataWordSize +
                                   wire::ChannelIdentity::_capnpPrivate::pointerCount;

uint64_t TextWords(size_t n) { return (n + 1 + 7) / 8; }  // with the NUL
uint64_t DataWords(size_t n) { return (n + 7) / 8; }

absl::Status TooMany(const char* what, uint64_t got, uint64_t limit, const char* option) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " (", got, ") exceeds CodecOptions::", option, " (", limit, ")"));
}

// First pass over a Value to encode: checks the limits, exports handles (in
// the order Build will meet them) and counts the words of the message body,
// so that a too-large Value is refused before anything is allocated for it.
class Planner {
 public:
  explicit Planner(const CodecOptions& o) : o_(o), codec_(CodecOf(o)) {}

  absl::Status Plan(const Value& v, int depth) {
    if (depth > DepthLimit(o_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "value nested deeper than CodecOptions::max_depth (", DepthLimit(o_), ")"));
    }
    if (++elements_ > o_.max_elements) {
      return TooMany("number of values", elements_, o_.max_elements, "max_elements");
    }
    switch (v.type()) {
      case Value::Type::kString:
        PICOS_RETURN_IF_ERROR(CheckString(v.as_string().size()));
        words_ += TextWords(v.as_string().size());
        break;
      case Value::Type::kBytes:
        PICOS_RETURN_IF_ERROR(CheckString(v.as_string().size()));
        words_ += DataWords(v.as_string().size());
        break;
      case Value::Type::kList:
        words_ += 1 + kValueWords * v.as_list().size();  // tag word + elements
        for (const Value& item : v.as_list()) PICOS_RETURN_IF_ERROR(Plan(item, depth + 1));
        break;
      case Value::Type::kMap:
        words_ += 1 + kEntryWords * v.as_map().size();
        for (const auto& [key, item] : v.as_map()) {
          PICOS_RETURN_IF_ERROR(CheckString(key.size()));
          words_ += TextWords(key.size()) + kValueWords;
          PICOS_RETURN_IF_ERROR(Plan(item, depth + 1));
        }
        break;
      case Value::Type::kTask: {
        words_ += kTaskWords;
        TaskRef t = v.as_task();
        if (!t) break;
        PICOS_ASSIGN_OR_RETURN(TaskIdentity id, codec_.ExportTask(t));
        PICOS_RETURN_IF_ERROR(CheckIdentity(id.process_id, id.name, id.proof));
        words_ += DataWords(id.process_id.size()) + TextWords(id.name.size()) + DataWords(id.proof.size());
        tasks_.push_back(std::move(id));
        break;
      }
      case Value::Type::kChannel: {
        words_ += kChannelWords;
        ChannelRef c = v.as_channel();
        if (!c) break;
        PICOS_ASSIGN_OR_RETURN(ChannelIdentity id, codec_.ExportChannel(c));
        PICOS_RETURN_IF_ERROR(CheckIdentity(id.process_id, id.name, id.proof));
        words_ += DataWords(id.process_id.size()) + TextWords(id.name.size()) + DataWords(id.proof.size());
        channels_.push_back(std::move(id));
        break;
      }
      default:
        break;
    }
    // Checked as we go so that a huge Value is refused early.
    if (EncodedBytes() > o_.max_encoded_size) {
      return TooMany("encoded size in bytes", EncodedBytes(), o_.max_encoded_size,
                     "max_encoded_size");
    }
    return absl::OkStatus();
  }

  // Plans the list `items` describe (EncodeListInto), at depth 1, as Plan
  // would plan that Value list: the same words, counts and checks.
  absl::Status PlanItems(absl::Span<const ListItem> items) {
    PICOS_RETURN_IF_ERROR(Enter(1));
    words_ += 1 + kValueWords * items.size();
    for (const ListItem& item : items) {
      if (item.n_uints == 0) {
        PICOS_RETURN_IF_ERROR(Plan(*item.value, 2));
        continue;
      }
      if (item.n_uints > ListItem::kMaxUints) {
        return absl::InvalidArgumentError(absl::StrCat("a list item with ", item.n_uints, " integers (at most ",
                                                       ListItem::kMaxUints, ")"));
      }
      PICOS_RETURN_IF_ERROR(Enter(2));
      words_ += 1 + kValueWords * (item.n_uints + 1u);
      for (uint8_t k = 0; k < item.n_uints; ++k) PICOS_RETURN_IF_ERROR(Enter(3));
      PICOS_RETURN_IF_ERROR(Plan(*item.value, 3));
    }
    if (EncodedBytes() > o_.max_encoded_size) {
      return TooMany("encoded size in bytes", EncodedBytes(), o_.max_encoded_size, "max_encoded_size");
    }
    return absl::OkStatus();
  }

  // Words of the message body: the root pointer, the root struct, the rest.
  uint64_t body_words() const { return 1 + kValueWords + words_; }
  // Bytes of a single-segment flat message (segment table included).
  uint64_t EncodedBytes() const { return 8 * (1 + body_words()); }

  std::vector<TaskIdentity>& tasks() { return tasks_; }
  std::vector<ChannelIdentity>& channels() { return channels_; }

 private:
  // One Value of PlanItems's own (a list, or an integer in one): Plan's
  // depth and count checks, for a Value that is not there to Plan.
  absl::Status Enter(int depth) {
    if (depth > DepthLimit(o_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "value nested deeper than CodecOptions::max_depth (", DepthLimit(o_), ")"));
    }
    if (++elements_ > o_.max_elements) {
      return TooMany("number of values", elements_, o_.max_elements, "max_elements");
    }
    return absl::OkStatus();
  }
  absl::Status CheckString(size_t n) {
    if (n > o_.max_string_size) {
      return TooMany("string or bytes length", n, o_.max_string_size, "max_string_size");
    }
    return absl::OkStatus();
  }
  absl::Status CheckIdentity(const std::string& process_id, const std::string& name,
                             const std::string& proof) {
    if (process_id.size() != kProcessIdSize) {
      return absl::InvalidArgumentError(absl::StrCat("handle codec gave a process id of ",
                                                     process_id.size(), " bytes, not ",
                                                     kProcessIdSize));
    }
    if (proof.size() > kMaxProofSize) {
      return absl::InvalidArgumentError(absl::StrCat("handle codec gave a proof of ", proof.size(),
                                                     " bytes (at most ", kMaxProofSize, ")"));
    }
    return CheckString(name.size());
  }

  const CodecOptions& o_;
  HandleCodec& codec_;
  uint64_t elements_ = 0;
  uint64_t words_ = 0;
  std::vector<TaskIdentity> tasks_;
  std::vector<ChannelIdentity> channels_;
};

capnp::Text::Reader AsText(const std::string& s) { return capnp::Text::Reader(s.c_str(), s.size()); }
capnp::Data::Reader AsData(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// Second pass: writes what the planner checked. Cannot fail but by kj
// exceptions (out of memory), which the callers catch.
class Builder {
 public:
  explicit Builder(Planner& plan) : plan_(plan) {}

  void Build(const Value& v, wire::Value::Builder b) {
    switch (v.type()) {
      case Value::Type::kNull:
        b.setNull();
        return;
      case Value::Type::kBool:
        b.setBool(v.as_bool());
        return;
      case Value::Type::kInt:
        b.setInt(v.as_int());
        return;
      case Value::Type::kUint:
        b.setUint(v.as_uint());
        return;
      case Value::Type::kDouble:
        b.setDouble(v.as_double());
        return;
      case Value::Type::kString:
        b.setText(AsText(v.as_string()));
        return;
      case Value::Type::kBytes:
        b.setBytes(AsData(v.as_string()));
        return;
      case Value::Type::kList: {
        const Value::ListType& items = v.as_list();
        auto list = b.initList(static_cast<unsigned>(items.size()));
        for (unsigned i = 0; i < items.size(); ++i) Build(items[i], list[i]);
        return;
      }
      case Value::Type::kMap: {
        auto entries = b.initMap(static_cast<unsigned>(v.as_map().size()));
        unsigned i = 0;
        for (const auto& [key, item] : v.as_map()) {
          auto e = entries[i++];
          e.setKey(AsText(key));
          Build(item, e.initValue());
        }
        return;
      }
      case Value::Type::kTask: {
        auto t = b.initTask();
        if (!v.as_task()) return;  // a null handle: all fields empty
        const TaskIdentity& id = plan_.tasks()[next_task_++];
        t.setProcessId(AsData(id.process_id));
        t.setTaskId(id.task_id);
        t.setName(AsText(id.name));
        if (!id.proof.empty()) t.setProof(AsData(id.proof));
        return;
      }
      case Value::Type::kChannel: {
        auto c = b.initChannel();
        if (!v.as_channel()) return;
        const ChannelIdentity& id = plan_.channels()[next_channel_++];
        c.setProcessId(AsData(id.process_id));
        c.setName(AsText(id.name));
        if (!id.proof.empty()) c.setProof(AsData(id.proof));
        return;
      }
    }
  }

  // The list `items` describe (EncodeListInto), in Planner::PlanItems's order.
  void BuildItems(absl::Span<const ListItem> items, wire::Value::Builder b) {
    auto list = b.initList(static_cast<unsigned>(items.size()));
    for (unsigned i = 0; i < items.size(); ++i) {
      const ListItem& item = items[i];
      if (item.n_uints == 0) {
        Build(*item.value, list[i]);
        continue;
      }
      auto fields = list[i].initList(item.n_uints + 1u);
      for (unsigned k = 0; k < item.n_uints; ++k) fields[k].setUint(item.uints[k]);
      Build(*item.value, fields[item.n_uints]);
    }
  }

 private:
  Planner& plan_;
  size_t next_task_ = 0;
  size_t next_channel_ = 0;
};

// A message builder whose first segment is a caller's zeroed buffer, and
// which (unlike capnp::MallocMessageBuilder) leaves that buffer as built
// when it goes: EncodeValue returns the buffer. Further segments, if the
// plan fell short, come zeroed from the heap and go with the builder.
class InPlaceBuilder final : public capnp::MessageBuilder {
 public:
  explicit InPlaceBuilder(kj::ArrayPtr<capnp::word> first) : first_(first) {}

  kj::ArrayPtr<capnp::word> allocateSegment(unsigned minimum_size) override {
    if (!first_given_ && first_.size() >= minimum_size && first_.size() > 0) {
      first_given_ = true;
      return first_;
    }
    const size_t words = std::max<size_t>(minimum_size, 1024);
    extra_.push_back(kj::heapArray<capnp::word>(words));
    std::memset(extra_.back().begin(), 0, words * sizeof(capnp::word));
    return extra_.back();
  }

 private:
  kj::ArrayPtr<capnp::word> first_;
  bool first_given_ = false;
  std::vector<kj::Array<capnp::word>> extra_;
};

// Runs `fn`, turning anything thrown into a status: no exception leaves the
// codec. kj reports malformed messages by throwing kj::Exception.
template <typename F>
auto Guard(const char* what, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const kj::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": malformed Cap'n Proto message: ", e.getDescription().cStr()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, ": unknown exception"));
  }
}

// --- Decoding ---------------------------------------------------------------

class Reader {
 public:
  // `o` is read at each handle (ListDecoder changes its handle codec
  // between elements).
  explicit Reader(const CodecOptions& o) : o_(o) {}

  // A list read element by element (ListDecoder): counts the list itself,
  // and checks its claimed size as Read does before reserving for it.
  absl::Status CountList(size_t size) {
    PICOS_RETURN_IF_ERROR(Count(1));
    return CheckCount(size);
  }
  // Integers read in place (ListDecoder), counted as Read counts them.
  absl::Status CountUints(size_t n) { return Count(n); }

  absl::Status Read(wire::Value::Reader r, int depth, Value* out) {
    if (depth > DepthLimit(o_)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "message nested deeper than CodecOptions::max_depth (", DepthLimit(o_), ")"));
    }
    PICOS_RETURN_IF_ERROR(Count(1));
    switch (r.which()) {
      case wire::Value::NULL_:
        *out = Value();
        return absl::OkStatus();
      case wire::Value::BOOL:
        *out = Value(r.getBool());
        return absl::OkStatus();
      case wire::Value::INT:
        *out = Value(r.getInt());
        return absl::OkStatus();
      case wire::Value::UINT:
        *out = Value(r.getUint());
        return absl::OkStatus();
      case wire::Value::DOUBLE:
        *out = Value(r.getDouble());
        return absl::OkStatus();
      case wire::Value::TEXT: {
        PICOS_ASSIGN_OR_RETURN(std::string s, Text(r.getText()));
        *out = Value(std::move(s));
        return absl::OkStatus();
      }
      case wire::Value::BYTES: {
        PICOS_ASSIGN_OR_RETURN(std::string s, Bytes(r.getBytes()));
        *out = Value::Bytes(std::move(s));
        return absl::OkStatus();
      }
      case wire::Value::LIST: {
        auto list = r.getList();
        // Checked before anything is reserved: a list of zero-sized elements
        // may claim half a billion of them in a few bytes.
        PICOS_RETURN_IF_ERROR(CheckCount(list.size()));
        Value::ListType items;
        items.reserve(list.size());
        for (auto item : list) {
          items.emplace_back();
          PICOS_RETURN_IF_ERROR(Read(item, depth + 1, &items.back()));
        }
        *out = Value(std::move(items));
        return absl::OkStatus();
      }
      case wire::Value::MAP: {
        auto entries = r.getMap();
        PICOS_RETURN_IF_ERROR(CheckCount(entries.size()));
        Value::MapType map;
        for (auto e : entries) {
          PICOS_ASSIGN_OR_RETURN(std::string key, Text(e.getKey()));
          Value item;
          PICOS_RETURN_IF_ERROR(Read(e.getValue(), depth + 1, &item));
          // Encoders write keys in order, so the hint makes this linear.
          size_t before = map.size();
          auto it = map.emplace_hint(map.end(), std::move(key), std::move(item));
          if (map.size() == before) {
            return absl::InvalidArgumentError(
                absl::StrCat("map key \"", absl::CHexEscape(it->first.substr(0, 64)),
                             "\" appears twice"));
          }
        }
        *out = Value(std::move(map));
        return absl::OkStatus();
      }
      case wire::Value::TASK: {
        auto t = r.getTask();
        PICOS_ASSIGN_OR_RETURN(std::string process, Bytes(t.getProcessId()));
        TaskIdentity id{std::move(process), t.getTaskId(), {}};
        PICOS_ASSIGN_OR_RETURN(id.name, Text(t.getName()));
        if (id.process_id.empty() && id.task_id == 0) {
          *out = Value(TaskRef());
          return absl::OkStatus();
        }
        PICOS_RETURN_IF_ERROR(CheckProcessId(id.process_id));
        PICOS_ASSIGN_OR_RETURN(id.proof, Proof(t.getProof()));
        PICOS_ASSIGN_OR_RETURN(TaskRef task, CodecOf(o_).ImportTask(id));
        *out = Value(std::move(task));
        return absl::OkStatus();
      }
      case wire::Value::CHANNEL: {
        auto c = r.getChannel();
        PICOS_ASSIGN_OR_RETURN(std::string process, Bytes(c.getProcessId()));
        ChannelIdentity id{std::move(process), {}};
        PICOS_ASSIGN_OR_RETURN(id.name, Text(c.getName()));
        if (id.process_id.empty()) {
          *out = Value(ChannelRef());
          return absl::OkStatus();
        }
        PICOS_RETURN_IF_ERROR(CheckProcessId(id.process_id));
        PICOS_ASSIGN_OR_RETURN(id.proof, Proof(c.getProof()));
        PICOS_ASSIGN_OR_RETURN(ChannelRef channel, CodecOf(o_).ImportChannel(id));
        *out = Value(std::move(channel));
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown kind of value (union tag ", static_cast<int>(r.which()), ")"));
  }

 private:
  absl::Status Count(uint64_t n) {
    PICOS_RETURN_IF_ERROR(CheckCount(n));
    elements_ += n;
    return absl::OkStatus();
  }
  // Whether `n` more values fit; does not count them (each counts itself).
  absl::Status CheckCount(uint64_t n) const {
    if (n > o_.max_elements || elements_ + n > o_.max_elements) {
      return TooMany("number of values", elements_ + n, o_.max_elements, "max_elements");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Text(capnp::Text::Reader t) const {
    if (t.size() > o_.max_string_size) {
      return TooMany("string length", t.size(), o_.max_string_size, "max_string_size");
    }
    return std::string(t.begin(), t.size());
  }
  absl::StatusOr<std::string> Bytes(capnp::Data::Reader d) const {
    if (d.size() > o_.max_string_size) {
      return TooMany("bytes length", d.size(), o_.max_string_size, "max_string_size");
    }
    return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
  }
  static absl::StatusOr<std::string> Proof(capnp::Data::Reader d) {
    if (d.size() > kMaxProofSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("handle with a proof of ", d.size(), " bytes (at most ", kMaxProofSize, ")"));
    }
    return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
  }
  static absl::Status CheckProcessId(const std::string& id) {
    if (id.size() != kProcessIdSize) {
      return absl::InvalidArgumentError(absl::StrCat("handle with a process id of ", id.size(),
                                                     " bytes, not ", kProcessIdSize));
    }
    return absl::OkStatus();
  }

  const CodecOptions& o_;
  uint64_t elements_ = 0;
};

// The words of `bytes` after the checks every decode makes first (size,
// alignment, segment table); `copy` holds them when `bytes` were not
// word-aligned.
absl::StatusOr<kj::ArrayPtr<const capnp::word>> CheckedWords(std::string_view bytes, const CodecOptions& options,
                                                           kj::Array<capnp::word>* copy) {
  if (bytes.empty()) {
    return absl::InvalidArgumentError("empty input: not a Cap'n Proto message");
  }
  if (bytes.size() > options.max_encoded_size) {
    return TooMany("message size in bytes", bytes.size(), options.max_encoded_size, "max_encoded_size");
  }
  if (bytes.size() % sizeof(capnp::word) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncated message: ", bytes.size(), " bytes is not a whole number of 8-byte words"));
  }
  // The segment table's first word counts the segments minus one. Cap'n
  // Proto 0.9 adds the one in 32 bits, so a table claiming 2^32 segments
  // wraps to zero and the rest would be read as a one-segment message.
  uint32_t segments_minus_one;
  std::memcpy(&segments_minus_one, bytes.data(), sizeof(segments_minus_one));
  segments_minus_one = le32toh(segments_minus_one);
  if (segments_minus_one >= kMaxSegments) {
    return absl::InvalidArgumentError(absl::StrCat("malformed message: its segment table claims ",
                                                   uint64_t{segments_minus_one} + 1, " segments (at most ",
                                                   kMaxSegments, ")"));
  }
  // Cap'n Proto reads words in place: bytes that are word-aligned (a
  // std::string's heap buffer is, and FrameReader's payloads) are read where
  // they are; others are copied into an aligned buffer, bounded by
  // max_encoded_size above.
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    return kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()), bytes.size() / sizeof(capnp::word));
  }
  *copy = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(copy->begin(), bytes.data(), bytes.size());
  return kj::ArrayPtr<const capnp::word>(*copy);
}

capnp::ReaderOptions ReaderOptionsFor(kj::ArrayPtr<const capnp::word> words, const CodecOptions& options) {
  capnp::ReaderOptions reader_options;
  // Every word of a well-formed message is read about once. Twice the
  // message leaves room and still bounds the work (and what is copied out)
  // when a hostile message points many times at the same bytes.
  reader_options.traversalLimitInWords = 2 * words.size() + 64;
  reader_options.nestingLimit = CapnpNestingLimitFor(options.max_depth);
  return reader_options;
}

absl::Status CheckNothingFollows(const capnp::FlatArrayMessageReader& message,
                                 kj::ArrayPtr<const capnp::word> words) {
  if (message.getEnd() != words.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed message: ", (words.end() - message.getEnd()) * sizeof(capnp::word), " bytes follow its last segment"));
  }
  return absl::OkStatus();
}

}  // namespace

struct ListDecoder::Impl {
  Impl(const CodecOptions& o, kj::Array<capnp::word> c, kj::ArrayPtr<const capnp::word> words)
      : options(o), copy(std::move(c)), message(words, ReaderOptionsFor(words, o)), reader(options) {}
  CodecOptions options;
  kj::Array<capnp::word> copy;
  capnp::FlatArrayMessageReader message;
  Reader reader;
  capnp::List<wire::Value>::Reader list;
};

ListDecoder::ListDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ListDecoder::ListDecoder(ListDecoder&&) noexcept = default;
ListDecoder& ListDecoder::operator=(ListDecoder&&) noexcept = default;
ListDecoder::~ListDecoder() = default;

absl::StatusOr<ListDecoder> ListDecoder::Open(std::string_view bytes, const CodecOptions& options) {
  kj::Array<capnp::word> copy;
  PICOS_ASSIGN_OR_RETURN(kj::ArrayPtr<const capnp::word> words, CheckedWords(bytes, options, &copy));
  return Guard("decoding a Value", [&]() -> absl::StatusOr<ListDecoder> {
    auto impl = std::make_unique<Impl>(options, std::move(copy), words);
    PICOS_RETURN_IF_ERROR(CheckNothingFollows(impl->message, words));
    wire::Value::Reader root = impl->message.getRoot<wire::Value>();
    if (root.which() != wire::Value::LIST) return absl::InvalidArgumentError("the message is not a list");
    impl->list = root.getList();
    // The list itself counts as DecodeValue counts it; each element counts
    // itself once decoded.
    PICOS_RETURN_IF_ERROR(impl->reader.CountList(impl->list.size()));
    return ListDecoder(std::move(impl));
  });
}

size_t ListDecoder::size() const { return impl_->list.size(); }

void ListDecoder::set_handle_codec(HandleCodec* codec) { impl_->options.handle_codec = codec; }

absl::StatusOr<Value> ListDecoder::Decode(size_t i) {
  if (i >= size()) return absl::OutOfRangeError(absl::StrCat("element ", i, " of ", size()));
  return Guard("decoding a Value", [&]() -> absl::StatusOr<Value> {
    Value out;
    PICOS_RETURN_IF_ERROR(impl_->reader.Read(impl_->list[i], 2, &out));
    return out;
  });
}

absl::StatusOr<bool> ListDecoder::DecodeUintsThenValue(size_t i, absl::Span<uint64_t> uints, Value* last) {
  if (i >= size()) return absl::OutOfRangeError(absl::StrCat("element ", i, " of ", size()));
  return Guard("decoding a Value", [&]() -> absl::StatusOr<bool> {
    wire::Value::Reader e = impl_->list[i];
    if (e.which() != wire::Value::LIST) return false;
    // Read once: each getList() counts the list's words against the
    // message's traversal limit.
    capnp::List<wire::Value>::Reader items = e.getList();
    if (items.size() != uints.size() + 1 || uints.size() > ListItem::kMaxUints) return false;
    // Each item's reader made once (each costs a bounds-checked lookup).
    uint64_t read[ListItem::kMaxUints];
    for (size_t j = 0; j < uints.size(); ++j) {
      wire::Value::Reader item = items[j];
      if (item.which() != wire::Value::UINT) return false;
      read[j] = item.getUint();
    }
    // Counted as DecodeValue counts the element: its list, each item.
    PICOS_RETURN_IF_ERROR(impl_->reader.CountList(items.size()));
    PICOS_RETURN_IF_ERROR(impl_->reader.CountUints(uints.size()));
    std::copy_n(read, uints.size(), uints.begin());
    PICOS_RETURN_IF_ERROR(impl_->reader.Read(items[uints.size()], 3, last));
    return true;
  });
}

const std::string& ProcessId() {
  static const std::string* const id = new std::string(DrawProcessId());
  return *id;
}

namespace {
LocalCodec& TheLocalCodec() {
  static LocalCodec* const codec = new LocalCodec;
  return *codec;
}
}  // namespace

HandleCodec& LocalHandleCodec() { return TheLocalCodec(); }

absl::StatusOr<TaskRef> ImportLocalTask(uint64_t task_id) { return TheLocalCodec().ImportLocal(task_id, ""); }

int CapnpNestingLimitFor(int max_depth) {
  // Three pointer hops per map level, and a few for the root and handles.
  return 3 * std::clamp(max_depth, 0, kMaxDepthCap) + 8;
}

absl::Status BuildValue(const Value& value, wire::Value::Builder builder,
                        const CodecOptions& options) {
  Planner plan(options);
  PICOS_RETURN_IF_ERROR(plan.Plan(value, 1));
  return Guard("encoding a Value", [&]() -> absl::Status {
    Builder(plan).Build(value, builder);
    return absl::OkStatus();
  });
}

absl::StatusOr<Value> ReadValue(wire::Value::Reader reader, const CodecOptions& options) {
  return Guard("decoding a Value", [&]() -> absl::StatusOr<Value> {
    Value out;
    PICOS_RETURN_IF_ERROR(Reader(options).Read(reader, 1, &out));
    return out;
  });
}

namespace {

// Builds, with `build(builder, root)`, the message `plan` planned, into *out.
template <typename BuildFn>
absl::Status EncodePlanned(Planner& plan, const CodecOptions& options, std::string* out, BuildFn build) {
  return Guard("encoding a Value", [&]() -> absl::Status {
    // The message is built in place in the string it is returned in: the
    // segment table's word, then one zeroed segment of the planned size.
    // When the plan held (it counts every word the builder takes), that is
    // the encoding, with no copy and no allocation but the string's: a batch
    // of 512 frames used to take three 80 KB buffers and two copies.
    const uint64_t body = std::min<uint64_t>(plan.body_words(), 1u << 28);
    out->assign(sizeof(capnp::word) * (1 + body), '\0');
    auto* first = reinterpret_cast<capnp::word*>(out->data() + sizeof(capnp::word));
    // A std::string's heap buffer is aligned for any type; if not, the
    // builder takes its segments from the heap and the encoding is copied.
    const bool aligned = reinterpret_cast<uintptr_t>(first) % alignof(capnp::word) == 0;
    InPlaceBuilder message(aligned ? kj::arrayPtr(first, body) : kj::ArrayPtr<capnp::word>());
    Builder builder(plan);
    build(builder, message.initRoot<wire::Value>());
    kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments = message.getSegmentsForOutput();
    if (segments.size() == 1 && segments[0].begin() == first) {
      const uint32_t table[2] = {htole32(0), htole32(static_cast<uint32_t>(segments[0].size()))};
      std::memcpy(out->data(), table, sizeof table);
      out->resize(sizeof(capnp::word) * (1 + segments[0].size()));
      if (out->size() > options.max_encoded_size) {
        return TooMany("encoded size in bytes", out->size(), options.max_encoded_size, "max_encoded_size");
      }
      return absl::OkStatus();
    }
    // The plan fell short (the builder took more segments): copy them out.
    kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
    size_t size = flat.asBytes().size();
    if (size > options.max_encoded_size) {
      return TooMany("encoded size in bytes", size, options.max_encoded_size, "max_encoded_size");
    }
    out->assign(reinterpret_cast<const char*>(flat.begin()), size);
    return absl::OkStatus();
  });
}

}  // namespace

absl::Status EncodeValueInto(const Value& value, const CodecOptions& options, std::string* out) {
  Planner plan(options);
  PICOS_RETURN_IF_ERROR(plan.Plan(value, 1));
  return EncodePlanned(plan, options, out,
                       [&](Builder& b, wire::Value::Builder root) { b.Build(value, root); });
}

absl::Status EncodeListInto(absl::Span<const ListItem> items, const CodecOptions& options, std::string* out) {
  for (const ListItem& item : items) {
    if (item.value == nullptr) return absl::InvalidArgumentError("a list item without a value");
  }
  Planner plan(options);
  PICOS_RETURN_IF_ERROR(plan.PlanItems(items));
  return EncodePlanned(plan, options, out,
                       [&](Builder& b, wire::Value::Builder root) { b.BuildItems(items, root); });
}

size_t EncodedSizeAtLeast(const Value& value, size_t stop) {
  // Words as Planner counts them (the segment table's word, the root
  // pointer and struct, then each value), handles without their
  // identities. A stack of its own: a Value nested deeper than any limit
  // must not overflow this thread's.
  const uint64_t stop_words = stop / 8 + 1;
  uint64_t words = 2 + kValueWords;
  absl::InlinedVector<const Value*, 16> todo = {&value};
  while (!todo.empty() && words <= stop_words) {
    const Value* v = todo.back();
    todo.pop_back();
    switch (v->type()) {
      case Value::Type::kString:
        words += TextWords(v->as_string().size());
        break;
      case Value::Type::kBytes:
        words += DataWords(v->as_string().size());
        break;
      case Value::Type::kList:
        words += 1 + kValueWords * v->as_list().size();
        for (const Value& item : v->as_list()) todo.push_back(&item);
        break;
      case Value::Type::kMap:
        words += 1 + kEntryWords * v->as_map().size();
        for (const auto& [key, item] : v->as_map()) {
          words += TextWords(key.size()) + kValueWords;
          todo.push_back(&item);
        }
        break;
      case Value::Type::kTask:
        words += kTaskWords;
        break;
      case Value::Type::kChannel:
        words += kChannelWords;
        break;
      default:
        break;
    }
  }
  return static_cast<size_t>(std::min<uint64_t>(words, SIZE_MAX / 8) * 8);
}

absl::StatusOr<std::string> EncodeValue(const Value& value, const CodecOptions& options) {
  std::string out;
  PICOS_RETURN_IF_ERROR(EncodeValueInto(value, options, &out));
  return out;
}

absl::StatusOr<Value> DecodeValue(std::string_view bytes, const CodecOptions& options) {
  kj::Array<capnp::word> copy;
  PICOS_ASSIGN_OR_RETURN(kj::ArrayPtr<const capnp::word> words, CheckedWords(bytes, options, &copy));
  return Guard("decoding a Value", [&]() -> absl::StatusOr<Value> {
    capnp::FlatArrayMessageReader message(words, ReaderOptionsFor(words, options));
    PICOS_RETURN_IF_ERROR(CheckNothingFollows(message, words));
    Value out;
    PICOS_RETURN_IF_ERROR(Reader(options).Read(message.getRoot<wire::Value>(), 1, &out));
    return out;
  });
}

}  // namespace picos
