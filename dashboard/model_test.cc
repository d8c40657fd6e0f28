#include "dashboard/model.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace picos::dashboard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

// Whether `text` is one valid JSON value (Cap'n Proto's parser).
bool ValidJson(const std::string& text) {
  kj::Maybe<kj::Exception> e = kj::runCatchingExceptions([&] {
    capnp::MallocMessageBuilder m;
    capnp::JsonCodec codec;
    codec.decodeRaw(kj::ArrayPtr<const char>(text.data(), text.size()),
                    m.initRoot<capnp::JsonValue>());
  });
  return e == nullptr;
}

Value Facts(const std::string& host) {
  compute::HostFacts f;
  f.host = host;
  f.cpus = 2;
  f.memory_total = 8ull << 30;
  f.memory_available = 4ull << 30;
  f.load = {0.5, 0.25, 0.125};
  return f.ToValue();
}

Value Event(std::string type, Value::MapType fields) {
  fields["type"] = Value(std::move(type));
  fields["computation"] = Value("c1");
  return Value(std::move(fields));
}

class ModelTest : public ::testing::Test {
 protected:
  void Apply(Value e, absl::Duration at = absl::ZeroDuration()) {
    std::vector<std::string> d;
    model_.Apply(e, kT0 + at, &d);
    for (const std::string& s : d) EXPECT_TRUE(ValidJson(s)) << s;
    deltas_.insert(deltas_.end(), d.begin(), d.end());
  }
  void Cluster() {
    Apply(Event("node_initialized", {{"node", Value("tcp://n1")}, {"facts", Facts("h1")}}));
    Apply(Event("worker_initialized", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w1")}}));
    Apply(Event("worker_initialized", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w2")}}));
  }
  Value Started(uint64_t id, const std::string& worker, const std::string& fn = "square") {
    return Event("job_started", {{"job", Value(id)}, {"fn", Value(fn)}, {"worker", Value(worker)},
                                 {"arg", Value::Bytes("7\n\x01")}, {"async", Value(false)}});
  }
  Value Finished(uint64_t id, const std::string& worker, int code = 0) {
    return Event("job_finished", {{"job", Value(id)}, {"fn", Value("square")},
                                  {"worker", Value(worker)}, {"code", Value(code)},
                                  {"message", Value(code ? "boom" : "")}});
  }
  Model model_;
  std::vector<std::string> deltas_;
};

TEST_F(ModelTest, CountsJobsPerNodeWorkerAndFunction) {
  Cluster();
  Apply(Started(1, "tcp://w1"));
  Apply(Started(2, "tcp://w2"));
  EXPECT_EQ(model_.running_jobs(), 2u);
  Apply(Finished(1, "tcp://w1"), absl::Seconds(2));
  Apply(Finished(2, "tcp://w2", 10), absl::Seconds(4));
  EXPECT_EQ(model_.running_jobs(), 0u);
  EXPECT_EQ(model_.finished_jobs(), 2u);
  const std::string state = model_.StateJson(kT0 + absl::Seconds(4));
  ASSERT_TRUE(ValidJson(state)) << state;
  EXPECT_THAT(state, HasSubstr("\"workers\":2,\"submitted\":2,\"done\":1,\"running\":0,\"failed\":1"));
  EXPECT_THAT(state, HasSubstr("\"host\":\"h1\""));
  EXPECT_THAT(state, HasSubstr("\"fn\":\"square\",\"total\":2,\"done\":1,\"failed\":1"));
  // The argument's preview, escaped; the failure is a recent event.
  EXPECT_THAT(state, HasSubstr("\"arg\":\"7\\u000a\\u0001\""));
  EXPECT_THAT(state, HasSubstr("job 2 (square) failed: boom"));
  EXPECT_THAT(state, HasSubstr("\"seq\":" + std::to_string(model_.seq())));
}

TEST_F(ModelTest, DeltasAreSmallAndNumbered) {
  Cluster();
  deltas_.clear();
  Apply(Started(1, "tcp://w1"));
  // node, fn, job, worker: one small message each, numbered in order.
  ASSERT_THAT(deltas_, SizeIs(4));
  for (const std::string& d : deltas_) EXPECT_LT(d.size(), 1024u) << d;
  EXPECT_THAT(deltas_[2], HasSubstr("\"t\":\"job\""));
  EXPECT_THAT(deltas_[2], HasSubstr("\"outcome\":\"running\""));
  EXPECT_THAT(deltas_[3], HasSubstr(absl::StrCat("\"seq\":", model_.seq(), ",")));
  ASSERT_TRUE(model_.RunningJob(1) == std::nullopt);  // no task in the event
}

TEST_F(ModelTest, LostWorkersAndNodesAndRerunJobs) {
  Cluster();
  Apply(Started(1, "tcp://w1"));
  Apply(Event("worker_lost", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w1")},
                              {"message", Value("gone")}}));
  Apply(Event("job_rerun", {{"job", Value(uint64_t{1})}, {"fn", Value("square")},
                            {"worker", Value("tcp://w1")}, {"retry", Value(1)}}));
  Apply(Started(1, "tcp://w2"));
  Apply(Finished(1, "tcp://w2"));
  Apply(Event("node_lost", {{"node", Value("tcp://n1")}, {"message", Value("no pulse")}}));
  const std::string state = model_.StateJson(kT0);
  ASSERT_TRUE(ValidJson(state));
  EXPECT_THAT(state, HasSubstr("worker tcp://w1 lost: gone"));
  EXPECT_THAT(state, HasSubstr("job 1 re-run"));
  EXPECT_THAT(state, HasSubstr("node tcp://n1 lost: no pulse"));
  // One worker left alive; the re-run job counts once, done, not failed.
  EXPECT_THAT(state, HasSubstr("\"uri\":\"tcp://n1\",\"state\":\"lost\""));
  EXPECT_THAT(state, HasSubstr("\"workers\":1,"));
  EXPECT_THAT(state, HasSubstr("\"fn\":\"square\",\"total\":1,\"done\":1,\"failed\":0"));
}

TEST_F(ModelTest, EverythingIsBounded) {
  ModelLimits limits;
  limits.max_nodes = 2;
  limits.max_workers = 3;
  limits.max_running_jobs = 5;
  limits.max_functions = 2;
  limits.finished_jobs = 10;
  limits.events = 4;
  limits.max_string_bytes = 16;
  model_ = Model(limits);
  for (int i = 0; i < 10; ++i) {
    Apply(Event("worker_initialized", {{"node", Value(absl::StrCat("tcp://node", i))},
                                       {"worker", Value(absl::StrCat("tcp://w", i))}}));
  }
  EXPECT_EQ(model_.nodes(), 2u);
  EXPECT_EQ(model_.workers(), 3u);
  for (uint64_t id = 0; id < 100; ++id) {
    Apply(Started(id, "tcp://w0", absl::StrCat("fn", id % 3, std::string(100, 'x'))));
    if (id % 2 == 1) Apply(Finished(id - 1, "tcp://w0"));
  }
  EXPECT_LE(model_.running_jobs(), 5u);
  EXPECT_EQ(model_.finished_jobs(), 10u);
  const std::string state = model_.StateJson(kT0);
  ASSERT_TRUE(ValidJson(state));
  EXPECT_THAT(state, Not(HasSubstr(std::string(17, 'x'))));
  EXPECT_THAT(state, Not(HasSubstr("\"dropped\":0")));
}

TEST_F(ModelTest, IgnoresMalformedEvents) {
  Apply(Value("not a map"));
  Apply(Value::Map({{"type", Value(7)}}));
  Apply(Event("job_started", {{"job", Value("x")}}));
  Apply(Event("job_finished", {{"job", Value(-1)}}));
  Apply(Event("node_health", {{"node", Value("tcp://n")}, {"facts", Value("junk")}}));
  Apply(Event("no_such_event", {}));
  EXPECT_EQ(model_.running_jobs(), 0u);
  EXPECT_TRUE(ValidJson(model_.StateJson(kT0)));
}

// Each of `parts` is in `state`.
void ExpectHas(const std::string& state, std::initializer_list<std::string> parts) {
  for (const std::string& part : parts) EXPECT_THAT(state, HasSubstr(part));
}

// The setup events (compute/computation.h): a node and its workers
// discovered disabled until EnableNode, a worker whose setup hook failed
// (a recent event with its stage and message, then closed), a node closed
// by CloseNode.
TEST_F(ModelTest, DisabledNodesWorkersAndSetupFailures) {
  Apply(Event("node_discovered", {{"node", Value("tcp://n1")}, {"facts", Facts("h1")},
                                  {"cpus", Value(2)}}));
  Apply(Event("worker_discovered", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w1")}}));
  Apply(Event("worker_discovered", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w2")}}));
  std::string state = model_.StateJson(kT0);
  ASSERT_TRUE(ValidJson(state)) << state;
  // Disabled, facts known, its two workers running (alive) but disabled.
  ExpectHas(state, {"\"uri\":\"tcp://n1\",\"state\":\"disabled\",\"host\":\"h1\"",
                    "\"workers\":2,",
                    "{\"uri\":\"tcp://w1\",\"node\":\"tcp://n1\",\"state\":\"disabled\"",
                    "{\"uri\":\"tcp://w2\",\"node\":\"tcp://n1\",\"state\":\"disabled\"",
                    "node tcp://n1 disabled: waits for EnableNode"});

  // EnableNode: w1 set up, w2's node setup fails and it is closed.
  Apply(Event("node_initialized", {{"node", Value("tcp://n1")}, {"facts", Facts("h1")}}));
  Apply(Event("worker_initialized", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w1")}}));
  Apply(Event("worker_setup_failed", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w2")},
                                      {"stage", Value("node")}, {"message", Value("no data")}}));
  Apply(Event("worker_closed", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w2")}}));
  state = model_.StateJson(kT0);
  ASSERT_TRUE(ValidJson(state)) << state;
  ExpectHas(state, {"\"uri\":\"tcp://n1\",\"state\":\"initialized\"",
                    "\"workers\":1,",
                    "{\"uri\":\"tcp://w1\",\"node\":\"tcp://n1\",\"state\":\"idle\"",
                    "{\"uri\":\"tcp://w2\",\"node\":\"tcp://n1\",\"state\":\"closed\"",
                    "\"type\":\"worker_setup_failed\",\"text\":\"worker tcp://w2 node setup failed: no data\""});
  EXPECT_THAT(state, Not(HasSubstr("\"state\":\"disabled\"")));

  // CloseNode: its worker closed, then node_closed.
  Apply(Event("worker_closed", {{"node", Value("tcp://n1")}, {"worker", Value("tcp://w1")}}));
  Apply(Event("node_closed", {{"node", Value("tcp://n1")}}));
  state = model_.StateJson(kT0);
  ExpectHas(state, {"\"uri\":\"tcp://n1\",\"state\":\"closed\"",
                    "\"workers\":0,",
                    "node tcp://n1 closed"});
}

TEST(JsonString, EscapesEverythingOutsidePrintableAscii) {
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString(std::string("\0\x7f\xff<", 4)), "\"\\u0000\\u007f\\u00ff\\u003c\"");
}

}  // namespace
}  // namespace picos::dashboard
