// The commands' output and session paths: devices, FIFOs and directories are refused before any
// work and never replaced or blocked on; an unusable --session path is reported before the first
// reply; two chats on one session file do not race; a GGUF with a huge alignment is refused.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.h"
#include "test_util.h"

namespace sllm {
namespace {

namespace fs = std::filesystem;

// Under timeout(1): a command that blocks fails the test instead of hanging it.
test::CliResult run_cli(const std::string& args) { return test::run_cli(args, 60); }

const std::string kModel = test::stories_gguf();

std::string temp_path(const std::string& name) { return test::temp_dir() + "/" + name; }

bool is_char_device(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

bool is_fifo(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

// A FIFO nobody writes to: opening it for reading, or writing into it, would block forever.
std::string make_fifo(const std::string& name) {
  const std::string path = temp_path(name);
  ::unlink(path.c_str());
  if (::mkfifo(path.c_str(), 0644) != 0) throw std::runtime_error("mkfifo failed");
  return path;
}

// Commands that could block run under timeout(1): exit code 124 means they blocked.
const std::string kTimeout = "timeout -s KILL 60 ";

TEST(FileCliTest, QuantizeToDevFullIsRefusedAndTheDeviceStays) {
  const auto r = run_cli("quantize " + kModel + " /dev/full --type q8_0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(
      r.err,
      "error: '/dev/full' is not a regular file (character device); refusing to replace it\n");
  EXPECT_EQ(r.err.find("wrote"), std::string::npos);
  EXPECT_TRUE(is_char_device("/dev/full"));
}

TEST(FileCliTest, QuantizeToAFifoOrADirectoryIsRefusedWithoutBlocking) {
  const std::string fifo = make_fifo("out.fifo");
  const auto r = run_cli("quantize " + kModel + " " + fifo + " --type q8_0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: '" + fifo + "' is not a regular file (FIFO); refusing to replace it\n");
  EXPECT_TRUE(is_fifo(fifo));
  const std::string dir = temp_path("out_dir");
  fs::create_directories(dir);
  const auto d = run_cli("quantize " + kModel + " " + dir + " --type q8_0");
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_EQ(d.err,
            "error: '" + dir + "' is not a regular file (directory); refusing to replace it\n");
  EXPECT_TRUE(fs::is_directory(dir));
}

TEST(FileCliTest, ConvertToDevFullIsRefused) {
  const auto r = run_cli("convert --llama2c " +
                         test::shared_path("models/stories260K/stories260K.bin") + " --tokenizer " +
                         test::shared_path("models/stories260K/tok512.bin") + " -o /dev/full");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(
      r.err,
      "error: '/dev/full' is not a regular file (character device); refusing to replace it\n");
  EXPECT_TRUE(is_char_device("/dev/full"));
}

// A header-only GGUF whose general.alignment is 2^31: writing it back would pad 2 GiB.
TEST(FileCliTest, QuantizeRefusesAHugeAlignment) {
  std::vector<uint8_t> b;
  auto put = [&](auto x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof x);
  };
  put(uint32_t{0x46554747});  // "GGUF"
  put(uint32_t{3});
  put(uint64_t{0});  // tensors
  put(uint64_t{1});  // metadata
  const std::string key = "general.alignment";
  put(uint64_t{key.size()});
  b.insert(b.end(), key.begin(), key.end());
  put(uint32_t{4});  // u32
  put(uint32_t{1} << 31);
  const std::string in = temp_path("align.gguf");
  std::ofstream(in, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  const std::string out = temp_path("align_q8.gguf");
  const auto r = run_cli("quantize " + in + " " + out + " --type q8_0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: " + in +
                       ": offset 53: general.alignment 2147483648 is larger than 1048576, the "
                       "largest alignment accepted\n");
  EXPECT_FALSE(fs::exists(out));
}

std::string chat_cmd(const std::string& session, const std::string& rest = "") {
  return kTimeout + SLLM_CLI_PATH + std::string(" chat -m ") + kModel +
         " --max-reply 4 -t 1 --session " + session + rest;
}

TEST(FileCliTest, FifoSessionPathIsRefusedWithoutBlocking) {
  const std::string fifo = make_fifo("chat.fifo");
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_cli("chat -m " + kModel + " --max-reply 4 --session " + fifo + " < /dev/null");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: --session: '" + fifo +
                       "' is not a regular file (FIFO); refusing to replace it\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_TRUE(is_fifo(fifo));
  EXPECT_FALSE(fs::exists(fifo + ".lock"));
}

TEST(FileCliTest, UnusableSessionPathsAreClearErrors) {
  const auto empty = run_cli("chat -m " + kModel + " --session '' < /dev/null");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_EQ(empty.err, "error: --session needs a file path, got an empty string\n");

  const std::string long_name = temp_path(std::string(300, 's'));
  const auto too_long = run_cli("chat -m " + kModel + " --session " + long_name + " < /dev/null");
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_EQ(too_long.err, "error: --session: cannot use '" + long_name + "': File name too long\n");

  const std::string a = temp_path("loop_a"), b = temp_path("loop_b");
  ::unlink(a.c_str());
  ::unlink(b.c_str());
  ASSERT_EQ(::symlink(b.c_str(), a.c_str()), 0);
  ASSERT_EQ(::symlink(a.c_str(), b.c_str()), 0);
  const auto loop = run_cli("chat -m " + kModel + " --session " + a + " < /dev/null");
  EXPECT_EQ(loop.exit_code, 1);
  EXPECT_EQ(loop.err,
            "error: --session: cannot use '" + a + "': Too many levels of symbolic links\n");

  const auto dev = run_cli("chat -m " + kModel + " --session /dev/full < /dev/null");
  EXPECT_EQ(dev.exit_code, 1);
  EXPECT_EQ(dev.err,
            "error: --session: '/dev/full' is not a regular file (character device); refusing to "
            "replace it\n");
  EXPECT_TRUE(is_char_device("/dev/full"));

  const std::string dir = temp_path("session_dir");
  fs::create_directories(dir);
  const auto is_dir = run_cli("chat -m " + kModel + " --session " + dir + " < /dev/null");
  EXPECT_EQ(is_dir.exit_code, 1);
  EXPECT_EQ(is_dir.err, "error: --session: '" + dir +
                            "' is not a regular file (directory); refusing to replace it\n");

  const std::string missing = temp_path("no_such_dir/x.session");
  const auto no_dir = run_cli("chat -m " + kModel + " --session " + missing + " < /dev/null");
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_EQ(no_dir.err, "error: --session: cannot write '" + missing + "': its directory '" +
                            temp_path("no_such_dir") + "': No such file or directory\n");
}

// The session directory cannot be written: reported at the start, before any reply.
TEST(FileCliTest, UnwritableSessionDirectoryIsReportedBeforeTheFirstReply) {
  const std::string dir = temp_path("ro_dir");
  fs::create_directories(dir);
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod(dir.c_str(), 0555), 0);
  } else if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_RDONLY, "size=64k") != 0) {
    GTEST_SKIP() << "running as root and cannot mount a read-only tmpfs (" << std::strerror(errno)
                 << ")";
  }
  const std::string session = dir + "/chat.session";
  const auto r = run_cli("chat -m " + kModel + " --max-reply 4 --session " + session + " < " +
                         test::shared_path("data/chat/mt_bench_questions.jsonl"));
  if (::geteuid() == 0) {
    EXPECT_EQ(::umount(dir.c_str()), 0);
  }
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "") << "a reply was given before the error";
  EXPECT_EQ(r.err.rfind("error: --session: cannot write '" + session +
                            "': cannot create files in '" + dir + "': ",
                        0),
            0u)
      << r.err;
}

