// The thread pool (src/util/thread_pool.h) under real concurrency: what the tasks write with plain
// stores is what the caller reads after run() returns, on every path a job can take (workers
// spinning, workers asleep, the caller asleep), across jobs that change the function and the task
// count, with two pools on two threads, and when a pool is destroyed right after a job or while
// its workers sleep. These tests carry the `threads` label: under the `tsan` preset
// ThreadSanitizer checks each of these orders (a missing happens-before is a report, not a
// flaky value).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <thread>
#include <vector>

#include "util/thread_pool.h"

namespace sllm {
namespace {

// The sum of 0..n-1 computed by the tasks into plain (non-atomic) slots.
uint64_t sum_on_pool(ThreadPool& pool, size_t n_tasks, std::vector<uint64_t>& slots) {
  slots.assign(n_tasks, 0);
  pool.run(n_tasks, [&](size_t task) { slots[task] = task + 1; });
  return std::accumulate(slots.begin(), slots.end(), uint64_t{0});
}

uint64_t expected_sum(size_t n) { return n * (n + 1) / 2; }

TEST(ThreadPoolThreads, PlainWritesOfEveryTaskAreSeenAfterRun) {
  for (size_t n_threads : {2, 3, 4}) {
    ThreadPool pool(n_threads);
    ASSERT_EQ(pool.n_threads(), n_threads);
    std::vector<uint64_t> slots;
    // Back to back: the workers are still spinning when the next job comes.
    for (size_t job = 0; job < 300; ++job) {
      const size_t n = 1 + job % 37;
      ASSERT_EQ(sum_on_pool(pool, n, slots), expected_sum(n)) << "job " << job;
    }
  }
}

TEST(ThreadPoolThreads, JobsAfterTheWorkersFellAsleep) {
  ThreadPool pool(3);
  std::vector<uint64_t> slots;
  for (int job = 0; job < 6; ++job) {
    // Longer than the spin (a few tens of microseconds): the workers wait on the condition
    // variable and run() wakes them.
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    ASSERT_EQ(sum_on_pool(pool, 64, slots), expected_sum(64)) << "job " << job;
  }
}

TEST(ThreadPoolThreads, CallerSleepsWhileAWorkerIsSlow) {
  ThreadPool pool(2);
  std::vector<uint64_t> slots(2, 0);
  // Task 1 is the worker's; it outlasts the caller's spin, so the caller sleeps on done_cv_ and
  // the worker's last fetch_sub wakes it.
  for (int job = 0; job < 4; ++job) {
    pool.run(2, [&](size_t task) {
      if (task == 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      slots[task] = task + 10;
    });
    ASSERT_EQ(slots[0], 10u);
    ASSERT_EQ(slots[1], 11u);
  }
}

TEST(ThreadPoolThreads, EachJobSeesItsOwnFunctionAndTaskCount) {
  ThreadPool pool(4);
  // Alternating functions that write different slots with different task counts: a worker that
  // read a stale function or count would write the wrong slot or miss one.
  std::vector<uint64_t> a(100, 0), b(7, 0);
  for (int round = 0; round < 200; ++round) {
    pool.run(a.size(), [&](size_t t) { a[t] += t; });
    pool.run(b.size(), [&](size_t t) { b[t] += 1; });
  }
  for (size_t t = 0; t < a.size(); ++t) ASSERT_EQ(a[t], 200 * t) << t;
  for (size_t t = 0; t < b.size(); ++t) ASSERT_EQ(b[t], 200u) << t;
}

TEST(ThreadPoolThreads, TwoPoolsOnTwoThreadsAtOnce) {
  std::atomic<bool> go{false};
  uint64_t sums[2] = {0, 0};
  auto body = [&](int which) {
    ThreadPool pool(2);
    std::vector<uint64_t> slots;
    while (!go.load()) std::this_thread::yield();
    uint64_t total = 0;
    for (int job = 0; job < 200; ++job) total += sum_on_pool(pool, 50 + which, slots);
    sums[which] = total;
  };
  std::thread t0(body, 0), t1(body, 1);
  go = true;
  t0.join();
  t1.join();
  EXPECT_EQ(sums[0], 200 * expected_sum(50));
  EXPECT_EQ(sums[1], 200 * expected_sum(51));
}

TEST(ThreadPoolThreads, DestroyedRightAfterAJobAndWhileAsleep) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(3);
    std::vector<uint64_t> slots;
    ASSERT_EQ(sum_on_pool(pool, 9, slots), expected_sum(9));
    // Destroyed while the workers spin or have just signalled the job's end.
  }
  for (int i = 0; i < 3; ++i) {
    ThreadPool pool(3);
    std::this_thread::sleep_for(std::chrono::milliseconds(15));  // workers asleep
  }
  ThreadPool never_used(4);  // workers still spinning from their start
}

}  // namespace
}  // namespace sllm
