// Remote-layer figures between two processes over loopback, with a
// bare-libuv floor measured in the same run:
//
//   bazel run -c opt //testing/bench:remote_bench
//
//   remote_pingpong_round_trips_per_s       a task sends a 64-byte payload
//                                           (with its own handle) to a task
//                                           of another process over tcp://,
//                                           which sends it back; one in flight
//   remote_pingpong_sleeping_round_trips_per_s  the same with both
//                                           schedulers blocking at once when
//                                           idle (poll_before_sleep = 0)
//   remote_pingpong_client_cpu_per_round_trip,
//   remote_pingpong_sleeping_client_cpu_per_round_trip  CPU time of the
//                                           client process per round trip,
//                                           in each: what polling costs
//   unix_remote_pingpong_round_trips_per_s  the same over unix://
//   remote_oneway_messages_per_s            64-byte payloads from one task to a
//                                           task of the other process (tcp),
//                                           counted when received there
//   remote_oneway_sender_cpu_per_message    CPU time (user + system) of the
//   remote_oneway_receiver_cpu_per_message  sending and of the receiving
//                                           process over that run, per
//                                           message: what the rate would be
//                                           on idle cores (1e6 / us), read
//                                           however busy the machine is
//   remote_oneway_waits_for_room            how often the sender found the
//                                           peer's queue full (Send gave
//                                           kResourceExhausted: the bytes
//                                           bound) and waited for room
//   connect_and_auth_ms                     a new node: connect, handshake,
//                                           locate, first message and reply
//   remote_deliver_round_trips_per_s        co_await task.Deliver(payload) on
//                                           a task of the other process (tcp):
//                                           each returns once the remote
//                                           mailbox took it; one outstanding
//   remote_fanout_messages_per_s            one task sends 64-byte payloads
//                                           round robin to 100 tasks of the
//                                           other process, counted when
//                                           received there
//   remote_channel_deliveries_per_s         a channel of the other process
//                                           broadcasts 64-byte payloads to 100
//                                           subscriber tasks of this process,
//                                           each delivery counted when
//                                           received
//   floor_remote_round_trips_per_s          a bare libuv client process and a
//                                           bare libuv echo server process
//                                           exchanging the same 64 bytes over
//                                           tcp, each blocking in the kernel
//                                           for every event
//   floor_polling_remote_round_trips_per_s  the same with both polling for
//                                           50 us after every event before
//                                           they block (always: the most
//                                           polling can give libuv)
//   remote_pingpong_of_polling_floor,       ping-pong over the polling floor,
//   remote_pingpong_sleeping_of_floor       and the sleeping ping-pong over
//                                           the blocking floor: like with like
//   remote_pingpong_of_floor,               the median over --rounds rounds of
//   remote_deliver_of_floor                 the round's figure over the round's
//                                           floor: each round measures the
//                                           floors, then the ping-pongs, then
//                                           deliver (round_trips / rounds
//                                           each), so that a figure and its
//                                           floor see the same load; the
//                                           rates printed are medians of the
//                                           rounds too
//
// The server processes are forked before this process starts any loop or
// thread, and killed (by their pids) at the end. --figures=oneway,fanout
// measures only those (with the floor), e.g. under perf.
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/channel.h"
#include "core/kernel/log.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "testing/bench/figures.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, round_trips, 20000, "round trips per figure");
ABSL_FLAG(int, rounds, 5,
          "rounds of floor, ping-pong and deliver, interleaved (1..100): each figure is the median of its rounds");
ABSL_FLAG(std::vector<std::string>, figures, {},
          "names of the figures to measure (floor, pingpong, unix_pingpong, oneway, connect, "
          "deliver, fanout, channel), for profiling one; empty: all");

