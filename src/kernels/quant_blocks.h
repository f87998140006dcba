// ggml's quantization blocks (ggml-common.h of llama.cpp), byte for byte. f16 scales are kept as
// raw uint16_t bits. All structs have alignment 1 or 2 and no padding, so a row of blocks in a
// mapped file can be copied into them; the static_asserts pin the sizes to ggml's.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sllm::quant {

// Elements per block of the legacy types (ggml's QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0 =
// QK4_NL = QK_MXFP4) and per super-block of the K-quants and iq4_xs (QK_K).
inline constexpr size_t kBlockElems = 32;
inline constexpr size_t kSuperBlockElems = 256;

// q8_0: x[j] ~= qs[j] * d. The scale is chosen so that max|x| maps to 127.
struct BlockQ8_0 {
  uint16_t d;              // f16 scale
  int8_t qs[kBlockElems];  // [32]
};
static_assert(sizeof(BlockQ8_0) == 34, "q8_0 block must match ggml's block_q8_0");

// q4_0: x[j] ~= (nibble(j) - 8) * d, where element j < 16 is the low nibble of qs[j] and element
// j + 16 is the high nibble of qs[j]. The scale maps the element of largest magnitude to -8.
struct BlockQ4_0 {
  uint16_t d;                   // f16 scale
  uint8_t qs[kBlockElems / 2];  // [16] two 4-bit values per byte
};
static_assert(sizeof(BlockQ4_0) == 18, "q4_0 block must match ggml's block_q4_0");

// q4_1: x[j] ~= nibble(j) * d + m (nibbles as in q4_0).
struct BlockQ4_1 {
  uint16_t d;  // f16 scale
  uint16_t m;  // f16 minimum
  uint8_t qs[kBlockElems / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "q4_1 block must match ggml's block_q4_1");

// q5_0: x[j] ~= (code(j) - 16) * d; code = nibble as in q4_0 | bit j of qh (little-endian u32)
// as bit 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kBlockElems / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "q5_0 block must match ggml's block_q5_0");

// q5_1: x[j] ~= code(j) * d + m, codes as in q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kBlockElems / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "q5_1 block must match ggml's block_q5_1");

// iq4_nl: x[j] ~= kIq4nlValues[nibble(j)] * d: q4_0's layout with a non-linear code book.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kBlockElems / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18, "iq4_nl block must match ggml's block_iq4_nl");

// mxfp4 (OCP microscaling): x[j] ~= kFp4Values[nibble(j)] * 2^(e - 128): e2m1 codes (doubled, so
// integers) with a shared e8m0 exponent.
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[kBlockElems / 2];
};
static_assert(sizeof(BlockMXFP4) == 17, "mxfp4 block must match ggml's block_mxfp4");

// q2_K: 16 sub-blocks of 16; x ~= d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q 2 bits.
struct BlockQ2_K {
  uint8_t scales[kSuperBlockElems / 16];  // [16] 4-bit scale | 4-bit min
  uint8_t qs[kSuperBlockElems / 4];       // [64]
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84, "q2_K block must match ggml's block_q2_K");

// q3_K: 16 sub-blocks of 16; x ~= d * (scale6 - 32) * (q - 4 * !highbit), q 2 bits + hmask bit.
struct BlockQ3_K {
  uint8_t hmask[kSuperBlockElems / 8];  // [32]
  uint8_t qs[kSuperBlockElems / 4];     // [64]
  uint8_t scales[12];                   // 16 6-bit scales
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110, "q3_K block must match ggml's block_q3_K");

// q4_K: 8 sub-blocks of 32; x ~= d * scale6 * q - dmin * min6, q 4 bits.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];                // 8 6-bit scales and 8 6-bit mins
  uint8_t qs[kSuperBlockElems / 2];  // [128]
};
static_assert(sizeof(BlockQ4_K) == 144, "q4_K block must match ggml's block_q4_K");

// q5_K: q4_K with a fifth bit per element in qh.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kSuperBlockElems / 8];  // [32]
  uint8_t qs[kSuperBlockElems / 2];  // [128]
};
static_assert(sizeof(BlockQ5_K) == 176, "q5_K block must match ggml's block_q5_K");

// q6_K: 16 sub-blocks of 16; x ~= d * scales[s] * (q - 32), q = 4 low bits (ql) + 2 high (qh).
struct BlockQ6_K {
  uint8_t ql[kSuperBlockElems / 2];      // [128]
  uint8_t qh[kSuperBlockElems / 4];      // [64]
  int8_t scales[kSuperBlockElems / 16];  // [16]
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "q6_K block must match ggml's block_q6_K");

// q8_K: llama.cpp's activation format for K-quant dot products (f32 scale, sums of 16).
struct BlockQ8_K {
  float d;
  int8_t qs[kSuperBlockElems];           // [256]
  int16_t bsums[kSuperBlockElems / 16];  // [16]
};
static_assert(sizeof(BlockQ8_K) == 292, "q8_K block must match ggml's block_q8_K");

// iq4_xs: 8 sub-blocks of 32 with iq4_nl's code book; x ~= d * (scale6 - 32) * value.
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;                        // 2 high bits of each 6-bit scale
  uint8_t scales_l[kSuperBlockElems / 64];  // [4] 4 low bits of each scale
  uint8_t qs[kSuperBlockElems / 2];         // [128]
};
static_assert(sizeof(BlockIQ4_XS) == 136, "iq4_xs block must match ggml's block_iq4_xs");

// Code books (ggml-common.h kvalues_iq4nl, kvalues_mxfp4 = e2m1 values doubled).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};
inline constexpr int8_t kFp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

}  // namespace sllm::quant
