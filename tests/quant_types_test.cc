// Issue 12, acceptance 1 (types): every block type's quantizer and scalar decoder equal llama.cpp's
// bit for bit (goldens from scripts/peer_quant_goldens.py over the peer's libggml-base.so), and
// the dispatched kernels (ops::dequantize_row, ops::matmul) equal the scalar reference on random
// blocks of every bit pattern, on every Highway target this CPU has.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hwy/tests/hwy_gtest.h"
#include "kernels/ops.h"
#include "kernels/ops_ref.h"
#include "kernels/quant.h"
#include "sha256.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

using nlohmann::json;

// The inputs' generator, as specified in scripts/peer_quant_goldens.py's docstring.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1p-53; }

 private:
  uint64_t state_;
};

std::vector<float> gen_rows(uint64_t seed, const std::string& dist, size_t n_per_row,
                            size_t n_rows) {
  SplitMix64 rng(seed);
  std::vector<float> out;
  out.reserve(n_per_row * n_rows);
  for (size_t r = 0; r < n_rows; ++r) {
    std::vector<double> row(n_per_row);
    for (double& v : row) {
      if (dist == "normal" || dist == "outlier" || dist == "tiny") {
        // Left to right, as Python evaluates the same sum.
        const double u1 = rng.unit();
        const double u2 = rng.unit();
        const double u3 = rng.unit();
        const double u4 = rng.unit();
        v = (u1 + u2 + u3 + u4 - 2.0) * 1.7;
        if (dist == "outlier") v *= 0.05;
        if (dist == "tiny") v *= 1e-7;
      } else if (dist == "uniform" || dist == "huge") {
        v = rng.unit() * 2.0 - 1.0;
        if (dist == "huge") v *= 60000.0;
      } else {
        v = 0.0;
      }
    }
    if (dist == "outlier") {
      const uint64_t k = rng.next() % n_per_row;
      row[k] = k % 2 == 0 ? 40.0 : -40.0;
    }
    for (double v : row) out.push_back(static_cast<float>(v));
  }
  return out;
}

// f16 fields (offsets in the block) of each type, and f32 fields, made finite in random blocks.
struct ScaleFields {
  std::vector<size_t> f16;
  std::vector<size_t> f32;
};

ScaleFields scale_fields(TensorType type) {
  switch (type) {
    case TensorType::kQ4_1:
    case TensorType::kQ5_1:
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
      return {{0, 2}, {}};
    case TensorType::kQ2_K:
      return {{80, 82}, {}};
    case TensorType::kQ3_K:
      return {{108}, {}};
    case TensorType::kQ6_K:
      return {{208}, {}};
    case TensorType::kQ8_K:
      return {{}, {0}};
    case TensorType::kMXFP4:
      return {{}, {}};
    default:
      return {{0}, {}};
  }
}

