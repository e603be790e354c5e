// The commands that move models and databases: init, migrate, register, get, export, import, verify.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "arguments.hpp"
#include "modelreg/model_archive.hpp"
#include "commands.hpp"
#include "progress_bar.hpp"
#include "render.hpp"

namespace modelreg::cli {
namespace {

using nlohmann::json;

int cmd_init(const Globals& g) {
  Registry reg = open_registry(g, true);
  if (g.json) {
    print_json({{"db", g.db}, {"schema_version", reg.schema_version()}});
  } else {
    print_text("{}: modelreg database at schema version {}\n", g.db, reg.schema_version());
  }
  return 0;
}

int cmd_migrate(const Globals& g) {
  Registry reg = open_registry(g, true);
  const int version = reg.schema_version();
  const int supported = Registry::supported_schema_version();
  if (g.json) {
    print_json({{"db", g.db}, {"schema_version", version}, {"supported_schema_version", supported}});
  } else if (version > supported) {
    print_text("{}: schema version {} is newer than this modelreg ({}); upgrade modelreg to write to it\n", g.db,
               version, supported);
  } else {
    print_text("{}: schema version {} (up to date)\n", g.db, version);
  }
  return 0;
}

struct RegisterArgs {
  std::string name, file, format = "bytes", type, features_file;
  std::vector<std::string> features;
  VersionMetadataArgs metadata;
  bool no_probe = false;
};

// All of `file`, read to its end (a pipe or FIFO too).
std::string read_all(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(Errc::not_found, fmt::format("cannot read '{}': {}", file, std::strerror(errno)));
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw Error(Errc::io_error, fmt::format("cannot read '{}': {}", file, std::strerror(errno)));
  return bytes;
}

// `register --format modelreg-model`: the bytes must be a model archive this build loads, of the
// --type given (if any), taking as many features as listed (if any). A model archive is loaded
// only after its probe reproduces, and register has no probe to store: without --no-probe that is
// refused, naming the ways that store one. Returns the archive, with the spec's type filled in.
std::string checked_model_archive(const RegisterArgs& a, NewVersion& spec) {
  std::string bytes = read_all(a.file);
  std::unique_ptr<Model> model;
  try {
    model = deserialize_model(bytes);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("'{}' is not a model archive this modelreg can load ({}); to keep the bytes as an "
                                      "opaque artifact, register them with another --format, e.g. --format bytes",
                                      a.file, e.what()));
  }
  if (!spec.type_name.empty() && spec.type_name != model->type_name()) {
    throw Error(Errc::invalid_argument, fmt::format("--type {}: '{}' holds a '{}' model", spec.type_name, a.file,
                                                    model->type_name()));
  }
  spec.type_name = model->type_name();
  if (spec.features.empty()) {  // named as save_model names them
    for (std::size_t i = 0; i < model->n_features(); ++i) spec.features.push_back({fmt::format("f{}", i), "float64"});
  } else if (spec.features.size() != model->n_features()) {
    throw Error(Errc::invalid_argument, fmt::format("{} features are listed, but the '{}' model in '{}' takes {}",
                                                    spec.features.size(), spec.type_name, a.file, model->n_features()));
  }
  if (!a.no_probe) {
    throw Error(Errc::invalid_argument,
                fmt::format("'{}' is a '{}' model archive, but `register` has no validation probe to store with it, and "
                            "every load of a model checks one (predict and serve would refuse it): register models "
                            "with `modelreg train` or the library's save_model, move them between registries with "
                            "`modelreg export` and `import` (bundles keep the probe), or pass --no-probe to register it "
                            "unvalidated",
                            a.file, spec.type_name));
  }
  return bytes;
}

int cmd_register(const Globals& g, const RegisterArgs& a) {
  NewVersion spec = version_spec(a.name, a.metadata, actor_of(g));
  spec.format = a.format;
  spec.type_name = a.type;
  if (!a.features.empty() && !a.features_file.empty()) {
    throw UsageError("give either --feature (repeated) or --features-file, not both");
  }
  for (const auto& f : a.features) spec.features.push_back(parse_feature(f));
  if (!a.features_file.empty()) spec.features = read_features_file(a.features_file);

  std::optional<std::string> archive;  // --format modelreg-model: checked before the registry is opened
  if (spec.format == kModelFormat) archive = checked_model_archive(a, spec);

  Registry reg = open_registry(g, true);
  ModelVersion v = [&] {
    ProgressBar bar(fmt::format("registering {}", a.name));
    return archive ? reg.register_bytes(spec, *archive, bar.callback()) : reg.register_file(spec, a.file, bar.callback());
  }();
  if (archive) {
    print_text(stderr, "warning: {} has no validation probe: loading it as a model (predict, serve, load_model) will "
                       "refuse it; its bytes can still be read (get)\n",
               v.ref_string());
  }
  if (g.json) {
    print_json(to_json(v));
  } else {
    print_text("registered {}  {} -> {} ({:.2f}x, {} level {})  sha256 {}\n", version_line(v),
               human_bytes(v.blob.raw_size), human_bytes(v.blob.stored_size), v.blob.ratio(), v.blob.codec,
               v.blob.level, v.blob.sha256);
  }
  return 0;
}

struct GetArgs {
  std::string ref, output;
  bool force = false;
};

int cmd_get(const Globals& g, const GetArgs& a) {
  const ModelRef ref = parse_ref(a.ref);
  Registry reg = open_registry(g, false);
  const ModelVersion v = reg.get(ref);
  const ModelRef exact = ModelRef::number(v.id.model, v.id.number);
  if (a.output == "-") {
    if (g.json) throw UsageError("--json cannot be combined with -o - (the bytes go to stdout)");
    reg.load_to(exact, std::cout);
    std::cout.flush();
    return 0;
  }
  {
    ProgressBar bar(fmt::format("writing {}", v.ref_string()));
    reg.load_to_file(exact, a.output, bar.callback(), a.force);
  }
  if (g.json) {
    print_json({{"ref", v.ref_string()}, {"path", a.output}, {"bytes", v.blob.raw_size}, {"sha256", v.blob.sha256}});
  } else {
    print_text("wrote {} ({}, sha256 verified) to {}\n", v.ref_string(), human_bytes(v.blob.raw_size), a.output);
  }
  return 0;
}

struct ExportArgs {
  std::vector<std::string> refs;
  std::string output;
};

int cmd_export(const Globals& g, const ExportArgs& a) {
  std::vector<ModelRef> parsed;
  for (const auto& r : a.refs) parsed.push_back(parse_ref(r));
  Registry reg = open_registry(g, false);
  ExportReport report;
  {
    ProgressBar bar("exporting");
    report = reg.export_bundle(parsed, a.output, bar.callback());
  }
  if (g.json) {
    print_json({{"bundle", a.output}, {"versions", ref_strings(report.versions)}, {"stored_bytes", report.stored_bytes}});
  } else {
    const std::vector<std::string> names = ref_strings(report.versions);
    print_text("exported {} version{} ({}) to {}: {}\n", names.size(), names.size() == 1 ? "" : "s",
               human_bytes(report.stored_bytes), a.output, fmt::join(names, ", "));
  }
  return 0;
}

int cmd_import(const Globals& g, const std::string& bundle) {
  Registry reg = open_registry(g, true);
  ImportReport report;
  {
    ProgressBar bar("verifying and importing");
    report = reg.import_bundle(bundle, bar.callback());
  }
  if (g.json) {
    print_json({{"imported", ref_strings(report.imported)},
                {"already_present", ref_strings(report.already_present)},
                {"dropped_lineage", report.dropped_lineage}});
    return 0;
  }
  print_text("imported {} version{}{}\n", report.imported.size(), report.imported.size() == 1 ? "" : "s",
             report.imported.empty() ? "" : ": " + fmt::format("{}", fmt::join(ref_strings(report.imported), ", ")));
  if (!report.already_present.empty()) {
    print_text("already here (skipped): {}\n", fmt::join(ref_strings(report.already_present), ", "));
  }
  for (const auto& d : report.dropped_lineage) print_text("lineage not kept (parent not here): {}\n", d);
  return 0;
}

int cmd_verify(const Globals& g, const std::string& ref_text) {
  std::optional<ModelRef> only;
  if (!ref_text.empty()) only = parse_ref(ref_text);
  Registry reg = open_registry(g, false);
  IntegrityReport report;
  {
    ProgressBar bar("verifying");
    report = reg.check(only, bar.callback());
  }
  if (g.json) {
    json bad = json::array();
    for (const auto& [id, why] : report.bad_versions) bad.push_back({{"ref", id.to_string()}, {"error", why}});
    print_json({{"ok", report.ok()},
                {"versions_checked", report.versions_checked},
                {"database_problems", report.database_problems},
                {"bad_versions", bad}});
  } else {
    for (const auto& p : report.database_problems) print_text("database: {}\n", p);
    for (const auto& [id, why] : report.bad_versions) print_text("BAD {}: {}\n", id.to_string(), why);
    print_text("{}: {} version{} checked, {} bad, database {}\n", report.ok() ? "ok" : "FAILED",
               report.versions_checked, report.versions_checked == 1 ? "" : "s", report.bad_versions.size(),
               report.database_problems.empty() ? "ok" : "has problems");
  }
  return report.ok() ? 0 : 1;
}

}  // namespace

