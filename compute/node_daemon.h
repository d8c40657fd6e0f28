// The node daemon of picos-node as an operator runs it (dispycosnode): its
// flags, signals, console and lifecycle. This comment is the one
// description of them; compute/picos_node.cc describes the requests it
// serves and the worker mode.
//
//   picos-node --cpus=2 --listen=tcp://10.0.0.2:9706 --secret_file=secret
//       --dest_path=/var/lib/picos-node --zombie_period=60 --clean
//
// Flags (a bad value is a one-line error on stderr and exit status 2):
//   --cpus=N                 workers per computation: N > 0 (at most 256),
//                            0 every CPU, -N leave N unused
//   --dest_path=DIR          where computations' files land, a folder per
//                            computation (required; must exist)
//   --max_file_size=BYTES    largest file a client may ship (default 256 MiB)
//   --max_computation_bytes=BYTES
//                            most bytes one computation's folder may hold;
//                            a file that would go beyond it is refused when
//                            announced, before a byte is written (0: no
//                            quota, the default). What the folder holds
//                            then counts, transfers in progress as far as
//                            written: two files announced at once may each
//                            fit alone and together exceed it
//   --listen, --advertise, --peer, --secret_file, --node_name
//                            the node flags (core/remote/node_flags.h);
//                            --name=NAME is --node_name (dispycos's -n)
//   --discover               announce the node by authenticated multicast
//                            (discovery/discovery.h) so that a client whose
//                            Computation follows discovery
//                            (ComputationOptions::discover) finds it, with
//                            --discovery_group, --discovery_iface,
//                            --discovery_ttl (discovery/discovery_flags.h;
//                            a bad one is a one-line error, exit status 2).
//                            Off by default (dispycosnode announces always):
//                            a node on a shared LAN then reaches only the
//                            clients told where it is, and test machines
//                            running many nodes keep them apart; --peer
//                            dials the same either way
//   --serve=N                serve N computations, then exit 0 once the
//                            last of them closed (0: forever, the default);
//                            a start beyond N is refused
//   --service_start=HH:MM, --service_stop=HH:MM
//                            accept new computations only from start to
//                            stop, local time (either alone: from 00:00,
//                            or until 24:00; start after stop spans
//                            midnight); outside, a start is refused
//                            (kUnavailable) and running ones go on
//   --service_end=HH:MM      at that local time each day, close every
//                            computation (its workers end, its files go)
//   --pulse_interval=S       how often the node sends each computation's
//                            client task its host's facts (a pulse; the
//                            client's node_health events), unless the start
//                            asks another interval (default 2)
//   --min_pulse_interval=S, --max_pulse_interval=S
//                            bounds on the pulse interval: a start's asked
//                            interval is kept within them, and
//                            --pulse_interval must lie within them (default
//                            1 and 100; 0.1 <= min <= max <= 3600). These
//                            and the other seconds flags also take
//                            durations such as 200ms or 2m
//   --zombie_period=S        a computation whose client is gone (the
//                            client task its start named ended, or its
//                            peer was lost) is closed after S seconds (default 60;
//                            0 never; else 0.1 .. 86400). A client cannot
//                            come back meanwhile: a peer that reconnects
//                            within NodeOptions::reconnect_grace was never
//                            lost, and one that was lost has lost its
//                            handles too; the period is the time its jobs
//                            and files are kept (for an operator to look)
//   --trusted_signer=FILE    an Ed25519 public key (compute/sign.h);
//                            repeatable. With one, a computation starts
//                            only if its library came with a <library>.sig
//                            signed by one of the keys (picos-sign)
//   --clean                  at start, end (SIGKILL) the workers of a
//                            previous run named by its pid files and
//                            remove their folders (below)
//   --log_level=LEVEL        trace, debug, info, warn, error or off
//                            (default: $PICOS_LOG_LEVEL, else info)
//   --metrics_listen=URI     serve Prometheus metrics at /metrics there
//                            (metrics/http_server.h; behind the bearer
//                            token of --metrics_token_file=FILE): the
//                            scheduler's and the remote layer's
//                            (metrics/runtime_metrics.h: per-peer messages
//                            and bytes, heartbeats missed, reconnects) and
//                            the node's own: picos_node_computations,
//                            _workers, _worker_restarts_total (restart_worker
//                            requests), _computations_started_total, and
//                            the host's _cpu_available_percent,
//                            _memory_{total,available}_bytes,
//                            _swap_{total,free}_bytes,
//                            _disk_{total,free}_bytes, _load{minutes}
//   --log_format=FORMAT      text (default) or json: one JSON object per
//                            line, {"ts","level","file","line","thread",
//                            "msg"} (core/kernel/log.h), for log
//                            collectors; passed on to the workers
//   --daemon                 never read stdin (no console)
//   --config=FILE            read flags from FILE first: `name=value`
//                            lines (the names above, without --), blank
//                            lines and `#` comments; a flag on the command
//                            line wins. An unknown name or a bad value is a
//                            one-line error naming FILE:LINE, exit 2
//   --save_config=FILE       write every flag above as FILE's lines (what
//                            --config reads) and exit 0
//
// Status (compute/daemon_status.h): `picos-node --status
// [--connect=tcp://host:9706] [--json] [--status_timeout=10s]`, with the
// cluster's secret (--secret_file or $PICOS_REMOTE_SECRET), asks a running
// node over its authenticated port ({"op": "status"}) what it runs: its
// computations, their workers (index, pid, URI, running or ended), its
// health (CPU, memory, disk, swap, load), uptime and peers; prints a table,
// or one JSON object with --json, and exits 0. Unreachable, a wrong secret,
// not a picos-node: one line on stderr ("picos-node --status: ..."), exit
// status 1 (the remote layer's log lines only with --log_level). The node
// does not see jobs (they go from the client to the workers): a client's
// ComputationMetrics (compute/computation_metrics.h) counts them.
//
// Lifecycle, one line on stdout per event (for operators and tests):
//   listening <uri>
//   computation started <id> <workers>       (worker lines: picos_node.cc)
//   client lost <id> <why>                   (the zombie period starts)
//   computation closed <id> <why>            (client | zombie | service_end
//                                             | console | node closing)
//   signal <NAME>: closing                   SIGTERM, SIGHUP, SIGQUIT and a
//                                            first SIGINT close gracefully:
//                                            no new computation, every one
//                                            closed (workers SIGTERM, then
//                                            SIGKILL after 30 s; files
//                                            removed), a goodbye to every
//                                            peer (remote::Node::Close),
//                                            "node closed", exit status 0
//   signal SIGINT: terminating               a second SIGINT (or the console's
//                                            terminate): workers SIGKILLed,
//                                            files removed, exit status 1
//   clean: ...                               what --clean did
//
// The client task: a start may name one ("client", compute/picos_node.cc
// has the request), one handle for both of the node's uses of its client:
// the node sends it a pulse every pulse interval while the computation runs,
// and joins it, so that its end (the client closed or destroyed its
// Computation) or the loss of its peer starts the zombie period. A start
// without one gets neither pulses nor a zombie period (it runs until closed).
//
// Pid files: each worker's pid is written to
// <dest_path>/<id>/.picos-worker-<index>.pid (gone with the folder). A
// node killed outright leaves them; its workers end with it
// (PR_SET_PDEATHSIG), so --clean mostly removes folders. It kills a pid only
// if /proc/<pid>/cmdline is picos-node in worker mode serving a library in
// that very folder (--worker_library=<dest_path>/<id>/...): a pid reused by
// another program, or a file a client shipped, is never a reason to kill.
//
// Console: when stdin is a terminal (and not --daemon), lines `status`
// (computations and their workers, settings), `close` (close every
// computation, keep serving), `quit` (close gracefully and exit) and
// `terminate` (as a second SIGINT).
//
// Threads: the daemon runs on one scheduler. Signals are blocked in every
// thread and taken by one thread with sigwait, which sends them to the
// daemon's task as messages (a handle's Send is safe from any thread); the
// console is read by another thread the same way. Workers start with the
// default signal mask (libuv resets it in the child).
#ifndef PICOS_COMPUTE_NODE_DAEMON_H_
#define PICOS_COMPUTE_NODE_DAEMON_H_

#include <string>
#include <vector>

namespace picos::compute {

// The command line to parse (remote::ParseCommandLine) after --config
// FILE was applied to the flags (the command line then wins over it) and
// repeated --trusted_signer flags were joined into one. On a bad config
// file prints the one-line error and exits with status 2. Main thread,
// before anything else.
std::vector<std::string> PrepareNodeCommandLine(int argc, char** argv);

// Applies --log_format (text, or json: core/kernel/log.h) to the log, in
// both modes (the daemon passes it on to its workers). False, with a
// one-line error on stderr, for another value (exit status 2). Main thread,
// after the flags are parsed.
bool ApplyLogFormatFlag();

// Runs the daemon with the flags parsed already, until it is ended; gives
// the process's exit status (2 for a bad flag, with a one-line error on
// stderr). Main thread, no scheduler running.
int NodeDaemonMain();

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_NODE_DAEMON_H_
