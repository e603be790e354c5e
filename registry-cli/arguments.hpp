// The values given on modelreg's command line, parsed into library types; a malformed one is a
// UsageError (exit status 2) that names the option and shows the expected form.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modelreg/registry.hpp"

namespace CLI {
class App;
}

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

// The metadata options of the commands that create a version (register, import-model): --metric,
// --param, --tag, --label, --notes, --parent, --dataset, --level.
struct VersionMetadataArgs {
  std::string label, notes;
  std::vector<std::string> metrics, params, tags, parents, datasets;
  int level = 3;
};

// Declares those options on `cmd`, filling `a` (which must outlive the parse). `param_help` and
// `dataset_help` describe --param and --dataset for the command; `parent_example` is a REF:RELATION.
void add_version_metadata_options(CLI::App* cmd, VersionMetadataArgs& a, const std::string& param_help,
                                  const std::string& dataset_help, const std::string& parent_example);

// A NewVersion of `model` with those options parsed (UsageError naming a malformed one) and
// created_by = `actor` when given.
NewVersion version_spec(const std::string& model, const VersionMetadataArgs& a, const std::optional<std::string>& actor);

}  // namespace modelreg::cli
