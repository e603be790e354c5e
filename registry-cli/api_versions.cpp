// The API's versions: a model's versions (the filters of `list`, paged by a keyset cursor), one
// version, compare, lineage, a version's bytes (verified, streamed) and registering a new version
// (metadata and bytes in one multipart body, the bytes streamed to a temporary file).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <streambuf>

#include <fmt/format.h>

#include "api.hpp"
#include "render.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

namespace {

constexpr std::int64_t kDefaultPage = 100;
constexpr std::int64_t kMaxPage = 1000;
constexpr std::size_t kMaxMetadataBytes = 1u << 20;

ApiError bad(std::string message) { return ApiError{400, "invalid_argument", std::move(message)}; }

// The cursor of the page after `last`: its number, and with an order by a metric its value of it
// ("7" or "7,0.91" or "7,none").
std::string cursor_of(const ModelVersion& last, const std::optional<std::string>& order_by) {
  if (!order_by) return std::to_string(last.id.number);
  const auto it = last.metrics.find(*order_by);
  return fmt::format("{},{}", last.id.number, it == last.metrics.end() ? "none" : fmt::format("{:.17g}", it->second));
}

VersionQuery::After parse_cursor(const std::string& text, bool by_metric) {
  auto fail = [&] {
    return bad(fmt::format("cursor '{}' is malformed; pass back the X-Next-Cursor of the previous page unchanged, with the "
                           "same order_by",
                           text.substr(0, 60)));
  };
  VersionQuery::After after;
  const auto comma = text.find(',');
  if ((comma != std::string::npos) != by_metric) throw fail();
  const std::string number = text.substr(0, comma);
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), after.number);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size() || after.number < 0) throw fail();
  if (by_metric) {
    const std::string value = text.substr(comma + 1);
    if (value != "none") {
      double v = 0;
      const auto [vend, vec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (value.empty() || vec != std::errc() || vend != value.data() + value.size() || !std::isfinite(v)) throw fail();
      after.metric = v;
    }
  }
  return after;
}

void list_versions(Call& call) {
  const std::string model = call.path("model");
  VersionQuery q;
  for (const auto& w : call.query_all("where")) {
    try {
      q.where.push_back(MetricCondition::parse(w));
    } catch (const Error& e) {
      throw bad(fmt::format("where: {}", e.what()));
    }
  }
  if (const auto tag = call.query("tag")) {
    const auto eq = tag->find('=');
    q.tag = eq == std::string::npos ? std::pair<std::string, std::optional<std::string>>{*tag, std::nullopt}
                                    : std::pair<std::string, std::optional<std::string>>{tag->substr(0, eq), tag->substr(eq + 1)};
  }
  const std::string status = call.query("status").value_or("ready");
  if (status == "ready") {
    q.status = VersionStatus::ready;
  } else if (status == "archived") {
    q.status = VersionStatus::archived;
  } else if (status != "all") {
    throw bad(fmt::format("status '{}' is unknown; give ready (the default), archived or all", status.substr(0, 40)));
  }
  q.order_by_metric = call.query("order_by");
  q.descending = !call.query_bool("ascending");
  q.newest_first = call.query_bool("newest_first");
  if (q.newest_first && q.order_by_metric) {
    throw bad("newest_first orders by version number and order_by by a metric: give one of them");
  }
  const std::int64_t page = call.query_int("limit", 1, kMaxPage).value_or(kDefaultPage);
  q.limit = static_cast<std::size_t>(page);
  if (const auto cursor = call.query("cursor")) q.after = parse_cursor(*cursor, q.order_by_metric.has_value());
  const auto versions = call.registry().list_versions(model, q);
  json out = json::array();
  for (const auto& v : versions) out.push_back(to_json(v));
  if (static_cast<std::int64_t>(versions.size()) == page) {
    const std::string next = cursor_of(versions.back(), q.order_by_metric);
    call.response().set_header("X-Next-Cursor", next);
    std::string query;
    for (const auto& [k, v] : call.request().params) {
      if (k != "cursor") query += fmt::format("{}={}&", httplib::detail::encode_query_param(k), httplib::detail::encode_query_param(v));
    }
    call.response().set_header("Link", fmt::format("<{}?{}cursor={}>; rel=\"next\"", call.request().path, query,
                                                   httplib::detail::encode_query_param(next)));
  }
  call.reply(out);
}

// An std::ostream over httplib's DataSink: a write the client does not take fails the stream.
class SinkBuffer final : public std::streambuf {
 public:
  explicit SinkBuffer(httplib::DataSink& sink) : sink_(sink) { setp(buffer_, buffer_ + sizeof buffer_); }
  ~SinkBuffer() override { sync(); }

