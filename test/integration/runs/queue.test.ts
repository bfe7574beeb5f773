// The BullMQ run queue on real Redis: idempotent enqueue by run id, and the stall watchdog that
// alerts and recreates the worker when runs wait while nothing is active.
import { describe, expect, test } from "@jest/globals";
import { createMetrics } from "../../../src/adapters/metrics/metrics.js";
import { createRunQueue, startRunConsumer, type RunQueue } from "../../../src/adapters/queue/run-queue.js";
import { silentLogger } from "../../../src/shared/logger.js";
import { testRedisUrl, uniquePrefix } from "../../support/redis.js";
import { waitFor } from "./harness.js";

describe("run queue", () => {
  test("enqueueing a run twice makes one job; a finished job is replaced only by a new enqueue", async () => {
    const prefix = uniquePrefix("queue");
    const queue = createRunQueue({ redisUrl: testRedisUrl(), prefix, logger: silentLogger() });
    const processed: string[] = [];
    const consumer = startRunConsumer({
      redisUrl: testRedisUrl(),
      prefix,
      concurrency: 2,
      logger: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      queue,
      process: async (data) => {
        processed.push(data.runId);
        return { kind: "done" };
      },
    });
    try {
      await queue.enqueue({ runId: "t-aaaaaa-p1-a1", taskId: "T-AAAAAA" });
      await queue.enqueue({ runId: "t-aaaaaa-p1-a1", taskId: "T-AAAAAA" });
      await waitFor(
        "the job to complete",
        async () => (await queue.jobState("t-aaaaaa-p1-a1")) === "completed" || undefined,
      );
      expect(processed).toEqual(["t-aaaaaa-p1-a1"]);
      await queue.enqueue({ runId: "t-aaaaaa-p1-a1", taskId: "T-AAAAAA" });
      await waitFor("the job to run again", () => processed.length === 2 || undefined);
    } finally {
      await consumer.close();
      await queue.close();
    }
  });

  test("runs waiting while nothing is active for too long raise a stall alert and a fresh worker", async () => {
    const prefix = uniquePrefix("stall");
    const queue = createRunQueue({ redisUrl: testRedisUrl(), prefix, logger: silentLogger() });
    const metrics = createMetrics({ defaultMetrics: false });
    // What the watchdog sees: the picture of BullMQ's silent stall (jobs wait, none is taken).
    const stalledView: RunQueue = { ...queue, counts: async () => ({ waiting: 3, active: 0, delayed: 0 }) };
    const processed: string[] = [];
    const consumer = startRunConsumer({
      redisUrl: testRedisUrl(),
      prefix,
      concurrency: 1,
      logger: silentLogger(),
      metrics,
      queue: stalledView,
      stallAfterMs: 200,
      stallCheckMs: 50,
      process: async (data) => {
        processed.push(data.runId);
        return { kind: "done" };
      },
    });
    try {
      await waitFor(
        "a stall alert",
        async () => ((await metrics.queueStalls.get()).values[0]?.value ?? 0) >= 1 || undefined,
        5_000,
      );
      // The recreated worker takes work.
      await queue.enqueue({ runId: "t-bbbbbb-p1-a1", taskId: "T-BBBBBB" });
      await waitFor("the job to be processed", () => processed.includes("t-bbbbbb-p1-a1") || undefined);
    } finally {
      await consumer.close();
      await queue.close();
    }
  });
});
