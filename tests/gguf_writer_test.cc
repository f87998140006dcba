// GgufWriter: every value and tensor type written, read back and written again byte-identical,
// and what it refuses to write.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"

namespace sllm {
namespace {

using test::read_bytes;

std::vector<uint8_t> pattern(size_t n_bytes, uint8_t seed) {
  std::vector<uint8_t> bytes(n_bytes);
  for (size_t i = 0; i < n_bytes; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 37);
  return bytes;
}

GgufValue u8v(uint8_t x) { return {GgufValueType::kUint8, uint64_t{x}}; }

struct TestTensor {
  std::string name;
  TensorType type;
  std::vector<uint64_t> dims;
  std::vector<uint8_t> bytes;
};

std::vector<TestTensor> every_type_tensors() {
  return {
      {"f32", TensorType::kF32, {4, 3}, pattern(48, 1)},
      {"f16", TensorType::kF16, {8}, pattern(16, 2)},
      {"bf16", TensorType::kBF16, {2, 2, 2}, pattern(16, 3)},
      {"q8_0", TensorType::kQ8_0, {64, 2}, pattern(4 * 34, 4)},
      {"q4_0", TensorType::kQ4_0, {32, 1, 1, 2}, pattern(2 * 18, 5)},
      {"scalar", TensorType::kF32, {}, pattern(4, 6)},
  };
}

GgufWriter every_type_writer() {
  GgufWriter w;
  w.set("u8", u8v(255));
  w.set("i8", GgufValue{GgufValueType::kInt8, int64_t{-128}});
  w.set("u16", GgufValue{GgufValueType::kUint16, uint64_t{65535}});
  w.set("i16", GgufValue{GgufValueType::kInt16, int64_t{-32768}});
  w.set("u32", GgufValue::u32(4294967295u));
  w.set("i32", GgufValue::i32(std::numeric_limits<int32_t>::min()));
  w.set("f32", GgufValue::f32(-0.1f));
  w.set("f32.inf", GgufValue::f32(std::numeric_limits<float>::infinity()));
  w.set("f32.denormal", GgufValue::f32(std::numeric_limits<float>::denorm_min()));
  w.set("bool.true", GgufValue::boolean(true));
  w.set("bool.false", GgufValue::boolean(false));
  w.set("string", GgufValue::str("héllo ▁world"));
  w.set("string.empty", GgufValue::str(""));
  w.set("u64", GgufValue::u64(std::numeric_limits<uint64_t>::max()));
  w.set("i64", GgufValue{GgufValueType::kInt64, std::numeric_limits<int64_t>::min()});
  w.set("f64", GgufValue{GgufValueType::kFloat64, 1.0 / 3.0});
  w.set("array.u8", GgufValue::array(GgufValueType::kUint8, {u8v(0), u8v(9)}));
  w.set("array.i16",
        GgufValue::array(GgufValueType::kInt16, {GgufValue{GgufValueType::kInt16, int64_t{-2}}}));
  w.set("array.f32", GgufValue::f32_array({1.0f, -2.5f, 1e-30f}));
  w.set("array.i32", GgufValue::i32_array({-1, 0, 7}));
  w.set("array.bool", GgufValue::array(GgufValueType::kBool,
                                       {GgufValue::boolean(false), GgufValue::boolean(true)}));
  w.set("array.u64", GgufValue::array(GgufValueType::kUint64, {GgufValue::u64(1)}));
  w.set("array.f64",
        GgufValue::array(GgufValueType::kFloat64, {GgufValue{GgufValueType::kFloat64, -1e300}}));
  w.set("array.string", GgufValue::string_array({"", "a", "", "bc"}));
  w.set("array.empty.u32", GgufValue::array(GgufValueType::kUint32, {}));
  w.set("array.empty.string", GgufValue::string_array({}));
  w.set("array.empty.array", GgufValue::array(GgufValueType::kArray, {}));
  w.set("array.nested", GgufValue::array(GgufValueType::kArray,
                                         {GgufValue::i32_array({1, 2}), GgufValue::i32_array({}),
                                          GgufValue::string_array({"x"})}));
  w.set(
      "array.nested3",
      GgufValue::array(GgufValueType::kArray,
                       {GgufValue::array(GgufValueType::kArray, {GgufValue::f32_array({0.5f})})}));
  for (const TestTensor& t : every_type_tensors()) {
    EXPECT_TRUE(w.add_tensor(t.name, t.type, t.dims, t.bytes).ok()) << t.name;
  }
  return w;
}

void expect_every_type_content(const GgufFile& f, const GgufWriter& w, uint64_t alignment) {
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  // The writer's metadata, read back through a serialise + parse of its own.
  const std::vector<uint8_t> again = w.serialize();
  Result<GgufFile> expected = GgufFile::parse(again, "expected.gguf");
  ASSERT_TRUE(expected.ok());
  EXPECT_TRUE(f.metadata() == expected->metadata());

  const std::vector<TestTensor> tensors = every_type_tensors();
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& info = f.tensors()[i];
    const TestTensor& t = tensors[i];
    EXPECT_EQ(info.name, t.name);
    EXPECT_EQ(info.type, t.type);
    EXPECT_EQ(info.dims, t.dims);
    EXPECT_EQ(info.n_bytes, t.bytes.size());
    EXPECT_EQ(info.offset % alignment, 0u) << t.name;
    EXPECT_EQ(std::memcmp(info.data, t.bytes.data(), t.bytes.size()), 0) << t.name;
  }
}

TEST(GgufWriter, RoundTripsEveryValueTypeAndTensorType) {
  const GgufWriter w = every_type_writer();
  ASSERT_TRUE(w.validate().ok());
  const std::vector<uint8_t> bytes = w.serialize();
  Result<GgufFile> r = GgufFile::parse(bytes, "rt.gguf");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const GgufFile& f = *r;
  expect_every_type_content(f, w, 32);

  // Spot checks against the values set, independent of the writer.
  EXPECT_EQ(f.metadata().size(), 29u);
  EXPECT_EQ(f.metadata()[0].first, "u8");
  EXPECT_EQ(*f.get_u32("u8"), 255u);
  EXPECT_EQ(*f.get_i64("i8"), -128);
  EXPECT_EQ(*f.get_i64("i16"), -32768);
  EXPECT_EQ(*f.get_u64("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*f.get_i64("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*f.get_f32("f32"), -0.1f);
  EXPECT_EQ(*f.get_f32("f32.denormal"), std::numeric_limits<float>::denorm_min());
  EXPECT_TRUE(std::isinf(*f.get_f32("f32.inf")));
  EXPECT_EQ(std::get<double>(f.find("f64")->v), 1.0 / 3.0);
  EXPECT_EQ(*f.get_bool("bool.false"), false);
  EXPECT_EQ(*f.get_string("string"), "héllo ▁world");
  EXPECT_EQ(*f.get_string("string.empty"), "");
  EXPECT_EQ(*f.get_string_array("array.string"), (std::vector<std::string>{"", "a", "", "bc"}));
  EXPECT_TRUE(f.get_string_array("array.empty.string")->empty());
  const GgufValue* empty = f.find("array.empty.u32");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(std::get<GgufArray>(empty->v).elem_type, GgufValueType::kUint32);
  const GgufArray& nested = std::get<GgufArray>(f.find("array.nested")->v);
  ASSERT_EQ(nested.items.size(), 3u);
  EXPECT_EQ(std::get<GgufArray>(nested.items[0].v).items[1], GgufValue::i32(2));
  EXPECT_TRUE(std::get<GgufArray>(nested.items[1].v).items.empty());
  EXPECT_EQ(std::get<GgufArray>(nested.items[2].v).elem_type, GgufValueType::kString);

  // Bit-exact: reading and writing back reproduces the bytes.
  GgufWriter copy;
  for (const auto& [key, value] : f.metadata()) copy.set(key, value);
  for (const GgufTensorInfo& t : f.tensors()) {
    ASSERT_TRUE(copy.add_tensor(t.name, t.type, t.dims, {t.data, t.n_bytes}).ok());
  }
  EXPECT_TRUE(copy.serialize() == bytes);

  // The file ends padded, and every byte between and after tensors is zero.
  EXPECT_EQ(bytes.size() % 32, 0u);
  uint64_t expected_end = f.data_offset();
  for (const GgufTensorInfo& t : f.tensors()) {
    const uint64_t start = f.data_offset() + t.offset;
    for (uint64_t i = expected_end; i < start; ++i) ASSERT_EQ(bytes[i], 0) << i;
    expected_end = start + t.n_bytes;
  }
  for (uint64_t i = expected_end; i < bytes.size(); ++i) ASSERT_EQ(bytes[i], 0) << i;
}

TEST(GgufWriter, WritesAFileThatOpens) {
  const GgufWriter w = every_type_writer();
  const std::string path = ::testing::TempDir() + "gguf_writer_test_round_trip.gguf";
  ASSERT_TRUE(w.write(path).ok());
  Result<GgufFile> r = GgufFile::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message();
  expect_every_type_content(*r, w, 32);
  EXPECT_EQ(read_bytes(path), w.serialize());
}

TEST(GgufWriter, UsesGeneralAlignment) {
  GgufWriter w = every_type_writer();
  w.set("general.alignment", GgufValue::u32(64));
  const std::vector<uint8_t> bytes = w.serialize();
  EXPECT_EQ(bytes.size() % 64, 0u);
  Result<GgufFile> r = GgufFile::parse(bytes, "a64.gguf");
  ASSERT_TRUE(r.ok()) << r.error().message();
  expect_every_type_content(*r, w, 64);
  EXPECT_EQ(r->tensors()[1].offset, 64u);  // the 48-byte f32 tensor is padded to 64
}

TEST(GgufWriter, SetReplacesAnExistingKey) {
  GgufWriter w;
  w.set("a", GgufValue::u32(1));
  w.set("b", GgufValue::u32(2));
  w.set("a", GgufValue::str("x"));
  const std::vector<uint8_t> bytes = w.serialize();
  Result<GgufFile> r = GgufFile::parse(bytes, "s.gguf");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->metadata().size(), 2u);
  EXPECT_EQ(r->metadata()[0].first, "a");
  EXPECT_EQ(*r->get_string("a"), "x");
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  const std::vector<uint8_t> bytes(64);
  EXPECT_EQ(w.add_tensor("t", TensorType::kF32, {4}, {bytes.data(), 15}).error().message(),
            "gguf writer: tensor 't' needs 16 bytes of f32 data, got 15");
  ASSERT_TRUE(w.add_tensor("t", TensorType::kF32, {4}, {bytes.data(), 16}).ok());
  EXPECT_EQ(w.add_tensor("t", TensorType::kF32, {4}, {bytes.data(), 16}).error().message(),
            "gguf writer: tensor 't' is already added");
  EXPECT_EQ(w.add_tensor("q", TensorType::kQ4_0, {16}, {bytes.data(), 9}).error().message(),
            "gguf writer: tensor 'q' row length 16 is not a multiple of the q4_0 block size 32");
  EXPECT_EQ(w.add_tensor("z", TensorType::kF32, {4, 0}, {}).error().code(),
            ErrorCode::kInvalidInput);
  EXPECT_EQ(
      w.add_tensor("d", TensorType::kF32, {1, 1, 1, 1, 1}, {bytes.data(), 4}).error().message(),
      "gguf writer: tensor 'd' has more than 4 dimensions");
  EXPECT_EQ(w.add_tensor("x", static_cast<TensorType>(16), {256}, {}).error().message(),
            "gguf writer: tensor 'x' has an unsupported type");
}

TEST(GgufWriter, ValidateRejectsInconsistentValues) {
  GgufWriter w;
  w.set("general.alignment", GgufValue::u32(48));
  EXPECT_EQ(w.validate().error().message(),
            "gguf writer: general.alignment must be a non-zero power of two that fits in u32");
  const std::string path = ::testing::TempDir() + "gguf_writer_test_never_written.gguf";
  EXPECT_FALSE(w.write(path).ok());
  EXPECT_FALSE(MappedFile::open(path).ok());

  GgufWriter range;
  range.set("k", GgufValue{GgufValueType::kUint8, uint64_t{300}});
  EXPECT_EQ(range.validate().error().message(),
            "gguf writer: key 'k': u8 value does not hold an integer in its range");

  GgufWriter mixed;
  mixed.set("k",
            GgufValue::array(GgufValueType::kUint32, {GgufValue::u32(1), GgufValue::str("x")}));
  EXPECT_EQ(mixed.validate().error().message(),
            "gguf writer: key 'k'[1] has type string in an array of u32");
}

// Every truncation of a file holding every value type (nested and empty arrays included) fails
// cleanly; exact-size copies let ASan catch any over-read.
TEST(GgufWriter, EveryTruncationOfTheRoundTripFileFails) {
  const std::vector<uint8_t> bytes = every_type_writer().serialize();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::unique_ptr<uint8_t[]> prefix(new uint8_t[cut]);
    std::memcpy(prefix.get(), bytes.data(), cut);
    Result<GgufFile> r = GgufFile::parse({prefix.get(), cut}, "rt.gguf");
    if (r.ok()) {
      // Only cuts inside the padding after the last tensor leave a valid file.
      EXPECT_GE(cut, bytes.size() - 28) << cut;
      continue;
    }
    ASSERT_EQ(r.error().code(), ErrorCode::kFormat) << r.error().message();
    ASSERT_EQ(r.error().message().rfind("rt.gguf: offset ", 0), 0u) << r.error().message();
  }
}

}  // namespace
}  // namespace sllm
