// Offline tools and file helpers: re-encoding a model's weights, importing llama2.c checkpoints,
// reading and writing whole files safely.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "streamingllm/error.h"

namespace sllm {

// Receives one line per decision worth telling (a matrix kept in a wider type, ...).
using LogFn = std::function<void(const std::string& line)>;

// Writes `out` (atomically) with `in`'s metadata and every 2-D weight matrix encoded as `type`
// (as llama.cpp names it: "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K",
// "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs", "mxfp4"; rows a type's block does not divide
// fall back as in llama.cpp), or llama.cpp's mixes "Q4_K_M" / "Q5_K_M" (per-tensor types as
// llama-quantize picks them); other tensors are copied. Refuses to replace anything
// that is not a regular file. An empty `log` prints to stderr.
Status quantize(const std::string& in, const std::string& out, std::string_view type,
                const LogFn& log = {});

// A llama2.c checkpoint (.bin) and its tokenizer (tok*.bin) as a GGUF file (written atomically).
Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_gguf);

// A small model with random weights for tests and cross-checks against llama.cpp: real metadata
// and a real tokenizer (every `tokenizer.*` key of a vocabulary GGUF, as llama.cpp's
// tokenizer-only files in ../shared/data/vocab/ hold them), tensors named and shaped as
// llama.cpp expects. The same options give the same bytes.
struct MakeModelOptions {
  std::string arch = "llama";  // general.architecture; make_model_architectures() lists them
  std::string vocab;           // GGUF whose tokenizer.* keys are copied; n_vocab is its size
  size_t n_embd = 64;
  size_t n_layer = 2;
  size_t n_head = 4;
  size_t n_head_kv = 0;  // 0: n_head (falcon: 1 writes a Falcon-7B-style file, more a 40B-style)
  size_t n_ff = 0;       // 0: about 8/3 n_embd, rounded up to a multiple of 32
  size_t n_ctx = 2048;   // <arch>.context_length
  double rope_base = 10000.0;
  // "none"; "linear" or "yarn" (<arch>.rope.scaling.* keys, factor rope_factor); "llama3" (the
  // rope_freqs.weight factors tensor as llama.cpp's converter computes it for Llama 3.1: factor
  // rope_factor, low/high frequency factors 1 and 4, original context 8192); "longrope" (phi3
  // only: Phi-3.5's rope_factors_long / _short tensors and attn_factor, original context
  // n_ctx / rope_factor).
  std::string rope_scaling = "none";
  float rope_factor = 8.0f;
  size_t sliding_window = 16;  // gemma2, gemma3: <arch>.attention.sliding_window
  uint64_t seed = 1;
  // Weight matrices: f32 or f16, or any `quantize` type or mix (generated in f32, encoded as
  // quantize would encode the f32 file). Vectors stay f32.
  std::string type = "f32";
};

// "llama, qwen2, qwen3, phi3, gptneox, gemma2, gemma3, falcon, mpt": the architectures
// make_model() writes, comma-separated.
std::string make_model_architectures();

// Writes `out` (atomically). Errors name the option or the vocabulary key that is wrong.
Status make_model(const MakeModelOptions& options, const std::string& out);

// A whole file's bytes. Never blocks on a FIFO and refuses what is not a regular file.
Result<std::string> read_file(const std::string& path);

// Replaces `path` with `bytes` atomically (a unique temp file beside it, fsync, rename): readers
// see the old file or the new one, never a torn one. Only regular files are replaced (a symlink
// is followed and stays a link); a device, FIFO or directory is refused before anything is
// written.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace sllm
