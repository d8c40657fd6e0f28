// pycos socket_afile.py in picos: a socket used as an asynchronous file.
//
// pycos wraps a socket pair in AsyncFile objects, has a client write a file
// into one end and a server read the other, and prints both SHA-1 sums. In
// picos no wrapping is needed: a Socket (transports/socket.h) and a File
// (core/io/file.h) are both a Reader and a Writer (core/io/io.h), so one generic
// Copy() sends a file over a socket and writes what arrives into another
// file. The program checks the copy three ways: the bytes the client sent,
// the bytes the server received, and the copy read back from disk must all
// have the source's size and SHA-1.
//
//   bazel run //examples:socket_afile                                   # this program's own binary
//   bazel run //examples:socket_afile -- --file=/etc/services --listen=unix
#include <openssl/sha.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/cli/flags.h"
#include "core/io/file.h"
#include "core/io/io.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, file, "", "file to send (default: this program)");
ABSL_FLAG(std::string, out, "",
          "where the server writes what it receives (default: a temporary file, removed at exit)");
ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:0",
          "server address: tcp://127.0.0.1:0 (any free port), unix://@name, or just 'unix' for an "
          "abstract Unix socket named after this process (so parallel runs never collide)");
ABSL_FLAG(int, chunk, 64 * 1024, "bytes per read, 1 to 1048576");

namespace {

using picos::Task;

// The largest file this example copies: a bound on the loop below, as every
// loop over outside input has one.
constexpr int64_t kMaxFile = int64_t{1} << 30;
// Every wait is bounded: a stuck peer fails the run instead of hanging it.
constexpr absl::Duration kTimeout = absl::Seconds(30);

// What went through a Copy: how many bytes, and their SHA-1 in hex.
struct CopyStats {
  int64_t bytes = 0;
  std::string sha1;
};

// Copies `in` to `out` until the end of `in`, `chunk` bytes per read,
// hashing what passes. Works for any pair: file to socket, socket to file,
// file to a sink. kResourceExhausted beyond `limit` bytes.
Task<absl::StatusOr<CopyStats>> Copy(picos::Reader& in, picos::Writer& out, size_t chunk,
                                     int64_t limit) {
  SHA_CTX sha;
  SHA1_Init(&sha);
  CopyStats stats;
  while (true) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string data, co_await in.Read(chunk, kTimeout));
    if (data.empty()) break;  // the end of the stream
    stats.bytes += static_cast<int64_t>(data.size());
    if (stats.bytes > limit) {
      co_return absl::ResourceExhaustedError(absl::StrCat("more than ", limit, " bytes"));
    }
    SHA1_Update(&sha, data.data(), data.size());
    PICOS_CO_RETURN_IF_ERROR(co_await out.Write(std::move(data), kTimeout));
  }
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1_Final(digest, &sha);
  stats.sha1 = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
  co_return stats;
}

// A Writer that keeps nothing: Copy into it just measures and hashes.
class Discard : public picos::Writer {
 public:
  Task<absl::Status> Write(std::string data, absl::Duration timeout) override {
    co_return absl::OkStatus();
  }
};

// The client: sends the file over a new connection, then half-closes so
// that the server reads the end of the stream (pycos closes the AsyncFile).
Task<absl::Status> Client(std::string address, std::string path, size_t chunk,
                          std::shared_ptr<CopyStats> sent) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> in, co_await picos::File::Open(path));
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Socket sock, co_await picos::transports::Socket::Connect(picos::transports::DefaultTransports(), address, kTimeout));
  PICOS_CO_ASSIGN_OR_RETURN(*sent, co_await Copy(*in, sock, chunk, kMaxFile));
  PICOS_CO_RETURN_IF_ERROR(co_await sock.Shutdown(kTimeout));
  std::printf("client: sent %lld bytes of %s, sha1 %s\n", static_cast<long long>(sent->bytes),
              path.c_str(), sent->sha1.c_str());
  co_return co_await in->Close();
}

