-- wrk script for POST /api/v1/jobs: every request creates a job with a name
-- of its own, "bench-<run>-<thread>-<n>", so none is refused as a duplicate.
-- Usage: BENCH_TAG=RUN wrk ... -s post.lua URL  (RUN keeps names of runs apart)
-- Answers other than 201 are counted per thread and printed by done().

local threads = {}
local next_id = 1

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

function init(args)
    tag = os.getenv("BENCH_TAG") or "0"
    n = 0
    bad = 0
    first_bad = ""
    headers = { ["Content-Type"] = "application/json" }
    path = wrk.path
end

function request()
    n = n + 1
    local body = string.format(
        '{"name":"bench-%s-%d-%d","schedule":"0 0 1 1 *","api":"http://127.0.0.1:9/x"}',
        tag, id, n)
    return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, body)
    if status ~= 201 then
        bad = bad + 1
        if first_bad == "" then
            first_bad = status .. " " .. string.sub(body or "", 1, 200)
        end
    end
end

function done(summary, latency, requests)
    local total, sample = 0, ""
    for _, t in ipairs(threads) do
        total = total + (t:get("bad") or 0)
        local fb = t:get("first_bad")
        if sample == "" and fb and fb ~= "" then sample = fb end
    end
    io.write(string.format("non-201: %d\n", total))
    if sample ~= "" then
        io.write("first non-201: " .. sample .. "\n")
    end
end
