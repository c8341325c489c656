-- wrk script for bench/run.sh: every request carries one of the session cookies listed in a file, one
-- "name=value" a line, and the User-Agent the sessions were seeded with (so Asm's client-profile check never writes).
--
--   wrk ... -s bench/wrk/sessions.lua URL -- COOKIE_FILE THREADS
--
-- Each wrk thread takes its own slice of the sessions and goes round them in order. With more sessions per thread
-- than connections per thread, no two requests in flight share a session, so locking modes are measured without
-- contention. A file with one line puts every connection on the same session: the lock hand-off scenario.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local cookies = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      cookies[#cookies + 1] = line
    end
  end
  if #cookies == 0 then
    error("no session cookies in " .. args[1])
  end

  local threads = tonumber(args[2]) or 1
  local per_thread = math.floor(#cookies / threads)
  local first, last = 1, #cookies
  if per_thread >= 1 then
    first = id * per_thread + 1
    last = first + per_thread - 1
  end

  requests = {}
  for i = first, last do
    requests[#requests + 1] = wrk.format("GET", wrk.path, { ["Cookie"] = cookies[i], ["User-Agent"] = "asm-bench" })
  end
  index = 0
end

function request()
  index = index % #requests + 1
  return requests[index]
end
