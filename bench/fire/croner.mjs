// croner.mjs — the reference for bench/fire/run.sh: what a JavaScript user
// would write.  N croner jobs on "* * * * * *", each fire POSTs to the sink
// with node's global fetch through an undici Agent capped at 256
// connections (without a cap node runs out of file descriptors).
//
// usage: node croner.mjs N SECONDS SINK_URL
// prints one JSON line: fires/s, missed, drift p50/p99/max (ms), CPU%.
// A POST still unanswered DRAIN_MS after the window counts as missed
// ("unfinished"); fetch is called without a timeout of its own, as a user
// would write it.
//
// A fire's scheduled instant is the target croner armed its timer for
// (the argument of its _checkTrigger); its start is Date.now() when the
// callback runs.  drift = start - scheduled, as Aster records it.
import { Cron } from "croner";
import { Agent, setGlobalDispatcher } from "undici";

const N = Number(process.argv[2] || 1000);
const SECS = Number(process.argv[3] || 30);
const SINK = process.argv[4] || "http://127.0.0.1:8080/";
const DRAIN_MS = 30000;

setGlobalDispatcher(new Agent({ connections: 256 }));

const sched = [], start = [], ok = [];
const errors = {};
let inflight = 0;

function fire(job) {
  const s = job._benchTarget ?? Math.floor(Date.now() / 1000) * 1000;
  const i = sched.length;
  sched.push(s);
  start.push(Date.now());
  ok.push(0);
  inflight++;
  fetch(SINK, { method: "POST", body: "" })
    .then(async (r) => { await r.arrayBuffer(); ok[i] = r.ok ? 1 : 2; })
    .catch((e) => {
      ok[i] = 2;
      const k = String(e?.cause?.code ?? e?.name ?? e).slice(0, 60);
      errors[k] = (errors[k] ?? 0) + 1;
    })
    .finally(() => { inflight--; });
}

const jobs = [];
for (let k = 0; k < N; k++) {
  const job = new Cron("* * * * * *", { name: `fire-${k}` });
  // Keep the instant croner aimed at: _checkTrigger(target) runs the callback.
  const check = job._checkTrigger.bind(job);
  job._checkTrigger = (target) => { job._benchTarget = target.getTime(); check(target); };
  job.schedule(() => fire(job));
  jobs.push(job);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = (Math.floor(Date.now() / 1000) + 2) * 1000;
await sleep(t0 - Date.now());
const c0 = process.cpuUsage();
await sleep(t0 + SECS * 1000 - Date.now());
const c1 = process.cpuUsage(c0);
for (const j of jobs) j.stop();
const dl = Date.now() + DRAIN_MS;
while (inflight > 0 && Date.now() < dl) await sleep(100);

const lo = t0, hi = t0 + SECS * 1000;
const drift = [];
let done = 0, failed = 0, unfinished = 0, recorded = 0;
for (let i = 0; i < sched.length; i++) {
  if (sched[i] < lo || sched[i] >= hi) continue;
  recorded++;
  drift.push(start[i] - sched[i]);
  if (ok[i] === 1) done++;
  else if (ok[i] === 2) failed++;
  else unfinished++;
}
drift.sort((a, b) => a - b);
const pct = (p) => drift.length
  ? drift[Math.min(drift.length - 1, Math.max(0, Math.round(p / 100 * drift.length + 0.5) - 1))]
  : null;
const expected = N * SECS;
console.log(JSON.stringify({
  n: N, secs: SECS, expected, recorded, succeeded: done, failed, unfinished,
  missed: expected - done, not_fired: expected - recorded,
  exec_per_s: Math.round(done / SECS),
  drift_p50: pct(50), drift_p99: pct(99), drift_max: drift.length ? drift[drift.length - 1] : null,
  cpu_pct: Math.round((c1.user + c1.system) / 1e4 / SECS * 10) / 10,
  drained: inflight === 0, errors,
}));
process.exit(0);
