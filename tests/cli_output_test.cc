// Issue 8, repros 4, 6 and 8 at the CLI: every write is checked (stdout, --csv, --summary,
// --json), output paths are checked before any work, a bad chat line is skipped, flag conflicts
// are reported up front, and the first Ctrl-C stops a long prompt's prefill.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

#include "cli_runner.h"
#include "test_util.h"

namespace sllm::test {
namespace {

const std::string kModel = quote(stories_gguf());
// A short text keeps ppl and inspect fast (they tokenize the whole file).
const std::string kText = [] {
  const std::string all = slurp(shared_path("data/text/tinystories_val_head.txt"));
  const std::string path = temp_dir() + "/short.txt";
  std::ofstream(path, std::ios::binary) << all.substr(0, 2000);
  return quote(path);
}();

#if defined(SLLM_TEST_ASAN)
constexpr double kMaxSeconds = 60;
constexpr double kMaxInterruptSeconds = 15;
#else
constexpr double kMaxInterruptSeconds = 5;
constexpr double kMaxSeconds = 20;
#endif

bool is_char_device(const std::string& path) {
  struct stat st = {};
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

// Repro 4: with SIGPIPE ignored by the parent, a closed pipe ends an endless run at once, with
// an error and a non-zero exit.
TEST(CliOutputTest, ClosedPipeEndsAnEndlessRunWithSigpipeIgnored) {
  const std::string err = temp_dir() + "/pipe.err";
  const std::string script = "trap '' PIPE; " + std::string(SLLM_CLI_PATH) + " run -m " + kModel +
                             " -n -1 --ignore-eos -t 1 2>" + quote(err) +
                             " | head -c 100 >/dev/null; echo ${PIPESTATUS[0]}";
  const auto start = std::chrono::steady_clock::now();
  FILE* p = ::popen(("timeout -s KILL 60 bash -c " + quote(script)).c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, p), nullptr);
  ::pclose(p);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(std::string(buf), "1\n");
  EXPECT_LT(seconds, kMaxSeconds);
  EXPECT_NE(slurp(err).find("error: cannot write to standard output: Broken pipe\n"),
            std::string::npos)
      << slurp(err);
}

// The same with SIGPIPE at its default: the command also ends with the error, not by the signal.
TEST(CliOutputTest, ClosedPipeIsAnErrorWithSigpipeAtItsDefault) {
  const std::string script = std::string(SLLM_CLI_PATH) + " run -m " + kModel +
                             " -n -1 --ignore-eos -t 1 2>/dev/null | head -c 10 >/dev/null; "
                             "echo ${PIPESTATUS[0]}";
  FILE* p = ::popen(("timeout -s KILL 60 bash -c " + quote(script)).c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, p), nullptr);
  ::pclose(p);
  EXPECT_EQ(std::string(buf), "1\n");
}

// Repro 4: stdout on /dev/full is an error for every command that prints.
TEST(CliOutputTest, StdoutOnDevFullIsAnError) {
  for (const std::string& args :
       {"run -m " + kModel + " -p hi -n 4 -t 1", "tokenize -m " + kModel + " -p hello",
        "info -m " + kModel, "chat -m " + kModel + " --max-reply 4 -t 1", std::string("run --help"),
        "ppl -m " + kModel + " -f " + kText + " --tokens 64 -t 1",
        "bench -m " + kModel + " --tokens 8 -t 1",
        "inspect attention -m " + kModel + " -f " + kText + " --tokens 64 -t 1"}) {
    SCOPED_TRACE(args);
    const MeasuredRun r = run_cli_measured(args, kMaxSeconds, "hello\n", "/dev/full");
    EXPECT_EQ(r.term_signal, 0);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("error: cannot write to standard output: No space left on device\n"),
              std::string::npos)
        << r.err;
  }
}

