// Registry::save_model / load_model: models saved as archives with a validation probe, and loaded
// back only after every check passes (the seed's "validate on load", made strict).
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "models/archive_header.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/model_serialization.hpp"
#include "store/registry_impl.hpp"

namespace modelreg {
namespace {

constexpr std::size_t kProbeRows = 16;
constexpr double kProbeTolerance = 1e-9;

// 16 rows of values in [-3, 3) from a fixed generator (splitmix64), for models saved without data.
Matrix synthetic_probe_rows(std::size_t cols) {
  Matrix m(kProbeRows, cols);
  std::uint64_t state = 0x6d6f64656c726567ull;  // "modelreg"
  for (std::size_t i = 0; i < kProbeRows * cols; ++i) {
    state += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    m.data()[i] = -3.0 + 6.0 * static_cast<double>(z >> 11) / 9007199254740992.0;
  }
  return m;
}

[[noreturn]] void fail_check(const std::string& version, std::string_view check, const std::string& detail) {
  throw Error(Errc::validation_failed, fmt::format("{}: validation failed at the {} check: {}", version, check, detail));
}

// A model's task and classes must make sense before they are stored.
void check_task(const std::string& type, const ModelTask& t) {
  const std::size_t k = t.classes.size();
  const bool ok = t.task == Task::binary       ? k == 2
                  : t.task == Task::multiclass ? k >= 3
                                               : k == 0;
  if (!ok) {
    throw Error(Errc::invalid_argument,
                fmt::format("the {} model says it is a {} model with {} class labels; a binary classifier has 2, a "
                            "multiclass one 3 or more, a regression model none",
                            type, to_string(t.task), k));
  }
}

}  // namespace

ModelVersion Registry::save_model(const Model& model, NewVersion spec, MatrixView probe_rows) {
  const std::size_t n = model.n_features();
  if (n == 0) throw Error(Errc::invalid_argument, "cannot save an untrained model (it has no features)");
  if (!spec.format.empty() && spec.format != kModelFormat) {
    throw Error(Errc::invalid_argument, fmt::format("save_model writes format '{}'; leave NewVersion::format empty "
                                                    "(use register_bytes for format '{}')",
                                                    kModelFormat, spec.format));
  }
  spec.format = std::string(kModelFormat);
  spec.type_name = model.type_name();
  std::map<std::string, std::string> params = model.hyperparameters();
  for (const auto& [k, v] : spec.params) params[k] = v;
  spec.params = std::move(params);
  if (spec.features.empty()) {
    for (std::size_t i = 0; i < n; ++i) spec.features.push_back({fmt::format("f{}", i), "float64"});
  } else if (spec.features.size() != n) {
    throw Error(Errc::invalid_argument, fmt::format("the feature list has {} names but the {} model takes {} features",
                                                    spec.features.size(), spec.type_name, n));
  }
  Probe probe;
  if (probe_rows.empty()) {
    probe.inputs = synthetic_probe_rows(n);
  } else {
    if (probe_rows.cols() != n) {
      throw Error(Errc::invalid_argument, fmt::format("probe rows have {} columns but the model takes {} features",
                                                      probe_rows.cols(), n));
    }
    const MatrixView head = probe_rows.slice(0, std::min(kProbeRows, probe_rows.rows()));
    probe.inputs = Matrix(std::vector<double>(head.data(), head.data() + head.size()), n);
  }
  const ModelTask task{model.task(), model.classes()};
  check_task(model.type_name(), task);
  probe.outputs = model.predict_outputs(probe.inputs);
  for (double p : probe.outputs) {
    if (!std::isfinite(p)) {
      throw Error(Errc::invalid_argument, "the model predicts a non-finite value on the probe rows; check the "
                                          "probe data for infinite values or give other probe rows");
    }
  }
  const std::string bytes = serialize_model(model);
  detail::MemorySource source(bytes);
  return impl_->register_from(spec, source, {}, &probe, &task);
}

LoadedModel Registry::load_model(const ModelRef& ref, const LoadOptions& options) const {
  LoadedModel loaded;
  loaded.version = get(ref);
  const ModelVersion& v = loaded.version;
  const std::string name = v.ref_string();
  if (v.format != kModelFormat) {
    fail_check(name, "format",
               fmt::format("stored format is '{}', not '{}' — an opaque artifact; load its bytes with load_bytes "
                           "(or `modelreg get`)",
                           v.format, kModelFormat));
  }
  auto named = [&](const Error& e) { return Error(e.code(), fmt::format("{}: {}", name, e.what())); };
  // The archive is streamed from the blob twice, in one read transaction, and never held whole:
  // the first pass verifies every chunk, the SHA-256 and the archive's header and checksum; only
  // then does the second pass deserialize (memory: the model, plus a chunk and a zstd window).
  loaded.model = guarded(fmt::format("loading {}", name), [&] {
    return impl_->with_blob(ModelRef::number(v.id.model, v.id.number), [&](const auto& open) {
      // Errors of the blob already name the version; errors of the archive get its name here.
      bool blob_failed = false;
      auto pull_from = [&](detail::BlobReader& reader) {
        return [&](char* buffer, std::size_t size) {
          try {
            return reader.read(buffer, size);
          } catch (...) {
            blob_failed = true;
            throw;
          }
        };
      };
      // 1. Checksum (Error(corruption)) and 2. archive header compatible with this build
      // (Error(incompatible) / Error(corruption)).
      ArchiveInfo info;
      {
        auto reader = open();
        try {
          info = detail::decode_header_stream(pull_from(*reader));
        } catch (const Error& e) {
          if (blob_failed) throw;
          throw named(e);
        }
      }
      // 3. Type.
      if (options.validate && info.type_name != v.type_name) {
        fail_check(name, "type", fmt::format("the archive holds a '{}' but the version was registered as '{}'",
                                             info.type_name, v.type_name));
      }
      auto reader = open();
      std::vector<char> header(info.header_size);
      for (std::size_t got = 0; got < header.size();) {
        const std::size_t n = reader->read(header.data() + got, header.size() - got);
        if (n == 0) throw named(Error(Errc::corruption, "the archive ended inside its header on the second read"));
        got += n;
      }
      ByteSpanBuffer payload(pull_from(*reader), info.payload_size);
      try {
        return detail::deserialize_payload(payload, info, options.validate ? std::string_view(v.type_name) : "");
      } catch (const Error& e) {
        if (blob_failed) throw;
        throw named(e);
      }
    });
  });
  if (!options.validate) return loaded;
  // 4. Feature count.
  if (loaded.model->n_features() != v.features.size()) {
    fail_check(name, "n_features", fmt::format("the model takes {} features but the version registers {}",
                                               loaded.model->n_features(), v.features.size()));
  }
  // 5. Task and classes.
  const ModelTask has{loaded.model->task(), loaded.model->classes()};
  const ModelTask stored = v.task.value_or(ModelTask{Task::binary, ClassLabels::zero_one()});
  if (has.task != stored.task) {
    fail_check(name, "task", fmt::format("the model is a {} model but the version was registered as {}",
                                         to_string(has.task), to_string(stored.task)));
  }
  if (has.classes != stored.classes) {
    auto list = [](const ClassLabels& c) { return fmt::format("[{}]", fmt::join(c.texts(), ", ")); };
    fail_check(name, "classes", fmt::format("the model's classes are {} but the version registers {}",
                                            list(has.classes), list(stored.classes)));
  }
  // 6. Probe.
  if (!v.probe) fail_check(name, "probe", "no probe was stored with this version (save it with save_model)");
  const std::size_t per_row = loaded.model->n_outputs();
  if (v.probe->inputs.cols() != loaded.model->n_features() ||
      v.probe->inputs.rows() * per_row != v.probe->outputs.size()) {
    fail_check(name, "probe", fmt::format("the stored probe has {} × {} inputs and {} outputs, which does not fit a "
                                          "model of {} features and {} outputs a row",
                                          v.probe->inputs.rows(), v.probe->inputs.cols(), v.probe->outputs.size(),
                                          loaded.model->n_features(), per_row));
  }
  const std::vector<double> again = loaded.model->predict_outputs(v.probe->inputs);
  for (std::size_t i = 0; i < again.size(); ++i) {
    if (!(std::fabs(again[i] - v.probe->outputs[i]) <= kProbeTolerance)) {
      fail_check(name, "probe",
                 fmt::format("row {} output {} is {:.17g} but {:.17g} was stored when it was saved", i / per_row,
                             i % per_row, again[i], v.probe->outputs[i]));
    }
  }
  return loaded;
}

}  // namespace modelreg
