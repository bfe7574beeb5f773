// B2 (Slack calls per task as the agent's progress rate grows) and B3 (staleness of status messages
// when many tasks share one workspace's chat.update budget): the real Notifier, task store and
// transitions against the Slack emulator (Slack's rate limits, 429 on excess) and a real Redis.
import { randomBytes } from "node:crypto";
import { createMetrics } from "../src/adapters/metrics/metrics.js";
import { createRedisClaims } from "../src/adapters/redis/claims.js";
import { connectRedis, waitForRedis, type Redis } from "../src/adapters/redis/connection.js";
import { createRedisTaskStore } from "../src/adapters/redis/task-store.js";
import { createSlackChat } from "../src/adapters/slack/chat.js";
import { createNotifier, type Notifier, type NotifierLimits } from "../src/adapters/slack/notifier.js";
import type { NotifyEffect } from "../src/core/ports/effects.js";
import type { TaskStore } from "../src/core/ports/task-store.js";
import { createRedactor } from "../src/core/redact.js";
import { newTask, type Effect, type TaskId } from "../src/core/task.js";
import { applyTaskEvent, type EffectRunner } from "../src/services/task-events.js";
import { silentLogger } from "../src/shared/logger.js";
import {
  startSlackEmulator,
  type RateLimitOptions,
  type SlackEmulator,
} from "../test/emulators/slack/index.js";
import { startSink } from "./lib/sink.js";
import {
  percentile,
  round,
  sleep,
  waitUntil,
  type BenchContext,
  type BenchOutcome,
  type Invariant,
  type Row,
} from "./lib/report.js";

const NOTIFY = new Set<Effect["type"]>([
  "update_status",
  "post_plan",
  "post_attempts_summary",
  "post_result",
  "notify_user",
]);

interface World {
  emu: SlackEmulator;
  store: TaskStore;
  notifier: Notifier;
  /** A task in `channel`, started: planning with one running plan run. */
  startTask(channel: string): Promise<{ id: TaskId; runId: string }>;
  apply(id: TaskId, event: Parameters<typeof applyTaskEvent>[2]): Promise<void>;
  close(): Promise<void>;
}

let taskCounter = 0;
function benchTaskId(): TaskId {
  taskCounter += 1;
  return `T-${(taskCounter + 36 ** 4).toString(36).toUpperCase().padStart(6, "0").slice(-6)}` as TaskId;
}

async function world(
  redis: Redis,
  limits: Partial<NotifierLimits>,
  rateLimits?: RateLimitOptions,
): Promise<World> {
  const sink = await startSink();
  const emu = await startSlackEmulator({ ...(rateLimits ? { rateLimits } : {}), eventsUrl: sink.url });
  const prefix = `bench:notifier:${randomBytes(4).toString("hex")}:`;
  const store = createRedisTaskStore(redis, prefix);
  const redact = createRedactor([]);
  const chat = createSlackChat({
    token: emu.botToken,
    apiUrl: emu.apiUrl,
    logger: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    redact,
  });
  const notifier = createNotifier({
    chat,
    store,
    claims: createRedisClaims(redis, prefix),
    clock: { now: () => new Date() },
    logger: silentLogger(),
    redact,
    limits,
  });
  const effects: EffectRunner = {
    async run(task, list) {
      for (const effect of list)
        if (NOTIFY.has(effect.type)) await notifier.handle(task, effect as NotifyEffect);
    },
  };
  const requester = emu.user("UREQ", { name: "req" });
  const apply = async (id: TaskId, event: Parameters<typeof applyTaskEvent>[2]) => {
    await applyTaskEvent({ store, effects }, id, event);
  };
  return {
    emu,
    store,
    notifier,
    apply,
    async startTask(channel) {
      const { ts } = await requester.postMessage({ channel, text: "please fix the flaky test" });
      const id = benchTaskId();
      const now = new Date().toISOString();
      await store.create(
        newTask({
          id,
          now,
          requester: { userId: "UREQ", name: "req" },
          channelId: channel,
          threadTs: ts,
          triggerTs: ts,
          source: "mention",
          text: "please fix the flaky test",
          repo: "acme/web",
          mode: "plan",
          attempts: 1,
        }),
      );
      const started = await applyTaskEvent({ store, effects }, id, { type: "start", at: now });
      const runId = started?.effects.flatMap((e) => (e.type === "start_runs" ? e.runIds : []))[0];
      if (runId === undefined) throw new Error(`task ${id} did not start a run`);
      await apply(id, { type: "run.started", at: new Date().toISOString(), runId });
      return { id, runId };
    },
    async close() {
      await notifier.close({ timeoutMs: 2000 });
      await emu.close();
      await sink.close();
    },
  };
}

