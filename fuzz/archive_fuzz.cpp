// Fuzzes the model archive loader: deserialize_model and inspect_model_archive
// (modelreg/model_archive.hpp), on the input as given and on the input with its checksum
// recomputed, so that mutations reach the header checks and the Boost payload decoder instead of
// stopping at the checksum. (The blob store's chunk decoding needs a database: bundle_fuzz
// reaches it through Registry::import_bundle.)
//
// Properties:
// - every failure is Error(corruption | incompatible | validation_failed), nothing else;
// - inspect_model_archive accepts every archive deserialize_model accepts, and agrees with it on
//   the type name and sizes;
// - with an expected type other than the archive's, loading is Error(validation_failed);
// - a loaded model predicts (ASan checks that trees stay inside their arrays) probabilities in
//   [0, 1] (or NaN), and serialize -> deserialize -> serialize is a fixed point with identical
//   predictions.
#include <xxhash.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "modelreg/matrix.hpp"
#include "modelreg/model.hpp"
#include "modelreg/model_archive.hpp"
// The built-in types must be linked in (their exports live in the library).
#include "modelreg/training.hpp"

namespace {

using modelreg::Errc;
using modelreg::fuzz::check;

constexpr std::size_t kChecksumOffset = 12;  // docs/model_format.md: checksum at [12, 20)
constexpr std::size_t kFrozenPrefix = 20;

// Rewrites the checksum so that the archive passes step 2 of the load checks.
std::string with_valid_checksum(std::string_view bytes) {
  std::string out(bytes);
  if (out.size() < kFrozenPrefix) return out;
  const std::uint64_t seed = XXH3_64bits(out.data(), kChecksumOffset);
  const std::uint64_t sum = XXH3_64bits_withSeed(out.data() + kFrozenPrefix, out.size() - kFrozenPrefix, seed);
  for (std::size_t i = 0; i < 8; ++i) out[kChecksumOffset + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  return out;
}

std::vector<double> predictions(const modelreg::Model& model, const std::vector<double>& rows, std::size_t n) {
  return model.predict_proba(modelreg::MatrixView(rows.data(), rows.size() / n, n));
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

void exercise(std::string_view bytes) {
  std::unique_ptr<modelreg::Model> model;
  try {
    model = modelreg::deserialize_model(bytes);
  } catch (const modelreg::Error& e) {
    modelreg::fuzz::check_code(e, Errc::corruption, Errc::incompatible, Errc::validation_failed);
    return;
  }
  check(model != nullptr, "deserialize_model returns a model or throws");

  const modelreg::ArchiveInfo info = modelreg::inspect_model_archive(bytes);  // must not throw now
  check(info.type_name == model->type_name(), "the header names the loaded type", info.type_name);
  check(info.header_size + info.payload_size == bytes.size(), "header + payload sizes are the archive's size");

  const std::string other = model->type_name() == "decision_tree" ? "random_forest" : "decision_tree";
  try {
    (void)modelreg::deserialize_model(bytes, other);
    modelreg::fuzz::fail("loading as another type must fail", other);
  } catch (const modelreg::Error& e) {
    modelreg::fuzz::check_code(e, Errc::validation_failed);
  }

  const std::size_t n = model->n_features();
  check(n >= 1, "a loaded model takes at least one feature");
  if (n > 4096) return;  // predicting would only allocate; the loader bounds what it reads by the input
  std::vector<double> rows(4 * n, 0.0);
  for (std::size_t c = 0; c < n; ++c) {
    rows[n + c] = 1e300;
    rows[2 * n + c] = c % 2 == 0 ? -1.0 : 1.0;
    rows[3 * n + c] = static_cast<double>(static_cast<unsigned char>(bytes[c % bytes.size()])) - 128.0;
  }
  const std::vector<double> p = predictions(*model, rows, n);
  check(p.size() == 4, "one probability per row");
  for (double v : p) check(std::isnan(v) || (v >= 0.0 && v <= 1.0), "probabilities are in [0, 1]");

  // Saving what was loaded must work (serialize_model refuses only untrained models) and be stable.
  const std::string saved = modelreg::serialize_model(*model);
  const std::unique_ptr<modelreg::Model> reloaded = modelreg::deserialize_model(saved, model->type_name());
  check(modelreg::serialize_model(*reloaded) == saved, "serialize -> deserialize -> serialize is a fixed point");
  check(same_bits(predictions(*reloaded, rows, n), p), "the reloaded model predicts the same bits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  exercise(bytes);                       // as given: mostly the magic and checksum checks
  exercise(with_valid_checksum(bytes));  // past the checksum: header fields and the payload decoder
  return 0;
}
