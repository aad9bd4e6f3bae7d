-- Instant search as reception types: GET /clients?q=... as the HTMX fragment, logged in.
-- SALDO_QUERIES: a file of URL-encoded queries; SALDO_COOKIE: the Cookie header.
package.path = os.getenv("SALDO_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local queries = read_lines(os.getenv("SALDO_QUERIES"))
local cookie = os.getenv("SALDO_COOKIE")
local threads = {}
local n = 0

function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end

function request()
  n = n + 1
  local q = queries[(n + offset) % #queries + 1]
  return wrk.format("GET", "/clients?q=" .. q, {
    ["Cookie"] = cookie,
    ["HX-Request"] = "true",
    ["HX-Target"] = "client-results",
    ["HX-Current-URL"] = "http://127.0.0.1/clients",
  })
end

done = report
