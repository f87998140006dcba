// libFuzzer target for the server's request checks (src/server/api_json.h): the body of
// POST /v1/chat/completions or /v1/completions (bit 0 of the first byte picks which; bit 1 small
// limits), parse_body then parse_chat_request / parse_completion_request, and the X-Session-Id
// header's check (valid_session_id) on the body's bytes.
//
// Checked:
//   - a rejected request has an ApiError with a 4xx status, a code and a message, and its JSON
//     (what the server sends) serialises without throwing;
//   - a body that is not UTF-8 (an independent check) is rejected as invalid_utf8 naming the byte;
//   - an accepted request satisfies what the server relies on: max_tokens in [1, limit] (the
//     default when absent), at most max_stop_strings stop strings, none empty, sampling options
//     in their documented ranges and passing SamplingOptions::validate, every text valid UTF-8;
//     chat: messages non-empty, session_id empty or valid; completion: a non-empty prompt;
//   - valid_session_id agrees with its definition (1 to 64 of [A-Za-z0-9_-]).
//   scripts/fuzz.sh 60 server_request
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api_json.h"
#include "fuzz_util.h"

namespace {

using sllm::fuzz::valid_utf8;
using sllm::server::ApiError;

void check_rejected(const ApiError& error) {
  SLLM_FUZZ_CHECK(error.status >= 400 && error.status < 500);
  SLLM_FUZZ_CHECK(!error.message.empty());
  SLLM_FUZZ_CHECK(!error.code.empty());
  try {
    (void)sllm::server::error_json(error).dump();
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "error_json(%s).dump() threw: %s\n", error.code.c_str(), e.what());
    __builtin_trap();
  }
}

void check_generation(const sllm::server::GenerationRequest& r,
                      const sllm::server::RequestLimits& limits, const nlohmann::json& body) {
  SLLM_FUZZ_CHECK(r.max_tokens >= 1 && r.max_tokens <= limits.max_tokens);
  if (!body.contains("max_tokens") && !body.contains("max_completion_tokens")) {
    SLLM_FUZZ_CHECK(r.max_tokens == limits.default_max_tokens);
  }
  SLLM_FUZZ_CHECK(r.stop.size() <= limits.max_stop_strings);
  for (const std::string& s : r.stop) SLLM_FUZZ_CHECK(!s.empty() && valid_utf8(s));
  SLLM_FUZZ_CHECK(valid_utf8(r.model));
  const sllm::SamplingOptions& s = r.sampling;
  SLLM_FUZZ_CHECK(std::isfinite(s.temperature) && s.temperature >= 0 && s.temperature <= 1000);
  SLLM_FUZZ_CHECK(std::isfinite(s.top_p) && s.top_p > 0 && s.top_p <= 1);
  SLLM_FUZZ_CHECK(std::isfinite(s.min_p) && s.min_p >= 0 && s.min_p <= 1);
  SLLM_FUZZ_CHECK(std::isfinite(s.repeat_penalty) && s.repeat_penalty > 0 &&
                  s.repeat_penalty <= 1000);
  SLLM_FUZZ_CHECK(s.top_k >= 0);
  SLLM_FUZZ_CHECK(s.repeat_last_n >= 0 && s.repeat_last_n <= (1 << 20));
  const sllm::Status valid = s.validate();
  if (!valid.ok()) {
    std::fprintf(stderr, "accepted sampling options fail validate(): %s\n",
                 valid.error().message().c_str());
    SLLM_FUZZ_CHECK(valid.ok());
  }
  if (r.seed_given) SLLM_FUZZ_CHECK(body.at("seed").get<uint64_t>() == s.seed);
}

bool session_id_by_definition(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char c : id) {
    if (std::string_view("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
            .find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = (data[0] & 1) == 0;
  sllm::server::RequestLimits limits;
  if ((data[0] & 2) != 0)
    limits = {.max_tokens = 8, .default_max_tokens = 4, .max_stop_strings = 2};
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);

  SLLM_FUZZ_CHECK(sllm::server::valid_session_id(body) == session_id_by_definition(body));

  nlohmann::json json;
  if (const std::optional<ApiError> error = sllm::server::parse_body(body, json)) {
    check_rejected(*error);
    if (const auto at = sllm::fuzz::first_invalid_utf8(body)) {
      SLLM_FUZZ_CHECK(error->code == "invalid_utf8");
      SLLM_FUZZ_CHECK(error->message.find("(byte " + std::to_string(*at) + ")") !=
                      std::string::npos);
    }
    return 0;
  }
  SLLM_FUZZ_CHECK(valid_utf8(body) && json.is_object());

  const sllm::SamplingOptions defaults;
  if (chat) {
    sllm::server::ChatRequest request;
    if (const auto error = sllm::server::parse_chat_request(json, defaults, limits, request)) {
      check_rejected(*error);
      return 0;
    }
    check_generation(request, limits, json);
    SLLM_FUZZ_CHECK(!request.ignore_eos);
    SLLM_FUZZ_CHECK(!request.messages.empty());
    SLLM_FUZZ_CHECK(request.messages.size() == json.at("messages").size());
    for (const sllm::server::Message& m : request.messages) SLLM_FUZZ_CHECK(valid_utf8(m.content));
    SLLM_FUZZ_CHECK(request.session_id.empty() || session_id_by_definition(request.session_id));
  } else {
    sllm::server::CompletionRequest request;
    if (const auto error =
            sllm::server::parse_completion_request(json, defaults, limits, request)) {
      check_rejected(*error);
      return 0;
    }
    check_generation(request, limits, json);
    SLLM_FUZZ_CHECK(!request.prompt.empty() && valid_utf8(request.prompt));
  }
  return 0;
}