const progress = (runId: string, k: number) => ({
  type: "run.progress" as const,
  at: new Date().toISOString(),
  runId,
  lastCommand: { argv: ["echo", `mark${k}x`], exitCode: 0, durationMs: 1 },
});

const failed = (runId: string) => ({
  type: "run.failed" as const,
  at: new Date().toISOString(),
  runId,
  failure: { code: "agent_error" as const, message: "bench: the run ends here" },
});

/** Highest progress mark a Slack call shows (-1 when none). */
function markOf(args: unknown): number {
  let best = -1;
  for (const m of JSON.stringify(args).matchAll(/mark(\d+)x/g)) best = Math.max(best, Number(m[1]));
  return best;
}

/** Sends `count` events at `perSecond`, paced by the clock (not by sleeps adding up). */
async function paced(count: number, perSecond: number, send: (k: number) => Promise<void>): Promise<void> {
  const t0 = performance.now();
  const inflight: Promise<void>[] = [];
  for (let k = 0; k < count; k++) {
    const due = t0 + (k * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    inflight.push(send(k));
  }
  await Promise.all(inflight);
}

// Baseline, side by side with the rest: a naive forwarder, one chat.update per event at 100 events/s.
async function naiveForwarder(
  TASKS: number,
  SECONDS: number,
): Promise<{ naiveCalls: number; naive429: number }> {
  let naiveCalls = 0;
  let naive429 = 0;
  const sink = await startSink();
  const emu = await startSlackEmulator({ eventsUrl: sink.url });
  try {
    const requester = emu.user("UREQ");
    const messages = await Promise.all(
      Array.from({ length: TASKS }, async (_, i) => {
        const channel = `CB2NAIVE${i}`;
        await requester.postMessage({ channel, text: "please" });
        const res = await fetch(`${emu.apiUrl}chat.postMessage`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${emu.botToken}`,
            "content-type": "application/json; charset=utf-8",
          },
          body: JSON.stringify({ channel, text: "status" }),
        });
        const body = (await res.json()) as { ts?: string };
        if (!body.ts) throw new Error("naive forwarder could not post its status message");
        return { channel, ts: body.ts };
      }),
    );
    await Promise.all(
      messages.map(({ channel, ts }) =>
        paced(SECONDS * 100, 100, async (k) => {
          const res = await fetch(`${emu.apiUrl}chat.update`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${emu.botToken}`,
              "content-type": "application/json; charset=utf-8",
            },
            body: JSON.stringify({ channel, ts, text: `mark${k}x` }),
          });
          naiveCalls += 1;
          if (res.status === 429) naive429 += 1;
          await res.arrayBuffer();
        }),
      ),
    );
  } finally {
    await emu.close();
    await sink.close();
  }
  return { naiveCalls, naive429 };
}

/**
 * B2: 2 tasks, 20 s of progress at 1, 10 and 100 events/s each (every event a visible change), then
 * the run ends; baseline: a forwarder that sends one chat.update per event at 100 events/s.
 */
