#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/quant.h"
#include "test_util.h"
#include "tools/llama2c.h"
#include "tools/quantize.h"
#include "util/mapped_file.h"

namespace sllm {
namespace {

namespace fs = std::filesystem;

std::string stories_bin() { return test::shared_path("models/stories260K/stories260K.bin"); }
std::string tok512_bin() { return test::shared_path("models/stories260K/tok512.bin"); }

std::vector<uint8_t> file_bytes(const std::string& path) {
  Result<MappedFile> file = MappedFile::open(path);
  EXPECT_TRUE(file.ok()) << path;
  if (!file.ok()) return {};
  return {file->bytes().begin(), file->bytes().end()};
}

// A fresh directory per test, removed afterwards.
class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("sllm_tools_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `bytes` to a file in the test directory and returns its path.
  std::string write(const std::string& name, std::span<const uint8_t> bytes) const {
    EXPECT_TRUE(write_file_atomic(path(name), bytes).ok());
    return path(name);
  }

  fs::path dir_;
};

// ---- llama2.c import ----

TEST_F(ToolsTest, ConvertedStoriesEqualsTheSharedGguf) {
  const std::string out = path("stories260K.gguf");
  const Status status = convert_llama2c(stories_bin(), tok512_bin(), out);
  ASSERT_TRUE(status.ok()) << status.error().message();

  Result<GgufFile> ours = GgufFile::open(out);
  Result<GgufFile> reference = GgufFile::open(test::stories_gguf());
  ASSERT_TRUE(ours.ok()) << ours.error().message();
  ASSERT_TRUE(reference.ok()) << reference.error().message();

  // Same tensors, in the same order, bit for bit: in particular attn_q / attn_k need no row
  // permutation (llama2.c already pairs RoPE dimensions the way llama.cpp's 'llama' arch does).
  ASSERT_EQ(ours->tensors().size(), reference->tensors().size());
  for (size_t i = 0; i < ours->tensors().size(); ++i) {
    const GgufTensorInfo& a = ours->tensors()[i];
    const GgufTensorInfo& b = reference->tensors()[i];
    SCOPED_TRACE(b.name);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.dims, b.dims);
    EXPECT_EQ(a.type, b.type);
    ASSERT_EQ(a.n_bytes, b.n_bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0);
  }

  // Same keys in the same order with the same values, except the context length: ours is the
  // checkpoint's seq_len (512, the training length), llama.cpp's converter wrote its default 2048.
  ASSERT_EQ(ours->metadata().size(), reference->metadata().size());
  for (size_t i = 0; i < ours->metadata().size(); ++i) {
    const auto& [key, value] = ours->metadata()[i];
    SCOPED_TRACE(key);
    EXPECT_EQ(key, reference->metadata()[i].first);
    if (key != "llama.context_length") {
      EXPECT_TRUE(value == reference->metadata()[i].second);
    }
  }
  EXPECT_EQ(*ours->get_u32("llama.context_length"), 512u);
  EXPECT_EQ(*reference->get_u32("llama.context_length"), 2048u);

  // The tokenizer spelled out (also covered above): texts, scores and types.
  EXPECT_EQ(*ours->get_string_array("tokenizer.ggml.tokens"),
            *reference->get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(*ours->get_f32_array("tokenizer.ggml.scores"),
            *reference->get_f32_array("tokenizer.ggml.scores"));
  EXPECT_EQ(*ours->get_i32_array("tokenizer.ggml.token_type"),
            *reference->get_i32_array("tokenizer.ggml.token_type"));

  // Byte for byte the file llama.cpp wrote, but for the 4 bytes of the context length.
  const std::vector<uint8_t> a = file_bytes(out);
  const std::vector<uint8_t> b = file_bytes(test::stories_gguf());
  ASSERT_EQ(a.size(), b.size());
  std::vector<size_t> differing;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) differing.push_back(i);
  }
  // 512 = 0x200 and 2048 = 0x800 differ in one byte, the second of the little-endian u32.
  ASSERT_EQ(differing.size(), 1u);
  const size_t at = differing[0] - 1;
  uint32_t ours_ctx = 0, reference_ctx = 0;
  std::memcpy(&ours_ctx, a.data() + at, sizeof(ours_ctx));
  std::memcpy(&reference_ctx, b.data() + at, sizeof(reference_ctx));
  EXPECT_EQ(ours_ctx, 512u);
  EXPECT_EQ(reference_ctx, 2048u);
}

// The checkpoint with its header fields replaced.
std::vector<uint8_t> with_header(std::vector<uint8_t> checkpoint, std::vector<int32_t> header) {
  std::memcpy(checkpoint.data(), header.data(), header.size() * sizeof(int32_t));
  return checkpoint;
}

