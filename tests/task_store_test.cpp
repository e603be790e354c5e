// The task of a saved model (binary, multiclass with integer or string classes, regression) is
// stored with its version, checked when the model is loaded, and kept by bundles and migrations.
#include <modelreg/model_serialization.hpp>  // first: the archives must be seen before the exports

#include <cmath>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "store/database.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::ref;
using test::spec;

namespace {

// Softmax over k linear scores (one weight a class on the first feature): a minimal multiclass model.
class SoftmaxLine final : public Model {
 public:
  SoftmaxLine() = default;
  explicit SoftmaxLine(ClassLabels classes, double shift = 0) : classes_(std::move(classes)), shift_(shift) {}
  std::string type_name() const override { return "softmax_line"; }
  std::size_t n_features() const override { return 2; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }
  Task task() const override { return Task::multiclass; }
  ClassLabels classes() const override { return classes_; }
  template <class Archive>
  void serialize(Archive& archive, unsigned) {
    archive & boost::serialization::base_object<Model>(*this);
    archive & classes_ & shift_;
  }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    const std::size_t k = classes_.size();
    for (std::size_t r = 0; r < x.rows(); ++r) {
      double total = 0;
      for (std::size_t c = 0; c < k; ++c) total += out[r * k + c] = std::exp((static_cast<double>(c) + shift_) * x(r, 0));
      for (std::size_t c = 0; c < k; ++c) out[r * k + c] /= total;
    }
  }

 private:
  ClassLabels classes_;
  double shift_ = 0;
};

// y = 2 x0 - x1 + offset.
class Line final : public Model {
 public:
  Line() = default;
  explicit Line(double offset) : offset_(offset) {}
  std::string type_name() const override { return "line"; }
  std::size_t n_features() const override { return 2; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }
  Task task() const override { return Task::regression; }
  template <class Archive>
  void serialize(Archive& archive, unsigned) {
    archive & boost::serialization::base_object<Model>(*this);
    archive & offset_;
  }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    for (std::size_t r = 0; r < x.rows(); ++r) out[r] = 2 * x(r, 0) - x(r, 1) + offset_;
  }

 private:
  double offset_ = 0;
};

// p = sigmoid(x0 - x1): a binary model of 0/1 labels, as every model saved before schema 5.
class Sigmoid final : public Model {
 public:
  std::string type_name() const override { return "sigmoid_diff"; }
  std::size_t n_features() const override { return 2; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }
  template <class Archive>
  void serialize(Archive& archive, unsigned) {
    archive & boost::serialization::base_object<Model>(*this);
  }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    for (std::size_t r = 0; r < x.rows(); ++r) out[r] = 1 / (1 + std::exp(x(r, 1) - x(r, 0)));
  }
};

NewVersion model_spec(const std::string& name) {
  NewVersion s;
  s.model = name;
  return s;
}

Matrix rows() { return Matrix({0.5, 1.0, -1.0, 2.0, 3.0, 0.0}, 2); }

}  // namespace

BOOST_CLASS_EXPORT_GUID(SoftmaxLine, "softmax_line")
BOOST_CLASS_EXPORT_GUID(Line, "line")
BOOST_CLASS_EXPORT_GUID(Sigmoid, "sigmoid_diff")

TEST_CASE("each task is stored with its version and the model loads back validated against it") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  const SoftmaxLine strings(ClassLabels::strings({"low", "mid", "high"}));
  const SoftmaxLine integers(ClassLabels::integers({3, 7, 11, 20}));
  const Line line(0.5);
  reg.save_model(strings, model_spec("route"), rows());
  reg.save_model(integers, model_spec("bucket"), rows());
  reg.save_model(line, model_spec("eta"), rows());

  const ModelVersion s = reg.get(ref("route@1"));
  REQUIRE(s.task);
  CHECK(s.task->task == Task::multiclass);
  CHECK(s.task->classes == ClassLabels::strings({"low", "mid", "high"}));
  CHECK(s.task->n_outputs() == 3);
  REQUIRE(s.probe);
  CHECK(s.probe->outputs.size() == 3 * 3);  // k probabilities a probe row
  const ModelVersion i = reg.get(ref("bucket@1"));
  CHECK(i.task->classes.are_integers());
  CHECK(i.task->classes.integer(3) == 20);
  const ModelVersion e = reg.get(ref("eta@1"));
  CHECK(e.task->task == Task::regression);
  CHECK(e.task->classes.empty());

  auto loaded = reg.load_model(ref("route@1"));
  CHECK(loaded.model->predict_proba(rows()) == strings.predict_proba(rows()));
  CHECK(reg.load_model(ref("eta@1")).model->predict_values(rows()) == std::vector<double>{0.5, -3.5, 6.5});
  CHECK(reg.load_model(ref("bucket@1")).model->predict(rows()) == integers.predict(rows()));

  // SQL users see the task by name and number.
  auto d = test::raw(dir / "r.db", false);
  CHECK(d.execAndGet("SELECT classes FROM version_tasks WHERE model = 'route'").getString() == R"(["low","mid","high"])");
  CHECK(d.execAndGet("SELECT n_outputs FROM version_probes WHERE model = 'bucket'").getInt() == 4);
}

