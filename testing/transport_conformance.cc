#include "testing/transport_conformance.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {

std::string UniqueUnixUri(bool abstract) {
  static std::atomic<int> counter{0};
  std::string name = absl::StrCat("picos-", getpid(), "-", counter.fetch_add(1));
  if (abstract) return absl::StrCat("unix://@", name);
  return absl::StrCat("unix:///tmp/", name, ".sock");
}

namespace {

using ::testing::HasSubstr;

// The deadline of every wait a test does not measure: far beyond what the
// busiest machine needs (a thousand TLS handshakes under ASan on two shared
// cores), so that only a hang fails on it, with a clearer message than
// Bazel's timeout. Timeouts that a test does check stay short and are
// asserted to expire.
constexpr absl::Duration kPatience = absl::Minutes(5);

std::unique_ptr<const TransportRegistry> MakeRegistry(const ConformanceParam& p) {
  TransportRegistry::Builder b;
  p.register_transport(b);
  return std::move(b).Build();
}

// The conformance bodies close many connections at the end: RunCoroTest
// lets their tasks see it and their handles close before it checks.
template <typename F>
void RunTask(F body) {
  RunCoroTest(std::move(body));
}

// Reads until the end of the stream, writing back what it read.
Task<absl::Status> EchoUntilEnd(Stream* s) {
  std::string buf(64 * 1024, '\0');
  for (int i = 0; i < 10'000'000; ++i) {
    absl::StatusOr<size_t> n = co_await s->ReadSome(buf.data(), 1, buf.size(), kPatience);
    if (!n.ok()) co_return n.status();
    if (*n == 0) co_return co_await s->Shutdown(kPatience);
    absl::Status w = co_await s->Write(buf.substr(0, *n), kPatience);
    if (!w.ok()) co_return w;
  }
  co_return absl::ResourceExhaustedError("echo loop bound");
}

char PatternByte(size_t offset) { return static_cast<char>((offset * 7 + offset / 251) % 256); }

struct Pair {
  std::unique_ptr<Listener> listener;
  std::unique_ptr<Stream> client;
  std::unique_ptr<Stream> server;
};

Task<absl::StatusOr<Pair>> Connected(const TransportRegistry& r, std::string uri,
                                     StreamOptions options = {}) {
  Pair p;
  PICOS_CO_ASSIGN_OR_RETURN(p.listener, co_await r.Listen(uri, options));
  // Accept in a task of its own: a transport with a handshake (TLS) finishes
  // Connect only while the other side is accepting.
  auto accepted = std::make_shared<absl::StatusOr<std::unique_ptr<Stream>>>(
      absl::UnknownError("not accepted"));
  Listener* listener = p.listener.get();
  auto accept = [listener, accepted]() -> Task<> {
    *accepted = co_await listener->Accept(kPatience);
  };
  TaskRef acceptor = ThisScheduler().Spawn(accept);
  absl::StatusOr<std::unique_ptr<Stream>> client =
      co_await r.Connect(p.listener->address(), kPatience, options);
  absl::StatusOr<Value> joined = co_await acceptor.Join();
  PICOS_CO_RETURN_IF_ERROR(joined.status());
  PICOS_CO_RETURN_IF_ERROR(client.status());
  PICOS_CO_RETURN_IF_ERROR(accepted->status());
  p.client = *std::move(client);
  p.server = *std::move(*accepted);
  co_return p;
}

TEST_P(TransportConformanceTest, EchoSmall) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    EXPECT_THAT(p->client->peer_address(), HasSubstr(GetParam().listen_uri().substr(0, 4)));
    Stream* server = p->server.get();
    TaskRef echo = ThisScheduler().Spawn([server]() { return EchoUntilEnd(server); });
    CO_ASSERT_OK(co_await p->client->Write("hello, picos"));
    char buf[64];
    absl::StatusOr<size_t> n = co_await p->client->ReadSome(buf, 12, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "hello, picos");
    CO_ASSERT_OK(co_await p->client->Shutdown(kPatience));
    n = co_await p->client->ReadSome(buf, 1, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, 0u) << "end of stream after the echo's shutdown";
    absl::StatusOr<Value> done = co_await echo.Join(kPatience);
    EXPECT_OK(done);
  });
}

