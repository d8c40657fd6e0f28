// Discovery on loopback multicast (two nodes of this process, each with its
// own process id, on group 239.255.97.5 at a free port on "lo"), and its
// retry logic on a simulated clock.
#include "discovery/discovery.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/net/udp.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "discovery/packet.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"
#include "transports/udp_multicast/udp_multicast.h"

namespace picos::discovery {
namespace {

constexpr char kSecret[] = "discovery-unit-test-secret-0123";
const absl::Duration kLong = absl::Seconds(60);  // reached only by a hang

std::string Pid(char tweak) {
  std::string pid = ProcessId();
  pid[0] = static_cast<char>(pid[0] ^ tweak);
  return pid;
}

std::string UnixName(const char* what) { return absl::StrCat("unix://@picos-discovery-test-", getpid(), "-", what); }

remote::NodeOptions NodeOpts(const char* what, char tweak) {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.listen.push_back(UnixName(what));
  o.name = what;
  o.process_id = Pid(tweak);
  return o;
}

DiscoveryOptions DiscOpts(const char* name, char tweak, std::string group) {
  DiscoveryOptions o;
  o.secret = kSecret;
  o.name = name;
  o.process_id = Pid(tweak);
  o.group = std::move(group);
  o.iface = "lo";
  o.announce_interval = absl::Milliseconds(100);
  return o;
}

// Waits (bounded) until `pred` holds, polling every millisecond.
template <typename P>
Task<bool> WaitFor(P pred, absl::Duration limit = kLong) {
  const absl::Time give_up = absl::Now() + limit;
  while (!pred()) {
    if (absl::Now() > give_up) co_return false;
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));
    if (!slept.ok()) co_return false;
  }
  co_return true;
}

TEST(Backoff, DoublesUpToItsCapAndResets) {
  Backoff b(absl::Milliseconds(100), absl::Milliseconds(700));
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
  EXPECT_EQ(b.Next(), absl::Milliseconds(200));
  EXPECT_EQ(b.Next(), absl::Milliseconds(400));
  EXPECT_EQ(b.Next(), absl::Milliseconds(700));
  EXPECT_EQ(b.Next(), absl::Milliseconds(700));
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
}

PICOS_CORO_TEST(Discovery, RefusesBadOptions) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> node = co_await remote::Node::Start(t, NodeOpts("opts", 1));
  CO_ASSERT_OK(node);
  DiscoveryOptions o = DiscOpts("x", 1, "239.255.97.5:0");
  o.secret = "short";
  absl::StatusOr<std::unique_ptr<Discovery>> d = co_await Discovery::Start(**node, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  o = DiscOpts("x", 1, "10.0.0.1:9706");  // not a multicast group
  d = co_await Discovery::Start(**node, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  o = DiscOpts("x", 1, "239.255.97.5:0");
  o.ttl = 300;
  d = co_await Discovery::Start(**node, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  o = DiscOpts("x", 1, "239.255.97.5:0");
  o.iface = "no-such-interface0";
  d = co_await Discovery::Start(**node, o);
  EXPECT_FALSE(d.ok());
}

// Two nodes find each other on the group, connect once, and a goodbye stops
// the other from dialling again.
PICOS_CORO_TEST(Discovery, TwoNodesFindEachOtherOnLoopbackMulticast) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("a", 1));
  CO_ASSERT_OK(na);
  absl::StatusOr<std::unique_ptr<remote::Node>> nb = co_await remote::Node::Start(t, NodeOpts("b", 2));
  CO_ASSERT_OK(nb);
  absl::StatusOr<std::unique_ptr<Discovery>> da =
      co_await Discovery::Start(**na, DiscOpts("a", 1, "239.255.97.5:0"));
  CO_ASSERT_OK(da);
  // The second joins the port the first was given.
  absl::StatusOr<transports::McastEndpoint> ep = transports::ParseMcastUri((*da)->group_uri());
  CO_ASSERT_OK(ep);
  const std::string group = absl::StrCat("239.255.97.5:", ep->group.port());
  absl::StatusOr<std::unique_ptr<Discovery>> db = co_await Discovery::Start(**nb, DiscOpts("b", 2, group));
  CO_ASSERT_OK(db);
  remote::Node* a = na->get();
  remote::Node* b = nb->get();
  bool joined = co_await WaitFor([&] { return a->peers().size() == 1 && b->peers().size() == 1; });
  CO_ASSERT_TRUE(joined);
  EXPECT_EQ((*da)->known(), std::vector<std::string>{absl::StrCat("b@", b->uris()[0])});
  EXPECT_EQ((*db)->known(), std::vector<std::string>{absl::StrCat("a@", a->uris()[0])});
  // A few more announcements change nothing: one connection, no refusals.
  absl::Status slept = co_await Sleep(absl::Milliseconds(300));
  CO_ASSERT_OK(slept);
  EXPECT_EQ(a->peers().size(), 1u);
  EXPECT_EQ((*da)->stats().refused_total(), 0u);
  EXPECT_GT((*da)->stats().accepted, 1u);
  EXPECT_GT((*db)->stats().sent, 1u);
  // b says goodbye: a forgets it.
  CO_ASSERT_OK(co_await (*db)->Stop());
  Discovery* dap = da->get();
  bool forgotten = co_await WaitFor([&] { return dap->known().empty(); });
  EXPECT_TRUE(forgotten);
  db->reset();
  da->reset();
  nb->reset();
  na->reset();
}

