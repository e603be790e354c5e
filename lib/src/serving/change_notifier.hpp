// Wakes watchers when a database may have changed, instead of leaving them to the next poll: one
// inotify instance and one thread for the whole process, watching the directories of the
// databases followed (a commit writes the -wal file; a checkpoint or a restore with `mv` touches
// the database file). A wake-up only makes a watcher poll data_version at once; polling stays the
// fallback (file systems without inotify — NFS, some FUSE mounts — and any event lost when the
// kernel's queue overflows).
//
// Thread-safety: subscribe and the Subscription's destruction may happen on any thread; callbacks
// run on the notifier's thread, one at a time, and must be quick (set a flag, notify a condition).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>

namespace modelreg::detail {

class ChangeNotifier {
 public:
  // Ends the subscription when destroyed: its callback is not running then, nor called after.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(ChangeNotifier* owner, std::uint64_t id) : owner_(owner), id_(id) {}
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    // Whether changes are notified (false: inotify is unavailable here; poll).
    bool active() const noexcept { return owner_ != nullptr; }

   private:
    ChangeNotifier* owner_ = nullptr;
    std::uint64_t id_ = 0;
  };

  // The process's notifier (created on first use, never destroyed before exit's static cleanup).
  static ChangeNotifier& instance();

  // Calls `on_change` whenever the file `database` or its -wal, -shm or -journal file is
  // modified, created, moved into place or deleted. An inactive Subscription when the directory
  // cannot be watched.
  std::unique_ptr<Subscription> subscribe(const std::filesystem::path& database, std::function<void()> on_change);

  ~ChangeNotifier();
  ChangeNotifier(const ChangeNotifier&) = delete;
  ChangeNotifier& operator=(const ChangeNotifier&) = delete;

 private:
  ChangeNotifier();
  void unsubscribe(std::uint64_t id);
  void run();

  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace modelreg::detail
