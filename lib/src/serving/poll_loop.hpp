// The parts every follower of a registry shares (ActiveWatcher for one model, ModelRepository for
// many): the identity of the database file, the read-only options, and the loop that polls on a
// thread of its own — every interval, and at once when the database's files change.
//
// Thread-safety: PollLoop::run runs on one thread; wake() and stop() may be called from any.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>

#include "modelreg/registry.hpp"

namespace modelreg::detail {

// A file's identity: what stays the same while a file is renamed, and changes when another file
// takes its path (a restore with `mv`, a delete and re-create).
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

inline std::optional<FileId> file_id_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// How a follower opens the registry: read-only, with the signing key the versions must carry.
inline Options read_only_options(const std::optional<std::string>& signing_key) {
  Options ro;
  ro.read_only = true;
  ro.signing_key = signing_key;
  return ro;
}

class PollLoop {
 public:
  // Calls `poll` at once, then again every `interval` and whenever wake() is called, until stop().
  // A wake-up comes when a writer writes the -wal file, which can be just before its commit is
  // visible to readers (the writer's fsync of the -wal comes first, then the wal-index in -shm is
  // updated through shared memory, which makes no event), so a woken poll is followed by more close
  // behind: every 1-2 ms for the first 20 ms (an fsync usually ends within them; a poll that finds
  // nothing changed only reads PRAGMA data_version), then at 25, 35 and 60 ms.
  // `on_wakeup` is called (on this thread) for each poll that a wake-up started.
  void run(const std::function<void()>& poll, std::chrono::milliseconds interval, const std::function<void()>& on_wakeup) {
    using ms = std::chrono::milliseconds;
    static constexpr ms kFollowUps[] = {ms(1), ms(2), ms(2), ms(2), ms(2), ms(2), ms(2),
                                        ms(2), ms(2), ms(2), ms(5), ms(10), ms(25)};
    std::size_t follow_ups = 0;  // of kFollowUps still to come
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      poll();
      lock.lock();
      const auto wait =
          follow_ups > 0 ? std::min(interval, kFollowUps[std::size(kFollowUps) - follow_ups]) : interval;
      if (follow_ups > 0) --follow_ups;
      const bool woken = cv_.wait_for(lock, wait, [&] { return stopping_ || changed_; });
      const bool by_change = woken && changed_ && !stopping_;
      changed_ = false;  // a wake() from here on makes the next wait return at once
      if (by_change) {
        follow_ups = std::size(kFollowUps);
        lock.unlock();
        on_wakeup();
        lock.lock();
      }
    }
  }

  void wake() {
    {
      std::lock_guard lock(mutex_);
      changed_ = true;
    }
    cv_.notify_all();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;  // protects stopping_ and changed_
  std::condition_variable cv_;
  bool stopping_ = false;
  bool changed_ = false;  // the database's files changed since the last poll began
};

}  // namespace modelreg::detail
