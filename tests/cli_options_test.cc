// Issue 8, acceptance 2: every numeric option of every subcommand, given -1, 0, 2^31, 2^63, 2^64
// and a non-number, is a clear error (exit 1, stderr naming the option) or a correct run; never a
// crash, a hang or more than 1 GB. Values outside an option's declared range must be refused at
// parse time, before any work, with the option's name on stderr.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "test_util.h"

namespace sllm::test {
namespace {

#if defined(SLLM_TEST_ASAN)
constexpr double kMaxSeconds = 60;  // sanitized builds run the engine several times slower
#else
constexpr double kMaxSeconds = 20;
#endif
constexpr uint64_t kMaxRssBytes = uint64_t{1} << 30;

// A short text, so that "the whole text" (ppl/inspect --tokens 0) is fast.
std::string short_text() {
  static const std::string path = [] {
    const std::string all = slurp(shared_path("data/text/tinystories_val_head.txt"));
    const std::string p = temp_dir() + "/short.txt";
    std::ofstream(p, std::ios::binary) << all.substr(0, 1500);
    return p;
  }();
  return path;
}

struct NumericOption {
  std::string command;  // "run", "inspect attention", ...
  std::string flag;     // as given on the command line
  std::string name;     // the name errors use (the long one)
  long double min;
  long double max;
  bool min_exclusive = false;
  // Flags the option needs or that keep a valid value's run short: {flag, value}, replacing the
  // command's defaults of the same flag.
  std::map<std::string, std::string> context = {};
};

void PrintTo(const NumericOption& o, std::ostream* os) { *os << o.command << " " << o.flag; }

struct Command {
  std::map<std::string, std::string> defaults;  // flag -> value ("" for a bare flag)
  std::string stdin_text;
};

std::map<std::string, Command> commands() {
  const std::string model = quote(stories_gguf());
  const std::string text = quote(short_text());
  return {
      {"run", {{{"-m", model}, {"-p", "hi"}, {"-n", "2"}, {"-t", "1"}}, ""}},
      {"chat", {{{"-m", model}, {"--max-reply", "4"}, {"-t", "1"}}, "hello\n"}},
      {"bench", {{{"-m", model}, {"--tokens", "8"}, {"-t", "1"}}, ""}},
      {"ppl", {{{"-m", model}, {"-f", text}, {"--tokens", "64"}, {"-t", "1"}}, ""}},
      {"inspect attention", {{{"-m", model}, {"-f", text}, {"--tokens", "64"}, {"-t", "1"}}, ""}},
  };
}

constexpr long double kU32 = 4294967296.0L;  // 2^32
constexpr long double kI32 = 2147483647.0L;
constexpr long double kI64 = 9223372036854775807.0L;
constexpr long double kU64 = 18446744073709551615.0L;

std::vector<NumericOption> options() {
  std::vector<NumericOption> all;
  const std::map<std::string, std::string> dense = {{"--policy", "dense"}};
  auto add_common = [&](const std::string& cmd, bool sampling) {
    all.push_back({cmd, "-t", "--threads", 0, 1024});
    all.push_back({cmd, "--sinks", "--sinks", 0, kU32});
    all.push_back({cmd, "--window", "--window", 1, kU32});
    all.push_back({cmd, "-c", "--ctx-size", 1, kU32, false, dense});
    all.push_back({cmd, "-b", "--batch", 1, 4096});
    if (!sampling) return;
    all.push_back({cmd, "--temp", "--temp", 0, 1000});
    all.push_back({cmd, "--top-k", "--top-k", 0, kI32});
    all.push_back({cmd, "--top-p", "--top-p", 0, 1, true});
    all.push_back({cmd, "--min-p", "--min-p", 0, 1});
    all.push_back({cmd, "--repeat-penalty", "--repeat-penalty", 0, 1000, true});
    all.push_back({cmd, "--repeat-last-n", "--repeat-last-n", 0, 1 << 20});
    all.push_back({cmd, "--seed", "--seed", 0, kU64});
  };
  add_common("run", true);
  // -1 generates until stopped: dense attention with a small limit ends such runs with its error.
  all.push_back(
      {"run", "-n", "--n-predict", -1, kI64, false, {{"--policy", "dense"}, {"-c", "32"}}});
  add_common("chat", true);
  all.push_back({"chat", "--max-reply", "--max-reply", -1, kI64});
  add_common("bench", true);
  all.push_back({"bench", "--tokens", "--tokens", 1, 1e9L});
  all.push_back({"bench", "--report-every", "--report-every", 0, 1e9L});
  add_common("ppl", false);
  all.push_back({"ppl", "--tokens", "--tokens", 0, kU32});
  all.push_back({"ppl", "--cache", "--cache", 1, kU32});
  all.push_back({"ppl", "--segment", "--segment", 1, kU32});
  all.push_back({"inspect attention", "-t", "--threads", 0, 1024});
  all.push_back({"inspect attention", "--tokens", "--tokens", 0, kU32});
  all.push_back({"inspect attention", "--max-k", "--max-k", 1, 64});
  all.push_back({"inspect attention", "--min-query", "--min-query", 0, kU32});
  return all;
}

const char* const kValues[] = {"-1",
                               "0",
                               "2147483648",            // 2^31
                               "9223372036854775808",   // 2^63
                               "18446744073709551616",  // 2^64
                               "many"};

bool in_range(const NumericOption& o, const std::string& value) {
  char* end = nullptr;
  const long double v = std::strtold(value.c_str(), &end);
  if (end == value.c_str() || *end != '\0' || !std::isfinite(v)) return false;
  return v >= o.min && v <= o.max && !(o.min_exclusive && v == o.min);
}

class NumericOptionTest : public ::testing::TestWithParam<NumericOption> {};

TEST_P(NumericOptionTest, EveryValueIsAClearErrorOrACorrectRun) {
  const NumericOption& o = GetParam();
  const Command cmd = commands().at(o.command);
  for (const std::string value : kValues) {
    std::map<std::string, std::string> flags = cmd.defaults;
    for (const auto& [flag, v] : o.context) flags[flag] = v;
    flags[o.flag] = value;
    std::string args = o.command;
    for (const auto& [flag, v] : flags) {
      args.append(" ").append(flag);
      if (!v.empty()) args.append(" ").append(quote(v));
    }
    SCOPED_TRACE(args);
    const MeasuredRun r = run_cli_measured(args, kMaxSeconds + 10, cmd.stdin_text);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.term_signal, 0) << r.err;
    EXPECT_LE(r.seconds, kMaxSeconds);
    EXPECT_LE(r.peak_rss_bytes, kMaxRssBytes);
    if (!in_range(o, value)) {
      // Refused at parse time: exit 1, the option and its range on stderr, nothing on stdout.
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(r.err.rfind("error: " + o.name + " ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find("]"), std::string::npos) << "no range in: " << r.err;
      EXPECT_EQ(r.out, "");
    } else if (r.exit_code != 0) {
      // Allowed, but the run cannot go on (a cache larger than the machine, ...): a clear error.
      EXPECT_EQ(r.exit_code, 1) << r.err;
      EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllSubcommands, NumericOptionTest, ::testing::ValuesIn(options()),
                         [](const ::testing::TestParamInfo<NumericOption>& p) {
                           std::string name = p.param.command + "_" + p.param.name;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// The declared range is part of --help.
TEST(NumericOptionHelp, ShowsTheRange) {
  const CliResult r = run_cli("run --help");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Recent tokens kept (default: 1020 for streaming, 1024 otherwise) [1, "
                       "4294967296]"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Nucleus sampling; 1 = off (0, 1]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-t,--threads UINT=0"), std::string::npos) << r.out;
}

// Strict parsing: what CLI11 let through or wrapped before (issue 8, repros 1 and 8).
TEST(NumericOptionParse, RefusesWrappedSignedAndMalformedNumbers) {
  const std::string run = "run -m " + quote(stories_gguf()) + " -p hi ";
  struct Case {
    std::string args, message;
  };
  for (const Case& c : {
           Case{"--window -1", "error: --window expects an integer in [1, 4294967296], got '-1'"},
           Case{"--sinks -4 --window 4",
                "error: --sinks expects an integer in [0, 4294967296], got '-4'"},
           Case{"--sinks -1", "error: --sinks expects an integer in [0, 4294967296], got '-1'"},
           Case{"--window=+5", "error: --window expects an integer in [1, 4294967296], got '+5'"},
           Case{"--window 5x", "error: --window expects an integer in [1, 4294967296], got '5x'"},
           Case{"--window ' 5'", "error: --window expects an integer in [1, 4294967296], got ' 5'"},
           Case{"--window 0x10",
                "error: --window expects an integer in [1, 4294967296], got '0x10'"},
           Case{"--window 4294967297",
                "error: --window must be at most 4294967296 (an integer in [1, 4294967296]), got "
                "4294967297"},
           Case{"--seed 18446744073709551616",
                "error: --seed expects an integer in [0, 18446744073709551615], got "
                "'18446744073709551616'"},
           Case{"-n 9223372036854775808",
                "error: --n-predict expects an integer in [-1, 9223372036854775807], got "
                "'9223372036854775808'"},
           Case{"-n -2",
                "error: --n-predict must be at least -1 (an integer in [-1, "
                "9223372036854775807]), got -2"},
           Case{"-t -1", "error: --threads expects an integer in [0, 1024], got '-1'"},
           Case{"-t 1099511627776",
                "error: --threads must be at most 1024 (an integer in [0, 1024]), got "
                "1099511627776"},
           Case{"-n 1 -n 2", "error: --n-predict is given more than once; give it once"},
           Case{"--window 8 --window=9", "error: --window is given more than once; give it once"},
           Case{"--temp nan", "error: --temp expects a number in [0, 1000], got 'nan'"},
           Case{"--temp inf", "error: --temp expects a number in [0, 1000], got 'inf'"},
           Case{"--temp 1e400", "error: --temp expects a number in [0, 1000], got '1e400'"},
           Case{"--temp -0.5",
                "error: --temp must be at least 0 (a number in [0, 1000]), got -0.5"},
           Case{"--top-p 0", "error: --top-p must be greater than 0 (a number in (0, 1]), got 0"},
           Case{"--repeat-last-n 200000000",
                "error: --repeat-last-n must be at most 1048576 (an integer in [0, 1048576]), got "
                "200000000"},
           Case{"--top-k 2147483648",
                "error: --top-k expects an integer in [0, 2147483647], got '2147483648'"},
           Case{"--policy dense -c 1099511627776",
                "error: --ctx-size must be at most 4294967296 (an integer in [1, 4294967296]), "
                "got 1099511627776"},
       }) {
    SCOPED_TRACE(c.args);
    const MeasuredRun r = run_cli_measured(run + c.args, kMaxSeconds);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, c.message + "\n");
    EXPECT_EQ(r.out, "");
  }
}

// Issue 8, repro 2: sizes inside the flags' ranges that no machine can hold end in a clear error
// (the cache's memory check, or an allocation failure caught at the top), never in an abort.
TEST(NumericOptionParse, HugeCachesAreClearErrors) {
  const std::string run = "run -m " + quote(stories_gguf()) + " -p hi -n 2 -t 1 ";
  for (const std::string args :
       {"--window 100000000", "--window 4294967296", "--sinks 4294967296 --window 4294967296",
        "--policy dense -c 4294967296"}) {
    SCOPED_TRACE(args);
    const MeasuredRun r = run_cli_measured(run + args, kMaxSeconds + 10);
    EXPECT_EQ(r.term_signal, 0) << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_LE(r.peak_rss_bytes, kMaxRssBytes);
    EXPECT_EQ(r.out, "");
  }
}

}  // namespace
}  // namespace sllm::test
