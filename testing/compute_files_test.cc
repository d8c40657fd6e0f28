// A computation's files (compute/computation.h "Files", compute/export.h's
// Job::dir, job_dir and SendFile), end to end with a real picos-node and its
// worker processes on loopback: data files shipped at Schedule and opened
// by a job by relative name; Computation::SendFile to a node and to a
// worker (into a subdirectory); a job's own files (RunOptions::files); files
// a job sends back to the client, with their content, mode and mtime and a
// file_received event; every escaping path refused, client to node
// (absolute, "..", a symlink out of the folder) and job to client (the
// same); files over the size limits (the node's --max_file_size and
// --max_computation_bytes, the client's max_file_size) refused with a clear
// error while the node keeps serving; the node's folder gone after Close,
// and after a refused Schedule; a library built against compute ABI 2 still
// run.
//
// Every wait is bounded (kLong, which only a hang reaches). The test kills
// only the node it started, and kills it whatever happens.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compute/computation.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using namespace compute_test;  // NOLINT: the helpers of this test family
using ::testing::HasSubstr;

constexpr char kFilesLibrary[] = "testing/libcompute_files_lib.so";

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream o(path, std::ios::binary | std::ios::trunc);
  o << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The pattern compute_files_lib's make_and_send writes.
std::string Pattern(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + i % 26));
  return s;
}

// A client node that listens (workers dial it to send files back).
Task<absl::StatusOr<std::unique_ptr<remote::Node>>> ListeningClientNode() {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.name = "compute-files-client";
  o.listen = {"tcp://127.0.0.1:0"};
  o.connect_timeout = kLong;
  o.handshake_timeout = kLong;
  co_return co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
}

// Runs `fn` with `arg` (and `ro`) and gives its result as text.
Task<absl::StatusOr<std::string>> RunText(compute::Computation& c, std::string fn, std::string arg,
                                          compute::RunOptions ro = compute::RunOptions()) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run(std::move(fn), std::move(arg), std::move(ro)));
  PICOS_CO_ASSIGN_OR_RETURN(Value r, co_await job.Join(kLong));
  co_return r.as_string();
}

