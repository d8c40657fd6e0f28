// Logging for picos, on spdlog (Debian's libspdlog): one process-wide logger
// named "picos" writing to standard error, with the level set by the
// PICOS_LOG_LEVEL environment variable (trace, debug, info, warn, error, off;
// default info).
//
//   PICOS_LOG(warn, "dropping message for {}: {}", task_name, reason);
//
// Any thread may log: spdlog's default sinks are thread-safe.
#ifndef PICOS_CORE_KERNEL_LOG_H_
#define PICOS_CORE_KERNEL_LOG_H_

#include <spdlog/spdlog.h>

namespace picos {

// The logger all picos code writes to. Created on first use.
spdlog::logger& Log();

}  // namespace picos

#define PICOS_LOG(level, ...) ::picos::Log().level(__VA_ARGS__)

#endif  // PICOS_CORE_KERNEL_LOG_H_
