// Helpers shared by the tests: paths to ../shared and running the CLI.
#pragma once

#include <string>

namespace sllm::test {

// Path of a file under the shared folder (../shared from the project root).
inline std::string shared_path(const std::string& rel) {
  return std::string(SLLM_SHARED_DIR) + "/" + rel;
}

inline std::string stories_gguf() { return shared_path("models/stories260K/stories260K.gguf"); }

}  // namespace sllm::test