 protected:
  int_type overflow(int_type c) override {
    if (sync() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override {
    const auto n = static_cast<std::size_t>(pptr() - pbase());
    if (n == 0) return 0;
    if (!sink_.write(pbase(), n)) return -1;
    setp(buffer_, buffer_ + sizeof buffer_);
    return 0;
  }

 private:
  httplib::DataSink& sink_;
  char buffer_[1 << 16];
};

void download(Call& call) {
  auto own = std::make_shared<Registry>(call.context().open());
  Registry& reg = *own;
  const ModelVersion v = reg.get(call.ref());
  // The exact version: an alias moving between the check and the sending changes nothing.
  const ModelRef exact = ModelRef::number(v.id.model, v.id.number);
  reg.verify(exact);  // every chunk and the SHA-256, before the first byte is sent
  auto& res = call.response();
  res.set_header("X-Modelreg-Sha256", v.blob.sha256);
  res.set_header("Content-Disposition", fmt::format("attachment; filename=\"{}-{}.bin\"", v.id.model, v.id.number));
  res.set_content_provider(
      static_cast<std::size_t>(v.blob.raw_size), "application/octet-stream",
      [own, exact](std::size_t offset, std::size_t, httplib::DataSink& sink) {
        // Everything in one call: the bytes are verified again as they stream (load_to), and a
        // mismatch or a client that stops taking them ends the connection short of Content-Length.
        if (offset != 0) return false;
        try {
          SinkBuffer buffer(sink);
          std::ostream out(&buffer);
          own->load_to(exact, out);
          out.flush();
          return static_cast<bool>(out);
        } catch (const std::exception&) {
          return false;
        }
      });
}

// The metadata part of a registration as a NewVersion of `model` by `actor`.
NewVersion parse_metadata(const std::string& text, const std::string& model, const std::optional<std::string>& actor) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw bad(fmt::format("the metadata part is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw bad("the metadata part must be a JSON object");
  NewVersion spec;
  spec.model = model;
  spec.format = "bytes";
  spec.created_by = actor;
  auto str = [&](const json& v, const std::string& what) {
    if (!v.is_string()) throw bad(fmt::format("metadata: {} must be a string", what));
    return v.get<std::string>();
  };
  auto object = [&](const json& v, const std::string& what) -> const json& {
    if (!v.is_object()) throw bad(fmt::format("metadata: {} must be an object", what));
    return v;
  };
  for (const auto& [key, value] : j.items()) {
    if (key == "format") {
      spec.format = str(value, key);
    } else if (key == "type_name") {
      spec.type_name = str(value, key);
    } else if (key == "notes") {
      spec.notes = str(value, key);
    } else if (key == "label") {
      spec.label = str(value, key);
    } else if (key == "level") {
      if (!value.is_number_integer()) throw bad("metadata: level must be a whole number from 0 to 19");
      spec.level = value.get<int>();
    } else if (key == "metrics") {
      for (const auto& [name, m] : object(value, key).items()) {
        if (!m.is_number()) throw bad(fmt::format("metadata: metrics.{} must be a number", name));
        spec.metrics[name] = m.get<double>();
      }
    } else if (key == "params") {
      for (const auto& [name, p] : object(value, key).items()) spec.params[name] = str(p, "params." + name);
    } else if (key == "tags") {
      for (const auto& [name, t] : object(value, key).items()) spec.tags[name] = str(t, "tags." + name);
    } else if (key == "features") {
      if (!value.is_array()) throw bad("metadata: features must be an array of names or {\"name\", \"dtype\"} objects");
      for (const auto& f : value) {
        Feature feature;
        if (f.is_string()) {
          feature.name = f.get<std::string>();
        } else if (f.is_object() && f.contains("name")) {
          feature.name = str(f["name"], "features[].name");
          if (f.contains("dtype")) feature.dtype = str(f["dtype"], "features[].dtype");
        } else {
          throw bad("metadata: each feature is a name or {\"name\", \"dtype\"}");
        }
        spec.features.push_back(std::move(feature));
      }
    } else if (key == "parents") {
      if (!value.is_array()) throw bad("metadata: parents must be an array of REFs or {\"ref\", \"relation\"} objects");
      for (const auto& p : value) {
        Parent parent{ModelRef::active(model)};
        if (p.is_string()) {
          parent.ref = ModelRef::parse(p.get<std::string>());
        } else if (p.is_object() && p.contains("ref")) {
          parent.ref = ModelRef::parse(str(p["ref"], "parents[].ref"));
          if (p.contains("relation")) parent.relation = str(p["relation"], "parents[].relation");
        } else {
          throw bad("metadata: each parent is a REF or {\"ref\", \"relation\"}");
        }
        spec.parents.push_back(std::move(parent));
      }
    } else if (key == "datasets") {
      if (!value.is_array()) throw bad("metadata: datasets must be an array of {\"uri\", \"sha256\", \"role\"} objects");
      for (const auto& d : value) {
        if (!d.is_object() || !d.contains("uri")) throw bad("metadata: each data set is {\"uri\", \"sha256\", \"role\"}");
        Dataset ds;
        ds.uri = str(d["uri"], "datasets[].uri");
        if (d.contains("sha256")) ds.sha256 = str(d["sha256"], "datasets[].sha256");
        if (d.contains("role")) ds.role = str(d["role"], "datasets[].role");
        spec.datasets.push_back(std::move(ds));
      }
    } else {
      throw bad(fmt::format("metadata: unknown field '{}'; known: format, type_name, metrics, params, features, tags, "
                            "notes, label, parents, datasets, level",
                            key.substr(0, 64)));
    }
  }
  if (spec.format == kModelFormat) {
    throw bad(fmt::format("format '{}' holds a model archive with a probe, which only the library, `modelreg train` and "
                          "`modelreg import-model` store; register opaque bytes over HTTP (format 'bytes', 'onnx', ...)",
                          kModelFormat));
  }
  return spec;
}

// A temporary file, removed when this goes out of scope.
class UploadFile {
 public:
  explicit UploadFile(const std::filesystem::path& dir) {
    std::string name = (dir / "modelreg-upload-XXXXXX").string();
    fd_ = ::mkstemp(name.data());
    if (fd_ < 0) throw Error(Errc::io_error, fmt::format("cannot create a temporary file in '{}': {}", dir.string(), std::strerror(errno)));
    path_ = name;
  }
  ~UploadFile() {
    if (fd_ >= 0) ::close(fd_);
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  UploadFile(const UploadFile&) = delete;
  UploadFile& operator=(const UploadFile&) = delete;

  bool write(const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error_ = std::strerror(errno);
        return false;
      }
      data += n;
      size -= static_cast<std::size_t>(n);
      bytes_ += static_cast<std::uint64_t>(n);
    }
    return true;
  }
  void close() {
    if (::close(std::exchange(fd_, -1)) != 0) throw Error(Errc::io_error, fmt::format("cannot write the upload: {}", std::strerror(errno)));
  }
  const std::filesystem::path& path() const noexcept { return path_; }
  const std::string& error() const noexcept { return error_; }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  int fd_ = -1;
  std::filesystem::path path_;
  std::string error_;
  std::uint64_t bytes_ = 0;
};

void register_version(Call& call) {
  const std::string model = call.path("model");
  if (!call.request().is_multipart_form_data()) {
    throw bad("send the version as multipart/form-data: a part 'metadata' (JSON) and then a part 'file' (the bytes), "
              "e.g. curl -F metadata=@meta.json -F file=@model.bin");
  }
  UploadFile upload(call.context().upload_dir);
  std::string metadata, part, problem;
  bool have_metadata = false, have_file = false;
  const bool read = (*call.reader())(
      [&](const httplib::MultipartFormData& header) {
        part = header.name;
        if (part == "metadata") {
          if (have_metadata || have_file) problem = "give one part 'metadata', before the part 'file'";
          have_metadata = true;
        } else if (part == "file") {
          if (have_file) problem = "give one part 'file'";
          have_file = true;
        } else {
          problem = fmt::format("unknown part '{}'; send 'metadata' (JSON) and 'file' (the bytes)", part.substr(0, 64));
        }
        return problem.empty();
      },
      [&](const char* data, std::size_t size) {
        if (part == "metadata") {
          if (metadata.size() + size > kMaxMetadataBytes) {
            problem = fmt::format("the metadata part is over {} bytes", kMaxMetadataBytes);
            return false;
          }
          metadata.append(data, size);
          return true;
        }
        if (!upload.write(data, size)) {
          problem = fmt::format("cannot write the upload to '{}': {}", upload.path().string(), upload.error());
          return false;
        }
        return true;
      });
  if (!problem.empty()) throw ApiError{upload.error().empty() ? 400 : 500, upload.error().empty() ? "invalid_argument" : "io_error", problem};
  if (!read) throw bad("the multipart body could not be read to its end (malformed, or the client stopped sending)");
  if (!have_metadata || !have_file) throw bad("the body needs a part 'metadata' (JSON) and a part 'file' (the bytes)");
  upload.close();
  const NewVersion spec = parse_metadata(metadata, model, call.actor());
  const ModelVersion v = call.context().open().register_file(spec, upload.path());
  call.reply(to_json(v), 201);
}

}  // namespace

void add_version_routes(Routes& routes) {
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/versions",
              .action = Action::read,
              .summary = "A page of the model's versions with the filters of `modelreg list`; the next page's cursor is in "
                         "X-Next-Cursor and Link when the page is full",
              .query = {{"where", "string", "A metric condition such as f1>=0.8 (all must hold)", true},
                        {"tag", "string", "Only versions with tag KEY or KEY=VALUE"},
                        {"status", "string", "ready (default), archived or all"},
                        {"order_by", "string", "Order by this metric, best (highest) first; versions without it last"},
                        {"ascending", "boolean", "With order_by: lowest first"},
                        {"newest_first", "boolean", "Without order_by: the highest version number first (default: oldest first)"},
                        {"limit", "integer", "Versions in a page, 1 to 1000 (default 100)"},
                        {"cursor", "string", "The X-Next-Cursor of the previous page"}},
              .handler = list_versions});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/versions/{version}",
              .action = Action::read,
              .summary = "One version (a number, label or alias), as `modelreg --json show`",
              .handler = [](Call& call) {
                const ModelVersion v = call.registry().get(call.ref());
                const auto children = call.registry().descendants(ModelRef::number(v.id.model, v.id.number), 1);
                call.reply(show_json(v, version_events(call.registry(), v), children));
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/compare",
              .action = Action::read,
              .summary = "Two versions' metrics side by side, as `modelreg --json compare`",
              .query = {{"a", "string", "The first version (number, label or alias)"},
                        {"b", "string", "The second version"},
                        {"metric", "string", "Only these metrics", true}},
              .handler = [](Call& call) {
                const std::string model = call.path("model");
                const auto a = call.query("a"), b = call.query("b");
                if (!a || !b) throw bad("give the two versions to compare: ?a=VERSION&b=VERSION");
                const ModelRef ra = ModelRef::parse(model + "@" + *a), rb = ModelRef::parse(model + "@" + *b);
                Registry& reg = call.registry();
                std::vector<MetricComparison> rows;
                const auto metrics = call.query_all("metric");
                if (metrics.empty()) rows = reg.compare(ra, rb);
                for (const auto& m : metrics) {
                  auto one = reg.compare(ra, rb, m);
                  rows.insert(rows.end(), one.begin(), one.end());
                }
                call.reply(compare_json(reg.get(ra), reg.get(rb), rows));
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/versions/{version}/lineage",
              .action = Action::read,
              .summary = "The version's ancestors and descendants, as `modelreg --json lineage`",
              .query = {{"direction", "string", "both (default), ancestors or descendants"},
                        {"max_depth", "integer", "Generations each way, 1 to 1000000 (default: all)"}},
              .handler = [](Call& call) {
                const std::string direction = call.query("direction").value_or("both");
                const int depth = static_cast<int>(call.query_int("max_depth", 1, 1'000'000).value_or(0));
                if (direction != "both" && direction != "ancestors" && direction != "descendants") {
                  throw bad(fmt::format("direction '{}' is unknown; give both, ancestors or descendants", direction.substr(0, 40)));
                }
                Registry& reg = call.registry();
                const ModelRef ref = call.ref();
                const std::string root = reg.get(ref).ref_string();
                const bool up = direction != "descendants", down = direction != "ancestors";
                const auto ancestors = up ? reg.ancestors(ref, depth) : std::vector<LineageEdge>{};
                const auto descendants = down ? reg.descendants(ref, depth) : std::vector<LineageEdge>{};
                call.reply(lineage_json(root, up ? &ancestors : nullptr, down ? &descendants : nullptr));
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/versions/{version}/bytes",
              .action = Action::read,
              .summary = "The version's bytes, verified (every chunk and the SHA-256) before they are sent; the SHA-256 is in "
                         "X-Modelreg-Sha256",
              .answer = "application/octet-stream",
              .handler = download});
  routes.add({.method = "POST",
              .path = "/api/v1/models/{model}/versions",
              .action = Action::write,
              .summary = "Register a new version: a multipart body with a part 'metadata' (JSON: format, type_name, "
                         "metrics, params, features, tags, notes, label, parents, datasets, level) and then a part 'file' "
                         "(the bytes, streamed to disk); answers 201 with the version as `modelreg --json register`",
              .body = "multipart/form-data",
              .body_fields = {{"metadata", "string", "JSON object of the version's metadata"},
                              {"file", "binary", "The version's bytes"}},
              .handler = register_version});
}

}  // namespace modelreg::cli::api
