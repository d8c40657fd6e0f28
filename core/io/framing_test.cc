#include "core/io/framing.h"

#include <cstdint>
#include <cstring>
#include <string_view>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/io/process.h"
#include "core/io/stream.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Optional;

// A Reader that gives scripted results, one per Read (cut to max_bytes),
// then the end of the stream; it counts the reads it served.
class ScriptReader : public Reader {
 public:
  explicit ScriptReader(std::deque<absl::StatusOr<std::string>> script)
      : script_(std::move(script)) {}
  Task<absl::StatusOr<std::string>> Read(size_t max_bytes, absl::Duration timeout) override {
    ++reads_;
    if (script_.empty()) co_return std::string();
    absl::StatusOr<std::string> r = std::move(script_.front());
    script_.pop_front();
    if (r.ok() && r->size() > max_bytes) {
      script_.push_front(r->substr(max_bytes));
      r->resize(max_bytes);
    }
    co_return r;
  }
  int reads() const { return reads_; }

 private:
  std::deque<absl::StatusOr<std::string>> script_;
  int reads_ = 0;
};

// A Writer that keeps what it is given, one entry per Write.
class CollectWriter : public Writer {
 public:
  Task<absl::Status> Write(std::string data, absl::Duration timeout) override {
    writes.push_back(std::move(data));
    co_return absl::OkStatus();
  }
  std::string All() const {
    std::string s;
    for (const std::string& w : writes) s += w;
    return s;
  }
  std::vector<std::string> writes;
};

std::deque<absl::StatusOr<std::string>> Pieces(const std::string& bytes, size_t piece) {
  std::deque<absl::StatusOr<std::string>> out;
  for (size_t i = 0; i < bytes.size(); i += piece) out.push_back(bytes.substr(i, piece));
  return out;
}

std::string Header(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}

