// The run queue on BullMQ: one job per agent run, job id = run id, so enqueueing a run twice is a
// no-op and a run is supervised by one worker at a time. A worker holds the job (BullMQ lock) for as
// long as it supervises the run; when a worker dies its lock expires, BullMQ's stalled check puts
// the job back, and another worker re-attaches to the same Job or process (the Executor's launch is
// idempotent). Also: a watchdog for BullMQ's silent stall after long Redis outages.
import { DelayedError, Queue, WaitingError, Worker, type Job } from "bullmq";
import type { Logger } from "../../shared/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { connectRedis, type Redis } from "../redis/connection.js";

export const RUN_QUEUE_NAME = "runs";

export interface RunJobData {
  runId: string;
  taskId: string;
}

/** What the processor asks the queue to do with the job. */
export type RunJobOutcome =
  | { kind: "done" }
  /** A concurrency cap is full: try again later (the job keeps its place by enqueue time). */
  | { kind: "retry_later"; delayMs: number }
  /** Hand the run to another worker now (graceful shutdown); the run keeps running. */
  | { kind: "release" };

export interface RunJobContext {
  /** Milliseconds the job waited since it was enqueued (first time only meaningful). */
  enqueuedAt: number;
  /** Set when this worker stops (close) or loses the job. */
  signal: AbortSignal;
}

export interface RunQueueOptions {
  redisUrl: string;
  /** Key prefix, e.g. `baton:`; BullMQ keys go under `<prefix>bull:runs:…`. */
  prefix: string;
  logger: Logger;
}

export interface RunQueue {
  /**
   * Adds the run's job unless a live job with that id exists (idempotent). A finished job with the
   * same id is replaced: the caller has checked the run itself has not ended.
   */
  enqueue(data: RunJobData): Promise<void>;
  /** Removes the job if it is waiting (not held by a worker); true when removed. */
  removeIfWaiting(runId: string): Promise<boolean>;
  /** 1-based positions of runs waiting for a slot, in enqueue order. */
  waitingPositions(): Promise<Array<{ runId: string; taskId: string; position: number }>>;
  /** BullMQ state of the run's job, or undefined when there is none. */
  jobState(runId: string): Promise<string | undefined>;
  counts(): Promise<{ waiting: number; active: number; delayed: number }>;
  /** Install-wide cap on jobs held by workers (BullMQ global concurrency). */
  setGlobalConcurrency(n: number): Promise<void>;
  close(): Promise<void>;
}

