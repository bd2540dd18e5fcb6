// gw.mjs — the graphile-worker side of bench/queue-pg/run.sh.
//
//   node gw.mjs add URL N
//       installs graphile-worker's schema, then adds N jobs of task "post"
//       with utils.addJobs (one graphile_worker.add_jobs call per 10,000);
//       prints {"added", "seconds", "per_s"}.
//   node gw.mjs drain URL defaults|tuned N SINK MAX_S
//       one worker process (run()) with that configuration; every job POSTs
//       its payload to SINK with node's fetch.  Runs until N jobs have
//       finished (or MAX_S seconds have passed), then prints one JSON object:
//       jobs done, drain seconds from the first job's start to the last one's
//       end, jobs/s over that span, start latency p50/p99/max (a job's start
//       less its run_at, which is add_job's now()), CPU of this process.
//       Writes "ready" to stderr once the worker runs.
//   node gw.mjs feed URL RATE SECS
//       adds RATE*SECS jobs paced to RATE per second, every 5 ms those due
//       (utils.addJobs), for the steady-rate latency stage.
//
// The configurations:
//   defaults: graphile-worker's own (concurrency 1, pool of 10, no local
//             queue, completions one by one).
//   tuned:    the knobs the graphile-worker performance page gives for
//             throughput: localQueue {size: 500}, completeJobBatchDelay 0,
//             failJobBatchDelay 0, plus concurrency GW_CONCURRENCY (default
//             200: the task waits on HTTP, so more of them in flight help) and
//             maxPoolSize GW_POOL (default 25).
// GW_TASK=noop makes the task return at once instead of POSTing (a look at
// graphile-worker's own ceiling; run.sh does not use it).
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const [mode, url, ...rest] = process.argv.slice(2);

// Warnings and errors only: graphile's info lines are not wanted here.
const logger = new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") process.stderr.write(`graphile ${level}: ${message}\n`);
});

const nowMs = () => performance.timeOrigin + performance.now();

function cpuSeconds() {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
}

function pct(sorted, p) {
    if (sorted.length === 0) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
    return sorted[i];
}

async function add(n) {
    const utils = await makeWorkerUtils({ connectionString: url, logger });
    try {
        await utils.migrate();
        const batch = 10000;
        const t0 = nowMs();
        for (let i = 0; i < n; i += batch) {
            const specs = [];
            for (let j = i; j < Math.min(n, i + batch); j++) {
                specs.push({ identifier: "post", payload: { i: j } });
            }
            await utils.addJobs(specs);
        }
        const s = (nowMs() - t0) / 1000;
        console.log(JSON.stringify({ added: n, seconds: s, per_s: n / s }));
    } finally {
        await utils.release();
    }
}

async function feed(rate, secs) {
    const utils = await makeWorkerUtils({ connectionString: url, logger, maxPoolSize: 16 });
    try {
        await utils.migrate();
        const n = Math.round(rate * secs);
        const t0 = nowMs();
        let sent = 0;
        let failed = 0;
        let calls = 0;
        const inflight = new Set();
        // Open loop: every 5 ms, the jobs due by now in one addJobs call (about
        // 10 at 2,000/s).  One transaction per job does not keep up here: each
        // add_job NOTIFYs, and PostgreSQL serializes the commits of notifying
        // transactions, so with fsync on they go one flush at a time.
        while (sent < n) {
            const due = Math.min(n, Math.floor(((nowMs() - t0) / 1000) * rate) + 1);
            if (due > sent) {
                const specs = [];
                for (; sent < due; sent++) specs.push({ identifier: "post", payload: { i: sent } });
                const p = utils
                    .addJobs(specs)
                    .catch(() => (failed += specs.length))
                    .finally(() => inflight.delete(p));
                inflight.add(p);
                calls++;
            }
            await new Promise((r) => setTimeout(r, 5));
        }
        await Promise.all(inflight);
        const s = (nowMs() - t0) / 1000;
        console.log(
            JSON.stringify({ added: sent - failed, failed, calls, seconds: s, per_s: (sent - failed) / s }),
        );
    } finally {
        await utils.release();
    }
}

async function drain(config, n, sink, maxS) {
    const noop = process.env.GW_TASK === "noop";
    const starts = new Float64Array(n);
    const lat = new Float64Array(n);
    let started = 0;
    let finished = 0;
    let errors = 0;
    let firstStart = 0;
    let lastEnd = 0;
    let completed = 0; // results written back to the database
    let done;
    const allDone = new Promise((r) => (done = r));

    const post = async (payload, helpers) => {
        const t = nowMs();
        if (started === 0) firstStart = t;
        if (started < n) {
            starts[started] = t;
            lat[started] = t - helpers.job.run_at.getTime();
        }
        started++;
        if (noop) {
            lastEnd = nowMs();
            finished++;
            return;
        }
        const res = await fetch(sink, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(payload),
        });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`sink answered ${res.status}`);
        lastEnd = nowMs();
        finished++;
    };

    const opts =
        config === "tuned"
            ? {
                  concurrency: Number(process.env.GW_CONCURRENCY || 200),
                  maxPoolSize: Number(process.env.GW_POOL || 25),
                  preset: {
                      worker: {
                          localQueue: { size: 500 },
                          completeJobBatchDelay: 0,
                          failJobBatchDelay: 0,
                      },
                  },
              }
            : {};
    const cpu0 = cpuSeconds();
    const runner = await run({
        connectionString: url,
        taskList: { post },
        noHandleSignals: true,
        logger,
        ...opts,
    });
    runner.events.on("job:error", () => errors++);
    runner.events.on("job:complete", () => {
        completed++;
        if (completed >= n) done();
    });
    process.stderr.write("ready\n");
    const timer = setTimeout(done, maxS * 1000);
    await allDone;
    clearTimeout(timer);
    const t0 = firstStart;
    const t1 = lastEnd;
    await runner.stop();
    const cpu = cpuSeconds() - cpu0;
    const k = Math.min(started, n);
    const l = Array.from(lat.subarray(0, k)).sort((a, b) => a - b);
    const span = (t1 - t0) / 1000;
    console.log(
        JSON.stringify({
            config,
            concurrency: opts.concurrency ?? 1,
            jobs: n,
            finished,
            completed,
            errors,
            timed_out: completed < n,
            drain_s: span,
            per_s: span > 0 ? finished / span : 0,
            lat_p50_ms: pct(l, 0.5),
            lat_p99_ms: pct(l, 0.99),
            lat_max_ms: l.length ? l[l.length - 1] : null,
            cpu_s: cpu,
        }),
    );
}

const usage = () => {
    process.stderr.write("usage: gw.mjs add URL N | drain URL defaults|tuned N SINK MAX_S | feed URL RATE SECS\n");
    process.exit(2);
};
if (!url) usage();
if (mode === "add") await add(Number(rest[0]));
else if (mode === "drain") await drain(rest[0], Number(rest[1]), rest[2], Number(rest[3]));
else if (mode === "feed") await feed(Number(rest[0]), Number(rest[1]));
else usage();
