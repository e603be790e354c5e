// Fuzzes ModelRef::parse (modelreg/model_ref.hpp).
// Properties: parse either returns a ref or throws Error(invalid_argument), nothing else; a parsed
// ref has a valid model name (and a valid label, or a version >= 1); to_string() parses back to an
// equal ref and is a fixed point; the factory for the ref's kind builds an equal ref.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "modelreg/model_ref.hpp"

using modelreg::ModelRef;
using modelreg::fuzz::check;

namespace {

// The last 7 characters, lower-cased: the reserved selectors are read whatever their case.
std::string lower_suffix(std::string_view text) {
  std::string tail(text.substr(text.size() < 7 ? 0 : text.size() - 7));
  for (char& c : tail) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return tail;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<ModelRef> ref;
  try {
    ref = ModelRef::parse(text);
  } catch (const modelreg::Error& e) {
    modelreg::fuzz::check_code(e, modelreg::Errc::invalid_argument);
    // (The message quotes the input, so a NUL in it ends what() early.)
    check(text.find('\0') != std::string_view::npos ||
              std::string_view(e.what()).find("expected NAME") != std::string_view::npos,
          "a parse error names the accepted forms", e.what());
    return 0;
  }
  check(modelreg::is_valid_model_name(ref->model()), "the model name is valid", ref->model());
  check(text.substr(0, ref->model().size()) == ref->model(), "the model name is the text before '@'", text);

  const std::string printed = ref->to_string();
  ModelRef again = ModelRef::parse(printed);  // must not throw: an escaping Error aborts
  check(again == *ref, "parse(to_string()) gives back an equal ref", printed);
  check(again.to_string() == printed, "to_string is a fixed point", printed);

  switch (ref->kind()) {
    case ModelRef::Kind::active:
      check(ref->model() == text || lower_suffix(text) == "@active", "an active ref is NAME or NAME@active (any case)",
            text);
      check(ModelRef::active(ref->model()) == *ref, "ModelRef::active builds the same ref", printed);
      break;
    case ModelRef::Kind::latest:
      check(lower_suffix(text) == "@latest", "a latest ref is NAME@latest (any case)", text);
      check(ModelRef::latest(ref->model()) == *ref, "ModelRef::latest builds the same ref", printed);
      break;
    case ModelRef::Kind::number:
      check(ref->version() >= 1, "a version number is at least 1", printed);
      check(ModelRef::number(ref->model(), ref->version()) == *ref, "ModelRef::number builds the same ref", printed);
      break;
    case ModelRef::Kind::label:
      check(modelreg::is_valid_label(ref->label_text()), "the label is valid", ref->label_text());
      check(text.ends_with("@" + ref->label_text()), "the label is the text after '@'", text);
      check(ModelRef::label(ref->model(), ref->label_text()) == *ref, "ModelRef::label builds the same ref", printed);
      break;
  }
  return 0;
}
