// Stream files: a Stream's whole state (include/streamingllm/stream.h), so that a stream loaded
// back continues exactly where it stopped: the same K/V in the same slots, the same position,
// the same sampler history and random numbers, the same half-decoded UTF-8 character, hence the
// same logits, tokens and text as a stream that never stopped.
//
// The header is that of session files (state_file.h) with the magic "SLLMSTRM", version 1. The
// payload (docs/chat.md lists it): model fingerprint and path, cache and sampler options (the
// fields of a session file), the text decoder's state (u8 at-start flag, the pending bytes of an
// unfinished character), the sampler's state, the session state and K/V.
//
// A file is refused, with the reason, for everything a session file is refused for, when it is
// a chat session file, and when the decoder's state is not one a decoder can be in.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "runtime/session.h"
#include "runtime/state_file.h"
#include "sampling/sampler.h"
#include "streamingllm/error.h"
#include "streamingllm/options.h"
#include "tokenizer/tokenizer.h"
#include "util/mapped_file.h"

namespace sllm {

// Writes the stream's state to `path` atomically (temp file, fsync, rename). `model_path` is
// kept for messages only.
Status save_stream_file(const std::string& path, const Session& session,
                        const SamplingOptions& sampling, const Sampler& sampler,
                        const StreamDecoder& decoder, uint64_t fingerprint,
                        const std::string& model_path);

// A stream file, read and checked. Create a Session, a Sampler and a StreamDecoder from
// cache_options() and sampling_options() on the same model, then restore() puts the state back.
class StreamFile {
 public:
  // Fails if the file is corrupt, its fingerprint is not `fingerprint` or any field does not fit
  // `model` (the model of that fingerprint) and the file's other fields; the message names the
  // field and its value. Nothing is sized from the file before it has been checked.
  static Result<StreamFile> read(const std::string& path, uint64_t fingerprint,
                                 const ModelConfig& model);

  StreamFile(StreamFile&&) = default;
  StreamFile& operator=(StreamFile&&) = default;
  StreamFile(const StreamFile&) = delete;  // views into file_
  StreamFile& operator=(const StreamFile&) = delete;

  const CacheOptions& cache_options() const { return cache_; }
  const SamplingOptions& sampling_options() const { return state_.sampling; }

  // On error the objects may be half restored and must not be used.
  Status restore(Session& session, Sampler& sampler, StreamDecoder& decoder) const;

 private:
  StreamFile() = default;

  std::string path_;
  MappedFile file_;  // the whole file; state_ points into it
  CacheOptions cache_;
  StreamDecoder::State decoder_;
  SavedState state_;
};

}  // namespace sllm