namespace picos::testing {
namespace {

constexpr size_t kMessage = 64;
// Receivers of the fan-out figure, subscribers of the channel figure.
constexpr int kFanOut = 100;
// Every wait of a figure: only a hang reaches it.
constexpr absl::Duration kDeadline = absl::Seconds(60);

// A flooding sender's rule: kResourceExhausted says the peer's queue is
// full (NodeOptions::max_queued_bytes), so the sender waits for room and
// sends the same message again (SendWhenRoom, up to kDeadline). Only this
// slow path costs a coroutine; each time is counted in paced_waits.
int64_t paced_waits = 0;
Task<absl::Status> WaitForRoom(TaskRef to, Value message) {
  ++paced_waits;
  co_return co_await SendWhenRoom(std::move(to), std::move(message), kDeadline);
}
constexpr char kSecret[] = "remote_bench shared secret, not for production";

// --- the floor: bare libuv, two processes ---

// The floor's polling twin polls this long after each event before it
// blocks: picos's default Scheduler::Options::poll_before_sleep, but
// always, where picos polls only while traffic comes back that quickly.
constexpr uint64_t kFloorPollNs = 50'000;

// Runs `loop` until nothing is left: blocking in the kernel for each event,
// or (`poll`) first polling for kFloorPollNs after each one (`*events`
// counts them).
void RunFloorLoop(uv_loop_t* loop, bool poll, const uint64_t* events) {
  if (!poll) {
    uv_run(loop, UV_RUN_DEFAULT);
    return;
  }
  for (;;) {
    const uint64_t seen = *events;
    const uint64_t until = uv_hrtime() + kFloorPollNs;
    while (*events == seen && uv_hrtime() < until) {
      if (uv_run(loop, UV_RUN_NOWAIT) == 0) return;
    }
    if (*events == seen && uv_run(loop, UV_RUN_ONCE) == 0) return;
  }
}

struct FloorServer {
  uv_loop_t loop;
  uv_tcp_t listener;
  uint64_t events = 0;
  char buf[64 * 1024];
};

struct FloorWrite {
  uv_write_t req;
  char data[64 * 1024];
};

// The child: echoes everything on each connection, one after another (a
// round each), until it is killed; polling before it sleeps or not.
[[noreturn]] void FloorServe(int listen_fd, bool poll) {
  auto* f = new FloorServer;
  uv_loop_init(&f->loop);
  uv_tcp_init(&f->loop, &f->listener);
  f->listener.data = f;
  uv_tcp_open(&f->listener, listen_fd);
  uv_listen(reinterpret_cast<uv_stream_t*>(&f->listener), 16, [](uv_stream_t* l, int) {
    auto* fs = static_cast<FloorServer*>(l->data);
    auto* conn = new uv_tcp_t;  // freed when closed
    uv_tcp_init(&fs->loop, conn);
    conn->data = fs;
    uv_accept(l, reinterpret_cast<uv_stream_t*>(conn));
    uv_tcp_nodelay(conn, 1);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(conn),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
          *b = uv_buf_init(static_cast<FloorServer*>(h->data)->buf, sizeof(FloorServer::buf));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
          if (n < 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(s),
                     [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
            return;
          }
          ++static_cast<FloorServer*>(s->data)->events;
          auto* w = new FloorWrite;
          std::memcpy(w->data, b->base, n);
          uv_buf_t out = uv_buf_init(w->data, static_cast<unsigned>(n));
          uv_write(&w->req, s, &out, 1, [](uv_write_t* r, int) { delete reinterpret_cast<FloorWrite*>(r); });
        });
  });
  RunFloorLoop(&f->loop, poll, &f->events);
  _exit(0);
}

struct FloorClient {
  uv_loop_t loop;
  uv_tcp_t client;
  uv_connect_t connect;
  char buf[64 * 1024];
  std::string msg = std::string(kMessage, 'p');
  int remaining = 0;
  size_t pending = 0;
  uint64_t events = 0;
};

void FloorSend(FloorClient* f) {
  auto* w = new uv_write_t;
  uv_buf_t b = uv_buf_init(f->msg.data(), kMessage);
  f->pending = kMessage;
  uv_write(w, reinterpret_cast<uv_stream_t*>(&f->client), &b, 1, [](uv_write_t* w, int) { delete w; });
}

double FloorRoundTripsPerS(int port, int count, bool poll) {
  auto f = std::make_unique<FloorClient>();
  uv_loop_init(&f->loop);
  uv_tcp_init(&f->loop, &f->client);
  f->client.data = f.get();
  uv_tcp_nodelay(&f->client, 1);
  f->remaining = count;
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_connect(&f->connect, &f->client, reinterpret_cast<sockaddr*>(&addr), [](uv_connect_t* c, int st) {
    auto* fl = static_cast<FloorClient*>(c->handle->data);
    if (st < 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(c->handle), nullptr);
      return;
    }
    uv_read_start(
        c->handle,
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
          *b = uv_buf_init(static_cast<FloorClient*>(h->data)->buf, sizeof(FloorClient::buf));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
          auto* fl = static_cast<FloorClient*>(s->data);
          ++fl->events;
          if (n <= 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
            return;
          }
          fl->pending -= n;
          if (fl->pending > 0) return;
          if (--fl->remaining == 0) {
            uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
            return;
          }
          FloorSend(fl);
        });
    FloorSend(fl);
  });
  absl::Time start = absl::Now();
  RunFloorLoop(&f->loop, poll, &f->events);
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  uv_loop_close(&f->loop);
  if (f->remaining != 0) return -1;
  return count / secs;
}

