// B4: dispatch of N queued runs under a concurrency cap of 20 through the real queue, supervisor and
// Kubernetes executor against the Kubernetes emulator (each pod is a real process: the runs tests'
// fake agent, which fetches its spec, posts two events and its result), vs a baseline that calls
// createNamespacedJob directly under a plain semaphore with a pod that only logs. A second pass kills
// the worker (crash-like close: no hand-off, locks left held) at 50 % and lets a second worker take
// over, checking exactly-once launches. N defaults to 200 (1000 real pod processes per pass do not
// fit the time budget on 2 shared cores); BATON_BENCH_B4_N overrides it.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BatchV1Api, Watch, type V1Job } from "@kubernetes/client-node";
import { Policy } from "../src/config/policy.js";
import type { ChatPort } from "../src/core/ports/chat.js";
import type { PublishControl, TaskNotifier } from "../src/core/ports/effects.js";
import type { GitHost } from "../src/core/ports/git-host.js";
import { newTask, newTaskId, runIdFor } from "../src/core/task.js";
import { KubernetesExecutor } from "../src/adapters/kubernetes/executor.js";
import { createMetrics } from "../src/adapters/metrics/metrics.js";
import { createRunQueue } from "../src/adapters/queue/run-queue.js";
import { createRedisBundleStore } from "../src/adapters/redis/bundles.js";
import { connectRedis, waitForRedis } from "../src/adapters/redis/connection.js";
import { createRedisRunRecords } from "../src/adapters/redis/run-records.js";
import { createRedisRunSlots } from "../src/adapters/redis/run-slots.js";
import { createRedisRunTokens } from "../src/adapters/redis/run-tokens.js";
import { createRedisTaskStore } from "../src/adapters/redis/task-store.js";
import { createRedisBudgetReader, createRedisUsageMeter } from "../src/adapters/redis/usage.js";
import { createRunnerApi } from "../src/adapters/runner-api/index.js";
import { createEffectRunner } from "../src/services/effects.js";
import { createRunControl } from "../src/services/runs.js";
import { createSupervisor, type Supervisor } from "../src/services/supervisor.js";
import { silentLogger } from "../src/shared/logger.js";
import { startKubernetesEmulator, type KubernetesEmulator } from "../test/emulators/kubernetes/index.js";
import {
  percentile,
  round,
  waitUntil,
  type BenchContext,
  type BenchOutcome,
  type Invariant,
  type Row,
} from "./lib/report.js";

const CAP = 20;
const NAMESPACE = "baton-bench";
const FAKE_AGENT = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "test",
  "integration",
  "runs",
  "fake-agent.mjs",
);
/** The baseline pod: logs its start and end like the fake agent does, nothing else. */
const BASELINE_POD = `const fs = require("node:fs");
fs.appendFileSync(process.env.LOG, "start " + process.env.RUN + " " + Date.now() + " " + process.pid + "\\n");
fs.appendFileSync(process.env.LOG, "end " + process.env.RUN + " " + Date.now() + " " + process.pid + "\\n");`;

interface LogEntry {
  kind: string;
  run: string;
  at: number;
}

function readLog(file: string): LogEntry[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [kind, run, at] = line.split(" ");
      return { kind: kind ?? "", run: run ?? "", at: Number(at) };
    });
}

interface Timing {
  /** Per run: pod start − the moment a slot was free for it (queue time t0, or the (k−cap)-th end). */
  overheads: number[];
  makespanMs: number;
  /** Perfect packing of the measured pod durations into CAP slots from t0. */
  idealMs: number;
  maxConcurrent: number;
  starts: Map<string, number>;
  ends: Map<string, number>;
  /** Agents whose end line is missing (their record's end time was used). */
  missingEnds: number;
}

/**
 * `fallbackEnds`: for an agent stopped after its result was recorded but before it logged its end
 * (the supervisor removes a finished run's Job), the run record's end time stands in.
 */
