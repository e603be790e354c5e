// The model benchmark: the seed task (10,000 training rows × 20 features, 5% positives) for every
// built-in type, and the 100-tree forest's training time, quality, size and (de)serialization.
//
//   models_bench [--out DIR] [--runs N] [--json FILE]
//
// Writes DIR/train.csv and DIR/test.csv (so bench/sklearn_compare.py trains on exactly the same
// rows), trains on the rows read back from train.csv, evaluates on test.csv, prints a table and,
// with --json, the numbers for bench/run.sh. Timings are medians of N runs (default 5).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <zstd.h>

#include "modelreg/decision_tree.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/metrics.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/random_forest.hpp"

using namespace modelreg;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Median wall time of `runs` calls.
double median_time(int runs, const std::function<void()>& f) {
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::string zstd_compress(const std::string& raw, int level) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n)) throw std::runtime_error(ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

std::string zstd_decompress(const std::string& packed, std::size_t raw_size) {
  std::string out(raw_size, '\0');
  const std::size_t n = ZSTD_decompress(out.data(), out.size(), packed.data(), packed.size());
  if (ZSTD_isError(n) || n != raw_size) throw std::runtime_error("zstd decompression failed");
  return out;
}

struct Row {
  std::string type;
  double train_s = 0;
  BinaryMetrics metrics;
  std::size_t nodes = 0;
  std::size_t raw_bytes = 0;
  std::size_t zstd_bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path out_dir = "bench-data";
  std::string json_file;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (arg == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::stoi(argv[++i]));
    } else if (arg == "--json" && i + 1 < argc) {
      json_file = argv[++i];
    } else {
      fmt::print(stderr, "usage: models_bench [--out DIR] [--runs N] [--json FILE]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(out_dir);

  // 12,500 generated rows, split 80/20 (stratified): 10,000 training rows, 2,500 test rows.
  ClassificationSpec spec;
  spec.rows = 12'500;
  spec.features = 20;
  spec.positive_fraction = 0.05;
  spec.seed = 42;
  const auto split = stratified_split(make_classification(spec), 0.2, 42);
  write_csv(split.train, out_dir / "train.csv");
  write_csv(split.test, out_dir / "test.csv");
  const auto train = read_csv(out_dir / "train.csv", {.target = spec.target_name});
  const auto test = read_csv(out_dir / "test.csv", {.target = spec.target_name});
  fmt::print("data: {} training rows, {} test rows, {} features, {:.1f}% positive (train); {} cores; {} runs each\n",
             train.rows(), test.rows(), train.n_features(), 100 * train.positive_fraction(),
             std::thread::hardware_concurrency(), runs);
  fmt::print("      {}/train.csv, {}/test.csv\n\n", out_dir.string(), out_dir.string());

  std::vector<Row> rows;
  auto measure = [&](const std::string& type, const std::function<std::unique_ptr<Model>()>& fit, std::size_t nodes_of_model) {
    std::unique_ptr<Model> model;
    Row row;
    row.type = type;
    row.train_s = median_time(runs, [&] { model = fit(); });
    row.metrics = evaluate(*model, test);
    const std::string bytes = serialize_model(*model);
    row.raw_bytes = bytes.size();
    row.zstd_bytes = zstd_compress(bytes, 3).size();
    row.nodes = nodes_of_model;
    rows.push_back(row);
    return model;
  };

  measure("logistic_regression", [&] { return std::make_unique<LogisticRegression>(LogisticRegression::train(train)); }, 0);
  {
    auto tree = DecisionTree::train(train);
    measure("decision_tree", [&] { return std::make_unique<DecisionTree>(DecisionTree::train(train)); }, tree.tree().node_count());
  }
  const auto gbt = GradientBoostedTrees::train(train);
  measure("gradient_boosted_trees", [&] { return std::make_unique<GradientBoostedTrees>(GradientBoostedTrees::train(train)); },
          gbt.node_count());
  RandomForest forest = RandomForest::train(train, {.n_estimators = 100});
  measure("random_forest", [&] { return std::make_unique<RandomForest>(RandomForest::train(train, {.n_estimators = 100})); },
          forest.node_count());

  fmt::print("{:<24} {:>9} {:>6} {:>8} {:>7} {:>8} {:>10} {:>10} {:>8}\n", "model", "train s", "F1", "accuracy",
             "AUC", "nodes", "raw bytes", "zstd-3", "B/node");
  for (const auto& r : rows) {
    fmt::print("{:<24} {:>9.4f} {:>6.3f} {:>8.4f} {:>7.4f} {:>8} {:>10} {:>10} {:>8}\n", r.type, r.train_s, r.metrics.f1,
               r.metrics.accuracy, r.metrics.roc_auc, r.nodes == 0 ? std::string("-") : std::to_string(r.nodes), r.raw_bytes,
               r.zstd_bytes, r.nodes == 0 ? std::string("-") : fmt::format("{:.2f}", double(r.zstd_bytes) / double(r.nodes)));
  }

  // The forest in detail.
  const Row& f = rows.back();
  const double train_1thread = median_time(std::max(1, runs / 2), [&] {
    (void)RandomForest::train(train, {.n_estimators = 100, .threads = 1});
  });
  std::string bytes;
  const double serialize_s = median_time(runs * 4, [&] { bytes = serialize_model(forest); });
  std::string packed;
  const double compress_s = median_time(runs * 4, [&] { packed = zstd_compress(bytes, 3); });
  std::string unpacked;
  const double decompress_s = median_time(runs * 4, [&] { unpacked = zstd_decompress(packed, bytes.size()); });
  std::unique_ptr<Model> loaded;
  const double deserialize_s = median_time(runs * 4, [&] { loaded = deserialize_model(unpacked, "random_forest"); });
  const bool identical = loaded->predict_proba(test.x) == forest.predict_proba(test.x);
  const double predict_s = median_time(runs * 4, [&] { (void)forest.predict_proba(test.x); });

  fmt::print("\nrandom_forest (100 trees, sqrt features, bootstrap, unlimited depth):\n");
  fmt::print("  training, all cores        {:>9.1f} ms   (1 thread: {:.1f} ms)\n", f.train_s * 1e3, train_1thread * 1e3);
  fmt::print("  nodes                      {:>9}\n", f.nodes);
  fmt::print("  archive raw                {:>9} bytes  {:.2f} bytes/node\n", bytes.size(), double(bytes.size()) / double(f.nodes));
  fmt::print("  archive zstd -3            {:>9} bytes  {:.2f} bytes/node, {:.1f}% smaller than raw\n", packed.size(),
             double(packed.size()) / double(f.nodes), 100.0 * (1.0 - double(packed.size()) / double(bytes.size())));
  fmt::print("  serialize                  {:>9.2f} ms\n", serialize_s * 1e3);
  fmt::print("  zstd -3 compress           {:>9.2f} ms\n", compress_s * 1e3);
  fmt::print("  zstd decompress            {:>9.2f} ms\n", decompress_s * 1e3);
  fmt::print("  deserialize (+ checks)     {:>9.2f} ms\n", deserialize_s * 1e3);
  fmt::print("  serialize + compress       {:>9.2f} ms\n", (serialize_s + compress_s) * 1e3);
  fmt::print("  decompress + deserialize   {:>9.2f} ms\n", (decompress_s + deserialize_s) * 1e3);
  fmt::print("  predict_proba, {} rows   {:>9.2f} ms\n", test.rows(), predict_s * 1e3);
  fmt::print("  loaded model predicts identically: {}\n", identical ? "yes" : "NO");

  if (!json_file.empty()) {
    std::ofstream out(json_file);
    out << fmt::format(
        R"({{"train_s": {}, "train_1thread_s": {}, "f1": {}, "accuracy": {}, "auc": {}, "nodes": {}, "raw_bytes": {}, )"
        R"("zstd_bytes": {}, "serialize_s": {}, "compress_s": {}, "decompress_s": {}, "deserialize_s": {}, "identical": {}}})",
        f.train_s, train_1thread, f.metrics.f1, f.metrics.accuracy, f.metrics.roc_auc, f.nodes, bytes.size(),
        packed.size(), serialize_s, compress_s, decompress_s, deserialize_s, identical ? "true" : "false");
    out << "\n";
  }
  return identical ? 0 : 1;
}
