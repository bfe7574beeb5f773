// `npm run bench`: runs the benchmarks of TESTING.md "Benchmarks" (B1–B8), each with its baseline in
// the same run, prints one table and writes bench/results/latest.json plus a timestamped copy.
// Exit status: 1 when an invariant fails (duplicates, lost tasks, 429s, caps) or a benchmark crashes;
// 2 when only timing/size targets miss (0 with --no-fail-on-target, for noisy shared machines).
// Options: --only B1,B4   run a subset;   --no-fail-on-target   report misses without failing.
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startRedisServer, type TestRedis } from "../test/support/redis-server.js";
import { benchB6, benchB7 } from "./agent.js";
import { benchB4 } from "./dispatch.js";
import { benchB8 } from "./end-to-end.js";
import { benchB1, benchB5 } from "./ingress.js";
import { benchB2, benchB3 } from "./notifier.js";
import type { Bench, BenchOutcome, Invariant, Row } from "./lib/report.js";

const BENCHES: [string, Bench][] = [
  ["B1", benchB1],
  ["B2", benchB2],
  ["B3", benchB3],
  ["B4", benchB4],
  ["B5", benchB5],
  ["B6", benchB6],
  ["B7", benchB7],
  ["B8", benchB8],
];

function parseArgs(argv: string[]): { only?: Set<string>; failOnTarget: boolean } {
  let only: Set<string> | undefined;
  let failOnTarget = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--no-fail-on-target") failOnTarget = false;
    else if (arg === "--only") only = new Set((argv[++i] ?? "").toUpperCase().split(",").filter(Boolean));
    else if (arg.startsWith("--only=")) only = new Set(arg.slice(7).toUpperCase().split(",").filter(Boolean));
    else throw new Error(`unknown option ${arg} (use --only B1,B2 and/or --no-fail-on-target)`);
  }
  return { ...(only ? { only } : {}), failOnTarget };
}

const fmt = (n: number | null) =>
  n === null ? "-" : Number.isInteger(n) ? String(n) : Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2);

function table(rows: Row[]): string {
  const header = ["id", "figure", "value", "baseline", "ratio", "target", "result"];
  const lines = rows.map((r) => [
    r.id,
    r.figure,
    `${fmt(r.value)} ${r.unit}`,
    r.baseline === null ? "-" : `${fmt(r.baseline)} ${r.unit}`,
    r.baseline === null || r.baseline === 0 ? "-" : `${(r.value / r.baseline).toFixed(2)}×`,
    r.target,
    r.pass ? "PASS" : "FAIL",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [render(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...lines.map(render)].join(
    "\n",
  );
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const log = (message: string) =>
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
  let redis: TestRedis | undefined;
  const rows: Row[] = [];
  const invariants: Invariant[] = [];
  const details: Record<string, unknown> = {};
  try {
    redis = await startRedisServer({ persistent: false });
    const server = redis;
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        void server.close().finally(() => process.exit(130));
      });
    }
    for (const [id, bench] of BENCHES) {
      if (args.only && !args.only.has(id)) continue;
      log(`${id} starting`);
      const t0 = Date.now();
      let outcome: BenchOutcome;
      try {
        outcome = await bench({ redisUrl: redis.url, log });
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        log(`${id} crashed: ${message}`);
        outcome = {
          rows: [],
          invariants: [{ id, name: "benchmark completes", ok: false, detail: message }],
          details: {},
        };
      }
      rows.push(...outcome.rows);
      invariants.push(...outcome.invariants);
      details[id] = { ...outcome.details, seconds: (Date.now() - t0) / 1000 };
      for (const inv of outcome.invariants.filter((i) => !i.ok))
        log(`${id} INVARIANT FAILED: ${inv.name}: ${inv.detail}`);
      log(`${id} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await redis?.close();
  }
  const failedInvariants = invariants.filter((i) => !i.ok);
  const missed = rows.filter((r) => !r.pass);
  const out = [
    table(rows),
    "",
    `invariants: ${invariants.length - failedInvariants.length}/${invariants.length} held`,
    ...failedInvariants.map((i) => `  FAILED ${i.id}: ${i.name} (${i.detail})`),
    `targets: ${rows.length - missed.length}/${rows.length} met; total ${((Date.now() - started) / 1000).toFixed(0)} s`,
  ].join("\n");
  process.stdout.write(`${out}\n`);

  const machine = {
    cpus: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
  const result = {
    at: new Date().toISOString(),
    machine,
    rows,
    invariants,
    details,
    seconds: (Date.now() - started) / 1000,
  };
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(result, null, 2)}\n`;
  writeFileSync(path.join(dir, "latest.json"), json);
  writeFileSync(path.join(dir, `${result.at.replace(/[:.]/g, "-")}.json`), json);

  if (failedInvariants.length > 0) return 1;
  if (missed.length > 0 && args.failOnTarget) return 2;
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
