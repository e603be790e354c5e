// read_xgboost_model: XGBoost's JSON / UBJSON model schema (version 1.0 to 2.x) converted to
// XGBoostTrees. Everything read is checked before it is used; nothing in a file can make the
// reader allocate more than a few times the file's size, recurse deeply, or loop without reading.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "modelreg/error.hpp"
#include "modelreg/xgboost.hpp"

namespace modelreg {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxDepth = 64;

[[noreturn]] void malformed(const std::string& what) {
  throw Error(Errc::validation_failed, fmt::format("not a valid XGBoost model: {}", what));
}

[[noreturn]] void unsupported(const std::string& what) {
  throw Error(Errc::invalid_argument,
              fmt::format("unsupported XGBoost model: {}; supported: the gbtree booster with numerical splits and "
                          "one of the objectives {}",
                          what, supported_xgboost_objectives()));
}

// nlohmann's DOM builder behind a guard: at most `max_values` values in all (a UBJSON typed array
// of nulls or booleans takes no bytes per element, so counts alone could otherwise make the
// parser loop for ever), nesting at most kMaxDepth (UBJSON is parsed recursively). JSON floats
// are re-read from their text as float32, correctly rounded: XGBoost writes its float32 values
// in shortest form, and decimal → double → float could round twice.
class BoundedBuilder {
 public:
  BoundedBuilder(json& root, std::size_t max_values, bool text) : dom_(root, false), left_(max_values), text_(text) {}

  bool null() { return count() && dom_.null(); }
  bool boolean(bool v) { return count() && dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return count() && dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return count() && dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) {
    if (!count()) return false;
    if (text_) {
      float f = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), f);
      if (ec == std::errc() && end == s.data() + s.size()) v = f;  // else: out of float range, refused later
    }
    return dom_.number_float(v, s);
  }
  bool string(json::string_t& v) { return count() && dom_.string(v); }
  bool binary(json::binary_t& v) { return count() && dom_.binary(v); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool key(json::string_t& v) { return count() && dom_.key(v); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string& /*token*/, const nlohmann::detail::exception& e) {
    problem_ = fmt::format("{} (at byte {})", e.what(), position);
    return false;
  }

  const std::string& problem() const noexcept { return problem_; }

 private:
  bool count() {
    if (left_ == 0) {
      problem_ = "more values than the file has bytes";
      return false;
    }
    --left_;
    return true;
  }
  bool enter() {
    if (!count()) return false;
    if (++depth_ > kMaxDepth) {
      problem_ = fmt::format("nested more than {} deep", kMaxDepth);
      return false;
    }
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::size_t left_;
  std::size_t depth_ = 0;
  bool text_;
  std::string problem_;
};

// XGBoost writes a NaN float as the bare word NaN (categorical nodes' split conditions), which is
// not JSON. The copy of `text` with NaN, Infinity and -Infinity outside strings replaced by null,
// so such a file parses and is then refused for what it is; nullopt when there are none.
std::optional<std::string> non_finite_as_null(std::string_view text) {
  std::optional<std::string> out;
  bool in_string = false;
  std::size_t copied = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    for (std::string_view word : {"-Infinity", "Infinity", "NaN"}) {
      if (text.substr(i, word.size()) == word) {
        if (!out) out.emplace();
        out->append(text.substr(copied, i - copied));
        out->append("null");
        i += word.size() - 1;
        copied = i + 1;
        break;
      }
    }
  }
  if (out) out->append(text.substr(copied));
  return out;
}

json parse_document(std::string_view bytes, std::string& format) {
  std::size_t start = 0;
  while (start < bytes.size() && (bytes[start] == ' ' || bytes[start] == '\t' || bytes[start] == '\n' ||
                                  bytes[start] == '\r')) {
    ++start;
  }
  if (start >= bytes.size()) malformed("the file is empty");
  if (bytes[start] != '{' || start + 1 >= bytes.size()) {
    malformed("the file is neither JSON nor UBJSON (an XGBoost model starts with '{')");
  }
  // UBJSON's first key is preceded by its length's type marker (XGBoost writes 'L'); JSON's by
  // '"' or whitespace.
  static constexpr std::string_view kUbjsonMarkers = "iUIlL$#}";
  static constexpr std::string_view kJsonFollowers = "\" \t\r\n}";
  const char next = bytes[start + 1];
  bool text;
  if (start == 0 && kUbjsonMarkers.find(next) != std::string_view::npos && next != '}') {
    text = false;
  } else if (kJsonFollowers.find(next) != std::string_view::npos) {
    text = true;
  } else {
    malformed(fmt::format("the file is neither JSON nor UBJSON ('{{' followed by byte 0x{:02x})",
                          static_cast<unsigned char>(next)));
  }
  format = text ? "json" : "ubjson";
  std::optional<std::string> rewritten;
  if (text && (rewritten = non_finite_as_null(bytes))) bytes = *rewritten;
  json root;
  BoundedBuilder builder(root, bytes.size(), text);
  const auto* first = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const auto* last = first + bytes.size();
  bool ok = false;
  try {
    ok = json::sax_parse(first, last, &builder, text ? json::input_format_t::json : json::input_format_t::ubjson);
  } catch (const json::exception& e) {
    malformed(fmt::format("{} file: {}", format, e.what()));
  }
  if (!ok) malformed(fmt::format("{} file: {}", format, builder.problem().empty() ? "cannot parse" : builder.problem()));
  return root;
}

