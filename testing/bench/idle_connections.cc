#include "testing/bench/idle_connections.h"

#include <malloc.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <uv.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "testing/bench/figures.h"
#include "transports/default_transports.h"
#include "transports/tls/tls_session.h"

namespace picos::testing {
namespace {

// What the forked children read (InChild passes one integer).
struct IdleConfig {
  std::string tls_listen_uri;
  std::string tls_client_query;
  std::string ca, cert, key;
};
const IdleConfig* g_config = nullptr;

int64_t TrimmedRss() {
  malloc_trim(0);
  return CurrentRssBytes();
}

// --- picos ---

// An application's reader: a small buffer of its own, waiting for data.
Task<> IdleReader(Stream* s) {
  char buf[64];
  (void)co_await s->ReadSome(buf, 1, sizeof buf);
}

// Opens one connection, sends a message each way, and leaves a reader
// waiting on each end.
struct Idle {
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<TaskRef> readers;
};

Task<absl::Status> OpenIdle(const TransportRegistry& r, Listener* l, std::string client_uri,
                            Idle* keep) {
  auto accepted = std::make_shared<absl::StatusOr<std::unique_ptr<Stream>>>(
      absl::UnknownError("not accepted"));
  auto accept = [l, accepted]() -> Task<> { *accepted = co_await l->Accept(absl::Seconds(30)); };
  TaskRef acceptor = ThisScheduler().Spawn(accept);
  absl::StatusOr<std::unique_ptr<Stream>> c = co_await r.Connect(client_uri, absl::Seconds(30));
  (void)co_await acceptor.Join();
  PICOS_CO_RETURN_IF_ERROR(c.status());
  PICOS_CO_RETURN_IF_ERROR(accepted->status());
  Stream* client = c->get();
  Stream* server = accepted->value().get();
  char buf[4];
  PICOS_CO_RETURN_IF_ERROR(co_await client->Write("ping"));
  PICOS_CO_RETURN_IF_ERROR((co_await server->ReadSome(buf, 4, 4, absl::Seconds(30))).status());
  PICOS_CO_RETURN_IF_ERROR(co_await server->Write("pong"));
  PICOS_CO_RETURN_IF_ERROR((co_await client->ReadSome(buf, 4, 4, absl::Seconds(30))).status());
  keep->streams.push_back(*std::move(c));
  keep->streams.push_back(*std::move(*accepted));
  keep->readers.push_back(ThisScheduler().Spawn(IdleReader, client));
  keep->readers.push_back(ThisScheduler().Spawn(IdleReader, server));
  co_return absl::OkStatus();
}

Task<absl::Status> MeasureIdle(std::string listen_uri, std::string client_query, int64_t n,
                               double* out) {
  Idle idle;
  Idle* keep = &idle;
  const TransportRegistry& r = transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Listener> l, co_await r.Listen(listen_uri));
  const std::string client_uri = l->address() + client_query;
  // Warm-up: whatever a first connection sets up once per process or
  // thread (contexts, caches) is not a per-connection cost.
  for (int i = 0; i < 4; ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await OpenIdle(r, l.get(), client_uri, keep));
  }
  co_await Sleep(absl::Milliseconds(20));
  const int64_t before = TrimmedRss();
  for (int64_t i = 0; i < n; ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await OpenIdle(r, l.get(), client_uri, keep));
  }
  // Every reader reaches its wait.
  co_await Sleep(absl::Milliseconds(50));
  const int64_t after = TrimmedRss();
  *out = static_cast<double>(after - before) / static_cast<double>(n);
  for (const TaskRef& t : idle.readers) (void)t.Terminate();
  for (const TaskRef& t : idle.readers) (void)co_await t.Join();
  idle.streams.clear();
  co_return absl::OkStatus();
}

double PicosIdle(const std::string& listen_uri, const std::string& query, int64_t n) {
  double out = -1;
  Scheduler s;
  TaskRef t = s.Spawn(MeasureIdle, listen_uri, query, n, &out);
  absl::StatusOr<Value> v = s.RunUntil(t);
  if (!v.ok()) {
    std::fprintf(stderr, "idle connections over %s: %s\n", listen_uri.c_str(),
                 v.status().ToString().c_str());
    return -1;
  }
  return out;
}

