// Where the bytes of a new version come from: memory, a stream or a file. Each source is used by
// one thread at a time.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <optional>
#include <string_view>

namespace modelreg::detail {

// Where the bytes of a new blob come from. read() fills `buffer` completely unless the source
// ends; it returns the number of bytes read (0 at the end) and throws Error(io_error) on failure.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::size_t read(char* buffer, std::size_t size) = 0;
  virtual std::optional<std::uint64_t> size() const = 0;
  // Sources already in memory hand out their next bytes without a copy (up to `size`; empty at the
  // end). Others return nullopt, and read() is used.
  virtual std::optional<std::string_view> borrow(std::size_t) { return std::nullopt; }
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  std::size_t read(char* buffer, std::size_t size) override;
  std::optional<std::uint64_t> size() const override { return bytes_.size(); }
  std::optional<std::string_view> borrow(std::size_t size) override;

 private:
  std::string_view bytes_;
  std::size_t offset_ = 0;
};

class StreamSource final : public ByteSource {
 public:
  explicit StreamSource(std::istream& in) : in_(in) {}
  std::size_t read(char* buffer, std::size_t size) override;
  std::optional<std::uint64_t> size() const override { return std::nullopt; }

 private:
  std::istream& in_;
};

// Reads a file to its end with POSIX read(2); errors name the file. The size is known (size())
// only for a regular file with a size: a pipe, FIFO, process substitution, /dev/stdin or a /proc
// file is read until it ends. A regular file whose size or modification time changes while it is
// read is Error(io_error): its bytes would be neither the old file nor the new.
class FileSource final : public ByteSource {
 public:
  explicit FileSource(const std::filesystem::path& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  std::size_t read(char* buffer, std::size_t size) override;
  std::optional<std::uint64_t> size() const override { return size_; }

 private:
  // Error(io_error) unless the file still has the size and modification time it had when opened.
  void check_unchanged() const;

  std::filesystem::path path_;
  int fd_ = -1;
  std::optional<std::uint64_t> size_;
  bool regular_ = false;
  std::uint64_t opened_size_ = 0;
  struct timespec opened_mtime_ {};
  std::uint64_t read_ = 0;
};

}  // namespace modelreg::detail
