// pycos dispycos_httpd1.py in C++: jobs typed on stdin, the dashboard live.
// Each line is a number of milliseconds: an I/O job (RunAsync, pycos
// io_rtask) of dispycos_client2's computation sleeps that long on a worker;
// "quit" or the end of input waits for the jobs and closes. The dashboard
// (dashboard/dashboard.h) shows the jobs as they run; the shared client is
// examples/dispycos_httpd.h.
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_httpd1 --nodes=tcp://127.0.0.1:9706
//   dispycos_httpd1: dashboard at http://127.0.0.1:8181/ (token in ...)
//   2000
//   dispycos_httpd1: job 0 submitted (2000 ms)
//   dispycos_httpd1: job 0 done: host 4242 slept 2000 ms
#include "examples/dispycos_httpd.h"

int main(int argc, char** argv) {
  return picos::examples::DispycosHttpdMain("dispycos_httpd1", argc, argv, nullptr);
}
