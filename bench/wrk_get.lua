-- wrk script for a plain GET: `done` prints the latency percentiles as one parsable line (see wrk_links.lua).
function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d non2xx=%d errors=%d seconds=%.3f p50=%d p99=%d max=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency.max))
end
