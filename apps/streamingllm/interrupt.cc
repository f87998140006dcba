#include "interrupt.h"

#include <signal.h>

#include <cstdlib>

namespace sllm::cli {

namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_sigint(int) {
  if (g_interrupted.exchange(true)) std::_Exit(130);  // a second Ctrl-C ends at once
}

}  // namespace

std::atomic<bool>& interrupted() { return g_interrupted; }

void install_sigint_handler() {
  struct sigaction action = {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
}

void restore_sigint() { signal(SIGINT, SIG_DFL); }

}  // namespace sllm::cli
