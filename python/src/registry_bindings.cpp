// python/src/registry_bindings.cpp — RegistryHandle, the C++ side of modelreg.Registry: one
// method per Registry call, arguments as plain Python values (the pure-Python layer in
// python/modelreg/_registry.py checks and shapes them), results as dicts and lists.
//
// A call copies the shared_ptr to the Registry while it holds the GIL, then releases the GIL for
// the work: close() from another thread only drops the handle's reference, and the Registry is
// destroyed when the last call using it returns.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "modelreg/error.hpp"
#include "modelreg/signing.hpp"
#include "native_model.hpp"

namespace modelreg::python {

namespace {

using InputArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

Change change_of(std::string reason, std::optional<std::string> actor) {
  return Change{std::move(reason), std::move(actor)};
}

std::optional<VersionStatus> status_of(const std::optional<std::string>& status) {
  if (!status) return std::nullopt;
  if (*status == "ready") return VersionStatus::ready;
  if (*status == "archived") return VersionStatus::archived;
  throw Error(Errc::invalid_argument, "status must be 'ready' or 'archived', not '" + *status + "'");
}

std::optional<MetricDirection> direction_of(const std::optional<std::string>& direction) {
  if (!direction) return std::nullopt;
  if (*direction == "higher_is_better") return MetricDirection::higher_is_better;
  if (*direction == "lower_is_better") return MetricDirection::lower_is_better;
  throw Error(Errc::invalid_argument,
              "direction must be 'higher_is_better' or 'lower_is_better', not '" + *direction + "'");
}

py::object direction_object(const std::optional<MetricDirection>& direction) {
  if (!direction) return py::none();
  return py::str(*direction == MetricDirection::higher_is_better ? "higher_is_better" : "lower_is_better");
}

py::list version_list(const std::vector<ModelVersion>& versions) {
  py::list out;
  for (const auto& v : versions) out.append(version_dict(v));
  return out;
}

py::list id_list(const std::vector<VersionId>& ids) {
  py::list out;
  for (const auto& id : ids) out.append(id.to_string());
  return out;
}

py::dict transition_dict(const Transition& t) {
  py::dict d;
  d["model"] = t.model;
  d["from_version"] = t.from_version ? py::cast(*t.from_version) : py::none();
  d["to_version"] = t.to_version;
  d["alias"] = t.alias;
  return d;
}

py::list edge_list(const std::vector<LineageEdge>& edges) {
  py::list out;
  for (const auto& e : edges) {
    py::dict d;
    d["child"] = e.child.to_string();
    d["parent"] = e.parent.to_string();
    d["relation"] = e.relation;
    d["depth"] = e.depth;
    out.append(d);
  }
  return out;
}

template <class T>
py::object or_none(const std::optional<T>& value) {
  return value ? py::cast(*value) : py::none();
}

py::object sql_value(const SqlValue& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return py::int_(*i);
  if (const auto* d = std::get_if<double>(&v)) return py::float_(*d);
  if (const auto* s = std::get_if<std::string>(&v)) {
    // Text that is not UTF-8 comes back as bytes rather than failing the whole query.
    PyObject* text = PyUnicode_DecodeUTF8(s->data(), static_cast<py::ssize_t>(s->size()), "strict");
    if (text) return py::reinterpret_steal<py::object>(text);
    PyErr_Clear();
    return py::bytes(*s);
  }
  if (const auto* b = std::get_if<SqlBlob>(&v)) {
    py::dict d;
    d["blob_bytes"] = b->size;
    return d;
  }
  return py::none();
}

class RegistryHandle {
  std::shared_ptr<Registry> get() const {
    if (!registry_) throw Error(Errc::conflict, "the registry is closed");
    return registry_;
  }

  // Runs `work` on the registry with the GIL released; `work` must not touch Python objects.
  template <class Work>
  auto call(Work&& work) {
    std::shared_ptr<Registry> registry = get();
    py::gil_scoped_release release;
    return work(*registry);
  }

  void lifecycle(const std::string& ref, const Change& change,
                 void (Registry::*operation)(const ModelRef&, const Change&)) {
    const ModelRef parsed = ModelRef::parse(ref);
    call([&](Registry& r) {
      (r.*operation)(parsed, change);
      return 0;
    });
  }