// The same over IPv6 (a link-local group on "lo"), where the host has it.
PICOS_CORO_TEST(Discovery, TwoNodesFindEachOtherOverIpv6) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("a6", 1));
  CO_ASSERT_OK(na);
  absl::StatusOr<std::unique_ptr<remote::Node>> nb = co_await remote::Node::Start(t, NodeOpts("b6", 2));
  CO_ASSERT_OK(nb);
  absl::StatusOr<std::unique_ptr<Discovery>> da =
      co_await Discovery::Start(**na, DiscOpts("a6", 1, "[ff02::7069:636f]:0"));
  if (!da.ok()) CO_SKIP("no IPv6 multicast on lo here: " << da.status());
  absl::StatusOr<transports::McastEndpoint> ep = transports::ParseMcastUri((*da)->group_uri());
  CO_ASSERT_OK(ep);
  absl::StatusOr<std::unique_ptr<Discovery>> db =
      co_await Discovery::Start(**nb, DiscOpts("b6", 2, absl::StrCat("[ff02::7069:636f]:", ep->group.port())));
  CO_ASSERT_OK(db);
  remote::Node* a = na->get();
  remote::Node* b = nb->get();
  Discovery* dap = da->get();
  // As //transports/udp_multicast:udp_multicast_test finds, some hosts
  // cannot send IPv6 multicast on lo ("network is unreachable").
  bool sent = co_await WaitFor([&] { return dap->stats().sent > 0; }, absl::Seconds(2));
  if (!sent) CO_SKIP("this host cannot send IPv6 multicast on lo");
  bool joined = co_await WaitFor([&] { return a->peers().size() == 1 && b->peers().size() == 1; });
  EXPECT_TRUE(joined);
  EXPECT_EQ(dap->stats().refused_total(), 0u);
  db->reset();
  da->reset();
  nb->reset();
  na->reset();
}

