// The web UI of `modelreg ui` (README.md, "Web UI"): the files of ui/, embedded into the binary at
// build time by tools/embed_ui.py, served at / (index.html) and /ui/NAME.
//
// Every answer carries a Content-Security-Policy that allows only this origin (no inline script,
// no request leaving the machine), X-Content-Type-Options: nosniff, its file's content type and
// an ETag; browsers revalidate (Cache-Control: no-cache), so a new binary's UI is picked up at
// once and an unchanged file costs a 304.
#pragma once

#include <span>
#include <string_view>

#include <httplib.h>

namespace modelreg::cli {

struct UiAsset {
  std::string_view name;          // app.js
  std::string_view content_type;  // text/javascript; charset=utf-8
  std::string_view etag;          // "<32 hex digits of the SHA-256>", quotes included
  std::string_view body;
};

// The embedded files, by name.
std::span<const UiAsset> embedded_ui_assets() noexcept;

// The headers every UI answer carries.
inline constexpr std::string_view kUiContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

// Serves GET / (index.html) and GET /ui/NAME on `server`.
void add_ui_routes(httplib::Server& server);

}  // namespace modelreg::cli
