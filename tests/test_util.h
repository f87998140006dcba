// Helpers shared by the tests: paths to ../shared and running the CLI.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sllm::test {

// Path of a file under the shared folder (../shared from the project root).
inline std::string shared_path(const std::string& rel) {
  return std::string(SLLM_SHARED_DIR) + "/" + rel;
}

inline std::string stories_gguf() { return shared_path("models/stories260K/stories260K.gguf"); }

// This process's peak resident set (VmHWM) since the last reset_peak_rss(), in bytes (0 if
// unknown); reset_peak_rss() says whether the kernel took the reset.
inline uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}
inline bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// A file's bytes, and a file of these bytes (for crafting damaged copies).
// (One read: byte by byte through istreambuf_iterator, reading the models of peer_greedy_test was
// half of its time under ASan.)
inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::vector<uint8_t> bytes(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}
inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

}  // namespace sllm::test

namespace sllm::test {

// Whether AddressSanitizer or ThreadSanitizer is on (Debug CI builds, the `tsan` preset): slow
// and memory-hungry tests skip or shorten there.
// (gcc defines __SANITIZE_*__; clang 14 only answers __has_feature.)
// SLLM_TEST_ASAN: AddressSanitizer alone, for #if (the ASan tree is clang's, where a test asking
// gcc's __SANITIZE_ADDRESS__ would silently run its full size and tight time limits).
#if defined(__SANITIZE_ADDRESS__)
#define SLLM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLLM_TEST_ASAN 1
#endif
#endif
#if defined(SLLM_TEST_ASAN) || defined(__SANITIZE_THREAD__)
#define SLLM_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLLM_TEST_SANITIZED 1
#endif
#endif
#if defined(SLLM_TEST_SANITIZED)
inline constexpr bool kSanitizedBuild = true;
#else
inline constexpr bool kSanitizedBuild = false;
#endif

}  // namespace sllm::test
