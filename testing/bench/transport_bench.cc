// Transport figures over loopback, with a bare-libuv floor measured in the
// same run:
//
//   bazel run -c opt //testing/bench:transport_bench
//
//   <scheme>_roundtrips_per_s   64-byte echo, one request in flight, picos tasks
//   <scheme>_mb_per_s           one-way bulk transfer, 1 MiB writes
//   (schemes: tcp, unix, tls over tcp)
//   <scheme>_mb_per_s_two_threads  the same with sender and receiver on
//                               two schedulers, two threads (tcp, tls)
//   floor_tcp_roundtrips_per_s  the same echo, bare libuv callbacks
//   floor_tcp_mb_per_s          the same bulk transfer, bare libuv callbacks
//   tcp_idle_connection_bytes, tls_idle_connection_bytes and their floors:
//                               memory per idle connection (idle_connections.h)
//
// Client and server share one thread and one loop in every case, so the
// floor and picos pay the same system calls and differ only by picos.
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "testing/bench/figures.h"
#include "testing/bench/idle_connections.h"
#include "testing/tls_certs.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, roundtrips, 100000, "64-byte round trips per figure");
ABSL_FLAG(int, bulk_mb, 512, "megabytes per bulk figure");
ABSL_FLAG(int, idle_connections, 300, "connections per idle-memory figure");
ABSL_FLAG(bool, only_idle, false, "print only the idle-memory figures");

namespace picos::testing {
namespace {

constexpr size_t kMessage = 64;

// --- picos ---

Task<absl::Status> EchoServer(Stream* s) {
  std::string buf(64 * 1024, '\0');
  for (int64_t i = 0; i < (int64_t{1} << 40); ++i) {
    absl::StatusOr<size_t> n = co_await s->ReadSome(buf.data(), 1, buf.size());
    if (!n.ok()) co_return n.status();
    if (*n == 0) co_return absl::OkStatus();
    absl::Status w = co_await s->Write(buf.substr(0, *n));
    if (!w.ok()) co_return w;
  }
  co_return absl::OkStatus();
}

Task<absl::Status> Sink(Stream* s, size_t* got) {
  std::string buf(256 * 1024, '\0');
  for (int64_t i = 0; i < (int64_t{1} << 40); ++i) {
    absl::StatusOr<size_t> n = co_await s->ReadSome(buf.data(), 1, buf.size());
    if (!n.ok()) co_return n.status();
    if (*n == 0) co_return absl::OkStatus();
    *got += *n;
  }
  co_return absl::OkStatus();
}

struct PicosResult {
  double roundtrips_per_s = 0;
  double mb_per_s = 0;
};

struct Connection {
  std::unique_ptr<Stream> client;
  std::unique_ptr<Stream> server;
};

// Connects to `l` while a second task accepts: TLS completes Connect only
// while the other side handshakes.
Task<absl::StatusOr<Connection>> ConnectPair(const TransportRegistry& r, Listener* l,
                                             std::string client_uri) {
  auto accepted = std::make_shared<absl::StatusOr<std::unique_ptr<Stream>>>(
      absl::UnknownError("not accepted"));
  auto accept = [l, accepted]() -> Task<> { *accepted = co_await l->Accept(absl::Seconds(10)); };
  TaskRef acceptor = ThisScheduler().Spawn(accept);
  absl::StatusOr<std::unique_ptr<Stream>> c = co_await r.Connect(client_uri, absl::Seconds(10));
  (void)co_await acceptor.Join();
  PICOS_CO_RETURN_IF_ERROR(c.status());
  PICOS_CO_RETURN_IF_ERROR(accepted->status());
  co_return Connection{*std::move(c), *std::move(*accepted)};
}

Task<absl::Status> PicosFigures(std::string uri, std::string client_query, PicosResult* out) {
  const TransportRegistry& r = transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Listener> l, co_await r.Listen(uri));
  const std::string client_uri = l->address() + client_query;
  {
    PICOS_CO_ASSIGN_OR_RETURN(Connection pair, co_await ConnectPair(r, l.get(), client_uri));
    std::unique_ptr<Stream> c = std::move(pair.client);
    std::unique_ptr<Stream> s = std::move(pair.server);
    Stream* sp = s.get();
    TaskRef echo = ThisScheduler().Spawn([sp]() { return EchoServer(sp); });
    const int n = absl::GetFlag(FLAGS_roundtrips);
    std::string msg(kMessage, 'p');
    char buf[kMessage];
    absl::Time start = absl::Now();
    for (int i = 0; i < n; ++i) {
      PICOS_CO_RETURN_IF_ERROR(co_await c->Write(msg));
      PICOS_CO_ASSIGN_OR_RETURN(size_t got, co_await c->ReadSome(buf, kMessage, kMessage));
      if (got != kMessage) co_return absl::DataLossError("short echo");
    }
    out->roundtrips_per_s = n / absl::ToDoubleSeconds(absl::Now() - start);
    PICOS_CO_RETURN_IF_ERROR(co_await c->Shutdown());
    (void)co_await echo.Join();
  }
  {
    PICOS_CO_ASSIGN_OR_RETURN(Connection pair, co_await ConnectPair(r, l.get(), client_uri));
    std::unique_ptr<Stream> c = std::move(pair.client);
    std::unique_ptr<Stream> s = std::move(pair.server);
    Stream* sp = s.get();
    auto got = std::make_shared<size_t>(0);
    TaskRef sink = ThisScheduler().Spawn([sp, got]() { return Sink(sp, got.get()); });
    const int mb = absl::GetFlag(FLAGS_bulk_mb);
    absl::Time start = absl::Now();
    for (int i = 0; i < mb; ++i) {
      PICOS_CO_RETURN_IF_ERROR(co_await c->Write(std::string(1 << 20, 'b')));
    }
    PICOS_CO_RETURN_IF_ERROR(co_await c->Shutdown());
    (void)co_await sink.Join();
    double secs = absl::ToDoubleSeconds(absl::Now() - start);
    if (*got != size_t(mb) << 20) co_return absl::DataLossError("bulk bytes lost");
    out->mb_per_s = mb / secs;
  }
  co_return absl::OkStatus();
}

void RunPicos(const std::string& scheme, const std::string& uri,
              const std::string& client_query = "") {
  Scheduler s;
  PicosResult result;
  TaskRef t = s.Spawn(
      [uri, client_query, &result]() { return PicosFigures(uri, client_query, &result); });
  absl::StatusOr<Value> v = s.RunUntil(t);
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", scheme.c_str(), v.status().ToString().c_str());
    return;
  }
  PrintFigure(scheme + "_roundtrips_per_s", result.roundtrips_per_s, "round trips/s");
  PrintFigure(scheme + "_mb_per_s", result.mb_per_s, "MB/s");
}

