// Runs the real Slack app (Bolt + listeners + services) on the real HTTP server, or over Socket
// Mode, against the Slack emulator and a real Redis. The run side is not part of these tests: run
// effects are recorded, Slack effects go to the real Notifier.
import { randomBytes } from "node:crypto";
import { createHttpServer, type HttpServer, type ReadinessCheck } from "../../../src/adapters/http/server.js";
import { createMetrics, type Metrics } from "../../../src/adapters/metrics/metrics.js";
import { createRedisClaims } from "../../../src/adapters/redis/claims.js";
import { connectRedis, waitForRedis, type Redis } from "../../../src/adapters/redis/connection.js";
import { createRedisTaskStore } from "../../../src/adapters/redis/task-store.js";
import { createRedisSlackState, createSlackApp, type SlackApp } from "../../../src/adapters/slack/app.js";
import { createSlackChat } from "../../../src/adapters/slack/chat.js";
import { createNotifier } from "../../../src/adapters/slack/notifier.js";
import { Policy } from "../../../src/config/policy.js";
import type { Claims, TaskStore } from "../../../src/core/ports/task-store.js";
import type { NotifyEffect } from "../../../src/core/ports/effects.js";
import type { Effect, Task } from "../../../src/core/task.js";
import type { Classify } from "../../../src/services/slack-context.js";
import type { EffectRunner } from "../../../src/services/task-events.js";
import { createLogger, silentLogger } from "../../../src/shared/logger.js";
import { startSlackEmulator, type SlackEmulator } from "../../emulators/slack/index.js";
import { testRedisUrl, uniquePrefix } from "../../support/redis.js";

const NOTIFY_TYPES = new Set<Effect["type"]>([
  "update_status",
  "post_plan",
  "post_attempts_summary",
  "post_result",
  "notify_user",
]);

export interface Harness {
  emulator: SlackEmulator;
  app: SlackApp;
  server?: HttpServer;
  store: TaskStore;
  claims: Claims;
  redis: Redis;
  metrics: Metrics;
  /** The effect runner the app uses (Notifier for Slack effects, recorded run effects). */
  effects: EffectRunner;
  /** Effects for the run side (start_runs, cancel_runs, …), in order. */
  runEffects: Array<{ taskId: string; effect: Effect }>;
  spend: { channel: Map<string, number>; user: Map<string, number> };
  tasksInChannel(channel: string): Promise<Task[]>;
  /** Waits until the app and the Notifier have nothing pending. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  policy?: unknown;
  socketMode?: boolean;
  classify?: Classify;
  readiness?: ReadinessCheck[];
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const emulator = await startSlackEmulator({
    botUserId: "UBATON",
    botId: "BBATON",
    signingSecret: `secret-${randomBytes(8).toString("hex")}`,
  });
  const redis = connectRedis(testRedisUrl());
  await waitForRedis(redis);
  const prefix = uniquePrefix("slack-app");
  // BATON_TEST_LOG=debug shows the app's logs while debugging a test.
  const logLevel = process.env.BATON_TEST_LOG;
  const logger =
    logLevel === "debug" || logLevel === "info" ? createLogger({ level: logLevel }) : silentLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const redact = (t: string) => t;
  const store = createRedisTaskStore(redis, prefix);
  const claims = createRedisClaims(redis, prefix);
  const chat = createSlackChat({
    token: emulator.botToken,
    apiUrl: emulator.apiUrl,
    logger,
    metrics,
    redact,
  });
  const clock = { now: () => new Date() };
  const notifier = createNotifier({ chat, store, claims, clock, logger, redact });
  const runEffects: Harness["runEffects"] = [];
  const effects: EffectRunner = {
    async run(task, list) {
      for (const effect of list) {
        if (NOTIFY_TYPES.has(effect.type)) await notifier.handle(task, effect as NotifyEffect);
        else runEffects.push({ taskId: task.id, effect });
      }
    },
  };
  const spend = { channel: new Map<string, number>(), user: new Map<string, number>() };
  const policy = Policy.parse(options.policy ?? {});
  const app = createSlackApp({
    config: {
      policy,
      slack: {
        botToken: emulator.botToken,
        signingSecret: emulator.signingSecret,
        apiUrl: emulator.apiUrl,
        socketMode: options.socketMode ?? false,
        ...(options.socketMode ? { appToken: emulator.appToken } : {}),
      },
    },
    chat,
    store,
    claims,
    effects,
    clock,
    random: { bytes: (n) => new Uint8Array(randomBytes(n)) },
    logger,
    metrics,
    budget: {
      channelSpentToday: async (c) => spend.channel.get(c) ?? 0,
      userSpentToday: async (u) => spend.user.get(u) ?? 0,
    },
    state: createRedisSlackState(redis, prefix),
    ...(options.classify ? { classify: options.classify } : {}),
    redact,
  });
  await app.start();
  let server: HttpServer | undefined;
  if (!options.socketMode) {
    server = createHttpServer({
      slackHandler: app.handler,
      metrics,
      logger,
      readiness: options.readiness ?? [],
    });
    const { port } = await server.listen(0, "127.0.0.1");
    emulator.setEventsUrl(`http://127.0.0.1:${port}/slack/events`);
  }
  return {
    emulator,
    app,
    ...(server ? { server } : {}),
    store,
    claims,
    redis,
    metrics,
    effects,
    runEffects,
    spend,
    tasksInChannel: (channel) => store.listByChannel(channel, 100),
    async settle() {
      await app.idle();
      await notifier.flush();
      await app.idle();
    },
    async close() {
      await app.stop();
      await notifier.close({ timeoutMs: 2000 });
      await server?.close();
      await emulator.close();
      redis.disconnect();
    },
  };
}

/** Polls until `fn` returns something truthy (or throws after `timeoutMs`). */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