void add_init_command(CLI::App& app, Globals& g) {
  add_command(app, g, "init", "Create the database (idempotent) at the newest schema", "  modelreg --db models.db init",
              [&g] { return cmd_init(g); });
}

void add_migrate_command(CLI::App& app, Globals& g) {
  add_command(app, g, "migrate", "Apply pending migrations and print the schema version", "  modelreg migrate",
              [&g] { return cmd_migrate(g); });
}

void add_register_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<RegisterArgs>(
      app, g, "register", "Register a file as a new version of a model",
      "  modelreg register fraud --file fraud.onnx --format onnx --metric f1=0.86 --metric auc=0.93 \\\n"
      "      --feature amount --feature hour:int32 --label v1.1.0 --parent fraud@1:retrained_from \\\n"
      "      --dataset s3://data/fraud-2026-10.csv:train --notes 'October retrain'",
      cmd_register);
  cmd->add_option("NAME", a->name, "Model name ([A-Za-z0-9][A-Za-z0-9_.-]*)")->required();
  cmd->add_option("--file,-f", a->file, "The model's bytes")->required();
  cmd->add_option("--format", a->format, "Format string, e.g. onnx (default: bytes)");
  cmd->add_option("--type", a->type, "Type name, e.g. RandomForest");
  cmd->add_option("--feature", a->features, "Input feature NAME[:DTYPE], in order (repeatable)");
  cmd->add_option("--features-file", a->features_file, "File with one NAME[:DTYPE] per line, or a CSV header line");
  add_version_metadata_options(cmd, a->metadata, "Hyperparameter NAME=VALUE (repeatable)",
                               "Data set URI[:ROLE] (role default train; local files get their SHA-256) (repeatable)",
                               "fraud@3:retrained_from");
  cmd->add_flag("--no-probe", a->no_probe,
                "With --format modelreg-model: register the model archive without the validation probe every model "
                "load checks (refused otherwise; `train` and bundles store one)");
}

