// libFuzzer entry point for chat session files (runtime/session_file.h, state_file.h) through
// Chat::load on stories260K (loaded once). Each input's header gets its payload size and FNV-1a
// checksum repaired first, so that the mutations reach every field behind the checksum; the
// input is then written under /dev/shm and loaded. Any input must give a chat or an Error. A
// chat that loads must be one the engine can go on with:
//   - saving it and loading that file back succeeds, and saving again writes the same bytes
//     (save -> load -> save is a fixed point);
//   - its n_turns and n_seen survive the round trip;
//   - it answers one short turn (2 tokens at most; the only refusals allowed are a full dense
//     cache's kLimit and the non-finite logits of finite but huge K/V), and the chat loaded from
//     its save answers the same tokens and text (load continues exactly).
//
//   scripts/fuzz.sh 60 session_file
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "state_fuzz.h"
#include "streamingllm/chat.h"

namespace {

std::shared_ptr<const sllm::Model> g_model;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_model = sllm_fuzz::load_stories();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sllm_fuzz::check;
  auto loaded = sllm_fuzz::load_and_round_trip<sllm::Chat>(g_model, data, size, "session", ".chat");
  if (!loaded) return 0;
  auto& [chat, reloaded] = *loaded;
  check(reloaded->n_turns() == chat->n_turns() && reloaded->n_seen() == chat->n_seen());

  sllm::StopOptions stop;
  stop.max_tokens = 2;
  sllm::Result<sllm::ChatReply> reply = chat->send("Hi", stop);
  sllm::Result<sllm::ChatReply> reply_again = reloaded->send("Hi", stop);
  check(reply.ok() == reply_again.ok());
  if (reply.ok()) {
    check(reply->tokens == reply_again->tokens && reply->text == reply_again->text);
    check(reply->prompt_tokens == reply_again->prompt_tokens);
  } else {
    // The one refusal a valid chat may give: a dense cache already full (kLimit).
    check(reply.error().message() == reply_again.error().message());
    // Besides: K/V values that are finite but huge (no model writes them; the reader checks
    // finiteness only) overflow the attention, and the session refuses the non-finite logits.
    if (reply.error().code() != sllm::ErrorCode::kLimit &&
        reply.error().message().find("non-finite logits") == std::string::npos) {
      std::fprintf(stderr, "a loaded chat cannot answer: %s\n", reply.error().message().c_str());
      __builtin_trap();
    }
  }
  return 0;
}