// Data files, SendFile to a node and a worker, a job's own files, every
// escaping path from client to node, the node's size limit at Schedule and
// at SendFile, and the folder gone after Close.
PICOS_CORO_TEST(ComputeFiles, ShippedToNodesAndWorkersAndGoneAfterClose) {
  const std::string dest = FreshDir("compute-files-node");
  const std::string local = FreshDir("compute-files-local");
  const std::string outside = FreshDir("compute-files-outside");
  WriteFile(local + "/data.txt", "hello data\n");
  WriteFile(local + "/extra.txt", "extra\n");
  WriteFile(local + "/w.txt", "to a worker\n");
  WriteFile(local + "/input.txt", "job input\n");
  WriteFile(local + "/big.bin", std::string(1500000, 'x'));
  std::vector<std::string> limit = {"--max_file_size=1000000"};
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest, limit);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    compute::ComputationOptions o;
    o.library = kFilesLibrary;
    o.files = {local + "/data.txt"};
    absl::StatusOr<std::unique_ptr<compute::Computation>> made = compute::Computation::Create(o);
    EXPECT_OK(made.status());
    if (made.ok()) {
      compute::Computation& c = **made;
      const std::string folder = absl::StrCat(dest, "/", c.id());
      std::vector<std::string> nodes = {node->uri};
      absl::Status scheduled = co_await c.Schedule(nodes);
      EXPECT_OK(scheduled);
      // A data file, opened by a bytes-only function by its relative name.
      absl::StatusOr<std::string> got = co_await RunText(c, "read_file", "data.txt");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_EQ(*got, "hello data\n");}
      EXPECT_EQ(ReadFile(folder + "/data.txt"), "hello data\n");

      // SendFile to the node, then to a worker into a subdirectory.
      absl::Status sent = co_await c.SendFile(node->uri, local + "/extra.txt");
      EXPECT_OK(sent);
      got = co_await RunText(c, "read_file", "extra.txt");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_EQ(*got, "extra\n");}
      const std::string worker = c.workers().empty() ? std::string() : c.workers()[1].uri;
      compute::FileOptions sub;
      sub.dir = "sub/deeper";
      sent = co_await c.SendFile(worker, local + "/w.txt", sub);
      EXPECT_OK(sent);
      compute::RunOptions at;
      at.where = worker;
      got = co_await RunText(c, "read_file", "sub/deeper/w.txt", at);
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_EQ(*got, "to a worker\n");}
      // Again without overwrite: the node refuses, with its reason.
      sent = co_await c.SendFile(worker, local + "/w.txt", sub);
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("w.txt")));
      // A node or worker the computation does not use.
      sent = co_await c.SendFile("tcp://127.0.0.1:1", local + "/w.txt");
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kNotFound));

      // A job's own files, in Job::job_dir().
      compute::RunOptions with_files;
      with_files.files = {local + "/input.txt"};
      got = co_await RunText(c, "read_job_file", "input.txt", with_files);
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_EQ(*got, "job input\n");}
      // One that cannot be shipped is the job's error.
      compute::RunOptions missing;
      missing.files = {local + "/no-such-file"};
      got = co_await RunText(c, "read_job_file", "no-such-file", missing);
      EXPECT_THAT(got.status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-file")));

      // Paths that escape the computation's folder: absolute, "..", and a
      // symlink in the folder that leads out. Nothing lands outside.
      compute::FileOptions escape;
      escape.dir = outside;
      sent = co_await c.SendFile(node->uri, local + "/extra.txt", escape);
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
      escape.dir = "../..";
      sent = co_await c.SendFile(node->uri, local + "/extra.txt", escape);
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("..")));
      escape.dir = "sub/../../x";
      sent = co_await c.SendFile(node->uri, local + "/extra.txt", escape);
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("..")));
      got = co_await RunText(c, "make_symlink", absl::StrCat("out\n", outside));
      EXPECT_OK(got.status());
      escape.dir = "out";
      sent = co_await c.SendFile(node->uri, local + "/extra.txt", escape);
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out")));
      EXPECT_TRUE(std::filesystem::is_empty(outside));

      // Beyond the node's --max_file_size: refused before a byte is
      // written, and the node keeps serving.
      sent = co_await c.SendFile(node->uri, local + "/big.bin");
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("big.bin")));
      EXPECT_FALSE(std::filesystem::exists(folder + "/big.bin"));
      got = co_await RunText(c, "read_file", "data.txt");
      EXPECT_OK(got.status());

      // A job's SendFile without client_uri: kFailedPrecondition (9).
      got = co_await RunText(c, "send_path", "data.txt");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_THAT(*got, HasSubstr("9 the client takes no files"));}

      // A data file over the node's limit: Schedule's error names the file
      // and the node's reason; what was shipped goes.
      compute::ComputationOptions o2;
      o2.library = kFilesLibrary;
      o2.files = {local + "/big.bin"};
      absl::StatusOr<std::unique_ptr<compute::Computation>> c2 = compute::Computation::Create(o2);
      EXPECT_OK(c2.status());
      if (c2.ok()) {
        absl::Status refused = co_await (*c2)->Schedule(nodes);
        EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("big.bin")));
        EXPECT_THAT(std::string(refused.message()), HasSubstr(node->uri));
        EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dest, "/", (*c2)->id())));
        absl::Status closed2 = co_await (*c2)->Close();
        (void)closed2;
      }
      got = co_await RunText(c, "read_file", "data.txt");
      EXPECT_OK(got.status());

      // Close: every file of the computation on the node goes.
      EXPECT_TRUE(std::filesystem::exists(folder + "/jobs"));
      absl::Status closed = co_await c.Close();
      EXPECT_OK(closed);
      EXPECT_FALSE(std::filesystem::exists(folder));
    }
    // Create refuses data files whose names collide, or that are missing.
    compute::ComputationOptions twice;
    twice.library = kFilesLibrary;
    twice.files = {local + "/data.txt", local + "/data.txt"};
    EXPECT_THAT(compute::Computation::Create(twice).status(), StatusIs(absl::StatusCode::kInvalidArgument));
    twice.files = {local + "/none"};
    EXPECT_THAT(compute::Computation::Create(twice).status(), StatusIs(absl::StatusCode::kNotFound));
    me->reset();
  }
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

