-- wrk script: POST each path of the file given after `--` once (single-use action links), then stop.
-- A second argument makes each connection pause that many milliseconds after each answer (a person reading the
-- page before the next click). Run with one wrk thread (-t1); `done` prints the latency percentiles as one line.
local paths, next_path, think_ms = {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  think_ms = tonumber(args[2] or "0")
end

function delay()
  return think_ms
end

function request()
  next_path = next_path + 1
  -- Past the end the last path is sent again: its refusal (409) shows up in the non-2xx count.
  return wrk.format("POST", paths[math.min(next_path, #paths)])
end

function response(status, headers, body)
  if next_path >= #paths then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d non2xx=%d errors=%d seconds=%.3f p50=%d p99=%d max=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency.max))
end
