// Wiring for the runs tests: real Redis, the real queue, supervisor, runner API (on a loopback HTTP
// server) and local executor running test/integration/runs/fake-agent.mjs; Slack, GitHub and the
// publisher are small in-memory port implementations that record what they were asked.
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Policy } from "../../../src/config/policy.js";
import type { ChatPort } from "../../../src/core/ports/chat.js";
import type {
  NotifyEffect,
  PublishControl,
  RunControl,
  TaskNotifier,
} from "../../../src/core/ports/effects.js";
import type { GitHost } from "../../../src/core/ports/git-host.js";
import type { TaskStore } from "../../../src/core/ports/task-store.js";
import {
  newTask,
  newTaskId,
  runIdFor,
  type Task,
  type TaskEvent,
  type TaskId,
} from "../../../src/core/task.js";
import { applyTaskEvent } from "../../../src/services/task-events.js";
import { createMetrics, type Metrics } from "../../../src/adapters/metrics/metrics.js";
import { createLocalExecutor } from "../../../src/adapters/local/executor.js";
import { createRunQueue, type RunQueue } from "../../../src/adapters/queue/run-queue.js";
import { connectRedis, waitForRedis, type Redis } from "../../../src/adapters/redis/connection.js";
import { createRedisBundleStore } from "../../../src/adapters/redis/bundles.js";
import { createRedisRunRecords, type RunRecords } from "../../../src/adapters/redis/run-records.js";
import { createRedisRunSlots } from "../../../src/adapters/redis/run-slots.js";
import { createRedisRunTokens, type RunTokens } from "../../../src/adapters/redis/run-tokens.js";
import { createRedisTaskStore } from "../../../src/adapters/redis/task-store.js";
import {
  createRedisBudgetReader,
  createRedisUsageMeter,
  type UsageMeter,
} from "../../../src/adapters/redis/usage.js";
import { createRunnerApi, type RunnerApi } from "../../../src/adapters/runner-api/index.js";
import { createEffectRunner } from "../../../src/services/effects.js";
import { createRunControl } from "../../../src/services/runs.js";
import {
  createSupervisor,
  type Supervisor,
  type SupervisorOptions,
} from "../../../src/services/supervisor.js";
import { createLogger, silentLogger, type Logger } from "../../../src/shared/logger.js";
import { randomBytes } from "node:crypto";
import { uniquePrefix } from "../../support/redis.js";

export const FAKE_AGENT = join(dirname(fileURLToPath(import.meta.url)), "fake-agent.mjs");
export const MODEL = "baton-test-model";
export const UPSTREAM_KEY = "sk-test-upstream-key";

export interface HarnessOptions {
  redisUrl: string;
  policy?: unknown;
  upstreamUrl?: string;
  gitHost?: GitHost;
  supervisor?: SupervisorOptions;
}

export interface TaskOptions {
  userId?: string;
  repo?: string;
  channelId?: string;
}

