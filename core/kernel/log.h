// Logging for picos, on spdlog (Debian's libspdlog): one process-wide logger
// named "picos" writing to standard error, with the level set by the
// PICOS_LOG_LEVEL environment variable (trace, debug, info, warn, error, off;
// default info).
//
//   PICOS_LOG(warn, "dropping message for {}: {}", task_name, reason);
//
// A line that input from outside can repeat at will (a failed handshake per
// connection, an accept error per attempt) is written through
// PICOS_LOG_LIMITED instead: at most a few such lines per call site per
// period, then one line saying how many were left out.
//
//   PICOS_LOG_LIMITED(warn, "TLS handshake with {} failed: {}", peer, why);
//
// Formats (SetLogFormat; picos-node's --log_format): one line per event,
// either text for people
//   2026-12-02 01:48:53.633 warn [22474] dropping message for ...
// or JSON lines for log collectors, one object per line:
//   {"ts":"2026-12-02T01:48:53.633Z","level":"warn","file":"core/remote/node.cc",
//    "line":812,"thread":22474,"msg":"dropping message for ..."}
// (UTC, milliseconds). Quotes, backslashes and control characters of the
// message (a newline included) are escaped, and bytes that are not UTF-8
// become U+FFFD, so a line is always one valid JSON object whatever the
// message holds (messages often quote input from outside).
//
// Any thread may log: spdlog's default sinks are thread-safe, and so is the
// rate limit of each call site.
#ifndef PICOS_CORE_KERNEL_LOG_H_
#define PICOS_CORE_KERNEL_LOG_H_

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace picos {

// The logger all picos code writes to. Created on first use.
spdlog::logger& Log();

enum class LogFormat { kText, kJson };

// The format of every line written from now on (default kText). Any thread;
// meant for start-up, before other threads log.
void SetLogFormat(LogFormat format);
// "text" or "json"; false for anything else.
bool ParseLogFormat(std::string_view name, LogFormat* format);

// `s` as a JSON string, quotes included: `"` `\` and control characters
// escaped (\n, \t, \u001f ...), bytes that are not valid UTF-8 each
// replaced by \ufffd. What the JSON log lines use; any JSON writer may.
std::string JsonQuote(std::string_view s);

// Lets through at most `burst` lines per `period_ns` of the monotonic clock
// and counts the rest, so that the next line let through can say how many
// were suppressed. One per call site (PICOS_LOG_LIMITED makes it). Any
// thread.
class LogRateLimit {
 public:
  static constexpr int kDefaultBurst = 10;
  static constexpr int64_t kDefaultPeriodNs = 10'000'000'000;  // 10 s

  constexpr LogRateLimit(int burst = kDefaultBurst, int64_t period_ns = kDefaultPeriodNs)
      : burst_(burst), period_ns_(period_ns) {}

  // True if a line may be written at `now_ns` (a monotonic time); then
  // *suppressed is how many lines were refused since the last one let
  // through (0 if none), and the count starts again. False: the line is
  // counted and must not be written.
  bool AllowAt(int64_t now_ns, uint64_t* suppressed);
  // The same, now.
  bool Allow(uint64_t* suppressed);

 private:
  const int burst_;
  const int64_t period_ns_;
  std::mutex mu_;
  int64_t window_start_ns_ = INT64_MIN;
  int used_ = 0;            // lines let through in this window
  uint64_t suppressed_ = 0;  // lines refused since the last one let through
};

namespace internal {
// spdlog's level for each logger method name PICOS_LOG takes.
inline constexpr spdlog::level::level_enum kLogLevel_trace = spdlog::level::trace;
inline constexpr spdlog::level::level_enum kLogLevel_debug = spdlog::level::debug;
inline constexpr spdlog::level::level_enum kLogLevel_info = spdlog::level::info;
inline constexpr spdlog::level::level_enum kLogLevel_warn = spdlog::level::warn;
inline constexpr spdlog::level::level_enum kLogLevel_error = spdlog::level::err;
inline constexpr spdlog::level::level_enum kLogLevel_critical = spdlog::level::critical;
}  // namespace internal

}  // namespace picos

// The call site's file and line travel with the line (the JSON format shows
// them).
#define PICOS_LOG(level, ...)                                                    \
  ::picos::Log().log(::spdlog::source_loc{__FILE__, __LINE__, ""},               \
                     ::picos::internal::kLogLevel_##level, __VA_ARGS__)

// PICOS_LOG with a rate limit of its own (LogRateLimit's defaults: 10 lines
// per 10 s per call site). A level that is off costs no more than a check.
#define PICOS_LOG_LIMITED(level, ...)                                                    \
  do {                                                                                   \
    if (::picos::Log().should_log(::picos::internal::kLogLevel_##level)) {             \
      static ::picos::LogRateLimit picos_log_limit_;                                     \
      uint64_t picos_log_suppressed_ = 0;                                                \
      if (picos_log_limit_.Allow(&picos_log_suppressed_)) {                              \
        if (picos_log_suppressed_ > 0) {                                                 \
          PICOS_LOG(level, "({} similar lines suppressed)", picos_log_suppressed_);     \
        }                                                                                \
        PICOS_LOG(level, __VA_ARGS__);                                                   \
      }                                                                                  \
    }                                                                                    \
  } while (0)

#endif  // PICOS_CORE_KERNEL_LOG_H_
