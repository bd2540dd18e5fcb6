// croner.mjs — the same measurement as bench_cron.c with croner (keep the
// mix in step).  croner's defaults already match ours where the mix needs
// it: 5 or 6 fields, OR of day-of-month and day-of-week (domAndDow: false),
// 0 and 7 both Sunday.  Patterns are parsed before the clock starts.
import { Cron } from "croner";

const ITER = 200;
const exprs = [
  "*/5 * * * *",     "0 9 * * MON-FRI",  "30 2 * * *",
  "0 0 1 * *",       "15 10 L * *",      "0 12 * * FRI#2",
  "0 0 13 * FRI",    "*/15 9-17 * * *",  "0 0,6,12,18 * * SAT,SUN",
  "0 0 29 2 *",      "*/30 * * * * *",
];
const zones = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"];

const budget = Number(process.argv[2] || 2);
const t0 = new Date("2026-01-01T00:00:00Z");
const jobs = zones.flatMap((timezone) =>
  exprs.map((e) => new Cron(e, { timezone, paused: true })));

let n = 0, sink = 0;
const start = process.hrtime.bigint();
let now = start;
while (Number(now - start) / 1e9 < budget) {
  for (const job of jobs) {
    let t = t0;
    for (let k = 0; k < ITER; k++) {
      const next = job.nextRun(t);
      if (!next) break;
      t = next;
      n++;
    }
    sink += t.getTime() % 1000;
  }
  now = process.hrtime.bigint();
}
const secs = Number(now - start) / 1e9;
console.log(`croner: ${Math.round(n / secs)}/s  (${n} computations in ${secs.toFixed(2)} s, ` +
  `${exprs.length} expressions x ${zones.length} zones, checksum ${sink % 1000})`);
