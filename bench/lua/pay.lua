-- Register a session and take its payment on the spot: POST /charges/new, settle=pay_now,
-- with the CSRF token (cookie + form field) and a fresh idempotency key per request.
-- SALDO_CLIENTS: a file of client ids; SALDO_COOKIE, SALDO_CSRF, SALDO_DAY, SALDO_RUN.
package.path = os.getenv("SALDO_LUA_DIR") .. "/?.lua;" .. package.path
require("common")

local clients = read_lines(os.getenv("SALDO_CLIENTS"))
local cookie = os.getenv("SALDO_COOKIE")
local csrf = os.getenv("SALDO_CSRF")
local day = os.getenv("SALDO_DAY")
local run = os.getenv("SALDO_RUN")
local services = tonumber(os.getenv("SALDO_SERVICES") or "40")
local staff = tonumber(os.getenv("SALDO_STAFF") or "20")
local threads = {}
local n = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 104729 + tonumber(run) % 100000)
end

function request()
  n = n + 1
  local client = clients[math.random(#clients)]
  local key = string.format("bench-%s-%d-%d", run, tid, n)
  local body = "client_id=" .. client
    .. "&service_id=" .. math.random(services)
    .. "&staff_id=" .. math.random(staff)
    .. "&amount=" .. math.random(80, 300) .. "%2C00"
    .. "&date=" .. day
    .. "&description="
    .. "&settle=pay_now&method=cash"
    .. "&idempotency_key=" .. key
    .. "&_csrf_token=" .. csrf
  return wrk.format("POST", "/charges/new", {
    ["Cookie"] = cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end

done = report
