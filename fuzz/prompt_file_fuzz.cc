// libFuzzer target for the MT-Bench prompt-file reader (src/chat/prompt_file.h,
// parse_prompt_turns): any bytes as a JSON-lines file.
//
// Checked against an independent reading of the same lines (nlohmann::json per non-blank line):
//   - accepted: the turns are every line's "turns" strings in file order, at least one, each valid
//     UTF-8 (the chat tokenizes them next);
//   - rejected: kFormat, the message starting with the file's name, and "NAME:N: " naming the
//     first line that is not a JSON object with a non-empty "turns" array of strings (or
//     "NAME: no questions" when there is no line).
//   scripts/fuzz.sh 60 prompt_file
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/prompt_file.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const sllm::Result<std::vector<std::string>> turns = sllm::parse_prompt_turns(text, "q.jsonl");

  // The independent reading: the first bad line (0: none) and the turns before it.
  std::vector<std::string> expected;
  size_t bad_line = 0;
  size_t line_no = 0;
  for (size_t start = 0; start < text.size() && bad_line == 0;) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json q;
    try {
      q = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      bad_line = line_no;
      break;
    }
    if (!q.is_object() || !q.contains("turns") || !q["turns"].is_array() || q["turns"].empty()) {
      bad_line = line_no;
      break;
    }
    for (const nlohmann::json& t : q["turns"]) {
      if (!t.is_string()) {
        bad_line = line_no;
        break;
      }
      expected.push_back(t.get<std::string>());
    }
  }

  if (turns.ok()) {
    SLLM_FUZZ_CHECK(bad_line == 0);
    SLLM_FUZZ_CHECK(!turns->empty());
    SLLM_FUZZ_CHECK(turns.value() == expected);
    for (const std::string& t : turns.value()) SLLM_FUZZ_CHECK(sllm::fuzz::valid_utf8(t));
    return 0;
  }
  SLLM_FUZZ_CHECK(turns.error().code() == sllm::ErrorCode::kFormat);
  const std::string& message = turns.error().message();
  if (bad_line != 0) {
    SLLM_FUZZ_CHECK(message.starts_with("q.jsonl:" + std::to_string(bad_line) + ": "));
  } else {
    SLLM_FUZZ_CHECK(expected.empty());
    SLLM_FUZZ_CHECK(message == "q.jsonl: no questions");
  }
  return 0;
}
