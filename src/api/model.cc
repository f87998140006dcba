#include <algorithm>
#include <map>
#include <thread>

#include "api/impl.h"
#include "cache/kv_quant.h"
#include "kernels/ops.h"
#include "runtime/perplexity.h"
#include "runtime/session_file.h"
#include "util/tensor_type.h"

namespace sllm {

namespace {

VocabularyInfo describe_vocab(const std::string& path, const GgufFile& g, const Vocab& v) {
  VocabularyInfo info;
  info.path = path;
  info.gguf_version = g.version();
  info.n_tensors = g.tensors().size();
  info.n_metadata = g.metadata().size();
  info.tokenizer_model = v.model;
  // Gemma 4's tokenizer has its own pre-tokenizer whatever tokenizer.ggml.pre says (llama.cpp).
  info.pre_tokenizer = v.model == "gemma4" ? "gemma4" : v.pre.empty() ? "default" : v.pre;
  info.n_tokens = v.n_tokens();
  info.bos = v.bos;
  info.eos = v.eos;
  for (const TokenId id : end_of_generation_ids(v))
    info.end_of_generation.push_back({id, v.tokens[id]});
  if (auto jinja = g.get_string("tokenizer.chat_template"); jinja.ok()) info.chat_template = *jinja;
  return info;
}

ModelInfo describe(const std::string& path, const Engine& engine) {
  const GgufFile& g = engine.gguf;
  const ModelConfig& c = engine.model.config();
  const Vocab& v = engine.tokenizer->vocab();
  ModelInfo info;
  info.path = path;
  info.gguf_version = g.version();
  info.n_tensors = g.tensors().size();
  info.n_metadata = g.metadata().size();
  info.architecture = c.architecture;
  info.name = c.name;
  info.family = std::string(c.family->title);
  info.blocks = c.family->blocks() + (c.parallel_residual ? ", parallel residual" : "");
  std::map<std::string, size_t> types;
  for (const auto& t : g.tensors()) {
    info.n_params += t.n_elements;
    ++types[ggml_type_name(static_cast<uint32_t>(t.type))];
  }
  info.tensor_types.assign(types.begin(), types.end());
  info.n_vocab = c.n_vocab;
  info.dim = c.dim;
  info.n_layers = c.n_layers;
  info.n_heads = c.n_heads;
  info.n_kv_heads = c.n_kv_heads;
  info.head_dim = c.head_dim;
  info.ffn_dim = c.ffn_dim;
  info.n_ctx_train = c.n_ctx_train;
  info.rope_dims = c.rope.rope_dim;
  info.rope_freq_base = c.rope.freq_base;
  info.rope_layout =
      c.rope.layout == RopeLayout::kAdjacentPairs ? "adjacent pairs" : "half split (neox)";
  info.rope_scaling = c.rope_scaling;
  info.family_params = c.family_params;
  VocabularyInfo vi = describe_vocab(path, g, v);
  info.tokenizer_model = std::move(vi.tokenizer_model);
  info.pre_tokenizer = std::move(vi.pre_tokenizer);
  info.n_tokens = vi.n_tokens;
  info.bos = vi.bos;
  info.eos = vi.eos;
  info.end_of_generation = std::move(vi.end_of_generation);
  info.chat_template = std::move(vi.chat_template);
  const auto kv_token_bytes = [&](TensorType type) -> size_t {
    if (!check_kv_type(type, c.head_dim, c.n_kv_heads).ok()) return 0;
    return c.n_layers * 2 * static_cast<size_t>(kv_bytes(type, c.kv_dim()));
  };
  info.kv_bytes_per_token_f32 = kv_token_bytes(TensorType::kF32);
  info.kv_bytes_per_token_f16 = kv_token_bytes(TensorType::kF16);
  info.kv_bytes_per_token_q8_0 = kv_token_bytes(TensorType::kQ8_0);
  info.kv_bytes_per_token_q4_0 = kv_token_bytes(TensorType::kQ4_0);
  for (const bool local : c.local_layers) info.n_local_layers += local ? 1 : 0;
  info.sliding_window = info.n_local_layers > 0 ? c.sliding_window : 0;
  info.simd_target = ops::simd_target_name();
  return info;
}

}  // namespace

Result<uint64_t> Model::Impl::file_fingerprint() const {
  std::call_once(fingerprint_once, [this] { fingerprint = model_fingerprint(engine->gguf); });
  return fingerprint;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

Result<std::shared_ptr<Model>> Model::load(const std::string& path, const LoadOptions& options) {
  auto impl = std::make_unique<Impl>();
  SLLM_ASSIGN_OR_RETURN(impl->engine, Engine::load(path));
  const size_t n_threads = options.n_threads > 0
                               ? options.n_threads
                               : std::max<size_t>(1, std::thread::hardware_concurrency());
  SLLM_ASSIGN_OR_RETURN(impl->pool, ThreadPool::create(n_threads));
  impl->info = describe(path, *impl->engine);
  impl->end_tokens = end_of_generation_ids(impl->engine->tokenizer->vocab());
  return std::shared_ptr<Model>(new Model(std::move(impl)));
}

const ModelInfo& Model::info() const { return impl_->info; }
size_t Model::n_threads() const { return impl_->pool->n_threads(); }

Result<std::vector<TokenId>> Model::tokenize(std::string_view text, bool add_bos,
                                             bool parse_special) const {
  return impl_->tokenizer().encode(text, add_bos, parse_special);
}

Result<std::vector<TokenId>> Model::tokenize_files(std::span<const std::string> paths,
                                                   size_t max_tokens) const {
  return tokenize_stream(impl_->tokenizer(), paths, max_tokens);
}

Result<std::string> Model::detokenize(std::span<const TokenId> tokens) const {
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= impl_->info.n_tokens) {
      return Error(ErrorCode::kInvalidInput,
                   "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                       " is outside the vocabulary of " + std::to_string(impl_->info.n_tokens));
    }
    text += impl_->tokenizer().token_bytes(tokens[i]);
  }
  return text;
}

std::string Model::token_text(TokenId token) const {
  const Vocab& v = impl_->tokenizer().vocab();
  return token >= 0 && static_cast<size_t>(token) < v.n_tokens() ? v.tokens[token] : "";
}

struct Vocabulary::Impl {
  std::unique_ptr<Tokenizer> tokenizer;
  VocabularyInfo info;
};

Vocabulary::Vocabulary(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vocabulary::~Vocabulary() = default;

Result<std::unique_ptr<Vocabulary>> Vocabulary::load(const std::string& path) {
  SLLM_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
  SLLM_ASSIGN_OR_RETURN(Vocab vocab, vocab_from_gguf(gguf));
  auto impl = std::make_unique<Impl>();
  impl->info = describe_vocab(path, gguf, vocab);
  SLLM_ASSIGN_OR_RETURN(impl->tokenizer, make_tokenizer(std::move(vocab)));
  return std::unique_ptr<Vocabulary>(new Vocabulary(std::move(impl)));
}

Result<VocabularyInfo> Vocabulary::describe(const std::string& path) {
  SLLM_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(path));
  SLLM_ASSIGN_OR_RETURN(Vocab vocab, vocab_from_gguf(gguf));
  return describe_vocab(path, gguf, vocab);
}

const VocabularyInfo& Vocabulary::info() const { return impl_->info; }

Result<std::vector<TokenId>> Vocabulary::tokenize(std::string_view text, bool add_bos,
                                                  bool parse_special) const {
  return impl_->tokenizer->encode(text, add_bos, parse_special);
}

size_t Vocabulary::n_tokens() const { return impl_->tokenizer->vocab().n_tokens(); }

}  // namespace sllm
