// The premise of batched decoding (include/streamingllm/batch.h): a row's matmul result does not
// depend on how many other rows share the call. A batch step multiplies every session's row at
// once (decode steps of 1 to 32 sessions plus prompt chunks: up to 256 rows), and each session
// must get the bits it gets fed alone (one row). Checked at those batch sizes, with and without
// the pool, for the weight types of the real models: f32, f16, q8_0 and q4_0 (integer dots over
// per-row quantized activations) and q4_K / q6_K (q8_K activations).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/ops.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

TEST(BatchRows, MatmulRowsAreIndependentOfTheBatch) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  constexpr size_t kRows = 80, kCols = 512;
  constexpr size_t kMaxBatch = 256;
  std::vector<float> x(kMaxBatch * kCols);
  for (float& v : x) v = dist(rng);
  std::vector<float> w(kRows * kCols);
  for (float& v : w) v = dist(rng);
  ThreadPool one(1), two(2);
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kQ8_0, TensorType::kQ4_0,
                          TensorType::kQ4_K, TensorType::kQ6_K}) {
    const TensorTypeTraits t = traits_of(type);
    SCOPED_TRACE(t.name);
    const size_t row_bytes = kCols / t.block_elems * t.block_bytes;
    std::vector<uint8_t> data(kRows * row_bytes);
    for (size_t r = 0; r < kRows; ++r) {
      quant::quantize_row(type, &w[r * kCols], data.data() + r * row_bytes, kCols);
    }
    const ops::MatView m{type, data.data(), kRows, kCols, row_bytes};
    // Each row alone, one thread: what a session fed alone gets.
    std::vector<float> alone(kMaxBatch * kRows);
    for (size_t b = 0; b < kMaxBatch; ++b) {
      ops::matmul(m, &x[b * kCols], 1, &alone[b * kRows], one);
    }
    for (size_t n : {2, 3, 8, 9, 32, 33, 70, 256}) {
      for (ThreadPool* pool : {&one, &two}) {
        std::vector<float> y(n * kRows);
        ops::matmul(m, x.data(), n, y.data(), *pool);
        ASSERT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
            << "batch " << n << ", threads " << pool->n_threads();
      }
    }
  }
}

}  // namespace
}  // namespace sllm
