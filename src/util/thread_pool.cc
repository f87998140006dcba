#include "util/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <exception>

namespace sllm {

namespace {

// Spin iterations before sleeping: a pause is ~40 to ~140 cycles depending on the CPU, so a few
// tens of microseconds, which covers the gaps between the jobs of one token.
constexpr int kSpinIterations = 2000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

Result<std::unique_ptr<ThreadPool>> ThreadPool::create(size_t n_threads) {
  if (n_threads == 0 || n_threads > kMaxThreads) {
    return Error(ErrorCode::kInvalidInput, "a thread pool needs between 1 and " +
                                               std::to_string(kMaxThreads) + " threads, not " +
                                               std::to_string(n_threads));
  }
  auto pool = std::make_unique<ThreadPool>(n_threads);
  if (pool->n_threads() != n_threads) {
    return Error(ErrorCode::kLimit, "could only start " + std::to_string(pool->n_threads()) +
                                        " of " + std::to_string(n_threads) +
                                        " threads: " + pool->start_error_);
  }
  return pool;
}

ThreadPool::ThreadPool(size_t n_threads) {
  const size_t n_workers = std::clamp<size_t>(n_threads, 1, kMaxThreads) - 1;
  try {
    workers_.reserve(n_workers);
    for (size_t i = 0; i < n_workers; ++i) {
      workers_.emplace_back([this, i] { worker_loop(i); });
    }
  } catch (const std::exception& e) {  // std::system_error (EAGAIN) or std::bad_alloc
    start_error_ = e.what();
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
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
  fn_ = &fn;
  n_tasks_ = n_tasks;
  n_pending_.store(workers_.size(), std::memory_order_relaxed);
  bool wake = false;
  {
    // Under the lock, so that a worker about to sleep either sees the new generation in its wait
    // predicate or is counted in n_sleeping_ and notified.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
    wake = n_sleeping_ > 0;
  }
  if (wake) start_cv_.notify_all();
  do_share(0, n_threads());

  for (int i = 0; i < kSpinIterations; ++i) {
    if (n_pending_.load(std::memory_order_acquire) == 0) return;
    cpu_relax();
  }
  std::unique_lock<std::mutex> lock(mu_);
  caller_sleeping_ = true;
  done_cv_.wait(lock, [this] { return n_pending_.load(std::memory_order_acquire) == 0; });
  caller_sleeping_ = false;
}

void ThreadPool::worker_loop(size_t worker) {
  uint64_t seen = 0;
  for (;;) {
    bool started = false;
    for (int i = 0; i < kSpinIterations && !started; ++i) {
      started = generation_.load(std::memory_order_acquire) != seen ||
                stop_.load(std::memory_order_acquire);
      if (!started) cpu_relax();
    }
    if (!started) {
      std::unique_lock<std::mutex> lock(mu_);
      ++n_sleeping_;
      start_cv_.wait(lock, [&] {
        return stop_.load(std::memory_order_acquire) ||
               generation_.load(std::memory_order_acquire) != seen;
      });
      --n_sleeping_;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    do_share(worker + 1, n_threads());
    if (n_pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The last one out wakes the caller if it stopped spinning.
      std::lock_guard<std::mutex> lock(mu_);
      if (caller_sleeping_) done_cv_.notify_one();
    }
  }
}

}  // namespace sllm
