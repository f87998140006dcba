// What the session-file and stream-file fuzz targets share: the stories260K model loaded once,
// the header repair (payload size and FNV-1a 64 checksum made right for the mutated bytes, so
// that fuzzing reaches the fields behind the checksum), and files under /dev/shm (the readers
// take paths).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "streamingllm/model.h"

namespace sllm_fuzz {

inline void check(bool ok) {
  if (!ok) __builtin_trap();
}

// stories260K from the shared dir (SLLM_SHARED_DIR, else ../shared of the working directory's
// project root: scripts/fuzz.sh runs from it), one thread.
inline std::shared_ptr<const sllm::Model> load_stories() {
  const char* env = std::getenv("SLLM_SHARED_DIR");
  const std::string shared = env != nullptr ? env : "../shared";
  sllm::Model::LoadOptions options;
  options.n_threads = 1;
  auto model = sllm::Model::load(shared + "/models/stories260K/stories260K.gguf", options);
  if (!model.ok()) {
    std::fprintf(stderr, "cannot load stories260K: %s\n", model.error().message().c_str());
    std::abort();
  }
  return *model;
}

// The header's payload size ([16, 24)) and FNV-1a 64 of the payload ([24, 32)) set for `bytes`.
inline std::vector<uint8_t> repair_header(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() < 32) return bytes;
  const uint64_t n_payload = bytes.size() - 32;
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 32; i < bytes.size(); ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  std::memcpy(bytes.data() + 16, &n_payload, 8);
  std::memcpy(bytes.data() + 24, &hash, 8);
  return bytes;
}

// Removes `path` (and the copies saved beside it) when the process exits: libFuzzer ends a timed
// run with exit(), so /dev/shm keeps nothing of a finished run.
inline void remove_at_exit(const std::string& path) {
  static std::vector<std::string> paths;
  if (paths.empty()) {
    std::atexit([] {
      for (const std::string& p : paths) std::remove(p.c_str());
    });
  }
  paths.push_back(path);
}

// /dev/shm/sllm-fuzz-WHAT-PID.SUFFIX, with .1 and .2 (the saved copies), removed at exit.
inline std::string shm_path(const char* what, const char* suffix) {
  static std::string path;
  if (path.empty()) {
    path = "/dev/shm/sllm-fuzz-" + std::string(what) + "-" + std::to_string(getpid()) + suffix;
    for (const char* tail : {"", ".1", ".2"}) remove_at_exit(path + tail);
  }
  return path;
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> bytes;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return bytes;
  uint8_t buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  std::fclose(f);
  return bytes;
}

// Loads the mutated input (header repaired) as a T (sllm::Chat or sllm::Stream) and, when it is
// accepted, checks that save -> load -> save writes the same bytes. Returns the loaded object and
// its reloaded copy; nothing when T::load refused the input (with a message, as it must).
template <typename T>
std::optional<std::pair<std::unique_ptr<T>, std::unique_ptr<T>>> load_and_round_trip(
    const std::shared_ptr<const sllm::Model>& model, const uint8_t* data, size_t size,
    const char* what, const char* suffix) {
  const std::string path = shm_path(what, suffix);
  write_file(path, repair_header(data, size));
  sllm::Result<std::unique_ptr<T>> loaded = T::load(model, path);
  if (!loaded.ok()) {
    check(!loaded.error().message().empty());
    return std::nullopt;
  }
  const std::string saved = path + ".1", saved_again = path + ".2";
  check((*loaded)->save(saved).ok());
  sllm::Result<std::unique_ptr<T>> reloaded = T::load(model, saved);
  check(reloaded.ok());
  check((*reloaded)->save(saved_again).ok());
  check(read_file(saved) == read_file(saved_again));
  return std::make_pair(std::move(*loaded), std::move(*reloaded));
}

}  // namespace sllm_fuzz
