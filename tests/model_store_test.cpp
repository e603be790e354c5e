// Registry::save_model / load_model: models saved with a probe and loaded back only after the
// checksum, archive header, type, feature count and probe checks pass.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "modelreg/checksum.hpp"
#include "modelreg/labeled_data.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/training.hpp"
#include "modelreg/training_run.hpp"
#include "model_test_support.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path db = dir / "r.db";
  Registry reg{db};
  TrainTestSplit data = test::small_fraud();

  std::unique_ptr<Model> train(const std::string& type) {
    std::map<std::string, std::string> params;
    if (type == "random_forest" || type == "gradient_boosted_trees") params["n_estimators"] = "20";
    return train_model(type, data.train, params);
  }

  ModelVersion save(const Model& m, const std::string& name = "fraud") {
    NewVersion spec;
    spec.model = name;
    for (const auto& f : data.train.feature_names) spec.features.push_back({f, "float64"});
    spec.metrics = {{"auc", 0.9}};
    return reg.save_model(m, spec, data.test.x);
  }

  // Tampering as someone with write access to the file would: the triggers that keep versions
  // immutable are dropped first.
  void tamper(const std::string& sql) {
    auto d = test::raw(db);
    for (const char* t : {"versions_immutable", "features_kept", "probes_immutable", "versions_feature_count"}) {
      d.exec(fmt::format("DROP TRIGGER IF EXISTS {}", t));
    }
    d.exec(sql);
  }
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "every built-in model type saves and loads back with identical predictions") {
  const auto fresh = test::fresh_rows();
  for (const auto& type : built_in_model_types()) {
    CAPTURE(type);
    if (type == "linear_regression") continue;  // regression only: model_tasks_test.cpp
    const auto model = train(type);
    const ModelVersion v = save(*model, type);
    CHECK(v.format == kModelFormat);
    CHECK(v.type_name == type);
    CHECK(v.features.size() == model->n_features());
    CHECK(v.params == model->hyperparameters());
    REQUIRE(v.probe.has_value());
    CHECK(v.probe->inputs.rows() == 16);
    CHECK(v.probe->outputs == model->predict_proba(v.probe->inputs));
    CHECK(v.metrics.at("auc") == 0.9);

    const LoadedModel loaded = reg.load_model(ModelRef::latest(type));
    CHECK(loaded.version.id == v.id);
    CHECK(loaded.model->type_name() == type);
    CHECK(loaded.model->predict_proba(fresh.x) == model->predict_proba(fresh.x));  // bitwise
    CHECK(loaded.model->predict(fresh.x) == model->predict(fresh.x));
  }
}

TEST_CASE_FIXTURE(Fixture, "a model saved without data gets a fixed synthetic probe and default feature names") {
  const auto model = train("logistic_regression");
  NewVersion spec;
  spec.model = "plain";
  spec.params = {{"note", "extra"}};
  const ModelVersion v = reg.save_model(*model, spec);
  CHECK(v.features.front().name == "f0");
  CHECK(v.features.size() == model->n_features());
  CHECK(v.params.at("note") == "extra");
  CHECK(v.params.at("C") == model->hyperparameters().at("C"));
  REQUIRE(v.probe.has_value());
  CHECK(v.probe->inputs.rows() == 16);
  CHECK_NOTHROW(reg.load_model(ModelRef::latest("plain")));
}

TEST_CASE_FIXTURE(Fixture, "save refuses a wrong feature list, wrong probe width and a foreign format") {
  const auto model = train("decision_tree");
  NewVersion spec;
  spec.model = "m";
  spec.features = {{"only_one"}};
  CHECK(contains(message_of([&] { reg.save_model(*model, spec); }), "1 names but the decision_tree model takes 10"));
  spec.features.clear();
  Matrix narrow(3, 4);
  CHECK(code_of([&] { reg.save_model(*model, spec, narrow); }) == Errc::invalid_argument);
  spec.format = "onnx";
  CHECK(code_of([&] { reg.save_model(*model, spec); }) == Errc::invalid_argument);
  CHECK(reg.list_models().empty());
}

TEST_CASE_FIXTURE(Fixture, "a changed feature list fails the n_features check naming both values") {
  save(*train("logistic_regression"));
  tamper("DELETE FROM features WHERE position = 9");
  const std::string msg = message_of([&] { reg.load_model(ModelRef::parse("fraud@1")); });
  CHECK(code_of([&] { reg.load_model(ModelRef::parse("fraud@1")); }) == Errc::validation_failed);
  CHECK(contains(msg, "fraud@1"));
  CHECK(contains(msg, "n_features check"));
  CHECK(contains(msg, "takes 10 features but the version registers 9"));
}

