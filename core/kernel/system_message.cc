#include "core/kernel/system_message.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "core/kernel/status.h"

namespace picos {

Value SystemMessage(absl::string_view key, Value payload) {
  PICOS_ASSERT(absl::StartsWith(key, kSystemMessagePrefix) && "system message keys start with picos.");
  Value::MapType m;
  m.emplace(std::string(key), std::move(payload));
  return Value(std::move(m));
}

absl::string_view SystemMessageKind(const Value& msg) {
  if (!msg.is_map() || msg.as_map().size() != 1) return {};
  const std::string& key = msg.as_map().begin()->first;
  if (!absl::StartsWith(key, kSystemMessagePrefix)) return {};
  return key;
}

const Value* SystemMessagePayload(const Value& msg, absl::string_view key) {
  if (key.empty() || SystemMessageKind(msg) != key) return nullptr;
  return &msg.as_map().begin()->second;
}

}  // namespace picos
