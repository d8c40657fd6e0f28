// HostFacts read from this host are plausible, survive the trip through a
// Value, and a malformed map (network input) is refused, not trusted.
#include "compute/host_stats.h"

#include <unistd.h>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos::compute {
namespace {

using ::picos::testing::StatusIs;

TEST(HostStats, ReadsThisHost) {
  HostStatsReader reader(".");
  HostFacts f = reader.Read();
  EXPECT_GE(f.cpus, 1);
  EXPECT_FALSE(f.host.empty());
  EXPECT_EQ(f.platform.rfind("linux-", 0), 0u) << f.platform;
  EXPECT_GT(f.memory_total, 0u);
  EXPECT_GT(f.memory_available, 0u);
  EXPECT_LE(f.memory_available, f.memory_total);
  EXPECT_GT(f.disk_total, 0u);
  EXPECT_LE(f.disk_free, f.disk_total);
  EXPECT_LE(f.swap_free, f.swap_total);
  EXPECT_GE(f.cpu_available_percent, 0);
  EXPECT_LE(f.cpu_available_percent, 100);
  // A second read covers only the time since the first.
  HostFacts g = reader.Read();
  EXPECT_GE(g.cpu_available_percent, 0);
  EXPECT_LE(g.cpu_available_percent, 100);
  for (double l : g.load) EXPECT_GE(l, 0);
}

TEST(HostStats, RoundTripsThroughAValue) {
  HostStatsReader reader(".");
  HostFacts f = reader.Read();
  absl::StatusOr<HostFacts> back = HostFacts::FromValue(f.ToValue());
  ASSERT_OK(back.status());
  EXPECT_EQ(back->host, f.host);
  EXPECT_EQ(back->platform, f.platform);
  EXPECT_EQ(back->cpus, f.cpus);
  EXPECT_EQ(back->memory_total, f.memory_total);
  EXPECT_EQ(back->disk_free, f.disk_free);
  EXPECT_EQ(back->load, f.load);
}

TEST(HostStats, MalformedFactsAreRefused) {
  HostStatsReader reader(".");
  const Value good = reader.Read().ToValue();
  EXPECT_THAT(HostFacts::FromValue(Value("facts")).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  for (const char* field : {"host", "cpus", "memory_total", "disk_free"}) {
    Value v = good;
    v.as_map().erase(field);
    EXPECT_THAT(HostFacts::FromValue(v).status(), StatusIs(absl::StatusCode::kInvalidArgument)) << field;
  }
  Value v = good;
  v.as_map()["cpus"] = Value(int64_t{0});
  EXPECT_THAT(HostFacts::FromValue(v).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  v = good;
  v.as_map()["cpu_available_percent"] = Value(250.0);
  EXPECT_THAT(HostFacts::FromValue(v).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  v = good;
  v.as_map()["load"] = Value::List({1.0, 2.0});
  EXPECT_THAT(HostFacts::FromValue(v).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  v = good;
  v.as_map()["memory_total"] = Value(-5);
  EXPECT_THAT(HostFacts::FromValue(v).status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace picos::compute
