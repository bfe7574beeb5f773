// B1 (ack latency of signed events at 50/200/1000 per second) and B5 (bot memory and event-loop
// delay with 0/100/1000 active tasks): the real bot (`startBot`, role bot: Bolt + listeners + HTTP
// server + Redis + Notifier) in a child process against the Slack emulator, next to a bare Bolt app
// that only acks, driven by the same signed-event load.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { connectRedis, waitForRedis } from "../src/adapters/redis/connection.js";
import { startSlackEmulator, type SlackEmulator } from "../test/emulators/slack/index.js";
import { freePort } from "../test/support/free-port.js";
import { signSlackRequest } from "../test/support/slack-signer.js";
import { startBotChild, type BotChild } from "./lib/child.js";
import {
  MiB,
  percentile,
  round,
  sleep,
  waitUntil,
  type BenchContext,
  type BenchOutcome,
  type Invariant,
  type Row,
} from "./lib/report.js";

export interface IngressWorld {
  emu: SlackEmulator;
  policyDir: string;
  envFor(port: number): Record<string, string>;
  close(): Promise<void>;
}

export async function ingressWorld(ctx: BenchContext): Promise<IngressWorld> {
  const emu = await startSlackEmulator({
    botUserId: "UBATON",
    botId: "BBATON",
    signingSecret: "bench-signing-secret-0123456789",
  });
  const policyDir = mkdtempSync(path.join(tmpdir(), "baton-bench-"));
  writeFileSync(path.join(policyDir, "baton.yaml"), "repos:\n  acme/web: {}\n");
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
      LOG_LEVEL: "error",
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

export function mentionPayload(emu: SlackEmulator, i: number, tag: string): string {
  const ts = `${1_700_000_000 + i}.${String(i % 1_000_000).padStart(6, "0")}`;
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
      user: `U${tag}${i % 50}`,
      ts,
      event_ts: ts,
      text: `<@UBATON> fix the flaky checkout test ${i} repo=acme/web`,
    },
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
          // Warm-up (JIT, connections), not measured.
          await signedLoad(child.port, world.emu.signingSecret, 50, 100, (i) =>
            mentionPayload(world.emu, i, `W${kind}${rate}X`),
          );
          await sleep(500);
          const load = await signedLoad(child.port, world.emu.signingSecret, count, rate, (i) =>
            mentionPayload(world.emu, i, `B${rate}X`),
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
 * with its status message posted, runs queued), while 50 events/s keep arriving; the bare Bolt app
 * gets the same events.
 */
export async function benchB5(ctx: BenchContext): Promise<BenchOutcome> {
  const rows: Row[] = [];
  const invariants: Invariant[] = [];
  const details: Record<string, unknown> = {};
  const measured = new Map<string, { rss: number; loopP99Ms: number }>();
  for (const kind of ["bare", "baton"] as const) {
    const world = await ingressWorld(ctx);
    try {
      await flushRedis(ctx.redisUrl);
      const port = await freePort();
      const child = await startBotChild({ kind, env: world.envFor(port) });
      try {
        let created = 0;
        for (const active of [0, 100, 1000]) {
          if (active > created) {
            const from = created;
            const load = await signedLoad(child.port, world.emu.signingSecret, active - created, 200, (i) =>
              mentionPayload(world.emu, from + i, `M${kind}`),
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
              await waitUntil(
                `${active} status messages`,
                () =>
                  new Set(
                    world.emu
                      .calls("chat.postMessage")
                      .filter((c) => c.ok && String(c.args.channel).startsWith("CMbaton"))
                      .map((c) => c.args.channel),
                  ).size >= active,
                120_000,
                100,
              );
            }
          }
          await sleep(500);
          child.reset();
          // A steady trickle of events while we measure (3 s).
          await signedLoad(child.port, world.emu.signingSecret, 150, 50, (i) =>
            mentionPayload(world.emu, i, `S${kind}${active}X`),
          );
          const stats = await child.stats();
          created += kind === "baton" ? 150 : 0;
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
    for (const active of [0, 100, 1000]) {
      const base = measured.get(`bare:${active}`)!;
      const bot = measured.get(`baton:${active}`)!;
      rows.push({
        id: "B5",
        figure: `bot RSS, ${active} active tasks`,
        value: round(bot.rss / MiB, 1),
        baseline: round(base.rss / MiB, 1),
        unit: "MiB",
        target: active === 1000 ? "≤ baseline + 100 MiB" : "(reported)",
        pass: active === 1000 ? bot.rss <= base.rss + 100 * MiB : true,
      });
      rows.push({
        id: "B5",
        figure: `event-loop delay p99, ${active} active tasks`,
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