// A peer heard once and never again is dialled (and retried) until
// forget_after, then forgotten: no more dials, known() empty.
PICOS_CORO_TEST(Discovery, SilentPeerIsForgottenAfterForgetAfter) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("f", 1));
  CO_ASSERT_OK(na);
  DiscoveryOptions o = DiscOpts("f", 1, "239.255.97.5:0");
  o.forget_after = absl::Milliseconds(300);
  o.retry_initial = absl::Milliseconds(20);
  o.retry_max = absl::Milliseconds(40);
  absl::StatusOr<std::unique_ptr<Discovery>> da = co_await Discovery::Start(**na, o);
  CO_ASSERT_OK(da);
  absl::StatusOr<transports::McastEndpoint> ep = transports::ParseMcastUri((*da)->group_uri());
  CO_ASSERT_OK(ep);
  absl::StatusOr<std::unique_ptr<UdpSocket>> other = transports::OpenMulticast(*ep);
  CO_ASSERT_OK(other);
  Announcement ghost;
  ghost.process_id = Pid(9);
  ghost.name = "ghost";
  ghost.uris = {UnixName("ghost-once")};
  absl::StatusOr<std::string> once = EncodeAnnouncement(ghost, kSecret, absl::Now());
  CO_ASSERT_OK(once);
  CO_ASSERT_OK(co_await (*other)->SendTo(*once, ep->group));
  Discovery* d = da->get();
  bool heard = co_await WaitFor([&] { return d->known().size() == 1; });
  CO_ASSERT_TRUE(heard);
  bool forgotten = co_await WaitFor([&] { return d->known().empty(); });
  CO_ASSERT_TRUE(forgotten);
  const uint64_t dials = d->stats().dials;
  EXPECT_GE(dials, 2u);  // retried while it might still come
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(200)));
  EXPECT_EQ(d->stats().dials, dials) << "dialled after it was forgotten";
  (*other)->Close();
  other->reset();
  da->reset();
  na->reset();
}

// Everything a host without the secret, or a replaying one, can send is
// refused and counted by cause, and changes nothing.
PICOS_CORO_TEST(Discovery, ForgedTruncatedAndReplayedPacketsAreRefusedAndCounted) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("victim", 1));
  CO_ASSERT_OK(na);
  absl::StatusOr<std::unique_ptr<Discovery>> da =
      co_await Discovery::Start(**na, DiscOpts("victim", 1, "239.255.97.5:0"));
  CO_ASSERT_OK(da);
  absl::StatusOr<transports::McastEndpoint> ep = transports::ParseMcastUri((*da)->group_uri());
  CO_ASSERT_OK(ep);
  absl::StatusOr<std::unique_ptr<UdpSocket>> attacker = transports::OpenMulticast(*ep);
  CO_ASSERT_OK(attacker);
  // A peer that does not exist, with a real announcement.
  Announcement ghost;
  ghost.process_id = Pid(9);
  ghost.name = "ghost";
  ghost.uris = {UnixName("ghost")};
  absl::StatusOr<std::string> good = EncodeAnnouncement(ghost, kSecret, absl::Now());
  CO_ASSERT_OK(good);
  absl::StatusOr<std::string> forged = EncodeAnnouncement(ghost, "the-wrong-secret-0123456789abc", absl::Now());
  CO_ASSERT_OK(forged);
  absl::StatusOr<std::string> stale = EncodeAnnouncement(ghost, kSecret, absl::Now() - absl::Minutes(5));
  CO_ASSERT_OK(stale);
  std::string flipped = *good;
  flipped[flipped.size() / 2] ^= 1;
  const std::vector<std::pair<std::string, Refusal>> cases = {
      {"garbage that is long enough to pass the size check, but no magic", Refusal::kMagic},
      {good->substr(0, 20), Refusal::kSize},
      {good->substr(0, good->size() - 1), Refusal::kLength},
      {*forged, Refusal::kMac},
      {flipped, Refusal::kMac},
      {*stale, Refusal::kStale},
  };
  for (const auto& [bytes, why] : cases) CO_ASSERT_OK(co_await (*attacker)->SendTo(bytes, ep->group));
  // The genuine one once (accepted), then replayed twice.
  for (int i = 0; i < 3; ++i) CO_ASSERT_OK(co_await (*attacker)->SendTo(*good, ep->group));
  Discovery* d = da->get();
  bool all = co_await WaitFor([&] { return d->stats().refused_total() >= cases.size() + 2; });
  CO_ASSERT_TRUE(all);
  DiscoveryStats s = d->stats();
  for (const auto& [bytes, why] : cases) {
    EXPECT_GE(s.refused[static_cast<size_t>(why)], 1u) << RefusalName(why);
  }
  EXPECT_EQ(s.refused[static_cast<size_t>(Refusal::kMac)], 2u);
  EXPECT_EQ(s.refused[static_cast<size_t>(Refusal::kReplay)], 2u);
  EXPECT_EQ(s.refused_total(), cases.size() + 2);
  EXPECT_EQ(d->known(), std::vector<std::string>{absl::StrCat("ghost@", UnixName("ghost"))});
  // The ghost does not answer: dialled, failing, retried (not forgotten).
  bool retried = co_await WaitFor([&] { return d->stats().failed_dials >= 2; });
  EXPECT_TRUE(retried);
  EXPECT_TRUE((*na)->peers().empty());
  (*attacker)->Close();
  attacker->reset();
  da->reset();
  na->reset();
}

