// matmul timings at the weight shapes of TinyLlama-1.1B (dim 2048, ffn 5632): the scalar reference
// (ops_ref.h) against the Highway kernel (ops.h) on one thread, for every weight type, batch 1
// (decoding) and batch 8 (prompt chunks); then one attention head over 1024 cached rows. After the
// usual table it prints reference / Highway.
//
//   build/<dir>/bench/kernels_bench [--benchmark_filter=q4_0]
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/ops.h"
#include "kernels/ops_ref.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

// A random weight matrix [n_rows, n_cols] encoded as `type`.
struct Weights {
  std::vector<uint8_t> bytes;
  ops::MatView view;
};

// Built once per (type, shape) and kept: quantizing 11M floats takes longer than timing them.
const Weights& weights(TensorType type, size_t n_rows, size_t n_cols) {
  static std::map<std::tuple<TensorType, size_t, size_t>, std::unique_ptr<Weights>> cache;
  auto& slot = cache[{type, n_rows, n_cols}];
  if (!slot) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> row(n_cols);
    const auto traits = *tensor_type_traits(static_cast<uint32_t>(type));
    const size_t row_bytes = n_cols / traits.block_elems * traits.block_bytes;
    slot = std::make_unique<Weights>();
    slot->bytes.resize(n_rows * row_bytes);
    for (size_t r = 0; r < n_rows; ++r) {
      for (auto& v : row) v = dist(rng);
      quant::quantize_row(type, row.data(), slot->bytes.data() + r * row_bytes, n_cols);
    }
    slot->view = {type, slot->bytes.data(), n_rows, n_cols, row_bytes};
  }
  return *slot;
}

