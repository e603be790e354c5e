#include "models/training_input.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "modelreg/error.hpp"

namespace modelreg::detail {

void check_training_input(std::string_view type, MatrixView x, std::span<const int> y, bool need_both_classes) {
  if (x.rows() == 0 || x.cols() == 0) {
    throw Error(Errc::invalid_argument,
                fmt::format("{}: training needs at least one row and one feature (got {} × {})", type, x.rows(), x.cols()));
  }
  if (y.size() != x.rows()) {
    throw Error(Errc::invalid_argument,
                fmt::format("{}: {} training rows but {} labels", type, x.rows(), y.size()));
  }
  if (x.rows() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()) ||
      x.cols() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw Error(Errc::invalid_argument, fmt::format("{}: {} × {} is more than 2^31 - 1 rows or features",
                                                    type, x.rows(), x.cols()));
  }
  for (std::size_t r = 0; r < x.rows(); ++r) {
    for (std::size_t c = 0; c < x.cols(); ++c) {
      if (!std::isfinite(x(r, c))) {
        throw Error(Errc::invalid_argument,
                    fmt::format("{}: training row {} column {} is {} (features must be finite)", type, r, c, x(r, c)));
      }
    }
  }
  std::size_t positives = 0;
  for (std::size_t r = 0; r < y.size(); ++r) {
    if (y[r] != 0 && y[r] != 1) {
      throw Error(Errc::invalid_argument, fmt::format("{}: label of row {} is {}, not 0 or 1", type, r, y[r]));
    }
    positives += static_cast<std::size_t>(y[r]);
  }
  if (need_both_classes && (positives == 0 || positives == y.size())) {
    throw Error(Errc::invalid_argument,
                fmt::format("{}: the training labels are all {}; both classes are needed", type, positives == 0 ? 0 : 1));
  }
}

void check_param(bool ok, std::string_view type, std::string_view name, std::string_view value,
                 std::string_view rule) {
  if (!ok) throw Error(Errc::invalid_argument, fmt::format("{}: {} must be {} (got {})", type, name, rule, value));
}

std::string depth_text(const std::optional<int>& depth) { return depth ? std::to_string(*depth) : "none"; }

std::string number_text(double value) { return fmt::format("{}", value); }

}  // namespace modelreg::detail
