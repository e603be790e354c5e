// The serving benchmark's driver, run by bench/serve_bench.sh against a real
// `modelreg serve` process. Each subcommand does one measurement and writes its numbers as JSON:
//
//   serve_bench data --out DIR [--rows N]
//       DIR/train.csv (make_classification: N rows × 20 features, 5% positives, seed 42) and the
//       request bodies DIR/infer1.json and DIR/infer100.json (rows of that table, FP64).
//   serve_bench swaps --db DB --model M --port P --swaps N --poll-ms MS --body FILE --json OUT
//       N promotions alternating between versions 1 and 2, each after a random pause of 0..MS ms (so
//       the commit falls at a uniformly random point of the server's poll cycle). The promotion goes
//       through Registry::promote (it returns after COMMIT); from then on one keep-alive client posts
//       FILE to /v2/models/M/infer until `model_version` is the new version. Swap latency = promote
//       returned → that response received. The load time of each swap is /status last_load_seconds.
//   serve_bench idle --pid PID --port P --seconds S --json OUT
//       utime + stime of PID (/proc/PID/stat) over S seconds of no traffic, as % of one core.
//   serve_bench promote-loop --db DB --model M --every-ms MS --seconds S
//       promotes versions 1 and 2 alternately every MS ms for S seconds (the swap-under-load run).
//   serve_bench memory --pid PID --port P --db DB --model M --swaps N --json OUT
//       the server must start with no active version of M. RSS with nothing loaded; each model's
//       heap size, measured in this process (malloc'd bytes held by the deserialized model); then
//       version 1 is promoted, and N swaps alternate 2, 1, 2, ...: before each, the peak-RSS mark is
//       reset (/proc/PID/clear_refs, 5), after it VmHWM is the peak during the swap; RSS after 50
//       swaps against RSS once the first version served.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "modelreg/labeled_data.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/registry.hpp"

using nlohmann::json;
using namespace modelreg;
using Clock = std::chrono::steady_clock;

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

// Named options: --key value.
class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0 || i + 1 >= argc) throw std::invalid_argument("expected --key value, got " + key);
      values_[key.substr(2)] = argv[++i];
    }
  }
  std::string str(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::invalid_argument("missing --" + key);
    return it->second;
  }
  std::string str(const std::string& key, const std::string& fallback) const {
    return values_.contains(key) ? values_.at(key) : fallback;
  }
  long num(const std::string& key) const { return std::stol(str(key)); }
  long num(const std::string& key, long fallback) const { return values_.contains(key) ? std::stol(values_.at(key)) : fallback; }

 private:
  std::map<std::string, std::string> values_;
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_json(const std::string& file, const json& j) {
  std::ofstream out(file);
  out << j.dump(2) << "\n";
  if (!out) throw std::runtime_error("cannot write " + file);
}

// Percentile by nearest rank (p in [0, 100]).
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

json summary(const std::vector<double>& v) {
  return {{"p50", percentile(v, 50)}, {"p99", percentile(v, 99)}, {"max", percentile(v, 100)},
          {"min", percentile(v, 0)}};
}

// A field of /proc/PID/status in kB (VmRSS, VmHWM).
long proc_status_kb(long pid, const std::string& field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  throw std::runtime_error(fmt::format("no {} in /proc/{}/status", field, pid));
}

// utime + stime of the whole process, in seconds.
double proc_cpu_seconds(long pid) {
  const std::string stat = read_file(fmt::format("/proc/{}/stat", pid));
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // after "(comm) "
  std::vector<std::string> f;
  for (std::string s; rest >> s;) f.push_back(s);
  // Fields after comm start at field 3 (state); utime and stime are fields 14 and 15.
  return static_cast<double>(std::stoll(f.at(11)) + std::stoll(f.at(12))) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

json get_json(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str());
  if (!r || r->status != 200) throw std::runtime_error("GET " + path + " failed");
  return json::parse(r->body);
}

std::optional<std::int64_t> serving_version(httplib::Client& c) {
  const json s = get_json(c, "/status");
  if (s["serving_version"].is_null()) return std::nullopt;
  return s["serving_version"].get<std::int64_t>();
}

// Waits until /status says `version` serves (polling every `gap`); returns when it saw it.
Clock::time_point wait_serving(httplib::Client& c, std::int64_t version, std::chrono::microseconds gap) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    if (serving_version(c) == version) return Clock::now();
    std::this_thread::sleep_for(gap);
  }
  throw std::runtime_error(fmt::format("version {} did not start serving within 60 s", version));
}