TEST_CASE_FIXTURE(Fixture, "a tampered probe fails the probe check naming the row and both values") {
  save(*train("random_forest"));
  tamper("UPDATE probes SET outputs = zeroblob(128)");
  const std::string msg = message_of([&] { reg.load_model(ModelRef::parse("fraud@1")); });
  CHECK(contains(msg, "fraud@1: validation failed at the probe check: row "));
  CHECK(contains(msg, "was stored when it was saved"));
  // Skipping validation is explicit, and then the model loads.
  CHECK(reg.load_model(ModelRef::parse("fraud@1"), {.validate = false}).model->type_name() == "random_forest");
}

TEST_CASE_FIXTURE(Fixture, "a wrong stored type fails the type check before deserializing") {
  save(*train("gradient_boosted_trees"));
  tamper("UPDATE versions SET type_name = 'random_forest'");
  const std::string msg = message_of([&] { reg.load_model(ModelRef::parse("fraud@1")); });
  CHECK(code_of([&] { reg.load_model(ModelRef::parse("fraud@1")); }) == Errc::validation_failed);
  CHECK(contains(msg, "type check"));
  CHECK(contains(msg, "'gradient_boosted_trees' but the version was registered as 'random_forest'"));
}

TEST_CASE_FIXTURE(Fixture, "truncated or altered archives registered as models give errors, never a crash") {
  const auto model = train("random_forest");
  const std::string bytes = serialize_model(*model);
  for (std::size_t cut : {std::size_t{0}, std::size_t{7}, std::size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    CAPTURE(cut);
    NewVersion spec;
    spec.model = fmt::format("cut{}", cut);
    spec.format = std::string(kModelFormat);
    spec.type_name = "random_forest";
    reg.register_bytes(spec, std::string_view(bytes).substr(0, cut));
    const Errc code = code_of([&] { reg.load_model(ModelRef::latest(spec.model)); });
    CHECK((code == Errc::corruption || code == Errc::incompatible));
  }
  std::string flipped = bytes;
  flipped[flipped.size() / 3] ^= 0x40;
  NewVersion spec;
  spec.model = "flipped";
  spec.format = std::string(kModelFormat);
  spec.type_name = "random_forest";
  reg.register_bytes(spec, flipped);
  CHECK(code_of([&] { reg.load_model(ModelRef::parse("flipped@1")); }) == Errc::corruption);
}

TEST_CASE_FIXTURE(Fixture, "a corrupt stored chunk fails the checksum before anything is deserialized") {
  save(*train("decision_tree"));
  test::flip_chunk_byte(db, "SELECT rowid FROM blob_chunks LIMIT 1", 3, 0x01);
  CHECK(code_of([&] { reg.load_model(ModelRef::parse("fraud@1")); }) == Errc::corruption);
  CHECK(code_of([&] { reg.load_model(ModelRef::parse("fraud@1"), {.validate = false}); }) == Errc::corruption);
}

TEST_CASE_FIXTURE(Fixture, "an opaque artifact is not loaded as a model") {
  NewVersion spec;
  spec.model = "onnx";
  spec.format = "onnx";
  reg.register_bytes(spec, "opaque bytes");
  const std::string msg = message_of([&] { reg.load_model(ModelRef::parse("onnx@1")); });
  CHECK(contains(msg, "format check"));
  CHECK(contains(msg, "load_bytes"));
  CHECK(reg.load_bytes(ModelRef::parse("onnx@1")) == "opaque bytes");
}

TEST_CASE_FIXTURE(Fixture, "the probe travels in bundles, so imported models validate") {
  save(*train("logistic_regression"));
  const auto bundle = dir / "m.bundle";
  reg.export_bundle({ModelRef::parse("fraud@1")}, bundle);
  Registry other(dir / "other.db");
  other.import_bundle(bundle);
  const auto loaded = other.load_model(ModelRef::parse("fraud@1"));
  CHECK(loaded.version.probe->outputs == reg.get(ModelRef::parse("fraud@1")).probe->outputs);
}

TEST_CASE_FIXTURE(Fixture, "the schema keeps a committed probe immutable") {
  save(*train("logistic_regression"));
  auto d = test::raw(db);
  CHECK_THROWS(d.exec("UPDATE probes SET n_rows = 1"));
  CHECK_THROWS(d.exec("DELETE FROM probes"));
  CHECK(d.execAndGet("SELECT n_rows FROM version_probes WHERE model = 'fraud'").getInt() == 16);
}

TEST_CASE("a model whose archive spans many chunks loads streamed, identical, and damage in any chunk is caught") {
  test::TempDir dir;
  Options o;
  o.chunk_size = 64u << 10;  // the smallest chunk: a forest of a few hundred KiB spans several
  Registry reg(dir / "r.db", o);
  const TrainTestSplit data = test::small_fraud();
  NewVersion spec;
  spec.model = "forest";
  for (int level : {3, 0}) {  // zstd frames, and chunks stored raw (two forests: blobs are not shared)
    const auto forest = train_model("random_forest", data.train, {{"n_estimators", level == 3 ? "400" : "401"}});
    spec.level = level;
    spec.notes = fmt::format("level {}", level);
    const ModelVersion v = reg.save_model(*forest, spec, data.test.x);
    CAPTURE(level);
    CAPTURE(v.blob.raw_size);
    REQUIRE(v.blob.chunk_count >= 3);
    const auto loaded = reg.load_model(ModelRef::number("forest", v.id.number));
    CHECK(loaded.model->predict_proba(data.test.x) == forest->predict_proba(data.test.x));
  }
  // A byte of the last chunk of version 1 changed: nothing is returned.
  test::flip_chunk_byte(dir / "r.db",
                        "SELECT rowid FROM blob_chunks WHERE blob_id = (SELECT blob_id FROM versions WHERE number = 1) "
                        "ORDER BY seq DESC LIMIT 1");
  CHECK(code_of([&] { reg.load_model(ModelRef::parse("forest@1")); }) == Errc::corruption);
  CHECK(contains(message_of([&] { reg.load_model(ModelRef::parse("forest@1")); }), "forest@1"));
  CHECK_NOTHROW(reg.load_model(ModelRef::parse("forest@2")));
}

TEST_CASE_FIXTURE(Fixture, "train_version trains, evaluates and describes the version that save_model stores") {
  const auto csv = dir / "train.csv";
  write_csv(data.train, csv);
  TrainingRun run = train_version("random_forest", data, {{"n_estimators", "15"}, {"seed", "4"}},
                                  {.model = "fraud", .notes = "nightly", .label = "v7"}, {.train = csv});
  REQUIRE(run.model != nullptr);
  CHECK(run.model->type_name() == "random_forest");
  CHECK(run.train_seconds > 0);
  const BinaryMetrics expected = *evaluate(*run.model, data.test).binary;
  CHECK(run.evaluation.binary->f1 == expected.f1);
  CHECK(run.spec.metrics.at("f1") == expected.f1);
  CHECK(run.spec.metrics.at("accuracy") == expected.accuracy);
  CHECK(run.spec.metrics.at("train_rows") == static_cast<double>(data.train.rows()));
  CHECK(run.spec.metrics.at("test_rows") == static_cast<double>(data.test.rows()));
  CHECK(run.spec.metrics.at("train_seconds") == run.train_seconds);
  REQUIRE(run.spec.features.size() == data.train.n_features());
  CHECK(run.spec.features.front().name == data.train.feature_names.front());
  CHECK(run.spec.tags.at("target") == data.train.target_name);
  CHECK(run.spec.notes == "nightly");
  CHECK(run.spec.label == "v7");
  REQUIRE(run.spec.datasets.size() == 1);
  CHECK(run.spec.datasets[0].role == "train");
  CHECK(run.spec.datasets[0].sha256 == sha256_file(csv));

  const ModelVersion v = reg.save_model(*run.model, run.spec, data.test.x);
  CHECK(v.label == "v7");
  CHECK(v.params.at("n_estimators") == "15");
  CHECK(reg.load_model(ModelRef::number("fraud", v.id.number)).model->predict_proba(data.test.x) ==
        run.model->predict_proba(data.test.x));
}

TEST_CASE_FIXTURE(Fixture, "train_version refuses test rows that cannot evaluate the model") {
  TrainTestSplit no_test = data;
  no_test.test = LabeledData{};
  CHECK(code_of([&] { (void)train_version("decision_tree", no_test, {}); }) == Errc::invalid_argument);
  TrainTestSplit other_columns = data;
  other_columns.test.feature_names.back() = "renamed";
  CHECK(contains(message_of([&] { (void)train_version("decision_tree", other_columns, {}); }), "must match in name and order"));
  CHECK(contains(message_of([&] { (void)train_version("svm", data, {}); }), "unknown model type 'svm'"));
  CHECK(code_of([&] { (void)train_version("decision_tree", data, {}, {}, {.train = dir / "missing.csv"}); }) ==
        Errc::not_found);
}
