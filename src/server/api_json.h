// The OpenAI wire format: request bodies checked field by field into plain structs, and the JSON
// the server answers with. A bad request becomes an ApiError naming the field and what was wrong;
// nothing here throws past its functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "streamingllm/options.h"

namespace sllm::server {

// An HTTP error in OpenAI's shape: {"error": {"message", "type", "code"}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;  // machine-readable: "invalid_json", "invalid_value", "session_not_found", ...
};
nlohmann::json error_json(const ApiError& error);
ApiError bad_request(std::string code, std::string message);

// Limits a request is checked against.
struct RequestLimits {
  int64_t max_tokens = 16384;         // the largest max_tokens a request may ask for
  int64_t default_max_tokens = 1024;  // when a request gives none
  size_t max_stop_strings = 16;
};

// What both endpoints share: sampling, stops, streaming.
struct GenerationRequest {
  std::string model;
  bool stream = false;
  int64_t max_tokens = 0;
  std::vector<std::string> stop;
  SamplingOptions sampling;  // the server's defaults, overridden by the request's fields
  bool seed_given = false;   // the request named a seed (else sampling.seed is a fresh random one)
  bool ignore_eos = false;   // llama.cpp's extension: generate past end-of-generation tokens
};

enum class Role { kSystem, kUser, kAssistant };
const char* role_name(Role role);

struct Message {
  Role role = Role::kUser;
  std::string content;
};

struct ChatRequest : GenerationRequest {
  std::vector<Message> messages;
  std::string session_id;  // "" = none (from the body or the X-Session-Id header)
};

struct CompletionRequest : GenerationRequest {
  std::string prompt;
};

// Where the first byte that is not UTF-8 sits, or nullopt when `text` is valid UTF-8.
std::optional<size_t> invalid_utf8_at(std::string_view text);

// The body parsed as a JSON object; UTF-8 and syntax checked first, so that the message says what
// was wrong without echoing the bad bytes.
std::optional<ApiError> parse_body(std::string_view body, nlohmann::json& out);

std::optional<ApiError> parse_chat_request(const nlohmann::json& body,
                                           const SamplingOptions& defaults,
                                           const RequestLimits& limits, ChatRequest& out);
std::optional<ApiError> parse_completion_request(const nlohmann::json& body,
                                                 const SamplingOptions& defaults,
                                                 const RequestLimits& limits,
                                                 CompletionRequest& out);

// Session ids the server hands out and accepts: 1 to 64 of [A-Za-z0-9_-] (they name files).
bool valid_session_id(std::string_view id);

}  // namespace sllm::server