// --- picos peers ---

Task<int64_t> Echo() {
  int64_t n = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok() || !msg->is_map()) co_return n;
    TaskRef to = (*msg)["r"].as_task();
    (void)to.Send((*msg)["p"]);
    ++n;
  }
}

// CPU seconds (user and system) this process has used so far: per-message
// costs read this way hold however busy the machine is, where a rate does
// not.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Counts messages; answers {"done": handle} with the count so far, and
// {"cpu": handle} with CpuSeconds() of its process.
Task<int64_t> Sink() {
  int64_t n = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return n;
    if (msg->is_map()) {
      if (const Value* done = msg->Find("done"); done != nullptr && done->is_task()) {
        (void)done->as_task().Send(Value(n));
        n = 0;
        continue;
      }
      if (const Value* cpu = msg->Find("cpu"); cpu != nullptr && cpu->is_task()) {
        (void)cpu->as_task().Send(Value(CpuSeconds()));
        continue;
      }
    }
    ++n;
  }
}

// Broadcasts on `channel`: each {"publish": n} from a peer makes n
// broadcasts of a 64-byte payload, the first once kFanOut subscribers are
// there (so the peer's subscriptions, in flight, all count).
Task<int64_t> Publisher(Channel channel) {
  const Value payload(std::string(kMessage, 'c'));
  int64_t published = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return published;
    const int64_t n = msg->GetOr<int64_t>("publish", 0);
    if (n <= 0 || n > 10'000'000) {
      std::fprintf(stderr, "remote_bench: publisher: bad request %s\n", msg->DebugString().c_str());
      continue;
    }
    absl::StatusOr<size_t> first = co_await channel.Deliver(payload, kFanOut, kDeadline);
    if (!first.ok()) {
      std::fprintf(stderr, "remote_bench: publisher: %s\n", first.status().ToString().c_str());
      continue;
    }
    // Each broadcast must reach all kFanOut subscribers (one weighted sink
    // of the peer): a sink whose peer's queue is full refuses it, and the
    // publisher waits a little and broadcasts it again.
    for (int64_t i = 1; i < n; ++i) {
      if (i % 64 == 0) co_await Yield();  // lets the writer run
      absl::StatusOr<size_t> reached = co_await channel.Deliver(payload, kFanOut, kDeadline);
      for (int waited_ms = 0; reached.ok() && *reached < kFanOut && waited_ms < 60'000; ++waited_ms) {
        co_await Sleep(absl::Milliseconds(1));
        reached = co_await channel.Deliver(payload, kFanOut, kDeadline);
      }
      if (!reached.ok() || *reached < kFanOut) {
        std::fprintf(stderr, "remote_bench: publisher: %s\n",
                     reached.ok() ? "a broadcast reached too few" : reached.status().ToString().c_str());
        break;
      }
    }
    published += n;
  }
}

Task<absl::Status> PeerServe(std::string listen, int out_fd);

// A server process's main: PeerServe on a scheduler that polls before it
// sleeps (the default) or not.
int PeerServeMain(const char* program, std::string listen, int out_fd, bool poll) {
  // Every figure's client comes and goes (the connect figure 50 times):
  // the server's info lines about peers leaving would bury the figures.
  if (std::getenv("PICOS_LOG_LEVEL") == nullptr) Log().set_level(spdlog::level::warn);
  Scheduler::Options options;
  options.name = program;
  if (!poll) options.poll_before_sleep = absl::ZeroDuration();
  Scheduler s(std::move(options));
  absl::StatusOr<Value> r = s.RunUntil(s.Spawn(PeerServe, std::move(listen), out_fd));
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, r.status().ToString().c_str());
    return 1;
  }
  return 0;
}

