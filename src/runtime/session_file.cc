#include "runtime/session_file.h"

#include <algorithm>
#include <utility>

#include "chat/chat_template.h"
#include "tokenizer/utf8.h"

namespace sllm {

Status save_session_file(const std::string& path, const ChatSession& chat, uint64_t fingerprint,
                         const std::string& model_path) {
  const ChatOptions& o = chat.options();
  ByteWriter w;
  put_model(w, fingerprint, model_path);
  w.put_string(o.template_name);
  w.put_string(o.system);
  w.put<uint8_t>(o.keep_system ? 1 : 0);
  put_options(w, o.cache, chat.session().options().n_sinks, o.sampling);
  w.put<uint64_t>(chat.n_turns());
  w.put_string(chat.pending());
  w.put_string(chat.sampler().save_state());
  put_session_state(w, chat.session().state());
  return write_state_file(path, StateFileKind::kChat, w.bytes());
}

Result<SessionFile> SessionFile::read(const std::string& path, uint64_t fingerprint,
                                      const ModelConfig& model) {
  constexpr StateFileKind kKind = StateFileKind::kChat;
  SessionFile f;
  f.path_ = path;
  SLLM_ASSIGN_OR_RETURN(const std::span<const uint8_t> payload,
                        read_state_file(path, kKind, &f.file_));
  ByteReader r(payload, path, kKind);
  SLLM_RETURN_IF_ERROR(check_model(r, path, kKind, fingerprint));
  ChatOptions& o = f.options_;
  SavedState::ChatFields chat;
  SLLM_RETURN_IF_ERROR(r.get_string(&o.template_name, "the template name"));
  SLLM_RETURN_IF_ERROR(r.get_string(&o.system, "the system message"));
  SLLM_RETURN_IF_ERROR(r.get(&chat.keep_system, "keep_system"));
  SLLM_RETURN_IF_ERROR(f.state_.read_options(r));
  SLLM_RETURN_IF_ERROR(r.get(&f.n_turns_, "the turn count"));
  SLLM_RETURN_IF_ERROR(r.get_string(&f.pending_, "the pending text"));
  SLLM_RETURN_IF_ERROR(r.get_string(&f.state_.sampler_state, "the sampler state"));
  SLLM_RETURN_IF_ERROR(f.state_.read_session_state(r));
  if (!r.at_end())
    return Error(ErrorCode::kFormat, path + ": corrupt session file: bytes after the values");
  // The system message opens turn 1 and the pending text starts the next turn: the tokenizer
  // takes only valid UTF-8, so a chat holding anything else could never answer.
  for (const auto& [field, text] :
       {std::pair<const char*, const std::string*>{"the system message", &o.system},
        {"the pending text", &f.pending_}}) {
    if (Status s = validate_utf8(*text); !s.ok()) {
      return Error(ErrorCode::kFormat, path + ": invalid session file: " + field +
                                           " is not valid UTF-8 (" + s.error().message() + ")");
    }
  }
  const auto& names = ChatTemplate::names();
  if (std::find(names.begin(), names.end(), o.template_name) == names.end()) {
    chat.template_problem = "the template name '" + o.template_name + "' is not a known template";
  }
  chat.n_turns = f.n_turns_;
  SLLM_RETURN_IF_ERROR(f.state_.validate(path, kKind, model, &chat));
  o.keep_system = chat.keep_system == 1;
  o.cache = f.state_.cache_options();
  o.sampling = f.state_.sampling;
  return f;
}

Status SessionFile::restore(ChatSession& chat) const {
  const SessionOptions& s = chat.session().options();
  if (chat.options().template_name != options_.template_name ||
      chat.options().system != options_.system || s.policy != options_.cache.policy ||
      s.n_sinks != state_.effective_sinks || s.window != options_.cache.window ||
      s.kv_type != options_.cache.kv_type || s.start_pos != options_.cache.start_pos) {
    return Error(ErrorCode::kInvalidInput,
                 path_ + ": the chat was not created with the session file's options");
  }
  Status status = chat.restore(n_turns_, pending_, state_.sampler_state, state_.session_state());
  if (!status.ok()) return status.error().with_context(path_);
  return {};
}

}  // namespace sllm
