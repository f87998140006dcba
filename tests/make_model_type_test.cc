// make-model --type X: matrices encoded as they are generated must be the bytes that make-model
// f32 followed by quantize X writes (the 7B shape cannot afford the f32 or f16 intermediate).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "streamingllm/tools.h"
#include "test_util.h"
#include "tools/quantize.h"
#include "util/mapped_file.h"

namespace sllm {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> file_bytes(const std::string& path) {
  Result<MappedFile> file = MappedFile::open(path);
  EXPECT_TRUE(file.ok()) << path;
  if (!file.ok()) return {};
  return {file->bytes().begin(), file->bytes().end()};
}

// What `streamingllm quantize` does with a type or mix name.
Status quantize_file(const std::string& in, const std::string& out, const std::string& type) {
  const auto quiet = [](const std::string&) {};
  if (const auto mix = parse_quant_mix(type)) return quantize_gguf_mix(in, out, *mix, quiet);
  return quantize_gguf(in, out, *parse_tensor_type(type), quiet);
}

class MakeModelTypeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("sllm_make_model_type_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // n_embd 256 so that the K-quants apply; n_ff 704 (the default for 256) is no multiple of 256,
  // so ffn_down takes quantize's fallback type.
  static MakeModelOptions small(const std::string& arch) {
    MakeModelOptions o;
    o.arch = arch;
    o.vocab = test::stories_gguf();
    o.n_embd = 256;
    o.n_layer = 3;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.seed = 7;
    return o;
  }

  fs::path dir_;
};

TEST_F(MakeModelTypeTest, EqualsTheF32FileQuantizedByteForByte) {
#if defined(SLLM_TEST_ASAN)
  // The K-quant searches are slow in a Debug sanitizer build: one architecture, two types.
  const std::vector<std::string> archs = {"llama"}, types = {"q8_0", "Q4_K_M"};
#else
  const std::vector<std::string> archs = {"llama", "qwen2"},
                                 types = {"q8_0", "q4_0", "Q4_K_M", "q6_K"};
#endif
  for (const std::string& arch : archs) {
    MakeModelOptions o = small(arch);
    const std::string f32 = path(arch + "-f32.gguf");
    ASSERT_TRUE(make_model(o, f32).ok());
    for (const std::string& type : types) {
      SCOPED_TRACE(arch + " " + type);
      const std::string quantized = path(arch + "-quantized-" + type + ".gguf");
      const Status q = quantize_file(f32, quantized, type);
      ASSERT_TRUE(q.ok()) << q.error().message();
      o.type = type;
      const std::string direct = path(arch + "-direct-" + type + ".gguf");
      const Status m = make_model(o, direct);
      ASSERT_TRUE(m.ok()) << m.error().message();
      const std::vector<uint8_t> a = file_bytes(quantized), b = file_bytes(direct);
      ASSERT_FALSE(a.empty());
      EXPECT_TRUE(a == b) << "sizes " << a.size() << " and " << b.size();

      // Not vacuous: the matrices really are encoded, and the mix really mixes.
      Result<GgufFile> file = GgufFile::open(direct);
      ASSERT_TRUE(file.ok()) << file.error().message();
      std::set<std::string> stored;
      for (const GgufTensorInfo& t : file->tensors()) {
        if (t.dims.size() == 2) {
          stored.insert(tensor_type_traits(static_cast<uint32_t>(t.type))->name);
        }
      }
      EXPECT_EQ(stored.count("f32"), 0u);
      if (type == "Q4_K_M") {
        // q4_K; q6_K for attn_v of the use_more_bits layers and the output; ffn_down (704
        // columns) falls back to q5_0, or from q6_K to q8_0 in the use_more_bits layers.
        EXPECT_EQ(stored, (std::set<std::string>{"q4_K", "q5_0", "q6_K", "q8_0"}));
      }
    }
  }
}

TEST_F(MakeModelTypeTest, RejectsAnUnknownType) {
  MakeModelOptions o = small("llama");
  o.type = "q7_0";
  const Status s = make_model(o, path("x.gguf"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "make-model: --type 'q7_0' is neither a weight type nor a quantize mix (Q4_K_M, "
            "Q5_K_M)");
  EXPECT_FALSE(fs::exists(path("x.gguf")));
}

}  // namespace
}  // namespace sllm
