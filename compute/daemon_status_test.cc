// DaemonStatus (compute/daemon_status.h): what crosses the network comes
// back the same, a malformed answer is a clear kDataLoss (never a crash),
// and the table and JSON say what the status holds.
#include "compute/daemon_status.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace picos::compute {
namespace {

DaemonStatus Sample() {
  DaemonStatus s;
  s.name = "n1";
  s.uri = "tcp://127.0.0.1:9706";
  s.pid = 4242;
  s.uptime_s = 3725;
  s.facts.host = "h";
  s.facts.platform = "linux-6-x86_64";
  s.facts.cpus = 2;
  s.facts.cpu_available_percent = 73;
  s.facts.memory_total = uint64_t{4} << 30;
  s.facts.memory_available = uint64_t{1} << 30;
  s.facts.disk_total = uint64_t{100} << 30;
  s.facts.disk_free = uint64_t{40} << 30;
  s.facts.load = {0.5, 0.25, 0.125};
  s.cpus = 2;
  s.peers = 1;
  s.started = 3;
  s.computations.push_back({"c1", false, {{0, 100, "tcp://127.0.0.1:1", "running"},
                                          {1, 101, "tcp://127.0.0.1:2", "ended"}}});
  s.computations.push_back({"c2 \"odd\"", true, {}});
  return s;
}

TEST(DaemonStatus, RoundTripsThroughAValue) {
  const DaemonStatus s = Sample();
  absl::StatusOr<DaemonStatus> back = DaemonStatus::FromValue(s.ToValue());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToValue(), s.ToValue());
  EXPECT_EQ(back->computations.size(), 2u);
  EXPECT_EQ(back->computations[0].workers[1].pid, 101);
}

TEST(DaemonStatus, RefusesMalformedAnswers) {
  EXPECT_EQ(DaemonStatus::FromValue(Value("no")).status().code(), absl::StatusCode::kDataLoss);
  const Value good = Sample().ToValue();
  struct Case {
    const char* key;
    Value value;
  };
  const Case cases[] = {
      {"pid", Value("1")},
      {"pid", Value(int64_t{-1})},
      {"uptime_s", Value(-1.0)},
      {"cpus", Value(int64_t{1000})},
      {"closing", Value(int64_t{1})},
      {"facts", Value::Map({{"host", "h"}})},
      {"name", Value(std::string(5000, 'x'))},
      {"computations", Value("none")},
      {"computations", Value::List({Value(int64_t{1})})},
      {"computations", Value::List({Value::Map({{"id", "c"}, {"client_lost", false}, {"workers", Value::List({Value::Map({{"index", "0"}})})}})})},
  };
  for (const Case& c : cases) {
    Value v = good;
    v.as_map()[c.key] = c.value;
    absl::StatusOr<DaemonStatus> st = DaemonStatus::FromValue(v);
    EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss) << c.key << ": " << c.value.DebugString();
  }
  Value missing = good;
  missing.as_map().erase("uri");
  EXPECT_TRUE(absl::StrContains(DaemonStatus::FromValue(missing).status().message(), "\"uri\""));
  // Bounded: more computations than kMaxStatusComputations are refused.
  Value many = good;
  Value::ListType list(kMaxStatusComputations + 1,
                       Value::Map({{"id", "c"}, {"client_lost", false}, {"workers", Value::List({})}}));
  many.as_map()["computations"] = Value(std::move(list));
  EXPECT_EQ(DaemonStatus::FromValue(many).status().code(), absl::StatusCode::kDataLoss);
}

TEST(DaemonStatus, TableAndJson) {
  const std::string table = FormatStatusTable(Sample());
  EXPECT_TRUE(absl::StartsWith(table, "node n1 at tcp://127.0.0.1:9706, pid 4242, up 1h02m, host h")) << table;
  EXPECT_TRUE(absl::StrContains(table, "health: cpu 73% idle of 2, mem 1.0 GiB of 4.0 GiB free, disk 40.0 GiB of "
                                       "100.0 GiB free, swap 0 B of 0 B free, load 0.50 0.25 0.12\n"))
      << table;
  EXPECT_TRUE(absl::StrContains(table, "serving: 2 computations (3 started, no limit), 2 workers each, 1 peer, "
                                       "in service\n"))
      << table;
  EXPECT_TRUE(absl::StrContains(table, "c1           1       101       ended     tcp://127.0.0.1:2\n")) << table;
  const std::string json = FormatStatusJson(Sample());
  EXPECT_EQ(json.find('\n'), json.size() - 1);
  EXPECT_TRUE(absl::StrContains(json, "\"id\":\"c2 \\\"odd\\\"\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"load\":[0.5,0.25,0.125]")) << json;
  EXPECT_EQ(ValueToJson(Value::Map({{"b", Value::Bytes("\xff")}, {"n", Value()}, {"x", 1.0 / 0.0}})),
            "{\"b\":\"/w==\",\"n\":null,\"x\":null}");
}

}  // namespace
}  // namespace picos::compute
