// The tests that start other processes — the modelreg command, a `modelreg serve` — start them
// here: run a command to completion under a deadline, or keep a server running for a test case.
//
// Commands start with posix_spawn (vfork-like: no copy of the page tables), not fork: the callers
// have client threads hammering a server, and a fork of a large multi-threaded process (under ASan
// especially) stalls them. run_command asserts nothing (it also runs inside forked worker
// processes where doctest must not be used); ServerProcess is for the test's own process and
// REQUIREs that the server starts.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace test {

// The modelreg binary under test: $MODELREG_BIN (tests/cli/meson.build sets it). REQUIREs it is set.
const char* modelreg_binary();

struct Command {
  std::vector<std::string> args;  // args[0] is the program's path
  // Changes to this process's environment for the child: a value sets the variable, nullopt unsets it.
  std::map<std::string, std::optional<std::string>> env{};
  std::filesystem::path cwd{};  // empty: this process's working directory
  // Standard output: captured into CommandResult::out, or discarded (/dev/null).
  bool capture_out = false;
  // Standard error: captured into CommandResult::err; else appended to err_file when one is
  // given; else inherited (it shows in the test's log).
  bool capture_err = false;
  std::filesystem::path err_file{};
  // A command still running after this long is killed with SIGKILL (CommandResult::timed_out).
  std::chrono::milliseconds deadline{std::chrono::seconds(60)};
};

struct CommandResult {
  int status = -1;  // the exit status; -1 when a signal ended it or it could not start
  bool timed_out = false;
  std::string start_error{};  // why it could not start (empty: it started)
  std::string out{};
  std::string err{};
};

// Runs `command` to completion (or to its deadline). Never throws for the child's sake; a command
// that cannot start has status -1 and says why in start_error.
CommandResult run_command(const Command& command);

// Waits for the child `pid` until `deadline`; returns its exit status (-1 when a signal ended it),
// or -2 when it was still running then (it is killed with SIGKILL and reaped). For children the
// test forked itself.
int wait_or_kill(pid_t pid, std::chrono::steady_clock::time_point deadline);

// `modelreg ARGS...` with stdout discarded and stderr inherited, under a 60 s deadline; returns
// its exit status. A command that overruns the deadline or cannot start FAILs the test case.
int modelreg(const std::vector<std::string>& args);

// A `modelreg --db DB serve MODEL --port 0 --poll-ms 20 EXTRA...` child process on 127.0.0.1; its
// stderr goes to `log`. The constructor returns once the server has printed the first line,
// "listening on http://127.0.0.1:PORT ...". Stopped with SIGTERM when the object dies.
class ServerProcess {
 public:
  ServerProcess(const std::filesystem::path& db, const std::string& model, const std::filesystem::path& log,
                const std::vector<std::string>& extra = {});
  // Any server command, `modelreg ARGS...` (`--db DB ui --port 0`), whose first line on stdout
  // names http://127.0.0.1:PORT.
  ServerProcess(const std::vector<std::string>& args, const std::filesystem::path& log);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  // Sends `signal` and waits for the exit; returns the exit status (-1 when a signal ended it).
  int stop(int signal = SIGTERM);

 private:
  void start(std::vector<std::string> args, const std::filesystem::path& log);

  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace test