// Repro 4: output files on a full device are errors, and the device stays a device.
TEST(CliOutputTest, OutputFilesOnDevFullAreErrors) {
  const std::string ppl = "ppl -m " + kModel + " -f " + kText + " --tokens 64 -t 1 ";
  for (const std::string& args :
       {ppl + "--csv /dev/full", ppl + "--summary /dev/full",
        "bench -m " + kModel + " --tokens 8 -t 1 --json /dev/full",
        "inspect attention -m " + kModel + " -f " + kText + " --tokens 64 -t 1 --csv /dev/full"}) {
    SCOPED_TRACE(args);
    const MeasuredRun r = run_cli_measured(args, kMaxSeconds);
    EXPECT_EQ(r.term_signal, 0);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("error: cannot write '/dev/full': No space left on device\n"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(is_char_device("/dev/full"));
  }
}

// Output paths that cannot work are refused before any work (nothing on stdout yet).
TEST(CliOutputTest, UnusableOutputPathsAreRefusedUpFront) {
  const std::string dir = temp_dir();
  const std::string ppl = "ppl -m " + kModel + " -f " + kText + " --tokens 64 -t 1 ";
  const std::string bench = "bench -m " + kModel + " --tokens 8 -t 1 ";
  struct Case {
    std::string args, message;
  };
  for (const Case& c : {
           Case{ppl + "--csv " + quote(dir), "error: --csv '" + dir + "' is a directory\n"},
           Case{ppl + "--summary " + quote(dir + "/missing/s.csv"),
                "error: --summary '" + dir + "/missing/s.csv': directory '" + dir +
                    "/missing': No such file or directory\n"},
           Case{ppl + "--csv ''", "error: --csv: empty path\n"},
           Case{bench + "--json " + quote(dir), "error: --json '" + dir + "' is a directory\n"},
           Case{bench + "--json " + quote(stories_gguf() + "/x.json"),
                "error: --json '" + stories_gguf() + "/x.json': Not a directory\n"},
       }) {
    SCOPED_TRACE(c.args);
    const MeasuredRun r = run_cli_measured(c.args, kMaxSeconds);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, c.message);
    EXPECT_EQ(r.out, "");
  }
}

// A FIFO is written directly: never replaced, never blocked on when nobody reads it.
TEST(CliOutputTest, FifoOutputIsWrittenInPlaceAndNeverBlocks) {
  const std::string fifo = temp_dir() + "/out.fifo";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string bench = "bench -m " + kModel + " --tokens 8 -t 1 --json " + quote(fifo);
  const MeasuredRun no_reader = run_cli_measured(bench, kMaxSeconds);
  EXPECT_FALSE(no_reader.timed_out);
  EXPECT_EQ(no_reader.exit_code, 1);
  EXPECT_NE(
      no_reader.err.find("error: cannot open '" + fifo + "' for writing: no process reads it"),
      std::string::npos)
      << no_reader.err;

  const std::string got = temp_dir() + "/fifo.json";
  const std::string script = "cat " + quote(fifo) + " >" + quote(got) + " & sleep 0.3; " +
                             SLLM_CLI_PATH + " " + bench + " 2>/dev/null >/dev/null; echo $?; wait";
  FILE* p = ::popen(("timeout -s KILL 60 bash -c " + quote(script)).c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, p), nullptr);
  ::pclose(p);
  EXPECT_EQ(std::string(buf), "0\n");
  EXPECT_NE(slurp(got).find("\"tokens_per_second\""), std::string::npos) << slurp(got);
  struct stat st = {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// Regular output files are still written (atomically) and complete.
TEST(CliOutputTest, RegularOutputFilesAreComplete) {
  const std::string csv = temp_dir() + "/nll.csv", summary = temp_dir() + "/summary.csv";
  const MeasuredRun r =
      run_cli_measured("ppl -m " + kModel + " -f " + kText + " --tokens 64 -t 1 --csv " +
                           quote(csv) + " --summary " + quote(summary),
                       kMaxSeconds);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string rows = slurp(csv);
  EXPECT_EQ(rows.rfind("index,token,nll_streaming\n1,", 0), 0u) << rows;
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 64);  // header + 63 scored tokens
  EXPECT_EQ(slurp(summary).rfind("policy,sinks,window,n_scored,", 0), 0u);
}

