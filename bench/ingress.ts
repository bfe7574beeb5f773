// B1 (ack latency of signed events at 50/200/1000 per second) and B5 (bot memory and event-loop
// delay with 0/100/1000 active tasks): the real bot (`startBot`, role bot: Bolt + listeners + HTTP
// server + Redis + Notifier) in a child process against the Slack emulator, next to a bare Bolt app
// that only acks, driven by the same signed-event load.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { connectRedis, waitForRedis } from "../src/adapters/redis/connection.js";
import {
  startSlackEmulator,
  type RateLimitOptions,
  type SlackEmulator,
} from "../test/emulators/slack/index.js";
import { freePort } from "../test/support/free-port.js";
import { signSlackRequest } from "../test/support/slack-signer.js";
import { startBotChild, type BotChild } from "./lib/child.js";
import {
  MiB,
  percentile,
  round,
  sleep,
  type BenchContext,
  type BenchOutcome,
  type Invariant,
  type Row,
} from "./lib/report.js";

/** A limit nobody reaches (the emulator's `null` does not switch a default limit off). */
const UNLIMITED = { max: 1_000_000, windowMs: 1000, scope: "workspace" } as const;

export interface IngressWorld {
  emu: SlackEmulator;
  policyDir: string;
  envFor(port: number): Record<string, string>;
  close(): Promise<void>;
}

export async function ingressWorld(
  ctx: BenchContext,
  rateLimits: RateLimitOptions = {},
): Promise<IngressWorld> {
  const emu = await startSlackEmulator({
    botUserId: "UBATON",
    botId: "BBATON",
    signingSecret: "bench-signing-secret-0123456789",
    rateLimits,
  });
  const policyDir = mkdtempSync(path.join(tmpdir(), "baton-bench-"));
  // Per-user and per-repo caps would turn most of the benchmark's mentions away.
  writeFileSync(
    path.join(policyDir, "baton.yaml"),
    "repos:\n  acme/web: {}\nlimits:\n  perUser: 100000\n  perRepo: 100000\n  concurrentRuns: 20\n",
  );
  return {
    emu,
    policyDir,
    envFor: (port) => ({
      SLACK_BOT_TOKEN: emu.botToken,
      SLACK_SIGNING_SECRET: emu.signingSecret,
      SLACK_API_URL: emu.apiUrl,
      REDIS_URL: ctx.redisUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      BATON_CONFIG: path.join(policyDir, "baton.yaml"),
      BATON_DATA_DIR: policyDir,
      LOG_LEVEL: process.env.BATON_BENCH_LOG_LEVEL ?? "warn",
    }),
    async close() {
      await emu.close();
      rmSync(policyDir, { recursive: true, force: true });
    },
  };
}

/** Empties the bench Redis between children (they all use Baton's one key prefix). */
export async function flushRedis(url: string): Promise<void> {
  const redis = connectRedis(url);
  await waitForRedis(redis);
  await redis.flushall();
  redis.disconnect();
}

/**
 * Puts the messages that signed mentions will claim to be into the emulator (so the bot's thread
 * replies find their thread), without delivering them: posted through the Web API, 50 at a time.
 */
