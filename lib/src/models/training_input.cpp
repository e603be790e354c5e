#include "models/training_input.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "modelreg/error.hpp"
#include "modelreg/labeled_data.hpp"

namespace modelreg::detail {

void check_training_features(std::string_view type, MatrixView x) {
  if (x.rows() == 0 || x.cols() == 0) {
    throw Error(Errc::invalid_argument,
                fmt::format("{}: training needs at least one row and one feature (got {} × {})", type, x.rows(), x.cols()));
  }
  if (x.rows() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()) ||
      x.cols() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw Error(Errc::invalid_argument, fmt::format("{}: {} × {} is more than 2^31 - 1 rows or features",
                                                    type, x.rows(), x.cols()));
  }
  for (std::size_t r = 0; r < x.rows(); ++r) {
    for (std::size_t c = 0; c < x.cols(); ++c) {
      const double v = x(r, c);
      if (std::isnan(v)) {
        throw Error(Errc::invalid_argument,
                    fmt::format("{}: training row {} column {} is missing (NaN); the built-in trainers do not learn "
                                "from missing values — impute them first (e.g. the column's median)",
                                type, r, c));
      }
      if (!std::isfinite(v)) {
        throw Error(Errc::invalid_argument,
                    fmt::format("{}: training row {} column {} is {} (features must be finite)", type, r, c, v));
      }
    }
  }
}

void check_training_input(std::string_view type, MatrixView x, std::span<const int> y, bool need_both_classes) {
  check_training_features(type, x);
  if (y.size() != x.rows()) {
    throw Error(Errc::invalid_argument,
                fmt::format("{}: {} training rows but {} labels", type, x.rows(), y.size()));
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

void check_class_targets(std::string_view type, MatrixView x, std::span<const int> y, std::size_t n_classes) {
  check_training_features(type, x);
  if (n_classes < 3 || n_classes > kMaxClasses) {
    throw Error(Errc::invalid_argument,
                fmt::format("{}: a multiclass target has 3 to {} classes, not {}", type, kMaxClasses, n_classes));
  }
  if (y.size() != x.rows()) {
    throw Error(Errc::invalid_argument, fmt::format("{}: {} training rows but {} labels", type, x.rows(), y.size()));
  }
  for (std::size_t r = 0; r < y.size(); ++r) {
    if (y[r] < 0 || static_cast<std::size_t>(y[r]) >= n_classes) {
      throw Error(Errc::invalid_argument,
                  fmt::format("{}: label of row {} is {}, not a class index below {}", type, r, y[r], n_classes));
    }
  }
}

void check_value_targets(std::string_view type, MatrixView x, std::span<const double> values) {
  check_training_features(type, x);
  if (values.size() != x.rows()) {
    throw Error(Errc::invalid_argument, fmt::format("{}: {} training rows but {} targets", type, x.rows(), values.size()));
  }
  for (std::size_t r = 0; r < values.size(); ++r) {
    if (!std::isfinite(values[r])) {
      throw Error(Errc::invalid_argument, fmt::format("{}: the target of row {} is {}, not a finite number", type, r, values[r]));
    }
  }
}

void refuse_task(std::string_view type, std::string_view task, std::string_view can_do) {
  throw Error(Errc::invalid_argument, fmt::format("{} cannot be trained for {}: it does {}", type, task, can_do));
}

void check_param(bool ok, std::string_view type, std::string_view name, std::string_view value,
                 std::string_view rule) {
  if (!ok) throw Error(Errc::invalid_argument, fmt::format("{}: {} must be {} (got {})", type, name, rule, value));
}

std::string depth_text(const std::optional<int>& depth) { return depth ? std::to_string(*depth) : "none"; }

std::string number_text(double value) { return fmt::format("{}", value); }

}  // namespace modelreg::detail