// Bulk with the receiver on a scheduler of its own, in its own thread: each
// side then pays only its own half (TLS: the sender encrypts, the receiver
// decrypts), as two processes would.
Task<absl::Status> ReceiveAll(std::string uri, std::shared_ptr<std::string> address,
                              std::shared_ptr<absl::Notification> listening,
                              std::shared_ptr<size_t> got) {
  struct NotifyOnExit {
    absl::Notification* n;
    ~NotifyOnExit() {
      if (!n->HasBeenNotified()) n->Notify();
    }
  } guard{listening.get()};
  const TransportRegistry& r = transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Listener> l, co_await r.Listen(uri));
  *address = l->address();
  listening->Notify();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> s, co_await l->Accept(absl::Seconds(30)));
  co_return co_await Sink(s.get(), got.get());
}

Task<absl::Status> SendAll(std::string uri, int mb) {
  const TransportRegistry& r = transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> c, co_await r.Connect(uri, absl::Seconds(30)));
  for (int i = 0; i < mb; ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await c->Write(std::string(1 << 20, 'b')));
  }
  co_return co_await c->Shutdown();
}

void RunTwoThreads(const std::string& scheme, const std::string& uri,
                   const std::string& client_query = "") {
  const int mb = absl::GetFlag(FLAGS_bulk_mb);
  Scheduler receiver(Scheduler::Options{.name = "receiver"});
  if (!receiver.StartThread().ok()) return;
  auto address = std::make_shared<std::string>();
  auto listening = std::make_shared<absl::Notification>();
  auto got = std::make_shared<size_t>(0);
  TaskRef rt = receiver.Spawn(ReceiveAll, uri, address, listening, got);
  listening->WaitForNotification();
  Scheduler sender;
  absl::Time start = absl::Now();
  absl::StatusOr<Value> sent = sender.RunUntil(sender.Spawn(SendAll, *address + client_query, mb));
  absl::StatusOr<Value> received = receiver.WaitFor(rt, absl::Seconds(120));
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  receiver.Stop();
  if (!sent.ok() || !received.ok() || *got != size_t(mb) << 20) {
    std::fprintf(stderr, "%s two threads: %s / %s\n", scheme.c_str(),
                 sent.status().ToString().c_str(), received.status().ToString().c_str());
    return;
  }
  PrintFigure(scheme + "_mb_per_s_two_threads", mb / secs, "MB/s");
}

