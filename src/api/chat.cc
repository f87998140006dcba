#include "api/impl.h"
#include "chat/chat_template.h"
#include "chat/prompt_file.h"
#include "runtime/session_file.h"
#include "util/file_lock.h"
#include "util/mapped_file.h"

namespace sllm {

std::vector<std::string> chat_template_names() {
  const auto names = ChatTemplate::names();
  return {names.begin(), names.end()};
}

ChatTemplateChoice choose_chat_template(std::string_view jinja) {
  TemplateChoice choice = choose_template(jinja);
  return {std::move(choice.name), std::move(choice.note)};
}

Result<std::vector<std::string>> read_chat_prompts(const std::string& path) {
  return read_prompt_turns(path);
}

struct SessionLock::Impl {
  std::string target;  // the path with its symbolic links followed
  FileLock lock;
  bool exists = false;  // a regular file was there when the lock was taken
};

SessionLock::SessionLock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SessionLock::SessionLock(SessionLock&& other) noexcept = default;
SessionLock& SessionLock::operator=(SessionLock&& other) noexcept = default;
SessionLock::~SessionLock() = default;

Result<SessionLock> SessionLock::acquire(const std::string& path) {
  SLLM_RETURN_IF_ERROR(check_output_path(path));
  auto impl = std::make_unique<Impl>();
  SLLM_ASSIGN_OR_RETURN(impl->target, resolve_symlinks(path));
  SLLM_ASSIGN_OR_RETURN(impl->lock,
                        FileLock::acquire(impl->target + ".lock", "session file '" + path + "'"));
  SLLM_ASSIGN_OR_RETURN(const FileKind kind, file_kind(impl->target));
  impl->exists = kind == FileKind::kRegular;
  return SessionLock(std::move(impl));
}

bool SessionLock::exists() const { return impl_->exists; }

Chat::Chat(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Chat::~Chat() = default;

Result<std::unique_ptr<Chat>> Chat::create(std::shared_ptr<const Model> model,
                                           const ChatOptions& options) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_RETURN_IF_ERROR(options.cache.validate());
  SLLM_RETURN_IF_ERROR(options.sampling.validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.template_name.empty()) {
    impl->options.template_name = choose_template(model->info().chat_template).name;
  }
  const Model::Impl& m = model->impl();
  SLLM_ASSIGN_OR_RETURN(impl->session,
                        ChatSession::create(m.model(), m.tokenizer(), impl->options, *m.pool));
  impl->model = std::move(model);
  return std::unique_ptr<Chat>(new Chat(std::move(impl)));
}

Result<ChatReply> Chat::send(std::string_view user_text, const StopOptions& stop,
                             const TextFn& on_text) {
  std::lock_guard<std::mutex> lock(impl_->model->impl().compute);
  return impl_->session->send(user_text, stop, on_text);
}

Result<size_t> Chat::add_turn(std::string_view user_text, std::string_view reply_text,
                              const std::atomic<bool>* interrupt) {
  std::lock_guard<std::mutex> lock(impl_->model->impl().compute);
  return impl_->session->add_turn(user_text, reply_text, interrupt);
}

Status Chat::set_sampling(const SamplingOptions& sampling) {
  SLLM_RETURN_IF_ERROR(impl_->session->set_sampling(sampling));
  impl_->options.sampling = sampling;
  return {};
}

Status Chat::check_turn(std::string_view user_text) const {
  return impl_->session->check_turn(user_text);
}

const ChatOptions& Chat::options() const { return impl_->options; }
uint64_t Chat::n_turns() const { return impl_->session->n_turns(); }
size_t Chat::n_pinned() const { return impl_->session->n_pinned(); }
uint64_t Chat::n_seen() const { return impl_->session->session().n_seen(); }
size_t Chat::cache_bytes() const { return impl_->session->session().cache_bytes(); }
size_t Chat::memory_bytes() const {
  return impl_->session->session().memory_bytes() + impl_->session->sampler().memory_bytes();
}
size_t Chat::cache_tokens() const { return impl_->session->session().cache_tokens(); }
const CacheOptions& Chat::cache_options() const { return impl_->session->session().options(); }

Status Chat::save(const std::string& path) const {
  SLLM_ASSIGN_OR_RETURN(const uint64_t fingerprint, impl_->model->impl().file_fingerprint());
  return save_session_file(path, *impl_->session, fingerprint, impl_->model->info().path);
}

Result<std::unique_ptr<Chat>> Chat::load(std::shared_ptr<const Model> model,
                                         const std::string& path, size_t max_batch) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_ASSIGN_OR_RETURN(const uint64_t fingerprint, model->impl().file_fingerprint());
  SLLM_ASSIGN_OR_RETURN(SessionFile file,
                        SessionFile::read(path, fingerprint, model->impl().model().config()));
  ChatOptions options = file.options();
  if (max_batch > 0) options.cache.max_batch = max_batch;
  SLLM_ASSIGN_OR_RETURN(std::unique_ptr<Chat> chat, create(model, options));
  SLLM_RETURN_IF_ERROR(file.restore(*chat->impl_->session));
  return chat;
}

}  // namespace sllm
