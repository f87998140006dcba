// libFuzzer entry point for the GGUF parser. Any input must give a GgufFile or an Error: no crash,
// no read outside the input (ASan), no undefined behaviour (UBSan). An input that parses must also
// survive what a loader does with it and a write-back: reading every tensor byte, every getter,
// and GgufWriter reproducing a file that parses to the same bytes again.
//
// Built by the `fuzz` preset (fuzz/CMakeLists.txt); scripts/fuzz.sh runs it on its seeds:
//   scripts/fuzz.sh 60 gguf
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gguf/gguf.h"

namespace {

volatile uint8_t g_sink;  // keeps the tensor byte loop from being optimised away

// Writes `file` back through GgufWriter.
std::vector<uint8_t> reserialize(const sllm::GgufFile& file) {
  sllm::GgufWriter writer;
  for (const auto& [key, value] : file.metadata()) writer.set(key, value);
  for (const sllm::GgufTensorInfo& t : file.tensors()) {
    if (!writer.add_tensor(t.name, t.type, t.dims, {t.data, t.n_bytes}).ok()) __builtin_trap();
  }
  if (!writer.validate().ok()) __builtin_trap();
  return writer.serialize();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sllm::Result<sllm::GgufFile> file = sllm::GgufFile::parse({data, size}, "fuzz.gguf");
  if (!file.ok()) return 0;

  uint8_t sum = 0;
  for (const sllm::GgufTensorInfo& t : file->tensors()) {
    for (uint64_t i = 0; i < t.n_bytes; ++i) sum = static_cast<uint8_t>(sum + t.data[i]);
  }
  for (const auto& [key, value] : file->metadata()) {
    (void)file->get_u32(key);
    (void)file->get_i64(key);
    (void)file->get_f32(key);
    (void)file->get_bool(key);
    (void)file->get_string(key);
    (void)file->get_string_array(key);
    (void)file->get_f32_array(key);
    (void)file->get_i32_array(key);
  }

  // Write-back is a fixed point: the rewritten file parses and rewrites to the same bytes.
  const std::vector<uint8_t> once = reserialize(*file);
  sllm::Result<sllm::GgufFile> again = sllm::GgufFile::parse(once, "fuzz-rewritten.gguf");
  if (!again.ok()) __builtin_trap();
  if (reserialize(*again) != once) __builtin_trap();
  g_sink = sum;
  return 0;
}
