#include "store/output_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>  // rename, renameat2
#include <cstring>
#include <random>
#include <string>

#include <fmt/format.h>

#include "modelreg/error.hpp"

namespace modelreg::detail {

std::filesystem::path new_partial_file(const std::filesystem::path& target) {
  std::random_device entropy;
  for (int attempt = 0;; ++attempt) {
    const std::filesystem::path partial =
        fmt::format("{}.modelreg-partial-{:08x}{:08x}", target.string(), entropy(), entropy());
    const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::close(fd);
      return partial;
    }
    const int err = errno;
    if (err == EEXIST && attempt < 100) continue;
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::absolute(target, ec).parent_path();
    if (err == ENOENT && !std::filesystem::exists(dir, ec)) {
      throw Error(Errc::io_error, fmt::format("cannot write '{}': its directory '{}' does not exist", target.string(),
                                              dir.string()));
    }
    throw Error(Errc::io_error, fmt::format("cannot write '{}': a file cannot be created beside it in '{}' ({})",
                                            target.string(), dir.string(), std::strerror(err)));
  }
}

void publish_file(const std::filesystem::path& partial, const std::filesystem::path& target, bool replace) {
  int err = 0;
  if (replace) {
    if (std::rename(partial.c_str(), target.c_str()) == 0) return;
    err = errno;
  } else {
    if (::renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) return;
    err = errno;
    if (err == EINVAL || err == ENOSYS) {
      // A file system without RENAME_NOREPLACE: link(2) refuses an existing name too.
      if (::link(partial.c_str(), target.c_str()) == 0) {
        ::unlink(partial.c_str());
        return;
      }
      err = errno;
    }
  }
  if (err == EEXIST) {
    throw Error(Errc::already_exists,
                fmt::format("'{}' was created by someone else while this command wrote it (another command writing "
                            "the same path?) and was left as it is; remove it or choose another path",
                            target.string()));
  }
  throw Error(Errc::io_error,
              fmt::format("cannot move the finished file into place as '{}': {}", target.string(), std::strerror(err)));
}

}  // namespace modelreg::detail
