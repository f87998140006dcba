// write_file_atomic, read_file, MappedFile and FileLock against what is not a plain file: devices,
// FIFOs, directories, symbolic links (and loops), names too long, a full file system, and
// several writers at once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/file_lock.h"
#include "util/mapped_file.h"

namespace sllm {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The names in `dir`, sorted (temp files left behind would show up here).
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class FileWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "sllm_file_write_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

TEST_F(FileWriteTest, ReplacesARegularFileAndLeavesNoTempFile) {
  const std::string p = path("out.bin");
  ASSERT_TRUE(write_file_atomic(p, bytes_of("first")).ok());
  ASSERT_EQ(::chmod(p.c_str(), 0600), 0);
  const Status s = write_file_atomic(p, bytes_of("second"));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(slurp(p), "second");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the replaced file keeps its mode";
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"out.bin"});
}

// Files in /proc report a size of 0; read_file reads what is there, not what stat says.
TEST_F(FileWriteTest, ReadFileReadsPastAZeroSize) {
  const Result<std::string> text = read_file("/proc/self/status");
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_NE(text->find("Pid:"), std::string::npos);
  const std::string p = path("big.txt");
  const std::string big(300 * 1024 + 7, 'z');
  ASSERT_TRUE(write_file_atomic(p, bytes_of(big)).ok());
  const Result<std::string> read = read_file(p);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, big);
}

TEST_F(FileWriteTest, DevFullIsRefusedAndStaysADevice) {
  const Status s = write_file_atomic("/dev/full", bytes_of("x"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "'/dev/full' is not a regular file (character device); refusing to replace it");
  struct stat st {};
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  const Status check = check_output_path("/dev/full");
  ASSERT_FALSE(check.ok());
  EXPECT_EQ(check.error().message(), s.error().message());
}

TEST_F(FileWriteTest, FifoIsRefusedWithoutBlocking) {
  const std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // Each call runs on another thread so that a regression blocks the thread, not the test.
  auto write =
      std::async(std::launch::async, [&] { return write_file_atomic(fifo, bytes_of("x")); });
  ASSERT_EQ(write.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Status s = write.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "'" + fifo + "' is not a regular file (FIFO); refusing to replace it");

  // read_file takes streams (`-f /dev/stdin`, `-f <(cmd)`): a FIFO that no process writes to
  // reads as empty at once, never blocking.
  auto read = std::async(std::launch::async, [&] { return read_file(fifo); });
  ASSERT_EQ(read.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Result<std::string> text = read.get();
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(*text, "");

  // Models and session files are mapped: only regular files.
  auto map = std::async(std::launch::async, [&] { return MappedFile::open(fifo); });
  ASSERT_EQ(map.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Result<MappedFile> mapped = map.get();
  ASSERT_FALSE(mapped.ok());
  EXPECT_EQ(mapped.error().message(),
            "'" + fifo + "' is not a regular file (FIFO); expected a regular file");

  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"fifo"});
}

TEST_F(FileWriteTest, StreamsAreReadToTheirEndWithinALimit) {
  const std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // The bytes wait in the pipe: a reader end held open here keeps it alive after the writer
  // closes, and read_file then reads them and sees end-of-file (no writer left).
  const int keep = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(keep, 0);
  const int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(writer, 0);
  const std::string prompt = "a prompt from a pipe\n";
  ASSERT_EQ(::write(writer, prompt.data(), prompt.size()), static_cast<ssize_t>(prompt.size()));
  ::close(writer);
  auto read = std::async(std::launch::async, [&] { return read_file(fifo); });
  ASSERT_EQ(read.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const Result<std::string> text = read.get();
  ::close(keep);
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(*text, prompt);

  // /dev/zero never ends: it is cut off at kMaxStreamBytes with an error, not read forever.
  const Result<std::string> zeros = read_file("/dev/zero");
  ASSERT_FALSE(zeros.ok());
  EXPECT_EQ(zeros.error().message(), "'/dev/zero' gave more than " +
                                         std::to_string(kMaxStreamBytes) +
                                         " bytes; a stream is read up to that many");
}

TEST_F(FileWriteTest, DirectoryIsRefusedAndUntouched) {
  const std::string sub = path("sub");
  ASSERT_TRUE(fs::create_directory(sub));
  std::ofstream(sub + "/inside") << "kept";
  const Status s = write_file_atomic(sub, bytes_of("x"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "'" + sub + "' is not a regular file (directory); refusing to replace it");
  EXPECT_EQ(slurp(sub + "/inside"), "kept");
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"sub"});

  const Status slash = write_file_atomic(dir_ + "/", bytes_of("x"));
  ASSERT_FALSE(slash.ok());
  const Result<std::string> read = read_file(sub);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().message(),
            "'" + sub + "' is not a regular file (directory); expected a regular file");
}

