#include "core/kernel/handles.h"

#include "absl/strings/str_cat.h"
#include "core/kernel/channel_internal.h"

namespace picos {
namespace internal {

void Ref(ChannelCore* core) noexcept { core->refs.fetch_add(1, std::memory_order_relaxed); }

void Unref(ChannelCore* core) noexcept {
  if (core->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete core;
}

std::string ChannelCore::DebugString() const { return absl::StrCat("channel:", name); }

}  // namespace internal

const std::string& ChannelRef::name() const {
  static const std::string* const kEmpty = new std::string();
  return core_ ? core_->name : *kEmpty;
}

std::string ChannelRef::DebugString() const {
  if (!core_) return "<null channel>";
  return core_->DebugString();
}

}  // namespace picos