 public:
  RegistryHandle(const std::filesystem::path& path, bool read_only, std::optional<std::string> signing_key) {
    Options options;
    options.read_only = read_only;
    options.signing_key = std::move(signing_key);
    py::gil_scoped_release release;
    registry_ = std::make_shared<Registry>(path, std::move(options));
  }

  void close() {
    std::shared_ptr<Registry> registry = std::move(registry_);
    py::gil_scoped_release release;
    registry.reset();
  }
  bool closed() const { return !registry_; }
  std::filesystem::path path() const { return get()->path(); }

  py::dict save_model(const NativeModel& native, const py::dict& spec, const std::optional<InputArray>& probe) {
    if (!native.model) throw Error(Errc::invalid_argument, "this Model holds no model");
    NewVersion v = new_version_from(spec);
    MatrixView rows;
    if (probe) {
      if (probe->ndim() != 2) throw Error(Errc::invalid_argument, "probe must be 2-dimensional (rows x features)");
      rows = MatrixView(probe->data(), static_cast<std::size_t>(probe->shape(0)),
                        static_cast<std::size_t>(probe->shape(1)));
    }
    return version_dict(call([&](Registry& r) { return r.save_model(*native.model, std::move(v), rows); }));
  }

  py::tuple load_model(const std::string& ref, bool validate) {
    const ModelRef parsed = ModelRef::parse(ref);
    LoadedModel loaded = call([&](Registry& r) { return r.load_model(parsed, LoadOptions{validate}); });
    auto native = std::make_shared<NativeModel>();
    for (const auto& f : loaded.version.features) native->feature_names.push_back(f.name);
    native->model = std::shared_ptr<const Model>(std::move(loaded.model));
    return py::make_tuple(std::move(native), version_dict(loaded.version));
  }

  py::dict register_bytes(const py::dict& spec, const py::bytes& content) {
    NewVersion v = new_version_from(spec);
    const std::string_view bytes = content;
    return version_dict(call([&](Registry& r) { return r.register_bytes(v, bytes); }));
  }

  py::dict register_file(const py::dict& spec, const std::filesystem::path& file) {
    NewVersion v = new_version_from(spec);
    return version_dict(call([&](Registry& r) { return r.register_file(v, file); }));
  }

  py::bytes load_bytes(const std::string& ref) {
    const ModelRef parsed = ModelRef::parse(ref);
    const std::string bytes = call([&](Registry& r) { return r.load_bytes(parsed); });
    return py::bytes(bytes);
  }

  void get_file(const std::string& ref, const std::filesystem::path& file, bool overwrite) {
    const ModelRef parsed = ModelRef::parse(ref);
    call([&](Registry& r) {
      r.load_to_file(parsed, file, {}, overwrite);
      return 0;
    });
  }

  py::dict get_version(const std::string& ref) {
    const ModelRef parsed = ModelRef::parse(ref);
    return version_dict(call([&](Registry& r) { return r.get(parsed); }));
  }

  py::object find(const std::string& ref) {
    const ModelRef parsed = ModelRef::parse(ref);
    const std::optional<ModelVersion> v = call([&](Registry& r) { return r.find(parsed); });
    return v ? py::object(version_dict(*v)) : py::object(py::none());
  }

  py::list models() {
    const std::vector<ModelSummary> summaries = call([](Registry& r) { return r.list_models(); });
    py::list out;
    for (const auto& s : summaries) {
      py::dict d;
      d["model"] = s.name;
      d["versions"] = s.version_count;
      d["active_version"] = or_none(s.active_version);
      d["latest_version"] = or_none(s.latest_version);
      d["created_at"] = s.created_at;
      out.append(d);
    }
    return out;
  }