export async function benchB2(ctx: BenchContext): Promise<BenchOutcome> {
  const redis = connectRedis(ctx.redisUrl);
  await waitForRedis(redis);
  const TASKS = 2;
  const SECONDS = 20;
  const rates = [1, 10, 100];
  const perTask = new Map<number, number>();
  const invariants: Invariant[] = [];
  const details: Record<string, unknown> = {};
  try {
    const naive = naiveForwarder(TASKS, SECONDS);
    // The rates run side by side (one emulator, i.e. one workspace, each) to keep the wall time short.
    await Promise.all(
      rates.map(async (rate) => {
        const w = await world(redis, {});
        try {
          const tasks = await Promise.all(
            Array.from({ length: TASKS }, (_, i) => w.startTask(`CB2R${rate}N${i}`)),
          );
          await w.notifier.flush();
          const before = w.emu.calls().length;
          await Promise.all(
            // Sequential per task, like one runner stream: each event waits for the previous one.
            tasks.map(({ id, runId }) => paced(SECONDS * rate, rate, (k) => w.apply(id, progress(runId, k)))),
          );
          await Promise.all(tasks.map(({ id, runId }) => w.apply(id, failed(runId))));
          await w.notifier.flush();
          const slackCalls = w.emu.calls().slice(before);
          perTask.set(rate, slackCalls.length / TASKS);
          const stats = w.emu.stats();
          invariants.push({
            id: "B2",
            name: `zero 429 at ${rate} events/s`,
            ok: stats.rateLimited === 0,
            detail: `${stats.rateLimited} calls answered 429`,
          });
          // No duplicate status message, and every task's end reached Slack.
          const statusCounts = await Promise.all(
            tasks.map(async ({ id }) => {
              const task = (await w.store.get(id))!;
              const status = w.emu
                .messages(task.channelId, task.threadTs)
                .filter(
                  (m) => (m.metadata?.event_payload as { kind?: string } | undefined)?.kind === "status",
                );
              return { count: status.length, final: task.state === "failed" && !!task.slack.resultTs };
            }),
          );
          invariants.push({
            id: "B2",
            name: `one status message per task and every result posted at ${rate} events/s`,
            ok: statusCounts.every((s) => s.count === 1 && s.final),
            detail: JSON.stringify(statusCounts),
          });
          details[`rate_${rate}`] = { callsPerTask: slackCalls.length / TASKS, byMethod: stats.byMethod };
          ctx.log(`B2 ${rate}/s: ${round(slackCalls.length / TASKS, 1)} Slack calls per task`);
        } finally {
          await w.close();
        }
      }),
    );

    const { naiveCalls, naive429 } = await naive;
    const naivePerTask = (naiveCalls + TASKS) / TASKS;
    details.naive = { callsPerTask: naivePerTask, rateLimited: naive429 };
    ctx.log(`B2 naive 100/s: ${naivePerTask} calls per task, ${naive429} answered 429`);
    const at1 = perTask.get(1)!;
    const at100 = perTask.get(100)!;
    const rows: Row[] = [
      {
        id: "B2",
        figure: "Slack calls per task at 100 ev/s (baseline: naive)",
        value: round(at100, 1),
        baseline: round(naivePerTask, 1),
        unit: "calls",
        target: `≤ 1.05× calls at 1 ev/s (${round(at1, 1)})`,
        pass: at100 <= 1.05 * at1,
      },
    ];
    details.naive429 = naive429;
    return { rows, invariants, details };
  } finally {
    redis.disconnect();
  }
}

/**
 * B3: N tasks (10/50/500, one channel each) change progress continuously while sharing one
 * chat.update budget. Time is scaled 120×: the budget is 50 per 500 ms (Slack: 50 per minute), so the
 * round-robin floor is N × 10 ms (Slack: N × 60 / 50 s). Staleness of a change = time until Slack
 * shows it (or something newer). Tasks end one by one in the second half; a final message is due
 * within 2 s (not scaled) of its event.
 */
