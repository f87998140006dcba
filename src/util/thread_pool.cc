#include "util/thread_pool.h"

namespace sllm {

ThreadPool::ThreadPool(size_t n_threads) {
  const size_t n_workers = n_threads > 1 ? n_threads - 1 : 0;
  workers_.reserve(n_workers);
  for (size_t i = 0; i < n_workers; ++i) {
    workers_.emplace_back([this, i] { worker_loop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::do_share(size_t share, size_t n_shares) {
  const size_t begin = n_tasks_ * share / n_shares;
  const size_t end = n_tasks_ * (share + 1) / n_shares;
  for (size_t task = begin; task < end; ++task) (*fn_)(task);
}

void ThreadPool::run(size_t n_tasks, const std::function<void(size_t)>& fn) {
  if (workers_.empty() || n_tasks <= 1) {
    for (size_t task = 0; task < n_tasks; ++task) fn(task);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    n_pending_ = workers_.size();
    ++generation_;
  }
  start_cv_.notify_all();
  do_share(0, n_threads());
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return n_pending_ == 0; });
  fn_ = nullptr;
}

void ThreadPool::worker_loop(size_t worker) {
  size_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    do_share(worker + 1, n_threads());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--n_pending_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace sllm
