// python/src/version_dict.cpp — the library's values as plain Python values, and back.
#include <optional>
#include <string>
#include <utility>

#include <pybind11/stl.h>

#include "bindings.hpp"

namespace modelreg::python {

namespace {

template <class T>
py::object or_none(const std::optional<T>& value) {
  return value ? py::cast(*value) : py::none();
}

}  // namespace

py::object classes_object(Task task, const ClassLabels& classes) {
  if (task == Task::regression) return py::none();
  if (classes.are_integers()) return py::cast(classes.integer_values());
  return py::cast(classes.string_values());
}

py::dict version_dict(const ModelVersion& v) {
  py::dict d;
  d["ref"] = v.ref_string();
  d["model"] = v.id.model;
  d["version"] = v.id.number;
  d["label"] = or_none(v.label);
  d["status"] = v.status == VersionStatus::archived ? "archived" : "ready";
  d["active"] = v.active;
  d["format"] = v.format;
  d["type_name"] = v.type_name;
  d["task"] = v.task ? py::cast(std::string(to_string(v.task->task))) : py::none();
  d["classes"] = v.task ? classes_object(v.task->task, v.task->classes) : py::none();
  d["notes"] = v.notes;
  d["created_at"] = v.created_at;
  d["created_by"] = v.created_by;
  py::dict blob;
  blob["sha256"] = v.blob.sha256;
  blob["raw_size"] = v.blob.raw_size;
  blob["stored_size"] = v.blob.stored_size;
  blob["ratio"] = v.blob.ratio();
  blob["codec"] = v.blob.codec;
  blob["level"] = v.blob.level;
  blob["chunk_count"] = v.blob.chunk_count;
  d["blob"] = blob;
  d["metrics"] = py::cast(v.metrics);
  d["params"] = py::cast(v.params);
  py::list features;
  for (const auto& f : v.features) {
    py::dict feature;
    feature["name"] = f.name;
    feature["dtype"] = f.dtype;
    features.append(feature);
  }
  d["features"] = features;
  d["tags"] = py::cast(v.tags);
  py::list datasets;
  for (const auto& ds : v.datasets) {
    py::dict dataset;
    dataset["uri"] = ds.uri;
    dataset["sha256"] = or_none(ds.sha256);
    dataset["role"] = ds.role;
    datasets.append(dataset);
  }
  d["datasets"] = datasets;
  py::list parents;
  for (const auto& [id, relation] : v.parents) {
    py::dict parent;
    parent["ref"] = id.to_string();
    parent["model"] = id.model;
    parent["version"] = id.number;
    parent["relation"] = relation;
    parents.append(parent);
  }
  d["parents"] = parents;
  if (v.signature) {
    py::dict signature;
    signature["algorithm"] = v.signature->algorithm;
    signature["key_id"] = v.signature->key_id;
    signature["signed_at"] = v.signature->signed_at;
    signature["signed_by"] = v.signature->signed_by;
    d["signature"] = signature;
  } else {
    d["signature"] = py::none();
  }
  return d;
}

NewVersion new_version_from(const py::dict& spec) {
  NewVersion v;
  auto get = [&](const char* key) -> py::object {
    if (!spec.contains(key)) return py::none();
    return spec[key];
  };
  if (auto o = get("model"); !o.is_none()) v.model = o.cast<std::string>();
  if (auto o = get("format"); !o.is_none()) v.format = o.cast<std::string>();
  if (auto o = get("type_name"); !o.is_none()) v.type_name = o.cast<std::string>();
  if (auto o = get("metrics"); !o.is_none()) v.metrics = o.cast<std::map<std::string, double>>();
  if (auto o = get("params"); !o.is_none()) v.params = o.cast<std::map<std::string, std::string>>();
  if (auto o = get("features"); !o.is_none()) {
    for (const auto& [name, dtype] : o.cast<std::vector<std::pair<std::string, std::string>>>()) {
      v.features.push_back(Feature{name, dtype});
    }
  }
  if (auto o = get("tags"); !o.is_none()) v.tags = o.cast<std::map<std::string, std::string>>();
  if (auto o = get("notes"); !o.is_none()) v.notes = o.cast<std::string>();
  if (auto o = get("label"); !o.is_none()) v.label = o.cast<std::string>();
  if (auto o = get("created_by"); !o.is_none()) v.created_by = o.cast<std::string>();
  if (auto o = get("parents"); !o.is_none()) {
    for (const auto& [ref, relation] : o.cast<std::vector<std::pair<std::string, std::string>>>()) {
      v.parents.push_back(Parent{ModelRef::parse(ref), relation});
    }
  }
  if (auto o = get("datasets"); !o.is_none()) {
    using Row = std::tuple<std::string, std::optional<std::string>, std::string>;
    for (const auto& [uri, sha256, role] : o.cast<std::vector<Row>>()) {
      v.datasets.push_back(Dataset{uri, sha256, role});
    }
  }
  if (auto o = get("level"); !o.is_none()) v.level = o.cast<int>();
  return v;
}

}  // namespace modelreg::python
