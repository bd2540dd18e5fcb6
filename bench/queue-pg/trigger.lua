-- wrk script for POST /api/v1/jobs/{id}/trigger (the URL given to wrk):
-- exactly QPG_COUNT triggers in all, split over wrk's threads, and, when
-- QPG_RATE is set, paced to that many per second in all (open loop: each
-- thread keeps a schedule of its own and catches up, at most 100 ms, when
-- it falls behind).
--
--   QPG_COUNT=100000 QPG_THREADS=2 QPG_DONE=/tmp/x wrk -t2 -c64 -d300s \
--       --timeout 30s -s trigger.lua http://127.0.0.1:P/api/v1/jobs/ID/trigger
--   QPG_COUNT=20000 QPG_RATE=2000 QPG_THREADS=2 QPG_DONE=/tmp/x wrk -t2 -c32 ... URL
--
-- QPG_THREADS must equal wrk's -t (a thread's init() runs before the next
-- thread is set up, so the script cannot count them itself).
--
-- wrk always runs for its whole -d (its main thread sleeps that long), so a
-- thread whose triggers have all been answered stops itself and writes
-- QPG_DONE.<thread> ("accepted refused"); run.sh sends wrk SIGINT once every
-- thread has, and wrk then prints its report and done()'s line.  Until then
-- the thread's idle connections send GET /healthz every 50 ms (answered 200,
-- not counted).  Answers 202 are counted as accepted, anything else as
-- refused; a trigger never answered (wrk timed it out: run it with a long
-- --timeout, since such a trigger may still have been enqueued) makes the
-- thread give up 30 s after its last trigger was sent, counted as unanswered.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } qpg_timespec;
int clock_gettime(int clk, qpg_timespec *tp);
]]
local ts = ffi.new("qpg_timespec")
local function now_ms() -- CLOCK_MONOTONIC, in ms
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local total = tonumber(os.getenv("QPG_COUNT") or "") or 0
local rate = tonumber(os.getenv("QPG_RATE") or "")
if rate and rate <= 0 then rate = nil end
local wrk_threads = tonumber(os.getenv("QPG_THREADS") or "") or 1
local done_prefix = os.getenv("QPG_DONE")
local nthreads = 0

function setup(thread)
    nthreads = nthreads + 1
    thread:set("idx", nthreads)
    table.insert(threads, thread)
end

function init(args)
    -- This thread's share: total / threads, the first ones taking the rest.
    quota = math.floor(total / wrk_threads)
    if idx <= total % wrk_threads then quota = quota + 1 end
    sent, ok, bad, lost, filler, first_bad = 0, 0, 0, 0, 0, ""
    armed = 0 -- delay() calls not yet followed by their request()
    finished = false
    trig = wrk.format("POST", wrk.path, { ["Content-Length"] = "0" }, "")
    health = wrk.format("GET", "/healthz")
    if rate then interval = wrk_threads * 1000.0 / rate end -- ms between this thread's triggers
    if quota == 0 then finish() end
end

function finish()
    if finished then return end
    finished = true
    if done_prefix then
        local f = io.open(done_prefix .. "." .. idx, "w")
        if f then
            f:write(ok, " ", bad, "\n")
            f:close()
        end
    end
    wrk.thread:stop()
end

-- delay() is defined, so wrk calls it before every request it sends.
-- Triggers go at once (or on the pacing schedule); a filler GET waits 50 ms.
function delay()
    armed = armed + 1
    if sent >= quota then return 50 end
    if not rate then return 0 end
    local now = now_ms()
    if next_at == nil then
        next_at = now
    else
        next_at = next_at + interval
        if next_at < now - 100 then next_at = now - 100 end
    end
    local d = next_at - now
    if d < 0 then d = 0 end
    return d
end

function request()
    -- wrk calls request() once on the first thread before it runs, to check
    -- the request it builds (not sent): that call came with no delay().
    if armed == 0 then return trig end
    armed = armed - 1
    if sent < quota then
        sent = sent + 1
        if sent == quota then last_sent = now_ms() end
        return trig
    end
    filler = filler + 1
    if not finished and now_ms() - last_sent > 30000 then
        lost = quota - ok - bad
        finish()
    end
    return health
end

function response(status, headers, body)
    if status == 202 then
        ok = ok + 1
    elseif status == 200 then
        return -- a filler /healthz
    else
        bad = bad + 1
        if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 200) end
    end
    if ok + bad >= quota then finish() end
end

function done(summary, latency, requests)
    local o, b, l, f, sample = 0, 0, 0, 0, ""
    for _, t in ipairs(threads) do
        o = o + (t:get("ok") or 0)
        b = b + (t:get("bad") or 0)
        l = l + (t:get("lost") or 0)
        f = f + (t:get("filler") or 0)
        local fb = t:get("first_bad")
        if sample == "" and fb and fb ~= "" then sample = fb end
    end
    io.write(string.format("triggers: %d accepted, %d refused, %d unanswered, %d filler GETs\n", o, b, l, f))
    if sample ~= "" then io.write("first refused: " .. sample .. "\n") end
end
