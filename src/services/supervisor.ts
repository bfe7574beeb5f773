// The run supervisor (the worker): takes runs from the queue under the concurrency caps, launches
// them through the Executor (or re-attaches: launch is idempotent), follows them until they end,
// and turns what happened into task events. Also: queue positions (`run.queued`), reconciliation
// on start (no orphan, no duplicate), approval expiry, and graceful shutdown that leaves runs running.
import type { Clock } from "../core/ports/clock.js";
import type { ExecutionStatus, Executor } from "../core/ports/executor.js";
import type { TaskStore } from "../core/ports/task-store.js";
import type { Task, TaskEvent, TaskFailure, TaskId } from "../core/task.js";
import type { Policy } from "../config/policy.js";
import type { Logger } from "../shared/logger.js";
import type { Metrics } from "../adapters/metrics/metrics.js";
import {
  startRunConsumer,
  type RunConsumer,
  type RunJobData,
  type RunJobOutcome,
  type RunQueue,
} from "../adapters/queue/run-queue.js";
import type { RunRecord, RunRecords } from "../adapters/redis/run-records.js";
import type { RunSlots, SlotHolder } from "../adapters/redis/run-slots.js";
import type { RunTokens } from "../adapters/redis/run-tokens.js";
import { budgetFailure } from "../adapters/runner-api/llm-gateway.js";
import { describeDuration } from "../adapters/local/executor.js";
import { runTimeoutSeconds } from "./runs.js";
import { applyTaskEvent, type EffectRunner } from "./task-events.js";

export interface SupervisorOptions {
  /** How often a followed run's record is checked (result posted, cancel requested). */
  pollMs?: number;
  /** How often the executor is asked for a run's status (the watch wakes the loop sooner). */
  statusPollMs?: number;
  /** Back-off for a run whose per-repository or per-user cap is full. */
  capRetryMs?: number;
  positionsEveryMs?: number;
  approvalSweepMs?: number;
  /** After a result, how long the agent gets to exit before it is stopped. */
  exitGraceMs?: number;
  /** Extra time past the run's deadline before the supervisor stops it itself. */
  deadlineGraceMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  stallAfterMs?: number;
  stallCheckMs?: number;
  /** Failed launches before the run fails with `launch_failed`, and the back-off unit between them. */
  maxLaunchErrors?: number;
  launchRetryMs?: number;
}