void add_get_command(CLI::App& app, Globals& g) {
  auto [cmd, a] = add_command<GetArgs>(
      app, g, "get", "Write a version's bytes to a file (checksum verified)",
      "  modelreg get fraud -o fraud.onnx          # the active version\n  modelreg get fraud@3 -o - | sha256sum",
      cmd_get);
  cmd->add_option("REF", a->ref, "Version")->required();
  cmd->add_option("-o,--output", a->output, "Output file, or - for stdout")->required();
  cmd->add_flag("--force", a->force, "Replace the output file if it exists");
}

void add_export_command(CLI::App& app, Globals& g) {
  auto [cmd, a] =
      add_command<ExportArgs>(app, g, "export", "Write versions with metadata, lineage and bytes into one bundle file",
                              "  modelreg export fraud@3 fraud@4 -o fraud.bundle", cmd_export);
  cmd->add_option("REFS", a->refs, "Versions")->required();
  cmd->add_option("-o,--output", a->output, "Bundle file to create")->required();
}

void add_import_command(CLI::App& app, Globals& g) {
  auto [cmd, bundle] =
      add_command<std::string>(app, g, "import", "Import a bundle (all or nothing, every checksum verified)",
                               "  modelreg --db prod.db import fraud.bundle", cmd_import);
  cmd->add_option("BUNDLE", *bundle, "Bundle file")->required();
}

void add_verify_command(CLI::App& app, Globals& g) {
  auto [cmd, ref] =
      add_command<std::string>(app, g, "verify", "Check the database and every (or one) version's checksums",
                               "  modelreg verify\n  modelreg verify fraud@3", cmd_verify);
  cmd->add_option("REF", *ref, "Only this version");
}

}  // namespace modelreg::cli
