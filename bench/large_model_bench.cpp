// Large models: one step per process, so that each step's peak memory is its own. Driven by
// bench/large_model.sh (which also runs the peers: zstd + sqlite3, and joblib); see
// docs/benchmarks.md, "Large models".
//
//   large_model_bench train --cache DIR [--trees N] [--rows N] [--features N]
//       Trains the forest once (make_classification, 5% positives, seed 42; RandomForest with
//       N trees fully grown, seed 1) and writes DIR/forest.archive (serialize_model), DIR/train.csv
//       (the same rows, for scikit-learn) and DIR/forest.json (nodes, sizes, training time).
//       Skips the work when DIR/forest.archive exists and deserializes with this build.
//   large_model_bench save-model --archive FILE --db DB [--normal]
//   large_model_bench register-bytes --archive FILE --db DB
//   large_model_bench load-model --db DB
//   large_model_bench load-bytes --db DB
//       One step each, printing one JSON line: the step's wall time in seconds and memory in KiB
//       (VmRSS at start of the process, VmRSS just before the step, VmHWM during the step — the
//       peak is reset through /proc/self/clear_refs just before the step starts).
//
// save-model deserializes the archive first (not timed), so the process holds the model as a
// caller of save_model would. The save steps open (create and migrate) the fresh database DB
// before the clock starts and close it inside the timing: closing the last connection checkpoints
// the WAL, which the sqlite3 shell of the limit pays as well. The load steps time opening the
// registry, the load, and nothing else; the loaded model is kept until after the measurement.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "modelreg/labeled_data.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/random_forest.hpp"
#include "modelreg/registry.hpp"

using namespace modelreg;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A field of /proc/self/status in KiB (VmRSS, VmHWM).
long status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0).
void reset_peak() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::string bytes;
  bytes.resize(std::filesystem::file_size(path));
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

NewVersion spec_for(std::string model) {
  NewVersion v;
  v.model = std::move(model);
  v.notes = "bench/large_model_bench.cpp";
  v.metrics = {{"f1", 0.5}};
  return v;
}

// The same archive bytes registered as an opaque artifact.
NewVersion bytes_spec() {
  NewVersion v = spec_for("forest");
  v.format = "bytes";
  return v;
}

struct StepMemory {
  long rss_start = 0;   // the process before anything
  long rss_before = 0;  // just before the step
  long hwm = 0;         // peak during the step
};

void print_step(std::string_view step, double seconds, const StepMemory& m, std::string_view extra = {}) {
  fmt::print("{{\"step\": \"{}\", \"seconds\": {:.6f}, \"rss_start_kib\": {}, \"rss_before_kib\": {}, "
             "\"hwm_kib\": {}{}{}}}\n",
             step, seconds, m.rss_start, m.rss_before, m.hwm, extra.empty() ? "" : ", ", extra);
}

int train(const std::filesystem::path& cache, std::size_t trees, std::size_t rows, std::size_t features) {
  std::filesystem::create_directories(cache);
  const auto archive = cache / "forest.archive";
  if (std::filesystem::exists(archive)) {
    try {
      const auto model = deserialize_model(read_file(archive), "random_forest");
      fmt::print(stderr, "cached model {} ({} bytes) loads with this build; not retraining\n", archive.string(),
                 std::filesystem::file_size(archive));
      return 0;
    } catch (const Error& e) {
      fmt::print(stderr, "cached model does not load ({}); retraining\n", e.what());
    }
  }
  ClassificationSpec spec;
  spec.rows = rows;
  spec.features = features;
  spec.positive_fraction = 0.05;
  spec.seed = 42;
  const LabeledData data = make_classification(spec);
  write_csv(data, cache / "train.csv");
  const auto start = Clock::now();
  const RandomForest forest = RandomForest::train(data, {.n_estimators = trees, .seed = 1});
  const double train_s = seconds_since(start);
  const std::string bytes = serialize_model(forest);
  {
    std::ofstream out(cache / "forest.archive.partial", std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write the archive");
  }
  std::filesystem::rename(cache / "forest.archive.partial", archive);
  std::ofstream(cache / "forest.json") << fmt::format(
      R"({{"trees": {}, "rows": {}, "features": {}, "nodes": {}, "raw_bytes": {}, "train_s": {:.3f}}})", trees, rows,
      features, forest.node_count(), bytes.size(), train_s)
                                       << "\n";
  fmt::print(stderr, "trained {} trees on {} x {} in {:.1f} s: {} nodes, archive {} bytes\n", trees, rows, features,
             train_s, forest.node_count(), bytes.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: large_model_bench train|save-model|register-bytes|load-model|load-bytes [options]\n");
    return 2;
  }
  const std::string command = argv[1];
  std::filesystem::path cache, archive, db;
  std::size_t trees = 500, rows = 100'000, features = 20;
  bool normal = false;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--cache") cache = value();
    else if (arg == "--archive") archive = value();
    else if (arg == "--db") db = value();
    else if (arg == "--trees") trees = std::stoul(value());
    else if (arg == "--rows") rows = std::stoul(value());
    else if (arg == "--features") features = std::stoul(value());
    else if (arg == "--normal") normal = true;
    else {
      fmt::print(stderr, "unknown option {}\n", arg);
      return 2;
    }
  }
  try {
    if (command == "train") return train(cache, trees, rows, features);

    StepMemory m;
    m.rss_start = status_kib("VmRSS");
    if (command == "save-model" || command == "register-bytes") {
      Options o;
      o.synchronous_full = !normal;
      std::optional<Registry> reg(std::in_place, db, o);  // created and migrated before the clock starts
      std::unique_ptr<Model> model;
      std::string bytes = read_file(archive);
      if (command == "save-model") {
        model = deserialize_model(bytes, "random_forest");
        std::string().swap(bytes);
      }
      ::malloc_trim(0);
      m.rss_before = status_kib("VmRSS");
      reset_peak();
      const auto start = Clock::now();
      const ModelVersion v = command == "save-model" ? reg->save_model(*model, spec_for("forest"))
                                                     : reg->register_bytes(bytes_spec(), bytes);
      reg.reset();  // closing checkpoints the WAL
      const double s = seconds_since(start);
      m.hwm = status_kib("VmHWM");
      print_step(command, s, m,
                 fmt::format(R"("raw_bytes": {}, "stored_bytes": {}, "chunks": {})", v.blob.raw_size,
                             v.blob.stored_size, v.blob.chunk_count));
      return 0;
    }
    if (command == "load-model" || command == "load-bytes") {
      m.rss_before = status_kib("VmRSS");
      reset_peak();
      const auto start = Clock::now();
      Registry reg(db);
      std::size_t size = 0;
      LoadedModel loaded;
      std::string bytes;
      if (command == "load-model") {
        loaded = reg.load_model(ModelRef::number("forest", 1));
        size = loaded.version.blob.raw_size;
      } else {
        bytes = reg.load_bytes(ModelRef::number("forest", 1));
        size = bytes.size();
      }
      const double s = seconds_since(start);
      m.hwm = status_kib("VmHWM");
      const long rss_after = status_kib("VmRSS");
      print_step(command, s, m, fmt::format(R"("raw_bytes": {}, "rss_after_kib": {})", size, rss_after));
      return 0;
    }
    fmt::print(stderr, "unknown command {}\n", command);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "large_model_bench {}: {}\n", command, e.what());
    return 1;
  }
}
