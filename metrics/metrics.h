// Metrics in the Prometheus model: counters, gauges (set by the program or
// read from a callback at scrape time) and histograms, each a family of
// series told apart by label values, and their text exposition
// (https://prometheus.io/docs/instrumenting/exposition_formats/, version
// 0.0.4) for a /metrics endpoint (metrics/http_server.h).
//
//   picos::metrics::Registry registry;
//   absl::StatusOr<picos::metrics::CounterFamily*> jobs = registry.AddCounter(
//       "picos_jobs_total", "Jobs ended, by how they ended.", {"state"});
//   picos::metrics::Counter* done = (*jobs)->WithLabels({"done"});  // once
//   done->Increment();                                              // hot path
//   std::string text = registry.Exposition();
//
// Cost: WithLabels looks the series up under a lock (and creates it the
// first time); keep the pointer it gives. Increment, Set, Add and Observe on
// that pointer are relaxed atomic operations: no lock, no allocation, from
// any thread. Series live as long as their registry and are never removed,
// so the pointers stay valid.
//
// Bounded cardinality: a family holds at most `max_series` series (default
// kDefaultMaxSeries). Label values often come from outside (peer names,
// function names a client chose), so beyond the bound WithLabels gives one
// overflow series per family, whose every label is kOverflowLabelValue, and
// logs once per family that series were folded into it. Memory stays bounded
// whatever the input.
//
// Names are checked when a family is added (kInvalidArgument for a metric or
// label name Prometheus would refuse, kAlreadyExists for a name taken);
// label values are any bytes, escaped in the exposition.
//
// Threads: every method may be called from any thread. Callbacks (AddCallback)
// run on the thread that calls Exposition(), under no lock of the registry's.
#ifndef PICOS_METRICS_METRICS_H_
#define PICOS_METRICS_METRICS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace picos::metrics {

// Most series per family unless the family says otherwise.
inline constexpr size_t kDefaultMaxSeries = 1000;
// The label value of every label of a family's overflow series.
inline constexpr char kOverflowLabelValue[] = "__overflow__";

// A value that only goes up (requests served, bytes sent).
class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (connections open, queue length).
class Gauge {
 public:
  void Set(double v);
  void Add(double delta);  // a compare-and-swap loop: lock-free
  double value() const;

 private:
  std::atomic<uint64_t> bits_{0};  // the double's bits; 0 is +0.0
};

// Observations counted into buckets by upper bound (durations, sizes).
class Histogram {
 public:
  // `bounds`: strictly increasing, finite; +Inf is implicit.
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double v);

  // For the exposition and tests: per-bucket counts (not cumulative; the
  // last is +Inf), the sum and the count of observations.
  std::vector<uint64_t> bucket_counts() const;
  double sum() const;
  uint64_t count() const;

 private:
  const std::vector<double>* bounds_;  // the family's, outlives this
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_bits_{0};
  std::atomic<uint64_t> count_{0};
};

enum class Type { kCounter, kGauge, kHistogram };

// What every family has.
struct FamilyOptions {
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  size_t max_series = kDefaultMaxSeries;
};

namespace internal {
class FamilyBase;
}

// The series of one metric, by label values.
template <typename Series>
class Family;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// One sample of a callback family: label values (as many as the family's
// label names) and the value.
struct Sample {
  std::vector<std::string> labels;
  double value = 0;
};

// Read at every scrape, on the scraping thread: e.g. a figure another object
// keeps (peers connected, reconnects so far).
using SampleCallback = std::function<std::vector<Sample>()>;

class Registry;

// Removes its callback family from the registry when destroyed (before the
// object the callback reads goes away). Movable; empty when moved from.
class CallbackHandle {
 public:
  CallbackHandle() = default;
  CallbackHandle(Registry* registry, std::string name) : registry_(registry), name_(std::move(name)) {}
  CallbackHandle(CallbackHandle&& other) noexcept;
  CallbackHandle& operator=(CallbackHandle&& other) noexcept;
  ~CallbackHandle();

 private:
  Registry* registry_ = nullptr;
  std::string name_;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Adds a family. kInvalidArgument: a name that is not [a-zA-Z_:][a-zA-Z0-9_:]*,
  // a label name that is not [a-zA-Z_][a-zA-Z0-9_]* or starts with "__" (or
  // is "le" for a histogram), repeated label names, max_series 0, bucket
  // bounds not strictly increasing and finite. kAlreadyExists: the name is
  // taken. The family lives as long as the registry.
  absl::StatusOr<CounterFamily*> AddCounter(FamilyOptions options);
  absl::StatusOr<GaugeFamily*> AddGauge(FamilyOptions options);
  absl::StatusOr<HistogramFamily*> AddHistogram(FamilyOptions options, std::vector<double> bounds);
  // Shorthands.
  absl::StatusOr<CounterFamily*> AddCounter(std::string name, std::string help,
                                            std::vector<std::string> label_names = {});
  absl::StatusOr<GaugeFamily*> AddGauge(std::string name, std::string help,
                                        std::vector<std::string> label_names = {});

