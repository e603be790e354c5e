// The fraud-detection demonstration (./run.sh demo): train, save with metadata, version, compare,
// promote, load with validation, roll back — the seed lesson's workflow, in C++ on modelreg.
//
//   fraud_demo [DIR]   writes DIR/fraud.db and DIR/transactions.csv (default: ./demo)
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "modelreg/labeled_data.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/registry.hpp"
#include "modelreg/training_run.hpp"

using namespace modelreg;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string kib(std::uint64_t bytes) { return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024.0); }

// Trains `type` and describes the version (train_version); the caller saves it.
TrainingRun train(const std::string& type, const TrainTestSplit& data, const std::map<std::string, std::string>& params,
                  const std::filesystem::path& csv, const std::string& label, std::vector<Parent> parents,
                  const std::string& notes) {
  return train_version(type, data, params,
                       {.model = "fraud_detector", .notes = notes, .label = label, .parents = std::move(parents)},
                       {.train = csv});
}

void print_run(const TrainingRun& run, std::string_view what) {
  fmt::print("  {:<20} accuracy {:.4f}  f1 {:.4f}  auc {:.4f}  ({:.2f} s{})\n", run.model->type_name(),
             run.evaluation.metrics.at("accuracy"), run.evaluation.metrics.at("f1"), run.evaluation.metrics.at("roc_auc"), run.train_seconds, what);
}

ModelVersion save(Registry& reg, const TrainingRun& run, const TrainTestSplit& data) {
  const auto start = std::chrono::steady_clock::now();
  ModelVersion v = reg.save_model(*run.model, run.spec, data.test.x);
  fmt::print("  saved {} ({}) in {:.0f} ms: {} archive -> {} stored, {:.1f}x smaller ({:.0f}% saved)\n", v.ref_string(),
             v.label.value_or(""), seconds_since(start) * 1000, kib(v.blob.raw_size), kib(v.blob.stored_size),
             v.blob.ratio(), 100.0 * (1.0 - 1.0 / v.blob.ratio()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : "demo";
  std::filesystem::create_directories(dir);
  const auto db = dir / "fraud.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
  const auto csv = dir / "transactions.csv";

  try {
    fmt::print("== modelreg fraud-detection demo ==\n\n");
    ClassificationSpec spec;  // 10,000 transactions, 20 features, 5% fraud, 1% label noise
    const LabeledData all = make_classification(spec);
    write_csv(all, csv);
    const TrainTestSplit data = stratified_split(all, 0.2, 42);
    fmt::print("data: {} transactions x {} features, {:.1f}% fraud; {} train / {} test (stratified)\n",
               all.rows(), all.n_features(), 100 * all.positive_fraction(), data.train.rows(), data.test.rows());
    fmt::print("      written to {} (train scikit-learn on exactly these rows)\n\n", csv.string());

    fmt::print("1. train\n");
    const TrainingRun lr = train("logistic_regression", data, {{"C", "1.0"}}, csv, "v1.0.0", {},
                                 "baseline: L2 logistic regression");
    print_run(lr, "");
    const TrainingRun rf = train("random_forest", data, {{"n_estimators", "100"}, {"seed", "1"}}, csv, "v1.1.0",
                                 {{ModelRef::parse("fraud_detector@1"), "derived_from"}}, "random forest, 100 trees");
    print_run(rf, ", 100 trees");

    fmt::print("\n2. save both with metadata into {}\n", db.string());
    Registry reg(db);
    save(reg, lr, data);
    const ModelVersion v2 = save(reg, rf, data);

    fmt::print("\n3. retrain the forest (more trees, another seed) as a new version\n");
    const TrainingRun rf2 =
        train("random_forest", data, {{"n_estimators", "200"}, {"min_samples_leaf", "2"}, {"seed", "2"}}, csv, "v1.2.0",
              {{ModelRef::number("fraud_detector", v2.id.number), "retrained_from"}},
              "retrained: 200 trees, min_samples_leaf 2");
    print_run(rf2, ", 200 trees");
    save(reg, rf2, data);

    fmt::print("\n4. compare by f1\n");
    for (const auto& [a, b] : {std::pair{"fraud_detector@1", "fraud_detector@2"}, {"fraud_detector@2", "fraud_detector@3"}}) {
      const auto c = reg.compare(ModelRef::parse(a), ModelRef::parse(b), "f1").front();
      fmt::print("  {} f1 {:.4f} -> {} f1 {:.4f}  ({:+.4f})\n", a, *c.a, b, *c.b, *c.difference());
    }
    VersionQuery best;
    best.order_by_metric = "f1";
    best.limit = 1;
    const ModelVersion top = reg.list_versions("fraud_detector", best).front();
    fmt::print("  best by f1: {} ({}, f1 {:.4f})\n", top.ref_string(), top.type_name, top.metrics.at("f1"));

    fmt::print("\n5. promote\n");
    reg.promote(ModelRef::parse("fraud_detector@1"), {.reason = "baseline in production"});
    const auto t = reg.promote(ModelRef::number("fraud_detector", top.id.number),
                               {.reason = "best f1 on the held-out set", .require_better = "f1"});
    fmt::print("  fraud_detector@{} is active (was @{}); the promotion was guarded by f1\n", t.to_version,
               t.from_version.value_or(0));

    fmt::print("\n6. load the active version with validation\n");
    const auto start = std::chrono::steady_clock::now();
    const LoadedModel loaded = reg.load_model(ModelRef::parse("fraud_detector"));
    const double load_ms = seconds_since(start) * 1000;
    const auto& v = loaded.version;
    fmt::print("  {} {}: {} features, saved {} by {}\n", v.ref_string(), loaded.model->type_name(),
               loaded.model->n_features(), v.created_at, v.created_by);
    fmt::print("  checksum, archive header, type, feature count and {} probe rows: validation passed ({:.0f} ms)\n",
               v.probe->inputs.rows(), load_ms);
    const Evaluation again = evaluate(*loaded.model, data.test);
    fmt::print("  re-scored the test set: f1 {:.4f} (registered {:.4f})\n", again.metrics.at("f1"), v.metrics.at("f1"));

    fmt::print("\n7. roll back\n");
    const auto back = reg.rollback("fraud_detector", {.reason = "demo: canary raised false positives"});
    fmt::print("  fraud_detector@{} -> fraud_detector@{}\n", back.from_version.value_or(0), back.to_version);

    fmt::print("\n8. lineage of fraud_detector@3\n");
    for (const auto& e : reg.ancestors(ModelRef::parse("fraud_detector@3"))) {
      fmt::print("  {} {} {}\n", e.child.to_string(), e.relation, e.parent.to_string());
    }
    fmt::print("\n9. audit log\n");
    for (const auto& e : reg.history("fraud_detector")) {
      fmt::print("  {}  {:<8}  v{}  {}\n", e.at, to_string(e.kind), e.version.value_or(0), e.reason);
    }
    fmt::print("\nexplore: build/registry-cli/modelreg --db {} list fraud_detector\n", db.string());
  } catch (const Error& e) {
    fmt::print(stderr, "error ({}): {}\n", to_string(e.code()), e.what());
    return 1;
  }
  return 0;
}
