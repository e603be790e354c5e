// The JSON shapes of webhooks and their delivery records (README.md, "Webhooks"), shared by
// `modelreg webhook` and the API's /api/v1/webhooks routes.
#pragma once

#include <nlohmann/json.hpp>

#include "modelreg/webhooks.hpp"

namespace modelreg::cli {

nlohmann::json to_json(const Webhook& w);
nlohmann::json to_json(const Delivery& d);

}  // namespace modelreg::cli
