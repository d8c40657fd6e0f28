// Figures of the concurrency library (channels, locks, timeouts), printed
// by the core benchmark program:
//
//   channel_deliveries_per_s      one sender, a channel with 100 subscriber
//                                 tasks, 2,000,000 deliveries
//   lock_handoffs_per_s           two tasks passing a Lock back and forth
//   timeouts_1m_bytes_per_task    RSS growth per task, a million tasks each
//                                 in Receive(1 h)
//   receive_1m_bytes_per_task     the same without the timeout, to compare
//
// Build with -c opt for figures worth quoting. Runs on the calling thread;
// the memory figures run in forked children.
#ifndef PICOS_TESTING_BENCH_CONCURRENCY_FIGURES_H_
#define PICOS_TESTING_BENCH_CONCURRENCY_FIGURES_H_

namespace picos::testing {

void RunConcurrencyFigures();

}  // namespace picos::testing

#endif  // PICOS_TESTING_BENCH_CONCURRENCY_FIGURES_H_
