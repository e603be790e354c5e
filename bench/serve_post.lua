-- wrk script for bench/serve_bench.sh: POST the JSON body read from the file named after `--`.
--   wrk ... -s bench/serve_post.lua http://127.0.0.1:PORT/v2/models/NAME/infer -- BODY.json
-- The request is built once per thread from wrk.method/body/headers (no per-request Lua).
function init(args)
  local f = assert(io.open(args[1], "rb"), "cannot open the body file " .. tostring(args[1]))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
