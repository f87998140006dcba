// Session files: a chat's whole streaming state, so that a conversation resumes exactly where it
// stopped: the same K/V in the same slots, the same absolute position, the same sampler history
// and random numbers, hence the same tokens as a run that never stopped.
//
// Layout (little-endian; docs/chat.md lists the payload's fields; state_file.h has the machinery
// stream files share):
//   [0, 8)    magic "SLLMCHAT"
//   [8, 12)   u32 format version (2)
//   [12, 16)  u32 zero
//   [16, 24)  u64 payload size in bytes (the file is exactly 32 + that long)
//   [24, 32)  u64 FNV-1a 64 of the payload
//   [32, ..)  payload: model fingerprint and path, chat options, chat state, sampler state,
//             session state, K/V
//
// A file is refused with a message that says why when it is not a session file (a stream file
// is named as one), is of another version, is truncated or too long, fails its checksum (any
// flipped bit in the payload) or was saved with another model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "runtime/chat_session.h"
#include "runtime/state_file.h"
#include "streamingllm/error.h"
#include "util/mapped_file.h"

namespace sllm {

// Writes the chat's state to `path` atomically (temp file, fsync, rename). `model_path` is kept
// for messages only.
Status save_session_file(const std::string& path, const ChatSession& chat, uint64_t fingerprint,
                         const std::string& model_path);

// A session file, read and checked. Create a ChatSession with options() on the same model, then
// restore() puts the state back.
class SessionFile {
 public:
  // Fails if the file is corrupt, its fingerprint is not `fingerprint` or any field does not fit
  // `model` (the model of that fingerprint) and the file's other fields; the message names the
  // field and its value. Nothing is sized from the file before it has been checked.
  static Result<SessionFile> read(const std::string& path, uint64_t fingerprint,
                                  const ModelConfig& model);

  SessionFile(SessionFile&&) = default;
  SessionFile& operator=(SessionFile&&) = default;
  SessionFile(const SessionFile&) = delete;  // views into file_
  SessionFile& operator=(const SessionFile&) = delete;

  const ChatOptions& options() const { return options_; }
  uint64_t n_turns() const { return n_turns_; }
  uint64_t n_seen() const { return state_.n_seen; }

  // `chat` must have been created from options() on the model of the fingerprint.
  Status restore(ChatSession& chat) const;

 private:
  SessionFile() = default;

  std::string path_;
  MappedFile file_;  // the whole file; state_ points into it
  ChatOptions options_;
  uint64_t n_turns_ = 0;
  std::string pending_;
  SavedState state_;
};

}  // namespace sllm
