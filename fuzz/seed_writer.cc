// Writes the seed inputs fuzz/seeds.py cannot write by itself, with the engine (built by the
// `fuzz` preset beside the targets; seeds.py runs it):
//   fuzz_seed_writer models SHARED OUT    tiny random-weight models of every architecture
//                                         make-model writes (stories260K's vocabulary), f32,
//                                         and a few quantised and rope-scaled variants
//   fuzz_seed_writer sessions SHARED OUT  chat session files of stories260K (turns, eviction,
//                                         kept system message, f16 and q8_0 K/V, other policies)
//   fuzz_seed_writer streams SHARED OUT   stream files of stories260K likewise
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "streamingllm/chat.h"
#include "streamingllm/model.h"
#include "streamingllm/stream.h"
#include "streamingllm/tools.h"

namespace {

int fail(const std::string& what, const sllm::Error& e) {
  std::fprintf(stderr, "fuzz_seed_writer: %s: %s\n", what.c_str(), e.message().c_str());
  return 1;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    size_t comma = s.find(',', at);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(at, comma - at);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    if (!item.empty()) out.push_back(item);
    at = comma + 1;
  }
  return out;
}

int models(const std::string& shared, const std::string& out) {
  const std::string vocab = shared + "/models/stories260K/stories260K.gguf";
  struct Variant {
    std::string suffix, type, rope;
  };
  for (const std::string& arch : split(sllm::make_model_architectures())) {
    std::vector<Variant> variants = {{"", "f32", "none"}};
    if (arch == "llama") {
      variants.push_back({"-q8_0", "q8_0", "none"});
      variants.push_back({"-q4_k", "q4_k", "none"});
      variants.push_back({"-yarn", "f16", "yarn"});
      variants.push_back({"-llama3", "f32", "llama3"});
      variants.push_back({"-linear", "f32", "linear"});
    }
    if (arch == "phi3") variants.push_back({"-longrope", "f32", "longrope"});
    for (const Variant& v : variants) {
      sllm::MakeModelOptions o;
      o.arch = arch;
      o.vocab = vocab;
      // Quantised blocks are 32 (q8_0) or 256 (k-quants) values wide.
      o.n_embd = v.type == "q4_k" ? 256 : v.type == "f32" ? 16 : 32;
      o.n_layer = arch == "gemma2" || arch == "gemma3" ? 2 : 1;
      o.n_head = 2;
      o.n_head_kv = arch == "falcon" ? 1 : arch == "llama" ? 1 : 0;
      o.n_ff = v.type == "q4_k" ? 256 : 32;
      o.n_ctx = 64;
      o.rope_scaling = v.rope;
      o.rope_factor = 4.0f;
      o.sliding_window = 4;
      o.type = v.type;
      const std::string path = out + "/" + arch + v.suffix + ".gguf";
      if (sllm::Status s = sllm::make_model(o, path); !s.ok()) return fail(path, s.error());
    }
  }
  return 0;
}

std::shared_ptr<const sllm::Model> stories(const std::string& shared) {
  sllm::Model::LoadOptions lo;
  lo.n_threads = 1;
  auto model = sllm::Model::load(shared + "/models/stories260K/stories260K.gguf", lo);
  if (!model.ok()) {
    fail("stories260K", model.error());
    return nullptr;
  }
  return *model;
}

struct CacheVariant {
  std::string name;
  sllm::CachePolicy policy;
  size_t n_sinks, window;
  sllm::KvType kv;
  int turns;  // turns (chat) or generate calls (stream) of 12 tokens
};

