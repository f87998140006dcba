#include "gguf/gguf.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "test_util.h"

namespace sllm {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint64_t kStoriesBytes = 1185376;

// ---- Byte-level builder for hand-made (mostly malformed) files ----

class Bytes {
 public:
  Bytes& u8(uint8_t x) { return put(x); }
  Bytes& u32(uint32_t x) { return put(x); }
  Bytes& u64(uint64_t x) { return put(x); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& zeros(size_t n) {
    bytes_.resize(bytes_.size() + n, 0);
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  // One metadata entry: key, value type, then the caller appends the value.
  Bytes& key(std::string_view k, GgufValueType type) {
    return str(k).u32(static_cast<uint32_t>(type));
  }
  Bytes& tensor_info(std::string_view name, const std::vector<uint64_t>& dims, uint32_t type,
                     uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }

  size_t size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  template <typename T>
  Bytes& put(T x) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &x, sizeof(T));
    return *this;
  }

  std::vector<uint8_t> bytes_;
};

Bytes header(uint32_t version, uint64_t n_tensors, uint64_t n_entries) {
  Bytes b;
  b.u32(kMagic).u32(version).u64(n_tensors).u64(n_entries);
  return b;
}

// A file with one f32 tensor "t" of `dims` at data offset `offset`, followed by `n_data` bytes.
Bytes one_tensor_file(const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset,
                      size_t n_data) {
  Bytes b = header(3, 1, 0);
  b.tensor_info("t", dims, type, offset).pad_to(32).zeros(n_data);
  return b;
}

// Parses `bytes` (which must be malformed) and returns the error.
Error parse_error(const Bytes& b) {
  Result<GgufFile> r = GgufFile::parse(b.bytes(), "bad.gguf");
  EXPECT_FALSE(r.ok());
  if (r.ok()) return Error(ErrorCode::kInternal, "parsed without error");
  return r.error();
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

using test::read_bytes;

GgufValue u8v(uint8_t x) { return {GgufValueType::kUint8, uint64_t{x}}; }

// ---- The real model ----

TEST(GgufRealFile, HeaderMetadataAndTensors) {
  Result<GgufFile> r = GgufFile::open(test::stories_gguf());
  ASSERT_TRUE(r.ok()) << r.error().message();
  const GgufFile& f = *r;
  EXPECT_EQ(f.path(), test::stories_gguf());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.metadata().size(), 19u);
  EXPECT_EQ(f.metadata().front().first, "tokenizer.ggml.tokens");
  EXPECT_EQ(f.data_offset(), 14176u);

  EXPECT_EQ(*f.get_string("general.architecture"), "llama");
  EXPECT_EQ(*f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*f.get_u32("llama.embedding_length"), 64u);
  EXPECT_EQ(*f.get_u32("llama.feed_forward_length"), 172u);
  EXPECT_EQ(*f.get_u32("llama.block_count"), 5u);
  EXPECT_EQ(*f.get_u32("llama.attention.head_count"), 8u);
  EXPECT_EQ(*f.get_u32("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(*f.get_u32("llama.rope.dimension_count"), 8u);
  EXPECT_EQ(*f.get_u64("llama.context_length"), 2048u);
  EXPECT_EQ(*f.get_i64("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(*f.get_u32("tokenizer.ggml.seperator_token_id"), 4294967295u);
  EXPECT_EQ(*f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);

  Result<std::vector<std::string>> tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores")->size(), 512u);
  const std::vector<int32_t> token_types = *f.get_i32_array("tokenizer.ggml.token_type");
  ASSERT_EQ(token_types.size(), 512u);
  EXPECT_EQ(token_types[0], 2);  // unknown
  EXPECT_EQ(token_types[1], 3);  // control
  EXPECT_EQ(token_types[2], 3);

  ASSERT_EQ(f.tensors().size(), 48u);
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<uint64_t>{64, 512}));
  EXPECT_EQ(embd->type, TensorType::kF32);
  EXPECT_EQ(embd->offset, 0u);
  EXPECT_EQ(embd->n_elements, 64u * 512u);
  EXPECT_EQ(embd->n_bytes, 64u * 512u * 4u);
  EXPECT_EQ(embd->row_length(), 64u);
  EXPECT_EQ(embd->n_rows(), 512u);

  const GgufTensorInfo* norm = f.find_tensor("blk.4.ffn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->dims, (std::vector<uint64_t>{64}));
  EXPECT_EQ(norm->n_rows(), 1u);
  EXPECT_EQ(norm->offset, 1170944u);
  EXPECT_EQ(f.find_tensor("blk.0.attn_k.weight")->dims, (std::vector<uint64_t>{64, 32}));
  EXPECT_EQ(f.find_tensor("blk.0.ffn_gate.weight")->dims, (std::vector<uint64_t>{64, 172}));
  EXPECT_EQ(f.find_tensor("no.such.tensor"), nullptr);
  EXPECT_EQ(f.find("no.such.key"), nullptr);

  // The last tensor ends exactly at the end of the file.
  EXPECT_EQ(f.data_offset() + norm->offset + norm->n_bytes, kStoriesBytes);
}

// The same weights exist in llama2.c's legacy checkpoint (a 7 x int32 header, then the token
// embedding table [vocab, dim] in f32): the tensor data pointer must land on the same floats.
TEST(GgufRealFile, TokenEmbeddingMatchesLegacyCheckpoint) {
  Result<GgufFile> r = GgufFile::open(test::stories_gguf());
  ASSERT_TRUE(r.ok()) << r.error().message();
  const std::vector<uint8_t> legacy =
      read_bytes(test::shared_path("models/stories260K/stories260K.bin"));
  const GgufTensorInfo* embd = r->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  ASSERT_GE(legacy.size(), 28 + embd->n_bytes);
  EXPECT_EQ(std::memcmp(embd->data, legacy.data() + 28, embd->n_bytes), 0);
  float first = 0;
  std::memcpy(&first, embd->data, sizeof(first));
  EXPECT_FLOAT_EQ(first, -0.29474878f);
}

// The original was written by ggml's gguf writer, whose layout GgufWriter reproduces (metadata
// and tensors in file order, offsets assigned in order, zero padding after the tensor infos and
// after every tensor), so reading and writing back gives the same bytes.
TEST(GgufRealFile, ReserializesByteIdentical) {
  Result<GgufFile> r = GgufFile::open(test::stories_gguf());
  ASSERT_TRUE(r.ok()) << r.error().message();
  GgufWriter w;
  for (const auto& [key, value] : r->metadata()) w.set(key, value);
  for (const GgufTensorInfo& t : r->tensors()) {
    ASSERT_TRUE(w.add_tensor(t.name, t.type, t.dims, {t.data, t.n_bytes}).ok());
  }
  const std::vector<uint8_t> original = read_bytes(test::stories_gguf());
  ASSERT_EQ(original.size(), kStoriesBytes);
  const std::vector<uint8_t> rewritten = w.serialize();
  ASSERT_EQ(rewritten.size(), original.size());
  EXPECT_TRUE(rewritten == original);
}

// Every prefix of the file that ends before the last byte of the tensor infos, of the padding or
// of a tensor's data is malformed. Each prefix is copied to a buffer of exactly its size, so under
// ASan any read past the end is caught.
TEST(GgufRealFile, EveryTruncationIsAFormatError) {
  const std::vector<uint8_t> original = read_bytes(test::stories_gguf());
  ASSERT_EQ(original.size(), kStoriesBytes);
  std::vector<size_t> cuts;
  const size_t data_offset = 14176;
  for (size_t cut = 0; cut <= data_offset + 64; ++cut) cuts.push_back(cut);
  for (size_t cut : {data_offset + 131071, original.size() - 256, original.size() - 1}) {
    cuts.push_back(cut);
  }
  size_t n_failures = 0;
  for (size_t cut : cuts) {
    std::unique_ptr<uint8_t[]> prefix(new uint8_t[cut]);
    std::memcpy(prefix.get(), original.data(), cut);
    Result<GgufFile> r = GgufFile::parse({prefix.get(), cut}, "stories260K.gguf");
    if (r.ok() || r.error().code() != ErrorCode::kFormat) {
      ADD_FAILURE() << "cut " << cut << ": " << (r.ok() ? "parsed" : r.error().message());
      if (++n_failures > 5) return;
      continue;
    }
    const std::string& msg = r.error().message();
    const std::string prefix_text = "stories260K.gguf: offset ";
    ASSERT_EQ(msg.rfind(prefix_text, 0), 0u) << msg;
    const uint64_t offset = std::stoull(msg.substr(prefix_text.size()));
    EXPECT_LE(offset, cut) << msg;
  }
}

TEST(GgufRealFile, TruncationMessages) {
  const std::vector<uint8_t> original = read_bytes(test::stories_gguf());
  auto error_at_cut = [&](size_t cut) {
    Result<GgufFile> r = GgufFile::parse({original.data(), cut}, "m.gguf");
    return r.ok() ? std::string("parsed") : r.error().message();
  };
  EXPECT_EQ(error_at_cut(0),
            "m.gguf: offset 0: unexpected end of file reading magic (needs 4 bytes, 0 left)");
  EXPECT_EQ(error_at_cut(30),
            "m.gguf: offset 24: metadata count 19 exceeds what the file can hold (each needs at "
            "least 13 bytes, 6 left)");
  EXPECT_EQ(error_at_cut(5000),
            "m.gguf: offset 4996: unexpected end of file reading string value of key "
            "'tokenizer.ggml.tokens' (needs 8 bytes, 4 left)");
  EXPECT_EQ(error_at_cut(11000),
            "m.gguf: offset 10977: metadata key length 31 exceeds the 23 bytes left in the file");
  EXPECT_EQ(error_at_cut(13000),
            "m.gguf: offset 12990: name of tensor 28 length 19 exceeds the 10 bytes left in the "
            "file");
  EXPECT_EQ(error_at_cut(14160),
            "m.gguf: offset 14152: data section would start at offset 14176, past the end of the "
            "file (14160 bytes)");
  EXPECT_EQ(error_at_cut(kStoriesBytes - 1),
            "m.gguf: offset 14144: tensor 'blk.4.ffn_norm.weight' data (256 bytes at data offset "
            "1170944) extends past the end of the file (the data section holds 1171199 bytes "
            "from file offset 14176, where general.alignment 32 puts it)");
}

TEST(GgufOpen, MissingFileIsAnIoError) {
  Result<GgufFile> r = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(contains(r.error().message(), "/nonexistent/model.gguf")) << r.error().message();
}

TEST(GgufOpen, MalformedFileOnDiskNamesThePath) {
  const std::string path = ::testing::TempDir() + "gguf_test_bad_version.gguf";
  ASSERT_TRUE(write_file_atomic(path, header(99, 0, 0).bytes()).ok());
  Result<GgufFile> r = GgufFile::open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            path + ": offset 4: unsupported GGUF version 99; supported versions: 2, 3");
}

// ---- Header ----

TEST(GgufHeader, BadMagic) {
  Bytes b;
  b.u32(0x46554748).u32(3).u64(0).u64(0);
  const Error e = parse_error(b);
  EXPECT_EQ(e.code(), ErrorCode::kFormat);
  EXPECT_EQ(
      e.message(),
      "bad.gguf: offset 0: not a GGUF file: magic 0x46554748 (expected 0x46554747, \"GGUF\")");
}

TEST(GgufHeader, Version1IsRejected) {
  const Error e = parse_error(header(1, 0, 0));
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.message(),
            "bad.gguf: offset 4: GGUF version 1 is not supported (it has 32-bit counts and "
            "lengths); supported versions: 2, 3");
}

TEST(GgufHeader, Version99IsRejected) {
  const Error e = parse_error(header(99, 0, 0));
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.message(),
            "bad.gguf: offset 4: unsupported GGUF version 99; supported versions: 2, 3");
}

TEST(GgufHeader, BigEndianIsRejected) {
  const Error e = parse_error(header(0x03000000, 0, 0));
  EXPECT_EQ(e.message(), "bad.gguf: offset 4: big-endian GGUF files are not supported");
}

TEST(GgufHeader, Version2IsRead) {
  Bytes b = header(2, 1, 1);
  b.key("general.name", GgufValueType::kString).str("v2");
  b.tensor_info("t", {2}, 0, 0).pad_to(32).zeros(8);
  Result<GgufFile> r = GgufFile::parse(b.bytes(), "v2.gguf");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->version(), 2u);
  EXPECT_EQ(*r->get_string("general.name"), "v2");
  ASSERT_EQ(r->tensors().size(), 1u);
  EXPECT_EQ(r->data_offset(), 96u);  // 91 bytes of header, metadata and tensor info, padded
  EXPECT_EQ(r->tensors()[0].data, b.bytes().data() + 96);
}