export async function benchB3(ctx: BenchContext): Promise<BenchOutcome> {
  const redis = connectRedis(ctx.redisUrl);
  await waitForRedis(redis);
  const BUDGET = 50;
  const WINDOW_MS = 500;
  const SCALE = 60_000 / WINDOW_MS;
  const rows: Row[] = [];
  const invariants: Invariant[] = [];
  const details: Record<string, unknown> = {};
  try {
    for (const n of [10, 50, 500]) {
      const floorMs = (n * WINDOW_MS) / BUDGET;
      const w = await world(
        redis,
        {
          chatUpdate: { max: BUDGET, windowMs: WINDOW_MS },
          statusMinIntervalMs: Math.ceil(1000 / SCALE),
          postMessagePerChannel: { max: 3, windowMs: 3000 },
        },
        { "chat.update": { max: BUDGET, windowMs: WINDOW_MS, scope: "workspace" } },
      );
      try {
        const tasks: { id: TaskId; runId: string }[] = [];
        // Started in batches: creating 500 threads goes through chat.postMessage (per channel, so no wait).
        for (let i = 0; i < n; i += 50) {
          tasks.push(
            ...(await Promise.all(
              Array.from({ length: Math.min(50, n - i) }, (_, j) => w.startTask(`CB3N${n}X${i + j}`)),
            )),
          );
        }
        await w.notifier.flush();
        const tsOf = new Map<string, number>();
        for (const [i, t] of tasks.entries()) tsOf.set((await w.store.get(t.id))!.slack.statusTs!, i);
        const before = w.emu.calls().length;
        // Several round-robin periods of steady load, then tasks end one by one over as long again.
        const steadyMs = Math.max(1500, 3 * floorMs);
        const periodMs = Math.max(50, floorMs / 3);
        const changes: { task: number; k: number; at: number }[] = [];
        const finals: { task: number; at: number }[] = [];
        const t0 = Date.now();
        const endAt = (i: number) => t0 + steadyMs + (steadyMs * (i + 0.5)) / n;
        await Promise.all(
          tasks.map(async ({ id, runId }, i) => {
            // Spread the tasks' phases over one period so the load is even.
            await sleep((periodMs * i) / n);
            for (let k = 0; Date.now() < endAt(i); k++) {
              changes.push({ task: i, k, at: Date.now() });
              await w.apply(id, progress(runId, k));
              const next = Math.min(endAt(i), Date.now() + periodMs) - Date.now();
              if (next > 0) await sleep(next);
            }
            finals.push({ task: i, at: Date.now() });
            await w.apply(id, failed(runId));
          }),
        );
        await waitUntil("B3 final messages", () => w.notifier.flush().then(() => true), 60_000);
        const calls = w.emu.calls().slice(before);
        const updates = calls.filter((c) => c.method === "chat.update" && c.ok);
        const shown = new Map<number, { at: number; mark: number; final: boolean }[]>();
        for (const call of updates) {
          const i = tsOf.get(String(call.args.ts));
          if (i === undefined) continue;
          const list = shown.get(i) ?? [];
          const text = JSON.stringify(call.args);
          list.push({
            at: call.time,
            mark: markOf(call.args),
            final: /bench: the run ends here|failed/i.test(text) && markOf(call.args) < 0,
          });
          shown.set(i, list);
        }
        const staleness: number[] = [];
        let unseen = 0;
        for (const change of changes) {
          const seen = (shown.get(change.task) ?? []).find(
            (s) => s.at >= change.at && (s.mark >= change.k || s.final),
          );
          if (seen) staleness.push(seen.at - change.at);
          else unseen += 1;
        }
        const finalLatency: number[] = [];
        const results = new Map<string, number>();
        for (const call of calls) {
          if (call.method === "chat.postMessage" && call.ok) {
            const kind = (call.args.metadata as { event_payload?: { kind?: string } } | undefined)
              ?.event_payload?.kind;
            if (
              kind === "result" ||
              (typeof call.args.metadata === "string" && call.args.metadata.includes('"result"'))
            )
              results.set(String(call.args.channel), call.time);
          }
        }
        for (const fin of finals) {
          const list = shown.get(fin.task) ?? [];
          const statusAt = list.filter((s) => s.at >= fin.at).at(-1)?.at;
          const resultAt = results.get(`CB3N${n}X${fin.task}`);
          finalLatency.push(
            statusAt === undefined || resultAt === undefined
              ? Number.POSITIVE_INFINITY
              : Math.max(statusAt, resultAt) - fin.at,
          );
        }
        const p99 = percentile(staleness, 99);
        const finalMax = Math.max(...finalLatency);
        const stats = w.emu.stats();
        ctx.log(
          `B3 N=${n}: staleness p99 ${round(p99)} ms (floor ${floorMs} ms), final max ${round(finalMax)} ms, ${changes.length} changes`,
        );
        rows.push({
          id: "B3",
          figure: `status staleness p99, N=${n} (time ÷${SCALE})`,
          value: round(p99, 1),
          baseline: floorMs,
          unit: "ms",
          target: "≤ 1.5× floor",
          pass: p99 <= 1.5 * floorMs,
        });
        rows.push({
          id: "B3",
          figure: `final messages, slowest, N=${n}`,
          value: round(finalMax, 1),
          baseline: null,
          unit: "ms",
          target: "≤ 2000 ms",
          pass: finalMax <= 2000,
        });
        invariants.push({
          id: "B3",
          name: `zero 429 with N=${n}`,
          ok: stats.rateLimited === 0,
          detail: `${stats.rateLimited} calls answered 429`,
        });
        invariants.push({
          id: "B3",
          name: `every change shown and every task's final messages posted, N=${n}`,
          ok: unseen === 0 && finalLatency.every(Number.isFinite),
          detail: `${unseen} changes never shown; ${finalLatency.filter((l) => !Number.isFinite(l)).length} tasks without final status+result`,
        });
        details[`n_${n}`] = {
          floorMs,
          changes: changes.length,
          updates: updates.length,
          stalenessP50: percentile(staleness, 50),
          stalenessP99: p99,
          stalenessMax: Math.max(...staleness),
          finalP50: percentile(finalLatency, 50),
          finalMax,
        };
      } finally {
        await w.close();
      }
    }
    return { rows, invariants, details };
  } finally {
    redis.disconnect();
  }
}