// A file of chat turns for stdin.
std::string turn_file(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path) << text;
  return path;
}

// The session's file system fills up: the save after the reply fails with a clear error and the
// file saved before is left as it was.
TEST(FileCliTest, FullFileSystemKeepsTheSavedSession) {
  const std::string dir = temp_path("full_fs");
  fs::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno) << ")";
  }
  const std::string session = dir + "/chat.session";
  const auto first = run_cli("chat -m " + kModel + " --window 16 --max-reply 4 -t 1 --session " +
                             session + " < " + turn_file("once.txt", "Once upon a time\n"));
  EXPECT_EQ(first.exit_code, 0) << first.err;
  const std::string saved = test::slurp(session);
  EXPECT_GT(saved.size(), 1000u);
  {
    // Fill what is left.
    std::ofstream filler(dir + "/filler", std::ios::binary);
    const std::string block(4096, 'f');
    while (filler.write(block.data(), static_cast<std::streamsize>(block.size()))) {
    }
  }
  // Two pages free again: room for the lock file, not for the session.
  fs::resize_file(dir + "/filler", fs::file_size(dir + "/filler") - 8192);
  const auto second = run_cli("chat -m " + kModel + " --max-reply 4 -t 1 --session " + session +
                              " < " + turn_file("cat.txt", "The cat sat\n"));
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("error: cannot write '" + session + "': No space left on device"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(test::slurp(session), saved);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"chat.session", "filler"}));
  EXPECT_EQ(::umount(dir.c_str()), 0);
}

// While one chat holds a session file, a second refuses at once; the first saves a whole file.
TEST(FileCliTest, SecondChatOnOneSessionFileRefuses) {
  const std::string session = temp_path("shared.session");
  fs::remove(session);
  const std::string out = temp_path("first.out"), err = temp_path("first.err");
  // The first chat waits for its turns on a pipe that stays open until pclose.
  FILE* first = ::popen((chat_cmd(session) + " > " + out + " 2> " + err).c_str(), "w");
  ASSERT_NE(first, nullptr);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  // The lock file is created, locked, then given the holder's pid: wait for the pid.
  std::string pid;
  while (pid.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream(session + ".lock") >> pid;
  }
  ASSERT_FALSE(pid.empty()) << "no lock file with a pid at " << session << ".lock";

  const auto second =
      run_cli("chat -m " + kModel + " --max-reply 4 --session " + session + " < /dev/null");
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(second.err, "error: --session: session file '" + session +
                            "' is in use by another streamingllm process (pid " + pid + ")\n");

  std::fputs("Once upon a time\n", first);
  const int status = ::pclose(first);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::slurp(err);
  EXPECT_FALSE(fs::exists(session + ".lock")) << "the lock file is removed at the end";
  // The file the first chat saved is whole: a new chat resumes it.
  const auto third =
      run_cli("chat -m " + kModel + " --max-reply 4 --session " + session + " < /dev/null");
  EXPECT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.err.find("resumed " + session + ": 1 turns"), std::string::npos) << third.err;
  for (const auto& entry : fs::directory_iterator(test::temp_dir())) {
    const std::string name = entry.path().filename().string();
    EXPECT_NE(name.rfind(".shared.session.", 0), 0u) << "temp file left behind: " << name;
  }
}

}  // namespace
}  // namespace sllm
