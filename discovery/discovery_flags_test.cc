#include "discovery/discovery_flags.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"

namespace picos::discovery {
namespace {

remote::NodeConfig Config() {
  remote::NodeConfig c;
  c.options.secret = "discovery-flags-test-secret-0123";
  c.options.name = "worker";
  c.peers = {"tcp://10.0.0.2:9705"};
  return c;
}

class DiscoveryFlags : public ::testing::Test {
 protected:
  void SetUp() override { Reset(); }
  void TearDown() override { Reset(); }
  static void Reset() {
    absl::SetFlag(&FLAGS_discovery_group, "default");
    absl::SetFlag(&FLAGS_discovery_iface, "");
    absl::SetFlag(&FLAGS_discovery_ttl, -1);
    unsetenv(kGroupEnv);
    unsetenv(kIfaceEnv);
    unsetenv(kTtlEnv);
  }
};

TEST_F(DiscoveryFlags, DefaultsAndTheNodesConfig) {
  absl::StatusOr<DiscoveryOptions> o = DiscoveryOptionsFromFlags(Config());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->group, kDefaultGroup);
  EXPECT_EQ(o->iface, "");
  EXPECT_EQ(o->ttl, 1);
  EXPECT_EQ(o->secret, Config().options.secret);
  EXPECT_EQ(o->name, "worker");
  EXPECT_EQ(o->peers, Config().peers);
}

TEST_F(DiscoveryFlags, EnvironmentThenFlagsWin) {
  setenv(kGroupEnv, "[ff02::7069:636f]:9000", 1);
  setenv(kIfaceEnv, "eth7", 1);
  setenv(kTtlEnv, "4", 1);
  absl::StatusOr<DiscoveryOptions> o = DiscoveryOptionsFromFlags(Config());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->group, "[ff02::7069:636f]:9000");
  EXPECT_EQ(o->iface, "eth7");
  EXPECT_EQ(o->ttl, 4);
  absl::SetFlag(&FLAGS_discovery_group, "");  // multicast off, even with the variable set
  absl::SetFlag(&FLAGS_discovery_iface, "lo");
  absl::SetFlag(&FLAGS_discovery_ttl, 0);
  o = DiscoveryOptionsFromFlags(Config());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->group, "");
  EXPECT_EQ(o->iface, "lo");
  EXPECT_EQ(o->ttl, 0);
}

TEST_F(DiscoveryFlags, BadValuesNameTheirSource) {
  setenv(kTtlEnv, "many", 1);
  absl::StatusOr<DiscoveryOptions> o = DiscoveryOptionsFromFlags(Config());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(o.status().message(), "$PICOS_DISCOVERY_TTL")) << o.status();
  unsetenv(kTtlEnv);
  absl::SetFlag(&FLAGS_discovery_ttl, 256);
  o = DiscoveryOptionsFromFlags(Config());
  EXPECT_TRUE(absl::StrContains(o.status().message(), "--discovery_ttl")) << o.status();
  absl::SetFlag(&FLAGS_discovery_ttl, -1);
  absl::SetFlag(&FLAGS_discovery_group, "no port here");
  o = DiscoveryOptionsFromFlags(Config());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(o.status().message(), "--discovery_group")) << o.status();
}

}  // namespace
}  // namespace picos::discovery