function analyse(entries: LogEntry[], t0: number, fallbackEnds = new Map<string, number>()): Timing {
  const starts = new Map<string, number>();
  const ends = new Map<string, number>();
  const startCount = new Map<string, number>();
  for (const e of entries) {
    if (e.kind === "start") {
      startCount.set(e.run, (startCount.get(e.run) ?? 0) + 1);
      if (!starts.has(e.run)) starts.set(e.run, e.at);
    } else if (e.kind.startsWith("end")) ends.set(e.run, e.at);
  }
  let missingEnds = 0;
  for (const run of starts.keys()) {
    const fallback = fallbackEnds.get(run);
    if (!ends.has(run) && fallback !== undefined) {
      ends.set(run, fallback);
      missingEnds += 1;
    }
  }
  const startTimes = [...starts.values()].sort((a, b) => a - b);
  const endTimes = [...ends.values()].sort((a, b) => a - b);
  const overheads = startTimes.map((s, k) => s - (k < CAP ? t0 : Math.max(t0, endTimes[k - CAP] ?? t0)));
  let sumDur = 0;
  for (const [run, s] of starts) sumDur += (ends.get(run) ?? s) - s;
  const events = [...startTimes.map((at) => ({ at, d: 1 })), ...endTimes.map((at) => ({ at, d: -1 }))].sort(
    (a, b) => a.at - b.at || a.d - b.d,
  );
  let live = 0;
  let maxConcurrent = 0;
  for (const e of events) {
    live += e.d;
    maxConcurrent = Math.max(maxConcurrent, live);
  }
  const lastEnd = endTimes.at(-1) ?? t0;
  return {
    overheads,
    makespanMs: lastEnd - t0,
    idealMs: sumDur / CAP,
    maxConcurrent,
    starts,
    ends,
    missingEnds,
  };
}

