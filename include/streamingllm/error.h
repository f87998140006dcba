// Error and Result<T>: how every fallible call in streamingllm reports failure.
//
// Loaders and parsers return Result<T>; the message carries its context (file, offset, key, tensor,
// expected vs actual) so that the CLI can print it as is. Exceptions are not used for expected
// failures such as malformed input.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sllm {

enum class ErrorCode {
  kIo,            // a file could not be opened, read, mapped or written
  kFormat,        // a file is malformed (bad magic, truncated, out of bounds, ...)
  kUnsupported,   // well-formed but not supported (tensor type, architecture, ...)
  kInvalidInput,  // a user-supplied value is invalid (prompt, flag, UTF-8, ...)
  kLimit,         // a limit the user set or the model has would be exceeded
  kInternal,      // a broken invariant; a bug in streamingllm
};

const char* error_code_name(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy with `context` prepended ("context: message").
  Error with_context(const std::string& context) const {
    return Error(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_;
  std::string message_;
};

// A value or an Error. Accessing the value of an error (or the error of a value) is a bug and
// asserts in debug builds.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error. Success costs nothing (no message string is built).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(!ok());
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

}  // namespace sllm

// Propagates an error from an expression that yields Status or Result<T>.
#define SLLM_RETURN_IF_ERROR(expr) \
  do {                             \
    auto sllm_status_ = (expr);    \
    if (!sllm_status_.ok()) {      \
      return sllm_status_.error(); \
    }                              \
  } while (0)

#define SLLM_CONCAT_INNER_(a, b) a##b
#define SLLM_CONCAT_(a, b) SLLM_CONCAT_INNER_(a, b)

// `SLLM_ASSIGN_OR_RETURN(auto x, f());` declares x from a Result or returns its error.
#define SLLM_ASSIGN_OR_RETURN(decl, expr) \
  SLLM_ASSIGN_OR_RETURN_IMPL_(SLLM_CONCAT_(sllm_result_, __LINE__), decl, expr)
#define SLLM_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) {                                   \
    return tmp.error();                              \
  }                                                  \
  decl = std::move(tmp).value()
