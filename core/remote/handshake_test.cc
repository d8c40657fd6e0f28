#include "core/remote/handshake.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <sys/socket.h>
#include <uv.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "core/io/uv_stream_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/protocol.capnp.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"

namespace picos::remote {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSecret[] = "correct horse battery staple";

// Two connected streams over a Unix socketpair on this scheduler's loop.
std::pair<std::unique_ptr<Stream>, std::unique_ptr<Stream>> StreamPair() {
  int fds[2];
  PICOS_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  std::unique_ptr<Stream> ends[2];
  for (int i = 0; i < 2; ++i) {
    internal::UvStreamState* s =
        internal::NewUvStreamState(ThisScheduler().uv_loop(), internal::UvKind::kPipe, StreamOptions());
    PICOS_ASSERT(uv_pipe_open(reinterpret_cast<uv_pipe_t*>(internal::UvHandle(s)), fds[i]) == 0);
    ends[i] = internal::MakeUvStream(s, "unix");
  }
  return {std::move(ends[0]), std::move(ends[1])};
}

HandshakeOptions Opts(Role role, std::string secret = kSecret) {
  HandshakeOptions o;
  o.secret = std::move(secret);
  o.role = role;
  o.timeout = absl::Seconds(60);
  // Both ends live in this process: give each a process id of its own.
  o.process_id = ProcessId();
  o.process_id[0] = static_cast<char>(o.process_id[0] ^ (role == Role::kConnector ? 1 : 2));
  return o;
}

// Both ends of one connection, each in a task of its own, results kept here.
struct Outcome {
  absl::StatusOr<HandshakeResult> a = absl::UnknownError("not run");
  absl::StatusOr<HandshakeResult> b = absl::UnknownError("not run");
};

Task<> RunInto(Stream* s, HandshakeOptions o, absl::StatusOr<HandshakeResult>* out) {
  *out = co_await Handshake(*s, std::move(o));
  // A side that failed closes, as the node does, so the other one sees it.
  if (!out->ok()) s->Close();
}

Task<Outcome> RunPair(HandshakeOptions a, HandshakeOptions b) {
  auto ends = StreamPair();
  auto outcome = std::make_shared<Outcome>();
  TaskRef ta = ThisScheduler().Spawn(RunInto, ends.first.get(), std::move(a), &outcome->a);
  TaskRef tb = ThisScheduler().Spawn(RunInto, ends.second.get(), std::move(b), &outcome->b);
  (void)co_await ta.Join(absl::Seconds(120));
  (void)co_await tb.Join(absl::Seconds(120));
  co_return *outcome;
}

PICOS_CORO_TEST(Handshake, GoodSecretOnBothSides) {
  HandshakeOptions a = Opts(Role::kConnector);
  a.uris = {"tcp://127.0.0.1:1"};
  a.name = "alpha";
  HandshakeOptions b = Opts(Role::kAcceptor);
  const std::string a_pid = a.process_id, b_pid = b.process_id;
  Outcome o = co_await RunPair(std::move(a), std::move(b));
  CO_ASSERT_OK(o.a);
  CO_ASSERT_OK(o.b);
  EXPECT_EQ(o.a->process_id, b_pid);
  EXPECT_EQ(o.b->process_id, a_pid);
  EXPECT_EQ(o.b->uris, std::vector<std::string>{"tcp://127.0.0.1:1"});
  EXPECT_EQ(o.b->name, "alpha");
}

PICOS_CORO_TEST(Handshake, WrongSecretIsRefusedOnBothSidesAsSecretMismatch) {
  Outcome o = co_await RunPair(Opts(Role::kConnector), Opts(Role::kAcceptor, "another secret, 32 bytes"));
  EXPECT_THAT(o.a.status(), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("secret mismatch")));
  EXPECT_THAT(o.b.status(), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("secret mismatch")));
}

PICOS_CORO_TEST(Handshake, VersionMismatchSaysSoOnBothSidesAndNotSecret) {
  HandshakeOptions a = Opts(Role::kConnector);
  a.version = ProtocolVersion() + 1;
  Outcome o = co_await RunPair(std::move(a), Opts(Role::kAcceptor));
  EXPECT_THAT(o.a.status(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("protocol version mismatch")));
  EXPECT_THAT(o.b.status(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("protocol version mismatch")));
  EXPECT_FALSE(absl::StrContains(o.a.status().message(), "secret"));
  EXPECT_FALSE(absl::StrContains(o.b.status().message(), "secret"));
}