void bm_matmul(benchmark::State& state, TensorType type, size_t n_rows, size_t n_cols,
               size_t n_batch, bool use_ref) {
  const Weights& w = weights(type, n_rows, n_cols);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(n_batch * n_cols);
  for (auto& v : x) v = dist(rng);
  std::vector<float> y(n_batch * n_rows);
  ThreadPool pool(1);
  for (auto _ : state) {
    if (use_ref) {
      ops::ref::matmul(w.view, x.data(), n_batch, y.data());
    } else {
      ops::matmul(w.view, x.data(), n_batch, y.data(), pool);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const auto iterations = static_cast<int64_t>(state.iterations());
  state.SetBytesProcessed(iterations * static_cast<int64_t>(w.bytes.size()));
  state.counters["GMAC/s"] = benchmark::Counter(
      static_cast<double>(n_rows * n_cols * n_batch) * static_cast<double>(iterations),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// The console table, then one line per case: reference time / Highway time.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Iteration && !run.error_occurred) {
        real_time_[run.benchmark_name()] = run.GetAdjustedRealTime();
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nspeed-up of Highway (%s) over the scalar reference, one thread:\n",
                ops::simd_target_name());
    for (const auto& [name, ref_time] : real_time_) {
      const std::string suffix = "/ref";
      if (name.size() < suffix.size() ||
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
        continue;
      }
      const std::string base = name.substr(0, name.size() - suffix.size());
      const auto hwy = real_time_.find(base + "/hwy");
      if (hwy == real_time_.end()) continue;
      std::printf("  %-40s %6.1fx", base.c_str(), ref_time / hwy->second);
      // Attention also has the per-row kernels it replaced.
      const auto rows = real_time_.find(base + "/rows");
      if (rows != real_time_.end())
        std::printf("   (per-row kernels: %.1fx)", rows->second / hwy->second);
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, double> real_time_;
};

void register_matmul_benchmarks() {
  struct Shape {
    size_t n_rows, n_cols;
  };
  // TinyLlama wq and w1/w3; stories260K wq, w1/w3, w2 and output.
  const Shape shapes[] = {{2048, 2048}, {5632, 2048}, {64, 64}, {172, 64}, {64, 172}, {512, 64}};
  const TensorType types[] = {TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                              TensorType::kQ8_0, TensorType::kQ4_0};
  for (TensorType type : types) {
    const char* type_name = tensor_type_traits(static_cast<uint32_t>(type))->name;
    for (const Shape& s : shapes) {
      for (size_t n_batch : {1, 8}) {
        for (bool use_ref : {true, false}) {
          const std::string name = std::string("matmul/") + type_name + "/" +
                                   std::to_string(s.n_rows) + "x" + std::to_string(s.n_cols) +
                                   "/batch:" + std::to_string(n_batch) +
                                   (use_ref ? "/ref" : "/hwy");
          benchmark::RegisterBenchmark(name.c_str(), bm_matmul, type, s.n_rows, s.n_cols, n_batch,
                                       use_ref)
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
}

// One head attending over n_rows cached rows laid out as in KvCache (a plane of rows per KV
// head): the fused kernel (/hwy), the per-row kernels it replaced (/rows: a dispatched dot_kv per
// key, softmax, a dispatched axpy_kv per value) and the double reference (/ref).
// With n_heads > 1 (grouped-query attention), each of 4 KV heads is attended in turn by its
// n_heads query heads, as a decoded token does in one layer, and each iteration moves on to the
// next of n_layers copies of the cache: with 22 layers of 4096 rows the rows come from memory, not
// from a cache level, as they do when a model decodes. `GB/s` counts the K/V bytes read.
void bm_attention(benchmark::State& state, TensorType kv_type, size_t head_dim, size_t n_heads,
                  size_t n_rows, size_t n_layers, const std::string& variant) {
  const size_t n_kv_heads = n_heads > 1 ? 4 : 1;
  const size_t elem_bytes = kv_type == TensorType::kF32 ? 4 : 2;
  const size_t kv_dim = n_kv_heads * head_dim;
  const ops::KvLayout layout{kv_type, head_dim, head_dim * elem_bytes};
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> kv(2 * n_rows * kv_dim);
  for (auto& v : kv) v = dist(rng);
  const size_t layer_bytes = n_kv_heads * n_rows * layout.row_bytes;
  std::vector<uint8_t> keys(n_layers * layer_bytes), values(n_layers * layer_bytes);
  ops::store_kv(kv.data(), keys.data(), kv_type, n_rows * kv_dim);
  ops::store_kv(kv.data() + n_rows * kv_dim, values.data(), kv_type, n_rows * kv_dim);
  for (size_t l = 1; l < n_layers; ++l) {
    std::memcpy(&keys[l * layer_bytes], keys.data(), layer_bytes);
    std::memcpy(&values[l * layer_bytes], values.data(), layer_bytes);
  }
  std::vector<float> q(n_heads * head_dim), scores(n_heads * n_rows), out(n_heads * head_dim);
  for (auto& v : q) v = dist(rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  size_t layer = 0;
  for (auto _ : state) {
    for (size_t h = 0; h < n_kv_heads; ++h) {
      const size_t offset = layer * layer_bytes + h * n_rows * layout.row_bytes;
      const ops::KvRun run{q.data(), &keys[offset], &values[offset], n_rows};
      if (variant == "hwy") {
        ops::attention(layout, std::span(&run, 1), n_heads, scale, scores.data(), out.data());
      } else if (variant == "ref") {
        ops::ref::attention(layout, std::span(&run, 1), n_heads, scale, scores.data(), out.data());
      } else {
        for (size_t r = 0; r < n_rows; ++r) {
          scores[r] = ops::dot_kv(q.data(), &keys[r * layout.row_bytes], kv_type, head_dim) * scale;
        }
        ops::softmax(scores.data(), n_rows);
        std::fill(out.begin(), out.end(), 0.0f);
        for (size_t r = 0; r < n_rows; ++r) {
          ops::axpy_kv(scores[r], &values[r * layout.row_bytes], kv_type, out.data(), head_dim);
        }
      }
    }
    layer = (layer + 1) % n_layers;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["ns/row"] = benchmark::Counter(
      static_cast<double>(n_rows * n_kv_heads) * iterations,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert, benchmark::Counter::kIs1000);
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(2 * n_rows * n_kv_heads * head_dim * elem_bytes) * iterations * 1e-9,
      benchmark::Counter::kIsRate);
}

void register_attention_benchmarks() {
  const auto add = [](TensorType kv_type, size_t head_dim, size_t n_heads, size_t n_rows,
                      size_t n_layers, const char* variant) {
    const char* type_name = tensor_type_traits(static_cast<uint32_t>(kv_type))->name;
    const std::string name =
        std::string("attention/") + type_name + "/head_dim:" + std::to_string(head_dim) +
        "/heads:" + std::to_string(n_heads) + "/rows:" + std::to_string(n_rows) +
        (n_layers > 1 ? "/layers:" + std::to_string(n_layers) : "") + "/" + variant;
    benchmark::RegisterBenchmark(name.c_str(), bm_attention, kv_type, head_dim, n_heads, n_rows,
                                 n_layers, std::string(variant))
        ->Unit(benchmark::kMicrosecond);
  };
  for (TensorType kv_type : {TensorType::kF32, TensorType::kF16}) {
    for (size_t head_dim : {8, 64, 128}) {
      for (size_t n_rows : {128, 1024}) {
        for (const char* variant : {"ref", "rows", "hwy"})
          add(kv_type, head_dim, 1, n_rows, 1, variant);
      }
    }
    // A layer of a 1.1B-scale model with a full 4096-token cache: 4 KV heads, 8 query heads
    // each (TinyLlama's 32 over 4; head_dim 128 as Llama-2-7B's), 22 layers (TinyLlama's) of
    // rows read from memory.
    for (size_t head_dim : {64, 128}) {
      add(kv_type, head_dim, 8, 4096, 1, "hwy");  // the layer in the CPU caches
      add(kv_type, head_dim, 8, 4096, 22, "hwy");
    }
  }
}

}  // namespace
}  // namespace sllm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("simd_target", sllm::ops::simd_target_name());
  sllm::register_matmul_benchmarks();
  sllm::register_attention_benchmarks();
  sllm::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
