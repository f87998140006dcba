// The integer q8_0 / q4_0 matmul (kernels/qdot.h) at TinyLlama-1.1B's shapes, as decode and
// prefill see it:
//   decode/*: batch 1 over a ring of weight matrices much larger than the last-level cache, so
//     every call reads its weights from memory as a decoded token does (GB/s = weight bytes / s,
//     to compare with `streamingllm bench`'s read-bandwidth probe);
//   decode_hot/*: the same on one matrix that stays in the last-level cache: the kernel's
//     arithmetic without the memory (a decode far below decode_hot's GB/s is memory-bound);
//   prefill/*: a 512-token batch on one matrix (GMAC/s);
//   quantize/*: the activation quantization alone, the part of a call that is not weights.
// Types q8_0, q4_0 (qdot.cc) and q4_K, q6_K (qdot_k.cc). Threads 1 and 2, the machine's dispatch
// target (printed first).
//
//   build/release/bench/qdot_bench [--benchmark_filter=decode] [--benchmark_repetitions=5]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "kernels/qdot.h"
#include "kernels/qdot_k.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

size_t block_bytes(TensorType type) { return traits_of(type).block_bytes; }
size_t block_elems(TensorType type) { return traits_of(type).block_elems; }

// Where a block keeps its f16 scales (q4_K / q5_K: d and dmin; q6_K: d at the end).
std::vector<size_t> scale_offsets(TensorType type) {
  switch (type) {
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
      return {0, 2};
    case TensorType::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

// n matrices [n_rows, n_cols] of random blocks (codes need not be realistic for timing).
struct Ring {
  std::vector<uint8_t> bytes;
  std::vector<ops::MatView> views;
};

std::unique_ptr<Ring> make_ring(TensorType type, size_t n_rows, size_t n_cols, size_t n) {
  auto ring = std::make_unique<Ring>();
  const size_t row_bytes = n_cols / block_elems(type) * block_bytes(type);
  ring->bytes.resize(n * n_rows * row_bytes);
  uint64_t state = 0x9E3779B97F4A7C15u;  // xorshift: 400 MB of bytes in well under a second
  for (size_t i = 0; i + 8 <= ring->bytes.size(); i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    std::memcpy(&ring->bytes[i], &state, 8);
  }
  // Small finite scales, so that the timings do not run on NaNs.
  const size_t n_blocks = ring->bytes.size() / block_bytes(type);
  for (size_t b = 0; b < n_blocks; ++b) {
    const uint16_t d = quant::f32_to_f16(0.01f);
    for (size_t off : scale_offsets(type))
      std::memcpy(&ring->bytes[b * block_bytes(type) + off], &d, 2);
  }
  for (size_t i = 0; i < n; ++i) {
    ring->views.push_back(
        {type, ring->bytes.data() + i * n_rows * row_bytes, n_rows, n_cols, row_bytes});
  }
  return ring;
}

std::vector<float> activations(size_t n) {
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

void bm_decode(benchmark::State& state, TensorType type, size_t n_rows, size_t n_cols, bool hot) {
  const size_t n_threads = static_cast<size_t>(state.range(0));
  // About 400 MB: far beyond any last-level cache; hot: one matrix, from the cache (the kernel's
  // arithmetic alone).
  const size_t per_matrix = n_rows * n_cols / block_elems(type) * block_bytes(type);
  const size_t n = hot ? 1 : std::max<size_t>(2, (size_t{400} << 20) / per_matrix);
  // Kept between the runs of one case (Google Benchmark calls this several times), one at a time.
  static std::unique_ptr<Ring> ring;
  static std::string ring_key;
  const std::string key = std::to_string(static_cast<int>(type)) + "/" + std::to_string(n_rows) +
                          "x" + std::to_string(n_cols) + (hot ? "/hot" : "");
  if (key != ring_key) {
    ring.reset();
    ring = make_ring(type, n_rows, n_cols, n);
    ring_key = key;
  }
  const std::vector<float> x = activations(n_cols);
  std::vector<float> y(n_rows);
  ThreadPool pool(n_threads);
  size_t i = 0;
  for (auto _ : state) {
    ops::matmul(ring->views[i], x.data(), 1, y.data(), pool);
    i = (i + 1) % n;
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(per_matrix));
}

void bm_prefill(benchmark::State& state, TensorType type, size_t n_rows, size_t n_cols) {
  const size_t n_threads = static_cast<size_t>(state.range(0));
  const size_t n_batch = 512;
  const auto ring = make_ring(type, n_rows, n_cols, 1);
  const std::vector<float> x = activations(n_batch * n_cols);
  std::vector<float> y(n_batch * n_rows);
  ThreadPool pool(n_threads);
  for (auto _ : state) {
    ops::matmul(ring->views[0], x.data(), n_batch, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(
      static_cast<double>(n_rows * n_cols * n_batch) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void bm_quantize(benchmark::State& state, size_t n_cols) {
  const size_t n_batch = 512;
  const std::vector<float> x = activations(n_batch * n_cols);
  std::vector<int8_t> codes(n_cols);
  std::vector<float> scales(n_cols / 32);
  for (auto _ : state) {
    for (size_t b = 0; b < n_batch; ++b) {
      ops::ref::quantize_activations(x.data() + b * n_cols, n_cols, codes.data(), scales.data());
    }
    benchmark::DoNotOptimize(codes.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n_batch * n_cols));
}

void register_all() {
  std::printf("qdot target: %s, K-quants: %s\n", ops::quantized_target_name(),
              ops::kquant_target_name());
  struct Shape {
    const char* name;
    size_t n_rows, n_cols;
  };
  // wq/wo, w1/w3 (gate, up), w2 (down).
  const Shape shapes[] = {
      {"2048x2048", 2048, 2048}, {"5632x2048", 5632, 2048}, {"2048x5632", 2048, 5632}};
  for (TensorType type :
       {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    const std::string t = traits_of(type).name;
    for (const Shape& s : shapes) {
      for (bool hot : {false, true}) {
        benchmark::RegisterBenchmark(((hot ? "decode_hot/" : "decode/") + t + "/" + s.name).c_str(),
                                     bm_decode, type, s.n_rows, s.n_cols, hot)
            ->Arg(1)
            ->Arg(2)
            ->ArgName("threads")
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
      benchmark::RegisterBenchmark(("prefill/" + t + "/" + s.name).c_str(), bm_prefill, type,
                                   s.n_rows, s.n_cols)
          ->Arg(1)
          ->Arg(2)
          ->ArgName("threads")
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark("quantize/ref/512x2048", bm_quantize, 2048)
      ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace sllm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  sllm::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
