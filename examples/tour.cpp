// A scripted tour of the modelreg library: register three versions of a fraud model with metrics,
// features and lineage, promote with a guard, roll back, list, compare, load and verify.
// Run it with `./run.sh demo` (or build/examples/tour [DB]).
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include <fmt/format.h>

#include "modelreg/registry.hpp"

namespace {

// Stand-in model bytes: a weight table with some structure, so zstd has something to find.
std::string fake_model(unsigned seed, std::size_t size) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((rng() % 16) + (i % 64 == 0 ? 100 : 0));
  return bytes;
}

void show(const modelreg::ModelVersion& v) {
  fmt::print("  {}{}  f1={:.3f}  {} -> {} bytes (x{:.2f})  sha256 {}…\n", v.ref_string(),
             v.label ? " (" + *v.label + ")" : std::string(), v.metrics.at("f1"), v.blob.raw_size,
             v.blob.stored_size, v.blob.ratio(), v.blob.sha256.substr(0, 12));
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path db = argc > 1 ? argv[1] : "tour.db";
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");

  try {
    modelreg::Registry registry(db);
    fmt::print("modelreg tour — database {} (schema version {})\n\n", db.string(), registry.schema_version());

    modelreg::NewVersion spec;
    spec.model = "fraud";
    spec.format = "bytes";
    spec.type_name = "LogisticRegression";
    spec.features = {{"amount"}, {"hour"}, {"merchant_risk"}, {"card_age_days"}};
    spec.params = {{"C", "1.0"}, {"max_iter", "100"}};
    spec.datasets = {{"s3://fraud/2026-10.csv", std::nullopt, "train"}};

    fmt::print("1. register three versions\n");
    spec.metrics = {{"f1", 0.81}, {"auc", 0.90}};
    spec.label = "v1.0.0";
    auto v1 = registry.register_bytes(spec, fake_model(1, 3 << 20));
    show(v1);
    spec.metrics = {{"f1", 0.86}, {"auc", 0.93}};
    spec.label = "v1.1.0";
    spec.parents = {{modelreg::ModelRef::parse("fraud@v1.0.0"), "retrained_from"}};
    auto v2 = registry.register_bytes(spec, fake_model(2, 3 << 20));
    show(v2);
    spec.metrics = {{"f1", 0.79}, {"auc", 0.91}};
    spec.label = "v2.0.0-rc1";
    spec.parents = {{modelreg::ModelRef::parse("fraud@2"), "fine_tuned_from"}};
    auto v3 = registry.register_bytes(spec, fake_model(3, 3 << 20));
    show(v3);

    fmt::print("\n2. promote fraud@1, then fraud@2 guarded by f1\n");
    registry.promote(modelreg::ModelRef::parse("fraud@1"), {.reason = "first release"});
    auto t = registry.promote(modelreg::ModelRef::parse("fraud@2"),
                              {.reason = "better f1", .require_better = "f1"});
    fmt::print("  active: fraud@{} (was fraud@{})\n", t.to_version, t.from_version.value_or(0));

    fmt::print("\n3. a guarded promotion of a worse version is refused\n");
    try {
      registry.promote(modelreg::ModelRef::parse("fraud@3"), {.reason = "try rc1", .require_better = "f1"});
    } catch (const modelreg::Error& e) {
      fmt::print("  refused ({}): {}\n", modelreg::to_string(e.code()), e.what());
    }

    fmt::print("\n4. promote it anyway, then roll back\n");
    registry.promote(modelreg::ModelRef::parse("fraud@3"), {.reason = "canary"});
    auto back = registry.rollback("fraud", {.reason = "canary raised false positives"});
    fmt::print("  rolled back fraud@{} -> fraud@{}\n", *back.from_version, back.to_version);
    back = registry.rollback("fraud", {.reason = "walk further back"});
    fmt::print("  rolled back fraud@{} -> fraud@{}\n", *back.from_version, back.to_version);

    fmt::print("\n5. versions with f1 >= 0.8, best first\n");
    modelreg::VersionQuery q;
    q.where.push_back(modelreg::MetricCondition::parse("f1 >= 0.8"));
    q.order_by_metric = "f1";
    for (const auto& v : registry.list_versions("fraud", q)) show(v);

    fmt::print("\n6. compare fraud@1 and fraud@2\n");
    for (const auto& c : registry.compare(modelreg::ModelRef::parse("fraud@1"), modelreg::ModelRef::parse("fraud@2"))) {
      fmt::print("  {:<4} {:.3f} -> {:.3f}  ({:+.3f})\n", c.metric, *c.a, *c.b, *c.difference());
    }

    fmt::print("\n7. ancestry of fraud@3\n");
    for (const auto& e : registry.ancestors(modelreg::ModelRef::parse("fraud@3"))) {
      fmt::print("  depth {}: {} {} {}\n", e.depth, e.child.to_string(), e.relation, e.parent.to_string());
    }

    fmt::print("\n8. load the active version back (checksum verified)\n");
    auto active = registry.get(modelreg::ModelRef::parse("fraud"));
    std::string bytes = registry.load_bytes(modelreg::ModelRef::parse("fraud"));
    fmt::print("  fraud@active is fraud@{}: {} bytes, identical to what was registered: {}\n", active.id.number,
               bytes.size(), bytes == fake_model(static_cast<unsigned>(active.id.number), 3 << 20) ? "yes" : "NO");

    fmt::print("\n9. the audit log\n");
    for (const auto& e : registry.history("fraud")) {
      fmt::print("  {}  {:<9} v{:<2} by {:<8} {}\n", e.at, to_string(e.kind), e.version.value_or(0), e.actor, e.reason);
    }
    fmt::print("\nexplore it with SQL: sqlite3 {} 'SELECT * FROM model_versions'\n", db.string());
  } catch (const modelreg::Error& e) {
    fmt::print(stderr, "error ({}): {}\n", modelreg::to_string(e.code()), e.what());
    return 1;
  }
  return 0;
}
