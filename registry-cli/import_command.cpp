// import-model: a model file written by another library, converted to a native model version
// (today XGBoost's JSON or UBJSON, through import_xgboost in xgboost_import.hpp).
#include <string>
#include <vector>

#include <fmt/format.h>

#include "arguments.hpp"
#include "commands.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/xgboost_import.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

struct ImportModelArgs {
  std::string name, xgboost_file, probe_csv, target;
  VersionMetadataArgs metadata;
};

int cmd_import_model(const Globals& g, const ImportModelArgs& a) {
  NewVersion spec = version_spec(a.name, a.metadata, actor_of(g));
  if (!a.target.empty() && a.probe_csv.empty()) throw UsageError("--target names a column of --probe-csv; give both");

  Registry reg = open_registry(g, true);
  ModelVersion v;
  if (a.probe_csv.empty()) {
    v = import_xgboost(reg, spec, a.xgboost_file);
  } else {
    // Every column is read; the model's features are picked by name, as predict does.
    const LabeledData table = read_csv(a.probe_csv, CsvReadOptions{"", false});
    std::vector<std::string> ignored;
    if (!a.target.empty()) ignored.push_back(a.target);
    v = import_xgboost(reg, spec, a.xgboost_file, table, ignored);
  }
  if (g.json) {
    print_json(to_json(v));
  } else {
    auto param = [&](const char* key) {
      const auto it = v.params.find(key);
      return it == v.params.end() ? std::string("?") : it->second;
    };
    print_text("imported {}  XGBoost {} {} model, {}, {} trees, {} features  {} -> {} ({:.2f}x)\n", version_line(v),
               param("xgboost_version"), param("xgboost_format"), param("objective"), param("num_trees"),
               v.features.size(), human_bytes(v.blob.raw_size), human_bytes(v.blob.stored_size), v.blob.ratio());
  }
  return 0;
}

}  // namespace

void add_import_model_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<ImportModelArgs>(
      app, g, "import-model", "Import a model trained elsewhere (XGBoost JSON/UBJSON) as a native, validated version",
      "  modelreg import-model churn --xgboost churn.ubj --probe-csv holdout.csv --target churned \\\n"
      "      --metric auc=0.91 --label v3.0.0 --parent churn@2:retrained_from --notes 'XGBoost 1.7, 300 rounds'",
      cmd_import_model);
  cmd->add_option("NAME", a->name, "Model name ([A-Za-z0-9][A-Za-z0-9_.-]*)")->required();
  cmd->add_option("--xgboost", a->xgboost_file, "Model file written by XGBoost's save_model (.json or .ubj)")
      ->required();
  cmd->add_option("--probe-csv", a->probe_csv,
                  "Rows stored as the validation probe (first 16; columns by feature name, empty cell = missing; "
                  "default: 16 synthetic rows)");
  cmd->add_option("--target", a->target, "A column of --probe-csv to ignore (the label)");
  add_version_metadata_options(cmd, a->metadata, "Parameter NAME=VALUE, recorded on top of the model's (repeatable)",
                               "Data set URI[:ROLE] (role default train; local files get their SHA-256) (repeatable); "
                               "the XGBoost file itself is always recorded, role xgboost_model",
                               "churn@3:retrained_from");
}

}  // namespace modelreg::cli
