// import_xgboost: the file read within a bound, converted, its provenance recorded, and saved.
#include "modelreg/xgboost_import.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "modelreg/checksum.hpp"
#include "modelreg/error.hpp"
#include "modelreg/xgboost.hpp"

namespace modelreg {
namespace {

// The whole file, refused before reading when it is over the reader's limit; also refused when
// it grows past the limit while being read (a pipe, a file being written).
std::string read_bounded(const std::filesystem::path& file) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status)) {
    throw Error(Errc::not_found, fmt::format("XGBoost model file '{}' does not exist", file.string()));
  }
  if (std::filesystem::is_directory(status)) {
    throw Error(Errc::invalid_argument, fmt::format("'{}' is a directory, not an XGBoost model file", file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw Error(Errc::io_error, fmt::format("cannot open '{}': {}", file.string(), std::strerror(errno)));
  }
  std::string bytes;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    bytes.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (bytes.size() > kMaxXGBoostModelBytes) {
      throw Error(Errc::validation_failed, fmt::format("'{}' is larger than {} bytes, the limit for an XGBoost model "
                                                       "file",
                                                       file.string(), kMaxXGBoostModelBytes));
    }
  }
  if (in.bad()) throw Error(Errc::io_error, fmt::format("cannot read '{}'", file.string()));
  return bytes;
}

std::string dtype_of(const std::string& xgboost_type) {
  if (xgboost_type == "int") return "int64";
  if (xgboost_type == "i") return "bool";
  return "float64";
}

// The file read and converted, and `spec` completed with its provenance and feature names.
XGBoostFile read_for_import(const std::filesystem::path& file, NewVersion& spec) {
  const std::string bytes = read_bounded(file);
  XGBoostFile xgb = [&] {
    try {
      return read_xgboost_model(bytes);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("{}: {}", file.string(), e.what()));
    }
  }();
  spec.datasets.push_back(Dataset{std::filesystem::absolute(file).lexically_normal().string(), sha256_bytes(bytes),
                                  std::string(kXGBoostSourceRole)});
  spec.params.try_emplace("xgboost_version",
                          fmt::format("{}.{}.{}", xgb.version[0], xgb.version[1], xgb.version[2]));
  spec.params.try_emplace("xgboost_format", xgb.format);
  if (spec.features.empty() && !xgb.feature_names.empty()) {
    for (std::size_t i = 0; i < xgb.feature_names.size(); ++i) {
      spec.features.push_back(
          {xgb.feature_names[i], i < xgb.feature_types.size() ? dtype_of(xgb.feature_types[i]) : "float64"});
    }
  }
  return xgb;
}

}  // namespace

ModelVersion import_xgboost(Registry& registry, NewVersion spec, const std::filesystem::path& file,
                            MatrixView probe_rows) {
  const XGBoostFile xgb = read_for_import(file, spec);
  return registry.save_model(xgb.model, std::move(spec), probe_rows);
}

ModelVersion import_xgboost(Registry& registry, NewVersion spec, const std::filesystem::path& file,
                            const LabeledData& probe_table, std::span<const std::string> ignored_columns) {
  const XGBoostFile xgb = read_for_import(file, spec);
  std::vector<std::string> names;
  for (const auto& f : spec.features) names.push_back(f.name);
  if (names.empty()) {
    // save_model's default names.
    for (std::size_t i = 0; i < xgb.model.n_features(); ++i) names.push_back(fmt::format("f{}", i));
  }
  const LabeledData rows = probe_table.with_features(names, ignored_columns);
  return registry.save_model(xgb.model, std::move(spec), rows.x);
}

}  // namespace modelreg