TEST_P(TransportConformanceTest, EchoLarge64MB) {
  auto reg = MakeRegistry(GetParam());
  constexpr size_t kTotal = size_t{64} << 20;
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    Stream* server = p->server.get();
    Stream* client = p->client.get();
    TaskRef echo = ThisScheduler().Spawn([server]() { return EchoUntilEnd(server); });
    TaskRef writer = ThisScheduler().Spawn([client]() -> Task<absl::Status> {
      constexpr size_t kChunk = 1 << 20;
      for (size_t off = 0; off < kTotal; off += kChunk) {
        std::string chunk(kChunk, '\0');
        for (size_t i = 0; i < kChunk; ++i) chunk[i] = PatternByte(off + i);
        absl::Status st = co_await client->Write(std::move(chunk), kPatience);
        if (!st.ok()) co_return st;
      }
      co_return co_await client->Shutdown(kPatience);
    });
    std::string buf(256 * 1024, '\0');
    size_t got = 0;
    bool same = true;
    for (int i = 0; i < 10'000'000 && got <= kTotal; ++i) {
      absl::StatusOr<size_t> n =
          co_await client->ReadSome(buf.data(), 1, buf.size(), kPatience);
      CO_ASSERT_OK(n);
      if (*n == 0) break;
      for (size_t k = 0; k < *n && same; ++k) same = buf[k] == PatternByte(got + k);
      got += *n;
    }
    EXPECT_EQ(got, kTotal);
    EXPECT_TRUE(same) << "echoed bytes differ from what was sent";
    absl::StatusOr<Value> w = co_await writer.Join(kPatience);
    EXPECT_OK(w);
    absl::StatusOr<Value> e = co_await echo.Join(kPatience);
    EXPECT_OK(e);
    EXPECT_LE(client->peak_write_queue_bytes(), client->max_write_queue());
  });
}

TEST_P(TransportConformanceTest, WriteFromDeliversEveryByteAndEmptiesTheBuffer) {
  auto reg = MakeRegistry(GetParam());
  constexpr size_t kWrites = 2000;
  constexpr size_t kSize = 10'000;
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    Stream* client = p->client.get();
    auto kept = std::make_shared<size_t>(0);
    TaskRef writer = ThisScheduler().Spawn([client, kept]() -> Task<absl::Status> {
      std::string buffer;
      for (size_t w = 0; w < kWrites; ++w) {
        const size_t capacity = buffer.capacity();
        for (size_t i = 0; i < kSize; ++i) buffer.push_back(PatternByte(w * kSize + i));
        if (capacity >= kSize && buffer.capacity() == capacity) ++*kept;
        absl::Status st = co_await client->WriteFrom(&buffer, kPatience);
        if (!st.ok()) co_return st;
        if (!buffer.empty()) co_return absl::InternalError("WriteFrom left bytes in the buffer");
      }
      co_return co_await client->Shutdown(kPatience);
    });
    std::string buf(64 * 1024, '\0');
    size_t got = 0;
    bool same = true;
    for (int i = 0; i < 10'000'000 && got <= kWrites * kSize; ++i) {
      absl::StatusOr<size_t> n = co_await p->server->ReadSome(buf.data(), 1, buf.size(), kPatience);
      CO_ASSERT_OK(n);
      if (*n == 0) break;
      for (size_t k = 0; k < *n && same; ++k) same = buf[k] == PatternByte(got + k);
      got += *n;
    }
    EXPECT_EQ(got, kWrites * kSize);
    EXPECT_TRUE(same) << "bytes differ from what was written";
    absl::StatusOr<Value> w = co_await writer.Join(kPatience);
    EXPECT_OK(w);
    // libuv streams hand the buffer back when the kernel took it all at
    // once, which a reader that keeps up makes the common case.
    const std::string uri = GetParam().listen_uri();
    if (uri.rfind("tcp://", 0) == 0 || uri.rfind("unix://", 0) == 0) {
      EXPECT_GT(*kept, 0u) << "the buffer's capacity was never kept";
    }
  });
}