// ---- typed access: every failure names the path ---------------------------------------------------

const json& member(const json& object, std::string_view key, const std::string& path) {
  if (!object.is_object()) malformed(fmt::format("{} is not an object", path));
  const auto it = object.find(key);
  if (it == object.end()) malformed(fmt::format("{} has no \"{}\"", path, key));
  return *it;
}

const json* optional_member(const json& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

const std::string& text_of(const json& v, const std::string& path) {
  if (!v.is_string()) malformed(fmt::format("{} is not a string", path));
  return v.get_ref<const std::string&>();
}

// XGBoost writes its parameters as strings ("num_class": "3"); a number is accepted as well.
std::int64_t integer_parameter(const json& v, const std::string& path, std::int64_t min, std::int64_t max) {
  std::int64_t out = 0;
  if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) out = max + 1;
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size()) malformed(fmt::format("{} is \"{}\", not an integer", path, s));
  } else {
    malformed(fmt::format("{} is not an integer", path));
  }
  if (out < min || out > max) malformed(fmt::format("{} is {}, outside {}..{}", path, out, min, max));
  return out;
}

float float_parameter(const json& v, const std::string& path) {
  float out = 0;
  if (v.is_number()) {
    out = static_cast<float>(v.get<double>());
  } else if (v.is_string()) {
    std::string_view s = v.get_ref<const std::string&>();
    // XGBoost 2.x writes the intercept as a one-element list: "[5E-1]".
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size()) malformed(fmt::format("{} is \"{}\", not a number", path, s));
  } else {
    malformed(fmt::format("{} is not a number", path));
  }
  if (!std::isfinite(out)) malformed(fmt::format("{} is not a finite float32", path));
  return out;
}

const json::array_t& array_of(const json& v, const std::string& path) {
  if (!v.is_array()) malformed(fmt::format("{} is not an array", path));
  return v.get_ref<const json::array_t&>();
}

std::int64_t integer_element(const json& v, const std::string& path, std::size_t i) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    return u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ? std::numeric_limits<std::int64_t>::max()
                                                                                  : static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  malformed(fmt::format("{}[{}] is not an integer", path, i));
}

float float_element(const json& v, const std::string& path, std::size_t i) {
  if (!v.is_number()) malformed(fmt::format("{}[{}] is not a number", path, i));
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
    malformed(fmt::format("{}[{}] is {}, not a finite float32", path, i, d));
  }
  return static_cast<float>(d);
}

bool flag_element(const json& v, const std::string& path, std::size_t i) {
  if (v.is_boolean()) return v.get<bool>();
  const std::int64_t n = integer_element(v, path, i);
  if (n != 0 && n != 1) malformed(fmt::format("{}[{}] is {}, not 0 or 1", path, i, n));
  return n == 1;
}

// ---- the document ---------------------------------------------------------------------------------

std::array<int, 3> read_version(const json& root) {
  const json& v = member(root, "version", "the model");
  const auto& parts = array_of(v, "version");
  if (parts.size() != 3) malformed(fmt::format("version has {} parts, not 3", parts.size()));
  std::array<int, 3> out{};
  for (std::size_t i = 0; i < 3; ++i) {
    const std::int64_t n = integer_element(parts[i], "version", i);
    if (n < 0 || n > 1'000'000) malformed(fmt::format("version[{}] is {}", i, n));
    out[i] = static_cast<int>(n);
  }
  if (out[0] < 1 || out[0] > 2) {
    unsupported(fmt::format("it was written by XGBoost {}.{}.{}, and versions 1.x and 2.x are read", out[0], out[1], out[2]));
  }
  return out;
}

