// The node daemon of picos-node: everything but its worker mode. Its flags
// and behaviour are described once, at the top of compute/picos_node.cc.
#ifndef PICOS_COMPUTE_NODE_DAEMON_H_
#define PICOS_COMPUTE_NODE_DAEMON_H_

namespace picos::compute {

// Runs the daemon with the flags parsed already (remote::ParseCommandLine)
// until it is ended; gives the process's exit status (2 for a bad flag,
// with a one-line error on stderr). Main thread, no scheduler running.
int NodeDaemonMain();

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_NODE_DAEMON_H_
