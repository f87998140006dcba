// The CLI's one Ctrl-C mechanism: a SIGINT handler that sets a flag the library polls
// (StopOptions::interrupt, Stream::feed's interrupt) between tokens and between prompt chunks.
#pragma once

#include <atomic>

namespace sllm::cli {

// The flag the handler sets. A second Ctrl-C while it is set ends the process at once (130).
std::atomic<bool>& interrupted();

// Installs the handler (sigaction without SA_RESTART, so that a blocking read at a prompt
// returns with EINTR and the chat sees the flag).
void install_sigint_handler();

// Back to the default action (a Ctrl-C ends the process).
void restore_sigint();

}  // namespace sllm::cli
