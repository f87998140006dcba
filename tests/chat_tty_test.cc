// The interactive chat in a real terminal (issue 5, acceptance 5): tmux runs `streamingllm chat`
// in a pseudo-terminal, the test types into it (send-keys) and reads the screen (capture-pane).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.h"
#include "test_util.h"

namespace sllm {
namespace {

std::string run_shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ::pclose(p);
  return out;
}

bool have_tmux() { return std::system("command -v tmux >/dev/null 2>&1") == 0; }

// Lines without their trailing spaces (capture-pane drops them; so does this, on both sides).
std::string trim_line_ends(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    line.erase(line.find_last_not_of(' ') + 1);
    out += line;
    if (end < text.size()) out += '\n';
    start = end + 1;
  }
  return out;
}

size_t count_prompts(const std::string& screen) {
  size_t n = 0;
  for (size_t at = 0; at < screen.size();) {
    size_t end = screen.find('\n', at);
    if (end == std::string::npos) end = screen.size();
    if (screen.compare(at, 1, ">") == 0) ++n;
    at = end + 1;
  }
  return n;
}

// One tmux server with the chat in a 100x50 window, on a socket of its own (a server that is
// still shutting down must not be reused), killed at the end.
class Terminal {
 public:
  explicit Terminal(const std::string& chat_args) {
    static int n_terminals = 0;
    tmux_ = "tmux -L sllm-chat-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(n_terminals++) + " -f /dev/null ";
    // Ctrl-C goes to the whole foreground process group: the shell too. With a trap of its own
    // the shell outlives it and prints the chat's exit code; without one, a shell that sees the
    // signal before the chat has exited may die with it and take the pane (and the screen this
    // test reads) along. The chat gets SIGINT at its default on exec, as from any shell.
    const std::string command = "trap : INT; " + std::string(SLLM_CLI_PATH) + " chat " + chat_args +
                                "; echo \"[exit $?]\"; sleep 60";
    // remain-on-exit: should the shell die after all, the pane stays, with tmux's "Pane is dead
    // (signal N)" line on the screen this test prints (a CI run once lost the whole server).
    const std::string start = tmux_ + "new-session -d -x 100 -y 50 -s chat " +
                              test::quote(command) + " \\; set-option -t chat remain-on-exit on";
    started_ = std::system(start.c_str()) == 0;
  }
  ~Terminal() { run_shell(tmux_ + "kill-server 2>/dev/null"); }

  bool started() const { return started_; }

  // The whole screen and its scrollback, wrapped lines joined.
  std::string screen() const { return run_shell(tmux_ + "capture-pane -p -J -S - -t chat"); }
  void type(const std::string& text) const {
    run_shell(tmux_ + "send-keys -t chat -l " + test::quote(text));
  }
  void key(const std::string& name) const { run_shell(tmux_ + "send-keys -t chat " + name); }

  // Polls the screen until `done` holds (true) or 30 s have passed (false).
  bool wait_for(const std::function<bool(const std::string&)>& done) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(screen())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  bool wait_for_prompts(size_t n) const {
    return wait_for([n](const std::string& s) { return count_prompts(s) >= n; });
  }
  bool wait_for_text(const std::string& text) const {
    return wait_for([&](const std::string& s) { return s.find(text) != std::string::npos; });
  }

 private:
  std::string tmux_;
  bool started_ = false;
};

const std::string kFlags =
    "-m " + test::stories_gguf() + " --window 64 --max-reply 24 --temp 0.8 -s 3 -t 1";

// The replies the same chat gives in batch mode (stdin not a terminal).
std::vector<std::string> batch_replies(const std::vector<std::string>& turns) {
  std::string lines;
  for (const std::string& t : turns) lines += t + "\n";
  const std::string path = test::temp_dir() + "/tty_turns.txt";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(lines.c_str(), f);
  std::fclose(f);
  const test::CliResult r = test::run_cli("chat " + kFlags + " < " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> replies;
  for (size_t at = r.out.find("ASSISTANT: "); at != std::string::npos;) {
    at += 11;
    const size_t end = r.out.find("\n\nUSER: ", at);
    replies.push_back(r.out.substr(at, (end == std::string::npos ? r.out.size() - 2 : end) - at));
    at = r.out.find("ASSISTANT: ", at);
  }
  return replies;
}

TEST(ChatTtyTest, TwoTurnsInATerminal) {
  if (!have_tmux()) GTEST_SKIP() << "tmux is not installed: this test drives a real terminal";
  const std::vector<std::string> turns = {"Once upon a time", "The dog was happy"};
  const std::vector<std::string> replies = batch_replies(turns);
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_FALSE(replies[0].empty());

  Terminal term(kFlags);
  ASSERT_TRUE(term.started());
  ASSERT_TRUE(term.wait_for_prompts(1)) << term.screen();
  EXPECT_NE(term.screen().find("Ctrl-C stops a reply; Ctrl-D or Ctrl-C at the prompt quits."),
            std::string::npos);
  term.type(turns[0]);
  term.key("Enter");
  ASSERT_TRUE(term.wait_for_prompts(2)) << term.screen();
  term.type(turns[1]);
  term.key("Enter");
  ASSERT_TRUE(term.wait_for_prompts(3)) << term.screen();
  term.key("C-d");
  ASSERT_TRUE(term.wait_for_text("[exit 0]")) << term.screen();

  // The screen: each typed line after the prompt, then the reply batch mode gives, then the
  // final figures.
  const std::string screen = term.screen();
  const std::string expected =
      "> " + turns[0] + "\n" + replies[0] + "\n\n> " + turns[1] + "\n" + replies[1] + "\n\n>";
  EXPECT_NE(screen.find(trim_line_ends(expected)), std::string::npos) << "screen:\n"
                                                                      << screen << "\nexpected:\n"
                                                                      << expected;
  EXPECT_NE(screen.find("streamingllm chat: 2 turns in"), std::string::npos) << screen;
}

// Ctrl-C ends an endless reply and the conversation goes on; Ctrl-C at the prompt quits cleanly.
TEST(ChatTtyTest, CtrlCStopsTheReplyAndKeepsTheConversation) {
  if (!have_tmux()) GTEST_SKIP() << "tmux is not installed: this test drives a real terminal";
  Terminal term("-m " + test::stories_gguf() + " --window 64 --max-reply -1 -t 1");
  ASSERT_TRUE(term.started());
  ASSERT_TRUE(term.wait_for_prompts(1)) << term.screen();
  term.type("Once upon a time");
  term.key("Enter");
  // Wait until the endless reply has filled a few lines.
  ASSERT_TRUE(term.wait_for([](const std::string& s) { return s.size() > 1500; })) << term.screen();
  term.key("C-c");
  ASSERT_TRUE(term.wait_for_prompts(2)) << term.screen();
  term.type("The cat");
  term.key("Enter");
  ASSERT_TRUE(term.wait_for_text("> The cat\n")) << term.screen();
  term.key("C-c");
  ASSERT_TRUE(term.wait_for_prompts(3)) << term.screen();
  term.key("C-c");
  ASSERT_TRUE(term.wait_for_text("[exit 0]")) << term.screen();
  EXPECT_NE(term.screen().find("streamingllm chat: 2 turns in"), std::string::npos)
      << term.screen();
}

}  // namespace
}  // namespace sllm