TEST(GgufHeader, EmptyFileWithoutDataSectionIsValid) {
  Result<GgufFile> r = GgufFile::parse(header(3, 0, 0).bytes(), "empty.gguf");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->metadata().empty());
  EXPECT_TRUE(r->tensors().empty());
}

TEST(GgufHeader, AbsurdMetadataCount) {
  const Error e = parse_error(header(3, 0, uint64_t{1} << 60));
  EXPECT_EQ(e.code(), ErrorCode::kFormat);
  EXPECT_EQ(e.message(),
            "bad.gguf: offset 24: metadata count 1152921504606846976 exceeds what the file can "
            "hold (each needs at least 13 bytes, 0 left)");
}

TEST(GgufHeader, AbsurdTensorCount) {
  Bytes b = header(3, uint64_t{1} << 60, 1);
  b.key("a", GgufValueType::kUint8).u8(0).zeros(100);
  const Error e = parse_error(b);
  EXPECT_EQ(e.message(),
            "bad.gguf: offset 24: tensor count 1152921504606846976 exceeds what the file can "
            "hold (each needs at least 24 bytes, 101 left after the metadata)");
  // Counts that only just fit pass the header check and fail later, when the bytes run out.
  Bytes tight = header(3, 5, 0);
  tight.zeros(5 * 24 - 1);
  EXPECT_TRUE(contains(parse_error(tight).message(), "tensor count 5 exceeds"));
}