  // A family whose samples `callback` gives at each scrape (type kCounter or
  // kGauge). Samples with the wrong number of labels are dropped (logged),
  // and at most options.max_series are shown. Removed when the handle is
  // destroyed, which waits for a scrape running the callback to finish.
  absl::StatusOr<CallbackHandle> AddCallback(FamilyOptions options, Type type,
                                             SampleCallback callback);

  // Every family in the Prometheus text format, version 0.0.4: HELP and TYPE
  // lines, then its series in the order they were created (histograms as
  // _bucket, _sum, _count). Runs the callbacks.
  std::string Exposition() const;

  // The names of the families, in the order they were added.
  std::vector<std::string> names() const;

 private:
  friend class CallbackHandle;
  absl::Status Add(std::shared_ptr<internal::FamilyBase> family);
  void Remove(const std::string& name);

  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<internal::FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
};

// Bucket bounds: `count` bounds from `start`, each `factor` times the last.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// The default bounds for durations in seconds, 0.5 ms to 10 s.
std::vector<double> DurationBuckets();

// --- Details ---

namespace internal {

// What the registry and the exposition see of a family.
class FamilyBase {
 public:
  FamilyBase(FamilyOptions options, Type type) : options_(std::move(options)), type_(type) {}
  virtual ~FamilyBase() = default;
  const FamilyOptions& options() const { return options_; }
  Type type() const { return type_; }
  // Appends the family's series (not the HELP and TYPE lines) to `out`.
  virtual void AppendSeries(std::string* out) const = 0;

 protected:
  FamilyOptions options_;
  Type type_;
};

// Series by label values, bounded; the overflow series made when needed.
class SeriesTable {
 public:
  SeriesTable(const FamilyOptions* options, std::function<void*()> make,
              std::function<void(void*)> destroy);
  ~SeriesTable();
  // The series for `labels`: wrong arity is a bug (asserted).
  void* Get(const std::vector<std::string>& labels);
  // Each series with its labels as the exposition writes them
  // (`a="x",b="y"`, escaped once when the series was made), in creation
  // order (the overflow one last), under the table's lock.
  void ForEach(const std::function<void(const std::string& labels, const void*)>& fn) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `labels`: as SeriesTable::ForEach gives them. `le`: the family's bucket
// bounds as text, computed once per scrape.
void AppendCounter(const FamilyOptions& o, const std::string& labels, const Counter& c,
                   std::string* out);
void AppendGauge(const FamilyOptions& o, const std::string& labels, const Gauge& g,
                 std::string* out);
void AppendHistogram(const FamilyOptions& o, const std::vector<std::string>& le,
                     const std::string& labels, const Histogram& h, std::string* out);
std::vector<std::string> BoundsText(const std::vector<double>& bounds);

}  // namespace internal

template <typename Series>
class Family final : public internal::FamilyBase {
 public:
  // The series with these label values (as many as the family's label
  // names; a wrong count is a bug and aborts), made the first time; the
  // overflow series once the family holds max_series. Takes a lock: call it
  // once and keep the pointer, valid while the registry lives.
  Series* WithLabels(const std::vector<std::string>& label_values) {
    return static_cast<Series*>(table_.Get(label_values));
  }
  // The series of a family without labels.
  Series* Get() { return WithLabels({}); }

  Family(FamilyOptions options, Type type, std::vector<double> bounds = {})
      : FamilyBase(std::move(options), type),
        bounds_(std::move(bounds)),
        table_(&options_, [this] { return static_cast<void*>(Make()); },
               [](void* p) { delete static_cast<Series*>(p); }) {}

  void AppendSeries(std::string* out) const override {
    std::vector<std::string> le;
    if constexpr (std::is_same_v<Series, Histogram>) le = internal::BoundsText(bounds_);
    table_.ForEach([&](const std::string& labels, const void* p) {
      Append(le, labels, *static_cast<const Series*>(p), out);
    });
  }

 private:
  Series* Make() {
    if constexpr (std::is_same_v<Series, Histogram>) {
      return new Histogram(&bounds_);
    } else {
      return new Series();
    }
  }
  void Append(const std::vector<std::string>&, const std::string& labels, const Counter& c,
              std::string* out) const {
    internal::AppendCounter(options_, labels, c, out);
  }
  void Append(const std::vector<std::string>&, const std::string& labels, const Gauge& g,
              std::string* out) const {
    internal::AppendGauge(options_, labels, g, out);
  }
  void Append(const std::vector<std::string>& le, const std::string& labels, const Histogram& h,
              std::string* out) const {
    internal::AppendHistogram(options_, le, labels, h, out);
  }

  std::vector<double> bounds_;
  internal::SeriesTable table_;
};

}  // namespace picos::metrics

#endif  // PICOS_METRICS_METRICS_H_