Task<absl::Status> PeerServe(std::string listen, int out_fd) {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.listen = {listen};
  o.name = "bench-echo";
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  PICOS_CO_RETURN_IF_ERROR(RegisterTask("echo", echo));
  TaskRef sink = ThisScheduler().SpawnNamed("sink", Sink);
  PICOS_CO_RETURN_IF_ERROR(RegisterTask("sink", sink));
  for (int i = 0; i < kFanOut; ++i) {
    const std::string name = absl::StrCat("fan_", i);
    PICOS_CO_RETURN_IF_ERROR(RegisterTask(name, ThisScheduler().SpawnNamed(name, Sink)));
  }
  Channel channel = Channel::Create("bench_channel");
  PICOS_CO_RETURN_IF_ERROR(RegisterChannel(channel));
  PICOS_CO_RETURN_IF_ERROR(RegisterTask("publisher", ThisScheduler().SpawnNamed("publisher", Publisher, channel)));
  std::string uri = (*node)->uris()[0] + "\n";
  (void)!write(out_fd, uri.data(), uri.size());
  close(out_fd);
  (void)co_await echo.Join();
  co_return absl::OkStatus();
}

// The CPU microseconds per round trip of this (the client's) process in the
// last PingPong.
double pingpong_cpu_us = -1;

Task<absl::StatusOr<double>> PingPong(std::string uri, int count) {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.name = "bench-client";
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  absl::StatusOr<TaskRef> echo = co_await LocateTask("echo", Location::Peer(uri), absl::Seconds(30));
  if (!echo.ok()) co_return echo.status();
  const Value payload(std::string(kMessage, 'p'));
  auto round = [&](int n) -> Task<absl::Status> {
    for (int i = 0; i < n; ++i) {
      PICOS_CO_RETURN_IF_ERROR(echo->Send(Value::Map({{"r", Self()}, {"p", payload}})));
      absl::StatusOr<Value> r = co_await Receive(absl::Seconds(30));
      if (!r.ok()) co_return r.status();
    }
    co_return absl::OkStatus();
  };
  PICOS_CO_RETURN_IF_ERROR(co_await round(count / 10));  // warm up
  const double cpu = CpuSeconds();
  absl::Time start = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(co_await round(count));
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  pingpong_cpu_us = (CpuSeconds() - cpu) * 1e6 / count;
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());  // leaves cleanly, untimed
  co_return count / secs;
}

// What OneWay measured besides its rate: CPU microseconds per message in
// the sending and in the receiving process.
double oneway_sender_cpu_us = -1;
double oneway_receiver_cpu_us = -1;

// The CPU seconds of the sink's process.
Task<absl::StatusOr<double>> SinkCpu(TaskRef sink) {
  PICOS_CO_RETURN_IF_ERROR(sink.Send(Value::Map({{"cpu", Self()}})));
  absl::StatusOr<Value> got = co_await Receive(kDeadline);
  if (!got.ok()) co_return got.status();
  if (!got->is_double()) co_return absl::DataLossError(absl::StrCat("the sink's cpu: ", got->DebugString()));
  co_return got->as_double();
}