TEST_F(ToolsTest, ConvertRejectsBadCheckpoints) {
  const std::vector<uint8_t> good = file_bytes(stories_bin());
  ASSERT_EQ(good.size(), 1056540u);
  auto error_of = [&](const std::string& checkpoint) {
    const Status status = convert_llama2c(checkpoint, tok512_bin(), path("out.gguf"));
    EXPECT_FALSE(status.ok());
    EXPECT_FALSE(fs::exists(path("out.gguf")));
    return status.ok() ? std::string() : status.error().message();
  };
  const std::string prefix = "llama2.c checkpoint '" + path("bad.bin") + "': ";
  const std::string header =
      "dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab_size 512, seq_len 512";

  EXPECT_EQ(error_of(write("bad.bin", std::span(good).first(1000000))),
            prefix + "file is 1000000 bytes but its header (" + header + ") implies 1056540");
  EXPECT_EQ(error_of(write("bad.bin", std::span(good).first(10))),
            prefix + "file is 10 bytes, shorter than the 28-byte header");

  // An unshared classifier would need another [512, 64] f32 table after the RoPE tables.
  EXPECT_EQ(error_of(write("bad.bin", with_header(good, {64, 172, 5, 8, 4, -512, 512}))),
            prefix +
                "file is 1056540 bytes but its header (dim 64, hidden_dim 172, n_layers 5, "
                "n_heads 8, n_kv_heads 4, vocab_size -512, seq_len 512) implies 1187612");
  EXPECT_EQ(error_of(write("bad.bin", with_header(good, {64, 172, 5, 7, 7, 512, 512}))),
            prefix + "dim 64 is not a multiple of n_heads 7");
  EXPECT_EQ(error_of(write("bad.bin", with_header(good, {64, 172, 5, 8, 3, 512, 512}))),
            prefix + "n_heads 8 is not a multiple of n_kv_heads 3");
  EXPECT_EQ(error_of(write("bad.bin", with_header(good, {64, 172, 5, 64, 4, 512, 512}))),
            prefix + "head size 1 is odd; RoPE rotates pairs");
  EXPECT_EQ(error_of(write("bad.bin", with_header(good, {64, 172, -5, 8, 4, 512, 512}))),
            prefix +
                "header (dim 64, hidden_dim 172, n_layers -5, n_heads 8, n_kv_heads 4, "
                "vocab_size 512, seq_len 512) has a zero or negative size");
  // Sizes that overflow 64 bits must not wrap around to something plausible.
  EXPECT_EQ(error_of(write("bad.bin",
                           with_header(good, {1 << 30, 1 << 30, 1 << 30, 1, 1, 1 << 30, 1 << 30}))),
            prefix +
                "file is 1056540 bytes but its header (dim 1073741824, hidden_dim 1073741824, "
                "n_layers 1073741824, n_heads 1, n_kv_heads 1, vocab_size 1073741824, seq_len "
                "1073741824) implies more than 2^64");

  const Status missing = convert_llama2c(path("missing.bin"), tok512_bin(), path("out.gguf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
  EXPECT_EQ(missing.error().message(),
            "cannot open '" + path("missing.bin") + "': No such file or directory");
}

TEST_F(ToolsTest, ConvertRejectsBadTokenizers) {
  const std::vector<uint8_t> good = file_bytes(tok512_bin());
  ASSERT_EQ(good.size(), 6227u);
  auto error_of = [&](const std::string& tokenizer) {
    const Status status = convert_llama2c(stories_bin(), tokenizer, path("out.gguf"));
    EXPECT_FALSE(status.ok());
    return status.ok() ? std::string() : status.error().message();
  };
  const std::string prefix = "llama2.c tokenizer '" + path("bad.bin") + "': ";

  // u32 max_token_length, then token 0: f32 score, i32 length 5, "<unk>" = bytes [0, 17).
  EXPECT_EQ(error_of(write("bad.bin", std::span(good).first(20))),
            prefix + "ends at byte 17 inside token 1 of the 512 the checkpoint has");
  EXPECT_EQ(error_of(write("bad.bin", std::span(good).first(2))),
            prefix + "file is 2 bytes, shorter than the 4-byte header");
  std::vector<uint8_t> longer = good;
  longer.insert(longer.end(), {1, 2, 3});
  EXPECT_EQ(error_of(write("bad.bin", longer)),
            prefix + "has 3 bytes after the 512 tokens the checkpoint's vocab_size asks for");
  std::vector<uint8_t> negative = good;
  const int32_t minus_one = -1;
  std::memcpy(negative.data() + 8, &minus_one, 4);  // token 0's length
  EXPECT_EQ(error_of(write("bad.bin", negative)), prefix + "token 0 has a negative length -1");
  std::vector<uint8_t> too_long = good;
  const uint32_t max_token_length = 4;  // token 0 "<unk>" is 5
  std::memcpy(too_long.data(), &max_token_length, 4);
  EXPECT_EQ(error_of(write("bad.bin", too_long)),
            prefix + "token 0 is 5 bytes, longer than max_token_length 4");

  const Status missing = convert_llama2c(stories_bin(), path("missing.bin"), path("out.gguf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
}

// ---- quantize ----

struct QuantCase {
  TensorType type;
  uint32_t file_type;  // llama.cpp's LLAMA_FTYPE
};

// Largest |x| in elements [begin, begin + n) of `row`.
float max_abs(const std::vector<float>& row, size_t begin, size_t n) {
  float m = 0.0f;
  for (size_t i = begin; i < begin + n; ++i) m = std::max(m, std::fabs(row[i]));
  return m;
}

// The largest error the format's rounding allows for element i of `row`.
float error_bound(TensorType type, const std::vector<float>& row, size_t i) {
  const size_t block = i / quant::kBlockElems * quant::kBlockElems;
  // The f16 scale is itself rounded (relative 2^-11), which moves a code of up to 127 (q8_0) or
  // 8 (q4_0) steps by that much more.
  switch (type) {
    case TensorType::kF32:
      return 0.0f;
    case TensorType::kF16:
      return std::fabs(row[i]) * 0x1p-11f + 0x1p-25f;  // half an ulp
    case TensorType::kBF16:
      return std::fabs(row[i]) * 0x1p-8f + 0x1p-134f;
    case TensorType::kQ8_0: {
      const float step = max_abs(row, block, quant::kBlockElems) / 127.0f;
      return step * (0.5f + 127.0f * 0x1p-11f) + 1e-9f;  // half a step
    }
    case TensorType::kQ4_0: {
      // The element of largest magnitude maps to -8; its negation would be +8, clipped to 7:
      // a whole step.
      const float step = max_abs(row, block, quant::kBlockElems) / 8.0f;
      return step * (1.0f + 8.0f * 0x1p-11f) + 1e-9f;
    }
    default:
      // The other block types are checked bit for bit against llama.cpp (quant_types_test).
      break;
  }
  return 0.0f;
}

TEST_F(ToolsTest, QuantizeEncodesMatricesWithinTheFormatsErrorBound) {
  Result<GgufFile> source = GgufFile::open(test::stories_gguf());
  ASSERT_TRUE(source.ok()) << source.error().message();
  for (const QuantCase& c : {QuantCase{TensorType::kQ8_0, 7}, QuantCase{TensorType::kQ4_0, 2},
                             QuantCase{TensorType::kF16, 1}, QuantCase{TensorType::kBF16, 32}}) {
    const std::string type_name = tensor_type_traits(static_cast<uint32_t>(c.type))->name;
    SCOPED_TRACE(type_name);
    const std::string out = path(type_name + ".gguf");
    std::vector<std::string> log;
    const Status status = quantize_gguf(test::stories_gguf(), out, c.type,
                                        [&](const std::string& line) { log.push_back(line); });
    ASSERT_TRUE(status.ok()) << status.error().message();
    Result<GgufFile> quantized = GgufFile::open(out);
    ASSERT_TRUE(quantized.ok()) << quantized.error().message();

    EXPECT_EQ(*quantized->get_u32("general.file_type"), c.file_type);
    for (const auto& [key, value] : source->metadata()) {
      const GgufValue* copied = quantized->find(key);
      ASSERT_NE(copied, nullptr) << key;
      EXPECT_TRUE(*copied == value) << key;
    }

    const bool blocked = c.type == TensorType::kQ8_0 || c.type == TensorType::kQ4_0;
    std::vector<std::string> expected_log;
    ASSERT_EQ(quantized->tensors().size(), source->tensors().size());
    for (const GgufTensorInfo& original : source->tensors()) {
      SCOPED_TRACE(original.name);
      const GgufTensorInfo* t = quantized->find_tensor(original.name);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->dims, original.dims);
      if (original.dims.size() == 1) {  // norms stay f32, bit for bit
        EXPECT_EQ(t->type, TensorType::kF32);
        ASSERT_EQ(t->n_bytes, original.n_bytes);
        EXPECT_EQ(std::memcmp(t->data, original.data, t->n_bytes), 0);
        continue;
      }
      // ffn_down rows are n_ff = 172 long: not a multiple of 32, so f16 for q8_0 / q4_0.
      TensorType expected_type = c.type;
      // q4_0 files keep the output matrix at q8_0, as llama.cpp keeps it at a higher precision.
      if (c.type == TensorType::kQ4_0 && original.name == "output.weight") {
        expected_type = TensorType::kQ8_0;
        expected_log.insert(expected_log.begin(),
                            "output.weight: kept at q8_0 (the output matrix), as llama.cpp does "
                            "for q4_0");
      }
      if (blocked && original.row_length() % quant::kBlockElems != 0) {
        expected_type = TensorType::kF16;
        expected_log.push_back(original.name + ": row length 172 is not a multiple of the " +
                               "32-element " + type_name + " block; written as f16");
      }
      EXPECT_EQ(t->type, expected_type);
      if (t->type != expected_type) continue;

      const size_t row_length = static_cast<size_t>(original.row_length());
      const size_t row_bytes = static_cast<size_t>(t->n_bytes / t->n_rows());
      std::vector<float> row(row_length), decoded(row_length);
      std::vector<uint8_t> encoded(row_bytes);
      for (size_t r = 0; r < original.n_rows(); ++r) {
        std::memcpy(row.data(), original.data + r * row_length * sizeof(float),
                    row_length * sizeof(float));
        const uint8_t* stored = t->data + r * row_bytes;
        // The stored row is exactly quantize_row of the source row (right row, right order)...
        quant::quantize_row(expected_type, row.data(), encoded.data(), row_length);
        ASSERT_EQ(std::memcmp(stored, encoded.data(), row_bytes), 0) << "row " << r;
        // ...and decodes to within the format's error bound.
        quant::dequantize_row_ref(expected_type, stored, decoded.data(), row_length);
        for (size_t i = 0; i < row_length; ++i) {
          ASSERT_LE(std::fabs(decoded[i] - row[i]), error_bound(expected_type, row, i))
              << "row " << r << ", column " << i << ": " << row[i] << " -> " << decoded[i];
        }
      }
    }
    EXPECT_EQ(log, expected_log);
  }
}

TEST_F(ToolsTest, RequantizingDecodesFirstAndSaysSo) {
  const std::string q8 = path("q8_0.gguf");
  ASSERT_TRUE(quantize_gguf(test::stories_gguf(), q8, TensorType::kQ8_0, [](const auto&) {}).ok());
  // Back to f32: every matrix is exactly the q8_0 decoding, and ALL_F32 is recorded.
  const std::string f32 = path("f32.gguf");
  std::vector<std::string> log;
  ASSERT_TRUE(quantize_gguf(q8, f32, TensorType::kF32, [&](const std::string& line) {
                log.push_back(line);
              }).ok());
  Result<GgufFile> from = GgufFile::open(q8);
  Result<GgufFile> to = GgufFile::open(f32);
  ASSERT_TRUE(from.ok() && to.ok());
  EXPECT_EQ(*to->get_u32("general.file_type"), 0u);
  size_t n_q8 = 0;
  for (const GgufTensorInfo& t : to->tensors()) {
    const GgufTensorInfo* q = from->find_tensor(t.name);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(t.type, TensorType::kF32) << t.name;
    std::vector<float> expected(t.n_elements);
    quant::dequantize_row_ref(q->type, q->data, expected.data(), expected.size());
    ASSERT_EQ(t.n_bytes, expected.size() * sizeof(float));
    EXPECT_EQ(std::memcmp(t.data, expected.data(), t.n_bytes), 0) << t.name;
    if (q->type == TensorType::kQ8_0) ++n_q8;
  }
  EXPECT_EQ(n_q8, 32u);  // q, k, v, output, gate, up in each of 5 layers; token_embd, output
  ASSERT_EQ(log.size(), n_q8);
  EXPECT_EQ(log[0], "token_embd.weight: requantizing q8_0 to f32 adds the rounding errors of both");
}

TEST_F(ToolsTest, QuantizeRejectsNonFiniteWeightsForBlockTypes) {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::str("llama"));
  std::vector<float> values(64, 0.5f);  // [2, 32]
  values[40] = NAN;
  ASSERT_TRUE(writer
                  .add_tensor("x.weight", TensorType::kF32, {32, 2},
                              {reinterpret_cast<const uint8_t*>(values.data()), 64 * 4})
                  .ok());
  const std::string in = path("nan.gguf");
  ASSERT_TRUE(writer.write(in).ok());

  const Status status = quantize_gguf(in, path("out.gguf"), TensorType::kQ4_0, {});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message(),
            "'" + in +
                "': tensor 'x.weight' has the non-finite value nan at row 1, column 8; q4_0 needs "
                "finite weights");
  // f16 has a NaN: no reason to refuse.
  EXPECT_TRUE(quantize_gguf(in, path("out.gguf"), TensorType::kF16, {}).ok());

  const Status missing = quantize_gguf(path("missing.gguf"), path("out.gguf"), TensorType::kQ8_0);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
}

}  // namespace
}  // namespace sllm
