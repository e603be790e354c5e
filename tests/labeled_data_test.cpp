// LabeledData: the synthetic generator, CSV reading and writing, the stratified split.
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "model_test_support.hpp"
#include "modelreg/labeled_data.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

LabeledData parse(const std::string& text, const std::string& target = "y", bool required = true) {
  std::istringstream in(text);
  return read_csv(in, "data.csv", {.target = target, .target_required = required});
}

std::string error_of(const std::string& text, const std::string& target = "y") {
  CHECK(code_of([&] { (void)parse(text, target); }) == Errc::invalid_argument);
  return message_of([&] { (void)parse(text, target); });
}

}  // namespace

TEST_CASE("the generator makes the table it is asked for, the same every time") {
  ClassificationSpec spec;
  spec.rows = 3000;
  spec.features = 12;
  spec.positive_fraction = 0.05;
  spec.flip_y = 0.0;
  const auto a = make_classification(spec);
  CHECK(a.rows() == 3000);
  CHECK(a.n_features() == 12);
  CHECK(a.feature_names.front() == "v1");
  CHECK(a.feature_names.back() == "v12");
  CHECK(a.target_name == "is_fraud");
  CHECK(a.positive_fraction() == doctest::Approx(0.05).epsilon(0.01));
  a.check();
  CHECK(make_classification(spec) == a);
  spec.seed = 43;
  CHECK_FALSE(make_classification(spec) == a);
}

TEST_CASE("label noise flips about half of flip_y of the labels") {
  ClassificationSpec spec;
  spec.rows = 20000;
  spec.positive_fraction = 0.05;
  spec.flip_y = 0.2;
  // A fresh fair coin for 20% of the rows: 5% * 0.9 + 0.1 positives.
  CHECK(make_classification(spec).positive_fraction() == doctest::Approx(0.05 * 0.8 + 0.1).epsilon(0.1));
}

TEST_CASE("impossible generator specs are refused") {
  ClassificationSpec spec;
  spec.informative = 15;
  spec.redundant = 10;
  CHECK(contains(message_of([&] { (void)make_classification(spec); }), "exceed features"));
  spec = {};
  spec.informative = 1;
  CHECK(contains(message_of([&] { (void)make_classification(spec); }), "hypercube"));
  spec = {};
  spec.positive_fraction = 1.5;
  CHECK(code_of([&] { (void)make_classification(spec); }) == Errc::invalid_argument);
}

TEST_CASE("a CSV written and read back gives exactly the same doubles") {
  test::TempDir dir;
  ClassificationSpec spec;
  spec.rows = 300;
  auto data = make_classification(spec);
  data.x(0, 0) = 0.1 + 0.2;  // not the shortest decimal of anything short
  data.x(1, 1) = -1e-300;
  data.x(2, 2) = 123456789.123456789;
  write_csv(data, dir / "d.csv");
  const auto back = read_csv(dir / "d.csv", {.target = "is_fraud"});
  CHECK(back == data);
}

TEST_CASE("CSV reading accepts quotes, spaces, CRLF, blank lines and a byte order mark") {
  const auto data = parse("\xEF\xBB\xBF\"amount, EUR\", hour ,y\r\n1.5, 2 ,1\r\n\r\n-3e2,+4,0\r\n");
  CHECK(data.feature_names == std::vector<std::string>{"amount, EUR", "hour"});
  CHECK(data.rows() == 2);
  CHECK(data.x.values() == std::vector<double>{1.5, 2, -300, 4});
  CHECK(data.y == std::vector<int>{1, 0});
  CHECK(data.target_name == "y");
}

TEST_CASE("a column name that starts with a byte order mark is written quoted and reads back unchanged") {
  // Found by fuzz/csv_fuzz: written bare as the first name, "\xEF\xBB\xBF  a" came back as "a".
  const auto data = parse(" \xEF\xBB\xBF  a,b,y\n1,2,1\n");
  REQUIRE(data.feature_names == std::vector<std::string>{"\xEF\xBB\xBF  a", "b"});
  std::ostringstream out;
  write_csv(data, out);
  CHECK(parse(out.str()) == data);
}

TEST_CASE("the target may be any column, and may be optional") {
  const auto middle = parse("a,y,b\n1,0,2\n3,1,4\n");
  CHECK(middle.feature_names == std::vector<std::string>{"a", "b"});
  CHECK(middle.x.values() == std::vector<double>{1, 2, 3, 4});
  CHECK(middle.y == std::vector<int>{0, 1});
  const auto unlabeled = parse("a,b\n1,2\n", "y", false);
  CHECK_FALSE(unlabeled.has_labels());
  CHECK(unlabeled.n_features() == 2);
  const auto everything = parse("a,b\n1,2\n", "");
  CHECK(everything.n_features() == 2);
}

