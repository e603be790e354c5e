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

// Error(invalid_argument) "<type>: <name> must be <rule> (got <value>)" unless ok.
void check_param(bool ok, std::string_view type, std::string_view name, std::string_view value,
                 std::string_view rule);

// Text forms used by hyperparameters(): `none` or the number; the shortest round-trip decimal.
std::string depth_text(const std::optional<int>& depth);
std::string number_text(double value);

}  // namespace modelreg::detail
