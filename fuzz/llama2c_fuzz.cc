// libFuzzer entry point for the llama2.c importer (tools/llama2c.h): one input is a checkpoint
// and a tokenizer, split by a 4-byte little-endian length prefix (the checkpoint's size, capped
// at what follows), written to two files under /dev/shm (the importer reads paths) and converted
// to a GGUF there. Any input must give the GGUF or an Error. A conversion that succeeds must
// write a GGUF that parses, whose config (config_from_gguf) is the checkpoint header's (dim,
// hidden_dim, layers, heads, kv heads, |vocab_size|, seq_len), with the vocabulary's
// |vocab_size| tokens; and when the whole model loads (Engine::load: the fuzzed token texts may
// be refused by the tokenizer), its tokenizer has those tokens too.
//
//   scripts/fuzz.sh 60 llama2c
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"
#include "runtime/engine.h"
#include "tools/llama2c.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// /dev/shm/sllm-fuzz-llama2c-PID; its .bin, .tok and .gguf are removed when the process exits
// (libFuzzer ends a timed run with exit()).
const std::string& base() {
  static const std::string b = [] {
    std::atexit([] {
      // The name again (b may be destroyed before this runs).
      const std::string name = "/dev/shm/sllm-fuzz-llama2c-" + std::to_string(getpid());
      for (const char* suffix : {".bin", ".tok", ".gguf"}) std::remove((name + suffix).c_str());
    });
    return "/dev/shm/sllm-fuzz-llama2c-" + std::to_string(getpid());
  }();
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n_checkpoint = 0;
  std::memcpy(&n_checkpoint, data, 4);
  const size_t rest = size - 4;
  const size_t n_ckpt = n_checkpoint < rest ? n_checkpoint : rest;
  const uint8_t* ckpt = data + 4;
  const std::string ckpt_path = base() + ".bin", tok_path = base() + ".tok",
                    out_path = base() + ".gguf";
  write_file(ckpt_path, ckpt, n_ckpt);
  write_file(tok_path, ckpt + n_ckpt, rest - n_ckpt);
  std::remove(out_path.c_str());

  const sllm::Status converted = sllm::convert_llama2c(ckpt_path, tok_path, out_path);
  if (!converted.ok()) {
    check(!converted.error().message().empty());
    check(access(out_path.c_str(), F_OK) != 0);  // nothing half-written left behind
    return 0;
  }
  // The header the importer accepted: 7 int32.
  check(n_ckpt >= 28);
  int32_t h[7];
  std::memcpy(h, ckpt, sizeof(h));
  const size_t n_vocab = static_cast<size_t>(h[5] < 0 ? -int64_t{h[5]} : int64_t{h[5]});

  sllm::Result<sllm::GgufFile> gguf = sllm::GgufFile::open(out_path);
  check(gguf.ok());
  sllm::Result<sllm::ModelConfig> config = sllm::config_from_gguf(*gguf);
  check(config.ok());
  check(config->architecture == "llama");
  check(config->dim == static_cast<size_t>(h[0]) && config->ffn_dim == static_cast<size_t>(h[1]) &&
        config->n_layers == static_cast<size_t>(h[2]) &&
        config->n_heads == static_cast<size_t>(h[3]) &&
        config->n_kv_heads == static_cast<size_t>(h[4]) && config->n_vocab == n_vocab &&
        config->n_ctx_train == static_cast<size_t>(h[6]));
  check(config->head_dim * config->n_heads == config->dim);
  sllm::Result<std::vector<std::string>> tokens = gguf->get_string_array("tokenizer.ggml.tokens");
  check(tokens.ok() && tokens->size() == n_vocab);

  sllm::Result<std::unique_ptr<sllm::Engine>> engine = sllm::Engine::load(out_path);
  if (engine.ok()) {
    check((*engine)->tokenizer->vocab().n_tokens() == n_vocab);
  } else {
    check(!engine.error().message().empty());
  }
  std::remove(out_path.c_str());
  return 0;
}
