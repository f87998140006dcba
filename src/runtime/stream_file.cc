#include "runtime/stream_file.h"

#include "tokenizer/utf8.h"

namespace sllm {

Status save_stream_file(const std::string& path, const Session& session,
                        const SamplingOptions& sampling, const Sampler& sampler,
                        const StreamDecoder& decoder, uint64_t fingerprint,
                        const std::string& model_path) {
  const StreamDecoder::State text = decoder.state();
  ByteWriter w;
  put_model(w, fingerprint, model_path);
  put_options(w, session.options(), session.options().n_sinks, sampling);
  w.put<uint8_t>(text.at_start ? 1 : 0);
  w.put_string(text.pending);
  w.put_string(sampler.save_state());
  put_session_state(w, session.state());
  return write_state_file(path, StateFileKind::kStream, w.bytes());
}

Result<StreamFile> StreamFile::read(const std::string& path, uint64_t fingerprint,
                                    const ModelConfig& model) {
  constexpr StateFileKind kKind = StateFileKind::kStream;
  StreamFile f;
  f.path_ = path;
  SLLM_ASSIGN_OR_RETURN(const std::span<const uint8_t> payload,
                        read_state_file(path, kKind, &f.file_));
  ByteReader r(payload, path, kKind);
  SLLM_RETURN_IF_ERROR(check_model(r, path, kKind, fingerprint));
  SLLM_RETURN_IF_ERROR(f.state_.read_options(r));
  uint8_t at_start = 0;
  SLLM_RETURN_IF_ERROR(r.get(&at_start, "the decoder's start flag"));
  SLLM_RETURN_IF_ERROR(r.get_string(&f.decoder_.pending, "the decoder's pending bytes"));
  SLLM_RETURN_IF_ERROR(r.get_string(&f.state_.sampler_state, "the sampler state"));
  SLLM_RETURN_IF_ERROR(f.state_.read_session_state(r));
  if (!r.at_end()) {
    return Error(ErrorCode::kFormat, path + ": corrupt stream file: bytes after the values");
  }
  SLLM_RETURN_IF_ERROR(f.state_.validate(path, kKind, model, /*chat=*/nullptr));
  auto invalid = [&](const std::string& why) {
    return Error(ErrorCode::kFormat, path + ": invalid stream file: " + why);
  };
  if (at_start > 1) {
    return invalid("the decoder's start flag " + std::to_string(at_start) + " is not 0 or 1");
  }
  f.decoder_.at_start = at_start == 1;
  // A decoder keeps back only the start of one character that more bytes may complete.
  const std::string& pending = f.decoder_.pending;
  if (!pending.empty()) {
    const Utf8Char c = next_utf8_char(pending, 0);
    if (c.status != Utf8Status::kTruncated || c.n_bytes != pending.size()) {
      return invalid("the decoder's " + std::to_string(pending.size()) +
                     " pending bytes are not the start of one UTF-8 character");
    }
  }
  f.cache_ = f.state_.cache_options();
  return f;
}

Status StreamFile::restore(Session& session, Sampler& sampler, StreamDecoder& decoder) const {
  const CacheOptions& s = session.options();
  if (s.policy != cache_.policy || s.n_sinks != cache_.n_sinks || s.window != cache_.window ||
      s.kv_type != cache_.kv_type || s.start_pos != cache_.start_pos) {
    return Error(ErrorCode::kInvalidInput,
                 path_ + ": the stream was not created with the stream file's options");
  }
  Status status = sampler.load_state(state_.sampler_state);
  if (status.ok()) status = session.restore(state_.session_state());
  if (!status.ok()) return status.error().with_context(path_);
  decoder.restore(decoder_);
  return {};
}

}  // namespace sllm