// --- the floor: bare libuv ---

struct Floor {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_tcp_t server;
  uv_tcp_t client;
  uv_connect_t connect;
  char sbuf[64 * 1024];
  char cbuf[64 * 1024];
  std::string msg = std::string(kMessage, 'p');
  int remaining = 0;
  size_t pending = 0;  // echo bytes still to come back
  bool bulk = false;
  size_t bulk_left = 0;
  size_t received = 0;
  std::string chunk = std::string(1 << 20, 'b');
  int writes_in_flight = 0;
};

struct FloorWrite {
  uv_write_t req;
  char data[64 * 1024];
};

void ClientSend(Floor* f);

void ClientWriteBulk(Floor* f) {
  // Keep two 1 MiB writes in flight, as picos's bounded queue allows.
  while (f->bulk_left > 0 && f->writes_in_flight < 2) {
    auto* w = new uv_write_t;
    uv_buf_t b = uv_buf_init(f->chunk.data(), static_cast<unsigned>(f->chunk.size()));
    ++f->writes_in_flight;
    --f->bulk_left;
    uv_write(w, reinterpret_cast<uv_stream_t*>(&f->client), &b, 1, [](uv_write_t* w, int) {
      auto* fl = static_cast<Floor*>(w->handle->data);
      delete w;
      --fl->writes_in_flight;
      ClientWriteBulk(fl);
      if (fl->bulk_left == 0 && fl->writes_in_flight == 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&fl->client), nullptr);
      }
    });
  }
}

void ClientSend(Floor* f) {
  auto* w = new uv_write_t;
  uv_buf_t b = uv_buf_init(f->msg.data(), kMessage);
  f->pending = kMessage;
  uv_write(w, reinterpret_cast<uv_stream_t*>(&f->client), &b, 1,
           [](uv_write_t* w, int) { delete w; });
}