Task<absl::Status> Main(std::string source, std::string out_path, std::string listen,
                        size_t chunk) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> src, co_await picos::File::Open(source));
  PICOS_CO_ASSIGN_OR_RETURN(int64_t source_size, co_await src->Size());
  PICOS_CO_RETURN_IF_ERROR(co_await src->Close());
  if (source_size > kMaxFile) co_return absl::InvalidArgumentError("--file is larger than 1 GiB");

  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server server, co_await picos::transports::Server::Listen(picos::transports::DefaultTransports(), listen));
  std::printf("server: listening on %s\n", server.address().c_str());
  auto sent = std::make_shared<CopyStats>();
  picos::TaskRef client = picos::ThisScheduler().Spawn(Client, server.address(), source, chunk, sent);

  // The server side: what arrives on the socket goes into a file.
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Socket conn, co_await server.Accept(kTimeout));
  server.Close();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> out,
                            co_await picos::File::Open(out_path, O_WRONLY | O_CREAT | O_TRUNC));
  PICOS_CO_ASSIGN_OR_RETURN(CopyStats received, co_await Copy(conn, *out, chunk, kMaxFile));
  PICOS_CO_RETURN_IF_ERROR(co_await out->Close());  // reports a failed write, if any
  std::printf("server: received %lld bytes, sha1 %s\n", static_cast<long long>(received.bytes),
              received.sha1.c_str());
  absl::StatusOr<picos::Value> client_done = co_await client.Join(kTimeout);
  if (!client_done.ok()) co_return client_done.status();

  // The copy as it is on disk.
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> copy, co_await picos::File::Open(out_path));
  Discard sink;
  PICOS_CO_ASSIGN_OR_RETURN(CopyStats on_disk, co_await Copy(*copy, sink, chunk, kMaxFile));
  PICOS_CO_RETURN_IF_ERROR(co_await copy->Close());
  std::printf("copy on disk: %lld bytes, sha1 %s\n", static_cast<long long>(on_disk.bytes),
              on_disk.sha1.c_str());

  if (sent->bytes != source_size || received.bytes != source_size ||
      on_disk.bytes != source_size) {
    co_return absl::DataLossError(absl::StrCat("sizes differ: source ", source_size, ", sent ",
                                               sent->bytes, ", received ", received.bytes,
                                               ", on disk ", on_disk.bytes));
  }
  if (sent->sha1 != received.sha1 || received.sha1 != on_disk.sha1) {
    co_return absl::DataLossError("checksums differ");
  }
  std::printf("checksums match (%lld bytes)\n", static_cast<long long>(source_size));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Sends a file over a socket into another file and checks the copy (pycos socket_afile.py).");
  absl::ParseCommandLine(argc, argv);
  std::string source = absl::GetFlag(FLAGS_file);
  if (source.empty()) source = argv[0];
  const int chunk = absl::GetFlag(FLAGS_chunk);
  if (!picos::FlagInRange(FLAGS_chunk, 1, 1 << 20)) return 2;
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen == "unix") listen = absl::StrCat("unix://@picos-socket-afile-", getpid());
  std::string out_path = absl::GetFlag(FLAGS_out);
  const bool temporary = out_path.empty();
  if (temporary) {
    // A fresh name of our own (mkstemp), so parallel runs never share it.
    const char* dir = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(dir != nullptr && *dir != '\0' ? dir : "/tmp",
                                       "/socket_afile.XXXXXX");
    int fd = mkstemp(pattern.data());
    if (fd < 0) {
      std::perror("socket_afile: mkstemp");
      return 1;
    }
    close(fd);
    out_path = pattern;
  }
  absl::StatusOr<picos::Value> r;
  {
    picos::Scheduler s;
    r = s.RunUntil(s.Spawn(Main, source, out_path, listen,
                           static_cast<size_t>(chunk)));
  }
  if (temporary) unlink(out_path.c_str());
  if (!r.ok()) {
    std::fprintf(stderr, "socket_afile: %s\n", r.status().ToString().c_str());
    return 1;
  }
  return 0;
}
