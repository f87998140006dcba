#include "api_json.h"

#include <cmath>
#include <limits>
#include <random>

namespace sllm::server {

using nlohmann::json;

nlohmann::json error_json(const ApiError& error) {
  return {{"error",
           {{"message", error.message},
            {"type", error.type},
            {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
}

ApiError bad_request(std::string code, std::string message) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(code)};
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
  }
  return "?";
}

std::optional<size_t> invalid_utf8_at(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 (RFC 3629).
    static constexpr uint32_t kMinOfLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinOfLength[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return i;
    i += len;
  }
  return std::nullopt;
}

namespace {

// `text` with each byte that is not part of a UTF-8 character replaced by U+FFFD.
std::string valid_utf8(std::string_view text) {
  std::string out;
  while (const auto at = invalid_utf8_at(text)) {
    out.append(text.substr(0, *at));
    out += "\xEF\xBF\xBD";
    text.remove_prefix(*at + 1);
  }
  out.append(text);
  return out;
}

}  // namespace

std::optional<ApiError> parse_body(std::string_view body, json& out) {
  if (const auto at = invalid_utf8_at(body)) {
    return bad_request("invalid_utf8",
                       "the request body is not valid UTF-8 (byte " + std::to_string(*at) + ")");
  }
  try {
    out = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number overflow
    // nlohmann's message names the line, column and what it expected, and quotes the bytes last
    // read: those may end inside a character ("last read: '\xC3'" for a body starting with an
    // e-acute), which the error's JSON could not hold (dump() throws on invalid UTF-8).
    return bad_request("invalid_json",
                       "the request body is not valid JSON: " + valid_utf8(e.what()));
  }
  if (!out.is_object()) {
    return bad_request("invalid_json", std::string("the request body must be a JSON object, got ") +
                                           out.type_name());
  }
  return std::nullopt;
}

namespace {

ApiError wrong_type(const std::string& field, const char* expected, const json& value) {
  return bad_request("invalid_type", field + " must be " + expected + ", got " + value.type_name());
}

ApiError out_of_range(const std::string& field, const std::string& range, const json& value) {
  return bad_request("invalid_value", field + " must be " + range + ", got " + value.dump());
}

// Reads an optional number field into `out`; a JSON null counts as absent.
std::optional<ApiError> read_number(const json& body, const char* field, double lo, double hi,
                                    bool lo_exclusive, const std::string& range, float& out) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return wrong_type(field, "a number", *it);
  const double v = it->get<double>();
  // The range holds for the float the sampler gets: a positive double below the smallest float
  // (top_p 1e-50) becomes 0, which an exclusive lower bound of 0 must also reject.
  const auto f = static_cast<float>(v);
  if (!std::isfinite(v) || v < lo || v > hi || (lo_exclusive && f <= lo)) {
    return out_of_range(field, range, *it);
  }
  out = f;
  return std::nullopt;
}

std::optional<ApiError> read_integer(const json& body, const char* field, int64_t lo, int64_t hi,
                                     const std::string& range, std::optional<int64_t>& out) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return wrong_type(field, "an integer", *it);
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return out_of_range(field, range, *it);
  }
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) return out_of_range(field, range, *it);
  out = v;
  return std::nullopt;
}

#define SLLM_RETURN_API_ERROR(expr) \
  do {                              \
    if (auto api_error_ = (expr)) { \
      return api_error_;            \
    }                               \
  } while (0)

std::optional<ApiError> parse_generation(const json& body, const SamplingOptions& defaults,
                                         const RequestLimits& limits, GenerationRequest& out) {
  if (const auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return wrong_type("model", "a string", *it);
    out.model = it->get<std::string>();
  }
  if (const auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return wrong_type("stream", "a boolean", *it);
    out.stream = it->get<bool>();
  }
  if (const auto it = body.find("ignore_eos"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return wrong_type("ignore_eos", "a boolean", *it);
    out.ignore_eos = it->get<bool>();
  }
  if (const auto it = body.find("n"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return wrong_type("n", "an integer", *it);
    if (it->get<int64_t>() != 1) return out_of_range("n", "1 (one choice per request)", *it);
  }
  // OpenAI's penalties have no equivalent here; a client that sets one gets told, not ignored.
  for (const char* field : {"frequency_penalty", "presence_penalty"}) {
    const auto it = body.find(field);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_number()) return wrong_type(field, "a number", *it);
    if (it->get<double>() != 0.0) {
      return bad_request("unsupported_field",
                         std::string(field) + " is not supported (use repeat_penalty)");
    }
  }

  std::optional<int64_t> max_tokens;
  const std::string max_range = "an integer from 1 to " + std::to_string(limits.max_tokens);
  SLLM_RETURN_API_ERROR(
      read_integer(body, "max_tokens", 1, limits.max_tokens, max_range, max_tokens));
  if (!max_tokens) {
    SLLM_RETURN_API_ERROR(
        read_integer(body, "max_completion_tokens", 1, limits.max_tokens, max_range, max_tokens));
  }
  out.max_tokens = max_tokens.value_or(limits.default_max_tokens);

  if (const auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      out.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > limits.max_stop_strings) {
        return bad_request("invalid_value",
                           "stop has " + std::to_string(it->size()) + " strings, at most " +
                               std::to_string(limits.max_stop_strings) + " are allowed");
      }
      for (size_t i = 0; i < it->size(); ++i) {
        if (!(*it)[i].is_string()) {
          return wrong_type("stop[" + std::to_string(i) + "]", "a string", (*it)[i]);
        }
        out.stop.push_back((*it)[i].get<std::string>());
      }
    } else {
      return wrong_type("stop", "a string or an array of strings", *it);
    }
    for (const std::string& s : out.stop) {
      if (s.empty()) return bad_request("invalid_value", "stop strings must not be empty");
    }
  }

  SamplingOptions& s = out.sampling;
  s = defaults;
  SLLM_RETURN_API_ERROR(
      read_number(body, "temperature", 0, 1000, false, "a number from 0 to 1000", s.temperature));
  SLLM_RETURN_API_ERROR(read_number(body, "top_p", 0, 1, true, "a number in (0, 1]", s.top_p));
  SLLM_RETURN_API_ERROR(read_number(body, "min_p", 0, 1, false, "a number in [0, 1]", s.min_p));
  SLLM_RETURN_API_ERROR(read_number(body, "repeat_penalty", 0, 1000, true, "a number in (0, 1000]",
                                    s.repeat_penalty));
  std::optional<int64_t> v;
  SLLM_RETURN_API_ERROR(
      read_integer(body, "top_k", 0, std::numeric_limits<int32_t>::max(), "an integer >= 0", v));
  if (v) s.top_k = static_cast<int32_t>(*v);
  v.reset();
  SLLM_RETURN_API_ERROR(
      read_integer(body, "repeat_last_n", 0, int64_t{1} << 20, "an integer from 0 to 1048576", v));
  if (v) s.repeat_last_n = static_cast<int32_t>(*v);
  // seed: any integer that fits 64 bits; -1 (llama.cpp's "random") as absent.
  if (const auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return wrong_type("seed", "an integer", *it);
    if (it->is_number_unsigned()) {
      s.seed = it->get<uint64_t>();
      out.seed_given = true;
    } else if (it->get<int64_t>() != -1) {
      return out_of_range("seed", "an integer >= 0 (or -1 for a random seed)", *it);
    }
  }
  if (!out.seed_given)
    s.seed = std::random_device{}() * uint64_t{0x100000000} + std::random_device{}();
  return std::nullopt;
}

