// Issue 14: structure-aware GGUF mutations. Every case (tests/gguf_mutation/: one field wrong in a
// tiny model of each architecture) is loaded as `info`, `tokenize` and `run` do it, in process
// through the public API, and by the CLI itself: each ends in a clear error (naming the key or
// tensor) or a correct run (the same as the base model's where the change keeps the meaning).
// The in-process path covers every case; the CLI runs all three commands for every 32nd case of
// each base and the first of each category on the llama base (SLLM_MUTATION_CLI_EVERY=1: every
// case), under the sanitizers for the first of each category only.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "cli_runner.h"
#include "gguf_mutation/gguf_mutation.h"
#include "streamingllm/model.h"
#include "streamingllm/stream.h"
#include "test_util.h"

namespace sllm {
namespace {

using mutation::Case;
using mutation::Expect;

constexpr const char* kText = "Hello world, the one.";
constexpr const char* kPrompt = "Hello world";

// What one command did: its error, or what it printed (in process: the facts compared).
struct Result1 {
  bool ok = false;
  std::string text;  // the error message, or the output
};

struct Outcome {
  Result1 info, tokenize, run;
};

std::string describe(const ModelInfo& c) {
  std::ostringstream s;
  s << c.architecture << ' ' << c.family << ' ' << c.blocks << " vocab " << c.n_vocab << " dim "
    << c.dim << " layers " << c.n_layers << " heads " << c.n_heads << '/' << c.n_kv_heads
    << " head_dim " << c.head_dim << " ffn " << c.ffn_dim << " ctx " << c.n_ctx_train << " rope "
    << c.rope_dims << ' ' << c.rope_freq_base << ' ' << c.rope_layout << " [" << c.rope_scaling
    << "] tokenizer " << c.tokenizer_model << ' ' << c.pre_tokenizer << ' ' << c.n_tokens << " bos "
    << c.bos << " eos " << c.eos << " eog";
  for (const SpecialToken& t : c.end_of_generation) s << ' ' << t.id;
  for (const auto& [k, v] : c.family_params) s << " | " << k << '=' << v;
  s << " | template " << c.chat_template.size();
  return s.str();
}

std::string ids_string(const std::vector<TokenId>& ids) {
  std::string s;
  for (const TokenId id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// `info` and `run` load the model the same way: one load serves both.
Outcome in_process(const std::string& path) {
  Outcome o;
  if (auto vocab = Vocabulary::load(path); !vocab.ok()) {
    o.tokenize = {false, vocab.error().message()};
  } else if (auto ids = (*vocab)->tokenize(kText, false, false); !ids.ok()) {
    o.tokenize = {false, ids.error().message()};
  } else {
    o.tokenize = {true, ids_string(*ids)};
  }
  auto model = Model::load(path, {.n_threads = 1});
  if (!model.ok()) {
    o.info = o.run = {false, model.error().message()};
    return o;
  }
  o.info = {true, describe((*model)->info())};
  o.run = [&]() -> Result1 {
    SamplingOptions sampling;
    sampling.temperature = 0;
    auto stream = Stream::create(*model, {}, sampling);
    if (!stream.ok()) return {false, stream.error().message()};
    if (auto fed = (*stream)->feed_text(kPrompt, true); !fed.ok()) {
      return {false, fed.error().message()};
    }
    StopOptions stop;
    stop.max_tokens = 4;
    stop.at_end_of_generation = false;
    auto gen = (*stream)->generate(stop);
    if (!gen.ok()) return {false, gen.error().message()};
    return {true, ids_string(gen->tokens)};
  }();
  return o;
}

Result1 cli_result(const test::CliResult& r, const std::string& path) {
  if (r.exit_code == 0) {
    // The path (info prints it) as "F", so that outputs compare across files.
    std::string out;
    size_t from = 0;
    for (size_t at; (at = r.out.find(path, from)) != std::string::npos; from = at + path.size()) {
      out.append(r.out, from, at - from);
      out += 'F';
    }
    out.append(r.out, from, std::string::npos);
    // info's first line counts the metadata keys: one removed that nothing reads changes it.
    if (out.rfind("file:", 0) == 0) out.erase(0, out.find('\n') + 1);
    return {true, out};
  }
  // exit 1 and an "error: " line; anything else (a signal, a sanitizer's exit) is a crash.
  const size_t at = r.err.find("error: ");
  if (r.exit_code != 1 || at == std::string::npos) {
    return {false, "CRASH exit " + std::to_string(r.exit_code) + ": " + r.err.substr(0, 2000)};
  }
  return {false, r.err.substr(at, r.err.find('\n', at) - at)};
}

Outcome with_cli(const std::string& path) {
  const std::string m = " -m " + test::quote(path);
  Outcome o;
  o.info = cli_result(test::run_cli("info" + m, 60), path);
  o.tokenize = cli_result(test::run_cli("tokenize" + m + " -p " + test::quote(kText), 60), path);
  o.run = cli_result(test::run_cli("run" + m + " -p " + test::quote(kPrompt) +
                                       " -n 4 --temp 0 --print-ids --ignore-eos -t 1",
                                   60),
                     path);
  return o;
}

// Whether an error names what was changed.
bool names_target(const Case& c, const std::string& error) {
  if (error.find(c.target) != std::string::npos) return true;
  for (const std::string& w : c.also_named) {
    if (error.find(w) != std::string::npos) return true;
  }
  if (c.target == "general.alignment" && error.find("align") != std::string::npos) return true;
  // NaN or Inf in a weight shows in the logits: the engine names the position and the cause.
  if (c.category == "tensor data" && error.find("non-finite logits") != std::string::npos &&
      error.find("weights") != std::string::npos) {
    return true;
  }
  const auto has = [&](const char* w) { return error.find(w) != std::string::npos; };
  const auto ends_with = [&](const std::string& tail) {
    return c.target.size() >= tail.size() &&
           c.target.compare(c.target.size() - tail.size(), tail.size(), tail) == 0;
  };
  // A dimension shows in the tensors it sizes: an error naming one of them (and its shape) or
  // the head dimension it makes is clear.
  for (const char* dim : {".embedding_length", ".feed_forward_length", ".head_count",
                          ".head_count_kv", ".key_length", ".dimension_count", ".block_count"}) {
    if (ends_with(dim) && (has("tensor '") || has("head dimension"))) return true;
  }
  // The tokenizer's arrays are checked against each other: an error naming another is clear.
  if (c.target.rfind("tokenizer.ggml.", 0) == 0 &&
      (has("tokenizer.ggml.") || has("tokenizer has"))) {
    return true;
  }
  // A tensor's shape is checked against the others': an error naming another tensor is clear.
  if ((ends_with(".weight") || ends_with(".bias")) && has("tensor '")) return true;
  // Another architecture's name: its keys are missing, by name.
  if (c.target == "general.architecture" && has("key '")) return true;
  // A tensor of block 0 may be named by its block-relative name.
  if (c.target.rfind("blk.0.", 0) == 0 && error.find(c.target.substr(6)) != std::string::npos) {
    return true;
  }
  return false;
}

struct Tally {
  size_t cases = 0, load_errors = 0, runs = 0, runs_same = 0, tokenize_errors = 0;
};

// The problems of one case's outcome (empty: fine).
std::vector<std::string> judge(const Case& c, const Outcome& o, const Outcome& base,
                               const char* how) {
  std::vector<std::string> problems;
  const auto check = [&](const char* cmd, const Result1& r, const Result1& b) {
    if (r.text.rfind("CRASH", 0) == 0) {
      problems.push_back(std::string(how) + " " + cmd + ": " + r.text);
      return;
    }
    if (!r.ok) {
      if (!names_target(c, r.text)) {
        problems.push_back(std::string(how) + " " + cmd + ": unclear error: " + r.text);
      }
      if (c.expect == Expect::kSame) {
        problems.push_back(std::string(how) + " " + cmd +
                           ": expected to run as the base: " + r.text);
      }
    } else if (c.expect == Expect::kSame && r.text != b.text) {
      problems.push_back(std::string(how) + " " + cmd + ": differs from the base: '" + r.text +
                         "' vs '" + b.text + "'");
    }
  };
  check("info", o.info, base.info);
  check("tokenize", o.tokenize, base.tokenize);
  check("run", o.run, base.run);
  if (c.expect == Expect::kError && (o.info.ok || o.run.ok)) {
    problems.push_back(std::string(how) + ": expected an error, info/run succeeded");
  }
  return problems;
}

// One test per base model, so that ctest runs them side by side (the sanitizer build runs every
// case too); SLLM_MUTATION_VERBOSE=1 prints each case's outcome.
class GgufMutationOf : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufMutationOf, EveryCaseEndsInAClearErrorOrACorrectRun) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = test::temp_dir() + "/mutation";
  auto bases = mutation::write_base_models(dir);
  ASSERT_TRUE(bases.ok()) << bases.error().message();
  // The CLI on every 32nd case and the first of each category (three processes per case: all of
  // them would take 10+ minutes on two busy cores); SLLM_MUTATION_CLI_EVERY=N: every Nth (1: all,
  // 0: only the first of each category). Under the sanitizers the first of each category only.
  size_t cli_every = test::kSanitizedBuild ? 0 : 32;
  std::set<std::string> cli_categories;
  if (const char* every = std::getenv("SLLM_MUTATION_CLI_EVERY")) {
    cli_every = std::strtoul(every, nullptr, 10);
  }
  std::map<std::string, Tally> tally;
  std::vector<std::string> failures;
  size_t n_cases = 0, n_cli = 0;
  for (const mutation::BaseModel& base : *bases) {
    if (base.name != GetParam()) continue;
    auto file = GgufFile::open(base.path);
    ASSERT_TRUE(file.ok()) << file.error().message();
    const Outcome base_api = in_process(base.path);
    ASSERT_TRUE(base_api.info.ok && base_api.tokenize.ok && base_api.run.ok)
        << base.name << ": " << base_api.info.text << base_api.tokenize.text << base_api.run.text;
    const Outcome base_cli = with_cli(base.path);
    ASSERT_TRUE(base_cli.info.ok && base_cli.tokenize.ok && base_cli.run.ok)
        << base.name << ": " << base_cli.run.text;
    const std::vector<Case> cases = mutation::cases_for(base, *file);
    const mutation::GgufDoc doc = mutation::GgufDoc::from(*file);
    for (const Case& c : cases) {
      mutation::GgufDoc d = doc;
      c.apply(d);
      const std::string path = dir + "/case.gguf";
      test::write_bytes(path, d.serialize());
      const Outcome api = in_process(path);
      std::vector<std::string> problems = judge(c, api, base_api, "api");
      // The first case of each category through the CLI on the llama base (one process each).
      const bool first_of_category =
          GetParam() == "llama" && cli_categories.insert(c.category).second;
      if ((cli_every != 0 && n_cases % cli_every == 0) || first_of_category) {
        ++n_cli;
        const Outcome cli = with_cli(path);
        for (std::string& p : judge(c, cli, base_cli, "cli")) problems.push_back(std::move(p));
        // The CLI goes through the same API: the same verdicts.
        if (cli.info.ok != api.info.ok || cli.tokenize.ok != api.tokenize.ok ||
            cli.run.ok != api.run.ok) {
          problems.push_back("cli and api disagree: info " + cli.info.text + " | " + api.info.text +
                             " | run " + cli.run.text + " | " + api.run.text);
        }
      }
      ++n_cases;
      for (const std::string& p : problems) {
        failures.push_back(c.id() + ": " + p);
        std::printf("FAILED %s\n", failures.back().c_str());
      }
      Tally& t = tally[c.category];
      ++t.cases;
      if (!api.info.ok) ++t.load_errors;
      if (!api.tokenize.ok) ++t.tokenize_errors;
      if (api.info.ok && api.run.ok) {
        ++t.runs;
        if (api.run.text == base_api.run.text && api.info.text == base_api.info.text) {
          ++t.runs_same;
        }
      }
      if (std::getenv("SLLM_MUTATION_VERBOSE") != nullptr) {
        std::printf("%s -> info %s | tokenize %s | run %s\n", c.id().c_str(),
                    api.info.ok ? "ok" : api.info.text.c_str(),
                    api.tokenize.ok ? "ok" : api.tokenize.text.c_str(),
                    api.run.ok ? (api.run.text == base_api.run.text ? "same" : "differs")
                               : api.run.text.c_str());
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Tally total;
  std::printf(
      "| category | cases | model load errors | tokenize errors | ran | ran as the base |\n"
      "|---|---|---|---|---|---|\n");
  for (const auto& [name, t] : tally) {
    std::printf("| %s | %zu | %zu | %zu | %zu | %zu |\n", name.c_str(), t.cases, t.load_errors,
                t.tokenize_errors, t.runs, t.runs_same);
    total.cases += t.cases;
    total.load_errors += t.load_errors;
    total.tokenize_errors += t.tokenize_errors;
    total.runs += t.runs;
    total.runs_same += t.runs_same;
  }
  std::printf("| total | %zu | %zu | %zu | %zu | %zu |\n", total.cases, total.load_errors,
              total.tokenize_errors, total.runs, total.runs_same);
  std::printf("%s: %zu cases, %zu through the CLI (info, tokenize, run), %.1f s\n",
              GetParam().c_str(), n_cases, n_cli, seconds);
  EXPECT_GT(n_cases, 100u);
  for (size_t i = 0; i < failures.size() && i < 200; ++i) ADD_FAILURE() << failures[i];
  EXPECT_EQ(failures.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Bases, GgufMutationOf, ::testing::ValuesIn(mutation::base_model_names()),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string name = p.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// The engine bugs the generator found, each with its message: before the fixes, a file laid out
// at 32 that claims alignment 1 ran shifted weights until the logits went NaN, a rope factor of
// 1e-40 made NaN logits, and a tensor missing from block 0 was blamed on block_count.
TEST(GgufMutation, WhatTheGeneratorFoundIsAClearError) {
  const std::string dir = test::temp_dir() + "/found";
  auto bases = mutation::write_base_models(dir);
  ASSERT_TRUE(bases.ok()) << bases.error().message();
  const mutation::BaseModel& llama = bases->front();
  ASSERT_EQ(llama.name, "llama");
  auto file = GgufFile::open(llama.path);
  ASSERT_TRUE(file.ok()) << file.error().message();
  const auto error_of = [&](const std::function<void(mutation::GgufDoc&)>& apply) {
    mutation::GgufDoc d = mutation::GgufDoc::from(*file);
    apply(d);
    const std::string path = dir + "/found.gguf";
    test::write_bytes(path, d.serialize());
    auto model = Model::load(path, {.n_threads = 1});
    return model.ok() ? std::string("loads") : model.error().message();
  };
  const auto contains = [](const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
  };
  std::string e =
      error_of([](mutation::GgufDoc& d) { d.set("general.alignment", GgufValue::u32(1)); });
  EXPECT_TRUE(contains(e,
                       "bytes follow the last tensor's data, more than padding: the data section "
                       "does not start where general.alignment 1 puts it"))
      << e;
  for (const std::string key : {"llama.rope.scaling.factor", "llama.rope.scale_linear"}) {
    e = error_of([&](mutation::GgufDoc& d) { d.set(key, GgufValue::f32(1e-40f)); });
    // (1e-40 is subnormal: it prints as 9.99995e-41.)
    EXPECT_TRUE(contains(e, "metadata '" + key +
                                "' = 9.99995e-41 is neither 0 (none) nor in "
                                "[0.001, 1e6]"))
        << e;
  }
  for (const std::string name : {"blk.0.ffn_up.weight", "blk.1.attn_q.weight"}) {
    e = error_of([&](mutation::GgufDoc& d) {
      std::erase_if(d.tensors, [&](const mutation::GgufDoc::Tensor& t) { return t.name == name; });
    });
    EXPECT_TRUE(contains(e, "'" + name + "'")) << e;
    EXPECT_FALSE(contains(e, "block_count")) << e;
  }
}

}  // namespace
}  // namespace sllm
