#include <chrono>

#include "api/impl.h"
#include "runtime/decode.h"
#include "runtime/perplexity.h"
#include "runtime/stream_file.h"

namespace sllm {

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stream::~Stream() = default;

Result<std::unique_ptr<Stream>> Stream::create(std::shared_ptr<const Model> model,
                                               const CacheOptions& cache,
                                               const SamplingOptions& sampling) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_RETURN_IF_ERROR(cache.validate());
  SLLM_RETURN_IF_ERROR(sampling.validate());
  const Model::Impl& m = model->impl();
  SLLM_ASSIGN_OR_RETURN(std::unique_ptr<Session> session,
                        Session::create(m.model(), cache, *m.pool));
  return std::unique_ptr<Stream>(
      new Stream(std::make_unique<Impl>(std::move(model), std::move(session), sampling)));
}

Result<size_t> Stream::feed(std::span<const TokenId> tokens, const std::atomic<bool>* interrupt,
                            const TextFn& on_text) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.model->impl().compute);
  SLLM_ASSIGN_OR_RETURN(const size_t n_fed,
                        feed_interruptible(*s.session, s.sampler, tokens, interrupt));
  std::string text;
  for (size_t i = 0; i < n_fed; ++i) text += s.decoder.push(tokens[i]);
  if (on_text && !text.empty()) on_text(text);
  return n_fed;
}

Result<size_t> Stream::feed_text(std::string_view text, bool add_bos, bool parse_special,
                                 const std::atomic<bool>* interrupt, const TextFn& on_text) {
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> tokens,
                        impl_->model->tokenize(text, add_bos, parse_special));
  return feed(tokens, interrupt, on_text);
}

Result<Generation> Stream::generate(const StopOptions& stop, const TextFn& on_text,
                                    const TokenFn& on_token) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.model->impl().compute);
  return decode(*s.session, s.sampler, &s.decoder, s.model->impl().end_tokens, stop, on_text,
                on_token);
}

Status Stream::save(const std::string& path) const {
  const Impl& s = *impl_;
  SLLM_ASSIGN_OR_RETURN(const uint64_t fingerprint, s.model->impl().file_fingerprint());
  return save_stream_file(path, *s.session, s.sampling, s.sampler, s.decoder, fingerprint,
                          s.model->info().path);
}

Result<std::unique_ptr<Stream>> Stream::load(std::shared_ptr<const Model> model,
                                             const std::string& path) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_ASSIGN_OR_RETURN(const uint64_t fingerprint, model->impl().file_fingerprint());
  SLLM_ASSIGN_OR_RETURN(StreamFile file,
                        StreamFile::read(path, fingerprint, model->impl().model().config()));
  SLLM_ASSIGN_OR_RETURN(std::unique_ptr<Stream> stream,
                        create(std::move(model), file.cache_options(), file.sampling_options()));
  Impl& s = *stream->impl_;
  SLLM_RETURN_IF_ERROR(file.restore(*s.session, s.sampler, s.decoder));
  return stream;
}

void Stream::reset() {
  Impl& s = *impl_;
  s.session->reset();
  s.sampler = Sampler(s.sampling, s.model->info().n_vocab);
  s.decoder = StreamDecoder(s.model->impl().tokenizer());
}

uint64_t Stream::n_seen() const { return impl_->session->n_seen(); }
size_t Stream::cache_bytes() const { return impl_->session->cache_bytes(); }
size_t Stream::memory_bytes() const {
  return impl_->session->memory_bytes() + impl_->sampler.memory_bytes();
}
size_t Stream::cache_tokens() const { return impl_->session->cache_tokens(); }
std::span<const float> Stream::logits() const { return impl_->session->last_logits(); }
const CacheOptions& Stream::cache_options() const { return impl_->cache; }
const SamplingOptions& Stream::sampling_options() const { return impl_->sampling; }
const Model& Stream::model() const { return *impl_->model; }

void Stream::set_profiling(bool on) {
  Impl& s = *impl_;
  s.profile = on ? std::make_unique<OpProfile>() : nullptr;
  s.session->set_profile(s.profile.get());
}

std::vector<PhaseTime> Stream::profile() const {
  std::vector<PhaseTime> out;
  if (impl_->profile == nullptr) return out;
  for (size_t i = 0; i < kNumPhases; ++i) {
    const PhaseTotal& t = impl_->profile->phases[i];
    out.push_back({std::string(phase_name(static_cast<Phase>(i))), t.calls,
                   static_cast<double>(t.ns) * 1e-9, t.weight_bytes});
  }
  return out;
}

Result<std::vector<double>> perplexity(std::shared_ptr<const Model> model,
                                       std::span<const TokenId> tokens, const CacheOptions& cache,
                                       const ProgressFn& progress) {
  return perplexity(std::move(model), tokens, cache,
                    NllProgressFn([&](std::span<const double> nll) {
                      if (progress) progress(nll.size());
                    }));
}

Result<std::vector<double>> perplexity(std::shared_ptr<const Model> model,
                                       std::span<const TokenId> tokens, const CacheOptions& cache,
                                       const NllProgressFn& progress) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_RETURN_IF_ERROR(cache.validate());
  const Model::Impl& m = model->impl();
  std::lock_guard<std::mutex> lock(m.compute);
  SLLM_ASSIGN_OR_RETURN(std::unique_ptr<Session> session,
                        Session::create(m.model(), cache, *m.pool));
  SLLM_ASSIGN_OR_RETURN(
      PerplexityResult result,
      stream_perplexity(*session, tokens, [&](size_t, const PerplexityResult& so_far) {
        if (progress) progress(so_far.nll);  // every token scored so far
      }));
  return std::move(result.nll);
}

}  // namespace sllm
