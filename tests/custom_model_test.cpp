// A model type defined outside the library is saved and loaded through the base pointer exactly
// like the built-in ones (the README shows the same class).
#include <modelreg/model_serialization.hpp>  // first: the archives must be seen before the exports

#include <cmath>
#include <cstring>

#include <doctest/doctest.h>

#include "model_test_support.hpp"
#include "modelreg/model_archive.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

// A weighted vote of per-feature cut-offs: p = sigmoid(Σ weight_j · [x_j > cut_j] + bias).
class CutoffVote final : public Model {
 public:
  CutoffVote() = default;
  CutoffVote(std::vector<double> cuts, std::vector<double> weights, double bias, std::string note)
      : cuts_(std::move(cuts)), weights_(std::move(weights)), bias_(bias), note_(std::move(note)) {}

  std::string type_name() const override { return "cutoff_vote"; }
  std::size_t n_features() const override { return cuts_.size(); }
  std::map<std::string, std::string> hyperparameters() const override { return {{"note", note_}}; }

  template <class Archive>
  void serialize(Archive& archive, unsigned version) {
    check_class_version<CutoffVote>(version, "cutoff_vote");
    archive & boost::serialization::base_object<Model>(*this);
    serialize_vector(archive, cuts_);
    serialize_vector(archive, weights_);
    archive & bias_ & note_;  // std::string: Boost's own, length-checked by ModelInputArchive
  }

 protected:
  void compute(MatrixView x, std::span<double> out) const override {
    for (std::size_t r = 0; r < x.rows(); ++r) {
      double s = bias_;
      for (std::size_t j = 0; j < cuts_.size(); ++j) s += x(r, j) > cuts_[j] ? weights_[j] : 0.0;
      out[r] = 1 / (1 + std::exp(-s));
    }
  }

 private:
  std::vector<double> cuts_;
  std::vector<double> weights_;
  double bias_ = 0;
  std::string note_;
};

// Exported, but under a key that is not its type_name().
class Misnamed final : public Model {
 public:
  std::string type_name() const override { return "misnamed"; }
  std::size_t n_features() const override { return 1; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }
  template <class Archive>
  void serialize(Archive& archive, unsigned) {
    archive & boost::serialization::base_object<Model>(*this);
  }

 protected:
  void compute(MatrixView, std::span<double> out) const override { std::fill(out.begin(), out.end(), 0.5); }
};

// Never exported.
class Unexported final : public Model {
 public:
  std::string type_name() const override { return "unexported"; }
  std::size_t n_features() const override { return 1; }
  std::map<std::string, std::string> hyperparameters() const override { return {}; }
  template <class Archive>
  void serialize(Archive& archive, unsigned) {
    archive & boost::serialization::base_object<Model>(*this);
  }

 protected:
  void compute(MatrixView, std::span<double> out) const override { std::fill(out.begin(), out.end(), 0.5); }
};

CutoffVote example() {
  return CutoffVote({0.0, 0.5, -1.0, 0.2, 0.0, 0.0, 0.1, 0.0, 0.0, 0.3}, {1.0, -0.5, 2.0, 0.25, 0, 0, 0.5, 0, 1, -1}, -1.5,
                    "hand-made");
}

}  // namespace

BOOST_CLASS_VERSION(CutoffVote, 1)
BOOST_CLASS_EXPORT_GUID(CutoffVote, "cutoff_vote")
BOOST_CLASS_EXPORT_GUID(Misnamed, "not_misnamed")

TEST_CASE("a user-defined model type round-trips through the base pointer") {
  const CutoffVote model = example();
  const std::string bytes = serialize_model(model);
  CHECK(inspect_model_archive(bytes).type_name == "cutoff_vote");
  const std::unique_ptr<Model> loaded = deserialize_model(bytes, "cutoff_vote");
  REQUIRE(dynamic_cast<const CutoffVote*>(loaded.get()) != nullptr);
  CHECK(loaded->hyperparameters() == model.hyperparameters());
  const auto fresh = test::fresh_rows();
  const auto expected = model.predict_proba(fresh.x);
  const auto got = loaded->predict_proba(fresh.x);
  CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(double)) == 0);
  CHECK(code_of([&] { (void)deserialize_model(bytes, "random_forest"); }) == Errc::validation_failed);
}

TEST_CASE("a user-defined type gets the same protection against damaged archives") {
  const std::string bytes = serialize_model(example());
  for (std::size_t size = 0; size < bytes.size(); size += 3) {
    CHECK(code_of([&] { (void)deserialize_model(std::string_view(bytes).substr(0, size)); }) == Errc::corruption);
  }
}

TEST_CASE("a class that is not exported cannot be saved, and the error says how to export it") {
  const std::string message = message_of([] { (void)serialize_model(Unexported()); });
  CHECK(contains(message, "not exported"));
  CHECK(contains(message, "BOOST_CLASS_EXPORT_GUID(YourClass, \"unexported\")"));
}

TEST_CASE("a class exported under another name than its type_name() cannot be saved") {
  CHECK(contains(message_of([] { (void)serialize_model(Misnamed()); }),
                 "exported as 'not_misnamed' but its type_name() is 'misnamed'"));
}
