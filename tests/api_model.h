// The bundled stories260K model through the public API (include/streamingllm), loaded once per
// process for each thread count and shared by the tests that only read it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm::test {

// A load failure throws: GoogleTest reports it as the calling test's failure, with the message.
inline std::shared_ptr<const Model> stories_model(size_t n_threads) {
  static std::mutex mutex;
  static std::map<size_t, std::shared_ptr<const Model>> loaded;
  const std::lock_guard lock(mutex);
  auto& model = loaded[n_threads];
  if (!model) {
    Model::LoadOptions o;
    o.n_threads = n_threads;
    auto m = Model::load(stories_gguf(), o);
    if (!m.ok()) throw std::runtime_error(m.error().message());
    model = *m;
  }
  return model;
}

}  // namespace sllm::test
