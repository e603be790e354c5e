// Serving the embedded web UI (ui_assets.hpp).
#include "ui_assets.hpp"

#include <algorithm>
#include <string>

namespace modelreg::cli {
namespace {

const UiAsset* find_asset(std::string_view name) {
  const auto assets = embedded_ui_assets();
  const auto it = std::find_if(assets.begin(), assets.end(), [&](const UiAsset& a) { return a.name == name; });
  return it == assets.end() ? nullptr : &*it;
}

void security_headers(httplib::Response& res) {
  res.set_header("Content-Security-Policy", std::string(kUiContentSecurityPolicy));
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
}

void serve_asset(const UiAsset& asset, const httplib::Request& req, httplib::Response& res) {
  security_headers(res);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("ETag", std::string(asset.etag));
  const std::string match = req.get_header_value("If-None-Match");
  if (!match.empty() && match.find(asset.etag) != std::string::npos) {
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(asset.body.data(), asset.body.size(), std::string(asset.content_type));
}

void not_found(httplib::Response& res, std::string_view what) {
  security_headers(res);
  res.status = 404;
  res.set_content("no such file of the web UI: " + std::string(what) + "\n", "text/plain; charset=utf-8");
}

}  // namespace

void add_ui_routes(httplib::Server& server) {
  server.Get("/", [](const httplib::Request& req, httplib::Response& res) {
    if (const UiAsset* index = find_asset("index.html")) {
      serve_asset(*index, req, res);
    } else {
      not_found(res, "index.html");
    }
  });
  server.Get(R"(/ui/([A-Za-z0-9_.-]+))", [](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
    if (const UiAsset* asset = find_asset(name)) {
      serve_asset(*asset, req, res);
    } else {
      not_found(res, name.substr(0, 64));
    }
  });
}

}  // namespace modelreg::cli
