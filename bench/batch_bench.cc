// Aggregate decode speed of N streams generating together through one Batch (public API only),
// the library side of bench/server_concurrency.py (which runs llama.cpp's N-sequence decode,
// bench/peer/batch_speed.mjs, next to it on the same ids).
//
//   batch_bench MODEL.gguf IDS_FILE --streams N --threads T --decode D [--prompt 8]
//               [--kv-type f16] [--window 1020]
//
// Stream i is fed `prompt` ids from IDS_FILE (at offset i * prompt) in one batched pass, then the
// N streams generate D greedy tokens each, one token per stream per step; only those steps are
// timed. Prints one JSON line: {"streams", "threads", "decode_tokens", "decode_s", "tok_s"}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "streamingllm/streamingllm.h"

namespace {

int fail(const std::string& message) {
  std::cerr << "batch_bench: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    return fail(
        "usage: batch_bench MODEL.gguf IDS_FILE --streams N --threads T --decode D "
        "[--prompt 8] [--kv-type f16] [--window 1020]");
  }
  const std::string model_path = argv[1], ids_path = argv[2];
  size_t n_streams = 1, n_threads = 1, n_decode = 64, n_prompt = 8, window = 1020;
  std::string kv = "f16";
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--kv-type") {
      kv = value;
      continue;
    }
    const size_t v = std::strtoull(value.c_str(), nullptr, 10);
    if (flag == "--streams") {
      n_streams = v;
    } else if (flag == "--threads") {
      n_threads = v;
    } else if (flag == "--decode") {
      n_decode = v;
    } else if (flag == "--prompt") {
      n_prompt = v;
    } else if (flag == "--window") {
      window = v;
    } else {
      return fail("unknown option " + flag);
    }
  }
  std::vector<sllm::TokenId> ids;
  std::ifstream in(ids_path);
  for (long id; in >> id;) ids.push_back(static_cast<sllm::TokenId>(id));
  if (ids.size() < n_streams * n_prompt) {
    return fail(ids_path + ": " + std::to_string(ids.size()) + " ids, need " +
                std::to_string(n_streams * n_prompt));
  }
  sllm::Model::LoadOptions lo;
  lo.n_threads = n_threads;
  auto model = sllm::Model::load(model_path, lo);
  if (!model.ok()) return fail(model.error().message());
  auto kv_type = sllm::parse_kv_type(kv);
  if (!kv_type.ok()) return fail(kv_type.error().message());
  sllm::CacheOptions cache;
  cache.kv_type = *kv_type;
  cache.window = window;
  sllm::SamplingOptions greedy;
  greedy.temperature = 0;
  sllm::StopOptions stop;
  stop.max_tokens = static_cast<int64_t>(n_decode);
  stop.at_end_of_generation = false;
  stop.keep_output = false;
  sllm::BatchOptions batch_options;
  // Every prompt in the first (untimed) pass.
  batch_options.max_rows = std::max<size_t>(256, n_streams * n_prompt);
  batch_options.max_prompt_rows = n_streams * n_prompt;
  auto batch = sllm::Batch::create(*model, batch_options);
  if (!batch.ok()) return fail(batch.error().message());
  std::vector<std::unique_ptr<sllm::Stream>> streams;
  for (size_t i = 0; i < n_streams; ++i) {
    auto s = sllm::Stream::create(*model, cache, greedy);
    if (!s.ok()) return fail(s.error().message());
    streams.push_back(std::move(*s));
    const auto first = ids.begin() + static_cast<std::ptrdiff_t>(i * n_prompt);
    auto id = (*batch)->add(*streams.back(), {first, first + static_cast<std::ptrdiff_t>(n_prompt)},
                            stop);
    if (!id.ok()) return fail(id.error().message());
  }
  // The prompts, and each stream's first token sampled: not timed.
  (void)(*batch)->step();
  uint64_t n_fed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (!(*batch)->empty()) {
    for (const sllm::BatchResult& r : (*batch)->step()) {
      if (!r.status.ok()) return fail(r.status.error().message());
    }
    n_fed += (*batch)->last_rows();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"streams\": %zu, \"threads\": %zu, \"decode_tokens\": %llu, \"decode_s\": %.6f, "
      "\"tok_s\": %.3f}\n",
      n_streams, n_threads, static_cast<unsigned long long>(n_fed), seconds,
      static_cast<double>(n_fed) / seconds);
  return 0;
}