std::vector<uint8_t> gen_blocks(uint64_t seed, TensorType type, size_t n_blocks) {
  const size_t bb = traits_of(type).block_bytes;
  SplitMix64 rng(seed);
  std::vector<uint8_t> raw;
  while (raw.size() < n_blocks * bb) {
    const uint64_t v = rng.next();
    for (int i = 0; i < 8; ++i) raw.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  raw.resize(n_blocks * bb);
  const ScaleFields fields = scale_fields(type);
  for (size_t b = 0; b < n_blocks; ++b) {
    for (size_t off : fields.f16) {
      uint16_t h;
      std::memcpy(&h, &raw[b * bb + off], 2);
      if ((h & 0x7C00) == 0x7C00) h = static_cast<uint16_t>(h & ~0x4000);
      std::memcpy(&raw[b * bb + off], &h, 2);
    }
    for (size_t off : fields.f32) {
      uint32_t u;
      std::memcpy(&u, &raw[b * bb + off], 4);
      if ((u & 0x7F800000u) == 0x7F800000u) u &= ~0x40000000u;
      std::memcpy(&raw[b * bb + off], &u, 4);
    }
  }
  return raw;
}

TensorType type_named(const std::string& name) {
  if (name == "q8_K") return TensorType::kQ8_K;
  const auto t = parse_tensor_type(name);
  if (!t) throw std::runtime_error("unknown type " + name);
  return *t;
}

std::string hex_of(const void* data, size_t n) {
  return test::sha256_hex(std::string_view(static_cast<const char*>(data), n));
}

const json& goldens() {
  static const json j = [] {
    std::ifstream in(std::string(SLLM_SOURCE_DIR) + "/tests/data/quant_goldens.json");
    return json::parse(in);
  }();
  return j;
}

// The block types and their llama.cpp names.
const std::vector<TensorType>& block_types() {
  static const std::vector<TensorType> types = {
      TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,   TensorType::kQ5_1,
      TensorType::kQ8_0, TensorType::kQ2_K, TensorType::kQ3_K,   TensorType::kQ4_K,
      TensorType::kQ5_K, TensorType::kQ6_K, TensorType::kIQ4_NL, TensorType::kIQ4_XS,
      TensorType::kMXFP4};
  return types;
}

TEST(QuantTypes, TraitsAndNamesAreGgmls) {
  struct Expected {
    TensorType type;
    uint32_t id;
    const char* name;
    size_t elems;
    size_t bytes;
  };
  for (const Expected& e : {Expected{TensorType::kQ4_1, 3, "q4_1", 32, 20},
                            Expected{TensorType::kQ5_0, 6, "q5_0", 32, 22},
                            Expected{TensorType::kQ5_1, 7, "q5_1", 32, 24},
                            Expected{TensorType::kQ2_K, 10, "q2_K", 256, 84},
                            Expected{TensorType::kQ3_K, 11, "q3_K", 256, 110},
                            Expected{TensorType::kQ4_K, 12, "q4_K", 256, 144},
                            Expected{TensorType::kQ5_K, 13, "q5_K", 256, 176},
                            Expected{TensorType::kQ6_K, 14, "q6_K", 256, 210},
                            Expected{TensorType::kIQ4_NL, 20, "iq4_nl", 32, 18},
                            Expected{TensorType::kIQ4_XS, 23, "iq4_xs", 256, 136},
                            Expected{TensorType::kMXFP4, 39, "mxfp4", 32, 17}}) {
    const auto t = tensor_type_traits(e.id);
    ASSERT_TRUE(t.has_value()) << e.name;
    EXPECT_EQ(t->type, e.type);
    EXPECT_STREQ(t->name, e.name);
    EXPECT_EQ(t->block_elems, e.elems) << e.name;
    EXPECT_EQ(t->block_bytes, e.bytes) << e.name;
    EXPECT_EQ(parse_tensor_type(e.name), e.type);
    EXPECT_EQ(ggml_type_name(e.id), e.name);
  }
  EXPECT_EQ(parse_tensor_type("Q4_K"), TensorType::kQ4_K);  // case-insensitive
  EXPECT_EQ(parse_tensor_type("IQ4_NL"), TensorType::kIQ4_NL);
  // Types we do not read stay unsupported (named in errors), q8_K included: never a file type.
  for (uint32_t id : {9u, 15u, 16u, 17u, 18u, 19u, 21u, 22u, 29u, 34u, 35u, 40u, 41u, 42u}) {
    EXPECT_FALSE(tensor_type_traits(id).has_value()) << ggml_type_name(id);
  }
  EXPECT_EQ(ggml_type_name(16), "iq2_xxs");
  EXPECT_EQ(ggml_type_name(34), "tq1_0");
  EXPECT_EQ(ggml_type_name(40), "nvfp4");
  EXPECT_FALSE(parse_tensor_type("q8_K").has_value());
  EXPECT_FALSE(parse_tensor_type("iq2_xxs").has_value());
  EXPECT_EQ(traits_of(TensorType::kQ8_K).block_bytes, 292u);
}

// Every golden case: our bytes and our decoded floats hash equal to llama.cpp's.
TEST(QuantTypes, GoldensEqualLlamaCpp) {
  const json& cases = goldens().at("cases");
  ASSERT_GE(cases.size(), 150u);
  std::map<std::string, std::pair<int, int>> passed;  // type -> (quantize, dequantize) cases
  for (const json& c : cases) {
    const std::string name = c.at("type");
    const TensorType type = type_named(name);
    const auto seed = c.at("seed").get<uint64_t>();
    const size_t be = traits_of(type).block_elems;
    const size_t bb = traits_of(type).block_bytes;
    std::vector<uint8_t> bytes;
    std::string what;
    if (c.at("kind") == "quantize") {
      const size_t n_per_row = c.at("n_per_row");
      const size_t n_rows = c.at("n_rows");
      const std::vector<float> x = gen_rows(seed, c.at("dist"), n_per_row, n_rows);
      const size_t row_bytes = n_per_row / be * bb;
      bytes.resize(n_rows * row_bytes);
      for (size_t r = 0; r < n_rows; ++r) {
        quant::quantize_row(type, x.data() + r * n_per_row, bytes.data() + r * row_bytes,
                            n_per_row);
      }
      what = name + " quantize " + std::string(c.at("dist")) + " " + std::to_string(n_per_row) +
             "x" + std::to_string(n_rows);
    } else {
      bytes = gen_blocks(seed, type, c.at("n_blocks"));
      what = name + " random blocks x" + std::to_string(c.at("n_blocks").get<size_t>());
    }
    const std::string bytes_hex = hex_of(bytes.data(), bytes.size());
    EXPECT_EQ(bytes_hex, c.at("bytes_sha256")) << what;
    const size_t n = bytes.size() / bb * be;
    std::vector<float> y(n);
    quant::dequantize_row_ref(type, bytes.data(), y.data(), n);
    const std::string floats_hex = hex_of(y.data(), 4 * n);
    EXPECT_EQ(floats_hex, c.at("floats_sha256")) << what;
    const auto first = c.at("first_bits").get<std::vector<uint32_t>>();
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_EQ(std::bit_cast<uint32_t>(y[i]), first[i]) << what << " element " << i;
    }
    auto& p = passed[name];
    const bool equal = bytes_hex == c.at("bytes_sha256") && floats_hex == c.at("floats_sha256");
    (c.at("kind") == "quantize" ? p.first : p.second) += equal ? 1 : 0;
  }
  for (const auto& [name, p] : passed) {
    std::printf("%-7s golden cases equal: quantize %d, dequantize %d\n", name.c_str(), p.first,
                p.second);
  }
}

