// Memory held by idle connections, printed by the transport benchmark:
//
//   tcp_idle_connection_bytes         RSS growth per idle tcp:// connection
//   floor_tcp_idle_connection_bytes   the same with bare libuv
//   tls_idle_connection_bytes         RSS growth per idle tls:// connection
//   floor_tls_idle_connection_bytes   bare libuv plus two bare BoringSSL
//                                     sessions handshaken over memory BIOs
//
// A connection here is both of its ends in one process: a client stream
// and the server stream that accepted it, each with a task (or, for the
// floor, a libuv read) waiting to read, after one message went each way, so
// that every buffer the read and write paths use has been touched. RSS is
// taken after malloc_trim(0), before and after opening `count` connections,
// in a forked child per figure (a fresh heap each time).
#ifndef PICOS_TESTING_BENCH_IDLE_CONNECTIONS_H_
#define PICOS_TESTING_BENCH_IDLE_CONNECTIONS_H_

#include <cstdint>
#include <string>

namespace picos::testing {

// Prints the four figures above. `tls_listen_uri` is a tls:// URI with the
// server's cert= and key=, `tls_client_query` what a client adds to the
// listener's address ("?ca=..."); `ca`, `cert` and `key` the same files for
// the floor.
void RunIdleConnectionFigures(int64_t count, const std::string& tls_listen_uri,
                              const std::string& tls_client_query, const std::string& ca,
                              const std::string& cert, const std::string& key);

}  // namespace picos::testing

#endif  // PICOS_TESTING_BENCH_IDLE_CONNECTIONS_H_