TEST_CASE("CSV errors name the file, the line and the column") {
  CHECK(contains(error_of(""), "data.csv: empty file"));
  CHECK(contains(error_of("\n\n"), "empty file"));
  CHECK(contains(error_of("a,b\n1,2\n"), "data.csv:1: no target column 'y' (the columns are: a, b)"));
  CHECK(contains(error_of("a,y\n1,0\n1,0,5\n"), "data.csv:3: 3 cells, but the header has 2 columns"));
  CHECK(contains(error_of("a,y\n1,0\n7\n"), "data.csv:3: 1 cells"));
  CHECK(contains(error_of("a,b,y\n1,x2,0\n"), "data.csv:2: column 2 ('b'): 'x2' is not a number"));
  CHECK(contains(error_of("a,b,y\n1,nan,0\n"), "'nan' is not a finite number"));
  CHECK(contains(error_of("a,b,y\n1,2,\n"), "data.csv:2: column 3 ('y'): the target is empty"));
  CHECK(contains(error_of("a,y\n1,2\n"), "data.csv:2: column 2 ('y'): every label is '2'; a classifier needs at least two classes"));
  CHECK(contains(error_of("a,a,y\n1,2,0\n"), "duplicate column name 'a'"));
  CHECK(contains(error_of("a,,y\n1,2,0\n"), "column 2 has no name"));
  CHECK(contains(error_of("y\n1\n"), "no feature columns"));
  CHECK(contains(error_of("\"a,y\n"), "unterminated quote"));
}

TEST_CASE("columns can be put in a model's feature order, and a missing or extra column is named") {
  const auto data = parse("b,a,y\n2,1,0\n4,3,1\n");
  const std::vector<std::string> order{"a", "b"};
  const auto ordered = data.with_features(order);
  CHECK(ordered.feature_names == order);
  CHECK(ordered.x.values() == std::vector<double>{1, 2, 3, 4});
  CHECK(ordered.y == data.y);
  const std::vector<std::string> wider{"a", "b", "c"};
  CHECK(contains(message_of([&] { (void)data.with_features(wider); }), "missing column c"));
  const std::vector<std::string> narrower{"a"};
  CHECK(contains(message_of([&] { (void)data.with_features(narrower); }), "unexpected column b"));
}

TEST_CASE("a missing CSV file is not_found") {
  CHECK(code_of([] { (void)read_csv("/nonexistent/data.csv", {.target = "y"}); }) == Errc::not_found);
}

TEST_CASE("the stratified split keeps the class balance, covers every row once and is repeatable") {
  ClassificationSpec spec;
  spec.rows = 2000;
  spec.positive_fraction = 0.1;
  auto data = make_classification(spec);
  // Tag each row with its index in feature 0 so rows can be traced through the split.
  for (std::size_t r = 0; r < data.rows(); ++r) data.x(r, 0) = static_cast<double>(r);
  const auto split = stratified_split(data, 0.25, 5);
  CHECK(split.train.rows() + split.test.rows() == data.rows());
  const auto positives = static_cast<double>(std::count(data.y.begin(), data.y.end(), 1));
  CHECK(std::count(split.test.y.begin(), split.test.y.end(), 1) == std::llround(positives * 0.25));
  std::set<double> seen;
  for (const auto* part : {&split.train, &split.test}) {
    double previous = -1;
    for (std::size_t r = 0; r < part->rows(); ++r) {
      const double index = part->x(r, 0);
      CHECK(index > previous);  // the original order is kept
      previous = index;
      CHECK(part->y[r] == data.y[static_cast<std::size_t>(index)]);
      seen.insert(index);
    }
  }
  CHECK(seen.size() == data.rows());
  CHECK(stratified_split(data, 0.25, 5).test == split.test);
  CHECK_FALSE(stratified_split(data, 0.25, 6).test == split.test);
  CHECK(code_of([&] { (void)stratified_split(data, 1.0, 5); }) == Errc::invalid_argument);
  LabeledData unlabeled = data;
  unlabeled.y.clear();
  CHECK(code_of([&] { (void)stratified_split(unlabeled, 0.2, 5); }) == Errc::invalid_argument);
}

