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

namespace sllm::test {

// Whether AddressSanitizer is on (Debug CI builds): slow and memory-hungry tests skip there.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizedBuild = true;
#else
inline constexpr bool kSanitizedBuild = false;
#endif

}  // namespace sllm::test
