-- wrk script: requests alternate GET / and POST / with a small JSON body (one counter per wrk
-- thread, so half of each overall).
-- wrk counts a status > 399 as a status error and every socket error (connect, read, write,
-- timeout) separately; done() prints them all as one JSON line, plus the failures by method
-- (nginx adds X-Method to every response, its own 502/504 pages included).
-- `wrk ... -- close` sends `Connection: close` on every request: a new connection per request.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failed_get = 0
  failed_post = 0
  n = 0
  local close = args[1] == "close"
  get_request = wrk.format("GET", "/", close and { ["Connection"] = "close" } or nil)
  post_request = wrk.format("POST", "/",
    { ["Content-Type"] = "application/json", ["Connection"] = close and "close" or nil },
    '{"order":1234,"items":["a","b","c"],"note":"restart-under-load"}')
end

function request()
  n = n + 1
  if n % 2 == 0 then
    return post_request
  end
  return get_request
end

function response(status, headers, body)
  if status > 399 then
    if headers["X-Method"] == "POST" then
      failed_post = failed_post + 1
    else
      failed_get = failed_get + 1
    end
  end
end

function done(summary, latency, requests)
  local fg, fp = 0, 0
  for _, thread in ipairs(threads) do
    fg = fg + thread:get("failed_get")
    fp = fp + thread:get("failed_post")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"failed_get":%d,"failed_post":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max, latency.mean,
    fg, fp))
end