TEST_P(TransportConformanceTest, HalfClose) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    CO_ASSERT_OK(co_await p->client->Write("request"));
    CO_ASSERT_OK(co_await p->client->Shutdown(kPatience));
    absl::Status after = co_await p->client->Write("more");
    EXPECT_THAT(after, StatusIs(absl::StatusCode::kFailedPrecondition));
    // The server reads the whole request, then the end, and still replies.
    char buf[64];
    absl::StatusOr<size_t> n = co_await p->server->ReadSome(buf, 7, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "request");
    n = co_await p->server->ReadSome(buf, 1, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, 0u);
    CO_ASSERT_OK(co_await p->server->Write("reply"));
    p->server->Close();
    n = co_await p->client->ReadSome(buf, 5, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "reply");
    n = co_await p->client->ReadSome(buf, 1, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, 0u);
  });
}

TEST_P(TransportConformanceTest, RefusedIsUnavailable) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen(GetParam().listen_uri());
    CO_ASSERT_OK(l);
    std::string address = (*l)->address();
    (*l)->Close();
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await reg->Connect(address, kPatience);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  });
}

// The peer vanishes mid-write: it closes (with unread data, so a reset)
// while the writer still writes. The writer learns kUnavailable.
TEST_P(TransportConformanceTest, PeerResetIsUnavailable) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    CO_ASSERT_OK(co_await p->client->Write(std::string(1000, 'x')));
    co_await Sleep(absl::Milliseconds(20));
    p->server->Abort();
    absl::Status last;
    for (int i = 0; i < 200 && last.ok(); ++i) {
      last = co_await p->client->Write(std::string(64 * 1024, 'y'), kPatience);
    }
    EXPECT_THAT(last, StatusIs(absl::StatusCode::kUnavailable));
    char buf[16];
    absl::StatusOr<size_t> n = co_await p->client->ReadSome(buf, 1, sizeof buf, kPatience);
    // Either the reset (kUnavailable) or an orderly end: never a hang.
    if (n.ok()) {
      EXPECT_EQ(*n, 0u);
    } else {
      EXPECT_THAT(n, StatusIs(absl::StatusCode::kUnavailable));
    }
  });
}

// A peer that writes and then aborts (Stream::Abort: a TCP reset) is read
// as its data, then as a broken connection, never as an orderly end, which
// a reader would take for a complete message. Where the transport has no
// reset, Abort is Close: the data, then the end.
TEST_P(TransportConformanceTest, DataThenResetIsDataThenUnavailable) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    CO_ASSERT_OK(co_await p->server->Write("last words", absl::Seconds(10)));
    p->server->Abort();
    char buf[64];
    absl::StatusOr<size_t> n =
        co_await p->client->ReadSome(buf, 10, sizeof buf, absl::Seconds(10));
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "last words") << "the data before the reset is kept";
    for (int i = 0; i < 2; ++i) {  // and what follows it stays so
      n = co_await p->client->ReadSome(buf, 1, sizeof buf, absl::Seconds(10));
      if (GetParam().abort_is_reset) {
        EXPECT_THAT(n, StatusIs(absl::StatusCode::kUnavailable));
      } else {
        CO_ASSERT_OK(n);
        EXPECT_EQ(*n, 0u);
      }
    }
  });
}

TEST_P(TransportConformanceTest, ReadTimeoutLosesNothing) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri());
    CO_ASSERT_OK(p);
    char buf[16];
    CO_ASSERT_OK(co_await p->server->Write("ab"));
    // Asks for 4 bytes, 2 come: the timeout keeps them buffered.
    absl::StatusOr<size_t> n =
        co_await p->client->ReadSome(buf, 4, sizeof buf, absl::Milliseconds(50));
    EXPECT_THAT(n, StatusIs(absl::StatusCode::kDeadlineExceeded));
    CO_ASSERT_OK(co_await p->server->Write("cd"));
    n = co_await p->client->ReadSome(buf, 4, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "abcd");
  });
}

