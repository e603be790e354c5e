// The values given on modelreg's command line, parsed into library types; a malformed one is a
// UsageError (exit status 2) that names the option and shows the expected form.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modelreg/registry.hpp"

namespace modelreg::cli {

// A mistake in how the command was called (exit status 2), as opposed to an error while doing it.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "k=v" -> {k, v}; `what` names the option in the message ("--metric").
std::pair<std::string, std::string> split_assignment(std::string_view what, std::string_view text);
double parse_number(std::string_view what, std::string_view text);
ModelRef parse_ref(std::string_view text);
Feature parse_feature(std::string_view text);               // name[:dtype]
std::vector<Feature> read_features_file(const std::string& path);
Parent parse_parent(std::string_view text);                 // REF[:relation]
Dataset parse_dataset(std::string_view text);               // URI[:role]; sha256 filled for local files

}  // namespace modelreg::cli
