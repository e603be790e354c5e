// Checks shared by the trainers: the training rows and the hyperparameters.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "modelreg/matrix.hpp"

namespace modelreg::detail {

// Error(invalid_argument) unless x has rows and columns, y has one 0/1 label per row, every value
// of x is finite (naming the first bad row and column) and — when need_both_classes — both labels
// occur. `type` names the model in messages.
void check_training_input(std::string_view type, MatrixView x, std::span<const int> y, bool need_both_classes);

// Error(invalid_argument) unless x has rows and columns (fewer than 2^31 each) and every value is
// finite. A NaN is a missing value: the message names its row and column and says to impute it
// (the built-in trainers do not learn from missing values).
void check_training_features(std::string_view type, MatrixView x);

// Multiclass: one class index per row, each below n_classes (3 to kMaxClasses). Every class need
// not occur (a class without rows gets probability 0 from trees).
void check_class_targets(std::string_view type, MatrixView x, std::span<const int> y, std::size_t n_classes);

// Regression: one finite value per row.
void check_value_targets(std::string_view type, MatrixView x, std::span<const double> values);

// Error(invalid_argument): "<type> cannot be trained for <task>" with what it can do.
[[noreturn]] void refuse_task(std::string_view type, std::string_view task, std::string_view can_do);

// Error(invalid_argument) "<type>: <name> must be <rule> (got <value>)" unless ok.
void check_param(bool ok, std::string_view type, std::string_view name, std::string_view value,
                 std::string_view rule);

// Text forms used by hyperparameters(): `none` or the number; the shortest round-trip decimal.
std::string depth_text(const std::optional<int>& depth);
std::string number_text(double value);

}  // namespace modelreg::detail
