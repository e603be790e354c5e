// `modelreg serve`: the ActiveWatcher behind an HTTP server (Open Inference Protocol v2, /predict,
// /status, /metrics). See README.md, "Server API".
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace modelreg::cli {

struct ServeArgs {
  std::string db;
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the chosen one is printed)
  int poll_ms = 100;
  int threads = 0;  // 0: 8 per core, at least 64 (each open keep-alive connection holds one)
  std::size_t max_body_bytes = 8u << 20;
  // When set, only versions signed with this key are served (see modelreg/signing.hpp).
  std::optional<std::string> signing_key;
};

// Serves until SIGINT or SIGTERM, then drains in-flight requests and returns 0. Prints
// "listening on http://HOST:PORT" on stdout once the socket is bound. Throws modelreg::Error.
int run_serve(const ServeArgs& args);

}  // namespace modelreg::cli
