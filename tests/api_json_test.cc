// The server's request checks (src/server/api_json.h) on inputs the fuzz target server_request
// found (fuzz/server_request_fuzz.cc): each one minimised, with the reply it must get.
#include <gtest/gtest.h>

#include <string>

#include "api_json.h"

namespace sllm::server {
namespace {

// What send_error does with an ApiError: dump() throws on text that is not UTF-8.
std::string reply_of(const ApiError& error) { return error_json(error).dump(); }

// A body that starts inside a JSON value with a two-byte character: nlohmann's message quotes the
// bytes it last read, here the first byte of the character alone. The reply replaces it.
TEST(ApiJsonFuzzRegression, SyntaxErrorInsideACharacterGivesAUtf8Reply) {
  nlohmann::json json;
  const std::optional<ApiError> error = parse_body("\xC3\xA9 \"usa\"", json);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->code, "invalid_json");
  EXPECT_EQ(error->message,
            "the request body is not valid JSON: [json.exception.parse_error.101] parse error at "
            "line 1, column 1: syntax error while parsing value - invalid literal; last read: "
            "'\xEF\xBF\xBD'");
  std::string reply;
  ASSERT_NO_THROW(reply = reply_of(*error));
  EXPECT_NE(reply.find("\"code\":\"invalid_json\""), std::string::npos) << reply;
}

// A number too large for a double: nlohmann throws out_of_range (not parse_error), which escaped
// parse_body and ended the process.
TEST(ApiJsonFuzzRegression, NumberOverflowIsABadRequest) {
  for (const std::string body : {"1e999", R"({"messages": [], "temperature": -1e400})"}) {
    nlohmann::json json;
    std::optional<ApiError> error;
    ASSERT_NO_THROW(error = parse_body(body, json)) << body;
    ASSERT_TRUE(error.has_value()) << body;
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->code, "invalid_json");
    EXPECT_NE(error->message.find("the request body is not valid JSON: "
                                  "[json.exception.out_of_range.406] number overflow parsing '"),
              std::string::npos)
        << error->message;
    EXPECT_NO_THROW(reply_of(*error));
  }
}

// top_p and repeat_penalty must be > 0; 1e-50 is, as a double, but the sampler gets a float, where
// it is 0 (SamplingOptions::validate rejects that after the request was accepted).
TEST(ApiJsonFuzzRegression, ExclusiveBoundHoldsForTheFloat) {
  const SamplingOptions defaults;
  const RequestLimits limits;
  for (const char* field : {"top_p", "repeat_penalty"}) {
    const nlohmann::json body = {{"prompt", "a"}, {field, 1e-50}};
    CompletionRequest request;
    const std::optional<ApiError> error = parse_completion_request(body, defaults, limits, request);
    ASSERT_TRUE(error.has_value()) << field;
    EXPECT_EQ(error->code, "invalid_value");
    EXPECT_EQ(error->message,
              std::string(field) + " must be " +
                  (std::string(field) == "top_p" ? "a number in (0, 1]" : "a number in (0, 1000]") +
                  ", got 1e-50");
  }
  // The smallest positive float is still accepted.
  const nlohmann::json body = {{"prompt", "a"}, {"top_p", 1.5e-45}};
  CompletionRequest request;
  EXPECT_FALSE(parse_completion_request(body, defaults, limits, request).has_value());
  EXPECT_GT(request.sampling.top_p, 0.0f);
}

}  // namespace
}  // namespace sllm::server
