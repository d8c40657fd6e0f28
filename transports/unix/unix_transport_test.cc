// unix:// passes the transport conformance suite with socket files and
// abstract names, and rejects paths libuv would truncate.
#include "transports/unix/unix_transport.h"

#include <string>

#include "core/kernel/scheduler.h"
#include "testing/status_matchers.h"
#include "testing/transport_conformance.h"

namespace picos::transports {
namespace {

using ::picos::testing::ConformanceName;
using ::picos::testing::ConformanceParam;
using ::picos::testing::StatusIs;
using ::picos::testing::TransportConformanceTest;
using ::picos::testing::UniqueUnixUri;

INSTANTIATE_TEST_SUITE_P(
    Unix, TransportConformanceTest,
    ::testing::Values(ConformanceParam{"path", RegisterUnixTransport,
                                       [] { return UniqueUnixUri(false); },
                                       /*abort_is_reset=*/false},
                      ConformanceParam{"abstract", RegisterUnixTransport,
                                       [] { return UniqueUnixUri(true); },
                                       /*abort_is_reset=*/false}),
    ConformanceName);

TEST(UnixTransport, RejectsOverlongPaths) {
  TransportRegistry::Builder b;
  RegisterUnixTransport(b);
  auto reg = std::move(b).Build();
  Scheduler s;
  TaskRef t = s.Spawn([&]() -> Task<> {
    std::string fits = "unix:///tmp/" + std::string(kMaxUnixPath - 5, 'a');
    std::string too_long = "unix:///tmp/" + std::string(kMaxUnixPath - 4, 'a');
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen(too_long);
    EXPECT_THAT(l, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("at most")));
    absl::StatusOr<std::unique_ptr<Stream>> c = co_await reg->Connect(too_long, absl::Seconds(1));
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
    absl::StatusOr<std::unique_ptr<Stream>> a =
        co_await reg->Connect("unix://@" + std::string(kMaxUnixPath, 'b'));
    EXPECT_THAT(a, StatusIs(absl::StatusCode::kInvalidArgument));
    // 107 bytes exactly is a usable path (nothing listens: refused).
    absl::StatusOr<std::unique_ptr<Stream>> f = co_await reg->Connect(fits, absl::Seconds(1));
    EXPECT_THAT(f, StatusIs(absl::StatusCode::kUnavailable));
  });
  EXPECT_OK(s.RunUntil(t));
}

TEST(UnixTransport, ListenOnExistingPathFails) {
  TransportRegistry::Builder b;
  RegisterUnixTransport(b);
  auto reg = std::move(b).Build();
  Scheduler s;
  TaskRef t = s.Spawn([&]() -> Task<> {
    std::string uri = UniqueUnixUri(false);
    absl::StatusOr<std::unique_ptr<Listener>> first = co_await reg->Listen(uri);
    EXPECT_OK(first);
    absl::StatusOr<std::unique_ptr<Listener>> second = co_await reg->Listen(uri);
    EXPECT_FALSE(second.ok());
  });
  EXPECT_OK(s.RunUntil(t));
}

TEST(UnixTransport, RefusesUnknownParameters) {
  TransportRegistry::Builder b;
  RegisterUnixTransport(b);
  auto reg = std::move(b).Build();
  Scheduler s;
  TaskRef t = s.Spawn([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen("unix://@picos-x?mode=0600");
    EXPECT_THAT(l, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("'mode'")));
    absl::StatusOr<std::unique_ptr<Stream>> c =
        co_await reg->Connect("unix:///tmp/picos-x?bogus", absl::Seconds(1));
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("'bogus'")));
  });
  EXPECT_OK(s.RunUntil(t));
}

}  // namespace
}  // namespace picos::transports