  py::list versions(const std::string& model, const std::vector<std::string>& where,
                    const std::optional<std::pair<std::string, std::optional<std::string>>>& tag,
                    const std::optional<std::string>& status, const std::optional<std::string>& order_by,
                    bool descending, bool newest_first, const std::optional<std::size_t>& limit) {
    VersionQuery query;
    for (const auto& condition : where) query.where.push_back(MetricCondition::parse(condition));
    query.tag = tag;
    query.status = status_of(status);
    query.order_by_metric = order_by;
    query.descending = descending;
    query.newest_first = newest_first;
    query.limit = limit;
    return version_list(call([&](Registry& r) { return r.list_versions(model, query); }));
  }

  py::list compare(const std::string& a, const std::string& b, const std::string& metric) {
    const ModelRef ra = ModelRef::parse(a);
    const ModelRef rb = ModelRef::parse(b);
    const std::vector<MetricComparison> rows = call([&](Registry& r) { return r.compare(ra, rb, metric); });
    py::list out;
    for (const auto& c : rows) {
      py::dict d;
      d["metric"] = c.metric;
      d["a"] = or_none(c.a);
      d["b"] = or_none(c.b);
      d["direction"] = direction_object(c.direction);
      d["difference"] = or_none(c.difference());
      d["improvement"] = or_none(c.improvement());
      out.append(d);
    }
    return out;
  }

  py::list ancestors(const std::string& ref, int max_depth) {
    const ModelRef parsed = ModelRef::parse(ref);
    return edge_list(call([&](Registry& r) { return r.ancestors(parsed, max_depth); }));
  }

  py::list descendants(const std::string& ref, int max_depth) {
    const ModelRef parsed = ModelRef::parse(ref);
    return edge_list(call([&](Registry& r) { return r.descendants(parsed, max_depth); }));
  }

  py::list history(const std::string& model) {
    const std::vector<Event> events = call([&](Registry& r) { return r.history(model); });
    py::list out;
    for (const auto& e : events) {
      py::dict d;
      d["id"] = e.id;
      d["model"] = e.model;
      d["kind"] = std::string(to_string(e.kind));
      d["version"] = or_none(e.version);
      d["from_version"] = or_none(e.from_version);
      d["to_version"] = or_none(e.to_version);
      d["alias"] = or_none(e.alias);
      d["actor"] = e.actor;
      d["reason"] = e.reason;
      d["at"] = e.at;
      d["details"] = e.details;
      out.append(d);
    }
    return out;
  }

  py::tuple query(const std::string& sql) {
    const SqlResult result = call([&](Registry& r) { return r.query(sql); });
    py::list rows;
    for (const auto& row : result.rows) {
      py::list cells;
      for (const auto& cell : row) cells.append(sql_value(cell));
      rows.append(py::tuple(cells));
    }
    return py::make_tuple(py::cast(result.columns), rows);
  }

  py::dict promote(const std::string& ref, std::string reason, std::optional<std::string> actor,
                   std::optional<std::string> require_better, const std::optional<std::string>& direction) {
    const ModelRef parsed = ModelRef::parse(ref);
    PromoteOptions options;
    options.reason = std::move(reason);
    options.actor = std::move(actor);
    options.require_better = std::move(require_better);
    options.direction = direction_of(direction);
    return transition_dict(call([&](Registry& r) { return r.promote(parsed, options); }));
  }

  py::dict rollback(const std::string& model, const std::optional<std::string>& to, std::string reason,
                    std::optional<std::string> actor, std::string alias) {
    RollbackOptions options;
    options.reason = std::move(reason);
    options.actor = std::move(actor);
    options.alias = std::move(alias);
    if (to) options.to = ModelRef::parse(*to);
    return transition_dict(call([&](Registry& r) { return r.rollback(model, options); }));
  }

  py::dict set_alias(const std::string& ref, const std::string& alias, std::string reason,
                     std::optional<std::string> actor, std::optional<std::string> require_better,
                     const std::optional<std::string>& direction) {
    const ModelRef parsed = ModelRef::parse(ref);
    AliasOptions options;
    options.reason = std::move(reason);
    options.actor = std::move(actor);
    options.require_better = std::move(require_better);
    options.direction = direction_of(direction);
    return transition_dict(call([&](Registry& r) { return r.set_alias(parsed, alias, options); }));
  }

