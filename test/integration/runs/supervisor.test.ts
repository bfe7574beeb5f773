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

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("run supervisor: caps, shutdown, cancel, deadline, expiry", () => {
  test("perRepo caps runs of one repository while another repository's runs proceed", async () => {
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      policy: { limits: { concurrentRuns: 10, perRepo: 1 } },
    });
    logFile = join(harness.dataDir, "agents.log");
    const web = [];
    for (let i = 0; i < 3; i++)
      web.push(await harness.startPlanTask({ holdMs: 500, log: logFile }, { repo: "acme/web" }));
    const api = await harness.startPlanTask({ holdMs: 1_200, log: logFile }, { repo: "acme/api" });
    await harness.startSupervisor();
    for (const task of [...web, api])
      await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval", 60_000);

    const webRuns = new Set(web.map((t) => t.runs[0]!.runId));
    const peak = (filter: (runId: string) => boolean) => {
      const marks = logLines()
        .map((l) => l.split(" "))
        .filter(([, runId]) => filter(runId!))
        .map(([kind, , at]) => ({
          delta: kind === "start" ? 1 : kind?.startsWith("end") ? -1 : 0,
          at: Number(at),
        }))
        .sort((a, b) => a.at - b.at || a.delta - b.delta);
      let running = 0;
      let max = 0;
      for (const mark of marks) max = Math.max(max, (running += mark.delta));
      return max;
    };
    expect(peak((runId) => webRuns.has(runId))).toBe(1);
    expect(peak(() => true)).toBe(2);
  }, 90_000);

  test("graceful close hands held runs to another worker at once; the run is not launched again", async () => {
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      supervisor: { lockDurationMs: 60_000, stalledIntervalMs: 60_000 },
    });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ holdMs: 1_500, log: logFile });
    const first = await harness.startSupervisor();
    await waitFor("the agent to start", () => logLines().some((l) => l.startsWith("start ")) || undefined);
    await first.close();
    await harness.startSupervisor();
    // Well before the 60 s lock could expire: the hand-off, not the stalled check, moved the run.
    await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval", 15_000);
    expect(logLines().filter((l) => l.startsWith("start "))).toHaveLength(1);
  }, 30_000);

  test("cancelling a task stops its running agent and ends the run as cancelled", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ holdMs: 30_000, log: logFile });
    await harness.startSupervisor();
    const start = await waitFor("the agent to start", () => logLines().find((l) => l.startsWith("start ")));
    await harness.apply(task.id, {
      type: "cancel",
      at: new Date().toISOString(),
      actor: { userId: "U0REQ", approver: false, admin: false },
    });
    const runId = task.runs[0]!.runId;
    const record = await waitFor("the run to end", async () => {
      const r = await harness!.records.get(runId);
      return r?.finalized ? r : undefined;
    });
    expect(record.outcome).toBe("cancelled");
    const pid = Number(start.split(" ")[3]);
    await waitFor("the agent process to exit", () => !isAlive(pid) || undefined);
    const stored = await harness.store.get(task.id);
    expect(stored).toMatchObject({ state: "cancelled" });
    expect(stored?.runs[0]?.status).toBe("cancelled");
  }, 30_000);

  test("a run over its time limit is stopped and fails with deadline_exceeded", async () => {
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      policy: { limits: { runTimeoutMinutes: 0.02 } },
    });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ holdMs: 30_000, log: logFile });
    await harness.startSupervisor();
    const failed = await harness.waitForTask(task.id, (t) => t.state === "failed", 20_000);
    expect(failed.failure).toMatchObject({
      code: "deadline_exceeded",
      message: "The run hit its time limit of 1 second.",
    });
    const start = logLines().find((l) => l.startsWith("start "));
    await waitFor("the agent process to exit", () => !isAlive(Number(start!.split(" ")[3])) || undefined);
  }, 30_000);

  test("on start, an agent whose run was cancelled while no worker watched is stopped (no orphan)", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ holdMs: 60_000, log: logFile });
    const first = await harness.startSupervisor();
    const start = await waitFor("the agent to start", () => logLines().find((l) => l.startsWith("start ")));
    await first.close({ handOff: false });
    // The bot side cancels the run while no worker is alive.
    await harness.runControl.cancel((await harness.store.get(task.id))!, [task.runs[0]!.runId]);
    await harness.startSupervisor();
    const pid = Number(start.split(" ")[3]);
    await waitFor("the orphan to be stopped", () => !isAlive(pid) || undefined, 15_000);
    const record = await harness.records.get(task.runs[0]!.runId);
    expect(record).toMatchObject({ status: "ended", outcome: "cancelled" });
  }, 30_000);

  test("a plan left unapproved past approvalTimeoutHours expires", async () => {
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      policy: { limits: { approvalTimeoutHours: 0.0005 } },
      supervisor: { approvalSweepMs: 100 },
    });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ log: logFile });
    await harness.startSupervisor();
    await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval");
    const expired = await harness.waitForTask(task.id, (t) => t.state === "expired", 15_000);
    expect(expired.plan?.summary).toBe("the plan");
  }, 30_000);
});
