// FileReceiverOptions::admit (core/remote/files.h): called with the
// sender's subdirectory, the name and the size of each announced file; a
// refusal reaches the sender with its status and nothing is created, not
// even the subdirectory. Two nodes in this process over a Unix socket;
// every wait has a deadline only a hang reaches.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecret[] = "files admitted or not, one secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

std::string FreshDir(const char* what) {
  std::string t = absl::StrCat(::testing::TempDir(), "/", what, "-XXXXXX");
  char* made = ::mkdtemp(t.data());
  return made ? std::string(made) : std::string();
}

// (Two nodes of one process: the second claims a fresh process id, node.h.)
remote::NodeOptions Options(std::string listen) {
  remote::NodeOptions o;
  o.secret = std::string(kSecret);
  if (!listen.empty()) o.listen.push_back(std::move(listen));
  o.handshake_timeout = kLong;
  o.connect_timeout = kLong;
  return o;
}

PICOS_CORO_TEST(RemoteFilesAdmit, TheHookSeesEachAnnouncedFileAndARefusalCreatesNothing) {
  const std::string dest = FreshDir("admit-dest");
  const std::string src = FreshDir("admit-src");
  std::ofstream(src + "/yes.txt") << "twelve bytes";
  std::ofstream(src + "/no.txt") << "refused";
  auto seen = std::make_shared<std::vector<std::string>>();
  remote::FileReceiverOptions ro;
  ro.dir = dest;
  ro.admit = [seen](const std::vector<std::string>& dir, const std::string& name, uint64_t size) -> absl::Status {
    seen->push_back(absl::StrCat(absl::StrJoin(dir, "/"), "|", name, "|", size));
    if (name == "no.txt") return absl::PermissionDeniedError("not this one");
    return absl::OkStatus();
  };
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(absl::StrCat("unix://@picos-admit-test-", getpid())));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(""));
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<remote::FileReceiver>> rx = remote::FileReceiver::Enable(std::move(ro));
  CO_ASSERT_OK(rx);
  const Location at = Location::Peer((*a)->uris()[0]);
  remote::SendFileOptions so;
  so.dir = "a/b";
  so.timeout = kLong;
  absl::Status yes = co_await remote::SendFile(at, src + "/yes.txt", so);
  EXPECT_OK(yes);
  EXPECT_TRUE(std::filesystem::is_regular_file(dest + "/a/b/yes.txt"));
  so.dir = "c";
  absl::Status no = co_await remote::SendFile(at, src + "/no.txt", so);
  EXPECT_THAT(no, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("receiver: not this one")));
  EXPECT_FALSE(std::filesystem::exists(dest + "/c")) << "the refused file's directory was created";
  std::vector<std::string> want = {"a/b|yes.txt|12", "c|no.txt|7"};
  EXPECT_EQ(*seen, want);
  EXPECT_EQ((*rx)->files_received(), 1u);
  EXPECT_EQ((*rx)->transfers_failed(), 1u);
  rx->reset();
  b->reset();
  a->reset();
}

}  // namespace
}  // namespace picos::testing
