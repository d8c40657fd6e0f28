// Internals of channels: the control block behind a ChannelRef. The channel
// operations (subscribe, send, deliver) live in channel.h.
#ifndef PICOS_CORE_CHANNEL_INTERNAL_H_
#define PICOS_CORE_CHANNEL_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "core/handles.h"

namespace picos::internal {

struct ChannelCore {
  explicit ChannelCore(std::string n) : name(std::move(n)) {}
  virtual ~ChannelCore() = default;

  std::atomic<uint32_t> refs{1};
  const std::string name;
};

}  // namespace picos::internal

#endif  // PICOS_CORE_CHANNEL_INTERNAL_H_