TEST_CASE("match_columns finds each wanted column, and names the missing and the unexpected ones; ignored ones pass") {
  const std::vector<std::string> columns{"b", "y", "a", "zz"};
  const std::vector<std::string> wanted{"a", "b", "c"};
  const std::vector<std::string> ignored{"y", "not_there"};
  const ColumnMatch m = match_columns(columns, wanted, ignored);
  CHECK(m.source == std::vector<std::size_t>{2, 0});
  CHECK(m.missing == std::vector<std::string>{"c"});
  CHECK(m.extra == std::vector<std::string>{"zz"});
  CHECK_FALSE(m.ok());
  CHECK(match_columns(columns, std::vector<std::string>{"zz", "a", "b"}, ignored).ok());

  const auto data = parse("b,a,y\n2,1,0\n4,3,1\n");
  const std::vector<std::string> just_a{"a"};
  const std::vector<std::string> ignore_b{"b"};
  const auto only_a = data.with_features(just_a, ignore_b);
  CHECK(only_a.feature_names == just_a);
  CHECK(only_a.x.values() == std::vector<double>{1, 3});
}

namespace {

LabeledData parse_as(const std::string& text, CsvReadOptions options) {
  std::istringstream in(text);
  options.target = "y";
  return read_csv(in, "data.csv", options);
}

std::string error_as(const std::string& text, CsvReadOptions options) {
  return message_of([&] { (void)parse_as(text, options); });
}

}  // namespace

TEST_CASE("the task is inferred from the target: two labels binary, more multiclass, fractions regression") {
  const auto zero_one = parse("a,y\n1,0\n2,1\n3,1\n");
  CHECK(zero_one.task == Task::binary);
  CHECK(zero_one.classes == ClassLabels::zero_one());
  CHECK(zero_one.y == std::vector<int>{0, 1, 1});

  // A binary target keeps its labels, in sorted order: the positive class is the second.
  const auto yes_no = parse("a,y\n1,yes\n2,no\n3,yes\n");
  CHECK(yes_no.task == Task::binary);
  CHECK(yes_no.classes == ClassLabels::strings({"no", "yes"}));
  CHECK(yes_no.y == std::vector<int>{1, 0, 1});
  const auto one_two = parse("a,y\n1,2\n2,1\n");
  CHECK(one_two.classes == ClassLabels::integers({1, 2}));
  CHECK(one_two.y == std::vector<int>{1, 0});

  // Integers sort by value (10 after 9), strings by bytes; "2.0" is the label 2.
  const auto integers = parse("a,y\n1,10\n2,9\n3,2.0\n4,9\n");
  CHECK(integers.task == Task::multiclass);
  CHECK(integers.classes == ClassLabels::integers({2, 9, 10}));
  CHECK(integers.y == std::vector<int>{2, 1, 0, 1});
  const auto names = parse("a,y\n1,cat\n2,dog\n3,\"bird, small\"\n4,1\n");
  CHECK(names.task == Task::multiclass);
  CHECK(names.classes == ClassLabels::strings({"1", "bird, small", "cat", "dog"}));
  CHECK(names.y == std::vector<int>{2, 3, 1, 0});

  const auto values = parse("a,y\n1,0.5\n2,3\n3,-1.25\n");
  CHECK(values.task == Task::regression);
  CHECK(values.classes.empty());
  CHECK(values.y.empty());
  CHECK(values.values == std::vector<double>{0.5, 3, -1.25});
  values.check();

  // Rows of one class of a 0/1 target (a test file of negatives) are still that binary target.
  const auto negatives = parse("a,y\n1,0\n2,0\n");
  CHECK(negatives.task == Task::binary);
  CHECK(negatives.classes == ClassLabels::zero_one());
}