export async function seedMentions(
  emu: SlackEmulator,
  from: number,
  count: number,
  tag: string,
): Promise<string[]> {
  const out: string[] = [];
  for (let i = from; i < from + count; i += 50) {
    const batch = Array.from({ length: Math.min(50, from + count - i) }, async (_, j) => {
      const res = await fetch(`${emu.apiUrl}chat.postMessage`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${emu.botToken}`,
          "content-type": "application/json; charset=utf-8",
        },
        body: JSON.stringify({ channel: `C${tag}${i + j}`, text: `fix the flaky checkout test ${i + j}` }),
      });
      const body = (await res.json()) as { ok?: boolean; ts?: string; error?: string };
      if (!body.ok || !body.ts) throw new Error(`seeding a message failed: ${body.error ?? res.status}`);
      return body.ts;
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

export function mentionPayload(emu: SlackEmulator, i: number, tag: string, ts: string): string {
  return JSON.stringify({
    token: "unused",
    team_id: emu.teamId,
    api_app_id: emu.appId,
    type: "event_callback",
    event_id: `Ev${tag}${i}`,
    event_time: Math.floor(Date.now() / 1000),
    event: {
      type: "app_mention",
      // One channel per task: Slack's per-channel posting limit is not what these benchmarks measure.
      channel: `C${tag}${i}`,
      user: `U${tag}${i}`,
      ts,
      event_ts: ts,
      text: `<@UBATON> fix the flaky checkout test ${i} repo=acme/web`,
    },
  });
}

/** A plain channel message (no mention): the bot reads it and does nothing. */
export function chatterPayload(emu: SlackEmulator, i: number, tag: string): string {
  const ts = `${1_700_100_000 + i}.${String(i % 1_000_000).padStart(6, "0")}`;
  return JSON.stringify({
    token: "unused",
    team_id: emu.teamId,
    api_app_id: emu.appId,
    type: "event_callback",
    event_id: `Ev${tag}${i}`,
    event_time: Math.floor(Date.now() / 1000),
    event: { type: "message", channel: `C${tag}`, user: `U${tag}`, ts, event_ts: ts, text: `lunch at ${i}?` },
  });
}

export interface LoadResult {
  latencies: number[];
  statuses: Map<number, number>;
}

/** Posts `count` signed bodies at `perSecond` (paced by the clock) and records each ack's latency. */
export async function signedLoad(
  port: number,
  secret: string,
  count: number,
  perSecond: number,
  body: (i: number) => string,
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const post = (payload: string) =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/slack/events",
          method: "POST",
          agent,
          headers: { "content-type": "application/json", ...signSlackRequest(secret, payload) },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            latencies.push(performance.now() - started);
            statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
            resolve();
          });
        },
      );
      req.on("error", () => {
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
        resolve();
      });
      req.end(payload);
    });
  const t0 = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await sleep(wait);
    inflight.push(post(body(i)));
  }
  await Promise.all(inflight);
  agent.destroy();
  return { latencies, statuses };
}

const RATES: [number, number][] = [
  [50, 200],
  [200, 800],
  [1000, 2000],
];

/** B1: the same mention load against a fresh bare Bolt app and a fresh Baton bot. */
export async function benchB1(ctx: BenchContext): Promise<BenchOutcome> {
  const rows: Row[] = [];
  const invariants: Invariant[] = [];
  const details: Record<string, unknown> = {};
  const p99 = new Map<string, number>();
  for (const kind of ["bare", "baton"] as const) {
    for (const [rate, count] of RATES) {
      // A fresh workspace (emulator), Redis and process each time: no run inherits another's backlog.
      const world = await ingressWorld(ctx);
      try {
        await flushRedis(ctx.redisUrl);
        const port = await freePort();
        const child: BotChild = await startBotChild({ kind, env: world.envFor(port) });
        try {
          const warmTag = `W${kind.toUpperCase()}${rate}X`;
          const tag = `B${rate}X`;
          const warm = await seedMentions(world.emu, 0, 50, warmTag);
          const roots = await seedMentions(world.emu, 0, count, tag);
          // Warm-up (JIT, connections), not measured.
          await signedLoad(child.port, world.emu.signingSecret, 50, 100, (i) =>
            mentionPayload(world.emu, i, warmTag, warm[i]!),
          );
          await sleep(500);
          const load = await signedLoad(child.port, world.emu.signingSecret, count, rate, (i) =>
            mentionPayload(world.emu, i, tag, roots[i]!),
          );
          const ok = load.statuses.get(200) ?? 0;
          const figures = {
            p50: percentile(load.latencies, 50),
            p99: percentile(load.latencies, 99),
            max: Math.max(...load.latencies),
            statuses: Object.fromEntries(load.statuses),
          };
          p99.set(`${kind}:${rate}`, figures.p99);
          details[`${kind}_${rate}`] = figures;
          ctx.log(
            `B1 ${kind} ${rate}/s: p50 ${round(figures.p50)} ms, p99 ${round(figures.p99)} ms, max ${round(figures.max)} ms`,
          );
          invariants.push({
            id: "B1",
            name: `${kind}: every signed event acked 200 at ${rate}/s`,
            ok: ok === count,
            detail: JSON.stringify(figures.statuses),
          });
          if (kind === "baton") {
            // Slack's own limits are on here: a 429 means some call went out without the budget.
            await sleep(1000);
            const stats = world.emu.stats();
            invariants.push({
              id: "B1",
              name: `zero 429 from Slack at ${rate}/s`,
              ok: stats.rateLimited === 0,
              detail: `${stats.rateLimited} calls answered 429 (${stats.ignoredRateLimits} inside Retry-After); calls by method ${JSON.stringify(stats.byMethod)}`,
            });
            rows.push({
              id: "B1",
              figure: `slowest ack at ${rate}/s`,
              value: round(figures.max, 1),
              baseline: null,
              unit: "ms",
              target: "≤ 3000 ms",
              pass: figures.max <= 3000,
            });
          }
        } finally {
          await child.stop();
        }
      } finally {
        await world.close();
      }
    }
  }
  {
    for (const [rate] of RATES) {
      const base = p99.get(`bare:${rate}`)!;
      const value = p99.get(`baton:${rate}`)!;
      rows.push({
        id: "B1",
        figure: `ack p99 at ${rate}/s`,
        value: round(value, 2),
        baseline: round(base, 2),
        unit: "ms",
        target: rate === 200 ? "≤ 1.2× baseline + 2 ms" : "(reported)",
        pass: rate === 200 ? value <= 1.2 * base + 2 : true,
      });
    }
  }
  return {
    rows: [
      ...rows.filter((r) => r.figure.startsWith("ack")),
      ...rows.filter((r) => !r.figure.startsWith("ack")),
    ],
    invariants,
    details,
  };
}

/**
 * B5: RSS and event-loop delay of the bot with 0, 100 and 1000 active tasks (created by mentions, each
 * with its status message posted, runs queued), while 50 channel messages/s keep arriving; the bare Bolt app
 * gets the same events.
 */
export async function benchB5(ctx: BenchContext): Promise<BenchOutcome> {
  const rows: Row[] = [];
  const invariants: Invariant[] = [];
  const details: Record<string, unknown> = {};
  const measured = new Map<string, { rss: number; loopP99Ms: number }>();
  /** Tasks the bot really had (with their status message) at each level. */
  const reached = new Map<number, number>();
  for (const kind of ["bare", "baton"] as const) {
    // Slack's Tier-3 limits (thread context, user names, the acknowledging reaction) would stretch
    // creating 1000 tasks to 20 minutes; memory is what is measured here, so only the posting limits
    // stay (B1 runs with all of Slack's limits).
    const world = await ingressWorld(ctx, {
      "conversations.replies": UNLIMITED,
      "conversations.history": UNLIMITED,
      "users.info": UNLIMITED,
      "chat.getPermalink": UNLIMITED,
      "reactions.add": UNLIMITED,
    });
    try {
      await flushRedis(ctx.redisUrl);
      const port = await freePort();
      const child = await startBotChild({ kind, env: world.envFor(port) });
      try {
        let created = 0;
        for (const active of [0, 100, 1000]) {
          if (active > created) {
            const from = created;
            const tag = `M${kind.toUpperCase()}`;
            const roots = await seedMentions(world.emu, from, active - created, tag);
            const load = await signedLoad(child.port, world.emu.signingSecret, active - created, 200, (i) =>
              mentionPayload(world.emu, from + i, tag, roots[i]!),
            );
            invariants.push({
              id: "B5",
              name: `${kind}: every mention acked`,
              ok: (load.statuses.get(200) ?? 0) === active - created,
              detail: JSON.stringify(Object.fromEntries(load.statuses)),
            });
            created = active;
            if (kind === "baton") {
              // Every task has its status message in its own channel.
              const channels = () =>
                new Set(
                  world.emu
                    .calls("chat.postMessage")
                    .filter((c) => c.ok && c.args.thread_ts && String(c.args.channel).startsWith("CMBATON"))
                    .map((c) => c.args.channel),
                ).size;
              // The bot works through its backlog at its own pace: wait while it makes progress.
              const t0 = Date.now();
              let last = -1;
              let lastChange = Date.now();
              let n = channels();
              while (n < active && Date.now() - lastChange <= 20_000) {
                if (n !== last) [last, lastChange] = [n, Date.now()];
                await sleep(200);
                n = channels();
              }
              // No lost tasks: every acknowledged mention must become a task with its status message.
              invariants.push({
                id: "B5",
                name: `every acknowledged mention became a task with a status message (${active})`,
                ok: n >= active,
                detail: `${n} of ${active} mentions got a status message${n < active ? ", none more in 20 s" : ""}; Slack calls ${JSON.stringify(world.emu.stats().byMethod)}`,
              });
              details[`baton_seconds_to_${active}_tasks`] = (Date.now() - t0) / 1000;
              details[`baton_tasks_with_status_${active}`] = n;
              reached.set(active, n);
              ctx.log(
                `B5 ${n} of ${active} tasks have their status message after ${round((Date.now() - t0) / 1000, 1)} s`,
              );
            }
          }
          await sleep(500);
          child.reset();
          // A steady trickle of events while we measure (3 s).
          await signedLoad(child.port, world.emu.signingSecret, 150, 50, (i) =>
            chatterPayload(world.emu, i, `S${kind.toUpperCase()}${active}X`),
          );
          const stats = await child.stats();
          // Chatter messages are not tasks: they do not add to `created`.
          measured.set(`${kind}:${active}`, { rss: stats.rss, loopP99Ms: stats.loopP99Ms });
          details[`${kind}_${active}`] = stats;
          ctx.log(
            `B5 ${kind} ${active} tasks: RSS ${round(stats.rss / MiB, 1)} MiB, loop p99 ${round(stats.loopP99Ms, 2)} ms`,
          );
        }
      } finally {
        await child.stop();
      }
    } finally {
      await world.close();
    }
  }
  {
    // Says so when the bot did not get to the requested number of tasks (see the B5 invariant).
    const label = (active: number) => {
      const n = reached.get(active) ?? active;
      return n === active ? String(active) : `${n} (of ${active} requested)`;
    };
    for (const active of [0, 100, 1000]) {
      const base = measured.get(`bare:${active}`)!;
      const bot = measured.get(`baton:${active}`)!;
      rows.push({
        id: "B5",
        figure: `bot RSS, ${label(active)} active tasks`,
        value: round(bot.rss / MiB, 1),
        baseline: round(base.rss / MiB, 1),
        unit: "MiB",
        target: active === 1000 ? "≤ baseline + 100 MiB" : "(reported)",
        pass: active === 1000 ? bot.rss <= base.rss + 100 * MiB : true,
      });
      rows.push({
        id: "B5",
        figure: `event-loop delay p99, ${label(active)} active tasks`,
        value: round(bot.loopP99Ms, 2),
        baseline: round(base.loopP99Ms, 2),
        unit: "ms",
        target: "< 20 ms",
        pass: bot.loopP99Ms < 20,
      });
    }
  }
  return { rows, invariants, details };
}
