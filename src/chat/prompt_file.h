// Prompt files for batch chat: MT-Bench style JSON lines, one question per line,
//   {"question_id": 81, "category": "writing", "turns": ["first user turn", "second user turn"]}
// Every turn of every question goes, in file order, into one conversation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"

namespace sllm {

// The user turns of all questions, in order. Blank lines are skipped; a line that is not a JSON
// object with a non-empty "turns" array of strings is kFormat, naming `name` and the line number.
Result<std::vector<std::string>> parse_prompt_turns(std::string_view jsonl, std::string_view name);

// Reads the file and parses it (errors name the path).
Result<std::vector<std::string>> read_prompt_turns(const std::string& path);

}  // namespace sllm
