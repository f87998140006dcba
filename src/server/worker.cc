// The decoding thread's loop: jobs between steps, one batched forward pass per step.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "server_impl.h"

namespace sllm::server {

Worker::Worker(std::shared_ptr<const Model> model, const BatchOptions& options) {
  auto batch = Batch::create(std::move(model), options);
  if (!batch.ok()) {
    // Only a BatchOptions the server does not use, or a machine without memory for one batch's
    // activations, gets here.
    std::cerr << "error: the decoding batch: " << batch.error().message() << "\n";
    std::abort();
  }
  batch_ = std::move(*batch);
  thread_ = std::thread([this] { run(); });
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Worker::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void Worker::post_member(JoinFn join, DoneFn done) {
  post([this, join = std::move(join), done = std::move(done)]() mutable {
    if (const std::optional<uint64_t> id = join(*batch_)) {
      done_[*id] = std::move(done);
      active_ = done_.size();
    }
  });
}

size_t Worker::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

size_t Worker::active() const { return active_; }
size_t Worker::peak_active() const { return peak_active_; }
uint64_t Worker::steps() const { return steps_; }
double Worker::step_seconds() const { return static_cast<double>(step_nanos_.load()) * 1e-9; }

void Worker::run() {
  for (;;) {
    std::deque<std::function<void()>> jobs;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty() || !batch_->empty(); });
      if (jobs_.empty() && batch_->empty()) return;  // stopping, nothing left
      jobs.swap(jobs_);
    }
    for (auto& job : jobs) job();
    if (batch_->empty()) continue;
    peak_active_ = std::max(peak_active_.load(), batch_->size());
    const auto start = std::chrono::steady_clock::now();
    std::vector<BatchResult> results = batch_->step();
    step_nanos_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
    ++steps_;
    for (BatchResult& r : results) {
      auto it = done_.find(r.id);
      if (it == done_.end()) continue;
      DoneFn done = std::move(it->second);
      done_.erase(it);
      active_ = done_.size();
      done(std::move(r));
    }
  }
}

}  // namespace sllm::server
