#include "core/kernel/log.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string_view>

#include <spdlog/sinks/stdout_sinks.h>

namespace picos {

spdlog::logger& Log() {
  static spdlog::logger* const logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("picos", std::move(sink));
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v");
    spdlog::level::level_enum level = spdlog::level::info;
    const char* env = std::getenv("PICOS_LOG_LEVEL");
    bool bad_env = false;
    if (env != nullptr && *env != '\0') {
      // spdlog reads any unknown name as "off": say so instead of going quiet.
      level = spdlog::level::from_str(env);
      if (level == spdlog::level::off && std::string_view(env) != "off") {
        level = spdlog::level::info;
        bad_env = true;
      }
    }
    l->set_level(level);
    if (bad_env) {
      l->warn("PICOS_LOG_LEVEL={} is not one of trace, debug, info, warn, error, critical, off; "
              "using info",
              std::string_view(env).substr(0, 32));
    }
    l->flush_on(spdlog::level::warn);
    return l;
  }();
  return *logger;
}

bool LogRateLimit::AllowAt(int64_t now_ns, uint64_t* suppressed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (window_start_ns_ == INT64_MIN || now_ns - window_start_ns_ >= period_ns_ ||
      now_ns < window_start_ns_) {
    window_start_ns_ = now_ns;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

bool LogRateLimit::Allow(uint64_t* suppressed) {
  // The monotonic clock: a step of the wall clock must not open or close
  // the window.
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  return AllowAt(now, suppressed);
}

}  // namespace picos
