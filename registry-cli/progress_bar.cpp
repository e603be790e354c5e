#include "progress_bar.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "render.hpp"

namespace modelreg::cli {

ProgressBar::ProgressBar(std::string label) : label_(printable(label)), enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputs("\n", stderr);
}

ProgressFn ProgressBar::callback() {
  if (!enabled_) return {};
  return [this](std::uint64_t done, std::optional<std::uint64_t> total) { draw(done, total, false); };
}

void ProgressBar::draw(std::uint64_t done, std::optional<std::uint64_t> total, bool final) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  const bool complete = total && done >= *total;
  if (!final && !complete && now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  drawn_ = true;
  if (total && *total > 0) {
    const double f = std::min(1.0, static_cast<double>(done) / static_cast<double>(*total));
    const int filled = static_cast<int>(f * 30);
    fmt::print(stderr, "\r{} [{}{}] {:3.0f}% {} / {}  ", label_, std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(30 - filled), '.'), f * 100, human_bytes(done), human_bytes(*total));
  } else {
    fmt::print(stderr, "\r{} {}  ", label_, human_bytes(done));
  }
  std::fflush(stderr);
}

}  // namespace modelreg::cli