const std::vector<CacheVariant>& cache_variants() {
  static const std::vector<CacheVariant> v = {
      {"streaming", sllm::CachePolicy::kStreaming, 4, 40, sllm::KvType::kF32, 2},
      {"evicted", sllm::CachePolicy::kStreaming, 4, 12, sllm::KvType::kF32, 3},
      {"evicted-f16", sllm::CachePolicy::kStreaming, 2, 10, sllm::KvType::kF16, 3},
      {"q8_0", sllm::CachePolicy::kStreaming, 4, 28, sllm::KvType::kQ8_0, 2},
      {"q4_0", sllm::CachePolicy::kStreaming, 4, 28, sllm::KvType::kQ4_0, 1},
      {"window", sllm::CachePolicy::kWindow, 0, 16, sllm::KvType::kF32, 2},
      {"recompute", sllm::CachePolicy::kRecompute, 0, 16, sllm::KvType::kF32, 2},
      {"dense", sllm::CachePolicy::kDense, 0, 60, sllm::KvType::kF32, 1},
      {"fresh", sllm::CachePolicy::kStreaming, 4, 12, sllm::KvType::kF32, 0},
  };
  return v;
}

sllm::CacheOptions cache_of(const CacheVariant& v) {
  sllm::CacheOptions c;
  c.policy = v.policy;
  c.n_sinks = v.n_sinks;
  c.window = v.window;
  c.kv_type = v.kv;
  c.max_batch = 8;
  return c;
}

int sessions(const std::string& shared, const std::string& out) {
  auto model = stories(shared);
  if (model == nullptr) return 1;
  const char* turns[] = {"Tell me a story.", "What happened next?", "And then?"};
  for (const CacheVariant& v : cache_variants()) {
    for (const bool system : {false, true}) {
      if (system && v.policy != sllm::CachePolicy::kStreaming) continue;
      sllm::ChatOptions o;
      o.cache = cache_of(v);
      o.sampling.temperature = 0.8f;
      o.sampling.top_k = 20;
      o.sampling.seed = 7;
      if (system) {
        o.system = "You are a storyteller.";
        o.keep_system = true;
        o.template_name = "chatml";
      }
      auto chat = sllm::Chat::create(model, o);
      if (!chat.ok()) return fail("chat " + v.name, chat.error());
      sllm::StopOptions stop;
      stop.max_tokens = 12;
      for (int t = 0; t < v.turns; ++t) {
        auto reply = (*chat)->send(turns[t], stop);
        if (!reply.ok()) return fail("chat " + v.name, reply.error());
      }
      const std::string path = out + "/" + v.name + (system ? "-system" : "") + ".chat";
      if (auto s = (*chat)->save(path); !s.ok()) return fail(path, s.error());
    }
  }
  return 0;
}

int streams(const std::string& shared, const std::string& out) {
  auto model = stories(shared);
  if (model == nullptr) return 1;
  for (const CacheVariant& v : cache_variants()) {
    sllm::SamplingOptions sampling;
    sampling.temperature = v.turns % 2 == 0 ? 0.0f : 0.9f;
    sampling.repeat_penalty = 1.1f;
    sampling.seed = 3;
    auto stream = sllm::Stream::create(model, cache_of(v), sampling);
    if (!stream.ok()) return fail("stream " + v.name, stream.error());
    if (v.turns > 0) {
      if (auto fed = (*stream)->feed_text("Once upon a time", true); !fed.ok()) {
        return fail("stream " + v.name, fed.error());
      }
    }
    sllm::StopOptions stop;
    stop.max_tokens = 12;
    stop.at_end_of_generation = false;
    for (int t = 0; t < v.turns; ++t) {
      auto g = (*stream)->generate(stop);
      if (!g.ok()) return fail("stream " + v.name, g.error());
    }
    const std::string path = out + "/" + v.name + ".stream";
    if (auto s = (*stream)->save(path); !s.ok()) return fail(path, s.error());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: fuzz_seed_writer models|sessions|streams SHARED OUT\n");
    return 2;
  }
  const std::string what = argv[1], shared = argv[2], out = argv[3];
  if (what == "models") return models(shared, out);
  if (what == "sessions") return sessions(shared, out);
  if (what == "streams") return streams(shared, out);
  std::fprintf(stderr, "fuzz_seed_writer: unknown kind '%s'\n", what.c_str());
  return 2;
}