// On the simulated clock: a static peer that starts late is dialled with
// capped exponential backoff (100, 200, 400, 800, 1600, 1600 ... ms) and
// joined within one capped wait of its start.
PICOS_SIM_TEST(Discovery, StaticPeerStartedLaterIsRetriedWithCappedBackoff) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("early", 1));
  CO_ASSERT_OK(na);
  DiscoveryOptions o = DiscOpts("early", 1, "");
  o.peers = {UnixName("late")};
  o.retry_initial = absl::Milliseconds(100);
  o.retry_max = absl::Milliseconds(1600);
  absl::StatusOr<std::unique_ptr<Discovery>> da = co_await Discovery::Start(**na, o);
  CO_ASSERT_OK(da);
  const int64_t t0 = ThisScheduler().NowNs();
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(9950)));
  // Dials at 0, 0.1, 0.3, 0.7, 1.5, 3.1, 4.7, 6.3, 7.9, 9.5 s.
  EXPECT_EQ((*da)->stats().dials, 10u);
  EXPECT_EQ((*da)->stats().failed_dials, 10u);
  absl::StatusOr<std::unique_ptr<remote::Node>> nb = co_await remote::Node::Start(t, NodeOpts("late", 2));
  CO_ASSERT_OK(nb);
  remote::Node* a = na->get();
  for (int i = 0; i < 100 && a->peers().empty(); ++i) CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(50)));
  EXPECT_EQ(a->peers().size(), 1u);
  // Next dial at 11.1 s: joined then, not a moment sooner or much later.
  EXPECT_LE(ThisScheduler().NowNs() - t0, absl::ToInt64Nanoseconds(absl::Milliseconds(11200)));
  EXPECT_GE(ThisScheduler().NowNs() - t0, absl::ToInt64Nanoseconds(absl::Milliseconds(11100)));
  // Connected: it stays so, and the static dial only checks (no new failure).
  CO_ASSERT_OK(co_await Sleep(absl::Seconds(30)));
  EXPECT_EQ((*da)->stats().failed_dials, 10u);
  EXPECT_EQ(a->peers().size(), 1u);
  da->reset();
  nb->reset();
  na->reset();
}

// A peer heard on the group before it listens (its announcement came first,
// or its listener is slow to start) is dialled with backoff until it
// answers, then joined: not given up after a failed dial (pycos forgot it).
PICOS_CORO_TEST(Discovery, DiscoveredPeerThatListensLaterIsJoinedOnceItAnswers) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("waiting", 1));
  CO_ASSERT_OK(na);
  DiscoveryOptions o = DiscOpts("waiting", 1, "239.255.97.5:0");
  o.retry_initial = absl::Milliseconds(20);
  o.retry_max = absl::Milliseconds(80);
  absl::StatusOr<std::unique_ptr<Discovery>> da = co_await Discovery::Start(**na, o);
  CO_ASSERT_OK(da);
  absl::StatusOr<transports::McastEndpoint> ep = transports::ParseMcastUri((*da)->group_uri());
  CO_ASSERT_OK(ep);
  absl::StatusOr<std::unique_ptr<UdpSocket>> other = transports::OpenMulticast(*ep);
  CO_ASSERT_OK(other);
  // One announcement only: what keeps the dialling going is the backoff,
  // not announcements heard again.
  Announcement late;
  late.process_id = Pid(2);
  late.name = "late";
  late.uris = {UnixName("late")};
  absl::StatusOr<std::string> once = EncodeAnnouncement(late, kSecret, absl::Now());
  CO_ASSERT_OK(once);
  CO_ASSERT_OK(co_await (*other)->SendTo(*once, ep->group));
  Discovery* d = da->get();
  bool failing = co_await WaitFor([&] { return d->stats().failed_dials >= 3; });
  CO_ASSERT_TRUE(failing);
  EXPECT_TRUE((*na)->peers().empty());
  absl::StatusOr<std::unique_ptr<remote::Node>> nb = co_await remote::Node::Start(t, NodeOpts("late", 2));
  CO_ASSERT_OK(nb);
  remote::Node* a = na->get();
  bool joined = co_await WaitFor([&] { return a->peers().size() == 1; });
  CO_ASSERT_TRUE(joined);
  EXPECT_EQ(a->peers()[0], absl::StrCat("late@", UnixName("late")));
  // Joined: the dialler ended, no more dials.
  const uint64_t dials = d->stats().dials;
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(300)));
  EXPECT_EQ(d->stats().dials, dials);
  (*other)->Close();
  other->reset();
  da->reset();
  nb->reset();
  na->reset();
}