// Repro 6: one bad line does not end a chat; it is reported and skipped.
TEST(CliChatInputTest, InvalidLineIsSkippedAndTheNextIsAnswered) {
  const MeasuredRun r = run_cli_measured("chat -m " + kModel + " --max-reply 8 -t 1", kMaxSeconds,
                                         "hello\n\377\376\nafter\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("error: line 2: invalid UTF-8 at byte 0: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(", skipped\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("streamingllm chat: 1 turn(s) skipped\n"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("USER: hello\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("USER: after\n\nASSISTANT: "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\377"), std::string::npos);

  // The skipped line changed nothing: the conversation is the one without it.
  const MeasuredRun clean =
      run_cli_measured("chat -m " + kModel + " --max-reply 8 -t 1", kMaxSeconds, "hello\nafter\n");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_EQ(r.out, clean.out);
}

// Repro 8: flag errors are reported before any work (no header, no reply).
TEST(CliFlagConflictTest, ReportedBeforeAnyWork) {
  struct Case {
    std::string args, message;
  };
  const std::string readme = quote(stories_gguf());
  for (const Case& c : {
           Case{"chat -m " + kModel + " --stop ''", "error: --stop: the text must not be empty\n"},
           Case{"chat -m " + kModel + " --stop x --stop ''",
                "error: --stop: the text must not be empty\n"},
           Case{"run -m " + kModel + " -p x -f " + readme,
                "error: --prompt and --file exclude each other: give one of them\n"},
           Case{"tokenize -m " + kModel + " -p x -f " + readme,
                "error: --prompt and --file exclude each other: give one of them\n"},
           Case{"chat -m " + kModel + " --policy window --sinks 2",
                "error: --sinks applies to --policy streaming only\n"},
           Case{"run -m " + kModel + " --policy dense --window 8",
                "error: --window does not apply to --policy dense (use --ctx-size)\n"},
           Case{"ppl -m " + kModel + " -f " + kText + " --compare window,sliding",
                "error: unknown cache policy 'sliding' (expected dense, window, streaming or "
                "recompute)\n"},
           Case{"ppl -m " + kModel + " -f " + kText + " --compare window --policy dense",
                "error: --policy and --compare exclude each other\n"},
           Case{"bench -m " + kModel + " --policy window --sinks 2",
                "error: --sinks applies to --policy streaming only\n"},
       }) {
    SCOPED_TRACE(c.args);
    const MeasuredRun r = run_cli_measured(c.args, kMaxSeconds, "hello\n");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, c.message);
    EXPECT_EQ(r.out, "");
  }
}

// A prompt long enough that its prefill takes far longer than the test waits.
std::string long_prompt() {
  static const std::string path = [] {
    const std::string book = slurp(shared_path("data/text/gutenberg_pg2701.txt"));
    const std::string p = temp_dir() + "/long_prompt.txt";
#if defined(SLLM_TEST_ASAN)
    const size_t n_bytes = 100'000;  // ~60K tokens: still minutes of prefill under ASan
#else
    const size_t n_bytes = 400'000;  // ~240K tokens: about a minute of prefill
#endif
    std::ofstream(p, std::ios::binary) << book.substr(0, n_bytes);
    return p;
  }();
  return path;
}

// Sends SIGINT `after_s` seconds after start; returns the exit status line and the seconds the
// process took after the signal.
std::pair<std::string, double> interrupt_after(const std::string& args, double after_s,
                                               const std::string& err_path) {
  const std::string script = std::string(SLLM_CLI_PATH) + " " + args + " >/dev/null 2>" +
                             quote(err_path) + " & pid=$!; sleep " + std::to_string(after_s) +
                             "; kill -INT $pid; s=$(date +%s%N); wait $pid; rc=$?; "
                             "echo $rc $(( ($(date +%s%N) - s) / 1000000 ))";
  FILE* p = ::popen(("timeout -s KILL 120 bash -c " + quote(script)).c_str(), "r");
  if (p == nullptr) return {"", 0};
  char buf[128] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  if (!got) return {"", 0};
  const std::string line(buf);
  const size_t space = line.find(' ');
  return {line.substr(0, space), std::stod(line.substr(space + 1)) / 1000.0};
}

// Repro 8: the first Ctrl-C stops a long prompt's prefill within a batch (run).
TEST(CliInterruptTest, FirstCtrlCStopsARunsPrefill) {
  const std::string err = temp_dir() + "/prefill_run.err";
  const auto [rc, seconds] = interrupt_after(
      "run -m " + kModel + " -f " + quote(long_prompt()) + " --policy streaming -n 4 -t 1", 2.0,
      err);
  EXPECT_EQ(rc, "0") << slurp(err);
  EXPECT_LT(seconds, kMaxInterruptSeconds);  // the prefill alone takes about a minute
  EXPECT_NE(slurp(err).find("| interrupted"), std::string::npos) << slurp(err);
}

// Repro 8: the same for a chat turn; the chat then ends cleanly.
TEST(CliInterruptTest, FirstCtrlCStopsAChatTurnsPrefill) {
  const std::string turn = temp_dir() + "/long_turn.txt";
  {
    std::string text = slurp(long_prompt());
    for (char& c : text) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    std::ofstream(turn, std::ios::binary) << text << "\n";
  }
  const std::string err = temp_dir() + "/prefill_chat.err";
  const auto [rc, seconds] =
      interrupt_after("chat -m " + kModel + " --max-reply 4 -t 1 <" + quote(turn), 2.0, err);
  EXPECT_EQ(rc, "0") << slurp(err);
  EXPECT_LT(seconds, kMaxInterruptSeconds);  // the prefill alone takes about a minute
  EXPECT_NE(slurp(err).find("streamingllm chat: 1 turns"), std::string::npos) << slurp(err);
}

}  // namespace
}  // namespace sllm::test
