# cmake -DIN=page.html -DOUT=page.cc -DNAME=chat_page -P embed.cmake
# Writes OUT: `std::string_view sllm::server::NAME()`, the bytes of IN (a byte array, not a
# string literal: no escaping, no compiler limit on literal length).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n_hex)
math(EXPR n_bytes "${n_hex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 24 bytes a line.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"// Generated from ${IN} by embed.cmake: do not edit.\n"
"#include <string_view>\n\n"
"namespace sllm::server {\n\n"
"namespace {\n"
"const unsigned char kBytes[] = {\n${bytes}\n};\n"
"}  // namespace\n\n"
"std::string_view ${NAME}() {\n"
"  return {reinterpret_cast<const char*>(kBytes), ${n_bytes}};\n"
"}\n\n"
"}  // namespace sllm::server\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