export function createRunQueue(options: RunQueueOptions): RunQueue {
  // A producer fails fast while Redis is down (the caller answers 5xx and Slack retries); workers wait.
  const connection = connectRedis(options.redisUrl, { connectionName: "baton-run-queue" });
  const queue = new Queue<RunJobData>(RUN_QUEUE_NAME, {
    connection,
    prefix: `${options.prefix}bull`,
    defaultJobOptions: {
      // Unexpected processor errors retry: supervising a run is idempotent.
      attempts: 20,
      backoff: { type: "fixed", delay: 5000 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
  queue.on("error", (error) => options.logger.warn({ err: error }, "run queue connection error"));

  return {
    async enqueue(data) {
      const existing = await queue.getJob(data.runId);
      if (existing) {
        const state = await existing.getState();
        if (state !== "completed" && state !== "failed") return;
        await existing.remove();
      }
      await queue.add("run", data, { jobId: data.runId });
    },
    async removeIfWaiting(runId) {
      const job = await queue.getJob(runId);
      if (!job) return false;
      const state = await job.getState();
      if (state !== "waiting" && state !== "delayed" && state !== "prioritized") return false;
      // remove() refuses a job locked by a worker: then the supervisor handles the cancel.
      return (await queue.remove(runId)) === 1;
    },
    async waitingPositions() {
      const jobs = await queue.getJobs(["waiting", "prioritized", "delayed"], 0, 9999);
      const sorted = jobs
        .filter((j): j is Job<RunJobData> => j !== undefined && j !== null && typeof j.id === "string")
        .sort((a, b) => a.timestamp - b.timestamp || String(a.id).localeCompare(String(b.id)));
      return sorted.map((job, index) => ({
        runId: job.id as string,
        taskId: job.data.taskId,
        position: index + 1,
      }));
    },
    async jobState(runId) {
      const job = await queue.getJob(runId);
      if (!job) return undefined;
      const state = await job.getState();
      return state === "unknown" ? undefined : state;
    },
    async counts() {
      const c = await queue.getJobCounts("waiting", "prioritized", "active", "delayed");
      return {
        waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
        active: c.active ?? 0,
        delayed: c.delayed ?? 0,
      };
    },
    async setGlobalConcurrency(n) {
      await queue.setGlobalConcurrency(n);
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

export interface RunConsumerOptions {
  redisUrl: string;
  prefix: string;
  concurrency: number;
  logger: Logger;
  metrics: Metrics;
  process: (data: RunJobData, context: RunJobContext) => Promise<RunJobOutcome>;
  /** How long a worker's hold on a run lasts without renewal (a dead worker's runs move after it). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Watchdog: "waiting but nothing active" for this long counts as a stall. */
  stallAfterMs?: number;
  stallCheckMs?: number;
  /** Queue counts for the watchdog (the consumer's own queue handle). */
  queue: RunQueue;
}

export interface RunConsumer {
  /** Stops taking work. `handOff` (default): active runs go back to the queue for another worker now. */
  close(options?: { handOff?: boolean }): Promise<void>;
  /** Replaces the BullMQ worker (fresh connections); used by the stall watchdog. */
  recreate(): Promise<void>;
  activeCount(): number;
}

type Held = { controller: AbortController; mode?: "handoff" | "abandon" | "superseded" };

export function startRunConsumer(options: RunConsumerOptions): RunConsumer {
  const held = new Map<string, Held>();
  let closing = false;
  let worker: Worker<RunJobData> | undefined;
  let connection: Redis | undefined;

  const processor = async (job: Job<RunJobData>, token?: string): Promise<void> => {
    const runId = job.data.runId;
    // A stopping worker hands its runs back to the queue; a fetch already in flight when the close
    // began can bring one straight back here. Hand it on again rather than follow it until it ends
    // (which would hold the shutdown for the whole run).
    if (closing) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    // A job can reach this worker again while an older hold is alive (its lock expired in a Redis
    // outage and the stalled check re-queued it): the old hold gives way to the new one.
    const previous = held.get(runId);
    if (previous) {
      previous.mode = "superseded";
      previous.controller.abort();
    }
    const entry: Held = { controller: new AbortController() };
    held.set(runId, entry);
    try {
      const outcome = await options.process(job.data, {
        enqueuedAt: job.timestamp,
        signal: entry.controller.signal,
      });
      // Abandoned (crash-like close): leave the job locked, as a dead worker would.
      if (entry.mode === "abandon") await new Promise<never>(() => undefined);
      // Superseded by a newer hold of the same job: the newer one owns it now.
      if (entry.mode === "superseded") return;
      if (outcome.kind === "retry_later") {
        await job.moveToDelayed(Date.now() + outcome.delayMs, token);
        throw new DelayedError();
      }
      if (outcome.kind === "release" || entry.mode === "handoff") {
        await job.moveToWait(token);
        throw new WaitingError();
      }
    } finally {
      if (held.get(runId) === entry) held.delete(runId);
    }
  };

  const create = () => {
    connection = connectRedis(options.redisUrl, { blocking: true, connectionName: "baton-run-worker" });
    worker = new Worker<RunJobData>(RUN_QUEUE_NAME, processor, {
      connection,
      prefix: `${options.prefix}bull`,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      stalledInterval: options.stalledIntervalMs ?? 15_000,
      // A stalled run job is a run whose worker vanished: always give it to another worker.
      maxStalledCount: 1_000_000,
    });
    worker.on("error", (error) => options.logger.warn({ err: error }, "run worker error"));
    worker.on("failed", (job, error) => {
      if (job)
        options.logger.error(
          { runId: job.data.runId, taskId: job.data.taskId, err: error },
          "run job failed",
        );
    });
  };

  const closeWorker = async (force: boolean) => {
    const w = worker;
    const c = connection;
    worker = undefined;
    connection = undefined;
    if (w)
      await w
        .close(force)
        .catch((error: unknown) => options.logger.warn({ err: error }, "closing run worker"));
    c?.disconnect();
  };

  // Watchdog for BullMQ's known silent stall after a long Redis outage: jobs wait, nobody takes them.
  const stallAfterMs = options.stallAfterMs ?? 60_000;
  let waitingSince: number | undefined;
  const watchdog = setInterval(() => {
    void (async () => {
      if (closing) return;
      try {
        const counts = await options.queue.counts();
        const idleHere = held.size < options.concurrency;
        if (counts.waiting > 0 && counts.active === 0 && idleHere) {
          waitingSince ??= Date.now();
          if (Date.now() - waitingSince >= stallAfterMs) {
            options.metrics.queueStalls.inc();
            options.logger.error(
              { waiting: counts.waiting, stalledForMs: Date.now() - waitingSince },
              "run queue stalled: runs are waiting but none is active; recreating the worker",
            );
            waitingSince = undefined;
            await recreate();
          }
        } else {
          waitingSince = undefined;
        }
      } catch {
        // Redis unreachable: nothing to judge until it is back.
      }
    })();
  }, options.stallCheckMs ?? 5_000);
  watchdog.unref();

  const recreate = async () => {
    if (closing) return;
    // Runs held by the old worker keep going: their jobs come back through the stalled check and
    // this process re-attaches to them (launch is idempotent).
    await closeWorker(true);
    if (!closing) create();
  };

  create();

  return {
    async close(closeOptions = {}) {
      if (closing) return;
      closing = true;
      clearInterval(watchdog);
      const handOff = closeOptions.handOff ?? true;
      if (handOff) {
        // Stop fetching, then let every hold move its job back to the queue.
        for (const entry of held.values()) {
          entry.mode = "handoff";
          entry.controller.abort();
        }
        await closeWorker(false);
      } else {
        // Like a crash: leave the jobs locked; their locks expire and another worker re-attaches.
        for (const entry of held.values()) {
          entry.mode = "abandon";
          entry.controller.abort();
        }
        await closeWorker(true);
      }
    },
    recreate,
    activeCount: () => held.size,
  };
}