// Nobody accepts and the backlog fills: further connects cannot complete
// and must end at their timeout.
TEST_P(TransportConformanceTest, ConnectTimeout) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    StreamOptions options;
    options.backlog = 1;
    absl::StatusOr<std::unique_ptr<Listener>> l =
        co_await reg->Listen(GetParam().listen_uri(), options);
    CO_ASSERT_OK(l);
    std::vector<std::unique_ptr<Stream>> held;
    absl::Status last;
    for (int i = 0; i < 300 && last.ok(); ++i) {
      absl::StatusOr<std::unique_ptr<Stream>> s =
          co_await reg->Connect((*l)->address(), absl::Milliseconds(200));
      if (s.ok()) {
        held.push_back(std::move(*s));
      } else {
        last = s.status();
      }
    }
    EXPECT_THAT(last, StatusIs(absl::StatusCode::kDeadlineExceeded));
  });
}

TEST_P(TransportConformanceTest, ThousandConcurrentConnections) {
  constexpr int kConnections = 1000;
  // A thousand handshakes on one thread, under ASan, on a machine busy with
  // other work, take minutes: the deadlines (kPatience) only catch a hang.
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * kConnections + 100) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 2 * kConnections + 200);
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 2 * kConnections + 100) GTEST_SKIP() << "file descriptor limit too low";
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen(GetParam().listen_uri());
    CO_ASSERT_OK(l);
    Listener* listener = l->get();
    // The server keeps every connection open until all clients are done,
    // so that 1,000 are connected at once.
    auto server_streams = std::make_shared<std::vector<std::unique_ptr<Stream>>>();
    auto echoes = std::make_shared<std::vector<TaskRef>>();
    TaskRef acceptor =
        ThisScheduler().Spawn([listener, server_streams, echoes]() -> Task<absl::Status> {
          for (int i = 0; i < kConnections; ++i) {
            absl::StatusOr<std::unique_ptr<Stream>> s = co_await listener->Accept(kPatience);
            if (!s.ok()) co_return s.status();
            Stream* raw = s->get();
            server_streams->push_back(std::move(*s));
            echoes->push_back(ThisScheduler().Spawn([raw]() { return EchoUntilEnd(raw); }));
          }
          co_return absl::OkStatus();
        });
    std::vector<TaskRef> clients;
    std::string address = listener->address();
    auto ok_count = std::make_shared<int>(0);
    for (int i = 0; i < kConnections; ++i) {
      clients.push_back(ThisScheduler().Spawn(
          [&reg, address, i, ok_count]() -> Task<absl::Status> {
            PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> s,
                                      co_await reg->Connect(address, kPatience));
            std::string msg = absl::StrCat("client ", i, " says hi");
            PICOS_CO_RETURN_IF_ERROR(co_await s->Write(msg, kPatience));
            std::string buf(msg.size(), '\0');
            PICOS_CO_ASSIGN_OR_RETURN(
                size_t n, co_await s->ReadSome(buf.data(), msg.size(), msg.size(), kPatience));
            if (buf.substr(0, n) != msg) co_return absl::DataLossError("echo differs");
            ++*ok_count;
            co_return absl::OkStatus();
          }));
    }
    for (TaskRef& c : clients) {
      absl::StatusOr<Value> r = co_await c.Join(kPatience);
      EXPECT_OK(r);
    }
    EXPECT_EQ(*ok_count, kConnections);
    absl::StatusOr<Value> a = co_await acceptor.Join(kPatience);
    EXPECT_OK(a);
    // Clients closed: every echo task sees the end and finishes. Joined, not
    // given a while: their streams must outlive them however slow the
    // machine.
    // (Their status is not checked: a client that has closed entirely may
    // make the echo's own shutdown fail.)
    for (TaskRef& e : *echoes) {
      (void)co_await e.Join(kPatience);
      EXPECT_EQ(e.state(), TaskState::kDone);
    }
    server_streams->clear();
  });
}

