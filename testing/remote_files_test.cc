// Files sent to a peer (core/remote/files.h): two nodes in this process
// over a Unix socket, a FileReceiver on one, SendFile from the other; then
// each refusal, with hand-made requests where SendFile would never send
// such a thing (a peer is not bound to use SendFile). Every wait has a
// deadline only a hang reaches.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecret[] = "files between two nodes, one secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

// A fresh directory under the test's temporary directory.
std::string FreshDir(const char* what) {
  std::string t = absl::StrCat(::testing::TempDir(), "/", what, "-XXXXXX");
  char* made = ::mkdtemp(t.data());
  return made ? std::string(made) : std::string();
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  std::ofstream(path, std::ios::binary) << data;
  ::chmod(path.c_str(), mode);
}

bool SetMtime(const std::string& path, time_t sec, long nsec) {
  struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
  return ::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0;
}

constexpr const char* kBadNames[] = {"..", ".", "", "../evil", "/etc/passwd", ".picos-partial-0000000000000001"};
constexpr const char* kGoneNames[] = {"liar", "skipper", "short", "n", "big"};

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Names in `dir` and its subdirectories, relative ("sub/x.bin").
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    names.push_back(std::filesystem::relative(e.path(), dir).string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool AnyPartial(const std::string& dir) {
  for (const std::string& n : Listing(dir)) {
    if (absl::StrContains(n, ".picos-partial-")) return true;
  }
  return false;
}

// Two nodes on this scheduler: `a` listens and receives, `b` only dials.
struct Pair {
  std::unique_ptr<remote::Node> a, b;
  std::unique_ptr<remote::FileReceiver> rx;
  std::string uri;
};

remote::NodeOptions Options(std::string listen, char pid_tweak) {
  remote::NodeOptions o;
  o.secret = std::string(kSecret);
  if (!listen.empty()) o.listen.push_back(std::move(listen));
  o.handshake_timeout = kLong;
  o.connect_timeout = kLong;
  o.process_id = ProcessId();
  o.process_id[0] = static_cast<char>(o.process_id[0] ^ pid_tweak);
  return o;
}

Task<absl::StatusOr<std::shared_ptr<Pair>>> StartPair(std::string what, remote::FileReceiverOptions rx) {
  auto p = std::make_shared<Pair>();
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(
      t, Options(absl::StrCat("unix://@picos-files-test-", getpid(), "-", what), 1));
  if (!a.ok()) co_return a.status();
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options("", 2));
  if (!b.ok()) co_return b.status();
  absl::StatusOr<std::unique_ptr<remote::FileReceiver>> r = remote::FileReceiver::Enable(std::move(rx));
  if (!r.ok()) co_return r.status();
  p->a = *std::move(a);
  p->b = *std::move(b);
  p->rx = *std::move(r);
  p->uri = p->a->uris()[0];
  co_return p;
}

// A request made by hand (a peer need not use SendFile): the begin message
// with `fields` over the defaults, and the receiver's reply.
Value BeginMessage(const std::string& name, int64_t size) {
  return Value::Map({{"reply", Self()},
                     {"name", name},
                     {"dir", ""},
                     {"size", size},
                     {"mode", 0644},
                     {"mtime_ns", 0},
                     {"overwrite", false}});
}

// Transfer messages by hand (built outside co_await expressions: g++ 12
// and braced lists there).
Value Chunk(int64_t seq, std::string data) {
  return Value::Map({{"seq", seq}, {"data", Value::Bytes(std::move(data))}});
}
Value End(int64_t chunks) { return Value::Map({{"end", chunks}}); }
Value Abort(std::string why) { return Value::Map({{"abort", std::move(why)}}); }
Value BadlyTyped() { return Value::Map({{"reply", Self()}, {"name", 7}}); }

Task<absl::StatusOr<Value>> Ask(TaskRef to, Value msg) {
  PICOS_CO_RETURN_IF_ERROR(to.Send(std::move(msg)));
  co_return co_await Receive(kLong);
}

