#include "serving/change_notifier.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace modelreg::detail {

struct ChangeNotifier::State {
  int inotify = -1;
  int wake = -1;  // eventfd: tells the thread to stop
  std::thread thread;

  struct Watcher {
    std::string directory;
    std::string name;  // the database's file name in `directory`
    std::function<void()> on_change;
  };
  // Guards everything below; held by the thread while it calls callbacks, so that a subscription
  // that ends waits for a callback in progress.
  std::mutex mutex;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, Watcher> watchers;
  std::map<std::string, int> descriptors;        // directory -> inotify watch descriptor
  std::map<int, std::string> directories;        // and back
  std::map<std::string, int> users;              // directory -> subscriptions watching it
};

ChangeNotifier& ChangeNotifier::instance() {
  static ChangeNotifier notifier;
  return notifier;
}

ChangeNotifier::ChangeNotifier() : s_(std::make_unique<State>()) {
  s_->inotify = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  s_->wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s_->inotify >= 0 && s_->wake >= 0) s_->thread = std::thread([this] { run(); });
}

ChangeNotifier::~ChangeNotifier() {
  if (s_->thread.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(s_->wake, &one, sizeof one);
    s_->thread.join();
  }
  if (s_->inotify >= 0) ::close(s_->inotify);
  if (s_->wake >= 0) ::close(s_->wake);
}

ChangeNotifier::Subscription::~Subscription() {
  if (owner_ != nullptr) owner_->unsubscribe(id_);
}

std::unique_ptr<ChangeNotifier::Subscription> ChangeNotifier::subscribe(const std::filesystem::path& database,
                                                                        std::function<void()> on_change) {
  if (!s_->thread.joinable()) return std::make_unique<Subscription>();
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(database, ec);
  if (ec) return std::make_unique<Subscription>();
  const std::string directory = absolute.parent_path().string();
  std::lock_guard lock(s_->mutex);
  if (!s_->descriptors.contains(directory)) {
    const int wd = ::inotify_add_watch(s_->inotify, directory.c_str(),
                                       IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM);
    if (wd < 0) return std::make_unique<Subscription>();
    s_->descriptors[directory] = wd;
    s_->directories[wd] = directory;
  }
  ++s_->users[directory];
  const std::uint64_t id = s_->next_id++;
  s_->watchers[id] = State::Watcher{directory, absolute.filename().string(), std::move(on_change)};
  return std::make_unique<Subscription>(this, id);
}

void ChangeNotifier::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(s_->mutex);
  const auto it = s_->watchers.find(id);
  if (it == s_->watchers.end()) return;
  const std::string directory = it->second.directory;
  s_->watchers.erase(it);
  if (--s_->users[directory] == 0) {
    s_->users.erase(directory);
    const int wd = s_->descriptors[directory];
    ::inotify_rm_watch(s_->inotify, wd);
    s_->descriptors.erase(directory);
    s_->directories.erase(wd);
  }
}

void ChangeNotifier::run() {
  alignas(struct inotify_event) char buffer[16 * 1024];
  pollfd fds[2] = {{s_->inotify, POLLIN, 0}, {s_->wake, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const ssize_t n = ::read(s_->inotify, buffer, sizeof buffer);
    if (n <= 0) continue;
    // The directories and file names that changed in this batch; each watcher is called once.
    std::vector<std::pair<int, std::string>> changed;
    bool overflow = false;
    for (ssize_t off = 0; off < n;) {
      const auto* e = reinterpret_cast<const struct inotify_event*>(buffer + off);
      if ((e->mask & IN_Q_OVERFLOW) != 0) overflow = true;
      if (e->len > 0) changed.emplace_back(e->wd, std::string(e->name));
      off += static_cast<ssize_t>(sizeof(struct inotify_event) + e->len);
    }
    std::lock_guard lock(s_->mutex);
    for (auto& [id, w] : s_->watchers) {
      bool hit = overflow;  // events were lost: wake everyone
      for (const auto& [wd, name] : changed) {
        if (hit) break;
        const auto dir = s_->directories.find(wd);
        if (dir == s_->directories.end() || dir->second != w.directory) continue;
        hit = name == w.name || name == w.name + "-wal" || name == w.name + "-shm" || name == w.name + "-journal";
      }
      if (hit) w.on_change();
    }
  }
}

}  // namespace modelreg::detail