export interface Harness {
  prefix: string;
  redis: Redis;
  store: TaskStore;
  records: RunRecords;
  tokens: RunTokens;
  usage: UsageMeter;
  queue: RunQueue;
  runnerApi: RunnerApi;
  runnerUrl: string;
  metrics: Metrics;
  logger: Logger;
  dataDir: string;
  notified: Array<{ task: Task; effect: NotifyEffect }>;
  threadReads: number;
  startSupervisor(options?: SupervisorOptions): Promise<Supervisor>;
  /** A task in `planning` with one queued plan run, started through RunControl (like start_runs). */
  startPlanTask(script: Record<string, unknown>, options?: TaskOptions): Promise<Task>;
  /** A task in `implementing` (plan approved) with one queued implement run, started through RunControl. */
  startImplementTask(script: Record<string, unknown>, options?: TaskOptions): Promise<Task>;
  publishCalls: Array<{ taskId: string; attempt: number; runId: string }>;
  runControl: RunControl;
  /** Applies a task event the way the bot does (transition, persist, effects). */
  apply(taskId: TaskId, event: TaskEvent): Promise<unknown>;
  waitForTask(id: TaskId, predicate: (task: Task) => boolean, timeoutMs?: number): Promise<Task>;
  close(): Promise<void>;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A probe failing (Redis restarting) is "not yet".
    const value = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const defaultGitHost: GitHost = {
  async gitRemote(repo) {
    return { url: `http://127.0.0.1:1/${repo}.git`, authorization: "Basic unused" };
  },
  async repoInfo(repo) {
    return { fullName: repo, defaultBranch: "main", private: true };
  },
};

export async function createHarness(options: HarnessOptions): Promise<Harness> {
  const prefix = uniquePrefix("runs");
  const logger = process.env.TEST_LOG ? createLogger({ level: "debug" }) : silentLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const redis = connectRedis(options.redisUrl);
  await waitForRedis(redis);
  const policy = Policy.parse(options.policy ?? {});
  const clock = { now: () => new Date() };
  const store = createRedisTaskStore(redis, prefix);
  const records = createRedisRunRecords(redis, prefix);
  const tokens = createRedisRunTokens(redis, prefix);
  const usage = createRedisUsageMeter(redis, prefix);
  const budget = createRedisBudgetReader(redis, prefix, clock);
  const bundles = createRedisBundleStore(redis, prefix);
  const slots = createRedisRunSlots(redis, prefix);
  const queue = createRunQueue({ redisUrl: options.redisUrl, prefix, logger });
  const dataDir = mkdtempSync(join(tmpdir(), "baton-runs-"));
  const notified: Harness["notified"] = [];
  const state = { threadReads: 0 };

  const chat: ChatPort = {
    postMessage: async () => ({ ts: "9.9" }),
    updateMessage: async () => undefined,
    postEphemeral: async () => undefined,
    addReaction: async () => undefined,
    readThread: async () => {
      state.threadReads += 1;
      return [
        { ts: "1.0", user: "U0REQ", text: "the build is broken" },
        { ts: "1.1", botId: "B0ALERT", text: "x".repeat(10_000) },
      ];
    },
    permalink: async () => undefined,
    userName: async () => undefined,
    publishHome: async () => undefined,
    whoAmI: async () => ({ userId: "U0BATON" }),
  };
  const notifier: TaskNotifier = {
    handle: async (task, effect) => {
      notified.push({ task, effect });
    },
  };
  const publishCalls: Harness["publishCalls"] = [];
  const publisher: PublishControl = {
    publish: async (task, attempt, runId) => {
      publishCalls.push({ taskId: task.id, attempt, runId });
    },
    closePullRequest: async () => undefined,
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
    gitHost: options.gitHost ?? defaultGitHost,
    policy,
    upstream: { baseUrl: options.upstreamUrl ?? "http://127.0.0.1:1/v1", apiKey: UPSTREAM_KEY, model: MODEL },
    get runnerUrl() {
      return runnerUrl;
    },
    clock,
    logger,
    metrics,
    usageReportMs: 100,
  });
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith(runnerApi.prefix)) void runnerApi.handle(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  runnerUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const startTask = async (
    phase: "plan" | "implement",
    script: Record<string, unknown>,
    taskOptions: TaskOptions,
  ): Promise<Task> => {
    const id = newTaskId((n) => randomBytes(n));
    const at = new Date().toISOString();
    const base = newTask({
      id,
      now: at,
      requester: { userId: taskOptions.userId ?? "U0REQ", name: "Requester" },
      channelId: taskOptions.channelId ?? "C0CHAN",
      threadTs: `${Date.now()}.${randomBytes(3).toString("hex")}`,
      triggerTs: "1.0",
      source: "mention",
      text: JSON.stringify(script),
      repo: taskOptions.repo ?? "acme/web",
      mode: "plan",
      attempts: 1,
    });
    const runId = runIdFor(id, phase, 1, 1);
    const task = await store.create({
      ...base,
      state: phase === "plan" ? "planning" : "implementing",
      launch: 1,
      round: phase === "plan" ? 0 : 1,
      ...(phase === "implement"
        ? { plan: { summary: "the plan", steps: ["one"], approvedBy: "U0REQ" } }
        : {}),
      runs: [{ runId, phase, attempt: 1, launch: 1, status: "queued" }],
    });
    await runControl.start(task, [runId]);
    return task;
  };

  const supervisors: Supervisor[] = [];
  const executors: Array<{ close(): Promise<void> }> = [];

  return {
    prefix,
    redis,
    store,
    records,
    tokens,
    usage,
    queue,
    runnerApi,
    get runnerUrl() {
      return runnerUrl;
    },
    metrics,
    logger,
    dataDir,
    notified,
    get threadReads() {
      return state.threadReads;
    },
    async startSupervisor(supervisorOptions) {
      const executor = createLocalExecutor({
        redis,
        prefix,
        dataDir,
        command: [process.execPath, FAKE_AGENT],
        pathEnv: process.env.PATH ?? "/usr/bin:/bin",
        logger,
        pollMs: 100,
        killGraceMs: 500,
      });
      executors.push(executor);
      const supervisor = createSupervisor({
        redisUrl: options.redisUrl,
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
        agentImage: "unused",
        clock,
        logger,
        metrics,
        flushUsage: runnerApi.flushUsage,
        options: {
          pollMs: 100,
          statusPollMs: 200,
          capRetryMs: 200,
          positionsEveryMs: 100,
          exitGraceMs: 5_000,
          lockDurationMs: 2_000,
          stalledIntervalMs: 500,
          ...options.supervisor,
          ...supervisorOptions,
        },
      });
      await supervisor.start();
      supervisors.push(supervisor);
      return supervisor;
    },
    startPlanTask: (script, taskOptions) => startTask("plan", script, taskOptions ?? {}),
    startImplementTask: (script, taskOptions) => startTask("implement", script, taskOptions ?? {}),
    publishCalls,
    async waitForTask(id, predicate, timeoutMs = 30_000) {
      return waitFor(
        `task ${id}`,
        async () => {
          const task = await store.get(id);
          return task && predicate(task) ? task : undefined;
        },
        timeoutMs,
      );
    },
    runControl,
    apply: (taskId, event) => applyTaskEvent({ store, effects }, taskId, event),
    async close() {
      for (const supervisor of supervisors) await supervisor.close({ handOff: false }).catch(() => undefined);
      for (const executor of executors) await executor.close();
      await runnerApi.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await queue.close().catch(() => undefined);
      redis.disconnect();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Kills every fake agent still alive (by the pids they logged): tests leave no process behind. */
export function killLogged(lines: string[]): void {
  for (const line of lines) {
    const pid = Number(line.split(" ")[3]);
    if (!Number.isInteger(pid)) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}
