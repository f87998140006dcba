#include "chat/prompt_file.h"

#include <nlohmann/json.hpp>

#include "util/mapped_file.h"

namespace sllm {

Result<std::vector<std::string>> parse_prompt_turns(std::string_view jsonl, std::string_view name) {
  std::vector<std::string> turns;
  size_t line_no = 0;
  for (size_t start = 0; start < jsonl.size();) {
    size_t end = jsonl.find('\n', start);
    if (end == std::string_view::npos) end = jsonl.size();
    const std::string_view line = jsonl.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto bad = [&](const std::string& what) {
      return Error(ErrorCode::kFormat,
                   std::string(name) + ":" + std::to_string(line_no) + ": " + what);
    };
    const nlohmann::json question =
        nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (question.is_discarded()) return bad("not valid JSON");
    if (!question.is_object()) return bad("expected a JSON object");
    const auto it = question.find("turns");
    if (it == question.end() || !it->is_array() || it->empty()) {
      return bad("expected a non-empty \"turns\" array");
    }
    for (const nlohmann::json& turn : *it) {
      if (!turn.is_string()) return bad("every element of \"turns\" must be a string");
      turns.push_back(turn.get<std::string>());
    }
  }
  if (turns.empty()) return Error(ErrorCode::kFormat, std::string(name) + ": no questions");
  return turns;
}

Result<std::vector<std::string>> read_prompt_turns(const std::string& path) {
  SLLM_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_prompt_turns(text, path);
}

}  // namespace sllm