// A job's files back to the client: content, mode and mtime, the
// file_received event, a subdirectory; escaping subdirectories and a file
// over the client's max_file_size refused, each the job's SendFile error.
PICOS_CORO_TEST(ComputeFiles, JobsSendFilesBackToTheClient) {
  const std::string dest = FreshDir("compute-files-back-node");
  const std::string back = FreshDir("compute-files-back");
  const std::string outside = FreshDir("compute-files-back-outside");
  std::filesystem::create_directory_symlink(outside, back + "/link");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ListeningClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    std::shared_ptr<Events> events = StartCollector();
    compute::ComputationOptions o;
    o.library = kFilesLibrary;
    o.client_uri = (*me)->uris()[0];
    o.dest_path = back;
    o.max_file_size = 10000;
    o.status_task = events->task;
    absl::StatusOr<std::unique_ptr<compute::Computation>> made = compute::Computation::Create(o);
    EXPECT_OK(made.status());
    if (made.ok()) {
      compute::Computation& c = **made;
      std::vector<std::string> nodes = {node->uri};
      absl::Status scheduled = co_await c.Schedule(nodes);
      EXPECT_OK(scheduled);
      // A file made by the job, with mode 0640 and mtime 1,500,000,000.
      absl::StatusOr<TaskRef> job = co_await c.Run("make_and_send", "result.txt\n5000\n640\n1500000000\n");
      EXPECT_OK(job.status());
      if (job.ok()) {
        absl::StatusOr<Value> r = co_await job->Join(kLong);
        EXPECT_OK(r.status());
        if (r.ok()) {
EXPECT_EQ(r->as_string(), "0 ");}
      }
      const std::string result = back + "/result.txt";
      EXPECT_EQ(ReadFile(result), Pattern(5000));
      struct stat st {};
      EXPECT_EQ(stat(result.c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0640u);
      EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
      bool heard = co_await WaitForEvents(events, "file_received");
      EXPECT_TRUE(heard);
      std::vector<Value> files = events->Of("file_received");
      if (!files.empty()) {
        EXPECT_EQ(files[0].GetOr<std::string>("path", ""), std::filesystem::canonical(result).string());
        EXPECT_EQ(files[0].GetOr<int64_t>("size", -1), 5000);
        EXPECT_GT(files[0].GetOr<uint64_t>("job", 0), 0u);
        EXPECT_EQ(files[0].GetOr<std::string>("worker", ""), c.workers()[0].uri);
      }
      // Into a subdirectory, created on the client.
      absl::StatusOr<std::string> got = co_await RunText(c, "make_and_send", "r.txt\n10\n600\n1600000000\nr/1");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_EQ(*got, "0 ");}
      EXPECT_EQ(ReadFile(back + "/r/1/r.txt"), Pattern(10));
      // The same name again, without overwrite: kAlreadyExists (6).
      got = co_await RunText(c, "make_and_send", "r.txt\n10\n600\n1600000000\nr/1");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_THAT(*got, HasSubstr("6 "));}

      // Escaping subdirectories: absolute, "..", a symlink out of dest_path.
      // Each is the job's SendFile error (kInvalidArgument, 3).
      std::vector<std::string> escapes = {outside, "../x", "r/../../x", "link"};
      for (const std::string& sub : escapes) {
        SCOPED_TRACE(sub);
        got = co_await RunText(c, "make_and_send", absl::StrCat("e.txt\n10\n600\n1600000000\n", sub));
        EXPECT_OK(got.status());
        if (got.ok()) {
EXPECT_THAT(*got, HasSubstr("3 receiver: "));}
      }
      EXPECT_TRUE(std::filesystem::is_empty(outside));
      // Beyond the client's max_file_size.
      got = co_await RunText(c, "make_and_send", "huge.txt\n20000\n600\n1600000000\n");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_THAT(*got, HasSubstr("3 receiver: "));}
      EXPECT_FALSE(std::filesystem::exists(back + "/huge.txt"));
      // A file the job does not have: kNotFound (5).
      got = co_await RunText(c, "send_path", "no-such-file");
      EXPECT_OK(got.status());
      if (got.ok()) {
EXPECT_THAT(*got, HasSubstr("5 "));}
      // Only the files sent whole were announced.
      EXPECT_EQ(events->Of("file_received").size(), 2u);

      absl::Status closed = co_await c.Close();
      EXPECT_OK(closed);
      // The files stay on the client; the node's folder is gone.
      EXPECT_TRUE(std::filesystem::exists(result));
      EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dest, "/", c.id())));
    }
    (void)events->task.Terminate();
    me->reset();
  }
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

