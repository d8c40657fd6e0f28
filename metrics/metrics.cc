#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernel/log.h"
#include "core/kernel/status.h"

namespace picos::metrics {
namespace {

// Longest label value kept (bytes); longer ones are cut, so that a label fed
// from outside cannot make one series as big as the input.
constexpr size_t kMaxLabelValueBytes = 256;

uint64_t Bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
double FromBits(uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

void AtomicAddDouble(std::atomic<uint64_t>& bits, double delta) {
  uint64_t old = bits.load(std::memory_order_relaxed);
  while (!bits.compare_exchange_weak(old, Bits(FromBits(old) + delta), std::memory_order_relaxed)) {
  }
}

bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = absl::ascii_isalpha(c) || c == '_' || c == ':' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  if (s.empty() || s.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = absl::ascii_isalpha(c) || c == '_' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

// Valid UTF-8 of at most kMaxLabelValueBytes: invalid bytes become U+FFFD
// (Prometheus refuses invalid UTF-8 in a label value), and a value cut at
// the bound is cut at a character boundary.
std::string CleanLabelValue(const std::string& in) {
  std::string out;
  out.reserve(std::min(in.size(), kMaxLabelValueBytes));
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = n > 0 && i + n <= in.size();
    for (size_t k = 1; valid && k < n; ++k) {
      valid = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    }
    // Overlong two-byte forms (C0, C1) are invalid too.
    if (valid && n == 2 && c < 0xC2) valid = false;
    std::string piece = valid ? in.substr(i, n) : std::string("\xEF\xBF\xBD");
    if (out.size() + piece.size() > kMaxLabelValueBytes) break;
    out += piece;
    i += valid ? n : 1;
  }
  return out;
}

// Escapes a label value: backslash, double quote and newline.
void AppendEscapedLabel(const std::string& v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\': *out += "\\\\"; break;
      case '"': *out += "\\\""; break;
      case '\n': *out += "\\n"; break;
      default: *out += c;
    }
  }
}

// Escapes HELP text: backslash and newline.
std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  // The shortest of 15 and 17 digits that reads back as the same double.
  std::string s = absl::StrFormat("%.15g", v);
  if (std::strtod(s.c_str(), nullptr) == v) return s;
  return absl::StrFormat("%.17g", v);
}

// a="x",b="y": label values escaped, once per series.
std::string RenderLabels(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"");
    AppendEscapedLabel(values[i], &out);
    out += '"';
  }
  return out;
}

