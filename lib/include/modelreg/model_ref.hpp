// modelreg/model_ref.hpp — how a version is named: `fraud`, `fraud@active`, `fraud@7`,
// `fraud@v1.2.0` (a label), `fraud@champion` (an alias), `fraud@latest`. The same syntax is used by
// the library, the CLI and the server.
//
// Labels and aliases share one namespace per model (the registry refuses a clash), so one kind of
// reference, Kind::label, names either: a label always the same version, an alias whichever version
// it points at when the reference is resolved (Registry::find / get). `active` is the reserved
// default alias, with a kind of its own; `active` and `latest` are reserved in any case.
//
// Thread-safety: ModelRef is a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"

namespace modelreg {

class MODELREG_API ModelRef {
 public:
  enum class Kind {
    active,  // `NAME` or `NAME@active`: the model's active version
    latest,  // `NAME@latest`: the highest version number
    number,  // `NAME@7`
    label,   // `NAME@v1.2.0` or `NAME@champion`: a label or an alias (one namespace per model)
  };

  // Parses REF. Throws Error(invalid_argument) naming what is wrong and the accepted forms.
  static ModelRef parse(std::string_view text);

  static ModelRef active(std::string_view model);
  static ModelRef latest(std::string_view model);
  static ModelRef number(std::string_view model, std::int64_t version);
  static ModelRef label(std::string_view model, std::string_view label);
  // The version an alias points at: active(model) for `active` (any case), else label(model, alias)
  // (labels and aliases resolve alike). Throws Error(invalid_argument) unless is_valid_alias(alias).
  static ModelRef alias(std::string_view model, std::string_view alias);

  const std::string& model() const noexcept { return model_; }
  Kind kind() const noexcept { return kind_; }
  // The version number; meaningful only when kind() == Kind::number.
  std::int64_t version() const noexcept { return number_; }
  // The label or alias name; meaningful only when kind() == Kind::label.
  const std::string& label_text() const noexcept { return label_; }

  // `fraud@7`, `fraud@active`, ... — parse(to_string()) gives back an equal ModelRef.
  std::string to_string() const;

  friend bool operator==(const ModelRef&, const ModelRef&) = default;

 private:
  ModelRef(std::string model, Kind kind, std::int64_t number, std::string label);

  std::string model_;
  Kind kind_ = Kind::active;
  std::int64_t number_ = 0;
  std::string label_;
};

// True when `name` is a valid model name: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}.
MODELREG_API bool is_valid_model_name(std::string_view name) noexcept;
// True when `label` is a valid version label: [A-Za-z][A-Za-z0-9_.+-]{0,63}, not `active`/`latest`.
MODELREG_API bool is_valid_label(std::string_view label) noexcept;
// True when `alias` can name an alias: a valid label, or `active` in any case (the reserved default
// alias, which promote moves). Never `latest`.
MODELREG_API bool is_valid_alias(std::string_view alias) noexcept;
// True when `alias` is `active` in any case.
MODELREG_API bool is_active_alias(std::string_view alias) noexcept;

}  // namespace modelreg
