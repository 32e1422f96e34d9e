-- Licensed under the Apache License, Version 2.0 (see LICENSE).
--
-- wrk script for the session-count runs: every request carries the next
-- session cookie from BENCH_COOKIE_FILE (one value a line), so the store is
-- read across all live sessions, not one hot entry. Each thread starts at
-- its own offset. The other headers come from wrk's -H options.

local cookies = {}
local name = os.getenv("BENCH_COOKIE_NAME") or "__Host-Http-bff"
local file = os.getenv("BENCH_COOKIE_FILE")
local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

function init(args)
   for line in io.lines(file) do
      if #line > 0 then cookies[#cookies + 1] = name .. "=" .. line end
   end
   if #cookies == 0 then error("no cookies in " .. tostring(file)) end
   idx = (id * 7919) % #cookies
   hdrs = {}
   for k, v in pairs(wrk.headers) do hdrs[k] = v end
end

function request()
   idx = idx % #cookies + 1
   hdrs["Cookie"] = cookies[idx]
   return wrk.format(nil, nil, hdrs)
end