double FloorRun(bool bulk, int count) {
  auto f = std::make_unique<Floor>();
  uv_loop_init(&f->loop);
  uv_tcp_init(&f->loop, &f->listener);
  f->listener.data = f.get();
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&f->listener, reinterpret_cast<sockaddr*>(&addr), 0);
  uv_listen(reinterpret_cast<uv_stream_t*>(&f->listener), 16, [](uv_stream_t* l, int) {
    auto* fl = static_cast<Floor*>(l->data);
    uv_tcp_init(&fl->loop, &fl->server);
    fl->server.data = fl;
    uv_accept(l, reinterpret_cast<uv_stream_t*>(&fl->server));
    uv_tcp_nodelay(&fl->server, 1);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&fl->server),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
          *b = uv_buf_init(static_cast<Floor*>(h->data)->sbuf, sizeof(Floor::sbuf));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
          auto* fl = static_cast<Floor*>(s->data);
          if (n < 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
            uv_close(reinterpret_cast<uv_handle_t*>(&fl->listener), nullptr);
            return;
          }
          if (fl->bulk) {
            fl->received += n;
            return;
          }
          auto* w = new FloorWrite;
          std::memcpy(w->data, b->base, n);
          uv_buf_t out = uv_buf_init(w->data, static_cast<unsigned>(n));
          uv_write(&w->req, s, &out, 1,
                   [](uv_write_t* r, int) { delete reinterpret_cast<FloorWrite*>(r); });
        });
  });
  sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&f->listener, reinterpret_cast<sockaddr*>(&bound), &len);
  uv_tcp_init(&f->loop, &f->client);
  f->client.data = f.get();
  uv_tcp_nodelay(&f->client, 1);
  f->bulk = bulk;
  f->remaining = count;
  f->bulk_left = bulk ? count : 0;
  uv_tcp_connect(&f->connect, &f->client, reinterpret_cast<sockaddr*>(&bound),
                 [](uv_connect_t* c, int) {
                   auto* fl = static_cast<Floor*>(c->handle->data);
                   if (fl->bulk) {
                     ClientWriteBulk(fl);
                     return;
                   }
                   uv_read_start(
                       c->handle,
                       [](uv_handle_t* h, size_t, uv_buf_t* b) {
                         *b = uv_buf_init(static_cast<Floor*>(h->data)->cbuf, sizeof(Floor::cbuf));
                       },
                       [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
                         auto* fl = static_cast<Floor*>(s->data);
                         if (n <= 0) return;
                         fl->pending -= n;
                         if (fl->pending > 0) return;
                         if (--fl->remaining == 0) {
                           uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
                           return;
                         }
                         ClientSend(fl);
                       });
                   ClientSend(fl);
                 });
  absl::Time start = absl::Now();
  uv_run(&f->loop, UV_RUN_DEFAULT);
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  uv_loop_close(&f->loop);
  return count / secs;
}

}  // namespace
}  // namespace picos::testing

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_roundtrips, 100, 100'000'000) ||
      !picos::FlagInRange(FLAGS_bulk_mb, 1, 1 << 20) ||
      !picos::FlagInRange(FLAGS_idle_connections, 10, 5000)) {
    return 2;
  }
  using namespace picos::testing;
  const bool only_idle = absl::GetFlag(FLAGS_only_idle);
  // Floor first and last would be fairer on a noisy machine; interleave
  // instead: floor, tcp, unix, floor again, and print the better floor.
  double floor_rt = 0, floor_mb = 0;
  if (!only_idle) {
    floor_rt = FloorRun(false, absl::GetFlag(FLAGS_roundtrips));
    floor_mb = FloorRun(true, absl::GetFlag(FLAGS_bulk_mb));
    RunPicos("tcp", "tcp://127.0.0.1:0");
    RunPicos("unix", absl::StrCat("unix://@picos-bench-", getpid()));
  }
  // TLS over TCP, with certificates made for this run.
  std::string dir = absl::StrCat("/tmp/picos-bench-tls-", getpid());
  if (mkdir(dir.c_str(), 0700) == 0) {
    absl::StatusOr<picos::testing::TestPki> pki = picos::testing::MakeTestPki(dir);
    if (pki.ok()) {
      const std::string tls_uri =
          absl::StrCat("tls://127.0.0.1:0?cert=", pki->server_cert, "&key=", pki->server_key);
      // Forked children: run before any scheduler thread exists.
      RunIdleConnectionFigures(absl::GetFlag(FLAGS_idle_connections), tls_uri,
                               absl::StrCat("?ca=", pki->ca_cert), pki->ca_cert,
                               pki->server_cert, pki->server_key);
      if (!only_idle) {
        RunPicos("tls", tls_uri, absl::StrCat("?ca=", pki->ca_cert));
        RunTwoThreads("tcp", "tcp://127.0.0.1:0");
        RunTwoThreads("tls", tls_uri, absl::StrCat("?ca=", pki->ca_cert));
      }
    } else {
      std::fprintf(stderr, "tls: %s\n", pki.status().ToString().c_str());
    }
    for (const char* f : {"ca.pem", "server.pem", "server.key", "client.pem", "client.key",
                          "other-ca.pem"}) {
      unlink(absl::StrCat(dir, "/", f).c_str());
    }
    rmdir(dir.c_str());
  }
  if (only_idle) return 0;
  floor_rt = std::max(floor_rt, FloorRun(false, absl::GetFlag(FLAGS_roundtrips)));
  floor_mb = std::max(floor_mb, FloorRun(true, absl::GetFlag(FLAGS_bulk_mb)));
  PrintFigure("floor_tcp_roundtrips_per_s", floor_rt, "round trips/s");
  PrintFigure("floor_tcp_mb_per_s", floor_mb, "MB/s");
  return 0;
}