export interface SupervisorDeps {
  redisUrl: string;
  prefix: string;
  queue: RunQueue;
  executor: Executor;
  records: RunRecords;
  tokens: RunTokens;
  slots: RunSlots;
  store: TaskStore;
  effects: EffectRunner;
  policy: Policy;
  runnerUrl: string;
  /** Default agent image; `repos.<r>.image` in the policy wins. */
  agentImage: string;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Reports a task's pending usage totals before its run's final event (the runner API's flushUsage). */
  flushUsage?: (taskId: string) => Promise<void>;
  options?: SupervisorOptions;
}

export interface Supervisor {
  /** Reconciles with the executor and starts taking work. */
  start(): Promise<void>;
  /** Stops taking work and leaves runs running. `handOff` (default) gives held runs back to the queue at once. */
  close(options?: { handOff?: boolean }): Promise<void>;
}

const FAILURE_CODES: Record<string, string> = {
  OOMKilled: "oom_killed",
  DeadlineExceeded: "deadline_exceeded",
  ImagePullBackOff: "image_pull_failed",
  Unschedulable: "unschedulable",
  Error: "agent_error",
  Cancelled: "cancelled",
  Lost: "agent_lost",
};

function isEnded(status: ExecutionStatus): boolean {
  return status.state === "succeeded" || status.state === "failed" || status.state === "gone";
}

/** Why a run that ended without a result failed, best-informed source first. */
export function failureFor(record: RunRecord, status: ExecutionStatus, policy: Policy): TaskFailure {
  const logTail = status.state === "failed" && status.logTail ? { logTail: status.logTail.slice(-4000) } : {};
  if (record.budgetExhausted)
    return { ...budgetFailure(record.budgetExhausted, policy, record.channelId), ...logTail };
  if (status.state === "failed" && status.reason !== "Error" && status.reason !== "Lost") {
    return { code: FAILURE_CODES[status.reason] ?? "agent_error", message: status.message, ...logTail };
  }
  if (record.agentFailure)
    return {
      code: record.agentFailure.code,
      message: record.agentFailure.message.slice(0, 2000),
      ...logTail,
    };
  if (status.state === "failed")
    return { code: FAILURE_CODES[status.reason] ?? "agent_error", message: status.message, ...logTail };
  if (status.state === "gone")
    return { code: "agent_lost", message: "The agent's run disappeared before it reported a result." };
  return { code: "no_result", message: "The agent finished without reporting a result." };
}

export function createSupervisor(deps: SupervisorDeps): Supervisor {
  const { records, executor, logger, metrics, policy } = deps;
  const o = deps.options ?? {};
  const pollMs = o.pollMs ?? 1_000;
  const statusPollMs = o.statusPollMs ?? 5_000;
  const now = () => deps.clock.now().toISOString();
  const apply = (taskId: string, event: TaskEvent) =>
    applyTaskEvent({ store: deps.store, effects: deps.effects }, taskId as TaskId, event);

  const wakers = new Map<string, () => void>();
  const timers: NodeJS.Timeout[] = [];
  let consumer: RunConsumer | undefined;
  let stopWatch: (() => void) | undefined;
  let closed = false;

  const sleep = (ms: number, runId: string, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        if (wakers.get(runId) === done) wakers.delete(runId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      wakers.set(runId, done);
    });

  const holderOf = (record: RunRecord): SlotHolder => ({
    runId: record.runId,
    repo: record.repo,
    userId: record.userId,
  });

  /** Applies the run's final event (again: transitions ignore repeats), revokes its tokens, frees its slot. */
  const finalize = async (runId: string) => {
    const record = await records.get(runId);
    if (!record) return;
    if (record.finalEvent) {
      if (deps.flushUsage) await deps.flushUsage(record.taskId).catch(() => undefined);
      await apply(record.taskId, record.finalEvent);
    }
    await deps.tokens.revokeAll(runId);
    await deps.slots.release(holderOf(record));
    if (!record.finalized) {
      await records.markFinalized(runId);
      metrics.runsFinished.inc({ phase: record.phase, outcome: record.outcome ?? "failed" });
      logger.info({ runId, taskId: record.taskId, outcome: record.outcome }, "run finished");
    }
  };

  const endCancelled = async (record: RunRecord) => {
    await executor.cancel(record.runId);
    await records.end(record.runId, "cancelled", now());
    await finalize(record.runId);
  };

  /** Follows a launched run until it ends; "release" when this worker lets go of it. */
  const follow = async (runId: string, signal: AbortSignal): Promise<RunJobOutcome> => {
    let lastStatusAt = 0;
    let status: ExecutionStatus = { state: "running" };
    let resultSeenAt: number | undefined;
    while (!signal.aborted) {
      try {
        const record = await records.get(runId);
        if (!record) {
          logger.error({ runId }, "run record vanished while following the run");
          await executor.cancel(runId);
          return { kind: "done" };
        }
        await deps.slots.heartbeat([holderOf(record)]);
        if (record.cancelRequested && record.outcome !== "cancelled" && record.status !== "ended") {
          logger.info({ runId, taskId: record.taskId }, "cancelling run");
          await endCancelled(record);
          return { kind: "done" };
        }
        if (Date.now() - lastStatusAt >= statusPollMs || resultSeenAt !== undefined) {
          status = await executor.status(runId);
          lastStatusAt = Date.now();
        }
        if (record.status === "ended") {
          // The result is in; give the agent a moment to exit so slots reflect real processes.
          resultSeenAt ??= Date.now();
          const graceOver = Date.now() - resultSeenAt >= (o.exitGraceMs ?? 30_000);
          if (isEnded(status) || graceOver) {
            if (!isEnded(status)) await executor.cancel(runId);
            await finalize(runId);
            return { kind: "done" };
          }
        } else if (isEnded(status)) {
          // Ended without a result. A result racing with the exit wins: re-read before failing.
          const latest = (await records.get(runId)) ?? record;
          if (latest.status !== "ended") {
            const failure = failureFor(latest, status, policy);
            const evidence = await records.evidence(runId);
            const event: TaskEvent = {
              type: "run.failed",
              at: now(),
              runId,
              failure,
              ...(evidence.length > 0 ? { evidence } : {}),
            };
            if (await records.end(runId, "failed", event.at, event)) {
              logger.warn({ runId, taskId: record.taskId, code: failure.code }, "run failed");
            }
          }
          // A pod that cannot pull its image or be scheduled never finishes by itself: remove its
          // Job now instead of letting it hold quota until the deadline.
          if (
            status.state === "failed" &&
            (status.reason === "ImagePullBackOff" || status.reason === "Unschedulable")
          ) {
            await executor.cancel(runId);
          }
          await finalize(runId);
          return { kind: "done" };
        } else {
          const startedAt = Date.parse(record.startedAt ?? record.createdAt);
          const deadline = startedAt + record.timeoutSeconds * 1000 + (o.deadlineGraceMs ?? 60_000);
          if (Date.now() > deadline) {
            await executor.cancel(runId);
            const failure: TaskFailure = {
              code: "deadline_exceeded",
              message: `The run hit its time limit of ${describeDuration(record.timeoutSeconds)}.`,
            };
            await records.end(runId, "failed", now(), { type: "run.failed", at: now(), runId, failure });
            await finalize(runId);
            return { kind: "done" };
          }
        }
      } catch (error) {
        // Redis or the executor's backend is away: keep holding the run and try again.
        logger.warn({ runId, err: error }, "following run: transient error");
      }
      await sleep(pollMs, runId, signal);
    }
    return { kind: "release" };
  };

  const maxLaunchErrors = o.maxLaunchErrors ?? 5;

  /** A launch that failed: try again later, and fail the run after `maxLaunchErrors` tries. */
  const launchFailed = async (record: RunRecord, error: unknown): Promise<RunJobOutcome> => {
    const count = await records.noteLaunchError(record.runId);
    logger.error(
      { runId: record.runId, taskId: record.taskId, attempt: count, err: error },
      "agent launch failed",
    );
    await deps.slots.release(holderOf(record));
    if (count < maxLaunchErrors) return { kind: "retry_later", delayMs: (o.launchRetryMs ?? 5_000) * count };
    const failure: TaskFailure = {
      code: "launch_failed",
      message: `Baton could not start the agent (${count} tries); the worker's logs say why.`,
    };
    await records.end(record.runId, "failed", now(), {
      type: "run.failed",
      at: now(),
      runId: record.runId,
      failure,
    });
    await finalize(record.runId);
    return { kind: "done" };
  };

  const processRun = async (
    data: RunJobData,
    context: { enqueuedAt: number; signal: AbortSignal },
  ): Promise<RunJobOutcome> => {
    try {
      return await superviseRun(data, context);
    } catch (error) {
      if (context.signal.aborted) return { kind: "release" };
      // Redis or the executor's backend away: the run keeps its place and is tried again.
      logger.warn({ runId: data.runId, taskId: data.taskId, err: error }, "supervising run failed; retrying");
      return { kind: "retry_later", delayMs: o.launchRetryMs ?? 5_000 };
    }
  };

  const superviseRun = async (
    data: RunJobData,
    context: { enqueuedAt: number; signal: AbortSignal },
  ): Promise<RunJobOutcome> => {
    const { runId } = data;
    const record = await records.get(runId);
    if (!record) {
      logger.warn({ runId, taskId: data.taskId }, "queued run has no record; dropping it");
      return { kind: "done" };
    }
    if (record.status === "ended") {
      await finalize(runId);
      return { kind: "done" };
    }
    const task = await deps.store.get(record.taskId as TaskId);
    const info = task?.runs.find((r) => r.runId === runId);
    const wanted = info !== undefined && (info.status === "queued" || info.status === "running");
    if (!task || !wanted || record.cancelRequested) {
      logger.info({ runId, taskId: record.taskId }, "run no longer wanted; not launching it");
      await endCancelled(record);
      return { kind: "done" };
    }
    const holder = holderOf(record);
    const caps = {
      total: policy.limits.concurrentRuns,
      perRepo: policy.limits.perRepo,
      perUser: policy.limits.perUser,
    };
    const admitted = await deps.slots.acquire(holder, caps);
    // A run already running (re-attach) keeps going whatever the caps say now.
    if (!admitted && record.status === "queued")
      return { kind: "retry_later", delayMs: o.capRetryMs ?? 1_000 };
    if (!admitted) await deps.slots.heartbeat([holder]);

    if (record.status === "queued")
      metrics.queueWaitSeconds.observe(Math.max(0, Date.now() - context.enqueuedAt) / 1000);
    const timeoutSeconds = record.timeoutSeconds || runTimeoutSeconds(policy);
    const token = await deps.tokens.mint(runId, timeoutSeconds + 3600);
    let launched: "launched" | "already_launched";
    try {
      launched = await executor.launch({
        runId,
        taskId: record.taskId,
        phase: record.phase,
        attempt: record.attempt,
        repo: record.repo,
        runToken: token,
        image: policy.repos[record.repo]?.image ?? deps.agentImage,
        timeoutSeconds,
        runnerUrl: deps.runnerUrl,
      });
    } catch (error) {
      await deps.tokens.revoke(token).catch(() => undefined);
      return launchFailed(record, error);
    }
    // Re-attached: the agent holds the token of the first launch; this one is never used.
    if (launched === "already_launched") await deps.tokens.revoke(token);
    await records.markRunning(runId, now());
    await apply(record.taskId, { type: "run.started", at: now(), runId });
    logger.info(
      { runId, taskId: record.taskId, phase: record.phase, attempt: record.attempt, launched },
      "run supervised",
    );

    metrics.runsActive.inc();
    try {
      return await follow(runId, context.signal);
    } finally {
      metrics.runsActive.dec();
    }
  };

  // Last position told to each waiting run: only changes become task events.
  const reported = new Map<string, number>();
  const reportPositions = async () => {
    const positions = await deps.queue.waitingPositions();
    metrics.runsQueued.set(positions.length);
    const waiting = new Set(positions.map((p) => p.runId));
    for (const runId of reported.keys()) if (!waiting.has(runId)) reported.delete(runId);
    for (const { runId, taskId, position } of positions) {
      if (reported.get(runId) === position) continue;
      await apply(taskId, { type: "run.queued", at: now(), runId, position });
      reported.set(runId, position);
    }
  };

  const approvalTimeoutMs = policy.limits.approvalTimeoutHours * 3600 * 1000;
  const sweepApprovals = async () => {
    const tasks = await deps.store.listActive(5000);
    for (const task of tasks) {
      if (task.state !== "awaiting_approval") continue;
      const since = await awaitingSince(task);
      if (deps.clock.now().getTime() - since >= approvalTimeoutMs) {
        logger.info({ taskId: task.id }, "plan approval expired");
        await apply(task.id, { type: "approval.expired", at: now() });
      }
    }
  };
  const awaitingSince = async (task: Task): Promise<number> => {
    const planRun = [...task.runs].filter((r) => r.phase === "plan").sort((a, b) => b.launch - a.launch)[0];
    const record = planRun ? await records.get(planRun.runId) : undefined;
    const at = record?.endedAt ?? planRun?.endedAt ?? task.updatedAt;
    return Date.parse(at);
  };

  /** No orphan (a process or Job without a live run is stopped) and no lost run (every live run has a job). */
  const reconcile = async () => {
    for (const run of await executor.list()) {
      if (isEnded(run.status)) continue;
      const record = await records.get(run.runId);
      const task = record ? await deps.store.get(record.taskId as TaskId) : undefined;
      const info = task?.runs.find((r) => r.runId === run.runId);
      const live =
        record &&
        record.status !== "ended" &&
        !record.cancelRequested &&
        info &&
        (info.status === "queued" || info.status === "running");
      if (!live) {
        logger.warn({ runId: run.runId, taskId: run.taskId }, "orphan agent run: stopping it");
        await executor.cancel(run.runId);
        if (record && record.status !== "ended") await records.end(run.runId, "cancelled", now());
        if (record) await finalize(run.runId);
        continue;
      }
      await deps.queue.enqueue({ runId: run.runId, taskId: record.taskId });
    }
    for (const task of await deps.store.listActive(5000)) {
      for (const info of task.runs) {
        if (info.status !== "queued" && info.status !== "running") continue;
        const record = await records.get(info.runId);
        if (!record) continue; // never started by RunControl: its start_runs effect is still to come
        if (record.status === "ended") {
          if (!record.finalized || record.finalEvent) await finalize(info.runId);
          continue;
        }
        await deps.queue.enqueue({ runId: info.runId, taskId: task.id });
      }
    }
  };

  const every = (ms: number, what: string, fn: () => Promise<void>) => {
    let running = false;
    const timer = setInterval(() => {
      if (running || closed) return;
      running = true;
      fn()
        .catch((error: unknown) => logger.warn({ err: error }, `${what} failed`))
        .finally(() => {
          running = false;
        });
    }, ms);
    timer.unref();
    timers.push(timer);
  };

  return {
    async start() {
      await deps.queue.setGlobalConcurrency(policy.limits.concurrentRuns);
      try {
        await reconcile();
      } catch (error) {
        logger.error({ err: error }, "reconciliation on start failed; continuing");
      }
      stopWatch = executor.watch((run) => wakers.get(run.runId)?.());
      consumer = startRunConsumer({
        redisUrl: deps.redisUrl,
        prefix: deps.prefix,
        concurrency: policy.limits.concurrentRuns,
        logger,
        metrics,
        queue: deps.queue,
        process: processRun,
        ...(o.lockDurationMs !== undefined ? { lockDurationMs: o.lockDurationMs } : {}),
        ...(o.stalledIntervalMs !== undefined ? { stalledIntervalMs: o.stalledIntervalMs } : {}),
        ...(o.stallAfterMs !== undefined ? { stallAfterMs: o.stallAfterMs } : {}),
        ...(o.stallCheckMs !== undefined ? { stallCheckMs: o.stallCheckMs } : {}),
      });
      every(o.positionsEveryMs ?? 2_000, "queue position report", reportPositions);
      every(o.approvalSweepMs ?? 60_000, "approval expiry sweep", sweepApprovals);
      logger.info(
        { concurrentRuns: policy.limits.concurrentRuns, executor: executor.kind },
        "run supervisor started",
      );
    },

    async close(options = {}) {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearInterval(timer);
      stopWatch?.();
      await consumer?.close(options);
      logger.info({ handedOff: options.handOff ?? true }, "run supervisor stopped; runs keep running");
    },
  };
}