PICOS_CORO_TEST(Framing, RoundTripsMessagesArrivingInPieces) {
  std::string big(100'000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  const std::vector<std::string> messages = {"hello", "", std::string("a\0b", 3), big};
  CollectWriter out;
  for (const std::string& m : messages) CO_ASSERT_OK(co_await WriteMessage(out, m));
  CO_ASSERT_TRUE(out.writes.size() == messages.size());  // one write per message, header included
  EXPECT_EQ(out.writes[0], Header(5) + "hello");

  ScriptReader source(Pieces(out.All(), 7));
  BufferedReader in(&source);
  for (const std::string& m : messages) {
    absl::StatusOr<std::optional<std::string>> got = co_await ReadMessage(in);
    CO_ASSERT_OK(got);
    EXPECT_THAT(*got, Optional(m));
  }
  absl::StatusOr<std::optional<std::string>> end = co_await ReadMessage(in);
  CO_ASSERT_OK(end);
  EXPECT_EQ(*end, std::nullopt) << "a clean end between messages";
}

PICOS_CORO_TEST(Framing, OversizeIsRejectedBeforeThePayloadIsRead) {
  // The header claims 4 GiB - 1; the payload's first bytes wait in the
  // source: none may be read, let alone allocated for.
  ScriptReader source({Header(UINT32_MAX), std::string(10, 'x')});
  BufferedReader in(&source);
  EXPECT_THAT(co_await ReadMessage(in, absl::InfiniteDuration(), {.max_message_size = 1 << 20}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("4294967295 bytes")));
  EXPECT_EQ(source.reads(), 1);
  EXPECT_EQ(in.buffered(), kFrameHeaderSize);

  // One byte over the limit, on both sides.
  ScriptReader over({Header(101) + std::string(101, 'y')});
  BufferedReader in2(&over);
  EXPECT_THAT(co_await ReadMessage(in2, absl::InfiniteDuration(), {.max_message_size = 100}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  CollectWriter out;
  EXPECT_THAT(co_await WriteMessage(out, std::string(101, 'y'), absl::InfiniteDuration(), {.max_message_size = 100}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(out.writes.empty()) << "nothing is written for a refused message";
  CO_ASSERT_OK(co_await WriteMessage(out, std::string(100, 'y'), absl::InfiniteDuration(), {.max_message_size = 100}));
}

PICOS_CORO_TEST(Framing, TruncatedFramesAreDataLoss) {
  ScriptReader mid_header({std::string("\0\0", 2)});
  BufferedReader a(&mid_header);
  EXPECT_THAT(co_await ReadMessage(a),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("header (2 of 4 bytes)")));

  ScriptReader mid_payload({Header(10) + "12345"});
  BufferedReader b(&mid_payload);
  EXPECT_THAT(co_await ReadMessage(b),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("5 of 10 bytes")));

  // After a whole message, a truncated one.
  ScriptReader after({Header(2) + "ok" + Header(3) + "n"});
  BufferedReader c(&after);
  absl::StatusOr<std::optional<std::string>> first = co_await ReadMessage(c);
  CO_ASSERT_OK(first);
  EXPECT_THAT(*first, Optional(std::string("ok")));
  EXPECT_THAT(co_await ReadMessage(c), StatusIs(absl::StatusCode::kDataLoss));
}

PICOS_CORO_TEST(Framing, AnotherProtocolIsRefusedAndNamed) {
  ScriptReader http({std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")});
  BufferedReader in(&http);
  EXPECT_THAT(co_await ReadMessage(in),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("\"GET \"")));
}

PICOS_CORO_TEST(Framing, GarbageNeverCrashesOrOverBuffers) {
  std::mt19937 rng(12345);
  const FramingOptions options{.max_message_size = 4096};
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(rng() % 64, '\0');
    for (char& ch : bytes) ch = static_cast<char>(rng());
    // Small lengths in the headers as often as huge ones.
    if (bytes.size() >= 4 && round % 2 == 0) bytes[0] = bytes[1] = 0;
    ScriptReader source(Pieces(bytes, 1 + rng() % 5));
    BufferedReader in(&source);
    for (int m = 0; m < 100; ++m) {
      absl::StatusOr<std::optional<std::string>> got = co_await ReadMessage(in, absl::InfiniteDuration(), options);
      EXPECT_LE(in.buffered(), kFrameHeaderSize + options.max_message_size);
      if (!got.ok()) {
        EXPECT_THAT(got.status().code(),
                    ::testing::AnyOf(absl::StatusCode::kDataLoss,
                                     absl::StatusCode::kResourceExhausted));
        break;
      }
      if (!*got) break;
      EXPECT_LE((*got)->size(), options.max_message_size);
    }
  }
}

PICOS_CORO_TEST(Framing, ATimeoutConsumesNothing) {
  ScriptReader source({Header(6) + "abc", absl::DeadlineExceededError("slow peer"), "def"});
  BufferedReader in(&source);
  EXPECT_THAT(co_await ReadMessage(in), StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::StatusOr<std::optional<std::string>> again = co_await ReadMessage(in);
  CO_ASSERT_OK(again);
  EXPECT_THAT(*again, Optional(std::string("abcdef")));
}

// A Stream that serves scripted pieces, one per ReadSome at most (cut to
// the room given), as a socket would; it counts the calls and checks what
// FrameReader asks for.
class ScriptStream : public Stream {
 public:
  explicit ScriptStream(std::deque<absl::StatusOr<std::string>> script) : script_(std::move(script)) {}
  Task<absl::StatusOr<size_t>> ReadSome(char* buf, size_t min_bytes, size_t max_bytes,
                                        absl::Duration timeout) override {
    ++reads_;
    EXPECT_GE(min_bytes, 1u);
    EXPECT_LE(min_bytes, max_bytes);
    if (script_.empty()) co_return size_t{0};
    absl::StatusOr<std::string> r = std::move(script_.front());
    script_.pop_front();
    if (!r.ok()) co_return r.status();
    if (r->size() > max_bytes) {
      script_.push_front(r->substr(max_bytes));
      r->resize(max_bytes);
    }
    std::memcpy(buf, r->data(), r->size());
    co_return r->size();
  }
  Task<absl::Status> Write(std::string, absl::Duration) override { co_return absl::UnimplementedError("read only"); }
  Task<absl::Status> Shutdown(absl::Duration) override { co_return absl::OkStatus(); }
  void Close() override {}
  size_t write_queue_bytes() const override { return 0; }
  size_t peak_write_queue_bytes() const override { return 0; }
  size_t max_write_queue() const override { return 0; }
  std::string local_address() const override { return "script:"; }
  std::string peer_address() const override { return "script:"; }
  int reads() const { return reads_; }

 private:
  std::deque<absl::StatusOr<std::string>> script_;
  int reads_ = 0;
};

PICOS_CORO_TEST(FrameReader, ReadsWhatWriteMessageWroteAlignedAndInPieces) {
  std::string big(300'000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  // Odd and even lengths, so that payloads land at every offset modulo 8.
  const std::vector<std::string> messages = {"hello", "", std::string("a\0b", 3), big, "xy", "1234567", big.substr(9)};
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    CollectWriter out;
    for (const std::string& m : messages) CO_ASSERT_OK(co_await WriteMessage(out, m));
    ScriptStream source(Pieces(out.All(), piece));
    FrameReader in(&source, {.max_message_size = 1 << 20});
    for (const std::string& m : messages) {
      absl::StatusOr<std::optional<std::string_view>> got = co_await in.Next();
      CO_ASSERT_OK(got);
      CO_ASSERT_TRUE(got->has_value());
      EXPECT_TRUE(**got == m) << "piece " << piece << ": a message of " << m.size() << " bytes came back as "
                              << (*got)->size();
      EXPECT_EQ(reinterpret_cast<uintptr_t>((*got)->data()) % 8, 0u) << "payloads are word-aligned";
    }
    absl::StatusOr<std::optional<std::string_view>> end = co_await in.Next();
    CO_ASSERT_OK(end);
    EXPECT_EQ(*end, std::nullopt) << "a clean end between messages";
  }
}

PICOS_CORO_TEST(FrameReader, RefusesOversizeTruncatedAndGarbageWithinItsBound) {
  ScriptStream huge({Header(UINT32_MAX), std::string(10, 'x')});
  FrameReader a(&huge, {.max_message_size = 1 << 20});
  EXPECT_THAT(co_await a.Next(), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("4294967295 bytes")));
  EXPECT_LE(a.buffered(), kFrameHeaderSize + 10);

  ScriptStream mid_header({std::string("\0\0", 2)});
  FrameReader b(&mid_header);
  EXPECT_THAT(co_await b.Next(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("header (2 of 4 bytes)")));
  ScriptStream mid_payload({Header(10) + "12345"});
  FrameReader c(&mid_payload);
  EXPECT_THAT(co_await c.Next(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("5 of 10 bytes")));

  std::mt19937 rng(12345);
  const FramingOptions options{.max_message_size = 4096};
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(rng() % 64, '\0');
    for (char& ch : bytes) ch = static_cast<char>(rng());
    if (bytes.size() >= 4 && round % 2 == 0) bytes[0] = bytes[1] = 0;
    ScriptStream source(Pieces(bytes, 1 + rng() % 5));
    FrameReader in(&source, options);
    for (int m = 0; m < 100; ++m) {
      absl::StatusOr<std::optional<std::string_view>> got = co_await in.Next();
      EXPECT_LE(in.buffered(), kFrameHeaderSize + options.max_message_size);
      if (!got.ok()) {
        EXPECT_THAT(got.status().code(),
                    ::testing::AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kResourceExhausted));
        break;
      }
      if (!*got) break;
      EXPECT_LE((*got)->size(), options.max_message_size);
    }
  }
}

PICOS_CORO_TEST(FrameReader, ATimeoutLosesNothingAndOneReadServesAWholeMessage) {
  ScriptStream source({Header(6) + "abc", absl::DeadlineExceededError("slow peer"), "def" + Header(2) + "ok"});
  FrameReader in(&source);
  EXPECT_THAT(co_await in.Next(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::StatusOr<std::optional<std::string_view>> again = co_await in.Next();
  CO_ASSERT_OK(again);
  EXPECT_THAT(*again, Optional(std::string_view("abcdef")));
  const int reads = source.reads();
  absl::StatusOr<std::optional<std::string_view>> next = co_await in.Next();
  CO_ASSERT_OK(next);
  EXPECT_THAT(*next, Optional(std::string_view("ok")));
  EXPECT_EQ(source.reads(), reads) << "the second message came with the first's last read";
}

// The buffer grows for a large message and is given back once it is
// consumed; one for small messages stays as it is.
PICOS_CORO_TEST(FrameReader, ALargeMessageDoesNotLeaveItsBufferBehind) {
  const std::string large(3 << 20, 'L');
  CollectWriter out;
  const FramingOptions options{.max_message_size = 8 << 20};
  CO_ASSERT_OK(co_await WriteMessage(out, "small"));
  CO_ASSERT_OK(co_await WriteMessage(out, large, absl::InfiniteDuration(), options));
  CO_ASSERT_OK(co_await WriteMessage(out, "after"));
  CO_ASSERT_OK(co_await WriteMessage(out, "more"));
  // One message a read: the large one is alone in the buffer.
  std::deque<absl::StatusOr<std::string>> script;
  const std::string all = out.All();
  const size_t cuts[] = {kFrameHeaderSize + 5, 2 * kFrameHeaderSize + 5 + large.size(),
                         3 * kFrameHeaderSize + 10 + large.size(), all.size()};
  size_t from = 0;
  for (size_t cut : cuts) {
    script.push_back(all.substr(from, cut - from));
    from = cut;
  }
  ScriptStream source(std::move(script));
  FrameReader in(&source, options);
  absl::StatusOr<std::optional<std::string_view>> m = co_await in.Next();
  CO_ASSERT_OK(m);
  const size_t small_capacity = in.capacity();
  EXPECT_LE(small_capacity, size_t{64} << 10);
  m = co_await in.Next();
  CO_ASSERT_OK(m);
  EXPECT_EQ((*m)->size(), large.size());
  EXPECT_GE(in.capacity(), large.size());
  m = co_await in.Next();
  CO_ASSERT_OK(m);
  EXPECT_THAT(*m, Optional(std::string_view("after")));
  EXPECT_LE(in.capacity(), small_capacity) << "the large buffer was given back";
  m = co_await in.Next();
  CO_ASSERT_OK(m);
  EXPECT_THAT(*m, Optional(std::string_view("more")));
}

// A real stream: messages through `cat` and back.
PICOS_CORO_TEST(Framing, RoundTripsThroughAChildProcess) {
  absl::StatusOr<std::unique_ptr<Process>> cat = Process::Spawn({.program = "cat"});
  CO_ASSERT_OK(cat);
  Process& p = **cat;
  BufferedReader& in = p.out();  // out() is buffered already
  for (int i = 0; i < 200; ++i) {
    std::string m(static_cast<size_t>(i) * 31, static_cast<char>('a' + i % 26));
    CO_ASSERT_OK(co_await WriteMessage(p.in(), m, absl::Seconds(30)));
    absl::StatusOr<std::optional<std::string>> back = co_await ReadMessage(in, absl::Seconds(30));
    CO_ASSERT_OK(back);
    EXPECT_THAT(*back, Optional(m));
  }
  CO_ASSERT_OK(p.CloseStdin());
  absl::StatusOr<std::optional<std::string>> end = co_await ReadMessage(in, absl::Seconds(30));
  CO_ASSERT_OK(end);
  EXPECT_EQ(*end, std::nullopt);
  CO_ASSERT_OK(co_await p.Wait());
}

}  // namespace
}  // namespace picos
