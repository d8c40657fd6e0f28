#include "core/kernel/system_message.h"

#include <string>

#include "core/kernel/channel.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

TEST(SystemMessage, OneShapeOneKey) {
  Value m = SystemMessage(kSupervisorMessage, Value::Map({{"outcome", "completed"}}));
  ASSERT_TRUE(m.is_map());
  EXPECT_EQ(m.as_map().size(), 1u);
  EXPECT_EQ(SystemMessageKind(m), "picos.supervisor");
  const Value* p = SystemMessagePayload(m, kSupervisorMessage);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*p)["outcome"], Value("completed"));
  EXPECT_EQ(SystemMessagePayload(m, kMonitorMessage), nullptr);
}

TEST(SystemMessage, UserMessagesAreNeverSystemMessages) {
  for (const Value& v :
       {Value(), Value(3), Value("picos.monitor"), Value::Map({}),
        Value::Map({{"type", "monitor"}}),               // the old monitor shape
        Value::Map({{"monitor", 1}}),                    // no prefix
        Value::Map({{"picos.monitor", 1}, {"x", 2}})}) {  // more than one key
    EXPECT_EQ(SystemMessageKind(v), "") << v.DebugString();
    EXPECT_EQ(SystemMessagePayload(v, kMonitorMessage), nullptr) << v.DebugString();
    EXPECT_EQ(SystemMessagePayload(v, ""), nullptr) << v.DebugString();
  }
}

// Every message picos sends a task has the one prefix (issue 7: "type":
// "monitor" beside "picos.channel_closed").
TEST(SystemMessage, MonitorChannelAndSupervisorShareThePrefix) {
  Scheduler s;
  TaskRef t = s.Spawn([]() -> Task<int> { co_return 7; });
  Value monitor = MonitorStatus::FromResult(t, absl::OkStatus(), Value(7)).ToValue();
  EXPECT_EQ(SystemMessageKind(monitor), kMonitorMessage);
  Channel ch = Channel::Create(s, "news");
  Value closed = ChannelClosedMessage(ch.ref());
  EXPECT_EQ(SystemMessageKind(closed), kChannelClosedMessage);
  for (absl::string_view kind : {kMonitorMessage, kChannelClosedMessage, kSupervisorMessage}) {
    EXPECT_EQ(kind.substr(0, kSystemMessagePrefix.size()), kSystemMessagePrefix);
  }
  EXPECT_OK(s.RunUntil(t));
}

}  // namespace
}  // namespace picos