httplib::Client client(long port) {
  httplib::Client c("127.0.0.1", static_cast<int>(port));
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  return c;
}

Registry open_registry(const std::string& db) { return Registry(db); }

void promote(Registry& reg, const std::string& model, std::int64_t version) {
  PromoteOptions o;
  o.reason = "serve_bench";
  reg.promote(ModelRef::number(model, version), o);
}

// ---- subcommands -----------------------------------------------------------------------------

int cmd_data(const Args& a) {
  const std::filesystem::path out = a.str("out");
  std::filesystem::create_directories(out);
  ClassificationSpec spec;
  spec.rows = static_cast<std::size_t>(a.num("rows", 10'000));
  spec.features = 20;
  spec.seed = 42;
  const LabeledData data = make_classification(spec);
  write_csv(data, out / "train.csv");
  for (std::size_t rows : {std::size_t{1}, std::size_t{100}}) {
    json flat = json::array();
    for (std::size_t r = 0; r < rows; ++r) {
      for (double v : data.x.row(r)) flat.push_back(v);
    }
    json body = {{"inputs", json::array({{{"name", "input"}, {"shape", {rows, data.n_features()}},
                                          {"datatype", "FP64"}, {"data", flat}}})}};
    std::ofstream(out / fmt::format("infer{}.json", rows)) << body.dump();
  }
  return 0;
}

int cmd_swaps(const Args& a) {
  const std::string model = a.str("model");
  const long swaps = a.num("swaps", 100);
  const long poll_ms = a.num("poll-ms", 100);
  const std::string body = read_file(a.str("body"));
  const std::string path = fmt::format("/v2/models/{}/infer", model);
  // The probing client sleeps this long between requests so that it does not take the CPU the
  // watcher needs to load (2 cores: server workers, watcher and this process share them).
  const std::chrono::microseconds gap(a.num("probe-gap-us", 200));
  Registry reg = open_registry(a.str("db"));
  auto c = client(a.num("port"));
  auto control = client(a.num("port"));
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> phase(0.0, static_cast<double>(poll_ms));

  std::int64_t serving = serving_version(control).value_or(0);
  std::vector<double> latency, load, promote_ms, margin;
  json each = json::array();
  long probes = 0, failed = 0;
  for (long i = 0; i < swaps; ++i) {
    const std::int64_t target = serving == 1 ? 2 : 1;
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(phase(rng)));
    const auto before = Clock::now();
    promote(reg, model, target);
    const auto committed = Clock::now();
    Clock::time_point seen{};
    for (;;) {
      auto r = c.Post(path.c_str(), body, "application/json");
      const auto now = Clock::now();
      ++probes;
      if (!r || r->status != 200) {
        ++failed;
      } else if (json::parse(r->body)["model_version"] == std::to_string(target)) {
        seen = now;
        break;
      }
      if (ms_between(committed, now) > 60'000) throw std::runtime_error("no swap within 60 s");
      std::this_thread::sleep_for(gap);
    }
    const json s = get_json(control, "/status");
    if (s["serving_version"] != target) throw std::runtime_error("/status disagrees with the infer response");
    const double lat = ms_between(committed, seen);
    const double ld = s["last_load_seconds"].get<double>() * 1000;
    latency.push_back(lat);
    load.push_back(ld);
    promote_ms.push_back(ms_between(before, committed));
    margin.push_back(lat - (static_cast<double>(poll_ms) + ld));  // must stay <= 20 ms
    each.push_back({{"to", target}, {"latency_ms", lat}, {"load_ms", ld}, {"promote_ms", promote_ms.back()}});
    serving = target;
  }
  const json s = get_json(control, "/status");
  const double worst_margin = *std::max_element(margin.begin(), margin.end());
  long over = std::count_if(margin.begin(), margin.end(), [](double m) { return m > 20.0; });
  json out = {{"swaps", swaps},
              {"poll_ms", poll_ms},
              {"latency_ms", summary(latency)},
              {"load_ms", summary(load)},
              {"promote_ms", summary(promote_ms)},
              {"worst_margin_ms", worst_margin},
              {"swaps_over_bound", over},
              {"probe_requests", probes},
              {"probe_failures", failed},
              {"server_swaps_total", s["swaps"]},
              {"server_load_failures", s["load_failures"]},
              {"each", each}};
  write_json(a.str("json"), out);
  fmt::print("swaps: {} swaps, latency p50 {:.1f} ms p99 {:.1f} ms max {:.1f} ms; load p50 {:.2f} ms max {:.2f} ms; "
             "worst (latency - poll - load) {:.1f} ms; {} over the bound\n",
             swaps, percentile(latency, 50), percentile(latency, 99), percentile(latency, 100), percentile(load, 50),
             percentile(load, 100), worst_margin, over);
  return 0;
}

int cmd_idle(const Args& a) {
  const long pid = a.num("pid");
  const double seconds = static_cast<double>(a.num("seconds", 25));
  auto c = client(a.num("port"));
  const json s0 = get_json(c, "/status");
  c.stop();  // no open connection (and no request) during the idle window
  const double cpu0 = proc_cpu_seconds(pid);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double cpu1 = proc_cpu_seconds(pid);
  const auto t1 = Clock::now();
  auto c2 = client(a.num("port"));
  const json s1 = get_json(c2, "/status");
  const double wall = ms_between(t0, t1) / 1000;
  const double cpu = cpu1 - cpu0;
  json out = {{"wall_s", wall},
              {"cpu_s", cpu},
              {"cpu_percent_of_one_core", 100 * cpu / wall},
              {"clock_tick_s", 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK))},
              {"polls", s1["polls"].get<long>() - s0["polls"].get<long>()}};
  write_json(a.str("json"), out);
  fmt::print("idle: {:.3f} s CPU in {:.1f} s = {:.3f}% of one core, {} polls\n", cpu, wall, 100 * cpu / wall,
             out["polls"].get<long>());
  return 0;
}

