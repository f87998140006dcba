#include "streamingllm/inspect.h"

#include "api/impl.h"
#include "runtime/inspect.h"

namespace sllm {

Result<AttentionMass> measure_attention_mass(const Model& model, std::span<const TokenId> tokens,
                                             const AttentionMassOptions& options) {
  const Model::Impl& m = model.impl();
  std::lock_guard<std::mutex> lock(m.compute);
  return measure_attention_mass(m.model(), tokens, options, *m.pool);
}

}  // namespace sllm
