// bundle_fixture.hpp — the registry that bundle_fuzz imports into, shared with make_seeds.cpp so
// that the seed bundles meet it as intended: one seed adds versions to it (and repeats one it
// already holds: skipped as identical), another conflicts with it (refused).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "modelreg/registry.hpp"

namespace modelreg::fuzz {

// Identical metadata needs identical times and actor.
inline Options fixture_options() {
  Options o;
  o.synchronous_full = false;  // tmpfs, and nothing to survive
  o.default_actor = "fuzz";
  o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000)); };
  return o;
}

// fraud@1 (label v1.0.0): present in the fuzzed registry and in the seed bundles.
inline NewVersion fixture_fraud_v1() {
  NewVersion v;
  v.model = "fraud";
  v.format = "bytes";
  v.label = "v1.0.0";
  v.metrics = {{"f1", 0.5}};
  v.features = {{"amount"}, {"hour"}};
  v.tags = {{"team", "risk"}};
  return v;
}
inline const std::string kFixtureFraudV1Bytes = "fraud model, version 1";

// Creates the registry bundle_fuzz starts every input from.
inline void make_fixture(const std::filesystem::path& db) {
  Registry reg(db, fixture_options());
  reg.register_bytes(fixture_fraud_v1(), kFixtureFraudV1Bytes);
}

}  // namespace modelreg::fuzz
