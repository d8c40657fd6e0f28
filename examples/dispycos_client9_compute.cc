// The computation of dispycos_client9_node and dispycos_client9_server
// (pycos dispycos_client9_node.py / dispycos_client9_server.py), a shared
// library built with picos_computation; it links only compute/export.h.
//
// Its setup hooks (compute/export.h) load data into the worker process's
// memory: the node setup the node's table (each worker of the node loads
// it: picos workers are processes the node starts, not forks of it), the
// worker setup the worker's own. The data is `key=value` lines; `lookup`
// jobs then answer from memory, never from the argument.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

// Set by the hooks before any job runs (the worker guarantees it), then
// only read.
std::map<std::string, std::string> g_node_table;
std::map<std::string, std::string> g_worker_table;

// "k=v\n" lines (at most 1 MiB, 100,000 lines) into `table`; an empty
// argument is an empty table.
int Load(std::string_view arg, std::map<std::string, std::string>* table, std::string* error) {
  if (arg.size() > (1u << 20)) return *error = "setup data over 1 MiB", 1;
  size_t lines = 0;
  while (!arg.empty()) {
    const size_t end = arg.find('\n');
    std::string_view line = arg.substr(0, end);
    arg.remove_prefix(end == std::string_view::npos ? arg.size() : end + 1);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0 || ++lines > 100000) {
      *error = "setup data: not key=value lines: " + std::string(line.substr(0, 80));
      return 1;
    }
    (*table)[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return 0;
}

int NodeSetup(std::string_view arg, std::string* error) { return Load(arg, &g_node_table, error); }
int WorkerSetup(std::string_view arg, std::string* error) { return Load(arg, &g_worker_table, error); }

// A key -> "<value> <node|worker>" from the worker's memory; fails with
// "no key <key>" when neither table has it.
int Lookup(std::string_view key, std::string* out) {
  const std::string k(key.substr(0, 256));
  if (auto it = g_worker_table.find(k); it != g_worker_table.end()) return *out = it->second + " worker", 0;
  if (auto it = g_node_table.find(k); it != g_node_table.end()) return *out = it->second + " node", 0;
  *out = "no key " + k;
  return 1;
}

}  // namespace

PICOS_COMPUTE_NODE_SETUP(NodeSetup);
PICOS_COMPUTE_SETUP(WorkerSetup);
PICOS_COMPUTE_FUNCTION(lookup, Lookup);
