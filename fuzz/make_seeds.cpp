// make_seeds — writes the binary seeds of the fuzz corpora (the text seeds are in the repository
// as they are): a small archive of each built-in model type for archive_fuzz, and two bundles for
// bundle_fuzz (fuzz/make_seeds.sh runs it and then shrinks the bundles' pages).
//
//   make_seeds CORPUS_DIR     (CORPUS_DIR/archive_fuzz and CORPUS_DIR/bundle_fuzz must exist)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "bundle_fixture.hpp"
#include "modelreg/decision_tree.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/random_forest.hpp"
#include "modelreg/registry.hpp"

namespace fs = std::filesystem;
using namespace modelreg;

namespace {

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) throw Error(Errc::io_error, "cannot write " + path.string());
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path corpus = argv[1];
  // Small on purpose: each seed stays far below libFuzzer's useful input sizes.
  const LabeledData data = make_classification({.rows = 200, .features = 4, .informative = 3, .redundant = 1,
                                                .positive_fraction = 0.3, .seed = 7});

  const auto lr = LogisticRegression::train(data);
  const auto tree = DecisionTree::train(data, {.max_depth = 3});
  const auto forest = RandomForest::train(data, {.n_estimators = 3, .max_depth = 3, .seed = 1, .threads = 1});
  const auto gbt = GradientBoostedTrees::train(data, {.n_estimators = 3, .max_depth = 2, .seed = 1});
  write_file(corpus / "archive_fuzz" / "logistic_regression.mrm", serialize_model(lr));
  write_file(corpus / "archive_fuzz" / "decision_tree.mrm", serialize_model(tree));
  write_file(corpus / "archive_fuzz" / "random_forest.mrm", serialize_model(forest));
  write_file(corpus / "archive_fuzz" / "gradient_boosted_trees.mrm", serialize_model(gbt));

  const fs::path scratch = fs::temp_directory_path() / "modelreg-make-seeds";
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  {
    // fraud@1 as in the fuzzed registry (skipped as identical), then fraud@2 (a model with a probe)
    // and churn@1 (derived from fraud@2): imported.
    Registry reg(scratch / "adds.db", fuzz::fixture_options());
    reg.register_bytes(fuzz::fixture_fraud_v1(), fuzz::kFixtureFraudV1Bytes);
    NewVersion v2;
    v2.model = "fraud";
    v2.label = "v2.0.0";
    v2.notes = "retrained";
    v2.parents = {{ModelRef::parse("fraud@1"), "retrained_from"}};
    v2.datasets = {{"transactions.csv", std::nullopt, "train"}};
    reg.save_model(lr, v2, data.x.view());
    NewVersion churn;
    churn.model = "churn";
    churn.format = "onnx";
    churn.metrics = {{"auc", 0.9}};
    churn.parents = {{ModelRef::parse("fraud@2"), "derived_from"}};
    reg.register_bytes(churn, "not really onnx");
    reg.export_bundle({ModelRef::parse("fraud@1"), ModelRef::parse("fraud@2"), ModelRef::parse("churn@1")},
                      scratch / "adds.mrb");
  }
  {
    // fraud@1 with other bytes: the import must be refused as a whole.
    Registry reg(scratch / "conflict.db", fuzz::fixture_options());
    reg.register_bytes(fuzz::fixture_fraud_v1(), "other bytes");
    reg.export_bundle({ModelRef::parse("fraud@1")}, scratch / "conflict.mrb");
  }
  for (const char* name : {"adds.mrb", "conflict.mrb"}) {
    fs::copy_file(scratch / name, corpus / "bundle_fuzz" / name, fs::copy_options::overwrite_existing);
    std::printf("%s: %ju bytes (before shrinking)\n", (corpus / "bundle_fuzz" / name).c_str(),
                static_cast<std::uintmax_t>(fs::file_size(scratch / name)));
  }
  fs::remove_all(scratch);
  return 0;
}
