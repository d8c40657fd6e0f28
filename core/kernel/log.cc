#include "core/kernel/log.h"

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

}  // namespace picos
