#include "store/byte_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "modelreg/error.hpp"

namespace modelreg::detail {
namespace {

[[noreturn]] void throw_errno(std::string_view what, const std::filesystem::path& path) {
  int err = errno;
  Errc code = (err == ENOENT) ? Errc::not_found : Errc::io_error;
  throw Error(code, fmt::format("{} '{}': {}", what, path.string(), std::strerror(err)));
}

}  // namespace

std::size_t MemorySource::read(char* buffer, std::size_t size) {
  std::size_t n = std::min(size, bytes_.size() - offset_);
  if (n != 0) std::memcpy(buffer, bytes_.data() + offset_, n);
  offset_ += n;
  return n;
}

std::optional<std::string_view> MemorySource::borrow(std::size_t size) {
  const std::size_t n = std::min(size, bytes_.size() - offset_);
  std::string_view out = bytes_.substr(offset_, n);
  offset_ += n;
  return out;
}

std::size_t StreamSource::read(char* buffer, std::size_t size) {
  std::size_t total = 0;
  while (total < size && in_) {
    in_.read(buffer + total, static_cast<std::streamsize>(size - total));
    total += static_cast<std::size_t>(in_.gcount());
  }
  if (in_.bad()) throw Error(Errc::io_error, "reading the model's input stream failed");
  return total;
}

FileSource::FileSource(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_errno("cannot open model file", path_);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    errno = err;
    throw_errno("cannot stat model file", path_);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw Error(Errc::invalid_argument, fmt::format("'{}' is a directory, not a model file", path_.string()));
  }
  regular_ = S_ISREG(st.st_mode);
  opened_size_ = static_cast<std::uint64_t>(st.st_size);
  opened_mtime_ = st.st_mtim;
  // /proc files are regular but report size 0: only a regular file with a size has a known one.
  if (regular_ && st.st_size > 0) size_ = opened_size_;
  if (regular_) ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

void FileSource::check_unchanged() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_errno("cannot stat model file", path_);
  const bool same = static_cast<std::uint64_t>(st.st_size) == opened_size_ &&
                    st.st_mtim.tv_sec == opened_mtime_.tv_sec && st.st_mtim.tv_nsec == opened_mtime_.tv_nsec;
  if (!same || (size_ && read_ != *size_)) {
    throw Error(Errc::io_error, fmt::format("'{}' changed while it was read (size {} when opened, {} now; {} bytes "
                                            "read); register it again once nothing is writing it",
                                            path_.string(), opened_size_, st.st_size, read_));
  }
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t FileSource::read(char* buffer, std::size_t size) {
  std::size_t total = 0;
  while (total < size) {
    ssize_t n = ::read(fd_, buffer + total, size - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read model file", path_);
    }
    if (n == 0) break;
    total += static_cast<std::size_t>(n);
  }
  read_ += total;
  // At the end (the bytes a regular file had, or its end of file): it must not have changed since.
  const bool at_end = total < size || (size_ && read_ >= *size_);
  if (regular_ && size_ && at_end) check_unchanged();
  return total;
}

}  // namespace modelreg::detail
