// Composition root of `baton bot`: builds every adapter from the configuration and runs the roles.
//   all    — Slack ingress + run supervisor + runner API in one process (the default)
//   bot    — Slack ingress only (HTTP or Socket Mode)
//   worker — run supervisor + runner API only
// Any number of processes of each role can run side by side: all shared state lives in Redis.
import { randomBytes } from "node:crypto";
import type { Config } from "../config/load.js";
import type { Clock, Random } from "../core/ports/clock.js";
import type { PublishControl } from "../core/ports/effects.js";
import type { Executor } from "../core/ports/executor.js";
import type { GitHost } from "../core/ports/git-host.js";
import { createRedactor } from "../core/redact.js";
import { createGitHubFromConfig } from "../adapters/github/index.js";
import { createHttpServer, type ReadinessCheck, type RouteHandler } from "../adapters/http/server.js";
import { createKubernetesExecutor } from "../adapters/kubernetes/executor.js";
import { createLocalExecutor } from "../adapters/local/executor.js";
import { createMetrics } from "../adapters/metrics/metrics.js";
import { createRunQueue } from "../adapters/queue/run-queue.js";
import { createRedisBundleStore } from "../adapters/redis/bundles.js";
import { createRedisClaims } from "../adapters/redis/claims.js";
import { checkEvictionPolicy, connectRedis, waitForRedis } from "../adapters/redis/connection.js";
import { createRedisRunRecords } from "../adapters/redis/run-records.js";
import { createRedisRunSlots } from "../adapters/redis/run-slots.js";
import { createRedisRunTokens } from "../adapters/redis/run-tokens.js";
import { createRedisTaskStore } from "../adapters/redis/task-store.js";
import { createRedisBudgetReader, createRedisUsageMeter } from "../adapters/redis/usage.js";
import { createRunnerApi } from "../adapters/runner-api/index.js";
import { createRedisSlackState, createSlackApp } from "../adapters/slack/app.js";
import { createSlackChat, createSlackPacer } from "../adapters/slack/chat.js";
import { createNotifier } from "../adapters/slack/notifier.js";
import { createRedisRateBudget } from "../adapters/slack/notifier/shared-budget.js";
import { createEffectRunner } from "../services/effects.js";
import { createPublisher } from "../services/publish.js";
import { createRunControl } from "../services/runs.js";
import { createSupervisor } from "../services/supervisor.js";
import { applyTaskEvent, type EffectRunner } from "../services/task-events.js";
import { createModelClassifier } from "../services/watcher.js";
import { createLogger } from "../shared/logger.js";

export type BotRole = "all" | "bot" | "worker";

/** Every Redis key Baton writes starts with this (BullMQ's too), so one Redis can be shared safely. */
export const KEY_PREFIX = "baton:";

export interface RunningBot {
  port: number;
  /** Stops taking work, lets in-flight work finish (bounded), and closes connections. */
  stop(): Promise<void>;
}

const systemClock: Clock = { now: () => new Date() };
const systemRandom: Random = { bytes: (n) => randomBytes(n) };

/** Stands in when no GitHub credential is configured: publishing fails with a sentence saying what to set. */
function gitHubMissing(deps: {
  store: Parameters<typeof applyTaskEvent>[0]["store"];
  effects: () => EffectRunner;
  clock: Clock;
}): {
  gitHost: GitHost;
  publisher: PublishControl;
} {
  const message =
    "Baton has no GitHub credential, so it cannot read or publish to repositories. An operator must set GITHUB_TOKEN or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY.";
  return {
    gitHost: {
      gitRemote: async () => {
        throw new Error(message);
      },
      repoInfo: async () => undefined,
    },
    publisher: {
      publish: async (task, attempt) => {
        await applyTaskEvent({ store: deps.store, effects: deps.effects() }, task.id, {
          type: "publish.failed",
          at: deps.clock.now().toISOString(),
          attempt,
          failure: { code: "github_access", message },
        });
      },
      closePullRequest: async () => undefined,
    },
  };
}

