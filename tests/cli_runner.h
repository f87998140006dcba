// Runs the streamingllm binary (SLLM_CLI_PATH) and captures stdout, stderr and the exit code.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sllm::test {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// One directory per test process, removed when that process exits (ctest runs every test in a
// process of its own: thousands of runs must not fill the disk with the models they wrote).
inline std::string temp_dir() {
  static const std::string dir = [] {
    std::string tmpl = ::testing::TempDir() + "sllm_cli_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    static const pid_t owner = ::getpid();
    static std::string to_remove;
    to_remove = tmpl;
    std::atexit([] {
      if (::getpid() != owner) return;  // a forked child that exits leaves the files alone
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `args` is appended to the binary's path as is (shell syntax; quote what needs it). With
// timeout_s > 0 the command runs under timeout(1), so that one that blocks fails the test (exit
// 137) instead of hanging it.
inline CliResult run_cli(const std::string& args, int timeout_s = 0) {
  static int counter = 0;
  const std::string err_path = temp_dir() + "/stderr" + std::to_string(counter++);
  const std::string prefix =
      timeout_s > 0 ? "timeout -s KILL " + std::to_string(timeout_s) + " " : std::string();
  const std::string cmd = prefix + std::string(SLLM_CLI_PATH) + " " + args + " 2>" + err_path;
  CliResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = slurp(err_path);
  return r;
}

inline std::string quote(const std::string& s) { return "'" + s + "'"; }

// One run of the binary, measured: how it ended, its wall time and its peak memory.
struct MeasuredRun {
  int exit_code = -1;   // when it exited
  int term_signal = 0;  // when a signal ended it (SIGKILL also when it ran past its time)
  bool timed_out = false;
  std::string out;
  std::string err;
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;  // the child's own (wait4), not this process's
};

// Runs `SLLM_CLI_PATH args` (shell syntax; the shell execs the binary, so wait4 measures the
// binary itself) with `stdin_text` on stdin, and kills it with SIGKILL after `timeout_s`.
// `stdout_path`: where stdout goes instead of r.out (e.g. /dev/full).
inline MeasuredRun run_cli_measured(const std::string& args, double timeout_s,
                                    const std::string& stdin_text = "",
                                    const std::string& stdout_path = "") {
  static int counter = 0;
  const std::string base = temp_dir() + "/measured" + std::to_string(counter++);
  { std::ofstream(base + ".in", std::ios::binary) << stdin_text; }
  const std::string out_path = stdout_path.empty() ? base + ".out" : stdout_path;
  const std::string cmd = "exec " + std::string(SLLM_CLI_PATH) + " " + args + " <" + base +
                          ".in >" + out_path + " 2>" + base + ".err";
  MeasuredRun r;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return r;
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  rusage usage{};
  for (;;) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done < 0 || elapsed > timeout_s) {
      r.timed_out = done >= 0;
      ::kill(pid, SIGKILL);
      ::wait4(pid, &status, 0, &usage);
      break;
    }
    ::usleep(5000);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_rss_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // KiB on Linux
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
  if (stdout_path.empty()) r.out = slurp(out_path);
  r.err = slurp(base + ".err");
  return r;
}

}  // namespace sllm::test