PICOS_CORO_TEST(Handshake, ProofIsNotReflected) {
  // Both sides claim the same role: each proof is bound to its sender's role,
  // so neither verifies (a reflected proof would need exactly this).
  HandshakeOptions b = Opts(Role::kConnector);
  b.process_id[1] = static_cast<char>(b.process_id[1] ^ 4);
  Outcome o = co_await RunPair(Opts(Role::kConnector), std::move(b));
  EXPECT_THAT(o.a.status(), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(o.b.status(), StatusIs(absl::StatusCode::kUnauthenticated));
}

// The acceptor's view of a peer that writes `bytes` and then `then_close`s.
Task<absl::StatusOr<HandshakeResult>> AgainstRawBytes(std::string bytes, bool then_close,
                                                      absl::Duration timeout = absl::Seconds(60)) {
  auto [x, y] = StreamPair();
  HandshakeOptions o = Opts(Role::kAcceptor);
  o.timeout = timeout;
  absl::Status w = co_await x->Write(std::move(bytes), absl::Seconds(60));
  EXPECT_OK(w);
  if (then_close) {
    absl::Status s = co_await x->Shutdown(absl::Seconds(60));
    EXPECT_OK(s);
  }
  absl::StatusOr<HandshakeResult> r = co_await Handshake(*y, std::move(o));
  x->Close();
  y->Close();
  co_return r;
}

PICOS_CORO_TEST(Handshake, GarbageIsNotAPicosPeer) {
  absl::StatusOr<HandshakeResult> r =
      co_await AgainstRawBytes(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a picos peer")));
  EXPECT_FALSE(absl::StrContains(r.status().message(), "secret"));
}

PICOS_CORO_TEST(Handshake, WellFramedGarbageIsNotAPicosPeer) {
  std::string bytes("\0\0\0\x10", 4);
  bytes += std::string(16, '\xff');
  absl::StatusOr<HandshakeResult> r = co_await AgainstRawBytes(bytes, true);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a picos peer")));
}

PICOS_CORO_TEST(Handshake, WrongMagicIsNotAPicosPeer) {
  capnp::MallocMessageBuilder message;
  protocol::Hello::Builder hello = message.initRoot<protocol::Hello>();
  hello.setMagic(0x1234);
  hello.setVersion(ProtocolVersion());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  std::string body(reinterpret_cast<const char*>(words.asBytes().begin()), words.asBytes().size());
  std::string bytes(4, '\0');
  bytes[3] = static_cast<char>(body.size());
  bytes += body;
  absl::StatusOr<HandshakeResult> r = co_await AgainstRawBytes(bytes, true);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wrong magic")));
}

PICOS_CORO_TEST(Handshake, TruncatedHelloIsTheConnectionEnding) {
  absl::StatusOr<HandshakeResult> r = co_await AgainstRawBytes(std::string("\0\0\0\x40\0\0", 6), true);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("truncated")));
}

PICOS_CORO_TEST(Handshake, FourGibLengthClaimIsRefusedBeforeReading) {
  absl::StatusOr<HandshakeResult> r = co_await AgainstRawBytes(std::string("\xff\xff\xff\xff", 4), false);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4294967295 bytes")));
}

PICOS_CORO_TEST(Handshake, SilentPeerHitsTheDeadline) {
  absl::StatusOr<HandshakeResult> r =
      co_await AgainstRawBytes(std::string(), false, absl::Milliseconds(200));
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("in time")));
}

// A valid Hello, framed, as a peer would send it.
std::string ValidHello() {
  capnp::MallocMessageBuilder message;
  protocol::Hello::Builder hello = message.initRoot<protocol::Hello>();
  hello.setMagic(protocol::MAGIC);
  hello.setVersion(ProtocolVersion());
  std::string pid(kProcessIdSize, 'p');
  std::string nonce(32, 'n');
  hello.setProcessId(kj::arrayPtr(reinterpret_cast<const kj::byte*>(pid.data()), pid.size()));
  hello.setNonce(kj::arrayPtr(reinterpret_cast<const kj::byte*>(nonce.data()), nonce.size()));
  hello.initUris(1).set(0, "tcp://127.0.0.1:1");
  hello.setName("fuzz");
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  std::string body(reinterpret_cast<const char*>(words.asBytes().begin()), words.asBytes().size());
  std::string out(4, '\0');
  out[2] = static_cast<char>(body.size() >> 8);
  out[3] = static_cast<char>(body.size());
  return out + body;
}

// Mutations of a valid Hello (bit flips, byte stores, truncations,
// insertions), each fed to a handshake: every one ends with an error, never
// a crash, a hang or a success (no mutation knows the secret).
PICOS_CORO_TEST(Handshake, MutatedHellosAreRefusedCleanly) {
  const std::string hello = ValidHello();
  uint64_t rng = 0x9e3779b97f4a7c15;
  auto next = [&rng](uint64_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
  };
  static const char kBytes[] = {0, 1, 0x7f, '\x80', '\xfe', '\xff'};
  for (int i = 0; i < 300; ++i) {
    std::string s = hello;
    for (int r = 1 + static_cast<int>(next(3)); r > 0; --r) {
      switch (next(4)) {
        case 0:
          s[next(s.size())] ^= static_cast<char>(1 << next(8));
          break;
        case 1:
          s[next(s.size())] = kBytes[next(sizeof kBytes)];
          break;
        case 2:
          s.resize(next(s.size()) + 1);
          break;
        default:
          s.insert(next(s.size()), std::string(1 + next(16), kBytes[next(sizeof kBytes)]));
      }
    }
    absl::StatusOr<HandshakeResult> r = co_await AgainstRawBytes(s, true, absl::Seconds(60));
    EXPECT_FALSE(r.ok()) << "mutation " << i << " was accepted";
    EXPECT_NE(r.status().code(), absl::StatusCode::kDeadlineExceeded) << "mutation " << i << " hung";
    EXPECT_NE(r.status().code(), absl::StatusCode::kInternal) << r.status();
  }
}

PICOS_CORO_TEST(Handshake, RefusesWeakOrMissingSecrets) {
  EXPECT_THAT(ValidateSecret(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateSecret("short"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateSecret(std::string(64, 'a')), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(ValidateSecret(kSecret));
  auto ends = StreamPair();
  HandshakeOptions none;  // named: g++ 12 and a braced temporary inside co_await (README)
  absl::StatusOr<HandshakeResult> r = co_await Handshake(*ends.first, none);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("secret")));
}

}  // namespace
}  // namespace picos::remote