double TcpIdleBytes(int64_t n) { return PicosIdle("tcp://127.0.0.1:0", "", n); }

double TlsIdleBytes(int64_t n) {
  return PicosIdle(g_config->tls_listen_uri, g_config->tls_client_query, n);
}

// --- the floor: bare libuv, and bare BoringSSL sessions ---

// One buffer for every read of the loop, the least a libuv program needs.
char g_read_buf[64 * 1024];
char g_ping[] = "ping";

struct FloorConn {
  uv_tcp_t client;
  uv_tcp_t server;
  uv_connect_t connect;
  bool client_got = false;
  bool server_got = false;
};

struct FloorNet {
  uv_loop_t loop;
  uv_tcp_t listener;
  std::vector<std::unique_ptr<FloorConn>> conns;
  size_t accepted = 0;
};

void FloorAlloc(uv_handle_t*, size_t, uv_buf_t* b) {
  *b = uv_buf_init(g_read_buf, sizeof g_read_buf);
}

void FloorWrite(uv_stream_t* s) {
  auto* w = new uv_write_t;
  uv_buf_t b = uv_buf_init(g_ping, 4);
  uv_write(w, s, &b, 1, [](uv_write_t* req, int) { delete req; });
}

bool OpenFloorConnections(FloorNet* net, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    auto conn = std::make_unique<FloorConn>();
    FloorConn* c = conn.get();
    net->conns.push_back(std::move(conn));
    uv_tcp_init(&net->loop, &c->client);
    c->client.data = c;
    sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&net->listener, reinterpret_cast<sockaddr*>(&bound), &len);
    int rc = uv_tcp_connect(&c->connect, &c->client, reinterpret_cast<sockaddr*>(&bound),
                            [](uv_connect_t* req, int status) {
                              if (status < 0) return;
                              uv_read_start(req->handle, FloorAlloc,
                                            [](uv_stream_t* s, ssize_t got, const uv_buf_t*) {
                                              if (got > 0) static_cast<FloorConn*>(s->data)->client_got = true;
                                            });
                              FloorWrite(req->handle);
                            });
    if (rc < 0) return false;
    for (int turns = 0; !(c->client_got && c->server_got); ++turns) {
      if (turns > 100000) return false;
      uv_run(&net->loop, UV_RUN_ONCE);
    }
  }
  return true;
}

bool StartFloorListener(FloorNet* net) {
  uv_loop_init(&net->loop);
  uv_tcp_init(&net->loop, &net->listener);
  net->listener.data = net;
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  if (uv_tcp_bind(&net->listener, reinterpret_cast<sockaddr*>(&addr), 0) < 0) return false;
  return uv_listen(reinterpret_cast<uv_stream_t*>(&net->listener), 1024,
                   [](uv_stream_t* l, int status) {
                     if (status < 0) return;
                     auto* fn = static_cast<FloorNet*>(l->data);
                     FloorConn* c = fn->conns[fn->accepted++].get();
                     uv_tcp_init(&fn->loop, &c->server);
                     c->server.data = c;
                     uv_accept(l, reinterpret_cast<uv_stream_t*>(&c->server));
                     uv_read_start(reinterpret_cast<uv_stream_t*>(&c->server), FloorAlloc,
                                   [](uv_stream_t* s, ssize_t got, const uv_buf_t*) {
                                     if (got <= 0) return;
                                     static_cast<FloorConn*>(s->data)->server_got = true;
                                     FloorWrite(s);
                                   });
                   }) == 0;
}

double FloorTcpIdleBytes(int64_t n) {
  auto net = std::make_unique<FloorNet>();
  if (!StartFloorListener(net.get())) return -1;
  net->conns.reserve(n + 4);
  if (!OpenFloorConnections(net.get(), 4)) return -1;
  const int64_t before = TrimmedRss();
  if (!OpenFloorConnections(net.get(), n)) return -1;
  const int64_t after = TrimmedRss();
  return static_cast<double>(after - before) / static_cast<double>(n);
}

// Moves what `from` wrote into what `to` reads.
void Shuttle(BIO* from, BIO* to) {
  char buf[16 * 1024];
  int n;
  while ((n = BIO_read(from, buf, sizeof buf)) > 0) BIO_write(to, buf, n);
}