TEST_F(FileWriteTest, SymlinkIsFollowedAndStaysALink) {
  ASSERT_TRUE(fs::create_directory(path("real")));
  const std::string target = path("real/data.bin");
  std::ofstream(target) << "old";
  const std::string link = path("link.bin");
  ASSERT_EQ(::symlink("real/data.bin", link.c_str()), 0);  // relative, as users make them
  const Status s = write_file_atomic(link, bytes_of("new"));
  ASSERT_TRUE(s.ok()) << s.error().message();
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced by a file";
  EXPECT_EQ(slurp(target), "new");
  EXPECT_EQ(names_in(path("real")), std::vector<std::string>{"data.bin"});

  // A dangling link creates its target.
  const std::string dangling = path("dangling.bin");
  ASSERT_EQ(::symlink("real/created.bin", dangling.c_str()), 0);
  ASSERT_TRUE(write_file_atomic(dangling, bytes_of("made")).ok());
  EXPECT_EQ(slurp(path("real/created.bin")), "made");
  ASSERT_EQ(::lstat(dangling.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));

  // A link to a device is refused like the device.
  const std::string to_full = path("full");
  ASSERT_EQ(::symlink("/dev/full", to_full.c_str()), 0);
  const Status dev = write_file_atomic(to_full, bytes_of("x"));
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.error().message(),
            "'" + to_full + "' is not a regular file (character device); refusing to replace it");
}

TEST_F(FileWriteTest, LoopsAndLongNamesAreErrorsNotExceptions) {
  const std::string a = path("a"), b = path("b");
  ASSERT_EQ(::symlink(b.c_str(), a.c_str()), 0);
  ASSERT_EQ(::symlink(a.c_str(), b.c_str()), 0);
  const Status loop = write_file_atomic(a, bytes_of("x"));
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.error().message(), "cannot use '" + a + "': Too many levels of symbolic links");
  EXPECT_FALSE(read_file(a).ok());
  EXPECT_FALSE(file_kind(a).ok());
  const Status through = write_file_atomic(a + "/x", bytes_of("x"));
  ASSERT_FALSE(through.ok());

  const std::string long_name = path(std::string(300, 'n'));
  const Status too_long = write_file_atomic(long_name, bytes_of("x"));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().message(), "cannot use '" + long_name + "': File name too long");
  const Result<std::string> read = read_file(long_name);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().message(), "cannot open '" + long_name + "': File name too long");
  const Result<FileKind> kind = file_kind(long_name);
  ASSERT_FALSE(kind.ok());

  // A name at the limit (255) still gets a temp file beside it.
  const std::string longest = path(std::string(255, 'm'));
  const Status at_limit = write_file_atomic(longest, bytes_of("fits"));
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().message();
  EXPECT_EQ(slurp(longest), "fits");

  const Status empty = write_file_atomic("", bytes_of("x"));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().message(), "an empty string is not a file name");
  const Status no_dir = write_file_atomic(path("missing/x"), bytes_of("x"));
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.error().message(), "cannot write '" + path("missing/x") + "': its directory '" +
                                          path("missing") + "': No such file or directory");
}

