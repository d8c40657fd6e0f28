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

SchedulerStatus SchedulerSample() {
  SchedulerStatus s;
  s.name = "picos-scheduler";
  s.uri = "tcp://127.0.0.1:9705";
  s.pid = 77;
  s.uptime_s = 185;
  s.max_clients = 64;
  SchedulerNodeStatus up;
  up.uri = "tcp://127.0.0.1:9706";
  up.cpus = 2;
  up.up = true;
  up.facts = Sample().facts;
  s.nodes.push_back(up);
  // Never reached: no facts yet (all zero), which an up node may not have.
  SchedulerNodeStatus down;
  down.uri = "tcp://127.0.0.1:9707";
  s.nodes.push_back(down);
  s.clients.push_back({"c1", {{up.uri, 2}, {down.uri, 2}}, {{up.uri, 1}, {down.uri, 0}}, {{up.uri, 1}}});
  s.clients.push_back({"c2", {{up.uri, 0}}, {}, {}});
  return s;
}

TEST(SchedulerStatus, RoundTripsThroughAValue) {
  const SchedulerStatus s = SchedulerSample();
  absl::StatusOr<SchedulerStatus> back = SchedulerStatus::FromValue(s.ToValue());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToValue(), s.ToValue());
  EXPECT_EQ(back->clients[0].shares.at("tcp://127.0.0.1:9706"), 1);
}

TEST(SchedulerStatus, RefusesMalformedAnswers) {
  const Value good = SchedulerSample().ToValue();
  const Value node = good["nodes"].as_list()[0];
  auto node_with = [&node](const char* key, Value v) {
    Value n = node;
    n.as_map()[key] = std::move(v);
    return Value::List({n});
  };
  auto client_with = [&good](const char* key, Value v) {
    Value c = good["clients"].as_list()[0];
    c.as_map()[key] = std::move(v);
    return Value::List({c});
  };
  struct Case {
    const char* key;
    Value value;
  };
  const Case cases[] = {
      {"kind", Value("node")},  // a picos-node's answer is not a scheduler's
      {"pid", Value(int64_t{0})},
      {"uptime_s", Value("1")},
      {"max_clients", Value(int64_t{0})},
      {"nodes", Value("none")},
      {"nodes", node_with("cpus", Value(int64_t{257}))},
      {"nodes", node_with("up", Value(int64_t{1}))},
      {"nodes", node_with("facts", Value::Map({{"host", "h"}}))},  // up, so its facts must be whole
      {"clients", Value::List({Value(int64_t{1})})},
      {"clients", client_with("shares", Value::Map({{"tcp://x:1", Value(int64_t{-1})}}))},
      {"clients", client_with("demand", Value::Map({{"tcp://x:1", Value("2")}}))},
      {"clients", client_with("held", Value("none"))},
      {"clients", client_with("computation", Value(std::string(5000, 'x')))},
  };
  for (const Case& c : cases) {
    Value v = good;
    v.as_map()[c.key] = c.value;
    absl::StatusOr<SchedulerStatus> st = SchedulerStatus::FromValue(v);
    EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss) << c.key << ": " << c.value.DebugString();
  }
  Value many = good;
  many.as_map()["nodes"] = Value(Value::ListType(kMaxStatusNodes + 1, node));
  EXPECT_EQ(SchedulerStatus::FromValue(many).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SchedulerStatus, TableAndJson) {
  const std::string table = FormatSchedulerTable(SchedulerSample());
  EXPECT_EQ(table,
            "scheduler picos-scheduler at tcp://127.0.0.1:9705, pid 77, up 3m05s\n"
            "serving: 2 clients (at most 64), 1 of 2 nodes up, 2 CPUs\n"
            "NODE                  STATE  CPUS  CPU IDLE  MEM FREE  HOST\n"
            "tcp://127.0.0.1:9706  up     2     73%       1.0 GiB   h\n"
            "tcp://127.0.0.1:9707  down   -     -         -         -\n"
            "CLIENT  NODE                  DEMAND  SHARE  HELD\n"
            "c1      tcp://127.0.0.1:9706  2       1      1\n"
            "c1      tcp://127.0.0.1:9707  2       0      0\n"
            "c2      -                     -       -      -\n");
  const std::string json = FormatSchedulerJson(SchedulerSample());
  EXPECT_EQ(json.find('\n'), json.size() - 1);
  EXPECT_TRUE(absl::StrContains(json, "\"shares\":{\"tcp://127.0.0.1:9706\":1,\"tcp://127.0.0.1:9707\":0}")) << json;
}

}  // namespace
}  // namespace picos::compute
