#include "metrics/metrics.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

// Allocations made on this thread while counting: the hot path must make none.
namespace {
thread_local bool t_counting = false;
thread_local size_t t_allocations = 0;
}  // namespace

void* operator new(size_t n) {
  if (t_counting) ++t_allocations;
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace picos::metrics {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(Metrics, ExpositionOfEachType) {
  Registry r;
  absl::StatusOr<CounterFamily*> jobs = r.AddCounter("jobs_total", "Jobs ended.", {"state"});
  ASSERT_OK(jobs);
  (*jobs)->WithLabels({"done"})->Increment(3);
  (*jobs)->WithLabels({"failed"})->Increment();
  absl::StatusOr<GaugeFamily*> open = r.AddGauge("connections_open", "Open connections.");
  ASSERT_OK(open);
  (*open)->Get()->Set(5);
  (*open)->Get()->Add(-1.5);
  absl::StatusOr<HistogramFamily*> latency = r.AddHistogram(
      {.name = "latency_seconds", .help = "Latency.", .label_names = {"fn"}}, {0.1, 1});
  ASSERT_OK(latency);
  Histogram* h = (*latency)->WithLabels({"f"});
  h->Observe(0.05);
  h->Observe(0.1);  // on the bound: counted in its bucket (le is "<=")
  h->Observe(0.5);
  h->Observe(7);

  EXPECT_EQ(r.Exposition(),
            "# HELP jobs_total Jobs ended.\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{state=\"done\"} 3\n"
            "jobs_total{state=\"failed\"} 1\n"
            "# HELP connections_open Open connections.\n"
            "# TYPE connections_open gauge\n"
            "connections_open 3.5\n"
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{fn=\"f\",le=\"0.1\"} 2\n"
            "latency_seconds_bucket{fn=\"f\",le=\"1\"} 3\n"
            "latency_seconds_bucket{fn=\"f\",le=\"+Inf\"} 4\n"
            "latency_seconds_sum{fn=\"f\"} 7.65\n"
            "latency_seconds_count{fn=\"f\"} 4\n");
  EXPECT_EQ(h->bucket_counts(), (std::vector<uint64_t>{2, 1, 1}));
  EXPECT_EQ(h->count(), 4u);
}

TEST(Metrics, LabelValuesAreEscapedAndCleaned) {
  Registry r;
  absl::StatusOr<CounterFamily*> f = r.AddCounter("odd_total", "Help with \\ and\nnewline.", {"v"});
  ASSERT_OK(f);
  (*f)->WithLabels({"a\\b\"c\nd"})->Increment();
  (*f)->WithLabels({std::string("bad\xff\xfe utf8")})->Increment();
  (*f)->WithLabels({std::string(10000, 'x')})->Increment();
  std::string text = r.Exposition();
  EXPECT_THAT(text, HasSubstr("# HELP odd_total Help with \\\\ and\\nnewline.\n"));
  EXPECT_THAT(text, HasSubstr("odd_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"));
  // Invalid UTF-8 becomes U+FFFD, one per bad byte.
  EXPECT_THAT(text, HasSubstr("odd_total{v=\"bad\xEF\xBF\xBD\xEF\xBF\xBD utf8\"} 1\n"));
  // A long value is cut to 256 bytes.
  EXPECT_THAT(text, HasSubstr("odd_total{v=\"" + std::string(256, 'x') + "\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr(std::string(257, 'x'))));
}

TEST(Metrics, NamesAreChecked) {
  Registry r;
  EXPECT_THAT(r.AddCounter("9lives", "x").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddCounter("a-b", "x").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddCounter("", "x").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddCounter("ok_total", "x", {"__reserved"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddCounter("ok_total", "x", {"a", "a"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddCounter("ok_total", "x", {"has space"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddHistogram({.name = "h", .help = "x", .label_names = {"le"}}, {1}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddHistogram({.name = "h", .help = "x"}, {1, 1}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddHistogram({.name = "h", .help = "x"}, {1, 1.0 / 0.0}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(r.AddGauge({.name = "g", .help = "x", .max_series = 0}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(r.AddCounter("ok_total", "x", {"a"}));
  EXPECT_THAT(r.AddGauge("ok_total", "again").status(), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(r.names(), std::vector<std::string>{"ok_total"});
}

TEST(Metrics, SeriesBeyondTheBoundShareTheOverflowSeries) {
  Registry r;
  absl::StatusOr<CounterFamily*> f =
      r.AddCounter({.name = "by_peer_total", .help = "x", .label_names = {"peer", "kind"},
                    .max_series = 3});
  ASSERT_OK(f);
  std::vector<Counter*> seen;
  for (int i = 0; i < 100; ++i) {
    Counter* c = (*f)->WithLabels({absl::StrCat("peer", i), "k"});
    c->Increment();
    seen.push_back(c);
  }
  // The first three have their own series; the other 97 one shared series.
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_EQ(seen[3], seen[99]);
  EXPECT_EQ(seen[3]->value(), 97u);
  // An existing series is still found after the bound is reached.
  EXPECT_EQ((*f)->WithLabels({"peer1", "k"}), seen[1]);
  std::string text = r.Exposition();
  EXPECT_THAT(text, HasSubstr("by_peer_total{peer=\"peer2\",kind=\"k\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("by_peer_total{peer=\"__overflow__\",kind=\"__overflow__\"} 97\n"));
  EXPECT_THAT(text, Not(HasSubstr("peer3\"")));
  // Given as label values, the overflow labels name the overflow series
  // (never a second series with the same labels).
  EXPECT_EQ((*f)->WithLabels({"__overflow__", "__overflow__"}), seen[3]);
}

TEST(Metrics, HotPathMakesNoAllocation) {
  Registry r;
  Counter* c = (*r.AddCounter("c_total", "x", {"l"}))->WithLabels({"v"});
  Gauge* g = (*r.AddGauge("g", "x"))->Get();
  Histogram* h = (*r.AddHistogram({.name = "h", .help = "x"}, DurationBuckets()))->Get();
  t_allocations = 0;
  t_counting = true;
  for (int i = 0; i < 1000; ++i) {
    c->Increment();
    g->Add(1);
    g->Set(i);
    h->Observe(i * 0.001);
  }
  t_counting = false;
  EXPECT_EQ(t_allocations, 0u);
  EXPECT_EQ(c->value(), 1000u);
  EXPECT_EQ(h->count(), 1000u);
}

TEST(Metrics, ThreadsCountExactly) {
  Registry r;
  Counter* c = (*r.AddCounter("c_total", "x"))->Get();
  Gauge* g = (*r.AddGauge("g", "x"))->Get();
  Histogram* h = (*r.AddHistogram({.name = "h", .help = "x"}, {0.5}))->Get();
  constexpr int kThreads = 4;
  constexpr int kEach = 100000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop_scraping{false};
  // A scraper runs all along: the exposition never blocks the writers.
  std::thread scraper([&] {
    while (!stop_scraping.load()) (void)r.Exposition();
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        c->Increment();
        g->Add(1);
        h->Observe(t % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  stop_scraping = true;
  scraper.join();
  EXPECT_EQ(c->value(), uint64_t{kThreads} * kEach);
  EXPECT_EQ(g->value(), double{kThreads} * kEach);
  EXPECT_EQ(h->count(), uint64_t{kThreads} * kEach);
  EXPECT_EQ(h->bucket_counts(), (std::vector<uint64_t>{2 * kEach, 2 * kEach}));
  EXPECT_EQ(h->sum(), 2.0 * kEach * 0.25 + 2.0 * kEach * 1.0);
}

TEST(Metrics, CallbacksAreReadAtEachScrapeUntilTheirHandleGoes) {
  Registry r;
  int peers = 2;
  {
    absl::StatusOr<CallbackHandle> handle = r.AddCallback(
        {.name = "peers", .help = "Peers.", .label_names = {"kind"}}, Type::kGauge, [&peers] {
          return std::vector<Sample>{{{"tcp"}, double(peers)}, {{"wrong", "arity"}, 1}};
        });
    ASSERT_OK(handle);
    EXPECT_THAT(r.Exposition(), HasSubstr("# TYPE peers gauge\npeers{kind=\"tcp\"} 2\n"));
    peers = 5;
    std::string text = r.Exposition();
    EXPECT_THAT(text, HasSubstr("peers{kind=\"tcp\"} 5\n"));
    EXPECT_THAT(text, Not(HasSubstr("wrong")));
  }
  EXPECT_THAT(r.Exposition(), Not(HasSubstr("peers")));
  // The name is free again.
  ASSERT_OK(r.AddCallback({.name = "peers", .help = "x"}, Type::kCounter,
                          [] { return std::vector<Sample>{{{}, 1}}; }));
  EXPECT_THAT(r.AddCallback({.name = "h", .help = "x"}, Type::kHistogram,
                            [] { return std::vector<Sample>{}; })
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Metrics, CallbackSamplesAreBounded) {
  Registry r;
  absl::StatusOr<CallbackHandle> handle =
      r.AddCallback({.name = "many", .help = "x", .label_names = {"i"}, .max_series = 10},
                    Type::kGauge, [] {
                      std::vector<Sample> out;
                      for (int i = 0; i < 1000; ++i) out.push_back({{absl::StrCat(i)}, 1});
                      return out;
                    });
  ASSERT_OK(handle);
  std::string text = r.Exposition();
  EXPECT_THAT(text, HasSubstr("many{i=\"9\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("many{i=\"10\"}")));
}

TEST(Metrics, ValuesFormatAsPrometheusReadsThem) {
  Registry r;
  GaugeFamily* f = *r.AddGauge("v", "x", {"k"});
  f->WithLabels({"nan"})->Set(0.0 / 0.0);
  f->WithLabels({"inf"})->Set(1.0 / 0.0);
  f->WithLabels({"ninf"})->Set(-1.0 / 0.0);
  f->WithLabels({"big"})->Set(1e20);
  f->WithLabels({"neg"})->Set(-3);
  std::string text = r.Exposition();
  EXPECT_THAT(text, HasSubstr("v{k=\"nan\"} NaN\n"));
  EXPECT_THAT(text, HasSubstr("v{k=\"inf\"} +Inf\n"));
  EXPECT_THAT(text, HasSubstr("v{k=\"ninf\"} -Inf\n"));
  EXPECT_THAT(text, HasSubstr("v{k=\"big\"} 1e+20\n"));
  EXPECT_THAT(text, HasSubstr("v{k=\"neg\"} -3\n"));
}

}  // namespace
}  // namespace picos::metrics
