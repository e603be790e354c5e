// modelreg/xgboost_import.hpp — registering a model file written by XGBoost as a native version
// (an XGBoostModel, see xgboost.hpp): the library call behind `modelreg import-model --xgboost`.
//
// Thread-safety: as Registry (the call is one Registry::save_model).
#pragma once

#include <filesystem>
#include <span>
#include <string>

#include "modelreg/export.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/metadata.hpp"
#include "modelreg/registry.hpp"

namespace modelreg {

// The dataset role of the provenance entry import_xgboost records for the source file.
inline constexpr std::string_view kXGBoostSourceRole = "xgboost_model";

// Reads `file` (JSON or UBJSON, at most kMaxXGBoostModelBytes), converts it with
// read_xgboost_model and saves the model with Registry::save_model(model, spec, probe_rows), so
// the version is an ordinary model version: probe-validated on load, signed when the registry
// signs, exported in bundles. On top of what `spec` says it records:
//   - datasets: the source file — uri its absolute path, sha256 its SHA-256, role
//     kXGBoostSourceRole — so that lineage answers "which XGBoost file is this?";
//   - params: the model's hyperparameters (objective, num_class, base_score, num_trees,
//     num_parallel_tree) plus xgboost_version ("1.7.4") and xgboost_format ("json" or "ubjson");
//     a param spec.params sets itself wins;
//   - features: the file's feature_names (dtype float64; int64 for XGBoost's "int", bool for
//     "i") when spec.features is empty and the file has them; otherwise as save_model does.
// probe_rows may hold NaN (missing values). Throws what read_xgboost_model throws (the registry
// unchanged), Error(not_found) for a missing file, Error(io_error) for an unreadable one,
// Error(validation_failed) for one over kMaxXGBoostModelBytes, and what save_model throws.
MODELREG_API ModelVersion import_xgboost(Registry& registry, NewVersion spec, const std::filesystem::path& file,
                                         MatrixView probe_rows = {});

// The same with the probe rows given as a table with column names (read_csv with no target): its
// columns are matched to the version's features by name, in any order (LabeledData::with_features);
// the features are spec.features, else the file's feature_names, else f0, f1, .... Columns named in
// `ignored_columns` (a target column) are dropped. Error(invalid_argument) naming every missing or
// extra column, before anything is written.
MODELREG_API ModelVersion import_xgboost(Registry& registry, NewVersion spec, const std::filesystem::path& file,
                                         const LabeledData& probe_table,
                                         std::span<const std::string> ignored_columns = {});

}  // namespace modelreg
