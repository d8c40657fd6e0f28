// A computation's job name registry (compute/export.h's Register, Locate,
// SendTo; the messages are in compute/protocol.h): a task on the client,
// one per Computation, that its workers ask. Internal to compute/: the
// Computation spawns it at its first Schedule and gives it to each worker
// with its job loop's start, so only that computation's workers reach it.
//
// Guarantees (tested end to end, testing/compute_names_test.cc):
//  * A name is held by at most one job: register of a name held by another
//    job is kAlreadyExists; a job holds at most one name
//    (kFailedPrecondition); names are 1..kJobNameMaxBytes bytes without
//    control characters (kInvalidArgument); at most kMaxJobNames at once
//    (kResourceExhausted).
//  * A name is freed when its worker says the job ended ("unregister"), or
//    when the job's inbox task ends or its worker is lost (the registry
//    monitors it), whichever comes first.
//  * Every request is network input: a malformed one is logged and dropped
//    (answered with kInvalidArgument when it names a reply_to).
//
// Threads: the scheduler that runs the client's Node.
#ifndef PICOS_COMPUTE_JOB_NAMES_INTERNAL_H_
#define PICOS_COMPUTE_JOB_NAMES_INTERNAL_H_

#include <string>

#include "absl/status/status.h"
#include "core/kernel/task.h"

namespace picos::compute::internal {

// The registry's body; ends when terminated (the Computation closes or is
// destroyed), with every name.
Task<> JobNameRegistry(std::string computation);

// Whether `name` may be a job's name (see above); kInvalidArgument saying
// why if not. Also what a worker checks before asking.
absl::Status ValidJobName(std::string_view name);

}  // namespace picos::compute::internal

#endif  // PICOS_COMPUTE_JOB_NAMES_INTERNAL_H_
