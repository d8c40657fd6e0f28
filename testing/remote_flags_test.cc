// The shared flags of remote programs (core/remote/node_flags.h): what is
// accepted, what is refused and how the error names it, the environment
// fallbacks, and ConnectPeers naming the peer that failed. Here rather than
// beside node_flags.cc because it checks schemes against the real
// transports, a layer that core/remote may not include.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

using ::picos::remote::NodeConfig;
using ::picos::remote::NodeConfigFromValues;
using ::picos::remote::NodeFlagDefaults;
using ::picos::remote::NodeFlagValues;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "a secret long enough for the handshake";

// Every test starts from an environment without the node's variables.
class RemoteFlags : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {remote::kListenEnv, remote::kAdvertiseEnv, remote::kPeersEnv, remote::kSecretEnv}) {
      unsetenv(v);
    }
  }
  void TearDown() override { SetUp(); }
  const TransportRegistry& t_ = transports::DefaultTransports();
};

TEST_F(RemoteFlags, ListenPeersAndNameFromFlags) {
  setenv(remote::kSecretEnv, kSecret, 1);
  NodeFlagValues v;
  v.listen = {"tcp://127.0.0.1:0", "unix://@picos-flags-test"};
  v.listen_set = true;
  v.peers = {"127.0.0.1:9705", " tls://localhost:9706 "};
  v.peers_set = true;
  v.node_name = "n1";
  absl::StatusOr<NodeConfig> c = NodeConfigFromValues(v, t_, {.name = "prog", .listen = {"tcp://0.0.0.0:1"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->options.listen, ElementsAre("tcp://127.0.0.1:0", "unix://@picos-flags-test"));
  EXPECT_THAT(c->peers, ElementsAre("tcp://127.0.0.1:9705", "tls://localhost:9706"))
      << "host:port is tcp://, blanks around a URI are dropped";
  EXPECT_EQ(c->options.name, "n1");
  EXPECT_EQ(c->options.secret, kSecret);
}

TEST_F(RemoteFlags, DefaultsWhenNothingIsGiven) {
  setenv(remote::kSecretEnv, kSecret, 1);
  absl::StatusOr<NodeConfig> c = NodeConfigFromValues({}, t_, {.name = "prog", .listen = {"tcp://127.0.0.1:9705"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->options.listen, ElementsAre("tcp://127.0.0.1:9705"));
  EXPECT_TRUE(c->peers.empty());
  EXPECT_EQ(c->options.name, "prog");
}

TEST_F(RemoteFlags, EnvironmentWhenAFlagIsAbsentAndTheFlagWhenBoth) {
  setenv(remote::kSecretEnv, kSecret, 1);
  setenv(remote::kListenEnv, "unix://@picos-env-a, tcp://127.0.0.1:0", 1);
  setenv(remote::kPeersEnv, "tcp://127.0.0.1:1 tcp://127.0.0.1:2", 1);
  setenv(remote::kAdvertiseEnv, "tcp://10.0.0.1:9705", 1);
  absl::StatusOr<NodeConfig> c = NodeConfigFromValues({}, t_, {.listen = {"tcp://0.0.0.0:1"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->options.listen, ElementsAre("unix://@picos-env-a", "tcp://127.0.0.1:0"));
  EXPECT_THAT(c->peers, ElementsAre("tcp://127.0.0.1:1", "tcp://127.0.0.1:2"));
  EXPECT_THAT(c->options.advertise, ElementsAre("tcp://10.0.0.1:9705"));

  NodeFlagValues v;
  v.peers_set = true;  // --peer= given empty: nobody, whatever the environment says
  v.listen = {"tcp://127.0.0.1:5"};
  v.listen_set = true;
  c = NodeConfigFromValues(v, t_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->options.listen, ElementsAre("tcp://127.0.0.1:5"));
  EXPECT_TRUE(c->peers.empty());
}

TEST_F(RemoteFlags, BadUrisAreRefusedNamingTheFlag) {
  setenv(remote::kSecretEnv, kSecret, 1);
  struct Case {
    std::vector<std::string> listen, peers;
    const char* says;
  };
  const Case cases[] = {
      {{"tcp://127.0.0.1:99999"}, {}, "--listen=tcp://127.0.0.1:99999"},
      {{"bogus://x:1"}, {}, "no stream transport for bogus://"},
      {{}, {"tcp://user@host:1"}, "--peer=tcp://user@host:1"},
      {{}, {"mcast://239.1.1.1:9"}, "--peer=mcast://239.1.1.1:9"},  // a datagram scheme
      {{}, {std::string(5000, 'a')}, "--peer: a URI longer than"},
  };
  for (const Case& k : cases) {
    NodeFlagValues v;
    v.listen = k.listen;
    v.listen_set = true;
    v.peers = k.peers;
    v.peers_set = true;
    absl::StatusOr<NodeConfig> c = NodeConfigFromValues(v, t_);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << k.says;
    EXPECT_THAT(c.status().message(), HasSubstr(k.says));
  }
  NodeFlagValues many;
  many.peers.assign(remote::kMaxFlagUris + 1, "tcp://127.0.0.1:1");
  many.peers_set = true;
  EXPECT_THAT(NodeConfigFromValues(many, t_).status().message(), HasSubstr("more than 64 URIs"));

  setenv(remote::kPeersEnv, "tcp://127.0.0.1:1,tcp://[::1", 1);
  absl::StatusOr<NodeConfig> c = NodeConfigFromValues({}, t_);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("$PICOS_REMOTE_PEERS=tcp://[::1"));
}

TEST_F(RemoteFlags, SecretIsRequiredAndNeverQuoted) {
  absl::StatusOr<NodeConfig> c = NodeConfigFromValues({}, t_);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("PICOS_REMOTE_SECRET"));

  setenv(remote::kSecretEnv, "short", 1);  // ValidateSecret refuses it
  c = NodeConfigFromValues({}, t_);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), Not(HasSubstr("short")));

  // The file wins over the environment.
  const std::string path = absl::StrCat(::testing::TempDir(), "/secret");
  {
    std::ofstream f(path);
    f << "the secret in the file, long enough\nsecond line ignored\n";
  }
  NodeFlagValues v;
  v.secret_file = path;
  c = NodeConfigFromValues(v, t_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->options.secret, "the secret in the file, long enough");

  v.secret_file = path + ".missing";
  c = NodeConfigFromValues(v, t_);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("--secret_file"));
}

TEST(RemoteFlagsArgv, RepeatedListFlagsAreJoined) {
  std::vector<std::string> out = remote::JoinRepeatedListFlags(
      {"prog", "--peer=a:1", "--count=3", "--listen", "unix://@x", "-peer=b:2,c:3", "--peer", "d:4",
       "--", "--peer=positional"});
  EXPECT_THAT(out, ElementsAre("prog", "--peer=a:1,b:2,c:3,d:4", "--count=3", "--listen=unix://@x", "--",
                               "--peer=positional"));
  EXPECT_THAT(remote::JoinRepeatedListFlags({"prog", "--peer"}), ElementsAre("prog", "--peer"))
      << "a missing value is left for absl to report";
}

// A peer nobody listens at: ConnectPeers says which.
PICOS_CORO_TEST(RemoteFlagsConnect, ConnectPeersNamesThePeerThatFailed) {
  remote::NodeOptions o;
  o.secret = std::string(kSecret);
  o.connect_timeout = absl::Seconds(60);  // refused at once; only a hang reaches it
  absl::StatusOr<std::unique_ptr<remote::Node>> node =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  CO_ASSERT_OK(node.status());
  const std::string nobody = absl::StrCat("unix://@picos-flags-nobody-", getpid());
  std::vector<std::string> peers;  // (no braced list in a coroutine: g++ 12 miscompiles it)
  peers.push_back(nobody);
  absl::Status s = co_await remote::ConnectPeers(**node, peers);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("--peer ", nobody, ": ")));
  absl::Status none = co_await remote::ConnectPeers(**node, std::vector<std::string>());
  EXPECT_TRUE(none.ok()) << none;
}

}  // namespace
}  // namespace picos::testing