// name{labels,extra} (the braces only when there is a label).
void AppendName(absl::string_view name, const std::string& labels, absl::string_view extra,
                std::string* out) {
  out->append(name.data(), name.size());
  if (labels.empty() && extra.empty()) return;
  *out += '{';
  *out += labels;
  if (!extra.empty()) {
    if (!labels.empty()) *out += ',';
    out->append(extra.data(), extra.size());
  }
  *out += '}';
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

absl::Status CheckOptions(const FamilyOptions& o, Type type) {
  if (!IsMetricName(o.name)) {
    return absl::InvalidArgumentError(absl::StrCat("metric name '", o.name,
                                                   "' is not [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  if (o.max_series == 0) {
    return absl::InvalidArgumentError(absl::StrCat(o.name, ": max_series must be at least 1"));
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& l : o.label_names) {
    if (!IsLabelName(l)) {
      return absl::InvalidArgumentError(absl::StrCat(
          o.name, ": label name '", l, "' is not [a-zA-Z_][a-zA-Z0-9_]* or starts with __"));
    }
    if (type == Type::kHistogram && l == "le") {
      return absl::InvalidArgumentError(absl::StrCat(o.name, ": 'le' is a histogram's own label"));
    }
    if (!seen.insert(l).second) {
      return absl::InvalidArgumentError(absl::StrCat(o.name, ": label '", l, "' repeated"));
    }
  }
  return absl::OkStatus();
}

// A family read from a callback at each scrape.
class CallbackFamily final : public internal::FamilyBase {
 public:
  CallbackFamily(FamilyOptions options, Type type, SampleCallback callback)
      : FamilyBase(std::move(options), type), callback_(std::move(callback)) {}

  void AppendSeries(std::string* out) const override {
    absl::MutexLock lock(&run_mu_);
    if (removed_) return;
    std::vector<Sample> samples = callback_();
    size_t shown = 0;
    for (Sample& s : samples) {
      if (s.labels.size() != options_.label_names.size()) {
        PICOS_LOG_LIMITED(warn, "metrics: {}: a sample with {} labels dropped (the family has {})",
                          options_.name, s.labels.size(), options_.label_names.size());
        continue;
      }
      if (shown == options_.max_series) {
        PICOS_LOG_LIMITED(warn, "metrics: {}: more than {} samples; the rest are not shown",
                          options_.name, options_.max_series);
        break;
      }
      for (std::string& l : s.labels) l = CleanLabelValue(l);
      AppendName(options_.name, RenderLabels(options_.label_names, s.labels), "", out);
      absl::StrAppend(out, " ", FormatValue(s.value), "\n");
      ++shown;
    }
  }

  void MarkRemoved() {
    absl::MutexLock lock(&run_mu_);
    removed_ = true;
  }

 private:
  SampleCallback callback_;
  mutable absl::Mutex run_mu_;
  bool removed_ ABSL_GUARDED_BY(run_mu_) = false;
};

}  // namespace

// --- Gauge, Histogram ---

void Gauge::Set(double v) { bits_.store(Bits(v), std::memory_order_relaxed); }
void Gauge::Add(double delta) { AtomicAddDouble(bits_, delta); }
double Gauge::value() const { return FromBits(bits_.load(std::memory_order_relaxed)); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // The first bound >= v (Prometheus buckets are "less than or equal").
  size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAddDouble(sum_bits_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_->size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}
double Histogram::sum() const { return FromBits(sum_bits_.load(std::memory_order_relaxed)); }
uint64_t Histogram::count() const { return count_.load(std::memory_order_relaxed); }

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double b = start;
  for (int i = 0; i < count; ++i, b *= factor) out.push_back(b);
  return out;
}

std::vector<double> DurationBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// --- Series tables ---

namespace internal {

struct SeriesTable::Impl {
  const FamilyOptions* options;
  std::function<void*()> make;
  std::function<void(void*)> destroy;
  mutable absl::Mutex mu;
  absl::flat_hash_map<std::vector<std::string>, void*> by_labels ABSL_GUARDED_BY(mu);
  struct Entry {
    std::string rendered;  // RenderLabels of its values
    void* series;
  };
  std::vector<Entry> ordered ABSL_GUARDED_BY(mu);
  void* overflow ABSL_GUARDED_BY(mu) = nullptr;
  uint64_t folded ABSL_GUARDED_BY(mu) = 0;
};

SeriesTable::SeriesTable(const FamilyOptions* options, std::function<void*()> make,
                         std::function<void(void*)> destroy)
    : impl_(new Impl{options, std::move(make), std::move(destroy)}) {}

SeriesTable::~SeriesTable() {
  absl::MutexLock lock(&impl_->mu);
  for (Impl::Entry& e : impl_->ordered) impl_->destroy(e.series);
  if (impl_->overflow) impl_->destroy(impl_->overflow);
}

void* SeriesTable::Get(const std::vector<std::string>& labels) {
  PICOS_ASSERT(labels.size() == impl_->options->label_names.size());
  std::vector<std::string> clean;
  clean.reserve(labels.size());
  bool all_overflow = !labels.empty();
  for (const std::string& l : labels) {
    clean.push_back(CleanLabelValue(l));
    all_overflow = all_overflow && clean.back() == kOverflowLabelValue;
  }
  absl::MutexLock lock(&impl_->mu);
  if (!all_overflow) {
    auto it = impl_->by_labels.find(clean);
    if (it != impl_->by_labels.end()) return it->second;
    if (impl_->ordered.size() < impl_->options->max_series) {
      void* p = impl_->make();
      impl_->ordered.push_back({RenderLabels(impl_->options->label_names, clean), p});
      impl_->by_labels.emplace(std::move(clean), p);
      return p;
    }
  }
  if (impl_->overflow == nullptr) {
    impl_->overflow = impl_->make();
    PICOS_LOG(warn,
              "metrics: {} reached its bound of {} series; new label values share the series "
              "whose labels are all \"{}\"",
              impl_->options->name, impl_->options->max_series, kOverflowLabelValue);
  }
  ++impl_->folded;
  return impl_->overflow;
}

void SeriesTable::ForEach(const std::function<void(const std::string&, const void*)>& fn) const {
  absl::MutexLock lock(&impl_->mu);
  for (const Impl::Entry& e : impl_->ordered) fn(e.rendered, e.series);
  if (impl_->overflow) {
    std::vector<std::string> labels(impl_->options->label_names.size(), kOverflowLabelValue);
    fn(RenderLabels(impl_->options->label_names, labels), impl_->overflow);
  }
}

void AppendCounter(const FamilyOptions& o, const std::string& labels, const Counter& c,
                   std::string* out) {
  AppendName(o.name, labels, "", out);
  absl::StrAppend(out, " ", c.value(), "\n");
}

void AppendGauge(const FamilyOptions& o, const std::string& labels, const Gauge& g,
                 std::string* out) {
  AppendName(o.name, labels, "", out);
  absl::StrAppend(out, " ", FormatValue(g.value()), "\n");
}

std::vector<std::string> BoundsText(const std::vector<double>& bounds) {
  std::vector<std::string> out;
  for (double b : bounds) out.push_back(absl::StrCat("le=\"", FormatValue(b), "\""));
  out.push_back("le=\"+Inf\"");
  return out;
}

void AppendHistogram(const FamilyOptions& o, const std::vector<std::string>& le,
                     const std::string& labels, const Histogram& h, std::string* out) {
  std::vector<uint64_t> counts = h.bucket_counts();
  uint64_t cumulative = 0;
  const std::string bucket = o.name + "_bucket";
  for (size_t i = 0; i < counts.size() && i < le.size(); ++i) {
    cumulative += counts[i];
    AppendName(bucket, labels, le[i], out);
    absl::StrAppend(out, " ", cumulative, "\n");
  }
  AppendName(o.name + "_sum", labels, "", out);
  absl::StrAppend(out, " ", FormatValue(h.sum()), "\n");
  // The count is the +Inf bucket's, so that the two always agree (an
  // observation racing with the scrape may show in one and not the other
  // if each were read on its own).
  AppendName(o.name + "_count", labels, "", out);
  absl::StrAppend(out, " ", cumulative, "\n");
}

}  // namespace internal

// --- Registry ---

CallbackHandle::CallbackHandle(CallbackHandle&& other) noexcept
    : registry_(std::exchange(other.registry_, nullptr)), name_(std::move(other.name_)) {}

CallbackHandle& CallbackHandle::operator=(CallbackHandle&& other) noexcept {
  if (this != &other) {
    if (registry_) registry_->Remove(name_);
    registry_ = std::exchange(other.registry_, nullptr);
    name_ = std::move(other.name_);
  }
  return *this;
}

CallbackHandle::~CallbackHandle() {
  if (registry_) registry_->Remove(name_);
}

Registry::Registry() = default;
Registry::~Registry() = default;

absl::Status Registry::Add(std::shared_ptr<internal::FamilyBase> family) {
  absl::MutexLock lock(&mu_);
  for (const auto& f : families_) {
    if (f->options().name == family->options().name) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric '", family->options().name, "' is registered already"));
    }
  }
  families_.push_back(std::move(family));
  return absl::OkStatus();
}

void Registry::Remove(const std::string& name) {
  std::shared_ptr<internal::FamilyBase> gone;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = families_.begin(); it != families_.end(); ++it) {
      if ((*it)->options().name == name) {
        gone = *it;
        families_.erase(it);
        break;
      }
    }
  }
  // Waits for a scrape that is running the callback.
  if (gone) static_cast<CallbackFamily*>(gone.get())->MarkRemoved();
}