// Begins a transfer of 10 bytes, sends 5, and ends without a word.
Task<absl::Status> SendOneChunkAndEnd(TaskRef rx, std::string name) {
  absl::StatusOr<Value> ready = co_await Ask(rx, BeginMessage(name, 10));
  if (!ready.ok()) co_return ready.status();
  const Value* ok = ready->is_map() ? ready->Find("ok") : nullptr;
  if (ok == nullptr || !(*ok)["to"].is_task()) co_return absl::InternalError(ready->DebugString());
  absl::StatusOr<Value> ack = co_await Ask((*ok)["to"].as_task(), Chunk(0, "12345"));
  co_return ack.status();
}

std::string ErrorMessage(const absl::StatusOr<Value>& reply) {
  if (!reply.ok() || !reply->is_map() || reply->Find("error") == nullptr) return "<no error>";
  const Value& e = *reply->Find("error");  // {"code": n, "message": s}
  absl::StatusOr<int64_t> code = e.Get<int64_t>("code");
  absl::StatusOr<std::string> message = e.Get<std::string>("message");
  if (!code.ok() || !message.ok()) return e.DebugString();
  return absl::Status(static_cast<absl::StatusCode>(*code), *message).ToString();
}

PICOS_CORO_TEST(RemoteFiles, SendsInChunksKeepingContentModeAndMtime) {
  const std::string src_dir = FreshDir("src");
  const std::string dst_dir = FreshDir("dst");
  remote::FileReceiverOptions ro;
  ro.dir = dst_dir;
  absl::StatusOr<std::shared_ptr<Pair>> p = co_await StartPair("chunks", ro);
  CO_ASSERT_OK(p.status());
  // 2.5 MiB and a few bytes: three chunks of 1 MiB, the last one short.
  std::string data((size_t{5} << 19) + 7, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  const std::string src = src_dir + "/data.bin";
  WriteFile(src, data, 0640);
  CO_ASSERT_TRUE(SetMtime(src, 1600000000, 123456789));

  remote::SendFileOptions so;
  so.dir = "job7/inputs";
  so.timeout = kLong;
  absl::Status sent = co_await remote::SendFile(Location::Peer((*p)->uri), src, so);
  CO_ASSERT_OK(sent);
  const std::string dst = dst_dir + "/job7/inputs/data.bin";
  EXPECT_TRUE(ReadAll(dst) == data) << "the content arrives whole";
  struct stat st;
  CO_ASSERT_TRUE(::stat(dst.c_str(), &st) == 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ((*p)->rx->files_received(), 1u);
  EXPECT_FALSE(AnyPartial(dst_dir));

  // An empty file, and a second copy: refused without overwrite, then
  // replaced with it.
  WriteFile(src_dir + "/empty", "", 0600);
  absl::Status empty = co_await remote::SendFile(Location::Peer((*p)->uri), src_dir + "/empty", so);
  EXPECT_OK(empty);
  EXPECT_TRUE(std::filesystem::exists(dst_dir + "/job7/inputs/empty"));
  WriteFile(src, "shorter now", 0600);
  absl::Status again = co_await remote::SendFile(Location::Peer((*p)->uri), src, so);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(again.message(), HasSubstr("receiver: 'job7/inputs/data.bin' exists"));
  EXPECT_TRUE(ReadAll(dst) == data) << "the existing file is untouched";
  so.overwrite = true;
  absl::Status replaced = co_await remote::SendFile(Location::Peer((*p)->uri), src, so);
  EXPECT_OK(replaced);
  EXPECT_EQ(ReadAll(dst), "shorter now");
  EXPECT_FALSE(AnyPartial(dst_dir));
  (*p)->rx.reset();
  (*p)->b.reset();
  (*p)->a.reset();
}

struct Case {
  const char* dir;
  absl::StatusCode code;
  const char* says;
};
constexpr Case kCases[] = {
    {"/etc", absl::StatusCode::kInvalidArgument, "receiver: absolute subdirectory"},
    {"a/../../escape", absl::StatusCode::kInvalidArgument, "receiver: '..' in subdirectory"},
    {"..", absl::StatusCode::kInvalidArgument, "receiver: '..'"},
    {"link", absl::StatusCode::kInvalidArgument, "receiver: 'link' exists and is not a directory"},
    {"link/deeper", absl::StatusCode::kInvalidArgument, "not a directory"},
};

PICOS_CORO_TEST(RemoteFiles, RefusesWhatWouldLeaveTheDirectoryOrExceedABound) {
  const std::string src_dir = FreshDir("src");
  const std::string dst_dir = FreshDir("dst");
  const std::string outside = FreshDir("outside");
  remote::FileReceiverOptions ro;
  ro.dir = dst_dir;
  ro.max_file_size = 1000;
  ro.max_chunk_size = 64;
  absl::StatusOr<std::shared_ptr<Pair>> p = co_await StartPair("refuse", ro);
  CO_ASSERT_OK(p.status());
  const Location at = Location::Peer((*p)->uri);
  const std::string small = src_dir + "/small";
  WriteFile(small, "twelve bytes", 0644);
  CO_ASSERT_TRUE(::symlink(outside.c_str(), (dst_dir + "/link").c_str()) == 0);

  for (const Case& k : kCases) {
    remote::SendFileOptions so;
    so.dir = k.dir;
    so.timeout = kLong;
    absl::Status s = co_await remote::SendFile(at, small, so);
    EXPECT_EQ(s.code(), k.code) << k.dir << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(k.says)) << k.dir;
  }
  EXPECT_TRUE(Listing(outside).empty()) << "nothing landed through the symlink";

  // Beyond max_file_size.
  WriteFile(src_dir + "/big", std::string(1001, 'x'), 0644);
  remote::SendFileOptions so;
  so.timeout = kLong;
  absl::Status big = co_await remote::SendFile(at, src_dir + "/big", so);
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument) << big;
  EXPECT_THAT(big.message(), HasSubstr("max_file_size"));
  // Chunks beyond max_chunk_size: refused at the first chunk, nothing left.
  WriteFile(src_dir + "/medium", std::string(500, 'm'), 0644);
  so.chunk_size = 100;
  absl::Status chunky = co_await remote::SendFile(at, src_dir + "/medium", so);
  EXPECT_EQ(chunky.code(), absl::StatusCode::kInvalidArgument) << chunky;
  EXPECT_THAT(chunky.message(), HasSubstr("max_chunk_size"));
  so.chunk_size = 64;
  absl::Status fits = co_await remote::SendFile(at, src_dir + "/medium", so);
  EXPECT_OK(fits);
  EXPECT_EQ(ReadAll(dst_dir + "/medium"), std::string(500, 'm'));

  // Names SendFile never sends, by hand.
  absl::StatusOr<TaskRef> rx = co_await LocateTask(remote::kFileReceiverName, at, kLong);
  CO_ASSERT_OK(rx.status());
  std::vector<std::string> bad_names;  // (no braced list in a coroutine: g++ 12)
  for (const char* n : kBadNames) bad_names.push_back(n);
  for (const std::string& name : bad_names) {
    absl::StatusOr<Value> r = co_await Ask(*rx, BeginMessage(name, 4));
    EXPECT_THAT(ErrorMessage(r), HasSubstr("INVALID_ARGUMENT")) << name;
  }
  absl::StatusOr<Value> negative = co_await Ask(*rx, BeginMessage("n", -1));
  EXPECT_THAT(ErrorMessage(negative), HasSubstr("outside 0..1000"));
  absl::StatusOr<Value> garbage = co_await Ask(*rx, BadlyTyped());
  EXPECT_THAT(ErrorMessage(garbage), HasSubstr("malformed request"));
  // Not even a reply address: logged and dropped, and the receiver goes on.
  CO_ASSERT_OK(rx->Send(Value("junk")));

  // More bytes than announced, and chunks out of order.
  absl::StatusOr<Value> ready = co_await Ask(*rx, BeginMessage("liar", 4));
  CO_ASSERT_OK(ready.status());
  CO_ASSERT_TRUE(ready->is_map() && ready->Find("ok") != nullptr);
  TaskRef to = (*ready->Find("ok"))["to"].as_task();
  absl::StatusOr<Value> more =
      co_await Ask(to, Chunk(0, "eight by"));
  EXPECT_THAT(ErrorMessage(more), HasSubstr("more than the 4 bytes announced"));
  ready = co_await Ask(*rx, BeginMessage("skipper", 4));
  CO_ASSERT_OK(ready.status());
  to = (*ready->Find("ok"))["to"].as_task();
  absl::StatusOr<Value> skip = co_await Ask(to, Chunk(1, "ab"));
  EXPECT_THAT(ErrorMessage(skip), HasSubstr("chunk 1 where 0 was due"));
  // The end announced before all the bytes came.
  ready = co_await Ask(*rx, BeginMessage("short", 4));
  CO_ASSERT_OK(ready.status());
  to = (*ready->Find("ok"))["to"].as_task();
  absl::StatusOr<Value> ack = co_await Ask(to, Chunk(0, "ab"));
  EXPECT_EQ(ErrorMessage(ack), "<no error>");
  absl::StatusOr<Value> early = co_await Ask(to, End(1));
  EXPECT_THAT(ErrorMessage(early), HasSubstr("got 2 bytes of 4"));

  std::vector<std::string> gone_names;
  for (const char* n : kGoneNames) gone_names.push_back(n);
  for (const std::string& gone : gone_names) {
    EXPECT_FALSE(std::filesystem::exists(dst_dir + "/" + gone)) << gone;
  }
  // The refused transfers end at once, removing their temporary files.
  for (int i = 0; i < 6000 && AnyPartial(dst_dir); ++i) (void)co_await Sleep(absl::Milliseconds(10));
  EXPECT_FALSE(AnyPartial(dst_dir));
  (*p)->rx.reset();
  (*p)->b.reset();
  (*p)->a.reset();
}

