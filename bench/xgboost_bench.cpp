// The XGBoost import benchmark, the native half: bench/xgboost_bench.py trains the model, times
// XGBoost's own predictor and runs this on the same files in the same run.
//
//   xgboost_bench MODEL_FILE ROWS_F64 N_FEATURES [--runs N] [--dir DIR]
//
// Times (medians of N runs, default 15): read_xgboost_model (parse + convert) of MODEL_FILE; batch
// prediction of the rows (float64, row-major, NaN = missing) on 1 and 2 threads; import_xgboost
// (read + parse + convert + save with probe) into a fresh registry under DIR each run. Prints one
// JSON object: the timings in milliseconds, the stored size, and a checksum of the outputs.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "modelreg/registry.hpp"
#include "modelreg/xgboost.hpp"
#include "modelreg/xgboost_import.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <class F>
double median_ms(int runs, F&& f) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    f(i);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: xgboost_bench MODEL_FILE ROWS_F64 N_FEATURES [--runs N] [--dir DIR]\n");
    return 2;
  }
  const std::filesystem::path model_file = argv[1];
  const std::string rows_bytes = read_file(argv[2]);
  const std::size_t n_features = std::stoul(argv[3]);
  int runs = 15;
  std::filesystem::path dir = std::filesystem::temp_directory_path();
  for (int i = 4; i + 1 < argc; i += 2) {
    if (std::string_view(argv[i]) == "--runs") runs = std::stoi(argv[i + 1]);
    if (std::string_view(argv[i]) == "--dir") dir = argv[i + 1];
  }
  std::vector<double> values(rows_bytes.size() / sizeof(double));
  std::memcpy(values.data(), rows_bytes.data(), values.size() * sizeof(double));
  const modelreg::Matrix x(std::move(values), n_features);

  const std::string bytes = read_file(model_file);
  const double parse_ms = median_ms(runs, [&](int) { (void)modelreg::read_xgboost_model(bytes); });
  const modelreg::XGBoostFile file = modelreg::read_xgboost_model(bytes);
  const modelreg::XGBoostModel& model = file.model;

  std::vector<double> out(x.rows() * model.n_outputs());
  model.predict_outputs_on(x, out, 1);  // warm up
  const double predict1 = median_ms(runs, [&](int) { model.predict_outputs_on(x, out, 1); });
  const double predict2 = median_ms(runs, [&](int) { model.predict_outputs_on(x, out, 2); });
  double checksum = 0;
  for (double v : out) checksum += v;

  const std::filesystem::path work = dir / fmt::format("xgboost-bench-{}", ::getpid());
  std::filesystem::create_directories(work);
  std::uint64_t stored = 0, raw = 0;
  const double import_ms = median_ms(runs, [&](int run) {
    modelreg::Registry reg(work / fmt::format("r{}.db", run));
    modelreg::NewVersion spec;
    spec.model = "bench";
    const modelreg::ModelVersion v = modelreg::import_xgboost(reg, spec, model_file, x.view().slice(0, 16));
    stored = v.blob.stored_size;
    raw = v.blob.raw_size;
  });
  std::filesystem::remove_all(work);

  fmt::print(
      "{{\"parse_convert_ms\": {:.3f}, \"predict_1_thread_ms\": {:.3f}, \"predict_2_threads_ms\": {:.3f}, "
      "\"import_ms\": {:.3f}, \"stored_bytes\": {}, \"raw_bytes\": {}, \"trees\": {}, \"nodes\": {}, \"rows\": {}, "
      "\"output_sum\": {:.9g}}}\n",
      parse_ms, predict1, predict2, import_ms, stored, raw, model.tree_count(), model.node_count(), x.rows(), checksum);
  return 0;
}
