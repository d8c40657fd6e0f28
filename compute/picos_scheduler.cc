// picos-scheduler: the compute scheduler shared by several clients
// (compute/scheduler.h says what it does, its flags and requests).
//
//   picos-scheduler --listen=tcp://10.0.0.1:9705 --secret_file=secret
//       --node=tcp://10.0.0.2:9706 --node=tcp://10.0.0.3:9706
#include <string>
#include <vector>

#include "compute/scheduler.h"
#include "core/remote/node_flags.h"

int main(int argc, char** argv) {
  std::vector<std::string> args = picos::compute::PrepareSchedulerCommandLine(argc, argv);
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  picos::remote::ParseCommandLine(static_cast<int>(args.size()), argp.data());
  return picos::compute::SchedulerDaemonMain();
}
