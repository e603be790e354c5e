// A minimal parallel loop over independent tasks, on std::thread.
//
// Tasks are handed out one index at a time from an atomic counter, so the work balances itself;
// results must be written to per-index slots (never accumulated across tasks) so that the outcome
// does not depend on which thread ran what.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace modelreg::detail {

// `requested` threads (0: one per core), but no more than there are tasks, and at least 1.
inline unsigned thread_count(unsigned requested, std::size_t tasks) noexcept {
  unsigned n = requested != 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
  if (tasks < n) n = static_cast<unsigned>(std::max<std::size_t>(tasks, 1));
  return n;
}

// Calls task(i, worker) exactly once for every i in [0, count), on `threads` threads (the caller's
// thread is one of them); `worker` in [0, threads) identifies the thread, for per-thread scratch
// space. The first exception a task throws is rethrown here after all threads stop;
// remaining tasks are skipped once one has failed.
template <class Task>
void parallel_for(std::size_t count, unsigned threads, const Task& task) {
  if (threads <= 1 || count <= 1) {
    for (std::size_t i = 0; i < count; ++i) task(i, 0u);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // protected by error_mutex
  std::mutex error_mutex;
  auto worker = [&](unsigned id) {
    for (;;) {
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= count || failed.load(std::memory_order_relaxed)) return;
      try {
        task(i, id);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (unsigned t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(worker, t);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones running (and this one) do all the work
    }
  }
  worker(0);
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace modelreg::detail
