// streamingllm's tokenizer on files, through the public API only: the counterpart of
// peer/tokenize.mjs (llama.cpp), with the same output, for scripts/peer_tokenize.py and
// bench/tokenizer_throughput.py.
//
//   tokenizer_tool ids VOCAB.gguf FILE... [--max-bytes N]
//       one JSON line per file: {"file", "bytes", "count", "ids"} or {"file", "error"}
//   tokenizer_tool time VOCAB.gguf FILE [--rounds R]
//       one JSON line per round: {"bytes", "count", "wall_s", "cpu_s", "mb_s"}; the load is not
//       timed
//
// Tokenization is Vocabulary::tokenize(text, add_bos = false, parse_special = false).
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "streamingllm/streamingllm.h"

namespace {

int usage(const std::string& msg) {
  fmt::print(stderr,
             "tokenizer_tool: {}\nusage: tokenizer_tool ids VOCAB.gguf FILE... [--max-bytes N]\n"
             "       tokenizer_tool time VOCAB.gguf FILE [--rounds R]\n",
             msg);
  return 2;
}

// JSON string escaping for file names (the only free text printed).
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The first max_bytes bytes, backed off to a UTF-8 character boundary (the rule of
// peer/tokenize.mjs and tests/tokenizer_peer_golden_test.cc).
std::string prefix(std::string text, size_t max_bytes) {
  if (max_bytes == 0 || text.size() <= max_bytes) return text;
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  text.resize(n);
  return text;
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return usage("need a mode, a vocabulary and a file");
  const std::string mode = argv[1];
  if (mode != "ids" && mode != "time") return usage("unknown mode " + mode);
  size_t max_bytes = 0;
  int rounds = 1;
  std::vector<std::string> pos;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--max-bytes" || a == "--rounds") {
      if (i + 1 >= argc) return usage(a + " needs a value");
      const std::string v = argv[++i];
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
        return usage(a + " needs a non-negative integer, got '" + v + "'");
      }
      if (a == "--rounds") {
        rounds = std::stoi(v);
      } else {
        max_bytes = std::stoul(v);
      }
    } else if (a.starts_with("--")) {
      return usage("unknown option " + a);
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() < 2) return usage("need a vocabulary and at least one file");
  auto vocab = sllm::Vocabulary::load(pos[0]);
  if (!vocab.ok()) {
    fmt::print(stderr, "tokenizer_tool: {}\n", vocab.error().message());
    return 1;
  }
  if (mode == "time") {
    auto text = sllm::read_file(pos[1]);
    if (!text.ok()) {
      fmt::print(stderr, "tokenizer_tool: {}\n", text.error().message());
      return 1;
    }
    for (int r = 0; r < std::max(1, rounds); ++r) {
      const double c0 = cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      auto ids = (*vocab)->tokenize(*text, false, false);
      const double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = cpu_seconds() - c0;
      if (!ids.ok()) {
        fmt::print(stderr, "tokenizer_tool: {}\n", ids.error().message());
        return 1;
      }
      fmt::print("{{\"bytes\": {}, \"count\": {}, \"wall_s\": {}, \"cpu_s\": {}, \"mb_s\": {}}}\n",
                 text->size(), ids->size(), wall, cpu,
                 static_cast<double>(text->size()) / 1e6 / wall);
    }
    return 0;
  }
  int rc = 0;
  for (size_t f = 1; f < pos.size(); ++f) {
    auto text = sllm::read_file(pos[f]);
    auto ids = text.ok() ? (*vocab)->tokenize(prefix(*text, max_bytes), false, false)
                         : sllm::Result<std::vector<sllm::TokenId>>(text.error());
    if (!ids.ok()) {
      fmt::print("{{\"file\": {}, \"error\": {}}}\n", json_string(pos[f]),
                 json_string(ids.error().message()));
      rc = 1;
      continue;
    }
    std::string line;
    line.reserve(ids->size() * 7);
    for (size_t i = 0; i < ids->size(); ++i) {
      if (i > 0) line += ',';
      line += std::to_string((*ids)[i]);
    }
    fmt::print("{{\"file\": {}, \"bytes\": {}, \"count\": {}, \"ids\": [{}]}}\n",
               json_string(pos[f]), prefix(*text, max_bytes).size(), ids->size(), line);
  }
  return rc;
}
