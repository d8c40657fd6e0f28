#include "discovery/packet.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "core/wire/value_codec.h"

namespace picos::discovery {
namespace {

constexpr char kSecret[] = "discovery-test-secret-0123456789";
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Announcement Sample() {
  Announcement a;
  a.process_id = std::string(kProcessIdSize, '\x07');
  a.name = "alpha";
  a.uris = {"tcp://10.99.0.1:9705", "unix://@alpha"};
  return a;
}

TEST(Packet, RoundTrip) {
  absl::StatusOr<std::string> bytes = EncodeAnnouncement(Sample(), kSecret, kNow);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_LE(bytes->size(), MaxPacketSize());
  Refusal why = Refusal::kSize;
  absl::StatusOr<Announcement> a = DecodeAnnouncement(*bytes, kSecret, &why);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(why, Refusal::kNone);
  EXPECT_EQ(a->kind, Announcement::Kind::kHello);
  EXPECT_EQ(a->process_id, Sample().process_id);
  EXPECT_EQ(a->name, "alpha");
  EXPECT_EQ(a->uris, Sample().uris);
  EXPECT_NE(a->protocol_version, 0u);
  EXPECT_EQ(a->timestamp_ms, absl::ToUnixMillis(kNow));
  EXPECT_EQ(a->nonce.size(), kNonceSize);
  // Two encodings of one announcement differ: fresh nonces.
  absl::StatusOr<std::string> again = EncodeAnnouncement(Sample(), kSecret, kNow);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *bytes);
}

TEST(Packet, Goodbye) {
  Announcement g = Sample();
  g.kind = Announcement::Kind::kGoodbye;
  absl::StatusOr<std::string> bytes = EncodeAnnouncement(g, kSecret, kNow);
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<Announcement> a = DecodeAnnouncement(*bytes, kSecret);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Announcement::Kind::kGoodbye);
}

Refusal RefusalOf(std::string_view bytes, std::string_view secret = kSecret) {
  Refusal why = Refusal::kNone;
  absl::StatusOr<Announcement> a = DecodeAnnouncement(bytes, secret, &why);
  EXPECT_FALSE(a.ok());
  EXPECT_NE(why, Refusal::kNone);
  if (!a.ok()) {
    EXPECT_TRUE(absl::StrContains(a.status().message(), RefusalName(why))) << a.status();
  }
  return why;
}

TEST(Packet, RefusesEachFieldOfTheHeaderAndTheMac) {
  absl::StatusOr<std::string> good = EncodeAnnouncement(Sample(), kSecret, kNow);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(RefusalOf(""), Refusal::kSize);
  EXPECT_EQ(RefusalOf(good->substr(0, 40)), Refusal::kSize);
  EXPECT_EQ(RefusalOf(std::string(MaxPacketSize() + 1, 'x')), Refusal::kSize);
  std::string b = *good;
  b[0] = 'X';
  EXPECT_EQ(RefusalOf(b), Refusal::kMagic);
  b = *good;
  b[9] = 9;
  EXPECT_EQ(RefusalOf(b), Refusal::kFormat);
  b = *good;
  b[11] ^= 8;
  EXPECT_EQ(RefusalOf(b), Refusal::kLength);
  EXPECT_EQ(RefusalOf(good->substr(0, good->size() - 8)), Refusal::kLength);
  // Any bit of the body or the MAC, and another secret.
  for (size_t i = kHeaderSize; i < good->size(); i += 7) {
    b = *good;
    b[i] ^= 0x10;
    EXPECT_EQ(RefusalOf(b), Refusal::kMac) << "byte " << i;
  }
  EXPECT_EQ(RefusalOf(*good, "another-secret-0123456789abcdef"), Refusal::kMac);
  absl::StatusOr<Announcement> a = DecodeAnnouncement(*good, "another-secret-0123456789abcdef");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(Packet, EncodeRefusesWhatDecodeWould) {
  Announcement a = Sample();
  a.process_id = "short";
  EXPECT_FALSE(EncodeAnnouncement(a, kSecret, kNow).ok());
  a = Sample();
  a.uris.assign(MaxUris() + 1, "tcp://1.2.3.4:5");
  EXPECT_FALSE(EncodeAnnouncement(a, kSecret, kNow).ok());
  a = Sample();
  a.uris = {std::string(MaxUriSize() + 1, 'u')};
  EXPECT_FALSE(EncodeAnnouncement(a, kSecret, kNow).ok());
  a = Sample();
  a.name = std::string(MaxNameSize() + 1, 'n');
  EXPECT_FALSE(EncodeAnnouncement(a, kSecret, kNow).ok());
  a = Sample();
  a.uris.assign(MaxUris(), std::string(MaxUriSize(), 'u'));  // fits each bound, not the packet
  absl::StatusOr<std::string> big = EncodeAnnouncement(a, kSecret, kNow);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReplayGuard, WindowBothWays) {
  ReplayGuard guard(absl::Seconds(30), 16);
  Announcement a = Sample();
  a.nonce = std::string(kNonceSize, 'a');
  a.timestamp_ms = absl::ToUnixMillis(kNow);
  EXPECT_EQ(guard.Check(a, kNow + absl::Seconds(31)), Refusal::kStale);
  EXPECT_EQ(guard.Check(a, kNow - absl::Seconds(31)), Refusal::kStale);  // from the future
  EXPECT_EQ(guard.Check(a, kNow + absl::Seconds(30)), Refusal::kNone);
  EXPECT_EQ(guard.Check(a, kNow + absl::Seconds(30)), Refusal::kReplay);
  EXPECT_EQ(guard.Check(a, kNow), Refusal::kReplay);
  // Another sender may use the same nonce.
  Announcement other = a;
  other.process_id = std::string(kProcessIdSize, '\x08');
  EXPECT_EQ(guard.Check(other, kNow), Refusal::kNone);
}

TEST(ReplayGuard, BoundedAndForgetsOnlyWhatIsStale) {
  ReplayGuard guard(absl::Seconds(10), 4);
  Announcement a = Sample();
  a.timestamp_ms = absl::ToUnixMillis(kNow);
  for (int i = 0; i < 4; ++i) {
    a.nonce = std::string(kNonceSize, static_cast<char>('a' + i));
    EXPECT_EQ(guard.Check(a, kNow), Refusal::kNone);
  }
  a.nonce = std::string(kNonceSize, 'z');
  EXPECT_EQ(guard.Check(a, kNow), Refusal::kReplayCacheFull);
  EXPECT_EQ(guard.size(), 4u);
  // Twenty seconds on, the first four could only come back stale: forgotten.
  a.timestamp_ms = absl::ToUnixMillis(kNow + absl::Seconds(21));
  EXPECT_EQ(guard.Check(a, kNow + absl::Seconds(21)), Refusal::kNone);
  EXPECT_EQ(guard.size(), 1u);
  // A replay of an old packet is stale, not new.
  a.nonce = std::string(kNonceSize, 'a');
  a.timestamp_ms = absl::ToUnixMillis(kNow);
  EXPECT_EQ(guard.Check(a, kNow + absl::Seconds(21)), Refusal::kStale);
}

}  // namespace
}  // namespace picos::discovery
