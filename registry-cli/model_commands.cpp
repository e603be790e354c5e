// The commands that run models: train (fit a built-in model on a CSV file and register it) and
// predict (score a CSV file with a registered version).
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "commands.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/training.hpp"
#include "modelreg/training_run.hpp"
#include "printable_text.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

struct TrainArgs {
  std::string name, csv, target, type, task, test_csv, label, notes;
  std::vector<std::string> params, parents;
  double test_fraction = 0.2;
  std::optional<std::uint64_t> seed;
};

int cmd_train(const Globals& g, const TrainArgs& a) {
  std::map<std::string, std::string> params;
  for (const auto& p : a.params) {
    auto [k, v] = split_assignment("--param", p);
    params[k] = v;
  }
  if (a.seed) params["seed"] = std::to_string(*a.seed);
  if (!(a.test_fraction > 0 && a.test_fraction < 1)) {
    throw UsageError(fmt::format("--test-fraction {} must be between 0 and 1 (exclusive)", a.test_fraction));
  }
  NewVersion base;
  base.model = a.name;
  if (!a.label.empty()) base.label = a.label;
  base.notes = a.notes;
  for (const auto& p : a.parents) base.parents.push_back(parse_parent(p));
  if (auto who = actor_of(g)) base.created_by = who;

  TrainingFiles files{.train = a.csv};
  TrainTestSplit split;
  CsvReadOptions options{.target = a.target};
  if (!a.task.empty()) options.task = parse_task(a.task);
  const LabeledData data = read_csv(a.csv, options);
  if (!a.test_csv.empty()) {
    split.train = data;
    // The test rows are labelled with the training rows' task and classes (they may lack a class).
    split.test = read_csv(a.test_csv, {.target = a.target, .task = data.task, .classes = data.classes});
    files.test = a.test_csv;  // train_version refuses test columns unlike the training ones
  } else {
    split = stratified_split(data, a.test_fraction, a.seed.value_or(0));
  }
  const TrainingRun run = train_version(a.type, split, params, std::move(base), files);
  Registry reg = open_registry(g, true);
  const ModelVersion v = reg.save_model(*run.model, run.spec, split.test.x);
  if (g.json) {
    print_json(to_json(v));
    return 0;
  }
  std::string scores;
  for (const auto& [metric, value] : run.evaluation.metrics) {
    if (!metric.starts_with("count_")) scores += fmt::format("  {} {:.4f}", metric, value);
  }
  fmt::print("trained {} ({}) on {} rows in {:.2f} s; on {} test rows:{}\n", a.type, to_string(data.task),
             split.train.rows(), run.train_seconds, split.test.rows(), scores);
  fmt::print("registered {}  {} -> {} ({:.2f}x)\n", version_line(v), human_bytes(v.blob.raw_size),
             human_bytes(v.blob.stored_size), v.blob.ratio());
  return 0;
}

struct PredictArgs {
  std::string ref, csv, output, target;
  bool force = false;
};

// One CSV record: the cells quoted where needed, then a line break.
std::string csv_line(const std::vector<std::string>& cells) {
  std::string out;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) out += ',';
    out += csv_quote(cells[i]);
  }
  out += '\n';
  return out;
}

