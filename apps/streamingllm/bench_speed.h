// `streamingllm bench` without --tokens: the speed report of one model on this machine, in one
// run. Prefill (a 512-token prompt in one batch), decode after a short prompt and with a full
// cache, the per-token latency of `streaming` against `recompute` at growing cache sizes (the
// paper's Figure 10 as a table), peak RSS, and the machine's memory read bandwidth measured in the
// same process, with the share of it decoding reaches (weight bytes x tok/s / bandwidth): at real
// sizes a decoded token reads every weight once, so that share says how close to the limit the
// kernels are.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "streamingllm/streamingllm.h"

namespace sllm::cli {

struct SpeedArgs {
  size_t prefill = 512;  // prompt tokens, fed in one batch
  size_t decode = 64;    // tokens generated per decode measurement
  size_t rounds = 3;     // repetitions; medians are reported
  std::vector<size_t> caches{256, 512, 1024, 2048, 4096};  // the Figure 10 cache sizes
  size_t streaming_tokens = 16;                            // tokens timed per cache size, streaming
  // Tokens timed per cache size, recompute: each one is a prefill of the whole cache (4096
  // tokens of a 1.1B model on 2 cores: a minute), so at kLargeCache and above at most 2.
  size_t recompute_tokens = 3;
  static constexpr size_t kLargeCache = 2048;
  size_t full_cache = 1024;  // the cache of the full-cache decode measurement (0: skip it)
  int profile = 1;           // 1: a profiled decode (where a token's time goes); 0: none
  // The profiled decode's cache: 0, after an 8-token prompt (the short decode's); C > 0, a
  // streaming cache of C tokens filled first (the full-cache decode, where attention's share
  // grows).
  size_t profile_cache = 0;
  size_t bandwidth_mib = 512;  // bytes read by the bandwidth probe (far above any cache)
  std::string ids_file;        // token ids to feed (else a fixed pseudo-random sequence)
  KvType kv_type = KvType::kF32;
  std::string json_path;
};

int bench_speed(const SpeedArgs& args, const std::string& model_path,
                const std::shared_ptr<Model>& model);

}  // namespace sllm::cli