// Two sessions handshaken and one record each way, over memory BIOs that
// are then replaced by empty ones: the TLS state an idle connection needs.
struct FloorTls {
  SSL* client = nullptr;
  SSL* server = nullptr;
  ~FloorTls() {
    SSL_free(client);
    SSL_free(server);
  }
};

bool HandshakeFloorTls(SSL_CTX* cctx, SSL_CTX* sctx, FloorTls* t) {
  t->client = SSL_new(cctx);
  t->server = SSL_new(sctx);
  SSL_set_connect_state(t->client);
  SSL_set_accept_state(t->server);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->client), "127.0.0.1");
  BIO* cr = BIO_new(BIO_s_mem());
  BIO* cw = BIO_new(BIO_s_mem());
  BIO* sr = BIO_new(BIO_s_mem());
  BIO* sw = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(cr, -1);
  BIO_set_mem_eof_return(sr, -1);
  SSL_set_bio(t->client, cr, cw);
  SSL_set_bio(t->server, sr, sw);
  bool client_done = false, server_done = false;
  for (int i = 0; i < 16 && !(client_done && server_done); ++i) {
    if (!client_done) client_done = SSL_do_handshake(t->client) == 1;
    Shuttle(cw, sr);
    if (!server_done) server_done = SSL_do_handshake(t->server) == 1;
    Shuttle(sw, cr);
  }
  if (!(client_done && server_done)) return false;
  char buf[8];
  if (SSL_write(t->client, "ping", 4) != 4) return false;
  Shuttle(cw, sr);
  if (SSL_read(t->server, buf, sizeof buf) != 4) return false;
  if (SSL_write(t->server, "pong", 4) != 4) return false;
  Shuttle(sw, cr);
  // The client also takes the server's session tickets here.
  if (SSL_read(t->client, buf, sizeof buf) != 4) return false;
  for (SSL* ssl : {t->client, t->server}) {
    BIO* r = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r, -1);
    SSL_set_bio(ssl, r, BIO_new(BIO_s_mem()));
  }
  return true;
}

double FloorTlsIdleBytes(int64_t n) {
  absl::StatusOr<std::shared_ptr<const transports::TlsContext>> sctx = transports::TlsContext::Create(
      {.cert_file = g_config->cert, .key_file = g_config->key}, transports::TlsRole::kServer);
  absl::StatusOr<std::shared_ptr<const transports::TlsContext>> cctx =
      transports::TlsContext::Create({.ca_file = g_config->ca}, transports::TlsRole::kClient);
  if (!sctx.ok() || !cctx.ok()) return -1;
  auto* c = static_cast<SSL_CTX*>((*cctx)->raw());
  auto* s = static_cast<SSL_CTX*>((*sctx)->raw());
  auto net = std::make_unique<FloorNet>();
  if (!StartFloorListener(net.get())) return -1;
  net->conns.reserve(n + 4);
  std::vector<std::unique_ptr<FloorTls>> sessions;
  sessions.reserve(n + 4);
  auto open = [&](int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      sessions.push_back(std::make_unique<FloorTls>());
      if (!HandshakeFloorTls(c, s, sessions.back().get())) return false;
    }
    return OpenFloorConnections(net.get(), count);
  };
  if (!open(4)) return -1;
  const int64_t before = TrimmedRss();
  if (!open(n)) return -1;
  const int64_t after = TrimmedRss();
  return static_cast<double>(after - before) / static_cast<double>(n);
}

}  // namespace

void RunIdleConnectionFigures(int64_t count, const std::string& tls_listen_uri,
                              const std::string& tls_client_query, const std::string& ca,
                              const std::string& cert, const std::string& key) {
  static IdleConfig config;
  config = IdleConfig{tls_listen_uri, tls_client_query, ca, cert, key};
  g_config = &config;
  PrintFigure("tcp_idle_connection_bytes", InChild(TcpIdleBytes, count), "bytes");
  PrintFigure("floor_tcp_idle_connection_bytes", InChild(FloorTcpIdleBytes, count), "bytes");
  PrintFigure("tls_idle_connection_bytes", InChild(TlsIdleBytes, count), "bytes");
  PrintFigure("floor_tls_idle_connection_bytes", InChild(FloorTlsIdleBytes, count), "bytes");
}

}  // namespace picos::testing
