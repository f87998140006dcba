// Pre-tokenizer regex tables and their PCRE2 matching (see pretokenize.h).
//
// llama.cpp runs these patterns through std::regex (or hand-written splitters for the GPT-2,
// Llama 3 and Qwen patterns) on a rewritten text; we run them with PCRE2 on the real text and
// reproduce what that rewriting changes:
// - \s means llama.cpp's whitespace set (Unicode White_Space, U+0085 included), which it gets
//   by mapping every non-ASCII whitespace character to \v: we spell that set out.
// - That mapping also hides non-ASCII whitespace from literal character ranges (deepseek-llm's
//   U+3000-U+3002, deepseek-coder's U+0800-U+4E00): those ranges leave the whitespace out.
// - $ is the end of the word only (std::regex has no "before a final newline").
// - The tekken / gpt-4o patterns are llama.cpp's rewrites of [\p{Lu}...] classes, in which every
//   non-ASCII letter counts as both upper and lower case: PCRE2 on those rewrites does the same.
// What remains different is the Unicode version of the character tables (PCRE2's vs llama.cpp's
// unicode-data.cpp), for characters assigned in one and not the other.
#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

namespace sllm {
namespace {

constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen35 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// deepseek-llm's letters (llama.cpp's table), written as code points.
// clang-format off
constexpr std::string_view kDeepseekLlmLetters =
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-"
    "\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-"
    "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-"
    "\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-"
    "\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+";
// clang-format on
// U+3000 (ideographic space) left out of the last range: see the top of the file.
constexpr std::string_view kDeepseekLlmPunct = "\\s?[!-/:-~！-／：-～‘-‟\\x{3001}-。]+";
// U+0800-U+4E00 without the whitespace in it: see the top of the file.
constexpr std::string_view kDeepseekCjk =
    "[一-龥\\x{0800}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}"
    "\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-一가-퟿]+";
constexpr std::string_view kPoro = R"( ?[^(\s|.,!?…。，、।۔،)]+)";

struct Entry {
  std::vector<std::string_view> names;
  PreTokenizerSpec spec;
};

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = {
      {{"", "default"},
       {"default", {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano", "dbrx", "smaug-bpe"},
       {"llama3", {kLlama3}, /*ignore_merges=*/true, /*add_bos=*/true}},
      {{"deepseek-llm"},
       {"deepseek-llm",
        {"[\\r\\n]", kDeepseekLlmLetters, kDeepseekLlmPunct, R"(\s+$)", kDeepseekCjk,
         R"(\p{N}+)"}}},
      {{"deepseek-coder"},
       {"deepseek-coder", {"[\\r\\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}}},
      {{"falcon"},
       {"falcon",
        {R"([\p{P}\$\+<=>\^~\|`]+)",
         R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
         "[0-9][0-9][0-9]"}}},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
        "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt",
        "olmo", "jais", "trillion", "granite-docling"},
       {"gpt-2", {kGpt2}}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
        "mellum2"},
       {"starcoder", {R"(\p{N})", kGpt2}}},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
        "solar-open", "grok-2", "laguna"},
       {"qwen2", {kQwen2}}},
      {{"qwen35"}, {"qwen35", {kQwen35}}},
      {{"tekken"}, {"tekken", {kTekken}, /*ignore_merges=*/true, /*add_bos=*/true}},
      {{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, {"gpt-4o", {kGpt4o}}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {"bloom", {kPoro}}},
      {{"viking"}, {"viking", {kPoro, R"(\p{N})"}}},
      // Not among the issue's families and without test vocabularies here: the patterns are
      // llama.cpp's, checked only to compile.
      // clang-format off
      {{"deepseek-v3", "hunyuan-dense", "joyai-llm"},
       {"deepseek-v3",
        {"\\p{N}{1,3}",
         "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
         "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}}},
      {{"seed-coder"},
       {"seed-coder",
        {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
      {{"minicpm5"},
       {"minicpm5",
        {"\\p{N}{1,3}",
         "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, /*ignore_merges=*/true}},
      {{"exaone-moe"},
       {"exaone-moe",
        {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}}},
      {{"bailingmoe", "bailingmoe2", "llada-moe"},
       {"bailingmoe",
        {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}}},
      // clang-format on
  };
  return entries;
}

// llama.cpp's whitespace set (unicode_set_whitespace), as character class contents.
constexpr std::string_view kWhitespace =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";

// \s and \S spelled as llama.cpp's whitespace set, inside character classes and out.
std::string rewrite_whitespace(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        if (in_class) {
          out += kWhitespace;
        } else {
          out += '[';
          out += kWhitespace;
          out += ']';
        }
      } else if (e == 'S' && !in_class) {
        out += "[^";
        out += kWhitespace;
        out += ']';
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

// Per-thread match state: a JIT stack larger than PCRE2's 32 KiB default, for long words.
struct MatchState {
  MatchState()
      : data(pcre2_match_data_create(1, nullptr)),
        context(pcre2_match_context_create(nullptr)),
        stack(pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr)) {
    if (context != nullptr && stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  pcre2_match_data* data;
  pcre2_match_context* context;
  pcre2_jit_stack* stack;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
};

PreTokenizer::~PreTokenizer() {
  for (Compiled& c : regexes_) pcre2_code_free(c.code);
}

const PreTokenizerSpec& gemma4_pre_tokenizer() {
  static const PreTokenizerSpec spec = {"gemma4",
                                        {"[^\\n]+|[\\n]+"},
                                        /*ignore_merges=*/false,
                                        /*add_bos=*/true,
                                        /*byte_encode=*/false,
                                        /*escape_whitespace=*/true};
  return spec;
}

const PreTokenizerSpec* find_pre_tokenizer(std::string_view pre) {
  // llama.cpp gives a gpt2 vocab with these names Gemma 4's pre-tokenizer too.
  if (pre == "gemma4" || pre == "granite-embed-multi-311m") return &gemma4_pre_tokenizer();
  for (const Entry& entry : table()) {
    for (const std::string_view name : entry.names) {
      if (name == pre) return &entry.spec;
    }
  }
  return nullptr;
}

std::string supported_pre_tokenizers() {
  std::string out;
  for (const Entry& entry : table()) {
    for (const std::string_view name : entry.names) {
      if (name.empty()) continue;
      if (!out.empty()) out += ", ";
      out += name;
    }
  }
  return out + ", gemma4, granite-embed-multi-311m";
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create(const PreTokenizerSpec& spec) {
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  for (const std::string_view regex : spec.regexes) {
    const std::string pattern = rewrite_whitespace(regex);
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &error_offset, nullptr);
    if (code == nullptr) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error, message.data(), message.size());
      return Error(ErrorCode::kInternal, "pre-tokenizer '" + std::string(spec.name) +
                                             "': regex does not compile at " +
                                             std::to_string(error_offset) + ": " +
                                             reinterpret_cast<const char*>(message.data()));
    }
    // Without JIT (not built in) pcre2_match interprets the pattern: slower, same result.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    pre->regexes_.push_back({code});
  }
  return pre;
}

Result<std::vector<uint32_t>> PreTokenizer::split(std::string_view text) const {
  std::vector<uint32_t> ends;
  if (text.empty()) return ends;
  if (text.size() > UINT32_MAX) {
    return Error(ErrorCode::kLimit, "a text fragment of " + std::to_string(text.size()) +
                                        " bytes is too long to pre-tokenize (at most 4 GiB)");
  }
  ends.push_back(static_cast<uint32_t>(text.size()));
  MatchState& state = match_state();
  if (state.data == nullptr) return Error(ErrorCode::kInternal, "out of memory for PCRE2");
  std::vector<uint32_t> next;
  for (const Compiled& regex : regexes_) {
    next.clear();
    next.reserve(ends.size());
    uint32_t begin = 0;
    for (const uint32_t end : ends) {
      // Each word is a subject of its own: look-arounds and $ stop at its edges, as llama.cpp's
      // regex_iterator over [begin, end) does.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + begin);
      const PCRE2_SIZE length = end - begin;
      PCRE2_SIZE pos = 0;
      PCRE2_SIZE last = 0;  // end of the last match: what lies between matches is a word too
      while (pos < length) {
        const int rc = pcre2_match(regex.code, subject, length, pos, PCRE2_NO_UTF_CHECK, state.data,
                                   state.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          std::array<PCRE2_UCHAR, 256> message{};
          pcre2_get_error_message(rc, message.data(), message.size());
          return Error(ErrorCode::kLimit, std::string("pre-tokenizer regex failed: ") +
                                              reinterpret_cast<const char*>(message.data()));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
        const PCRE2_SIZE match_begin = ovector[0];
        const PCRE2_SIZE match_end = ovector[1];
        if (match_end == match_begin) {
          // An empty match cuts nothing: try again one character on.
          pos = match_begin + 1;
          while (pos < length && (subject[pos] & 0xC0) == 0x80) ++pos;
          continue;
        }
        if (match_begin > last) next.push_back(begin + static_cast<uint32_t>(match_begin));
        next.push_back(begin + static_cast<uint32_t>(match_end));
        last = pos = match_end;
      }
      if (last < length) next.push_back(end);
      begin = end;
    }
    ends.swap(next);
  }
  return ends;
}

}  // namespace sllm