// ---- Metadata ----

TEST(GgufMetadata, AbsurdStringLengths) {
  Bytes key = header(3, 0, 1);
  key.u64(uint64_t{1} << 62).zeros(5);
  EXPECT_EQ(parse_error(key).message(),
            "bad.gguf: offset 32: metadata key length 4611686018427387904 exceeds the 5 bytes "
            "left in the file");

  Bytes value = header(3, 0, 1);
  value.key("k", GgufValueType::kString).u64(~uint64_t{0}).zeros(3);
  EXPECT_EQ(parse_error(value).message(),
            "bad.gguf: offset 45: string value of key 'k' length 18446744073709551615 exceeds the "
            "3 bytes left in the file");
}

TEST(GgufMetadata, AbsurdArrayLengths) {
  Bytes b = header(3, 0, 1);
  b.key("k", GgufValueType::kArray).u32(static_cast<uint32_t>(GgufValueType::kUint32));
  b.u64(uint64_t{1} << 61).zeros(16);
  EXPECT_EQ(parse_error(b).message(),
            "bad.gguf: offset 49: array length 2305843009213693952 of key 'k' exceeds what the "
            "file can hold (each needs at least 4 bytes, 16 left)");

  // Strings need at least their 8-byte length each: 3 of them do not fit in 16 bytes.
  Bytes strings = header(3, 0, 1);
  strings.key("k", GgufValueType::kArray).u32(static_cast<uint32_t>(GgufValueType::kString));
  strings.u64(3).zeros(16);
  EXPECT_TRUE(contains(parse_error(strings).message(), "array length 3 of key 'k' exceeds"));
}