// A reader that does not read: the writer's user-space queue never exceeds
// its bound, the write times out, and once the reader drains, writing
// resumes. Asserted on queued bytes, not on time.
TEST_P(TransportConformanceTest, BackpressureBoundsWriteQueue) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    StreamOptions options;
    options.max_write_queue = 256 * 1024;
    options.max_read_buffer = 256 * 1024;
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri(), options);
    CO_ASSERT_OK(p);
    size_t written = 0;
    absl::Status st;
    constexpr size_t kChunk = 1 << 20;
    for (int i = 0; i < 64 && st.ok(); ++i) {
      st = co_await p->client->Write(std::string(kChunk, 'b'), absl::Milliseconds(300));
      if (st.ok()) written += kChunk;
    }
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_LE(p->client->peak_write_queue_bytes(), options.max_write_queue);
    EXPECT_GT(p->client->peak_write_queue_bytes(), 0u);
    EXPECT_LT(written, size_t{64} << 20) << "the kernel cannot buffer 64 MB";
    // Drain on the server; the writer finishes a last write.
    Stream* server = p->server.get();
    TaskRef drain = ThisScheduler().Spawn([server]() -> Task<absl::Status> {
      std::string buf(64 * 1024, '\0');
      for (int i = 0; i < 1'000'000; ++i) {
        absl::StatusOr<size_t> n =
            co_await server->ReadSome(buf.data(), 1, buf.size(), kPatience);
        if (!n.ok()) co_return n.status();
        if (*n == 0) co_return absl::OkStatus();
      }
      co_return absl::OkStatus();
    });
    CO_ASSERT_OK(co_await p->client->Write(std::string(kChunk, 'c'), kPatience));
    CO_ASSERT_OK(co_await p->client->Shutdown(kPatience));
    absl::StatusOr<Value> d = co_await drain.Join(kPatience);
    EXPECT_OK(d);
    EXPECT_LE(p->client->peak_write_queue_bytes(), options.max_write_queue);
  });
}

// Tasks killed while they wait in a read, a write and an accept: the
// callbacks that come later must find live state (ASan checks).
TEST_P(TransportConformanceTest, KilledTasksLeaveNoDanglingCallbacks) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    StreamOptions options;
    options.max_write_queue = 64 * 1024;
    absl::StatusOr<Pair> p = co_await Connected(*reg, GetParam().listen_uri(), options);
    CO_ASSERT_OK(p);
    Listener* listener = p->listener.get();
    Stream* server = p->server.get();
    // The client neither writes nor reads: the server's reader waits for
    // data and its writer for room, for as long as they live.
    TaskRef reader = ThisScheduler().Spawn([server]() -> Task<> {
      char buf[16];
      (void)co_await server->ReadSome(buf, 1, sizeof buf);
    });
    TaskRef writer = ThisScheduler().Spawn([server]() -> Task<> {
      for (int i = 0; i < 1000; ++i) {
        absl::Status st = co_await server->Write(std::string(1 << 20, 'k'));
        if (!st.ok()) co_return;
      }
    });
    TaskRef acceptor = ThisScheduler().Spawn([listener]() -> Task<> {
      (void)co_await listener->Accept();
    });
    // Killed only once each is inside its wait (the writer once the queue
    // and the kernel's buffers are full), however long that takes.
    auto waiting = [](const TaskRef& t) { return t.state() == TaskState::kWaiting; };
    for (int i = 0; i < 1'000'000 && !(waiting(reader) && waiting(writer) && waiting(acceptor));
         ++i) {
      co_await Sleep(absl::Milliseconds(1));
    }
    CO_ASSERT_TRUE(waiting(reader) && waiting(writer) && waiting(acceptor));
    CO_ASSERT_OK(reader.Terminate());
    CO_ASSERT_OK(writer.Terminate());
    CO_ASSERT_OK(acceptor.Terminate());
    for (TaskRef* t : {&reader, &writer, &acceptor}) (void)co_await t->Join();
    // The stream still works after its reader and writer were killed: what
    // the client sends now is read by a new reader.
    CO_ASSERT_OK(co_await p->client->Write("still alive"));
    char buf[16];
    absl::StatusOr<size_t> n = co_await server->ReadSome(buf, 11, sizeof buf, kPatience);
    CO_ASSERT_OK(n);
    EXPECT_EQ(std::string(buf, *n), "still alive");
    p->server.reset();
    p->client.reset();
    p->listener.reset();
  });
}

