#include "modelreg/training_run.hpp"

#include <chrono>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "modelreg/checksum.hpp"
#include "modelreg/error.hpp"
#include "modelreg/training.hpp"

namespace modelreg {

TrainingRun train_version(std::string_view type, const TrainTestSplit& split,
                          const std::map<std::string, std::string>& params, NewVersion base,
                          const TrainingFiles& files) {
  if (split.test.rows() == 0 || !split.test.has_labels()) {
    throw Error(Errc::invalid_argument, "the test rows are empty or unlabelled; a version is evaluated on labelled "
                                        "rows it was not trained on");
  }
  if (split.test.feature_names != split.train.feature_names) {
    throw Error(Errc::invalid_argument, fmt::format("the test rows have columns {} but the training rows {}; they must "
                                                    "match in name and order",
                                                    fmt::join(split.test.feature_names, ","),
                                                    fmt::join(split.train.feature_names, ",")));
  }
  if (split.test.task != split.train.task || !(split.test.classes == split.train.classes)) {
    throw Error(Errc::invalid_argument,
                fmt::format("the test rows are a {} target with classes ({}), the training rows a {} target with "
                            "classes ({}); read the test rows with the training rows' task and classes",
                            to_string(split.test.task), fmt::join(split.test.classes.texts(), ", "),
                            to_string(split.train.task), fmt::join(split.train.classes.texts(), ", ")));
  }
  TrainingRun run;
  const auto started = std::chrono::steady_clock::now();
  run.model = train_model(type, split.train, params);
  run.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  run.evaluation = evaluate(*run.model, split.test);

  run.spec = std::move(base);
  NewVersion& spec = run.spec;
  for (const auto& [name, value] : run.evaluation.metrics) spec.metrics[name] = value;
  spec.metrics["train_seconds"] = run.train_seconds;
  spec.metrics["train_rows"] = static_cast<double>(split.train.rows());
  spec.metrics["test_rows"] = static_cast<double>(split.test.rows());
  spec.features.clear();
  for (const auto& f : split.train.feature_names) spec.features.push_back({f, "float64"});
  spec.tags["target"] = split.train.target_name;
  auto record = [&](const std::optional<std::filesystem::path>& file, const char* role) {
    if (file) spec.datasets.push_back({std::filesystem::absolute(*file).string(), sha256_file(*file), role});
  };
  record(files.train, "train");
  record(files.test, "test");
  return run;
}

}  // namespace modelreg
