// The chat page served at / (page/chat.html, embedded at build time by page/embed.cmake).
#pragma once

#include <string_view>

namespace sllm::server {

std::string_view chat_page();

}  // namespace sllm::server