// Captures what the picos logger writes while it lives.
class CaptureLog {
 public:
  CaptureLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    sink_->set_pattern("%l %v");
    Log().sinks().push_back(sink_);
  }
  ~CaptureLog() {
    auto& sinks = Log().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// Refused packets are logged by cause even when their own lines are
// rate-limited away: a summary line counts them, once per interval.
PICOS_CORO_TEST(Discovery, RefusedPacketsAreSummarizedByCauseInTheLog) {
  CaptureLog capture;
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> na = co_await remote::Node::Start(t, NodeOpts("summary", 1));
  CO_ASSERT_OK(na);
  DiscoveryOptions o = DiscOpts("summary", 1, "239.255.97.5:0");
  o.refusal_summary_interval = absl::Seconds(1);  // the packets below are all read by then
  absl::StatusOr<std::unique_ptr<Discovery>> da = co_await Discovery::Start(**na, o);
  CO_ASSERT_OK(da);
  absl::StatusOr<transports::McastEndpoint> ep = transports::ParseMcastUri((*da)->group_uri());
  CO_ASSERT_OK(ep);
  absl::StatusOr<std::unique_ptr<UdpSocket>> attacker = transports::OpenMulticast(*ep);
  CO_ASSERT_OK(attacker);
  Announcement ghost;
  ghost.process_id = Pid(9);
  ghost.name = "ghost";
  ghost.uris = {UnixName("ghost-summary")};
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<std::string> forged = EncodeAnnouncement(ghost, "the-wrong-secret-0123456789abc", absl::Now());
    CO_ASSERT_OK(forged);
    CO_ASSERT_OK(co_await (*attacker)->SendTo(*forged, ep->group));
  }
  CO_ASSERT_OK(co_await (*attacker)->SendTo("not a discovery packet, and long enough for its header", ep->group));
  Discovery* d = da->get();
  bool all = co_await WaitFor([&] { return d->stats().refused_total() == 31; });
  CO_ASSERT_TRUE(all);
  const std::string want = absl::StrCat(RefusalName(Refusal::kMagic), " 1, ", RefusalName(Refusal::kMac), " 30");
  bool summarized = co_await WaitFor([&] {
    const std::string log = capture.text();
    return log.find("discovery: refused 31 packets in the last ") != std::string::npos &&
           log.find(want) != std::string::npos;
  });
  EXPECT_TRUE(summarized) << "wanted a summary with \"" << want << "\" in:\n" << capture.text();
  // One summary for them: nothing new is refused, nothing more is said.
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(500)));
  const std::string log = capture.text();
  size_t summaries = 0;
  for (size_t at = log.find("packets in the last"); at != std::string::npos; at = log.find("packets in the last", at + 1)) {
    ++summaries;
  }
  EXPECT_EQ(summaries, 1u) << log;
  EXPECT_EQ(d->stats().refused_total(), 31u);
  (*attacker)->Close();
  attacker->reset();
  da->reset();
  na->reset();
}

}  // namespace
}  // namespace picos::discovery
