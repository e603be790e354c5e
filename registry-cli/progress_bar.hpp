// A progress bar on stderr for the long commands (register, get, export, import, verify).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "modelreg/progress.hpp"

namespace modelreg::cli {

// Drawn only when stderr is a terminal, at most 10 times a second; the destructor ends the line.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // Empty when stderr is not a terminal, so that the library skips reporting altogether.
  ProgressFn callback();

 private:
  void draw(std::uint64_t done, std::optional<std::uint64_t> total, bool final);
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::int64_t last_draw_ms_ = 0;
};

}  // namespace modelreg::cli
