// The JSON-lines log format (core/kernel/log.h): every line one JSON object
// with ts, level, file, line and msg, whatever the message holds (quotes,
// backslashes, newlines, control characters, bytes that are not UTF-8);
// checked here by hand and by Python's own JSON parser (Debian's
// /usr/bin/python3).
#include <spdlog/sinks/ostream_sink.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernel/log.h"
#include "gtest/gtest.h"

namespace picos {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(LogJson, QuoteEscapesWhatJsonNeeds) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a \"q\" \\ b"), "\"a \\\"q\\\" \\\\ b\"");
  EXPECT_EQ(JsonQuote("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"");
  EXPECT_EQ(JsonQuote(std::string("nul\0x\x1f", 6)), "\"nul\\u0000x\\u001f\"");
  EXPECT_EQ(JsonQuote("naïve €"), "\"naïve €\"");          // valid UTF-8 kept
  EXPECT_EQ(JsonQuote("bad \xff\xc3"), "\"bad \\ufffd\\ufffd\"");  // invalid and truncated
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
  EXPECT_EQ(JsonQuote("\xc0\xaf"), "\"\\ufffd\\ufffd\"");  // overlong
}

TEST(LogJson, ParseLogFormat) {
  LogFormat f = LogFormat::kText;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_TRUE(ParseLogFormat("text", &f));
  EXPECT_EQ(f, LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("JSON ", &f));
}

TEST(LogJson, EachEventIsOneLineOfValidJson) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  Log().sinks().push_back(sink);
  SetLogFormat(LogFormat::kJson);
  const int line = __LINE__ + 1;
  PICOS_LOG(warn, "a \"quoted\" peer\nwith a newline, a tab\tand {}", std::string("bad \xff utf8 \\ end"));
  PICOS_LOG(info, "plain {}", 42);
  PICOS_LOG_LIMITED(error, "limited {}", "x");
  SetLogFormat(LogFormat::kText);
  PICOS_LOG(info, "back to text");
  Log().sinks().pop_back();

  std::vector<std::string> lines = Lines(captured.str());
  ASSERT_EQ(lines.size(), 4u) << captured.str();
  const std::string& first = lines[0];
  EXPECT_EQ(first.rfind("{\"ts\":\"", 0), 0u) << first;
  EXPECT_NE(first.find("\"level\":\"warning\""), std::string::npos) << first;
  EXPECT_NE(first.find("\"file\":\"core/kernel/log_json_test.cc\""), std::string::npos) << first;
  EXPECT_NE(first.find("\"line\":" + std::to_string(line) + ","), std::string::npos) << first;
  EXPECT_NE(first.find("\"msg\":\"a \\\"quoted\\\" peer\\nwith a newline, a tab\\tand bad \\ufffd utf8 \\\\ end\"}"),
            std::string::npos)
      << first;
  EXPECT_NE(lines[1].find("\"msg\":\"plain 42\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\"level\":\"error\""), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3].find("{"), std::string::npos) << "text again: " << lines[3];
  EXPECT_NE(lines[3].find("back to text"), std::string::npos);

  // Python's parser agrees: each JSON line is an object with the fields.
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/log.jsonl";
  {
    std::ofstream out(path);
    for (int i = 0; i < 3; ++i) out << lines[i] << "\n";
  }
  const std::string check =
      "/usr/bin/python3 -c 'import json,sys\n"
      "for l in open(sys.argv[1]):\n"
      "  o = json.loads(l)\n"
      "  assert set(o) == {\"ts\",\"level\",\"file\",\"line\",\"thread\",\"msg\"}, o\n"
      "  assert isinstance(o[\"line\"], int) and o[\"line\"] > 0, o\n"
      "print(\"ok\")' " + path;
  EXPECT_EQ(std::system(check.c_str()), 0) << "python3 refused a line of " << path;
}

}  // namespace
}  // namespace picos