// One-way: `count` payloads in bursts (the writer sends each burst while
// the sender yields), then a "done" that comes back with the count.
Task<absl::StatusOr<double>> OneWay(std::string uri, int count) {
  remote::NodeOptions o;
  o.secret = kSecret;
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  absl::StatusOr<TaskRef> sink = co_await LocateTask("sink", Location::Peer(uri), absl::Seconds(30));
  if (!sink.ok()) co_return sink.status();
  const Value payload(std::string(kMessage, 'p'));
  constexpr int kBurst = 256;
  absl::StatusOr<double> receiver_cpu = co_await SinkCpu(*sink);
  if (!receiver_cpu.ok()) co_return receiver_cpu.status();
  const double sender_cpu = CpuSeconds();
  absl::Time start = absl::Now();
  for (int sent = 0; sent < count;) {
    for (int i = 0; i < kBurst && sent < count; ++i, ++sent) {
      absl::Status s = sink->Send(payload);
      if (absl::IsResourceExhausted(s)) s = co_await WaitForRoom(*sink, payload);
      PICOS_CO_RETURN_IF_ERROR(s);
    }
    co_await Yield();
  }
  PICOS_CO_RETURN_IF_ERROR(sink->Send(Value::Map({{"done", Self()}})));
  absl::StatusOr<Value> got = co_await Receive(kDeadline);
  if (!got.ok()) co_return got.status();
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  oneway_sender_cpu_us = (CpuSeconds() - sender_cpu) * 1e6 / count;
  if (*got != Value(count)) co_return absl::DataLossError(absl::StrCat("the sink counted ", got->DebugString()));
  absl::StatusOr<double> receiver_cpu_after = co_await SinkCpu(*sink);
  if (!receiver_cpu_after.ok()) co_return receiver_cpu_after.status();
  oneway_receiver_cpu_us = (*receiver_cpu_after - *receiver_cpu) * 1e6 / count;
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());  // leaves cleanly, untimed
  co_return count / secs;
}

// A fresh node each time: connect, authenticate, locate, one message and
// its reply. Milliseconds each, averaged. Each node then leaves cleanly
// (untimed), as a program should, so that the server sees peers that left,
// not peers lost.
Task<absl::StatusOr<double>> ConnectAndAuth(std::string uri, int times) {
  absl::Duration total;
  for (int i = 0; i < times; ++i) {
    const absl::Time start = absl::Now();
    remote::NodeOptions o;
    o.secret = kSecret;
    absl::StatusOr<std::unique_ptr<remote::Node>> node =
        co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
    if (!node.ok()) co_return node.status();
    absl::StatusOr<TaskRef> echo = co_await LocateTask("echo", Location::Peer(uri), absl::Seconds(30));
    if (!echo.ok()) co_return echo.status();
    PICOS_CO_RETURN_IF_ERROR(echo->Send(Value::Map({{"r", Self()}, {"p", "hi"}})));
    absl::StatusOr<Value> r = co_await Receive(absl::Seconds(30));
    if (!r.ok()) co_return r.status();
    total += absl::Now() - start;
    PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());
  }
  co_return absl::ToDoubleMilliseconds(total) / times;
}

// Acknowledged sends: each co_await Deliver returns once the sink's mailbox
// took the payload; then a "done" checks the sink counted every one.
Task<absl::StatusOr<double>> DeliverRoundTrips(std::string uri, int count) {
  remote::NodeOptions o;
  o.secret = kSecret;
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  absl::StatusOr<TaskRef> sink = co_await LocateTask("sink", Location::Peer(uri), kDeadline);
  if (!sink.ok()) co_return sink.status();
  const Value payload(std::string(kMessage, 'd'));
  const int warm = count / 10;
  absl::Time start;
  for (int i = 0; i < warm + count; ++i) {
    if (i == warm) start = absl::Now();
    absl::Status s = co_await sink->Deliver(payload, kDeadline);
    if (!s.ok()) co_return s;
  }
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  PICOS_CO_RETURN_IF_ERROR(sink->Send(Value::Map({{"done", Self()}})));
  absl::StatusOr<Value> got = co_await Receive(kDeadline);
  if (!got.ok()) co_return got.status();
  if (*got != Value(warm + count)) co_return absl::DataLossError(absl::StrCat("the sink counted ", got->DebugString()));
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());  // leaves cleanly, untimed
  co_return count / secs;
}