  std::int64_t remove_alias(const std::string& model, const std::string& alias, std::string reason,
                            std::optional<std::string> actor) {
    return call([&](Registry& r) { return r.remove_alias(model, alias, change_of(std::move(reason), std::move(actor))); });
  }

  py::list aliases(const std::optional<std::string>& model) {
    const std::vector<Alias> all = call([&](Registry& r) { return model ? r.aliases(*model) : r.aliases(); });
    py::list out;
    for (const Alias& a : all) {
      py::dict d;
      d["model"] = a.model;
      d["alias"] = a.name;
      d["version"] = a.version;
      d["set_at"] = a.set_at;
      d["set_by"] = a.set_by;
      out.append(d);
    }
    return out;
  }

  void archive(const std::string& ref, std::string reason, std::optional<std::string> actor) {
    lifecycle(ref, change_of(std::move(reason), std::move(actor)), &Registry::archive);
  }
  void unarchive(const std::string& ref, std::string reason, std::optional<std::string> actor) {
    lifecycle(ref, change_of(std::move(reason), std::move(actor)), &Registry::unarchive);
  }
  void delete_version(const std::string& ref, std::string reason, std::optional<std::string> actor) {
    lifecycle(ref, change_of(std::move(reason), std::move(actor)), &Registry::delete_version);
  }

  void set_tags(const std::string& ref, const std::map<std::string, std::string>& set,
                const std::vector<std::string>& remove, std::string reason, std::optional<std::string> actor) {
    const ModelRef parsed = ModelRef::parse(ref);
    const Change change = change_of(std::move(reason), std::move(actor));
    call([&](Registry& r) {
      r.set_tags(parsed, set, remove, change);
      return 0;
    });
  }

  py::dict sign(const std::string& ref, std::string reason, std::optional<std::string> actor) {
    const ModelRef parsed = ModelRef::parse(ref);
    const Change change = change_of(std::move(reason), std::move(actor));
    return version_dict(call([&](Registry& r) { return r.sign(parsed, change); }));
  }

  py::dict gc(bool dry_run, bool delete_archived, bool include_rollback_history, std::string reason,
              std::optional<std::string> actor) {
    GcOptions options;
    options.dry_run = dry_run;
    options.delete_archived = delete_archived;
    options.include_rollback_history = include_rollback_history;
    options.reason = std::move(reason);
    options.actor = std::move(actor);
    const GcReport report = call([&](Registry& r) { return r.gc(options); });
    py::dict d;
    d["versions_deleted"] = id_list(report.versions_deleted);
    d["versions_kept"] = id_list(report.versions_kept);
    d["blobs_removed"] = report.blobs_removed;
    d["chunks_removed"] = report.chunks_removed;
    d["bytes_freed"] = report.bytes_freed;
    d["dry_run"] = report.dry_run;
    return d;
  }

  py::dict check(const std::optional<std::string>& ref) {
    std::optional<ModelRef> only;
    if (ref) only = ModelRef::parse(*ref);
    const IntegrityReport report = call([&](Registry& r) { return r.check(only); });
    py::dict d;
    d["ok"] = report.ok();
    d["database_problems"] = py::cast(report.database_problems);
    py::list bad;
    for (const auto& [id, problem] : report.bad_versions) bad.append(py::make_tuple(id.to_string(), problem));
    d["bad_versions"] = bad;
    d["versions_checked"] = report.versions_checked;
    return d;
  }

  py::dict export_bundle(const std::vector<std::string>& refs, const std::filesystem::path& bundle) {
    std::vector<ModelRef> parsed;
    for (const auto& ref : refs) parsed.push_back(ModelRef::parse(ref));
    const ExportReport report = call([&](Registry& r) { return r.export_bundle(parsed, bundle); });
    py::dict d;
    d["versions"] = id_list(report.versions);
    d["stored_bytes"] = report.stored_bytes;
    return d;
  }

  py::dict import_bundle(const std::filesystem::path& bundle) {
    const ImportReport report = call([&](Registry& r) { return r.import_bundle(bundle); });
    py::dict d;
    d["imported"] = id_list(report.imported);
    d["already_present"] = id_list(report.already_present);
    return d;
  }