TEST_CASE("the schema keeps tasks consistent and sealed") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  {
    Registry reg(db);
    reg.save_model(SoftmaxLine(ClassLabels::strings({"a", "b", "c"})), model_spec("m"), rows());
  }
  auto try_sql = [&](const std::string& sql) {
    try {
      test::raw(db).exec(sql);
      return std::string();
    } catch (const SQLite::Exception& e) {
      return std::string(e.what());
    }
  };
  CHECK_FALSE(try_sql("UPDATE tasks SET classes = '[\"a\",\"b\",\"d\"]'").empty());
  CHECK_FALSE(try_sql("DELETE FROM tasks").empty());
  CHECK_FALSE(try_sql("UPDATE probes SET n_outputs = 1").empty());
  // Rows that contradict themselves are refused even before a version seals them.
  for (const char* bad : {"INSERT INTO tasks VALUES (99, 'binary', 'integer', '[0,1,2]', 1)",
                          "INSERT INTO tasks VALUES (99, 'multiclass', 'string', '[\"a\",\"b\"]', 2)",
                          "INSERT INTO tasks VALUES (99, 'multiclass', 'string', '[\"a\",\"b\",\"c\"]', 1)",
                          "INSERT INTO tasks VALUES (99, 'regression', 'integer', '[0,1]', 1)",
                          "INSERT INTO tasks VALUES (99, 'binary', 'integer', 'not json', 1)",
                          "INSERT INTO tasks VALUES (99, 'ranking', NULL, NULL, 1)"}) {
    CAPTURE(bad);
    CHECK_FALSE(try_sql(std::string("BEGIN; ") + bad + "; ROLLBACK").empty());
    try_sql("ROLLBACK");
  }
  Registry reg(db);
  CHECK(reg.check().ok());
}

TEST_CASE("a stored task the model contradicts fails validation at the task or classes check") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db);
  reg.save_model(SoftmaxLine(ClassLabels::strings({"a", "b", "c"})), model_spec("m"), rows());
  {
    auto d = test::raw(db);
    d.exec("DROP TRIGGER tasks_immutable");
    d.exec(R"(UPDATE tasks SET classes = '["a","b","z"]')");
  }
  CHECK_THROWS_WITH_AS(reg.load_model(ref("m@1")), doctest::Contains("validation failed at the classes check"), Error);
  {
    auto d = test::raw(db);
    d.exec("UPDATE tasks SET task = 'regression', label_type = NULL, classes = NULL, n_outputs = 1");
  }
  CHECK_THROWS_WITH_AS(reg.load_model(ref("m@1")), doctest::Contains("validation failed at the task check"), Error);
}

TEST_CASE("bundles carry the task; a bundle or registry from before tasks holds binary 0/1 models") {
  test::TempDir dir;
  Registry source(dir / "a.db");
  source.save_model(SoftmaxLine(ClassLabels::integers({1, 2, 3})), model_spec("m"), rows());
  source.save_model(Line(2), model_spec("r"), rows());
  source.export_bundle({ref("m@1"), ref("r@1")}, dir / "b.mrb");
  Registry target(dir / "b.db");
  target.import_bundle(dir / "b.mrb");
  CHECK(target.get(ref("m@1")).task == source.get(ref("m@1")).task);
  CHECK(target.get(ref("r@1")).task->task == Task::regression);
  CHECK_NOTHROW(target.load_model(ref("m@1")));
  CHECK_NOTHROW(target.load_model(ref("r@1")));

  // A bundle whose task contradicts its probe is refused, and nothing is imported.
  {
    SQLite::Database b(dir / "b.mrb", SQLite::OPEN_READWRITE);
    b.exec(R"(UPDATE bundle_versions SET metadata = json_set(metadata, '$.task.classes', json('[1,2,3,4]')) WHERE model = 'm')");
  }
  Registry empty(dir / "c.db");
  const std::string before = test::dump(dir / "c.db");
  CHECK_THROWS_WITH_AS(empty.import_bundle(dir / "b.mrb"), doctest::Contains("probe of m@1 is malformed"), Error);
  CHECK(test::dump(dir / "c.db") == before);
}

TEST_CASE("a registry at schema 4 migrates: its saved models become binary 0/1 and keep their probes") {
  test::TempDir dir;
  {
    Registry modern(dir / "modern.db");
    modern.save_model(Sigmoid(), model_spec("old"), rows());
    modern.register_bytes(spec("blob", "onnx"), "opaque");
  }
  const auto db = dir / "v4.db";
  {
    SQLite::Database d(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    detail::apply_migrations(d, detail::embedded_migrations().first(4), "t0");
    // (The copy runs without foreign key enforcement; check() below verifies every key.)
    auto run = [&](const std::string& sql) {
      INFO(sql);
      REQUIRE_NOTHROW(d.exec(sql));
    };
    run("ATTACH '" + (dir / "modern.db").string() + "' AS n");
    run("BEGIN");
    run("INSERT INTO models SELECT * FROM n.models");
    run("INSERT INTO blob_chunks SELECT * FROM n.blob_chunks");
    run("INSERT INTO blobs SELECT * FROM n.blobs");
    for (const char* t : {"features", "params", "metrics"}) {
      run(fmt::format("INSERT INTO {0} SELECT * FROM n.{0}", t));
    }
    run("INSERT INTO probes SELECT version_id, n_rows, n_features, inputs, outputs FROM n.probes");
    run("INSERT INTO versions SELECT * FROM n.versions");
    run("COMMIT");
    run("DETACH n");
  }
  const std::string probe_before =
      test::raw(db, false).execAndGet("SELECT hex(inputs) || hex(outputs) FROM probes").getString();
  Registry reg(db);
  CHECK(reg.schema_version() == Registry::supported_schema_version());
  const ModelVersion v = reg.get(ref("old@1"));
  REQUIRE(v.task);
  CHECK(v.task->task == Task::binary);
  CHECK(v.task->classes == ClassLabels::zero_one());
  CHECK_FALSE(reg.get(ref("blob@1")).task);  // opaque artifacts have no task
  CHECK(test::raw(db, false).execAndGet("SELECT hex(inputs) || hex(outputs) FROM probes").getString() == probe_before);
  CHECK_NOTHROW(reg.load_model(ref("old@1")));
  CHECK(reg.check().ok());
}