TEST_CASE("an explicit task overrides the inference, and a target that does not suit it is refused") {
  const auto counts = parse_as("a,y\n1,3\n2,5\n3,8\n", {.task = Task::regression});
  CHECK(counts.task == Task::regression);
  CHECK(counts.values == std::vector<double>{3, 5, 8});
  CHECK(contains(error_as("a,y\n1,3\n2,x\n", {.task = Task::regression}),
                 "data.csv:3: column 2 ('y'): 'x' is not a number; a regression target holds numbers"));
  CHECK(contains(error_as("a,y\n1,0.5\n2,1\n", {.task = Task::binary}), "label '0.5' is not a whole number"));
  CHECK(contains(error_as("a,y\n1,a\n2,b\n3,c\n", {.task = Task::binary}), "a binary target has 2 classes, this one 3"));
  CHECK(contains(error_as("a,y\n1,a\n2,b\n", {.task = Task::multiclass}), "a multiclass target has at least 3 classes"));
  std::string many = "a,y\n";
  for (int i = 0; i <= static_cast<int>(kMaxClasses); ++i) many += fmt::format("{},{}\n", i, i);
  CHECK(contains(error_of(many), "1001 distinct integer labels are more than the 1000 classes"));
  // Given classes: the labels must be among them, in their order; a class may be absent.
  const auto test_rows = parse_as("a,y\n1,dog\n2,cat\n", {.classes = ClassLabels::strings({"bird", "cat", "dog"})});
  CHECK(test_rows.task == Task::multiclass);
  CHECK(test_rows.y == std::vector<int>{2, 1});
  CHECK(contains(error_as("a,y\n1,cow\n", {.classes = ClassLabels::strings({"bird", "cat", "dog"})}),
                 "data.csv:2: column 2 ('y'): label 'cow' is not one of the 3 classes ('bird', 'cat', 'dog')"));
}

TEST_CASE("an empty feature cell is missing (NaN), kept by check and written back empty") {
  const auto data = parse("a,b,y\n1,,0\n,2,1\n");
  REQUIRE(data.rows() == 2);
  CHECK(std::isnan(data.x(0, 1)));
  CHECK(std::isnan(data.x(1, 0)));
  CHECK(data.first_missing() == std::pair<std::size_t, std::size_t>{0, 1});
  data.check();
  std::ostringstream out;
  write_csv(data, out);
  CHECK(out.str() == "a,b,y\n1,,0\n,2,1\n");
  CHECK(parse(out.str()) == data);  // missing equals missing
}

TEST_CASE("string labels, multiclass and regression targets survive write_csv and read_csv") {
  for (const std::string text : {"a,y\n1,\"no, never\"\n2,yes\n", "a,y\n1,b\n2,a\n3,c\n", "a,y\n1,0.25\n2,1e300\n"}) {
    CAPTURE(text);
    const auto data = parse(text);
    std::ostringstream out;
    write_csv(data, out);
    CHECK(parse(out.str()) == data);
  }
}

TEST_CASE("the split stratifies every class of a multiclass target, and splits regression rows at random") {
  ClassificationSpec spec{.rows = 900, .features = 5, .informative = 3, .redundant = 0, .clusters_per_class = 1,
                          .classes = 3, .flip_y = 0, .seed = 3};
  const auto data = make_classification(spec);
  CHECK(data.task == Task::multiclass);
  CHECK(data.classes == ClassLabels::integers({0, 1, 2}));
  const auto split = stratified_split(data, 0.2, 1);
  const auto counts = split.test.class_counts();
  REQUIRE(counts.size() == 3);
  for (std::size_t c = 0; c < 3; ++c) CHECK(counts[c] == 60);
  const auto regression = make_regression({.rows = 100, .features = 3, .informative = 2});
  const auto parts = stratified_split(regression, 0.25, 1);
  CHECK(parts.test.rows() == 25);
  CHECK(parts.train.rows() == 75);
  CHECK(parts.test.task == Task::regression);
  CHECK(parts.test.values.size() == 25);
}

TEST_CASE("many distinct whole numbers are not taken for classes: the task must be said") {
  std::string text = "x,y\n";
  for (int i = 0; i < 60; ++i) text += fmt::format("{},{}\n", i, i * 7);
  std::istringstream in(text);
  try {
    (void)read_csv(in, "counts.csv", CsvReadOptions{"y"});
    FAIL("60 whole-number labels were taken as classes");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::invalid_argument);
    CHECK(std::string(e.what()).find("--task regression") != std::string::npos);
  }
  std::istringstream again(text);
  CsvReadOptions as_values{"y"};
  as_values.task = Task::regression;
  const LabeledData d = read_csv(again, "counts.csv", as_values);
  CHECK(d.task == Task::regression);
  CHECK(d.values[59] == 413);
}

TEST_CASE("a table of one column whose row is missing survives write_csv and read_csv (found by csv_fuzz)") {
  LabeledData d;
  d.feature_names = {"x"};
  d.x = Matrix({std::numeric_limits<double>::quiet_NaN(), 1.5}, 1);
  d.y.clear();
  std::ostringstream out;
  write_csv(d, out);
  std::istringstream in(out.str());
  const LabeledData back = read_csv(in, "t.csv", CsvReadOptions{});
  REQUIRE(back.rows() == 2);
  CHECK(std::isnan(back.x(0, 0)));
  CHECK(back.x(1, 0) == 1.5);
}