absl::StatusOr<CounterFamily*> Registry::AddCounter(FamilyOptions options) {
  PICOS_RETURN_IF_ERROR(CheckOptions(options, Type::kCounter));
  auto family = std::make_shared<CounterFamily>(std::move(options), Type::kCounter);
  CounterFamily* p = family.get();
  PICOS_RETURN_IF_ERROR(Add(std::move(family)));
  return p;
}

absl::StatusOr<GaugeFamily*> Registry::AddGauge(FamilyOptions options) {
  PICOS_RETURN_IF_ERROR(CheckOptions(options, Type::kGauge));
  auto family = std::make_shared<GaugeFamily>(std::move(options), Type::kGauge);
  GaugeFamily* p = family.get();
  PICOS_RETURN_IF_ERROR(Add(std::move(family)));
  return p;
}

absl::StatusOr<HistogramFamily*> Registry::AddHistogram(FamilyOptions options,
                                                        std::vector<double> bounds) {
  PICOS_RETURN_IF_ERROR(CheckOptions(options, Type::kHistogram));
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.name, ": bucket bounds must be finite and strictly increasing"));
    }
  }
  auto family =
      std::make_shared<HistogramFamily>(std::move(options), Type::kHistogram, std::move(bounds));
  HistogramFamily* p = family.get();
  PICOS_RETURN_IF_ERROR(Add(std::move(family)));
  return p;
}