int cmd_promote_loop(const Args& a) {
  const std::string model = a.str("model");
  const auto every = std::chrono::milliseconds(a.num("every-ms", 1000));
  const auto end = Clock::now() + std::chrono::seconds(a.num("seconds"));
  Registry reg = open_registry(a.str("db"));
  auto next = Clock::now() + every / 2;
  std::int64_t target = 2;
  long n = 0;
  while (next < end) {
    std::this_thread::sleep_until(next);
    promote(reg, model, target);
    ++n;
    target = target == 1 ? 2 : 1;
    next += every;
  }
  fmt::print("promote-loop: {} promotions\n", n);
  return 0;
}

// Bytes malloc'd and in use right now (every arena, plus mmap'd chunks).
std::size_t heap_in_use() {
  const struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

int cmd_memory(const Args& a) {
  const long pid = a.num("pid");
  const std::string model = a.str("model");
  const long swaps = a.num("swaps", 50);
  const long poll_ms = a.num("poll-ms", 100);
  auto c = client(a.num("port"));
  if (serving_version(c)) throw std::runtime_error("memory: the server must start with no active version");
  Registry reg = open_registry(a.str("db"));

  // In this process, before anything else is allocated: Registry::load_model of version 2 while
  // version 1 is held, as the watcher does. Peak RSS rise during the call against the heap of the
  // model it returns: what the load path holds besides the new model (archive bytes, SQLite cache).
  json load_path;
  {
    const long self = static_cast<long>(::getpid());
    auto held = reg.load_model(ModelRef::number(model, 1));
    std::ofstream(fmt::format("/proc/{}/clear_refs", self)) << "5";
    const double rss0 = static_cast<double>(proc_status_kb(self, "VmRSS")) / 1024;
    const std::size_t heap0 = heap_in_use();
    auto fresh = reg.load_model(ModelRef::number(model, 2));
    const double hwm = static_cast<double>(proc_status_kb(self, "VmHWM")) / 1024;
    const double model_mb = static_cast<double>(heap_in_use() - heap0) / 1048576.0;
    load_path = {{"peak_rise_mb", hwm - rss0}, {"new_model_heap_mb", model_mb}, {"transient_mb", hwm - rss0 - model_mb}};
  }

  // Each version's size once deserialized (the archive bytes are freed before measuring).
  json models = json::object();
  std::map<std::int64_t, double> heap_mb;
  for (std::int64_t v : {1, 2}) {
    const auto ref = ModelRef::number(model, v);
    const std::string bytes = reg.load_bytes(ref);
    const auto version = reg.get(ref);
    const std::size_t before = heap_in_use();
    auto m = deserialize_model(bytes);
    const std::size_t after = heap_in_use();
    heap_mb[v] = static_cast<double>(after - before) / 1048576.0;
    models[std::to_string(v)] = {{"heap_mb", heap_mb[v]},
                                 {"raw_archive_mb", static_cast<double>(version.blob.raw_size) / 1048576.0},
                                 {"stored_mb", static_cast<double>(version.blob.stored_size) / 1048576.0}};
  }

  const double kb = 1.0 / 1024;  // kB → MiB
  const double rss_empty = static_cast<double>(proc_status_kb(pid, "VmRSS")) * kb;
  promote(reg, model, 1);
  wait_serving(c, 1, std::chrono::microseconds(1000));
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * poll_ms));  // the loader's temporaries are freed
  const double rss_start = static_cast<double>(proc_status_kb(pid, "VmRSS")) * kb;

  const std::string clear_refs = fmt::format("/proc/{}/clear_refs", pid);
  std::vector<double> peak, peak_over_empty_ratio, rss_after, latency, load, margin;
  json first_swap;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> phase(0.0, static_cast<double>(poll_ms));
  std::int64_t serving = 1;
  for (long i = 0; i < swaps; ++i) {
    const std::int64_t target = serving == 1 ? 2 : 1;
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(phase(rng)));  // random poll phase
    std::ofstream(clear_refs) << "5";  // resets VmHWM to the current RSS
    promote(reg, model, target);
    const auto committed = Clock::now();
    const auto seen = wait_serving(c, target, std::chrono::microseconds(500));
    const double hwm = static_cast<double>(proc_status_kb(pid, "VmHWM")) * kb;
    load.push_back(get_json(c, "/status")["last_load_seconds"].get<double>() * 1000);
    latency.push_back(ms_between(committed, seen));
    margin.push_back(latency.back() - (static_cast<double>(poll_ms) + load.back()));
    if (i == 0) {
      // The first swap against "the RSS serving the old model + the new model's heap".
      first_swap = {{"peak_mb", hwm}, {"rss_serving_old_plus_new_mb", rss_start + heap_mb[target]}};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3 * poll_ms));  // the old model is released
    const double rss = static_cast<double>(proc_status_kb(pid, "VmRSS")) * kb;
    peak.push_back(hwm);
    rss_after.push_back(rss);
    // Memory above the empty server at the peak, against what holding both models takes.
    peak_over_empty_ratio.push_back((hwm - rss_empty) / (heap_mb[serving] + heap_mb[target]));
    serving = target;
  }
  const double rss_end = rss_after.back();
  json out = {{"models", models},
              {"load_path_in_process", load_path},
              {"rss_empty_mb", rss_empty},
              {"rss_start_mb", rss_start},
              {"rss_end_mb", rss_end},
              {"rss_after_first_swap_mb", rss_after.front()},
              {"rss_end_vs_start_percent", 100 * (rss_end - rss_start) / rss_start},
              {"rss_after_swap_mb", summary(rss_after)},
              {"peak_mb", summary(peak)},
              {"peak_over_empty_vs_old_plus_new", summary(peak_over_empty_ratio)},
              {"swap_latency_ms", summary(latency)},
              {"load_ms", summary(load)},
              {"worst_margin_ms", *std::max_element(margin.begin(), margin.end())},
              {"swaps_over_bound", std::count_if(margin.begin(), margin.end(), [](double m) { return m > 20.0; })},
              {"first_swap", first_swap},
              {"swaps", swaps}};
  write_json(a.str("json"), out);
  fmt::print("memory: empty {:.1f} MiB, serving {:.1f} MiB, models {:.1f} + {:.1f} MiB heap; peak during swap max {:.1f} "
             "MiB ((peak - empty) / (old + new) max {:.2f}); after {} swaps {:.1f} MiB ({:+.1f}%)\n",
             rss_empty, rss_start, heap_mb[1], heap_mb[2], percentile(peak, 100), percentile(peak_over_empty_ratio, 100),
             swaps, rss_end, 100 * (rss_end - rss_start) / rss_start);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: serve_bench data|swaps|idle|promote-loop|memory --key value ... (see the source)\n");
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    const Args a(argc, argv, 2);
    if (cmd == "data") return cmd_data(a);
    if (cmd == "swaps") return cmd_swaps(a);
    if (cmd == "idle") return cmd_idle(a);
    if (cmd == "promote-loop") return cmd_promote_loop(a);
    if (cmd == "memory") return cmd_memory(a);
    fmt::print(stderr, "unknown subcommand '{}'\n", cmd);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "serve_bench {}: {}\n", cmd, e.what());
    return 1;
  }
}
