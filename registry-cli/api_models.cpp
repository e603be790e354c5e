// The API's models: the list of models (filtered to the caller's), a model's audit log and its
// aliases. The shapes are those of `list`, `history` and `alias list` with --json (render.hpp).
#include "api.hpp"
#include "render.hpp"

namespace modelreg::cli::api {

using nlohmann::json;

void add_model_routes(Routes& routes) {
  routes.add({.method = "GET",
              .path = "/api/v1/models",
              .action = Action::read,
              .scope = Scope::filtered,
              .summary = "The models (those a token limited by a glob may read), as `modelreg --json list`",
              .handler = [](Call& call) {
                json out = json::array();
                for (const auto& m : call.registry().list_models()) {
                  if (call.may_read(m.name)) out.push_back(to_json(m));
                }
                call.reply(out);
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/history",
              .action = Action::read,
              .summary = "The model's audit log, oldest first, as `modelreg --json history`",
              .handler = [](Call& call) {
                json out = json::array();
                for (const auto& e : call.registry().history(call.path("model"))) out.push_back(to_json(e));
                call.reply(out);
              }});
  routes.add({.method = "GET",
              .path = "/api/v1/models/{model}/aliases",
              .action = Action::read,
              .summary = "The model's aliases, as `modelreg --json alias list NAME`",
              .handler = [](Call& call) {
                json out = json::array();
                for (const auto& a : call.registry().aliases(call.path("model"))) out.push_back(to_json(a));
                call.reply(out);
              }});
}

}  // namespace modelreg::cli::api