// One sender, kFanOut receivers of the other process, round robin in bursts
// (as OneWay); then a "done" to each, whose answers (their counts, sent
// after every payload they received) must add up to `count`.
Task<absl::StatusOr<double>> FanOut(std::string uri, int count) {
  remote::NodeOptions o;
  o.secret = kSecret;
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  std::vector<TaskRef> fans;
  for (int i = 0; i < kFanOut; ++i) {
    absl::StatusOr<TaskRef> fan = co_await LocateTask(absl::StrCat("fan_", i), Location::Peer(uri), kDeadline);
    if (!fan.ok()) co_return fan.status();
    fans.push_back(*fan);
  }
  const Value payload(std::string(kMessage, 'f'));
  constexpr int kBurst = 256;
  absl::Time start = absl::Now();
  for (int sent = 0; sent < count;) {
    for (int i = 0; i < kBurst && sent < count; ++i, ++sent) {
      absl::Status s = fans[sent % kFanOut].Send(payload);
      if (absl::IsResourceExhausted(s)) s = co_await WaitForRoom(fans[sent % kFanOut], payload);
      PICOS_CO_RETURN_IF_ERROR(s);
    }
    co_await Yield();
  }
  for (const TaskRef& fan : fans) PICOS_CO_RETURN_IF_ERROR(fan.Send(Value::Map({{"done", Self()}})));
  int64_t received = 0;
  for (int i = 0; i < kFanOut; ++i) {
    absl::StatusOr<Value> got = co_await Receive(kDeadline);
    if (!got.ok()) co_return got.status();
    if (!got->is_int()) co_return absl::DataLossError(absl::StrCat("a receiver answered ", got->DebugString()));
    received += got->as_int();
  }
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  if (received != count) co_return absl::DataLossError(absl::StrCat("the receivers counted ", received));
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());  // leaves cleanly, untimed
  co_return count / secs;
}

// A subscriber of the channel figure: receives `n` broadcasts, then tells
// `report` how many it got (fewer only if its wait ran out).
Task<int64_t> Subscriber(int64_t n, TaskRef report) {
  int64_t got = 0;
  for (; got < n; ++got) {
    absl::StatusOr<Value> msg = co_await Receive(kDeadline);
    if (!msg.ok()) break;
  }
  (void)report.Send(Value(got));
  co_return got;
}

// kFanOut tasks of this process subscribe to the other process's channel;
// its publisher broadcasts `per_subscriber` payloads; timed until every
// subscriber has received all of them.
Task<absl::StatusOr<double>> ChannelDeliveries(std::string uri, int per_subscriber) {
  remote::NodeOptions o;
  o.secret = kSecret;
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  absl::StatusOr<ChannelRef> ch = co_await LocateChannel("bench_channel", Location::Peer(uri), kDeadline);
  if (!ch.ok()) co_return ch.status();
  absl::StatusOr<TaskRef> publisher = co_await LocateTask("publisher", Location::Peer(uri), kDeadline);
  if (!publisher.ok()) co_return publisher.status();
  Channel channel(*ch);
  std::vector<TaskRef> subscribers;
  for (int i = 0; i < kFanOut; ++i) {
    TaskRef t = ThisScheduler().Spawn(Subscriber, int64_t{per_subscriber}, Self());
    PICOS_CO_RETURN_IF_ERROR(channel.Subscribe(t));
    subscribers.push_back(t);
  }
  absl::Time start = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(publisher->Send(Value::Map({{"publish", int64_t{per_subscriber}}})));
  int64_t received = 0;
  for (int i = 0; i < kFanOut; ++i) {
    absl::StatusOr<Value> got = co_await Receive(kDeadline);
    if (!got.ok()) co_return got.status();
    if (!got->is_int()) co_return absl::DataLossError(absl::StrCat("a subscriber said ", got->DebugString()));
    received += got->as_int();
  }
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  for (const TaskRef& t : subscribers) (void)channel.Unsubscribe(t);
  const int64_t expected = int64_t{per_subscriber} * kFanOut;
  if (received != expected) {
    co_return absl::DataLossError(absl::StrCat("the subscribers received ", received, " of ", expected));
  }
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());  // leaves cleanly, untimed
  co_return expected / secs;
}

// Forks a server process that runs `serve`; gives its pid and the first
// line it wrote (its address).
template <typename F>
pid_t Fork(F serve, std::string* line) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    serve(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) {
    line->append(buf, n);
    if (line->find('\n') != std::string::npos) break;
  }
  close(fds[0]);
  if (auto nl = line->find('\n'); nl != std::string::npos) line->resize(nl);
  return pid;
}