TEST(GgufMetadata, InvalidValueTypeIds) {
  Bytes b = header(3, 0, 1);
  b.str("k").u32(13).u32(0);
  EXPECT_EQ(parse_error(b).message(),
            "bad.gguf: offset 33: invalid value type 13 of key 'k' (valid: 0..12)");

  Bytes elem = header(3, 0, 1);
  elem.key("k", GgufValueType::kArray).u32(0xffffffff).u64(0);
  EXPECT_EQ(parse_error(elem).message(),
            "bad.gguf: offset 37: invalid array element type 4294967295 of key 'k' (valid: 0..12)");
}

TEST(GgufMetadata, DuplicateKey) {
  Bytes b = header(3, 0, 2);
  b.key("k", GgufValueType::kUint8).u8(1).key("k", GgufValueType::kUint8).u8(2);
  EXPECT_EQ(parse_error(b).message(), "bad.gguf: offset 38: duplicate metadata key 'k'");
}

TEST(GgufMetadata, BoolMustBeZeroOrOne) {
  Bytes b = header(3, 0, 1);
  b.key("k", GgufValueType::kBool).u8(2);
  EXPECT_EQ(parse_error(b).message(),
            "bad.gguf: offset 37: bool value 2 of key 'k' is neither 0 nor 1");
}

