-- wrk script (run with one wrk thread, -t1). Without arguments: the URL's plain GET. With a file of paths after
-- `--`: POST each path once (single-use action links), then stop; a second argument makes each connection pause
-- that many milliseconds after each answer (a person reading the page before the next click).
-- `done` prints the latency percentiles as one parsable line.
local paths, next_path, think_ms = {}, 0, 0

function init(args)
  if args[1] then
    for line in io.lines(args[1]) do
      paths[#paths + 1] = line
    end
  end
  think_ms = tonumber(args[2] or "0")
end

function delay()
  return think_ms
end

function request()
  if #paths == 0 then
    return wrk.format()
  end
  next_path = next_path + 1
  -- Past the end the last path is sent again: its refusal (409) shows up in the non-2xx count.
  return wrk.format("POST", paths[math.min(next_path, #paths)])
end

function response(status, headers, body)
  if #paths > 0 and next_path >= #paths then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d non2xx=%d errors=%d seconds=%.3f p50=%d p99=%d max=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency.max))
end