/** Baton: queue, supervisor(s), Kubernetes executor, runner API on loopback. */
async function batonPass(
  ctx: BenchContext,
  kube: KubernetesEmulator,
  n: number,
  killAtHalf: boolean,
  dir: string,
): Promise<{
  timing: Timing;
  jobs: V1JobSummary[];
  tookOver: boolean;
  log: LogEntry[];
  outcomes: Record<string, number>;
  maxRunningPods: number;
}> {
  const prefix = `bench:b4:${randomBytes(4).toString("hex")}:`;
  const logger = silentLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const redis = connectRedis(ctx.redisUrl);
  await waitForRedis(redis);
  const policy = Policy.parse({ limits: { concurrentRuns: CAP, perUser: CAP, perRepo: CAP } });
  const clock = { now: () => new Date() };
  const store = createRedisTaskStore(redis, prefix);
  const records = createRedisRunRecords(redis, prefix);
  const tokens = createRedisRunTokens(redis, prefix);
  const usage = createRedisUsageMeter(redis, prefix);
  const budget = createRedisBudgetReader(redis, prefix, clock);
  const bundles = createRedisBundleStore(redis, prefix);
  const slots = createRedisRunSlots(redis, prefix);
  const queue = createRunQueue({ redisUrl: ctx.redisUrl, prefix, logger });
  const chat: ChatPort = {
    postMessage: async () => ({ ts: "9.9" }),
    updateMessage: async () => undefined,
    postEphemeral: async () => undefined,
    addReaction: async () => undefined,
    readThread: async () => [],
    permalink: async () => undefined,
    userName: async () => undefined,
    publishHome: async () => undefined,
    whoAmI: async () => ({ userId: "U0BATON" }),
  };
  const notifier: TaskNotifier = { handle: async () => undefined };
  const publisher: PublishControl = {
    publish: async () => undefined,
    closePullRequest: async () => undefined,
  };
  const gitHost: GitHost = {
    async gitRemote(repo) {
      return { url: `http://127.0.0.1:1/${repo}.git`, authorization: "Basic unused" };
    },
    async repoInfo(repo) {
      return { fullName: repo, defaultBranch: "main", private: true };
    },
  };
  const runControl = createRunControl({ records, queue, policy, clock, logger });
  const effects = createEffectRunner({ notifier, runs: runControl, publisher, logger });
  let runnerUrl = "";
  const runnerApi = createRunnerApi({
    records,
    tokens,
    usage,
    budget,
    bundles,
    store,
    effects,
    chat,
    gitHost,
    policy,
    upstream: { baseUrl: "http://127.0.0.1:1/v1", apiKey: "sk-bench-unused", model: "bench" },
    get runnerUrl() {
      return runnerUrl;
    },
    clock,
    logger,
    metrics,
    usageReportMs: 1_000,
  });
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith(runnerApi.prefix)) void runnerApi.handle(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  runnerUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const executors: KubernetesExecutor[] = [];
  const supervisors: Supervisor[] = [];
  const startWorker = async () => {
    const executor = new KubernetesExecutor({
      kubeConfig: kube.kubeconfig(),
      namespace: NAMESPACE,
      logger,
    });
    executors.push(executor);
    const supervisor = createSupervisor({
      redisUrl: ctx.redisUrl,
      prefix,
      queue,
      executor,
      records,
      tokens,
      slots,
      store,
      effects,
      policy,
      runnerUrl,
      agentImage: "ghcr.io/baton-dev/baton-agent:bench",
      clock,
      logger,
      metrics,
      flushUsage: runnerApi.flushUsage,
      // The bot's defaults except the stalled-job check, shortened so a takeover fits the budget.
      options: { lockDurationMs: 3_000, stalledIntervalMs: 1_000 },
    });
    await supervisor.start();
    supervisors.push(supervisor);
  };

  const logFile = path.join(dir, `baton-${killAtHalf ? "kill" : "clean"}.log`);
  writeFileSync(logFile, "");
  let tookOver = false;
  const runIds: string[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let maxRunningPods = 0;
  try {
    // Queue everything first (the "1000 queued tasks"), then start the worker: t0 is its start.
    for (let i = 0; i < n; i++) {
      const id = newTaskId((k) => randomBytes(k));
      const at = new Date().toISOString();
      const base = newTask({
        id,
        now: at,
        requester: { userId: "U0REQ", name: "Requester" },
        channelId: "C0BENCH",
        threadTs: `${Date.now()}.${i}`,
        triggerTs: "1.0",
        source: "mention",
        text: JSON.stringify({ log: logFile }),
        repo: "acme/web",
        mode: "plan",
        attempts: 1,
      });
      const runId = runIdFor(id, "implement", 1, 1);
      const task = await store.create({
        ...base,
        state: "implementing",
        launch: 1,
        round: 1,
        plan: { summary: "the plan", steps: ["one"], approvedBy: "U0REQ" },
        runs: [{ runId, phase: "implement", attempt: 1, launch: 1, status: "queued" }],
      });
      await runControl.start(task, [runId]);
      runIds.push(runId);
    }
    const t0 = Date.now();
    // Independent of the agents' own logs: running pods as the emulated kubelet reports them.
    sampler = setInterval(() => {
      const running = kube.pods(NAMESPACE).filter((p) => p.status?.phase === "Running").length;
      maxRunningPods = Math.max(maxRunningPods, running);
    }, 25);
    await startWorker();
    if (killAtHalf) {
      await waitUntil(
        "half the runs to start",
        () => (readLog(logFile).filter((e) => e.kind === "start").length >= n / 2 ? true : undefined),
        60_000,
      );
      // Crash-like: stop without hand-off (the queue's locks stay held until they expire, as when a
      // node dies), drop the executor's watches, and start a second worker that must take over.
      await supervisors[0]!.close({ handOff: false });
      await executors[0]!.close();
      ctx.log(
        `B4 worker 1 stopped without hand-off after ${readLog(logFile).filter((e) => e.kind === "start").length} starts`,
      );
      await startWorker();
      tookOver = true;
    }
    // Done when every run record has ended (result or failure) and the queue is drained.
    const finals = await waitUntil(
      `all ${n} runs to end`,
      async () => {
        const list = await Promise.all(runIds.map((runId) => records.get(runId)));
        if (!list.every((r) => r?.status === "ended")) return undefined;
        const counts = await queue.counts();
        return counts.waiting + counts.active + counts.delayed === 0 ? list : undefined;
      },
      90_000,
      100,
    ).catch(async (error: unknown) => {
      const list = await Promise.all(runIds.map((runId) => records.get(runId)));
      const open = list.filter((r) => r?.status !== "ended").length;
      throw new Error(
        `${String(error)}; ${open} run records not ended, queue ${JSON.stringify(await queue.counts())}, slot holders ${(await slots.holders()).length}`,
      );
    });
    const outcomes: Record<string, number> = {};
    for (const r of finals) {
      const fe = r?.finalEvent;
      const key =
        r?.outcome === "failed" && fe?.type === "run.failed"
          ? `failed:${fe.failure.code}`
          : (r?.outcome ?? "none");
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    const log = readLog(logFile);
    const recordEnds = new Map<string, number>();
    for (const r of finals) if (r?.endedAt) recordEnds.set(r.runId, Date.parse(r.endedAt));
    const timing = analyse(log, t0, recordEnds);
    return { timing, jobs: summarizeJobs(kube), tookOver, log, outcomes, maxRunningPods };
  } finally {
    clearInterval(sampler);
    for (const s of supervisors) await s.close({ handOff: false }).catch(() => undefined);
    for (const e of executors) await e.close().catch(() => undefined);
    await runnerApi.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
}

interface V1JobSummary {
  name: string;
  runId: string | undefined;
}

/** Every container the emulated kubelet started in the bench namespace (one per launched Job: backoffLimit 0). */
function summarizeJobs(kube: KubernetesEmulator): V1JobSummary[] {
  return kube
    .containerStarts()
    .filter((c) => c.namespace === NAMESPACE)
    .map((c) => ({ name: c.job ?? c.pod, runId: c.env.BATON_RUN_ID }));
}

/** Baseline: createNamespacedJob under a plain semaphore, completion seen through a Job watch. */
async function baselinePass(
  kube: KubernetesEmulator,
  n: number,
  dir: string,
  namespace: string,
): Promise<Timing> {
  const kc = kube.kubeconfig();
  const batch = kc.makeApiClient(BatchV1Api);
  const logFile = path.join(dir, "baseline.log");
  writeFileSync(logFile, "");
  const waiters = new Map<string, () => void>();
  const done = new Set<string>();
  const watch = new Watch(kc);
  const req = await watch.watch(
    `/apis/batch/v1/namespaces/${namespace}/jobs`,
    {},
    (_type: string, job: V1Job) => {
      const name = job.metadata?.name;
      const finished = (job.status?.succeeded ?? 0) > 0 || (job.status?.failed ?? 0) > 0;
      if (name && finished && !done.has(name)) {
        done.add(name);
        waiters.get(name)?.();
      }
    },
    () => undefined,
  );
  try {
    let free = CAP;
    const queued: (() => void)[] = [];
    const acquire = () =>
      free > 0 ? (free--, Promise.resolve()) : new Promise<void>((resolve) => queued.push(resolve));
    const release = () => {
      const next = queued.shift();
      if (next) next();
      else free++;
    };
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await acquire();
        const name = `base-${i}`;
        const finished = new Promise<void>((resolve) => waiters.set(name, resolve));
        await batch.createNamespacedJob({
          namespace,
          body: {
            apiVersion: "batch/v1",
            kind: "Job",
            metadata: { name },
            spec: {
              backoffLimit: 0,
              template: {
                spec: {
                  restartPolicy: "Never",
                  containers: [
                    {
                      name: "agent",
                      image: "bench",
                      command: [process.execPath, "-e", BASELINE_POD],
                      env: [
                        { name: "LOG", value: logFile },
                        { name: "RUN", value: name },
                      ],
                    },
                  ],
                },
              },
            },
          },
        });
        await finished;
        release();
      }),
    );
    return analyse(readLog(logFile), t0);
  } finally {
    (req as { abort?: () => void }).abort?.();
  }
}