// ENOSPC on a 64 KiB tmpfs: the write fails with a message and the file there stays intact.
TEST_F(FileWriteTest, FullFileSystemLeavesTheOriginalIntact) {
  const std::string mnt = path("small");
  ASSERT_TRUE(fs::create_directory(mnt));
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno)
                 << "); the ENOSPC path is not exercised";
  }
  const std::string p = mnt + "/model.gguf";
  const std::string original(16 * 1024, 'o');
  ASSERT_TRUE(write_file_atomic(p, bytes_of(original)).ok());
  const std::vector<uint8_t> big(200 * 1024, 'b');
  const Status s = write_file_atomic(p, big);
  EXPECT_FALSE(s.ok());
  if (!s.ok()) {
    EXPECT_EQ(s.error().message(), "cannot write '" + p + "': No space left on device");
  }
  EXPECT_EQ(slurp(p), original);
  EXPECT_EQ(names_in(mnt), std::vector<std::string>{"model.gguf"}) << "temp file left behind";
  ASSERT_EQ(::umount(mnt.c_str()), 0);
}

// A read-only directory is reported before anything is written (as root too: EROFS).
TEST_F(FileWriteTest, UnwritableDirectoryIsReported) {
  const std::string mnt = path("ro");
  ASSERT_TRUE(fs::create_directory(mnt));
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod(mnt.c_str(), 0555), 0);
  } else if (::mount("tmpfs", mnt.c_str(), "tmpfs", MS_RDONLY, "size=64k") != 0) {
    GTEST_SKIP() << "running as root and cannot mount a read-only tmpfs (" << std::strerror(errno)
                 << ")";
  }
  const Status s = check_output_path(mnt + "/x.session");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot write '" + mnt +
                                     "/x.session': cannot create files in '" + mnt + "': "),
            std::string::npos)
      << s.error().message();
  EXPECT_FALSE(write_file_atomic(mnt + "/x.session", bytes_of("x")).ok());
  if (::geteuid() == 0) {
    ASSERT_EQ(::umount(mnt.c_str()), 0);
  }
}

// Writers at once on one path never share a temp file: every write succeeds and the file holds
// one of them whole.
TEST_F(FileWriteTest, ConcurrentWritersNeverTearTheFile) {
  const std::string p = path("shared.bin");
  std::vector<std::string> contents;
  for (char c = 'a'; c < 'a' + 8; ++c) contents.push_back(std::string(100000, c));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (const std::string& text : contents) {
    threads.emplace_back([&, text] {
      for (int i = 0; i < 10; ++i) {
        if (!write_file_atomic(p, bytes_of(text)).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string final_text = slurp(p);
  EXPECT_NE(std::find(contents.begin(), contents.end(), final_text), contents.end());
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"shared.bin"});
}

TEST_F(FileWriteTest, SecondLockIsRefusedWithThePid) {
  const std::string lock_path = path("s.session.lock");
  Result<FileLock> first = FileLock::acquire(lock_path, "session file 's.session'");
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(slurp(lock_path), std::to_string(::getpid()) + "\n");
  // Another process (a fork, so that flock sees another open file description too).
  const pid_t child = ::fork();
  if (child == 0) {
    Result<FileLock> second = FileLock::acquire(lock_path, "session file 's.session'");
    const bool refused_as_expected =
        !second.ok() && second.error().message() ==
                            "session file 's.session' is in use by another streamingllm process "
                            "(pid " +
                                std::to_string(::getppid()) + ")";
    ::_exit(refused_as_expected ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // In this process too.
  Result<FileLock> again = FileLock::acquire(lock_path, "session file 's.session'");
  ASSERT_FALSE(again.ok());
  *first = FileLock();  // released: the lock file is gone and the lock free again
  EXPECT_FALSE(fs::exists(lock_path));
  Result<FileLock> after = FileLock::acquire(lock_path, "session file 's.session'");
  EXPECT_TRUE(after.ok());
}

}  // namespace
}  // namespace sllm