// Bytes the heap holds now, or -1 where the allocator is not glibc's (a
// sanitizer's).
int64_t HeapBytesInUse() {
#if defined(__SANITIZE_ADDRESS__)
  return -1;
#else
  struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
#endif
}

// Memory follows the data: a connection that has carried a message each way
// and now waits, a task reading on each end, holds no read buffer, no
// record buffer, nothing that grows with the traffic it once had.
TEST_P(TransportConformanceTest, IdleConnectionsHoldLittleMemory) {
  if (HeapBytesInUse() < 0) GTEST_SKIP() << "heap figures need glibc's allocator (not under ASan)";
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    constexpr int kWarmUp = 4;
    constexpr int kIdle = 50;
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen(GetParam().listen_uri());
    CO_ASSERT_OK(l);
    Listener* listener = l->get();
    std::vector<std::unique_ptr<Stream>> streams;
    std::vector<TaskRef> readers;
    auto reader = [](Stream* s) -> Task<> {
      char buf[64];
      (void)co_await s->ReadSome(buf, 1, sizeof buf);
    };
    streams.reserve(2 * (kWarmUp + kIdle));
    readers.reserve(2 * (kWarmUp + kIdle));
    int64_t before = 0;
    for (int i = 0; i < kWarmUp + kIdle; ++i) {
      // Whatever the first connections set up once (contexts, a thread's
      // scratch buffers) is not a per-connection cost.
      if (i == kWarmUp) before = HeapBytesInUse();
      auto accepted = std::make_shared<absl::StatusOr<std::unique_ptr<Stream>>>(
          absl::UnknownError("not accepted"));
      auto accept = [listener, accepted]() -> Task<> {
        *accepted = co_await listener->Accept(absl::Seconds(60));
      };
      TaskRef acceptor = ThisScheduler().Spawn(accept);
      absl::StatusOr<std::unique_ptr<Stream>> c =
          co_await reg->Connect(listener->address(), absl::Seconds(60));
      (void)co_await acceptor.Join();
      CO_ASSERT_OK(c);
      CO_ASSERT_OK(*accepted);
      Stream* client = c->get();
      Stream* server = accepted->value().get();
      char buf[4];
      CO_ASSERT_OK(co_await client->Write("ping", absl::Seconds(60)));
      CO_ASSERT_OK(co_await server->ReadSome(buf, 4, 4, absl::Seconds(60)));
      CO_ASSERT_OK(co_await server->Write("pong", absl::Seconds(60)));
      CO_ASSERT_OK(co_await client->ReadSome(buf, 4, 4, absl::Seconds(60)));
      streams.push_back(*std::move(c));
      streams.push_back(*std::move(*accepted));
      readers.push_back(ThisScheduler().Spawn(reader, client));
      readers.push_back(ThisScheduler().Spawn(reader, server));
    }
    // Every reader is in its wait.
    for (int i = 0; i < 3; ++i) co_await Yield();
    const int64_t per_connection = (HeapBytesInUse() - before) / kIdle;
    EXPECT_LE(per_connection, static_cast<int64_t>(GetParam().max_idle_connection_bytes))
        << "heap per idle connection (both ends)";
    for (const TaskRef& t : readers) (void)t.Terminate();
    for (const TaskRef& t : readers) (void)co_await t.Join(absl::Seconds(60));
    streams.clear();
  });
}

TEST_P(TransportConformanceTest, MalformedAddresses) {
  auto reg = MakeRegistry(GetParam());
  RunTask([&]() -> Task<> {
    std::string scheme = GetParam().listen_uri().substr(0, GetParam().listen_uri().find(':'));
    for (std::string bad : {scheme + "://", scheme + ":/x", scheme + "://\x01:1",
                            scheme + "://[::1:5", std::string("nosuch://x:1")}) {
      absl::StatusOr<std::unique_ptr<Stream>> s = co_await reg->Connect(bad, absl::Seconds(1));
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    }
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await reg->Connect("nosuch://x:1");
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(scheme)))
        << "an unknown scheme lists the known ones";
  });
}

}  // namespace
}  // namespace picos::testing
