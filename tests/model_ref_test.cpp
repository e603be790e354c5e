#include <doctest/doctest.h>

#include "modelreg/error.hpp"
#include "modelreg/model_ref.hpp"

using modelreg::Errc;
using modelreg::Error;
using modelreg::ModelRef;

TEST_CASE("a bare name refers to the active version") {
  auto r = ModelRef::parse("fraud");
  CHECK(r.model() == "fraud");
  CHECK(r.kind() == ModelRef::Kind::active);
  CHECK(r.to_string() == "fraud@active");
  CHECK(ModelRef::parse("fraud@active") == r);
}

TEST_CASE("every selector form parses and prints back") {
  auto latest = ModelRef::parse("fraud@latest");
  CHECK(latest.kind() == ModelRef::Kind::latest);
  auto number = ModelRef::parse("fraud@7");
  CHECK(number.kind() == ModelRef::Kind::number);
  CHECK(number.version() == 7);
  auto label = ModelRef::parse("fraud@v1.2.0");
  CHECK(label.kind() == ModelRef::Kind::label);
  CHECK(label.label_text() == "v1.2.0");
  auto dotted = ModelRef::parse("team.fraud-detector_v2@rc+build.5");
  CHECK(dotted.model() == "team.fraud-detector_v2");
  CHECK(dotted.label_text() == "rc+build.5");
  for (const char* text : {"fraud@active", "fraud@latest", "fraud@7", "fraud@v1.2.0", "a@b"}) {
    CHECK(ModelRef::parse(ModelRef::parse(text).to_string()) == ModelRef::parse(text));
  }
  CHECK(ModelRef::parse("fraud@007").to_string() == "fraud@7");
}

TEST_CASE("names up to 128 characters are accepted and longer ones refused") {
  std::string name(128, 'a');
  CHECK(ModelRef::parse(name).model() == name);
  CHECK_THROWS_AS(ModelRef::parse(name + "a"), Error);
}

TEST_CASE("malformed references are invalid_argument errors that say what is wrong") {
  const char* bad[] = {"",          "@7",       "fraud@",      "fraud@0",     "fraud@-1",  "fraud@7x",
                       "fraud@1.5", "-fraud",   "_fraud",      "fr aud",      "fraud@v 1", "fraud@@1",
                       "fraud@a/b", "fraud/x@1", "fraud@99999999999999999999", "fraud@.v1", "fraud@é"};
  for (const char* text : bad) {
    CAPTURE(text);
    try {
      (void)ModelRef::parse(text);
      FAIL("no error for a malformed reference");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::invalid_argument);
      CHECK(std::string(e.what()).find("expected NAME") != std::string::npos);
    }
  }
}

TEST_CASE("labels that would read as a number or a keyword are not labels") {
  CHECK_FALSE(modelreg::is_valid_label("7"));
  CHECK_FALSE(modelreg::is_valid_label("active"));
  CHECK_FALSE(modelreg::is_valid_label("latest"));
  CHECK(modelreg::is_valid_label("v7"));
  CHECK(modelreg::is_valid_label("Active2"));
}

TEST_CASE("labels are distinct from the reserved words active and latest whatever their case") {
  for (const char* word : {"active", "Active", "ACTIVE", "aCtIvE", "latest", "Latest", "LATEST"}) {
    CAPTURE(word);
    CHECK_FALSE(modelreg::is_valid_label(word));
  }
  CHECK(modelreg::is_valid_label("actively"));
  CHECK(modelreg::is_valid_label("latest2"));
  CHECK(ModelRef::parse("fraud@ACTIVE").kind() == ModelRef::Kind::active);
  CHECK(ModelRef::parse("fraud@Latest").kind() == ModelRef::Kind::latest);
  CHECK(ModelRef::parse("fraud@Latest").to_string() == "fraud@latest");
}
