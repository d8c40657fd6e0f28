#include "core/log.h"

#include <cstdlib>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>

namespace picos {

spdlog::logger& Log() {
  static spdlog::logger* const logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("picos", std::move(sink));
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v");
    spdlog::level::level_enum level = spdlog::level::info;
    if (const char* env = std::getenv("PICOS_LOG_LEVEL")) {
      level = spdlog::level::from_str(env);
    }
    l->set_level(level);
    l->flush_on(spdlog::level::warn);
    return l;
  }();
  return *logger;
}

}  // namespace picos
