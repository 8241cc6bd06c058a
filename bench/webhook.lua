-- wrk script for bench/: POST pre-signed Twilio webhook bodies, each once, in turn.
-- Arguments (after `--`): the Lua table file bench/signing.py wrote ({body, signature,
-- body, signature, ...}) and the request path. With several wrk threads each takes
-- every n-th body. done() prints one line "BENCH-JSON {...}" for bench/wrk.py.
local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end

function init(args)
  local data = dofile(args[1])
  local path = args[2]
  step = tonumber(args[3]) or 1
  requests = {}
  for i = 1, #data, 2 do
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = data[i + 1],
    }, data[i])
  end
  first = id
  index = first
  wraps = 0
end

function request()
  local r = requests[index]
  index = index + step
  if index > #requests then
    index = first
    wraps = wraps + 1
  end
  return r
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, t in ipairs(threads) do
    wrapped = wrapped + (t:get("wraps") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "wraps": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, wrapped))
end
