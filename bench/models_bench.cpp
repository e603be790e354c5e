// The model benchmark: the seed task (10,000 training rows × 20 features, 5% positives) for every
// built-in type, and the 100-tree forest's training time, quality, size, (de)serialization in memory,
// and its save / load through the Registry end to end.
//
//   models_bench [--out DIR] [--runs N] [--json FILE]
//
// Writes DIR/train.csv and DIR/test.csv (so bench/sklearn_compare.py trains on exactly the same
// rows), trains on the rows read back from train.csv, evaluates on test.csv, prints a table and,
// with --json, the numbers for bench/run.sh. Timings are medians of N runs (default 5).
//
// The registry databases live in a fresh directory under DIR (so on the disk the data is on, where
// an fsync costs what it costs), removed at exit. Each timed save goes into a fresh database: a
// second save of identical bytes would be deduplicated by SHA-256 and skip the blob write.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
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
#include "modelreg/registry.hpp"

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

double median(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// A directory made by mkdtemp, removed with everything in it when this goes out of scope.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(const std::filesystem::path& parent) {
    std::string pattern = (parent / "registry-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a directory under " + parent.string());
    path_ = pattern;
  }
  ~TemporaryDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

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
    row.metrics = *evaluate(*model, test).binary;
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

  // The registry path end to end. save_model = probe + serialize + SHA-256 + zstd -3 + SQLite
  // commit; load_model = read + checksums + decompress + deserialize + validation (header, type,
  // feature count, 16-row probe). Opening a Registry is not timed.
  NewVersion forest_version;
  forest_version.model = "fraud_forest";
  forest_version.metrics = {{"f1", f.metrics.f1}, {"accuracy", f.metrics.accuracy}, {"roc_auc", f.metrics.roc_auc}};
  for (const auto& name : train.feature_names) forest_version.features.push_back({name, "float64"});
  forest_version.notes = "bench/models_bench.cpp";
  const TemporaryDirectory db_root(out_dir);
  int db_count = 0;
  std::uint64_t stored_bytes = 0;
  auto save_in_fresh_database = [&](bool synchronous_full, std::uint64_t chunk_size) {
    const std::filesystem::path dir = db_root.path() / fmt::format("db{}", db_count++);
    std::filesystem::create_directory(dir);
    double elapsed = 0;
    {
      Options options;
      options.synchronous_full = synchronous_full;
      options.chunk_size = chunk_size;
      Registry registry(dir / "registry.db", options);
      const auto start = std::chrono::steady_clock::now();
      const ModelVersion v = registry.save_model(forest, forest_version, test.x);
      elapsed = seconds_since(start);
      stored_bytes = v.blob.stored_size;
    }
    std::filesystem::remove_all(dir);
    return elapsed;
  };
  // Diagnostic: the same save with chunk buffers sized near the archive (512 KiB, still one
  // chunk) instead of Options' default 4 MiB, which BlobStore::write allocates and zero-fills
  // whatever the input size.
  constexpr std::uint64_t kSmallChunk = 512u << 10;
  const std::uint64_t default_chunk = Options{}.chunk_size;
  std::vector<double> save_full_times;
  std::vector<double> save_normal_times;
  std::vector<double> save_full_small_chunk_times;
  for (int i = 0; i < runs; ++i) {  // interleaved, so every variant sees the same disk weather
    save_full_times.push_back(save_in_fresh_database(true, default_chunk));
    save_normal_times.push_back(save_in_fresh_database(false, default_chunk));
    save_full_small_chunk_times.push_back(save_in_fresh_database(true, kSmallChunk));
  }
  const double registry_save_full_s = median(save_full_times);
  const double registry_save_normal_s = median(save_normal_times);
  const double registry_save_full_small_chunk_s = median(save_full_small_chunk_times);

  const std::filesystem::path load_db = db_root.path() / "load.db";
  {
    Registry writer(load_db);
    (void)writer.save_model(forest, forest_version, test.x);
  }
  Registry reader(load_db);  // a new connection: SQLite's page cache starts empty (the OS cache does not)
  const ModelRef ref = ModelRef::parse(forest_version.model + "@1");
  auto start = std::chrono::steady_clock::now();
  LoadedModel from_registry = reader.load_model(ref);
  const double registry_load_first_s = seconds_since(start);
  const double registry_load_s = median_time(runs * 4, [&] { from_registry = reader.load_model(ref); });
  const double registry_load_bytes_s = median_time(runs * 4, [&] { (void)reader.load_bytes(ref); });
  const bool registry_identical = from_registry.model->predict_proba(test.x) == forest.predict_proba(test.x);

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

  fmt::print("\nrandom_forest through the registry (SQLite WAL, {} stored bytes, databases under {}/):\n",
             stored_bytes, out_dir.string());
  auto timing = [](std::string_view label, double s, std::string_view note = {}) {
    fmt::print("  {:<33}{:>8.2f} ms{}{}\n", label, s * 1e3, note.empty() ? "" : "   ", note);
  };
  timing("save_model, synchronous=FULL", registry_save_full_s, "(first save into a fresh database, each run)");
  timing("save_model, synchronous=NORMAL", registry_save_normal_s);
  timing("save_model, FULL, 512 KiB chunks", registry_save_full_small_chunk_s,
         fmt::format("(diagnostic; the default chunk_size is {} KiB)", default_chunk >> 10));
  timing("load_model, warm", registry_load_s, "(read, verify, decompress, deserialize, validate)");
  timing("load_model, first after opening", registry_load_first_s);
  timing("load_bytes, warm", registry_load_bytes_s, "(read, verify, decompress only)");
  fmt::print("  registry-loaded model predicts identically: {}\n", registry_identical ? "yes" : "NO");

  if (!json_file.empty()) {
    std::ofstream out(json_file);
    out << fmt::format(
        R"({{"train_s": {}, "train_1thread_s": {}, "f1": {}, "accuracy": {}, "auc": {}, "nodes": {}, "raw_bytes": {}, )"
        R"("zstd_bytes": {}, "serialize_s": {}, "compress_s": {}, "decompress_s": {}, "deserialize_s": {}, "identical": {}, )"
        R"("registry_stored_bytes": {}, "registry_save_full_s": {}, "registry_save_normal_s": {}, "registry_load_s": {}, )"
        R"("registry_save_full_512k_chunks_s": {}, "registry_load_first_s": {}, "registry_load_bytes_s": {}, )"
        R"("registry_identical": {}}})",
        f.train_s, train_1thread, f.metrics.f1, f.metrics.accuracy, f.metrics.roc_auc, f.nodes, bytes.size(),
        packed.size(), serialize_s, compress_s, decompress_s, deserialize_s, identical ? "true" : "false", stored_bytes,
        registry_save_full_s, registry_save_normal_s, registry_load_s, registry_save_full_small_chunk_s,
        registry_load_first_s, registry_load_bytes_s,
        registry_identical ? "true" : "false");
    out << "\n";
  }
  return identical && registry_identical ? 0 : 1;
}
