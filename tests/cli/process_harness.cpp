#include "process_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace test {
namespace {

using Clock = std::chrono::steady_clock;

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
};

std::optional<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// A descriptor that becomes readable when `pid` exits, so waiting for it needs no polling loop.
// Empty on kernels older than 5.3; the waits below then check every 2 ms instead.
Fd exit_notifier(pid_t pid) { return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

int milliseconds_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

int exit_code(int wait_status) { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }

// Waits for `pid` until `deadline`; the wait status, or nullopt if it is still running then.
std::optional<int> wait_until(pid_t pid, Clock::time_point deadline) {
  const Fd exited = exit_notifier(pid);
  for (;;) {
    int status = 0;
    const pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0 && errno != EINTR) return -1;
    const int left = milliseconds_until(deadline);
    if (left == 0) return std::nullopt;
    if (exited) {
      pollfd p{exited.get(), POLLIN, 0};
      (void)::poll(&p, 1, left);
    } else {
      ::usleep(2000);
    }
  }
}

// Kills `pid` with SIGKILL and reaps it.
void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// The child's environment: this process's, with `changes` applied.
std::vector<std::string> child_environment(const std::map<std::string, std::optional<std::string>>& changes) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (!changes.contains(std::string(entry.substr(0, entry.find('='))))) out.emplace_back(entry);
  }
  for (const auto& [name, value] : changes) {
    if (value) out.push_back(name + "=" + *value);
  }
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// posix_spawn with the file actions released however it ends.
class SpawnActions {
 public:
  SpawnActions() { ::posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { ::posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

const char* modelreg_binary() {
  // Absolute, since commands may run in another working directory (Command::cwd).
  static const std::string bin = [] {
    const char* env = std::getenv("MODELREG_BIN");
    return env ? std::filesystem::absolute(env).string() : std::string();
  }();
  REQUIRE_MESSAGE(!bin.empty(), "MODELREG_BIN is not set (tests/cli/meson.build sets it)");
  return bin.c_str();
}

CommandResult run_command(const Command& command) {
  CommandResult result;
  if (command.args.empty()) {
    result.start_error = "no program given";
    return result;
  }
  std::vector<std::string> args = command.args;
  std::vector<std::string> env = child_environment(command.env);
  std::vector<char*> argv = c_strings(args), envp = c_strings(env);

  std::optional<Pipe> out, err;
  if (command.capture_out && !(out = make_pipe())) {
    result.start_error = fmt::format("pipe: {}", std::strerror(errno));
    return result;
  }
  if (command.capture_err && !(err = make_pipe())) {
    result.start_error = fmt::format("pipe: {}", std::strerror(errno));
    return result;
  }
  SpawnActions actions;
  if (out) ::posix_spawn_file_actions_adddup2(actions.get(), out->write.get(), 1);
  else ::posix_spawn_file_actions_addopen(actions.get(), 1, "/dev/null", O_WRONLY, 0);
  if (err) ::posix_spawn_file_actions_adddup2(actions.get(), err->write.get(), 2);
  else if (!command.err_file.empty()) {
    ::posix_spawn_file_actions_addopen(actions.get(), 2, command.err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  if (!command.cwd.empty()) ::posix_spawn_file_actions_addchdir_np(actions.get(), command.cwd.c_str());

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], actions.get(), nullptr, argv.data(), envp.data());
  if (rc != 0) {
    result.start_error = fmt::format("cannot start {}: {}", args[0], std::strerror(rc));
    return result;
  }
  if (out) out->write.reset();
  if (err) err->write.reset();

  // Read both pipes as the child writes (a full pipe would block it), until both are closed.
  const auto deadline = Clock::now() + command.deadline;
  Fd* readers[2] = {out ? &out->read : nullptr, err ? &err->read : nullptr};
  std::string* sinks[2] = {&result.out, &result.err};
  auto open_readers = [&] { return (readers[0] && *readers[0]) || (readers[1] && *readers[1]); };
  while (open_readers() && !result.timed_out) {
    std::vector<pollfd> fds;
    std::vector<int> which;
    for (int i = 0; i < 2; ++i) {
      if (readers[i] && *readers[i]) {
        fds.push_back({readers[i]->get(), POLLIN, 0});
        which.push_back(i);
      }
    }
    const int left = milliseconds_until(deadline);
    if (left == 0) {
      result.timed_out = true;
      break;
    }
    if (::poll(fds.data(), fds.size(), left) < 0 && errno != EINTR) break;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      char buffer[65536];
      const ssize_t n = ::read(fds[k].fd, buffer, sizeof buffer);
      if (n > 0) sinks[which[k]]->append(buffer, static_cast<std::size_t>(n));
      else if (n == 0 || errno != EINTR) readers[which[k]]->reset();
    }
  }
  const std::optional<int> status = result.timed_out ? std::nullopt : wait_until(pid, deadline);
  if (!status) {
    result.timed_out = true;
    kill_and_reap(pid);
    return result;
  }
  result.status = exit_code(*status);
  return result;
}

int wait_or_kill(pid_t pid, Clock::time_point deadline) {
  const std::optional<int> status = wait_until(pid, deadline);
  if (!status) {
    kill_and_reap(pid);
    return -2;
  }
  return exit_code(*status);
}

int modelreg(const std::vector<std::string>& args) {
  Command command{.args = {modelreg_binary()}};
  command.args.insert(command.args.end(), args.begin(), args.end());
  const CommandResult r = run_command(command);
  const std::string line = fmt::format("modelreg {}", fmt::join(args, " "));
  if (!r.start_error.empty()) FAIL(line, ": ", r.start_error);
  // A command that should finish but hangs (a server that should have refused to start) fails
  // the test after a deadline instead of hanging it.
  if (r.timed_out) FAIL(line, " did not finish within ", command.deadline.count() / 1000, " s");
  return r.status;
}

ServerProcess::ServerProcess(const std::filesystem::path& db, const std::string& model,
                             const std::filesystem::path& log, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {modelreg_binary(), "--db", db.string(), "serve", model, "--port", "0", "--poll-ms",
                                   "20"};
  args.insert(args.end(), extra.begin(), extra.end());
  start(args, log);
}

ServerProcess::ServerProcess(const std::vector<std::string>& args, const std::filesystem::path& log) {
  std::vector<std::string> full = {modelreg_binary()};
  full.insert(full.end(), args.begin(), args.end());
  start(full, log);
}

void ServerProcess::start(std::vector<std::string> args, const std::filesystem::path& log) {
  std::vector<std::string> env = child_environment({});
  std::vector<char*> argv = c_strings(args), envp = c_strings(env);
  std::optional<Pipe> out = make_pipe();
  REQUIRE(out.has_value());
  SpawnActions actions;
  ::posix_spawn_file_actions_adddup2(actions.get(), out->write.get(), 1);
  ::posix_spawn_file_actions_addopen(actions.get(), 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = ::posix_spawn(&pid_, argv[0], actions.get(), nullptr, argv.data(), envp.data());
  REQUIRE_MESSAGE(rc == 0, "cannot start modelreg: ", std::strerror(rc));
  out->write.reset();

  // The first line says where it listens: "listening on http://127.0.0.1:PORT ...".
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  std::string line;
  for (char c = 0; c != '\n';) {
    pollfd p{out->read.get(), POLLIN, 0};
    const int left = milliseconds_until(deadline);
    if (left == 0 || ::poll(&p, 1, left) <= 0 || ::read(out->read.get(), &c, 1) != 1) break;
    if (c != '\n') line += c;
  }
  out->read.reset();
  const auto at = line.find("127.0.0.1:");
  if (at == std::string::npos) {
    kill_and_reap(pid_);  // a constructor that fails runs no destructor
    pid_ = -1;
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    FAIL("modelreg ", fmt::format("{}", fmt::join(args.begin() + 1, args.end(), " ")),
         " did not say where it listens; first line: '", line, "'; its stderr:\n", text.str());
  }
  port_ = std::stoi(line.substr(at + 10));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop();
}

int ServerProcess::stop(int signal) {
  ::kill(pid_, signal);
  // A server that ignores the signal is killed after 60 s: the caller's CHECK on the status fails
  // rather than the test hanging.
  const std::optional<int> status = wait_until(pid_, Clock::now() + std::chrono::seconds(60));
  if (!status) kill_and_reap(pid_);
  pid_ = -1;
  return status ? exit_code(*status) : -1;
}

}  // namespace test
