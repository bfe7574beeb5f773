// The run supervisor through real Redis, the real queue and the local executor with a fake agent:
// concurrency caps, queue positions, and exactly-once launch when a worker dies mid-run.
import { describe, expect, test, afterEach } from "@jest/globals";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { testRedisUrl } from "../../support/redis.js";
import { createHarness, killLogged, waitFor, type Harness } from "./harness.js";

let harness: Harness | undefined;
let logFile = "";

const logLines = () =>
  existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean) : [];

async function finishedCount(h: Harness): Promise<number> {
  const metric = await h.metrics.runsFinished.get();
  return metric.values.find((v) => v.labels.phase === "plan" && v.labels.outcome === "plan")?.value ?? 0;
}

afterEach(async () => {
  killLogged(logLines());
  await harness?.close();
  harness = undefined;
});

describe("run supervisor", () => {
  test("with concurrentRuns 2, six tasks never run more than two at once and all finish", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl(), policy: { limits: { concurrentRuns: 2 } } });
    logFile = join(harness.dataDir, "agents.log");
    const tasks = [];
    for (let i = 0; i < 6; i++) tasks.push(await harness.startPlanTask({ holdMs: 700, log: logFile }));
    await harness.startSupervisor();

    for (const task of tasks) {
      const done = await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval", 60_000);
      expect(done.plan).toEqual({ summary: "the plan", steps: ["step one", "step two"] });
      expect(done.runs[0]?.status).toBe("succeeded");
    }

    const lines = logLines();
    const starts = lines.filter((l) => l.startsWith("start "));
    expect(starts).toHaveLength(6);
    expect(new Set(starts.map((l) => l.split(" ")[1])).size).toBe(6);
    // Overlap from the agents' own clocks: +1 at start, -1 at end.
    const marks = lines
      .map((l) => l.split(" "))
      .map(([kind, , at]) => ({
        delta: kind === "start" ? 1 : kind?.startsWith("end") ? -1 : 0,
        at: Number(at),
      }))
      .sort((a, b) => a.at - b.at || a.delta - b.delta);
    let running = 0;
    let peak = 0;
    for (const mark of marks) {
      running += mark.delta;
      peak = Math.max(peak, running);
    }
    expect(peak).toBe(2);

    // Waiting tasks were told their place in the queue.
    const positions = harness.notified
      .flatMap((n) => n.task.runs.map((r) => r.queuePosition))
      .filter((p) => p !== undefined);
    expect(positions.length).toBeGreaterThan(0);
    expect(Math.max(...(positions as number[]))).toBeGreaterThanOrEqual(2);
    // Thread context was read from Slack once per run, not per call.
    expect(harness.threadReads).toBe(6);
    // Every run ends finalized (final event applied, tokens revoked, slot freed), and is counted once.
    for (const task of tasks) {
      const record = await waitFor("the run to be finalized", async () => {
        const r = await harness!.records.get(task.runs[0]!.runId);
        return r?.finalized ? r : undefined;
      });
      expect(record).toMatchObject({ status: "ended", outcome: "plan" });
    }
    expect(await finishedCount(harness)).toBe(6);
  }, 90_000);

  test("a worker killed mid-run is replaced by one that re-attaches: one process, one result", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ holdMs: 4_000, log: logFile });
    const first = await harness.startSupervisor();
    await waitFor("the agent to start", () => logLines().some((l) => l.startsWith("start ")) || undefined);
    // Like a crash: the first worker stops without handing anything back.
    await first.close({ handOff: false });
    const second = await harness.startSupervisor();

    const done = await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval", 30_000);
    expect(done.runs).toHaveLength(1);
    expect(done.runs[0]).toMatchObject({ status: "succeeded" });
    const record = await waitFor("the run to be finalized", async () => {
      const r = await harness!.records.get(task.runs[0]!.runId);
      return r?.finalized ? r : undefined;
    });
    expect(record.outcome).toBe("plan");
    const lines = logLines();
    expect(lines.filter((l) => l.startsWith("start "))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith("end-"))).toEqual([expect.stringMatching(/^end-200 /)]);
    expect(await finishedCount(harness)).toBe(1);
    await second.close();
  }, 60_000);
});