// A sender that goes silent: after idle_timeout the transfer is abandoned,
// the sender hears why, and nothing is left.
PICOS_CORO_TEST(RemoteFiles, ASilentSenderIsAbandonedLeavingNothing) {
  const std::string dst_dir = FreshDir("dst");
  remote::FileReceiverOptions ro;
  ro.dir = dst_dir;
  ro.idle_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::shared_ptr<Pair>> p = co_await StartPair("silent", ro);
  CO_ASSERT_OK(p.status());
  absl::StatusOr<TaskRef> rx = co_await LocateTask(remote::kFileReceiverName, Location::Peer((*p)->uri), kLong);
  CO_ASSERT_OK(rx.status());
  absl::StatusOr<Value> ready = co_await Ask(*rx, BeginMessage("silent", 10));
  CO_ASSERT_OK(ready.status());
  CO_ASSERT_TRUE(ready->is_map() && ready->Find("ok") != nullptr);
  TaskRef to = (*ready->Find("ok"))["to"].as_task();
  CO_ASSERT_OK(to.Send(Chunk(0, "12345")));
  // The acknowledgement, then (after idle_timeout) the reason.
  absl::StatusOr<Value> ack = co_await Receive(kLong);
  EXPECT_EQ(ErrorMessage(ack), "<no error>");
  absl::StatusOr<Value> why = co_await Receive(kLong);
  EXPECT_THAT(ErrorMessage(why), HasSubstr("no word from the sender"));
  for (int i = 0; i < 6000 && !Listing(dst_dir).empty(); ++i) (void)co_await Sleep(absl::Milliseconds(10));
  EXPECT_TRUE(Listing(dst_dir).empty());
  EXPECT_EQ((*p)->rx->transfers_failed(), 1u);
  (*p)->rx.reset();
  (*p)->b.reset();
  (*p)->a.reset();
}

