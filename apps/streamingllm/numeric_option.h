// Numeric flags with a declared range, parsed strictly by this code, not by CLI11.
//
// CLI11 converts "-1" into an unsigned option by wrapping it (2^64 - 1) and lets some values past
// the type's range through, so a flag such as `--window -1` reached the cache as a huge size.
// Every numeric flag is declared through add_number() instead: the text must be a plain decimal
// number of the flag's type (no sign on an unsigned flag, no trailing bytes, no overflow, no NaN
// or infinity) inside [min, max], else the parse fails with a message naming the flag and range.
#pragma once

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace sllm::cli {

template <typename T>
struct NumberRange {
  T min;
  T max;
  bool min_exclusive = false;  // (min, max]: for floats such as --top-p
};

namespace detail {

// The whole of `text` as a T, or nullopt: empty, a sign on an unsigned type, trailing bytes,
// overflow, or a non-finite float.
template <typename T>
std::optional<T> parse_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  // from_chars rejects '+'; it accepts '-' for signed and floating types only, as wanted.
  const char* first = text.data();
  const char* last = text.data() + text.size();
  T value{};
  const auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) return std::nullopt;
  }
  return value;
}

template <typename T>
std::string range_text(const NumberRange<T>& r) {
  return (r.min_exclusive ? "(" : "[") + CLI::detail::to_string(r.min) + ", " +
         CLI::detail::to_string(r.max) + "]";
}

template <typename T>
std::string kind_text() {
  if constexpr (std::is_floating_point_v<T>) return "a number";
  return "an integer";
}

}  // namespace detail

// Checks `text` against `range` for the flag `name`; the value, or the message for a bad one.
template <typename T>
std::optional<T> parse_in_range(std::string_view text, const std::string& name,
                                const NumberRange<T>& range, std::string* error) {
  const std::optional<T> v = detail::parse_number<T>(text);
  const std::string expected = detail::kind_text<T>() + " in " + detail::range_text(range);
  if (!v) {
    *error = name + " expects " + expected + ", got '" + std::string(text) + "'";
    return std::nullopt;
  }
  if (*v < range.min || (range.min_exclusive && *v == range.min)) {
    *error = name + " must be " + (range.min_exclusive ? "greater than " : "at least ") +
             CLI::detail::to_string(range.min) + " (" + expected + "), got " + std::string(text);
    return std::nullopt;
  }
  if (*v > range.max) {
    *error = name + " must be at most " + CLI::detail::to_string(range.max) + " (" + expected +
             "), got " + std::string(text);
    return std::nullopt;
  }
  return v;
}

// Declares `names` (e.g. "-n,--n-predict") as a numeric option stored in `value`, checked at parse
// time against `range`; the range and the default show in --help.
template <typename T>
CLI::Option* add_number(CLI::App& cmd, const std::string& names, T& value, NumberRange<T> range,
                        const std::string& help) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
  std::string flag = names.substr(names.rfind(',') + 1);  // the long name, by convention last
  CLI::Option* opt = cmd.add_option(
      names,
      [&value, range, flag](const CLI::results_t& results) {
        std::string error;
        const std::optional<T> v = parse_in_range<T>(results.back(), flag, range, &error);
        if (!v) throw CLI::ValidationError(error);
        value = *v;
        return true;
      },
      help + " " + detail::range_text(range));
  opt->type_name(std::is_floating_point_v<T> ? "FLOAT" : (std::is_signed_v<T> ? "INT" : "UINT"));
  opt->default_str(CLI::detail::to_string(value));
  opt->expected(1);
  return opt;
}

// A byte count: decimal digits, then optionally K, M, G or T (powers of 1024, either case, "iB"
// or "B" may follow: 512M, 2GiB, 1500000). nullopt for anything else, 0 digits, or > 2^64 - 1.
inline std::optional<uint64_t> parse_byte_size(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  const std::optional<uint64_t> n = detail::parse_number<uint64_t>(text.substr(0, digits));
  if (!n) return std::nullopt;
  std::string unit(text.substr(digits));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  unsigned shift = 0;
  if (unit == "K") {
    shift = 10;
  } else if (unit == "M") {
    shift = 20;
  } else if (unit == "G") {
    shift = 30;
  } else if (unit == "T") {
    shift = 40;
  } else if (!unit.empty() && unit != "B") {
    return std::nullopt;
  }
  if (shift > 0 && *n > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
  return *n << shift;
}

// Declares `name` as a byte count (parse_byte_size) stored in `value`.
inline CLI::Option* add_byte_size(CLI::App& cmd, const std::string& name, size_t& value,
                                  const std::string& help) {
  CLI::Option* opt = cmd.add_option(
      name,
      [&value, name](const CLI::results_t& results) {
        const std::optional<uint64_t> v = parse_byte_size(results.back());
        if (!v || *v > std::numeric_limits<size_t>::max()) {
          throw CLI::ValidationError(name +
                                     " expects a byte count such as 1073741824, 512M or 2G "
                                     "(K, M, G, T: powers of 1024), got '" +
                                     results.back() + "'");
        }
        value = static_cast<size_t>(*v);
        return true;
      },
      help);
  opt->type_name("BYTES");
  opt->expected(1);
  return opt;
}

// 2^32: the largest token count a flag may ask for; the library's memory check refuses the
// sizes that do not fit this machine.
inline constexpr uint64_t kMaxTokensFlag = uint64_t{1} << 32;

}  // namespace sllm::cli
