// What pycos dispycos_httpd1.py and dispycos_httpd2.py share: a client that
// serves the dashboard, ships dispycos_client2's computation to picos-node
// daemons, and runs one I/O job (RunAsync: any number at once per worker,
// pycos io_rtask) for each number of milliseconds typed on stdin, until
// "quit" or the end of input; then it waits for the jobs and closes with
// await_io. The examples differ in the status task: httpd1 leaves the events
// to the dashboard, httpd2 chains its own task behind it
// (DashboardOptions::forward_to).
//
// Output (examples/dispycos_httpd_smoke_test.sh reads it):
//   <name>: dashboard at <url> (token in <file>)
//   <name>: scheduled on <nodes> nodes, <workers> workers
//   <name>: job <i> submitted (<ms> ms)
//   <name>: '<line>' is not a number of milliseconds (0..60000)
//   <name>: job <i> done: <host> <pid> slept <ms> ms
//   <name>: job <i> failed: <status>
//   <name>: <n> jobs done, <m> failed
#ifndef PICOS_EXAMPLES_DISPYCOS_HTTPD_H_
#define PICOS_EXAMPLES_DISPYCOS_HTTPD_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "core/kernel/handles.h"
#include "core/kernel/task.h"

namespace picos::examples {

// Starts the user's status task, on the scheduler of the caller; null for
// none.
using StartStatusTask = std::function<TaskRef()>;

// The example's client task (flags: --nodes, --library, the node flags and
// the dashboard's). Suspends.
Task<absl::Status> DispycosHttpd(std::string name, StartStatusTask start_status);

// main() of such an example: flags checked (exit 2), then the client.
int DispycosHttpdMain(const char* name, int argc, char** argv, StartStatusTask start_status);

}  // namespace picos::examples

#endif  // PICOS_EXAMPLES_DISPYCOS_HTTPD_H_
