// Runs end to end with the fake agent: the model gateway's run budget failing the task with its
// reason, tokens dying with their run, and a Redis restart in the middle of a run losing nothing.
import { describe, expect, test, afterEach } from "@jest/globals";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startRedisServer, type TestRedis } from "../../support/redis-server.js";
import { testRedisUrl } from "../../support/redis.js";
import { createHarness, killLogged, MODEL, UPSTREAM_KEY, waitFor, type Harness } from "./harness.js";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream.js";

let harness: Harness | undefined;
let upstream: FakeUpstream | undefined;
let redisServer: TestRedis | undefined;
let logFile = "";

const logLines = () =>
  existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean) : [];

afterEach(async () => {
  killLogged(logLines());
  await harness?.close();
  await upstream?.close();
  await redisServer?.close();
  harness = undefined;
  upstream = undefined;
  redisServer = undefined;
});

describe("runs under faults", () => {
  test("the gateway meters usage, forces the model, and refuses a run over its token budget: the task fails with that reason", async () => {
    upstream = await startFakeUpstream({ prompt: 600, completion: 100, cached: 100 });
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      upstreamUrl: upstream.url,
      policy: {
        limits: { runTokenBudget: 1000 },
        models: { prices: { [MODEL]: { inputPerMTok: 1, outputPerMTok: 10 } } },
      },
    });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({
      log: logFile,
      llm: [{ stream: true }, { stream: false }, { stream: false }],
    });
    await harness.startSupervisor();

    const failed = await harness.waitForTask(task.id, (t) => t.state === "failed");
    expect(failed.failure).toMatchObject({
      code: "budget_exhausted",
      message: expect.stringContaining("token budget (1,000 tokens)"),
    });
    // Two calls went through (700 tokens, then 1400 ≥ 1000); the third was refused before upstream.
    expect(upstream.requests).toHaveLength(2);
    for (const request of upstream.requests) {
      expect(request.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      expect(request.body.model).toBe(MODEL);
    }
    expect(upstream.requests[0]!.body.stream_options).toEqual({ include_usage: true });
    const cost = 2 * ((500 * 1 + 100 * 1 + 100 * 10) / 1_000_000);
    expect(await harness.usage.taskTotals(task.id)).toEqual({
      promptTokens: 1200,
      completionTokens: 200,
      cachedTokens: 200,
      costUsd: cost,
    });
    // The task saw its usage before it failed (coalesced run.progress).
    expect(failed.progress.usage).toEqual({
      promptTokens: 1200,
      completionTokens: 200,
      cachedTokens: 200,
      costUsd: cost,
    });
    const tokens = await harness.metrics.modelTokens.get();
    expect(tokens.values.find((v) => v.labels.kind === "prompt")?.value).toBe(1200);
  });

  test("a run token is refused once its run has ended", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    logFile = join(harness.dataDir, "agents.log");
    const tokenFile = join(harness.dataDir, "tokens.txt");
    const task = await harness.startPlanTask({ log: logFile, writeToken: tokenFile });
    await harness.startSupervisor();
    await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval");
    await waitFor(
      "the run to be finalized",
      async () => (await harness!.records.get(task.runs[0]!.runId))?.finalized || undefined,
    );
    const [runId, token] = readFileSync(tokenFile, "utf8").trim().split(" ");
    expect(runId).toBe(task.runs[0]!.runId);
    // The agent got a well-formed token, through a private file (never in an environment).
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const agentOutput = readFileSync(join(harness.dataDir, "logs", `${runId}.log`), "utf8");
    expect(agentOutput).toContain("env=BATON_RUNNER_URL,BATON_RUN_TOKEN_FILE,HOME,LANG,PATH");
    // The file is gone once the agent read it.
    expect(readdirSync(join(harness.dataDir, "logs")).filter((name) => name.includes("-token-"))).toEqual([]);
    for (const [method, path] of [
      ["GET", "/run"],
      ["POST", "/events"],
      ["POST", "/result"],
    ] as const) {
      const res = await fetch(`${harness.runnerUrl}/runner/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        ...(method === "POST" ? { body: JSON.stringify({ events: [] }) } : {}),
      });
      expect(res.status).toBe(401);
    }
  });

  test("Redis restarted mid-run loses nothing: the run finishes and its result lands", async () => {
    redisServer = await startRedisServer();
    harness = await createHarness({ redisUrl: redisServer.url });
    logFile = join(harness.dataDir, "agents.log");
    const task = await harness.startPlanTask({ holdMs: 3_000, log: logFile });
    await harness.startSupervisor();
    await waitFor("the agent to start", () => logLines().some((l) => l.startsWith("start ")) || undefined);

    await redisServer.stop();
    // The outage's length is the scenario, not a wait for a condition.
    await new Promise((r) => setTimeout(r, 1_500));
    await redisServer.start();

    const done = await harness.waitForTask(task.id, (t) => t.state === "awaiting_approval", 45_000);
    expect(done.plan?.steps).toEqual(["step one", "step two"]);
    await waitFor(
      "the run to be finalized",
      async () => (await harness!.records.get(task.runs[0]!.runId))?.finalized || undefined,
      30_000,
    );
    expect(logLines().filter((l) => l.startsWith("start "))).toHaveLength(1);
    expect(logLines().filter((l) => l.startsWith("end-"))).toEqual([expect.stringMatching(/^end-200 /)]);

    // And the worker takes new work after the restart.
    const next = await harness.startPlanTask({ log: logFile });
    await harness.waitForTask(next.id, (t) => t.state === "awaiting_approval", 30_000);
  }, 90_000);
});