// OpenAI content: a string, null, or an array of {"type": "text", "text": ...} parts.
std::optional<ApiError> read_content(const json& value, const std::string& field,
                                     std::string& out) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) {
    out = value.get<std::string>();
    return std::nullopt;
  }
  if (!value.is_array()) return wrong_type(field, "a string or an array of text parts", value);
  for (size_t i = 0; i < value.size(); ++i) {
    const json& part = value[i];
    const std::string where = field + "[" + std::to_string(i) + "]";
    if (!part.is_object()) return wrong_type(where, "an object", part);
    const auto type = part.find("type");
    if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") {
      return bad_request("unsupported_content",
                         where + ": only parts of type \"text\" are supported");
    }
    const auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return wrong_type(where + ".text", "a string", text == part.end() ? json() : *text);
    }
    out += text->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_chat_request(const json& body, const SamplingOptions& defaults,
                                           const RequestLimits& limits, ChatRequest& out) {
  SLLM_RETURN_API_ERROR(parse_generation(body, defaults, limits, out));
  if (out.ignore_eos) {
    return bad_request(
        "unsupported_field",
        "ignore_eos is for /v1/completions: a chat reply ends at the end of its turn");
  }
  if (const auto it = body.find("session_id"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return wrong_type("session_id", "a string", *it);
    out.session_id = it->get<std::string>();
    if (!valid_session_id(out.session_id)) {
      return bad_request("invalid_session_id",
                         "session_id must be 1 to 64 letters, digits, '-' or '_'");
    }
  }
  const auto messages = body.find("messages");
  if (messages == body.end()) return bad_request("missing_field", "messages is required");
  if (!messages->is_array()) return wrong_type("messages", "an array", *messages);
  if (messages->empty()) return bad_request("invalid_value", "messages must not be empty");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return wrong_type(where, "an object", m);
    const auto role = m.find("role");
    if (role == m.end()) return bad_request("missing_field", where + ".role is required");
    if (!role->is_string()) return wrong_type(where + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    Message msg;
    if (r == "system" || r == "developer") {
      msg.role = Role::kSystem;
    } else if (r == "user") {
      msg.role = Role::kUser;
    } else if (r == "assistant") {
      msg.role = Role::kAssistant;
    } else {
      return bad_request("invalid_role", where + ".role: unknown role '" + r +
                                             "' (expected system, developer, user or assistant)");
    }
    const auto content = m.find("content");
    if (content == m.end() && msg.role != Role::kAssistant) {
      return bad_request("missing_field", where + ".content is required");
    }
    if (content != m.end())
      SLLM_RETURN_API_ERROR(read_content(*content, where + ".content", msg.content));
    out.messages.push_back(std::move(msg));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_completion_request(const json& body, const SamplingOptions& defaults,
                                                 const RequestLimits& limits,
                                                 CompletionRequest& out) {
  SLLM_RETURN_API_ERROR(parse_generation(body, defaults, limits, out));
  const auto prompt = body.find("prompt");
  if (prompt == body.end()) return bad_request("missing_field", "prompt is required");
  if (prompt->is_string()) {
    out.prompt = prompt->get<std::string>();
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    out.prompt = (*prompt)[0].get<std::string>();
  } else {
    return wrong_type("prompt", "a string (or an array of one string)", *prompt);
  }
  if (out.prompt.empty()) return bad_request("invalid_value", "prompt must not be empty");
  return std::nullopt;
}

bool valid_session_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace sllm::server