// One tree, converted to the breadth-first layout of XGBoostTrees and appended to `out`.
void read_tree(const json& tree, std::size_t index, std::size_t n_features, XGBoostTrees& out) {
  const std::string path = fmt::format("tree {}", index);
  auto field = [&](std::string_view name) -> const json::array_t& {
    return array_of(member(tree, name, path), fmt::format("{} {}", path, name));
  };
  const auto& left = field("left_children");
  const auto& right = field("right_children");
  const auto& indices = field("split_indices");
  const auto& conditions = field("split_conditions");
  const auto& default_left = field("default_left");
  const std::size_t n = left.size();
  auto same_length = [&](const json::array_t& a, std::string_view name) {
    if (a.size() != n) malformed(fmt::format("{}: {} has {} entries but left_children has {}", path, name, a.size(), n));
  };
  same_length(right, "right_children");
  same_length(indices, "split_indices");
  same_length(conditions, "split_conditions");
  same_length(default_left, "default_left");
  if (const json* w = optional_member(tree, "base_weights")) same_length(array_of(*w, path + " base_weights"), "base_weights");
  const json::array_t* split_type = nullptr;
  if (const json* s = optional_member(tree, "split_type")) {
    split_type = &array_of(*s, path + " split_type");
    same_length(*split_type, "split_type");
  }
  if (const json* c = optional_member(tree, "categories"); c != nullptr && !array_of(*c, path + " categories").empty()) {
    unsupported(fmt::format("{} has categorical splits", path));
  }
  if (const json* p = optional_member(tree, "tree_param")) {
    const std::string param_path = path + " tree_param";
    if (const json* nodes = optional_member(*p, "num_nodes")) {
      if (static_cast<std::size_t>(integer_parameter(*nodes, param_path + " num_nodes", 0, 1LL << 40)) != n) {
        malformed(fmt::format("{}: tree_param says {} nodes but the arrays have {}", path, nodes->dump(), n));
      }
    }
    if (const json* leaf = optional_member(*p, "size_leaf_vector")) {
      if (integer_parameter(*leaf, param_path + " size_leaf_vector", 0, 1LL << 31) > 1) {
        unsupported(fmt::format("{} has vector leaves (a multi-target model)", path));
      }
    }
  }
  if (n == 0) malformed(fmt::format("{} has no nodes", path));
  if (n >= XGBoostTrees::kLeaf / 2) malformed(fmt::format("{} has {} nodes", path, n));

  // Breadth first from the root: each internal node's children get the next two slots. A node
  // reached twice (a cycle, or two parents) is refused; nodes never reached (XGBoost's deleted
  // nodes) are dropped, as XGBoost never visits them either.
  std::vector<std::uint8_t> seen(n, 0);
  std::vector<std::uint32_t> queue{0};
  seen[0] = 1;
  for (std::size_t q = 0; q < queue.size(); ++q) {
    const std::uint32_t i = queue[q];
    const std::int64_t l = integer_element(left[i], path + " left_children", i);
    const std::int64_t r = integer_element(right[i], path + " right_children", i);
    if (l == -1 && r == -1) {
      out.splits.push_back(XGBoostTrees::kLeaf);
      out.values.push_back(float_element(conditions[i], path + " split_conditions", i));
      continue;
    }
    if (split_type != nullptr && integer_element((*split_type)[i], path + " split_type", i) != 0) {
      unsupported(fmt::format("{} node {} is a categorical split", path, i));
    }
    for (const std::int64_t child : {l, r}) {
      if (child < 1 || static_cast<std::uint64_t>(child) >= n) {
        malformed(fmt::format("{} node {}: child {} is out of range (the tree has {} nodes)", path, i, child, n));
      }
      if (seen[static_cast<std::size_t>(child)] != 0) {
        malformed(fmt::format("{} node {}: child {} is reached twice (a cycle or a shared node)", path, i, child));
      }
      seen[static_cast<std::size_t>(child)] = 1;
      queue.push_back(static_cast<std::uint32_t>(child));
    }
    const float value = float_element(conditions[i], path + " split_conditions", i);
    const std::int64_t feature = integer_element(indices[i], path + " split_indices", i);
    if (feature < 0 || static_cast<std::uint64_t>(feature) >= n_features) {
      malformed(fmt::format("{} node {} tests feature {}, but the model has {} features", path, i, feature, n_features));
    }
    auto split = static_cast<std::uint32_t>(feature);
    if (flag_element(default_left[i], path + " default_left", i)) split |= XGBoostTrees::kDefaultLeft;
    out.splits.push_back(split);
    out.values.push_back(value);
  }
  out.tree_sizes.push_back(static_cast<std::uint32_t>(queue.size()));
}

}  // namespace