TEST(GgufMetadata, NestingDepthIsLimited) {
  auto nested = [](int depth) {
    Bytes b = header(3, 0, 1);
    b.key("k", GgufValueType::kArray);
    for (int i = 1; i < depth; ++i) b.u32(static_cast<uint32_t>(GgufValueType::kArray)).u64(1);
    b.u32(static_cast<uint32_t>(GgufValueType::kUint8)).u64(0);
    return b;
  };
  Result<GgufFile> ok = GgufFile::parse(nested(8).bytes(), "ok.gguf");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_TRUE(contains(parse_error(nested(9)).message(), "arrays of key 'k' nest deeper than 8"));
}

TEST(GgufMetadata, AlignmentMustBeAPowerOfTwo) {
  auto with_alignment = [](uint32_t alignment) {
    Bytes b = header(3, 0, 1);
    b.key("general.alignment", GgufValueType::kUint32).u32(alignment);
    return b;
  };
  EXPECT_EQ(
      parse_error(with_alignment(0)).message(),
      "bad.gguf: offset 53: general.alignment 0 is not a non-zero power of two that fits in u32");
  EXPECT_EQ(
      parse_error(with_alignment(48)).message(),
      "bad.gguf: offset 53: general.alignment 48 is not a non-zero power of two that fits in u32");
  Bytes text = header(3, 0, 1);
  text.key("general.alignment", GgufValueType::kString).str("32");
  EXPECT_EQ(parse_error(text).message(),
            "bad.gguf: offset 53: general.alignment has type string; expected u32");

  Bytes wide = header(3, 0, 1);
  wide.key("general.alignment", GgufValueType::kUint64).u64(uint64_t{1} << 32);
  EXPECT_EQ(parse_error(wide).message(),
            "bad.gguf: offset 53: general.alignment 4294967296 is not a non-zero power of two "
            "that fits in u32");
  Bytes negative = header(3, 0, 1);
  negative.key("general.alignment", GgufValueType::kInt32).u32(static_cast<uint32_t>(-32));
  EXPECT_TRUE(contains(parse_error(negative).message(), "general.alignment -32 is not"));

  Bytes b = with_alignment(64);
  b.pad_to(64);
  Result<GgufFile> r = GgufFile::parse(b.bytes(), "a.gguf");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->alignment(), 64u);
}

