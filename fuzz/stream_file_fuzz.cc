// libFuzzer entry point for stream files (runtime/stream_file.h, state_file.h: a Stream's cache,
// sampler and text decoder state) through Stream::load on stories260K (loaded once). Each
// input's header gets its payload size and FNV-1a checksum repaired first, so that the
// mutations reach every field behind the checksum; the input is then written under /dev/shm and
// loaded. Any input must give a stream or an Error. A stream that loads must be one the engine
// can go on with:
//   - saving it and loading that file back succeeds, and saving again writes the same bytes
//     (save -> load -> save is a fixed point), with the same n_seen and options;
//   - it feeds a short text and generates 2 tokens (the only refusals allowed: a full dense
//     cache's context limit, and the non-finite logits of finite but huge K/V), and the stream
//     loaded from its save gives the same logits, tokens and text (the decoder's pending bytes
//     included).
//
//   scripts/fuzz.sh 60 stream_file
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "state_fuzz.h"
#include "streamingllm/stream.h"

namespace {

std::shared_ptr<const sllm::Model> g_model;

struct Continuation {
  bool ok = false;
  std::string error;
  std::vector<float> logits;
  sllm::Generation generation;
};

Continuation go_on(sllm::Stream& stream) {
  Continuation c;
  sllm::Result<size_t> fed = stream.feed_text(" and", /*add_bos=*/false);
  if (!fed.ok()) {
    c.error = fed.error().message();
    return c;
  }
  const auto logits = stream.logits();
  c.logits.assign(logits.begin(), logits.end());
  sllm::StopOptions stop;
  stop.max_tokens = 2;
  sllm::Result<sllm::Generation> g = stream.generate(stop);
  if (!g.ok()) {
    c.error = g.error().message();
    return c;
  }
  c.ok = true;
  c.generation = *g;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_model = sllm_fuzz::load_stories();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sllm_fuzz::check;
  auto loaded =
      sllm_fuzz::load_and_round_trip<sllm::Stream>(g_model, data, size, "stream", ".stream");
  if (!loaded) return 0;
  auto& [stream, reloaded] = *loaded;
  check(reloaded->n_seen() == stream->n_seen());
  check(reloaded->cache_tokens() == stream->cache_tokens());
  check(stream->logits().size() == g_model->info().n_vocab);

  const Continuation a = go_on(*stream);
  const Continuation b = go_on(*reloaded);
  check(a.ok == b.ok && a.error == b.error);
  // The one refusal a valid stream may give: a dense cache already full.
  // Besides: K/V values that are finite but huge (no model writes them; the reader checks
  // finiteness only) overflow the attention, and the session refuses the non-finite logits.
  if (!a.ok && a.error.find("context limit") == std::string::npos &&
      a.error.find("non-finite logits") == std::string::npos) {
    std::fprintf(stderr, "a loaded stream cannot go on: %s\n", a.error.c_str());
    __builtin_trap();
  }
  if (a.ok) {
    // Bit for bit (NaN K/V from a file would make == fail on equal logits).
    check(a.logits.size() == b.logits.size() &&
          std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)) == 0);
    check(a.generation.tokens == b.generation.tokens && a.generation.text == b.generation.text);
  }
  return 0;
}
