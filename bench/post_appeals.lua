-- wrk script: POST a new, valid appeal each request (own channel_ref, credit code with a correct
-- check character per GB 32100-2015), so intake does the full work of a new appeal every time.
local alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
local weights = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tonumber(wrk.thread:get("thread_id")) or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Api-Key"] = os.getenv("BENCH_API_KEY") or ""
end

local function uscc(n)
  local first = string.format("91440300MA%07d", n % 10000000)
  local total = 0
  for i = 1, 17 do
    total = total + (string.find(alphabet, string.sub(first, i, i), 1, true) - 1) * weights[i]
  end
  local check = (31 - total % 31) % 31
  return first .. string.sub(alphabet, check + 1, check + 1)
end

-- BENCH_PAUSE_MS makes each connection wait between requests: a steady load below saturation.
local pause_ms = tonumber(os.getenv("BENCH_PAUSE_MS") or "")
if pause_ms then
  function delay()
    return pause_ms
  end
end

function request()
  counter = counter + 1
  local n = thread_id * 1000000 + counter
  local body = string.format(
    '{"channel_ref":"bench-%s-%d-%d","enterprise":{"uscc":"%s","name":"Bench Company %d","employees":%d,' ..
    '"industry":"manufacturing","district":"nanshan"},"contact":{"name":"Bench Contact","phone":"13800138000"},' ..
    '"category":"financing","title":"Loan falls due","description":"Our working-capital loan falls due; we ' ..
    'ask for deferred repayment of principal and interest."}',
    os.getenv("BENCH_RUN") or "run", thread_id, counter, uscc(n), n, n % 400)
  return wrk.format(nil, nil, nil, body)
end
