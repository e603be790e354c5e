// A registry for the web UI's benchmark (bench/ui_bench.py): one model, `big`, with N versions
// (default 100,000), registered through the public API as a team would register them.
//
//   ui_registry DB [N]
//
// Each version: 256 bytes of its own (zstd level 1), format onnx, 4 metrics (accuracy, auc, f1
// uniform-ish in [0.5, 0.95] by a fixed generator, log_loss), 2 params, 4 features, 2 tags
// (stage prod 10% / staging 20% / dev 70%, team), lineage `retrained_from` the previous version;
// every 1,000th is promoted. synchronous=NORMAL keeps the build to a few minutes. A DB that
// exists is refused (delete it to rebuild): the script reuses a finished one, named by N.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "modelreg/registry.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: ui_registry DB [N]\n");
    return 2;
  }
  const std::filesystem::path db = argv[1];
  const std::int64_t n = argc == 3 ? std::stoll(argv[2]) : 100'000;
  if (std::filesystem::exists(db)) {
    std::fprintf(stderr, "%s exists; delete it to build it again\n", db.c_str());
    return 1;
  }
  modelreg::Options options;
  options.synchronous_full = false;
  options.default_actor = "bench";
  modelreg::Registry reg(db, options);
  std::uint64_t state = 42;
  auto next = [&state] {  // xorshift64*: the same registry on every run
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (state * 2685821657736338717ull) >> 11;
  };
  auto uniform = [&] { return static_cast<double>(next()) / static_cast<double>(1ull << 53); };
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t i = 1; i <= n; ++i) {
    modelreg::NewVersion spec;
    spec.model = "big";
    spec.format = "onnx";
    spec.type_name = "GradientBoostedTrees";
    spec.level = 1;
    const double f1 = 0.5 + 0.45 * uniform();
    spec.metrics = {{"accuracy", f1 + 0.02 * uniform()}, {"auc", 0.6 + 0.39 * uniform()}, {"f1", f1},
                    {"log_loss", 0.1 + 0.6 * uniform()}};
    spec.params = {{"max_depth", std::to_string(3 + i % 6)}, {"learning_rate", "0.1"}};
    spec.features = {{"amount", "float64"}, {"age", "float64"}, {"country", "float64"}, {"hour", "float64"}};
    const auto r = next() % 10;
    spec.tags = {{"stage", r == 0 ? "prod" : r < 3 ? "staging" : "dev"}, {"team", i % 2 ? "risk" : "growth"}};
    if (i > 1) spec.parents = {{modelreg::ModelRef::number("big", i - 1), "retrained_from"}};
    std::string bytes(256, '\0');
    for (auto& c : bytes) c = static_cast<char>(next());
    reg.register_bytes(spec, bytes);
    if (i % 1000 == 0) {
      reg.promote(modelreg::ModelRef::number("big", i), {});
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\r%lld versions, %.0f s", static_cast<long long>(i), s);
    }
  }
  std::fprintf(stderr, "\n");
  fmt::print("{} versions of big in {}\n", n, db.string());
  return 0;
}