// An alignment of 2^31 in a 57-byte file made quantize pad 2 GiB of zeros: reader and writer
// both stop at kMaxGgufAlignment (1 MiB).
TEST(GgufMetadata, AlignmentIsBounded) {
  auto with_alignment = [](uint32_t alignment) {
    Bytes b = header(3, 0, 1);
    b.key("general.alignment", GgufValueType::kUint32).u32(alignment);
    return b;
  };
  EXPECT_TRUE(GgufFile::parse(with_alignment(1u << 20).bytes(), "a.gguf").ok());
  EXPECT_EQ(parse_error(with_alignment(1u << 31)).message(),
            "bad.gguf: offset 53: general.alignment 2147483648 is larger than 1048576, the "
            "largest alignment accepted");
  EXPECT_EQ(parse_error(with_alignment(1u << 21)).message(),
            "bad.gguf: offset 53: general.alignment 2097152 is larger than 1048576, the largest "
            "alignment accepted");

  const std::string path = ::testing::TempDir() + "gguf_test_huge_alignment.gguf";
  std::remove(path.c_str());
  GgufWriter w;
  w.set("general.alignment", GgufValue::u32(1u << 31));
  const Status s = w.write(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "gguf writer: general.alignment 2147483648 is larger than 1048576, the largest "
            "alignment accepted");
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "nothing is written";
}

// ---- Tensor infos ----

TEST(GgufTensors, TooManyDimensions) {
  EXPECT_EQ(parse_error(one_tensor_file({1, 1, 1, 1, 1}, 0, 0, 4)).message(),
            "bad.gguf: offset 33: tensor 't' has 5 dimensions; at most 4 are supported");
  Bytes absurd = header(3, 1, 0);
  absurd.str("t").u32(0x80000000).zeros(64);
  EXPECT_TRUE(contains(parse_error(absurd).message(), "has 2147483648 dimensions"));
}

TEST(GgufTensors, ZeroDimension) {
  EXPECT_EQ(parse_error(one_tensor_file({4, 0}, 0, 0, 16)).message(),
            "bad.gguf: offset 45: tensor 't' dimension 1 is zero");
}

TEST(GgufTensors, ElementCountOverflow) {
  EXPECT_EQ(
      parse_error(one_tensor_file({uint64_t{1} << 32, uint64_t{1} << 32, 2}, 0, 0, 0)).message(),
      "bad.gguf: offset 45: tensor 't' element count overflows (dims [4294967296, "
      "4294967296]...)");
  // The element count fits but the byte count does not.
  EXPECT_TRUE(contains(parse_error(one_tensor_file({uint64_t{1} << 62, 2}, 0, 0, 0)).message(),
                       "tensor 't' byte size overflows"));
}