 private:
  // Null once closed. Read and written only with the GIL held.
  std::shared_ptr<Registry> registry_;
};

}  // namespace

void bind_registry(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<RegistryHandle>(m, "RegistryHandle", "The C++ side of modelreg.Registry.")
      .def(py::init<const std::filesystem::path&, bool, std::optional<std::string>>(), "path"_a, "read_only"_a,
           "signing_key"_a)
      .def("close", &RegistryHandle::close)
      .def_property_readonly("closed", &RegistryHandle::closed)
      .def_property_readonly("path", &RegistryHandle::path)
      .def("save_model", &RegistryHandle::save_model, "model"_a, "spec"_a, "probe"_a)
      .def("load_model", &RegistryHandle::load_model, "ref"_a, "validate"_a)
      .def("register_bytes", &RegistryHandle::register_bytes, "spec"_a, "content"_a)
      .def("register_file", &RegistryHandle::register_file, "spec"_a, "file"_a)
      .def("load_bytes", &RegistryHandle::load_bytes, "ref"_a)
      .def("get_file", &RegistryHandle::get_file, "ref"_a, "file"_a, "overwrite"_a)
      .def("get", &RegistryHandle::get_version, "ref"_a)
      .def("find", &RegistryHandle::find, "ref"_a)
      .def("models", &RegistryHandle::models)
      .def("versions", &RegistryHandle::versions, "model"_a, "where"_a, "tag"_a, "status"_a, "order_by"_a,
           "descending"_a, "newest_first"_a, "limit"_a)
      .def("compare", &RegistryHandle::compare, "a"_a, "b"_a, "metric"_a)
      .def("ancestors", &RegistryHandle::ancestors, "ref"_a, "max_depth"_a)
      .def("descendants", &RegistryHandle::descendants, "ref"_a, "max_depth"_a)
      .def("history", &RegistryHandle::history, "model"_a)
      .def("query", &RegistryHandle::query, "sql"_a)
      .def("promote", &RegistryHandle::promote, "ref"_a, "reason"_a, "actor"_a, "require_better"_a, "direction"_a)
      .def("rollback", &RegistryHandle::rollback, "model"_a, "to"_a, "reason"_a, "actor"_a, "alias"_a)
      .def("set_alias", &RegistryHandle::set_alias, "ref"_a, "alias"_a, "reason"_a, "actor"_a, "require_better"_a,
           "direction"_a)
      .def("remove_alias", &RegistryHandle::remove_alias, "model"_a, "alias"_a, "reason"_a, "actor"_a)
      .def("aliases", &RegistryHandle::aliases, "model"_a)
      .def("archive", &RegistryHandle::archive, "ref"_a, "reason"_a, "actor"_a)
      .def("unarchive", &RegistryHandle::unarchive, "ref"_a, "reason"_a, "actor"_a)
      .def("delete_version", &RegistryHandle::delete_version, "ref"_a, "reason"_a, "actor"_a)
      .def("set_tags", &RegistryHandle::set_tags, "ref"_a, "set"_a, "remove"_a, "reason"_a, "actor"_a)
      .def("sign", &RegistryHandle::sign, "ref"_a, "reason"_a, "actor"_a)
      .def("gc", &RegistryHandle::gc, "dry_run"_a, "delete_archived"_a, "include_rollback_history"_a, "reason"_a,
           "actor"_a)
      .def("check", &RegistryHandle::check, "ref"_a)
      .def("export_bundle", &RegistryHandle::export_bundle, "refs"_a, "bundle"_a)
      .def("import_bundle", &RegistryHandle::import_bundle, "bundle"_a);

  // Keys are bytes: a key file may hold any secret, not only the hex digits create_signing_key writes.
  m.def(
      "read_signing_key",
      [](const std::filesystem::path& file) {
        std::string key;
        {
          py::gil_scoped_release release;
          key = read_signing_key(file);
        }
        return py::bytes(key);
      },
      "file"_a);
  m.def(
      "create_signing_key",
      [](const std::filesystem::path& file) {
        std::string key;
        {
          py::gil_scoped_release release;
          key = create_signing_key(file);
        }
        return py::bytes(key);
      },
      "file"_a);
}

}  // namespace modelreg::python
