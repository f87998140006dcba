// Runs the streamingllm binary (SLLM_CLI_PATH) and captures stdout, stderr and the exit code.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace sllm::test {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string temp_dir() {
  static const std::string dir = [] {
    std::string tmpl = ::testing::TempDir() + "sllm_cli_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
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

// `args` is appended to the binary's path as is (shell syntax; quote what needs it).
inline CliResult run_cli(const std::string& args) {
  static int counter = 0;
  const std::string err_path = temp_dir() + "/stderr" + std::to_string(counter++);
  const std::string cmd = std::string(SLLM_CLI_PATH) + " " + args + " 2>" + err_path;
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

}  // namespace sllm::test