TEST(GgufTensors, UnsupportedTypes) {
  // q4_K and the other llama.cpp file types load since issue 12; the other IQ types and the
  // ternary ones do not, and the error names the tensor and the type.
  constexpr const char* kSupported =
      "supported: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, "
      "iq4_nl, iq4_xs, mxfp4";
  Bytes iq2 = header(3, 1, 0);
  iq2.tensor_info("blk.0.attn_q.weight", {256, 4}, 16, 0).pad_to(32).zeros(1024);
  const Error e = parse_error(iq2);
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(e.message(),
            "bad.gguf: offset 71: tensor 'blk.0.attn_q.weight' has unsupported type iq2_xxs "
            "(ggml type 16); " +
                std::string(kSupported));

  Bytes tq1 = header(3, 1, 0);
  tq1.tensor_info("blk.0.ffn_up.weight", {256, 4}, 34, 0).pad_to(32).zeros(1024);
  EXPECT_EQ(parse_error(tq1).message(),
            "bad.gguf: offset 71: tensor 'blk.0.ffn_up.weight' has unsupported type tq1_0 (ggml "
            "type 34); " +
                std::string(kSupported));

  const Error unknown = parse_error(one_tensor_file({4}, 1000, 0, 16));
  EXPECT_EQ(unknown.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(unknown.message(), "bad.gguf: offset 45: tensor 't' has unknown ggml type 1000; " +
                                   std::string(kSupported));
}

TEST(GgufTensors, KQuantRowsMustBeAMultipleOf256) {
  // 288 is a multiple of 32 but not of q4_K's 256-element super-block.
  EXPECT_EQ(parse_error(one_tensor_file({288, 2}, 12, 0, 288)).message(),
            "bad.gguf: offset 53: tensor 't' row length 288 is not a multiple of the q4_K block "
            "size 256");
}

TEST(GgufTensors, RowLengthMustBeAMultipleOfTheBlock) {
  EXPECT_EQ(parse_error(one_tensor_file({33, 2}, 8, 0, 128)).message(),
            "bad.gguf: offset 53: tensor 't' row length 33 is not a multiple of the q8_0 block "
            "size 32");
}

TEST(GgufTensors, MisalignedOffset) {
  EXPECT_EQ(parse_error(one_tensor_file({4}, 0, 8, 64)).message(),
            "bad.gguf: offset 49: tensor 't' data offset 8 is not a multiple of the alignment 32");
}

TEST(GgufTensors, DataOutOfBounds) {
  // 4 f32 at data offset 32 need 48 bytes of data; the file has 47.
  EXPECT_EQ(parse_error(one_tensor_file({4}, 0, 32, 47)).message(),
            "bad.gguf: offset 49: tensor 't' data (16 bytes at data offset 32) extends past the "
            "end of the file (the data section holds 47 bytes from file offset 64, where "
            "general.alignment 32 puts it)");
  const Bytes fits = one_tensor_file({4}, 0, 32, 48);
  Result<GgufFile> r = GgufFile::parse(fits.bytes(), "ok.gguf");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->data_offset(), 64u);
  EXPECT_EQ(r->tensors()[0].data, fits.bytes().data() + 64 + 32);
  // An offset so large that offset + n_bytes would wrap around.
  EXPECT_TRUE(contains(parse_error(one_tensor_file({4}, 0, ~uint64_t{31}, 64)).message(),
                       "extends past the end of the file"));
}

TEST(GgufTensors, DuplicateName) {
  Bytes b = header(3, 2, 0);
  b.tensor_info("t", {4}, 0, 0).tensor_info("t", {4}, 0, 32).pad_to(32).zeros(64);
  EXPECT_EQ(parse_error(b).message(), "bad.gguf: offset 57: duplicate tensor 't'");
}

// ---- Typed getters ----

GgufFile getters_file(std::vector<uint8_t>& storage) {
  GgufWriter w;
  w.set("u8", u8v(7));
  w.set("i8", GgufValue{GgufValueType::kInt8, int64_t{-1}});
  w.set("u64", GgufValue::u64(5000000000));
  w.set("u64max", GgufValue::u64(std::numeric_limits<uint64_t>::max()));
  w.set("f32", GgufValue::f32(0.5f));
  w.set("f64", GgufValue{GgufValueType::kFloat64, 0.25});
  w.set("f64big", GgufValue{GgufValueType::kFloat64, 1e300});
  w.set("bool", GgufValue::boolean(true));
  w.set("str", GgufValue::str("hello"));
  w.set("strs", GgufValue::string_array({"a", "", "c"}));
  w.set("f32s", GgufValue::f32_array({1.5f, -2.0f}));
  w.set("f64s",
        GgufValue::array(GgufValueType::kFloat64, {GgufValue{GgufValueType::kFloat64, 3.0}}));
  w.set("i32s", GgufValue::i32_array({-3, 4}));
  w.set("u8s", GgufValue::array(GgufValueType::kUint8, {u8v(1), u8v(255)}));
  w.set("u32s",
        GgufValue::array(GgufValueType::kUint32, {GgufValue::u32(1), GgufValue::u32(4294967295u)}));
  w.set("nested", GgufValue::array(GgufValueType::kArray, {GgufValue::i32_array({1})}));
  storage = w.serialize();
  Result<GgufFile> r = GgufFile::parse(storage, "g.gguf");
  EXPECT_TRUE(r.ok()) << r.error().message();
  return std::move(r).value();
}