absl::StatusOr<CounterFamily*> Registry::AddCounter(std::string name, std::string help,
                                                    std::vector<std::string> label_names) {
  return AddCounter(FamilyOptions{.name = std::move(name),
                                  .help = std::move(help),
                                  .label_names = std::move(label_names)});
}

absl::StatusOr<GaugeFamily*> Registry::AddGauge(std::string name, std::string help,
                                                std::vector<std::string> label_names) {
  return AddGauge(FamilyOptions{.name = std::move(name),
                                .help = std::move(help),
                                .label_names = std::move(label_names)});
}

absl::StatusOr<CallbackHandle> Registry::AddCallback(FamilyOptions options, Type type,
                                                     SampleCallback callback) {
  if (type == Type::kHistogram) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, ": a callback family is a counter or a gauge"));
  }
  if (!callback) return absl::InvalidArgumentError(absl::StrCat(options.name, ": no callback"));
  PICOS_RETURN_IF_ERROR(CheckOptions(options, type));
  std::string name = options.name;
  PICOS_RETURN_IF_ERROR(
      Add(std::make_shared<CallbackFamily>(std::move(options), type, std::move(callback))));
  return CallbackHandle(this, std::move(name));
}

std::string Registry::Exposition() const {
  std::vector<std::shared_ptr<internal::FamilyBase>> families;
  {
    absl::MutexLock lock(&mu_);
    families = families_;
  }
  std::string out;
  for (const auto& f : families) {
    const FamilyOptions& o = f->options();
    absl::StrAppend(&out, "# HELP ", o.name, " ", EscapeHelp(o.help), "\n");
    absl::StrAppend(&out, "# TYPE ", o.name, " ", TypeName(f->type()), "\n");
    f->AppendSeries(&out);
  }
  return out;
}

std::vector<std::string> Registry::names() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& f : families_) out.push_back(f->options().name);
  return out;
}

}  // namespace picos::metrics