export async function startBot(config: Config, role: BotRole): Promise<RunningBot> {
  const redact = createRedactor(config.secrets);
  const logger = createLogger({ level: config.logLevel, redact, base: { app: "baton", role } });
  const metrics = createMetrics();
  const clock = systemClock;
  const prefix = KEY_PREFIX;

  const redis = connectRedis(config.redisUrl, { connectionName: `baton-${role}` });
  redis.on("error", (error) => logger.warn({ err: error }, "redis connection error"));
  await waitForRedis(redis, 30_000).catch((error: Error) => {
    throw new Error(`cannot reach Redis at ${redact(config.redisUrl)}: ${error.message}`);
  });
  const eviction = await checkEvictionPolicy(redis).catch(() => undefined);
  if (eviction && !eviction.ok) logger.warn({ policy: eviction.policy }, eviction.message);

  const store = createRedisTaskStore(redis, prefix);
  const claims = createRedisClaims(redis, prefix);
  const records = createRedisRunRecords(redis, prefix);
  const tokens = createRedisRunTokens(redis, prefix);
  const usage = createRedisUsageMeter(redis, prefix);
  const budget = createRedisBudgetReader(redis, prefix, clock);
  const bundles = createRedisBundleStore(redis, prefix);

  if (!config.slack.botToken)
    throw new Error("SLACK_BOT_TOKEN is required (Baton posts every update to Slack)");
  const sharedBudget = createRedisRateBudget(redis, prefix);
  const chatOptions = {
    token: config.slack.botToken,
    ...(config.slack.apiUrl ? { apiUrl: config.slack.apiUrl } : {}),
    logger,
    metrics,
    redact,
  };
  // Two clients on one workspace-wide budget: the Notifier paces its own calls, everything else
  // (reactions, private notes, App Home, thread reads, …) goes through the pacer.
  const pacer = createSlackPacer({ logger, sharedBudget });
  const chat = createSlackChat({ ...chatOptions, pacer });
  const notifier = createNotifier({
    chat: createSlackChat(chatOptions),
    store,
    claims,
    clock,
    logger,
    redact,
    sharedBudget,
  });

  const queue = createRunQueue({ redisUrl: config.redisUrl, prefix, logger });
  const runs = createRunControl({ records, queue, policy: config.policy, clock, logger });

  // The effect runner and the publisher need each other: the publisher reports through task events.
  const lazyEffects: EffectRunner = { run: (task, list) => effects.run(task, list) };
  const github = createGitHubFromConfig(config, { clock, logger });
  let gitHost: GitHost;
  let publisher: PublishControl;
  if (github) {
    gitHost = github;
    publisher = createPublisher({
      gitHost: github,
      github,
      bundles,
      store,
      effects: lazyEffects,
      policy: config.policy,
      clock,
      logger,
      dataDir: config.dataDir,
      permalink: (channel, ts) => chat.permalink({ channel, ts }),
      userName: (userId) => chat.userName(userId),
      secrets: config.secrets,
    });
  } else {
    logger.warn(
      "no GitHub credential configured: runs cannot clone or publish (set GITHUB_TOKEN or a GitHub App)",
    );
    ({ gitHost, publisher } = gitHubMissing({ store, effects: () => lazyEffects, clock }));
  }
  const effects = createEffectRunner({ notifier, runs, publisher, logger });

  const routes: RouteHandler[] = [];
  const readiness: ReadinessCheck[] = [{ name: "redis", check: async () => (await redis.ping()) === "PONG" }];
  const stops: (() => Promise<void>)[] = [];

  // Worker: runner API + supervisor + executor.
  if (role === "all" || role === "worker") {
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
      policy: config.policy,
      upstream: {
        baseUrl: config.model.baseUrl,
        ...(config.model.apiKey ? { apiKey: config.model.apiKey } : {}),
        model: config.model.name,
      },
      runnerUrl: config.runnerUrl,
      clock,
      logger,
      metrics,
    });
    routes.push(runnerApi);

    const executor: Executor =
      config.executor === "kubernetes"
        ? createKubernetesExecutor(config.kubernetes, { logger, redact })
        : createLocalExecutor({ redis, prefix, dataDir: config.dataDir, pathEnv: config.agentPath, logger });
    readiness.push({ name: "executor", check: () => executor.ready() });

    const supervisor = createSupervisor({
      redisUrl: config.redisUrl,
      prefix,
      queue,
      executor,
      records,
      tokens,
      slots: createRedisRunSlots(redis, prefix),
      store,
      effects,
      policy: config.policy,
      runnerUrl: config.runnerUrl,
      agentImage: config.kubernetes.agentImage,
      clock,
      logger,
      metrics,
      flushUsage: runnerApi.flushUsage,
    });
    await supervisor.start();
    stops.push(async () => {
      await supervisor.close();
      await executor.close();
      await runnerApi.close();
    });
  }

  // Slack ingress.
  let slackApp: ReturnType<typeof createSlackApp> | undefined;
  if (role === "all" || role === "bot") {
    slackApp = createSlackApp({
      config,
      chat,
      store,
      claims,
      effects,
      clock,
      random: systemRandom,
      logger,
      metrics,
      budget,
      state: createRedisSlackState(redis, prefix),
      ...(config.model.apiKey
        ? {
            classify: createModelClassifier({
              baseUrl: config.model.baseUrl,
              apiKey: config.model.apiKey,
              model: config.model.name,
            }),
          }
        : {}),
      redact,
    });
    await slackApp.start();
    const app = slackApp;
    readiness.push({ name: "slack", check: async () => app.ready() });
  }

  const server = createHttpServer({
    ...(slackApp && !config.slack.socketMode ? { slackHandler: slackApp.handler } : {}),
    routes,
    readiness,
    metrics,
    logger,
  });
  const address = await server.listen(config.http.port, config.http.host);
  logger.info(
    {
      port: address.port,
      host: address.host,
      executor: config.executor,
      socketMode: config.slack.socketMode,
    },
    `Baton ${role} listening on ${address.host}:${address.port}`,
  );

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info("shutting down");
      await slackApp?.stop().catch((error: unknown) => logger.warn({ err: error }, "slack app stop failed"));
      for (const fn of stops)
        await fn().catch((error: unknown) => logger.warn({ err: error }, "worker stop failed"));
      await notifier.close({ timeoutMs: 5000 }).catch(() => undefined);
      pacer.close();
      await server.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
      redis.disconnect();
      logger.flush();
    })());
  return { port: address.port, stop };
}

/** `baton bot`: runs until SIGTERM/SIGINT, then shuts down gracefully (runs keep running; another worker re-attaches). */
export async function runBot(config: Config, role: BotRole): Promise<number> {
  const bot = await startBot(config, role);
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  await bot.stop();
  return 0;
}