int cmd_predict(const Globals& g, const std::string& ref_text, const std::string& csv, const std::string& output,
                const std::string& target_option, bool force) {
  const ModelRef ref = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  if (!output.empty() && output != "-") reg.check_output_path(output, force);  // before any work
  const LoadedModel loaded = reg.load_model(ref);
  const ModelVersion& v = loaded.version;
  // Every column is read; the registered features are picked by name, in the registered order.
  const LabeledData table = read_csv(csv, CsvReadOptions{"", false});
  std::string target = target_option;
  if (target.empty()) {
    if (auto it = v.tags.find("target"); it != v.tags.end()) target = it->second;
  }
  std::vector<std::string> features;
  for (const auto& f : v.features) features.push_back(f.name);
  std::vector<std::string> ignored;
  if (!target.empty()) ignored.push_back(target);
  const ColumnMatch match = match_columns(table.feature_names, features, ignored);
  if (!match.missing.empty()) {
    throw Error(Errc::invalid_argument, fmt::format("'{}' has no column '{}', a feature of {} ({} features expected)",
                                                    csv, match.missing.front(), v.ref_string(), v.features.size()));
  }
  if (!match.extra.empty()) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}' has a column '{}' that is not a feature of {}{}; remove it", csv, match.extra.front(),
                            v.ref_string(), target.empty() ? "" : fmt::format(" (nor its target '{}')", target)));
  }
  const Matrix x = table.with_features(features, ignored).x;
  const Model& model = *loaded.model;
  const Task task = model.task();
  const ClassLabels classes = model.classes();
  const std::size_t per_row = model.n_outputs();
  const std::vector<double> outputs = model.predict_outputs(x);
  const std::size_t rows = x.rows();
  // The fixed output shapes (output_columns): binary probability,label; multiclass one
  // probability_<class> per class, then label; regression prediction.
  std::vector<std::size_t> labels;
  if (task != Task::regression) labels = class_indexes_of(task, outputs, per_row);
  auto label_json = [&](std::size_t r) {
    return classes.are_integers() ? json(classes.integer(labels[r])) : json(classes.text(labels[r]));
  };
  std::string text;
  if (g.json) {
    json out = {{"ref", v.ref_string()}, {"task", to_string(task)}};
    switch (task) {
      case Task::binary: {
        json l = json::array();
        for (std::size_t r = 0; r < rows; ++r) l.push_back(label_json(r));
        out["probabilities"] = outputs;
        out["labels"] = std::move(l);
        break;
      }
      case Task::multiclass: {
        json p = json::array(), l = json::array();
        for (std::size_t r = 0; r < rows; ++r) {
          p.push_back(std::vector<double>(outputs.begin() + static_cast<std::ptrdiff_t>(r * per_row),
                                          outputs.begin() + static_cast<std::ptrdiff_t>((r + 1) * per_row)));
          l.push_back(label_json(r));
        }
        out["classes"] = classes.are_integers() ? json(classes.integer_values()) : json(classes.string_values());
        out["probabilities"] = std::move(p);
        out["labels"] = std::move(l);
        break;
      }
      case Task::regression: out["predictions"] = outputs; break;
    }
    text = json_text(out);
  } else {
    text = csv_line(output_columns(task, classes));
    for (std::size_t r = 0; r < rows; ++r) {
      std::vector<std::string> cells;
      for (std::size_t c = 0; c < per_row; ++c) cells.push_back(fmt::format("{}", outputs[r * per_row + c]));
      if (task != Task::regression) cells.push_back(classes.text(labels[r]));
      text += csv_line(cells);
    }
  }
  if (output.empty() || output == "-") {
    // Exact in a pipe; on a terminal, a class label's control characters are escaped.
    std::fputs((!g.json && is_terminal(stdout) ? printable_lines(text) : text).c_str(), stdout);
  } else {
    reg.write_output_file(output, text, force);
    print_text(stderr, "wrote {} predictions of {} to {}\n", rows, v.ref_string(), output);
  }
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, Globals& g) {
  auto [cmd, a] =
      add_command<TrainArgs>(app, g, "train", "Train a built-in model on a CSV file and register it",
                             "  modelreg train fraud --csv transactions.csv --target is_fraud --type random_forest \\\n"
                             "      --param n_estimators=100 --seed 42 --label v1.1.0 --parent fraud@1:retrained_from",
                             cmd_train);
  cmd->add_option("NAME", a->name, "Model name")->required();
  cmd->add_option("--csv", a->csv, "Training data: a header row, numeric cells (empty: missing)")->required();
  cmd->add_option("--target", a->target, "The target column: class labels (integers or names) or real values")
      ->required();
  cmd->add_option("--task", a->task, "binary, multiclass or regression (default: inferred from the target)")
      ->check(CLI::IsMember({"binary", "multiclass", "regression"}));
  cmd->add_option("--type", a->type, "Model type")->required()->check(CLI::IsMember(built_in_model_types()));
  cmd->add_option("--param", a->params, "Hyperparameter NAME=VALUE (repeatable)");
  auto* test_csv = cmd->add_option("--test-csv", a->test_csv, "Held-out rows to measure on");
  cmd->add_option("--test-fraction", a->test_fraction,
                  "Else hold out this fraction, stratified by class (default 0.2)")
      ->excludes(test_csv);
  cmd->add_option("--seed", a->seed, "Seed for the split and the model");
  cmd->add_option("--label", a->label, "Version label, e.g. v1.0.0");
  cmd->add_option("--notes", a->notes, "Free text");
  cmd->add_option("--parent", a->parents, "Lineage REF[:RELATION] (repeatable)");
}

void add_predict_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<PredictArgs>(
      app, g, "predict", "Score a CSV file with a version (loaded and validated)",
      "  modelreg predict fraud --csv new.csv -o scores.csv\n  modelreg predict fraud@3 --csv new.csv --json",
      [](const Globals& globals, const PredictArgs& a) {
        return cmd_predict(globals, a.ref, a.csv, a.output, a.target, a.force);
      });
  cmd->add_option("REF", a->ref, "Version (default: the active one)")->required();
  cmd->add_option("--csv", a->csv, "Rows to score; columns by name, the target column is ignored")->required();
  cmd->add_option("-o,--output", a->output, "Write here instead of stdout");
  cmd->add_option("--target", a->target, "Label column to ignore (default: the one recorded by train)");
  cmd->add_flag("--force", a->force, "Replace the output file if it exists");
}

}  // namespace modelreg::cli
