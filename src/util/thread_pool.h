// A fork-join thread pool: run(n_tasks, fn) calls fn(task) for every task in [0, n_tasks) on the
// pool's threads and the caller's, and returns when all are done. Passed explicitly to whoever
// needs it (no global pool), so two sessions in one process can each have their own.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sllm {

class ThreadPool {
 public:
  // n_threads counts the calling thread: 1 means everything runs inline.
  explicit ThreadPool(size_t n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t n_threads() const { return workers_.size() + 1; }

  // Calls fn(task) for task in [0, n_tasks). Tasks are handed out in contiguous blocks.
  void run(size_t n_tasks, const std::function<void(size_t task)>& fn);

 private:
  void worker_loop(size_t worker);
  void do_share(size_t share, size_t n_shares);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_tasks_ = 0;
  size_t generation_ = 0;
  size_t n_pending_ = 0;
  bool stop_ = false;
};

}  // namespace sllm