// Ends a server this process forked: SIGTERM first, so that a profiler it
// runs under (valgrind --tool=callgrind) writes its profile, then SIGKILL
// if it is still there after 10 s.
void Reap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 1000; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    usleep(10'000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// A floor server process, blocking or polling; its port, or -1.
int StartFloor(bool poll, pid_t* pid) {
  int listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (listen_fd < 0 || bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    std::fprintf(stderr, "remote_bench: no socket for the floor\n");
    if (listen_fd >= 0) close(listen_fd);
    return -1;
  }
  std::string ignored;
  *pid = Fork([listen_fd, poll](int out) {
    close(out);
    FloorServe(listen_fd, poll);
  }, &ignored);
  close(listen_fd);
  return ntohs(a.sin_port);
}

int Main(int count) {
  // Every server first, while this process has no loop or thread.
  pid_t floor_pid = -1, polling_floor_pid = -1;
  const int port = StartFloor(false, &floor_pid);
  const int polling_port = StartFloor(true, &polling_floor_pid);
  if (port < 0 || polling_port < 0) {
    Reap(floor_pid);
    Reap(polling_floor_pid);
    return 1;
  }
  std::string tcp_uri, sleeping_uri, unix_uri;
  pid_t tcp_pid = Fork([](int out) { _exit(PeerServeMain("remote_bench-tcp", "tcp://127.0.0.1:0", out, true)); },
                       &tcp_uri);
  pid_t sleeping_pid = Fork(
      [](int out) { _exit(PeerServeMain("remote_bench-sleeping", "tcp://127.0.0.1:0", out, false)); },
      &sleeping_uri);
  const std::string unix_listen = absl::StrCat("unix://@picos-remote-bench-", getpid());
  pid_t unix_pid = Fork([&](int out) { _exit(PeerServeMain("remote_bench-unix", unix_listen, out, true)); },
                        &unix_uri);

  const std::vector<std::string> only = absl::GetFlag(FLAGS_figures);
  auto wanted = [&](const char* name) { return only.empty() || absl::c_linear_search(only, name); };
  int status = 0;
  const int rounds = absl::GetFlag(FLAGS_rounds);  // 1..100, checked in main
  Scheduler s;
  // The client of the sleeping figures: no polling either.
  Scheduler sleeping([] {
    Scheduler::Options o;
    o.name = "sleeping";
    o.poll_before_sleep = absl::ZeroDuration();
    return o;
  }());
  auto measure_on = [&](Scheduler& on, const std::string& uri, auto fn, int n) -> double {
    TaskRef t = on.Spawn(fn, uri, n);
    absl::StatusOr<Value> r = on.RunUntil(t);
    if (!r.ok()) {
      std::fprintf(stderr, "remote_bench: %s: %s\n", uri.c_str(), r.status().ToString().c_str());
      status = 1;
      return -1;
    }
    return r->as_double();
  };
  auto measure = [&](const std::string& uri, auto fn, int n) -> double { return measure_on(s, uri, fn, n); };
  auto tcp_figure = [&](const char* name, auto fn, int n) -> double {
    return !tcp_uri.empty() && wanted(name) ? measure(tcp_uri, fn, n) : -1;
  };
  // The floors, ping-pong (polling before sleep and not) and deliver in
  // turn, a round at a time; medians.
  std::vector<double> floors, polling_floors, tcps, sleeping_tcps, delivers, tcp_ratios, polling_ratios,
      sleeping_ratios, deliver_ratios, tcp_cpus, sleeping_cpus;
  const bool any_round = wanted("floor") || wanted("pingpong") || wanted("deliver");
  for (int r = 0; any_round && r < rounds; ++r) {
    const int n = std::max(1, count / rounds);
    const double f = wanted("floor") ? FloorRoundTripsPerS(port, n, false) : -1;
    const double pf = wanted("floor") ? FloorRoundTripsPerS(polling_port, n, true) : -1;
    const double t = tcp_figure("pingpong", PingPong, n);
    const double t_cpu = pingpong_cpu_us;
    const double st =
        !sleeping_uri.empty() && wanted("pingpong") ? measure_on(sleeping, sleeping_uri, PingPong, n) : -1;
    const double st_cpu = pingpong_cpu_us;
    const double d = tcp_figure("deliver", DeliverRoundTrips, n);
    std::fprintf(stderr,
                 "remote_bench: round %d: floor %.0f (polling %.0f), pingpong %.0f (sleeping %.0f), deliver %.0f "
                 "round trips/s\n",
                 r + 1, f, pf, t, st, d);
    floors.push_back(f);
    polling_floors.push_back(pf);
    tcps.push_back(t);
    sleeping_tcps.push_back(st);
    delivers.push_back(d);
    if (t > 0) tcp_cpus.push_back(t_cpu);
    if (st > 0) sleeping_cpus.push_back(st_cpu);
    if (f > 0 && t > 0) tcp_ratios.push_back(t / f);
    if (pf > 0 && t > 0) polling_ratios.push_back(t / pf);
    if (f > 0 && st > 0) sleeping_ratios.push_back(st / f);
    if (f > 0 && d > 0) deliver_ratios.push_back(d / f);
  }
  auto median = [](std::vector<double> v) -> double {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double floor = median(floors);
  const double polling_floor = median(polling_floors);
  const double sleeping_tcp = median(sleeping_tcps);
  const double tcp = median(tcps);
  const double deliver = median(delivers);
  double unix_rt = !unix_uri.empty() && wanted("unix_pingpong") ? measure(unix_uri, PingPong, count) : -1;
  double oneway = tcp_figure("oneway", OneWay, count * 25);
  const int64_t oneway_waits = paced_waits;
  double connect_ms = tcp_figure("connect", ConnectAndAuth, 50);
  double fanout = tcp_figure("fanout", FanOut, count * 5);
  double channel = tcp_figure("channel", ChannelDeliveries, count / 10);
  // A figure not asked for (--figures) is not printed; one that failed
  // prints -1 (and the exit status is 1).
  auto print = [&](const char* figure, const char* name, double value, const char* unit) {
    if (wanted(figure)) PrintFigure(name, value, unit);
  };
  print("pingpong", "remote_pingpong_round_trips_per_s", tcp, "round trips/s");
  print("pingpong", "remote_pingpong_sleeping_round_trips_per_s", sleeping_tcp, "round trips/s");
  print("pingpong", "remote_pingpong_client_cpu_per_round_trip", median(tcp_cpus), "us");
  print("pingpong", "remote_pingpong_sleeping_client_cpu_per_round_trip", median(sleeping_cpus), "us");
  print("unix_pingpong", "unix_remote_pingpong_round_trips_per_s", unix_rt, "round trips/s");
  print("oneway", "remote_oneway_messages_per_s", oneway, "messages/s");
  print("oneway", "remote_oneway_sender_cpu_per_message", oneway_sender_cpu_us, "us");
  print("oneway", "remote_oneway_receiver_cpu_per_message", oneway_receiver_cpu_us, "us");
  print("oneway", "remote_oneway_waits_for_room", static_cast<double>(oneway_waits), "waits");
  print("connect", "connect_and_auth_ms", connect_ms, "ms");
  print("deliver", "remote_deliver_round_trips_per_s", deliver, "round trips/s");
  print("fanout", "remote_fanout_messages_per_s", fanout, "messages/s");
  print("channel", "remote_channel_deliveries_per_s", channel, "deliveries/s");
  print("floor", "floor_remote_round_trips_per_s", floor, "round trips/s");
  print("floor", "floor_polling_remote_round_trips_per_s", polling_floor, "round trips/s");
  if (!tcp_ratios.empty()) PrintFigure("remote_pingpong_of_floor", median(tcp_ratios), "x");
  if (!polling_ratios.empty()) PrintFigure("remote_pingpong_of_polling_floor", median(polling_ratios), "x");
  if (!sleeping_ratios.empty()) PrintFigure("remote_pingpong_sleeping_of_floor", median(sleeping_ratios), "x");
  if (!deliver_ratios.empty()) PrintFigure("remote_deliver_of_floor", median(deliver_ratios), "x");
  Reap(floor_pid);
  Reap(polling_floor_pid);
  Reap(tcp_pid);
  Reap(sleeping_pid);
  Reap(unix_pid);
  return status;
}

}  // namespace
}  // namespace picos::testing

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Remote-layer figures between two processes, beside a bare-libuv floor.");
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_round_trips, 100, 10'000'000) || !picos::FlagInRange(FLAGS_rounds, 1, 100)) return 2;
  return picos::testing::Main(absl::GetFlag(FLAGS_round_trips));
}