// The node's --max_computation_bytes bounds a computation's folder: a data
// file that would go beyond it fails Schedule (the file and the reason
// named), a SendFile beyond it fails, and the node keeps serving.
PICOS_CORO_TEST(ComputeFiles, TheNodesQuotaBoundsDataFilesAndSendFile) {
  const std::string dest = FreshDir("compute-files-quota");
  const std::string local = FreshDir("compute-files-quota-local");
  WriteFile(local + "/small.txt", std::string(100, 's'));
  WriteFile(local + "/large.txt", std::string(5000, 'l'));
  std::error_code ec;
  const uint64_t library = std::filesystem::file_size(kFilesLibrary, ec);
  CO_ASSERT_TRUE(!ec);
  std::vector<std::string> quota = {absl::StrCat("--max_computation_bytes=", library + 1000)};
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, quota);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    std::vector<std::string> nodes = {node->uri};
    compute::ComputationOptions o;
    o.library = kFilesLibrary;
    o.files = {local + "/large.txt"};
    absl::StatusOr<std::unique_ptr<compute::Computation>> over = compute::Computation::Create(o);
    EXPECT_OK(over.status());
    if (over.ok()) {
      absl::Status refused = co_await (*over)->Schedule(nodes);
      EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("large.txt")));
      EXPECT_THAT(std::string(refused.message()), HasSubstr("--max_computation_bytes"));
      EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dest, "/", (*over)->id())));
      absl::Status closed = co_await (*over)->Close();
      (void)closed;
    }
    o.files = {local + "/small.txt"};
    absl::StatusOr<std::unique_ptr<compute::Computation>> made = compute::Computation::Create(o);
    EXPECT_OK(made.status());
    if (made.ok()) {
      compute::Computation& c = **made;
      absl::Status scheduled = co_await c.Schedule(nodes);
      EXPECT_OK(scheduled);
      absl::Status sent = co_await c.SendFile(node->uri, local + "/large.txt");
      EXPECT_THAT(sent, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("large.txt")));
      absl::StatusOr<std::string> got = co_await RunText(c, "read_file", "small.txt");
      EXPECT_OK(got.status());
      if (got.ok()) {
        EXPECT_EQ(*got, std::string(100, 's'));
      }
      absl::Status closed = co_await c.Close();
      EXPECT_OK(closed);
    }
    me->reset();
  }
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

// Job::dir and Job::SendFile took compute ABI 3, by appending to the job
// context: a library built against ABI 2 still runs, its jobs reading their
// context as they did.
PICOS_CORO_TEST(ComputeFiles, AnAbi2LibraryStillRuns) {
  const std::string dest = FreshDir("compute-files-abi2");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    compute::ComputationOptions o;
    o.library = "testing/libcompute_abi2_lib.so";
    absl::StatusOr<std::unique_ptr<compute::Computation>> made = compute::Computation::Create(o);
    EXPECT_OK(made.status());
    if (made.ok()) {
      std::vector<std::string> nodes = {node->uri};
      absl::Status scheduled = co_await (*made)->Schedule(nodes);
      EXPECT_OK(scheduled);
      absl::StatusOr<std::string> got = co_await RunText(**made, "old_job", "x");
      EXPECT_OK(got.status());
      if (got.ok()) {
        EXPECT_EQ(*got, "abi2 x job 1");
      }
      absl::Status closed = co_await (*made)->Close();
      EXPECT_OK(closed);
    }
    me->reset();
  }
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

}  // namespace
}  // namespace picos::testing