TEST(GgufGetters, IntegersAcceptAnyWidthThatFits) {
  std::vector<uint8_t> storage;
  const GgufFile f = getters_file(storage);
  EXPECT_EQ(*f.get_u32("u8"), 7u);
  EXPECT_EQ(*f.get_u64("u8"), 7u);
  EXPECT_EQ(*f.get_i64("u8"), 7);
  EXPECT_EQ(*f.get_i64("i8"), -1);
  EXPECT_EQ(*f.get_u64("u64"), 5000000000u);
  EXPECT_EQ(*f.get_i64("u64"), 5000000000);
  EXPECT_EQ(f.get_u32("i8").error().message(),
            "g.gguf: key 'i8' value -1 (i8) does not fit in u32");
  EXPECT_EQ(f.get_u64("i8").error().message(),
            "g.gguf: key 'i8' value -1 (i8) does not fit in u64");
  EXPECT_EQ(f.get_u32("u64").error().message(),
            "g.gguf: key 'u64' value 5000000000 (u64) does not fit in u32");
  EXPECT_EQ(f.get_i64("u64max").error().message(),
            "g.gguf: key 'u64max' value 18446744073709551615 (u64) does not fit in i64");
  EXPECT_EQ(f.get_u32("str").error().message(), "g.gguf: key 'str' has type string; expected u32");
  EXPECT_EQ(f.get_u64("f32").error().message(), "g.gguf: key 'f32' has type f32; expected u64");
  const Error missing = f.get_u32("missing").error();
  EXPECT_EQ(missing.code(), ErrorCode::kFormat);
  EXPECT_EQ(missing.message(), "g.gguf: key 'missing' not found");
}

TEST(GgufGetters, ScalarsCheckTheirType) {
  std::vector<uint8_t> storage;
  const GgufFile f = getters_file(storage);
  EXPECT_EQ(*f.get_f32("f32"), 0.5f);
  EXPECT_EQ(*f.get_f32("f64"), 0.25f);
  EXPECT_EQ(f.get_f32("f64big").error().message(),
            "g.gguf: key 'f64big' value " + std::to_string(1e300) + " does not fit in f32");
  EXPECT_EQ(f.get_f32("u8").error().message(), "g.gguf: key 'u8' has type u8; expected f32");
  EXPECT_EQ(*f.get_bool("bool"), true);
  EXPECT_EQ(f.get_bool("u8").error().message(), "g.gguf: key 'u8' has type u8; expected bool");
  EXPECT_EQ(*f.get_string("str"), "hello");
  EXPECT_EQ(f.get_string("strs").error().message(),
            "g.gguf: key 'strs' has type array; expected string");
}

TEST(GgufGetters, ArraysCheckTheirElementType) {
  std::vector<uint8_t> storage;
  const GgufFile f = getters_file(storage);
  EXPECT_EQ(*f.get_string_array("strs"), (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(*f.get_f32_array("f32s"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(*f.get_f32_array("f64s"), (std::vector<float>{3.0f}));
  EXPECT_EQ(*f.get_i32_array("i32s"), (std::vector<int32_t>{-3, 4}));
  EXPECT_EQ(*f.get_i32_array("u8s"), (std::vector<int32_t>{1, 255}));
  EXPECT_EQ(f.get_i32_array("u32s").error().message(),
            "g.gguf: key 'u32s' element 1 value 4294967295 (u32) does not fit in i32");
  EXPECT_EQ(f.get_string_array("f32s").error().message(),
            "g.gguf: key 'f32s' is an array of f32; expected an array of string");
  EXPECT_EQ(f.get_f32_array("i32s").error().message(),
            "g.gguf: key 'i32s' is an array of i32; expected an array of f32");
  EXPECT_EQ(f.get_i32_array("nested").error().message(),
            "g.gguf: key 'nested' is an array of array; expected an array of i32");
  EXPECT_EQ(f.get_i32_array("str").error().message(),
            "g.gguf: key 'str' has type string; expected an array of i32");
  EXPECT_EQ(f.get_f32_array("missing").error().message(), "g.gguf: key 'missing' not found");
}

}  // namespace
}  // namespace sllm
