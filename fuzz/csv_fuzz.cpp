// Fuzzes the CSV loader, read_csv (modelreg/labeled_data.hpp), with three option sets: no target,
// target "label" required, target "label" optional.
//
// Properties:
// - every failure is Error(invalid_argument), nothing else (the source is a string stream);
// - what was read passes LabeledData::check() (no infinities — an empty cell is a missing NaN —,
//   a target that suits its inferred task, consistent sizes);
// - write_csv then read_csv gives back an equal table (the same task, classes and targets; a NaN
//   equals a NaN).
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_check.hpp"
#include "modelreg/labeled_data.hpp"

namespace {

using modelreg::Errc;
using modelreg::fuzz::check;

void exercise(const std::string& text, const modelreg::CsvReadOptions& options) {
  modelreg::LabeledData data;
  try {
    std::istringstream in(text);
    data = modelreg::read_csv(in, "fuzz.csv", options);
  } catch (const modelreg::Error& e) {
    modelreg::fuzz::check_code(e, Errc::invalid_argument);
    return;
  }
  data.check();  // must not throw
  check(data.n_features() >= 1, "a table has at least one feature column");
  check(data.feature_names.size() == data.n_features(), "one name per column");
  check(!options.target.empty() || !data.has_labels(), "without a target there are no labels");

  std::ostringstream out;
  modelreg::write_csv(data, out);
  const std::string written = out.str();
  // A table with a target column but no rows has no labels, so write_csv leaves the target out:
  // read it back with the target optional.
  modelreg::CsvReadOptions again = options;
  again.target_required = false;
  std::istringstream in(written);
  const modelreg::LabeledData reread = modelreg::read_csv(in, "written.csv", again);
  check(reread == data, "write_csv then read_csv gives back the same table", written);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  exercise(text, {});
  exercise(text, {.target = "label", .target_required = true});
  exercise(text, {.target = "label", .target_required = false});
  return 0;
}