export async function benchB4(ctx: BenchContext): Promise<BenchOutcome> {
  const n = Number(process.env.BATON_BENCH_B4_N ?? 200);
  const dir = mkdtempSync(path.join(tmpdir(), "baton-bench-b4-"));
  const kube = await startKubernetesEmulator({
    agentCommand: [process.execPath, FAKE_AGENT],
    extraEnv: { LANG: "C.UTF-8" },
  });
  try {
    ctx.log(`B4 baseline: ${n} Jobs via createNamespacedJob, semaphore ${CAP}`);
    const base = await baselinePass(kube, n, dir, "bench-baseline");
    ctx.log(`B4 Baton: ${n} queued runs, cap ${CAP}`);
    const clean = await batonPass(ctx, kube, n, false, dir);
    const cleanJobs = clean.jobs.length;
    ctx.log(`B4 Baton with the worker killed at 50 %`);
    const killed = await batonPass(ctx, kube, n, true, dir);
    const killJobs = killed.jobs.slice(cleanJobs);

    const perRun = new Map<string, number>();
    for (const j of killJobs) perRun.set(j.runId ?? j.name, (perRun.get(j.runId ?? j.name) ?? 0) + 1);
    const dupJobs = [...perRun.values()].filter((c) => c > 1).length;
    const startsPerRun = new Map<string, number>();
    for (const e of killed.log.filter((x) => x.kind === "start"))
      startsPerRun.set(e.run, (startsPerRun.get(e.run) ?? 0) + 1);
    const dupStarts = [...startsPerRun.values()].filter((c) => c > 1).length;

    const invariants: Invariant[] = [
      {
        id: "B4",
        name: `cap ${CAP} never exceeded (live agent processes and Running pods)`,
        ok:
          clean.timing.maxConcurrent <= CAP &&
          killed.timing.maxConcurrent <= CAP &&
          clean.maxRunningPods <= CAP &&
          killed.maxRunningPods <= CAP,
        detail: `max live agents: clean ${clean.timing.maxConcurrent}, kill ${killed.timing.maxConcurrent}; max Running pods: clean ${clean.maxRunningPods}, kill ${killed.maxRunningPods}`,
      },
      {
        id: "B4",
        name: "no lost runs (every queued run ended with the agent's result, both passes)",
        ok: clean.outcomes.no_change === n && killed.outcomes.no_change === n,
        detail: `agent ends: clean ${clean.timing.ends.size}/${n}, kill ${killed.timing.ends.size}/${n}; outcomes: clean ${JSON.stringify(clean.outcomes)}, kill ${JSON.stringify(killed.outcomes)}`,
      },
      {
        id: "B4",
        name: "exactly one Job per run after the worker is killed at 50 %",
        ok: killed.tookOver && killJobs.length === n && dupJobs === 0 && dupStarts === 0 && cleanJobs === n,
        detail: `jobs: clean ${cleanJobs}, kill ${killJobs.length} for ${n} runs; runs with >1 Job ${dupJobs}; with >1 agent start ${dupStarts}`,
      },
    ];
    const p99 = percentile(clean.timing.overheads, 99);
    const baseP99 = percentile(base.overheads, 99);
    const rows: Row[] = [
      {
        id: "B4",
        figure: `dispatch overhead p99 (N=${n}, cap ${CAP})`,
        value: round(p99, 1),
        baseline: round(baseP99, 1),
        unit: "ms",
        target: "≤ baseline + 20 ms",
        pass: p99 <= baseP99 + 20,
      },
      {
        id: "B4",
        figure: `makespan (N=${n}; ideal ${round(clean.timing.idealMs, 0)} ms)`,
        value: round(clean.timing.makespanMs, 0),
        baseline: round(base.makespanMs, 0),
        unit: "ms",
        target: "≤ 1.05× ideal",
        pass: clean.timing.makespanMs <= 1.05 * clean.timing.idealMs,
      },
    ];
    return {
      rows,
      invariants,
      details: {
        n,
        cap: CAP,
        baton: {
          overheadP50: percentile(clean.timing.overheads, 50),
          overheadP99: p99,
          makespanMs: clean.timing.makespanMs,
          idealMs: clean.timing.idealMs,
          maxConcurrent: clean.timing.maxConcurrent,
          agentsWithoutEndLine: clean.timing.missingEnds,
          outcomes: clean.outcomes,
        },
        batonKilled: {
          makespanMs: killed.timing.makespanMs,
          idealMs: killed.timing.idealMs,
          maxConcurrent: killed.timing.maxConcurrent,
          jobs: killJobs.length,
          agentsWithoutEndLine: killed.timing.missingEnds,
          outcomes: killed.outcomes,
        },
        baseline: {
          overheadP50: percentile(base.overheads, 50),
          overheadP99: baseP99,
          makespanMs: base.makespanMs,
          idealMs: base.idealMs,
          maxConcurrent: base.maxConcurrent,
        },
      },
    };
  } finally {
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