XGBoostFile read_xgboost_model(std::string_view bytes) {
  if (bytes.size() > kMaxXGBoostModelBytes) {
    malformed(fmt::format("{} bytes is more than the limit of {} bytes", bytes.size(), kMaxXGBoostModelBytes));
  }
  XGBoostFile file;
  const json root = parse_document(bytes, file.format);
  if (!root.is_object()) malformed("the top level is not an object");
  file.version = read_version(root);
  const json& learner = member(root, "learner", "the model");

  const json& booster = member(learner, "gradient_booster", "learner");
  const std::string& booster_name = text_of(member(booster, "name", "gradient_booster"), "gradient_booster name");
  if (booster_name != "gbtree") unsupported(fmt::format("the {} booster", booster_name));

  file.objective = text_of(member(member(learner, "objective", "learner"), "name", "objective"), "objective name");
  const auto objective = parse_xgboost_objective(file.objective);
  if (!objective) unsupported(fmt::format("the objective '{}'", file.objective));

  const json& params = member(learner, "learner_model_param", "learner");
  const std::string params_path = "learner_model_param";
  XGBoostTrees trees;
  trees.objective = *objective;
  trees.n_features = static_cast<std::size_t>(
      integer_parameter(member(params, "num_feature", params_path), params_path + " num_feature", 1,
                        XGBoostTrees::kFeatureMask - 1));
  const std::int64_t num_class =
      integer_parameter(member(params, "num_class", params_path), params_path + " num_class", 0, 65'536);
  if (const json* targets = optional_member(params, "num_target")) {
    if (integer_parameter(*targets, params_path + " num_target", 0, 1 << 30) > 1) {
      unsupported("several targets (a multi-target model)");
    }
  }
  trees.base_score = float_parameter(member(params, "base_score", params_path), params_path + " base_score");
  const bool multi = *objective == XGBoostObjective::multi_softprob || *objective == XGBoostObjective::multi_softmax;
  if (multi) {
    if (num_class < 2) malformed(fmt::format("objective {} with num_class {}", file.objective, num_class));
    trees.n_groups = static_cast<std::size_t>(num_class);
  } else if (num_class > 1) {
    malformed(fmt::format("objective {} with num_class {}", file.objective, num_class));
  }

  if (const json* names = optional_member(learner, "feature_names")) {
    for (const auto& name : array_of(*names, "feature_names")) file.feature_names.push_back(text_of(name, "a feature name"));
    if (!file.feature_names.empty() && file.feature_names.size() != trees.n_features) {
      malformed(fmt::format("{} feature names for {} features", file.feature_names.size(), trees.n_features));
    }
  }
  if (const json* types = optional_member(learner, "feature_types")) {
    for (const auto& type : array_of(*types, "feature_types")) {
      const std::string& t = text_of(type, "a feature type");
      if (t == "c") unsupported(fmt::format("feature {} is categorical", file.feature_types.size()));
      file.feature_types.push_back(t);
    }
    if (!file.feature_types.empty() && file.feature_types.size() != trees.n_features) {
      malformed(fmt::format("{} feature types for {} features", file.feature_types.size(), trees.n_features));
    }
  }

  const json& model = member(booster, "model", "gradient_booster");
  const json& gbtree_param = member(model, "gbtree_model_param", "model");
  const std::int64_t num_trees =
      integer_parameter(member(gbtree_param, "num_trees", "gbtree_model_param"), "num_trees", 0, 1LL << 31);
  if (const json* parallel = optional_member(gbtree_param, "num_parallel_tree")) {
    trees.num_parallel_tree =
        static_cast<std::size_t>(integer_parameter(*parallel, "num_parallel_tree", 1, 1LL << 31));
  }
  if (const json* leaf = optional_member(gbtree_param, "size_leaf_vector")) {
    if (integer_parameter(*leaf, "size_leaf_vector", 0, 1LL << 31) > 1) unsupported("vector leaves (a multi-target model)");
  }
  const auto& tree_list = array_of(member(model, "trees", "model"), "trees");
  const auto& tree_info = array_of(member(model, "tree_info", "model"), "tree_info");
  if (static_cast<std::size_t>(num_trees) != tree_list.size() || tree_info.size() != tree_list.size()) {
    malformed(fmt::format("num_trees says {}, there are {} trees and {} tree_info entries", num_trees, tree_list.size(),
                          tree_info.size()));
  }
  if (tree_list.empty()) malformed("the model has no trees");
  for (std::size_t t = 0; t < tree_list.size(); ++t) {
    const std::int64_t group = integer_element(tree_info[t], "tree_info", t);
    if (group < 0 || static_cast<std::uint64_t>(group) >= trees.n_groups) {
      malformed(fmt::format("tree_info[{}] is {}, but the model has {} output groups", t, group, trees.n_groups));
    }
    trees.tree_groups.push_back(static_cast<std::uint32_t>(group));
    read_tree(tree_list[t], t, trees.n_features, trees);
  }
  file.model = XGBoostModel(std::move(trees));
  return file;
}

}  // namespace modelreg