class QuantKernels : public hwy::TestWithParamTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(QuantKernels);

TEST_P(QuantKernels, DequantizeRowEqualsTheReference) {
  for (TensorType type : block_types()) {
    const size_t be = traits_of(type).block_elems;
    for (size_t n_blocks : {size_t{1}, size_t{3}, size_t{7}, size_t{16}}) {
      const size_t n = n_blocks * be;
      // Offset 1 byte: rows of a mapped file need no alignment.
      std::vector<uint8_t> storage(1 + n_blocks * traits_of(type).block_bytes);
      const std::vector<uint8_t> blocks = gen_blocks(1000 + n_blocks, type, n_blocks);
      std::memcpy(storage.data() + 1, blocks.data(), blocks.size());
      std::vector<float> expected(n);
      std::vector<float> got(n);
      quant::dequantize_row_ref(type, storage.data() + 1, expected.data(), n);
      ops::dequantize_row(type, storage.data() + 1, got.data(), n);
      ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), 4 * n))
          << traits_of(type).name << " n=" << n;
    }
  }
}

// matmul on every type (odd row counts, batch 1..5, 1 and 3 threads) vs the double-precision
// reference over the same decoded weights: only f32 summation error may differ. Quantized
// random weights (not raw random blocks, whose huge scales would make every sum overflow-prone).
TEST_P(QuantKernels, MatmulMatchesTheReference) {
  ThreadPool pool1(1);
  ThreadPool pool3(3);
  SplitMix64 rng(7);
  for (TensorType type : block_types()) {
    const TensorTypeTraits t = traits_of(type);
    for (size_t n_cols : {t.block_elems, 2 * t.block_elems, 512ul}) {
      for (size_t n_rows : {1ul, 13ul, 67ul}) {
        std::vector<float> wf(n_rows * n_cols);
        for (float& v : wf) v = static_cast<float>(rng.unit() * 2 - 1);
        const size_t row_bytes = n_cols / t.block_elems * t.block_bytes;
        std::vector<uint8_t> w(n_rows * row_bytes);
        for (size_t r = 0; r < n_rows; ++r) {
          quant::quantize_row(type, wf.data() + r * n_cols, w.data() + r * row_bytes, n_cols);
        }
        const ops::MatView view{type, w.data(), n_rows, n_cols, row_bytes};
        std::vector<float> decoded(n_rows * n_cols);
        for (size_t r = 0; r < n_rows; ++r) {
          quant::dequantize_row_ref(type, w.data() + r * row_bytes, decoded.data() + r * n_cols,
                                    n_cols);
        }
        for (size_t n_batch : {1ul, 2ul, 5ul}) {
          std::vector<float> x(n_batch * n_cols);
          for (float& v : x) v = static_cast<float>(rng.unit() * 2 - 1);
          std::vector<float> expected(n_batch * n_rows);
          ops::ref::matmul(view, x.data(), n_batch, expected.data());
          for (ThreadPool* pool : {&pool1, &pool3}) {
            std::vector<float> y(n_batch * n_rows, NAN);
            ops::matmul(view, x.data(), n_batch, y.data(), *pool);
            for (size_t i = 0; i < y.size(); ++i) {
              // An f32 sum of n terms errs by at most about n ulps of the sum of |terms|.
              const size_t b = i / n_rows;
              const size_t r = i % n_rows;
              double abs_sum = 0.0;
              for (size_t c = 0; c < n_cols; ++c) {
                abs_sum += std::fabs(double{decoded[r * n_cols + c]} * x[b * n_cols + c]);
              }
              const double bound = static_cast<double>(n_cols + 8) * 1.2e-7 * abs_sum;
              ASSERT_NEAR(y[i], expected[i], bound)
                  << t.name << " " << n_rows << "x" << n_cols << " batch " << n_batch << " i=" << i;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace sllm
