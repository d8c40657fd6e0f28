#include "core/kernel/log.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string_view>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdio>
#include <ctime>

namespace picos {
namespace {

constexpr char kTextPattern[] = "%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v";

// The length of the valid UTF-8 sequence at s[i], or 0 (overlong forms,
// surrogates and code points past U+10FFFF are not valid).
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

void AppendJsonQuoted(std::string_view s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out->append("\\\""); break;
        case '\\': out->append("\\\\"); break;
        case '\n': out->append("\\n"); break;
        case '\r': out->append("\\r"); break;
        case '\t': out->append("\\t"); break;
        default:
          if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out->append(buf);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out->append("\\ufffd");
      ++i;
    } else {
      out->append(s.substr(i, n));
      i += n;
    }
  }
  out->push_back('"');
}

// One JSON object per line: {"ts","level","file","line","thread","msg"}.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line;
    line.reserve(msg.payload.size() + 128);
    const auto since = msg.time.time_since_epoch();
    const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(since).count();
    const time_t secs = static_cast<time_t>(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[64];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    line.append("{\"ts\":\"").append(ts).append("\",\"level\":");
    const auto level = spdlog::level::to_string_view(msg.level);
    AppendJsonQuoted(std::string_view(level.data(), level.size()), &line);
    line.append(",\"file\":");
    AppendJsonQuoted(msg.source.filename != nullptr ? msg.source.filename : "", &line);
    line.append(",\"line\":").append(std::to_string(msg.source.line));
    line.append(",\"thread\":").append(std::to_string(msg.thread_id));
    line.append(",\"msg\":");
    AppendJsonQuoted(std::string_view(msg.payload.data(), msg.payload.size()), &line);
    line.append("}\n");
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

std::string JsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendJsonQuoted(s, &out);
  return out;
}

bool ParseLogFormat(std::string_view name, LogFormat* format) {
  if (name == "text") {
    *format = LogFormat::kText;
    return true;
  }
  if (name == "json") {
    *format = LogFormat::kJson;
    return true;
  }
  return false;
}

void SetLogFormat(LogFormat format) {
  if (format == LogFormat::kJson) {
    Log().set_formatter(std::make_unique<JsonFormatter>());
  } else {
    Log().set_formatter(std::make_unique<spdlog::pattern_formatter>(kTextPattern));
  }
}

spdlog::logger& Log() {
  static spdlog::logger* const logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("picos", std::move(sink));
    l->set_pattern(kTextPattern);
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