// max_transfers bounds the transfers in progress; one that the sender
// abandons, or that the receiver's end cuts, leaves nothing behind.
PICOS_CORO_TEST(RemoteFiles, TransfersAreBoundedAndABrokenOneLeavesNothing) {
  const std::string dst_dir = FreshDir("dst");
  remote::FileReceiverOptions ro;
  ro.dir = dst_dir;
  ro.max_transfers = 1;
  absl::StatusOr<std::shared_ptr<Pair>> p = co_await StartPair("bounded", ro);
  CO_ASSERT_OK(p.status());
  absl::StatusOr<TaskRef> rx = co_await LocateTask(remote::kFileReceiverName, Location::Peer((*p)->uri), kLong);
  CO_ASSERT_OK(rx.status());

  absl::StatusOr<Value> ready = co_await Ask(*rx, BeginMessage("abandoned", 10));
  CO_ASSERT_OK(ready.status());
  CO_ASSERT_TRUE(ready->is_map() && ready->Find("ok") != nullptr);
  TaskRef to = (*ready->Find("ok"))["to"].as_task();
  absl::StatusOr<Value> ack = co_await Ask(to, Chunk(0, "12345"));
  EXPECT_EQ(ErrorMessage(ack), "<no error>");
  EXPECT_TRUE(AnyPartial(dst_dir)) << "the bytes so far are in a temporary file";
  EXPECT_FALSE(std::filesystem::exists(dst_dir + "/abandoned")) << "and only there";
  absl::StatusOr<Value> second = co_await Ask(*rx, BeginMessage("second", 1));
  EXPECT_THAT(ErrorMessage(second), HasSubstr("RESOURCE_EXHAUSTED"));
  // The sender gives up and says so: the receiver cleans up at once.
  CO_ASSERT_OK(to.Send(Abort("changed my mind")));
  for (int i = 0; i < 6000 && !Listing(dst_dir).empty(); ++i) (void)co_await Sleep(absl::Milliseconds(10));
  EXPECT_TRUE(Listing(dst_dir).empty());
  EXPECT_EQ((*p)->rx->transfers_failed(), 2u);  // second, abandoned

  // A sender task that ends without a word: the receiver's monitor of it
  // ends the transfer at once (idle_timeout is a minute here).
  TaskRef quitter = ThisScheduler().Spawn(SendOneChunkAndEnd, *rx, std::string("quitter"));
  absl::StatusOr<Value> quit = co_await quitter.Join(kLong);
  CO_ASSERT_OK(quit.status());
  for (int i = 0; i < 6000 && !Listing(dst_dir).empty(); ++i) (void)co_await Sleep(absl::Milliseconds(10));
  EXPECT_TRUE(Listing(dst_dir).empty());
  EXPECT_EQ((*p)->rx->transfers_failed(), 3u);  // second, abandoned, quitter

  // A receiver destroyed mid-transfer removes the temporary file too.
  ready = co_await Ask(*rx, BeginMessage("cut", 10));
  CO_ASSERT_OK(ready.status());
  CO_ASSERT_TRUE(ready->is_map() && ready->Find("ok") != nullptr);
  to = (*ready->Find("ok"))["to"].as_task();
  ack = co_await Ask(to, Chunk(0, "12345"));
  EXPECT_TRUE(AnyPartial(dst_dir));
  (*p)->rx.reset();
  EXPECT_TRUE(Listing(dst_dir).empty());
  (*p)->b.reset();
  (*p)->a.reset();
}

PICOS_CORO_TEST(RemoteFiles, SenderErrors) {
  const std::string src_dir = FreshDir("src");
  remote::SendFileOptions so;
  so.timeout = kLong;
  absl::Status missing = co_await remote::SendFile(Location::Local(), src_dir + "/nothing", so);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  absl::Status dir = co_await remote::SendFile(Location::Local(), src_dir, so);
  EXPECT_EQ(dir.code(), absl::StatusCode::kInvalidArgument) << dir;
  WriteFile(src_dir + "/f", "x", 0644);
  so.chunk_size = 0;
  absl::Status zero = co_await remote::SendFile(Location::Local(), src_dir + "/f", so);
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument) << zero;
  so.chunk_size = 1024;
  so.timeout = absl::Milliseconds(100);
  absl::Status nobody = co_await remote::SendFile(Location::Local(), src_dir + "/f", so);
  EXPECT_FALSE(nobody.ok()) << "no receiver registered here";
  remote::FileReceiverOptions not_a_dir;
  not_a_dir.dir = src_dir + "/f";
  EXPECT_EQ(remote::FileReceiver::Enable(not_a_dir).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace picos::testing
