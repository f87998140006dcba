// A fork-join thread pool: run(n_tasks, fn) calls fn(task) for every task in [0, n_tasks) on the
// pool's threads and the caller's, and returns when all are done. Passed explicitly to whoever
// needs it (no global pool), so two sessions in one process can each have their own.
//
// Decoding calls run() dozens of times per token, each for a few microseconds of work, so a
// wake-up through a condition variable (a futex call on each side, tens of microseconds when the
// scheduler is busy) would cost more than the work. Workers therefore spin on an atomic
// generation counter for a while after each job and only then sleep; the caller spins for the
// workers to finish before it sleeps too. Callers with tiny jobs should not call run() at all
// (see worth_parallel()).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "streamingllm/error.h"

namespace sllm {

class ThreadPool {
 public:
  // The most threads a pool may have: far beyond any machine's cores, far below the point where
  // thread stacks alone would exhaust memory.
  static constexpr size_t kMaxThreads = 1024;

  // n_threads counts the calling thread: 1 means everything runs inline. Fails with
  // kInvalidInput outside [1, kMaxThreads] and with kLimit when the system refuses a thread.
  static Result<std::unique_ptr<ThreadPool>> create(size_t n_threads);

  // Never throws: n_threads is clamped to [1, kMaxThreads], and when the system refuses a thread
  // the pool keeps the ones it started (n_threads() tells). create() reports both as errors.
  explicit ThreadPool(size_t n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t n_threads() const { return workers_.size() + 1; }

  // Calls fn(task) for task in [0, n_tasks). Tasks are handed out in contiguous blocks.
  void run(size_t n_tasks, const std::function<void(size_t task)>& fn);

  // Whether a job of n_flops floating-point operations (multiply-adds count as 1) is large enough
  // to be split: below about 32K, handing it out and joining costs more than it saves.
  bool worth_parallel(size_t n_flops) const { return !workers_.empty() && n_flops >= kMinFlops; }

 private:
  static constexpr size_t kMinFlops = size_t{1} << 15;

  void worker_loop(size_t worker);
  void do_share(size_t share, size_t n_shares);

  std::vector<std::thread> workers_;
  std::string start_error_;  // why a worker could not be started; empty if all were
  // The job: written by run() before it bumps generation_, read by workers after they see it.
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<uint64_t> generation_{0};  // one increment per job
  std::atomic<size_t> n_pending_{0};     // workers still busy with the current job
  std::atomic<bool> stop_{false};

  // Sleeping, after the spin: workers wait on start_cv_, the caller on done_cv_.
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  size_t n_sleeping_ = 0;         // workers waiting on start_cv_ (guarded by mu_)
  bool caller_sleeping_ = false;  // the caller waits on done_cv_ (guarded by mu_)
};

}  // namespace sllm
