// The runner API over loopback HTTP with real Redis: tokens, run spec, events, bundle, result, the
// read-only git proxy (real git against `git http-backend`) and the channel budget of the gateway.
import { describe, expect, test, afterEach } from "@jest/globals";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunSpec } from "../../../src/shared/run-spec.js";
import { MAX_BUNDLE_BYTES } from "../../../src/shared/runner-api.js";
import { testRedisUrl } from "../../support/redis.js";
import { createHarness, MODEL, UPSTREAM_KEY, type Harness } from "./harness.js";
import { startFakeUpstream } from "./fake-upstream.js";
import { gitAsync, makeBareRepo, startGitServer, type GitServer } from "./git-server.js";

let harness: Harness | undefined;
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  await harness?.close();
  harness = undefined;
});

const call = (h: Harness, path: string, token: string | undefined, init: RequestInit = {}) =>
  fetch(`${h.runnerUrl}/runner/v1${path}`, {
    ...init,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body && typeof init.body === "string" ? { "content-type": "application/json" } : {}),
    },
  });

const post = (h: Harness, path: string, token: string, body: unknown) =>
  call(h, path, token, { method: "POST", body: JSON.stringify(body) });

describe("runner API", () => {
  test("a token reaches only its own run; missing or unknown tokens get 401", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    const a = await harness.startPlanTask({ name: "a" }, { repo: "acme/web" });
    const b = await harness.startPlanTask({ name: "b" }, { repo: "acme/api" });
    const runA = a.runs[0]!.runId;
    const tokenA = await harness.tokens.mint(runA, 3600);
    const tokenB = await harness.tokens.mint(b.runs[0]!.runId, 3600);

    expect((await call(harness, "/run", undefined)).status).toBe(401);
    expect((await call(harness, "/run", "x".repeat(43))).status).toBe(401);

    const specA = RunSpec.parse(await (await call(harness, "/run", tokenA)).json());
    expect(specA).toMatchObject({
      runId: runA,
      taskId: a.id,
      phase: "plan",
      attempt: 1,
      repository: {
        fullName: "acme/web",
        cloneUrl: `${harness.runnerUrl}/runner/v1/git/acme/web.git`,
        baseBranch: "main",
        headBranch: `baton/${a.id.toLowerCase()}`,
        headExists: false,
      },
      request: { requester: "Requester" },
      model: "baton-test-model",
    });
    // Thread context: bounded, capped, authors named, read once per run.
    expect(specA.thread.map((m) => m.author)).toEqual(["U0REQ", "bot:B0ALERT"]);
    expect(specA.thread[1]!.text.length).toBeLessThanOrEqual(4_001);
    await call(harness, "/run", tokenA);
    expect(harness.threadReads).toBe(1);

    // Token A is useless for run B's repository.
    const refs = await call(harness, "/git/acme/api.git/info/refs?service=git-upload-pack", tokenA);
    expect(refs.status).toBe(403);
    // And token B sees B, not A.
    expect(((await (await call(harness, "/run", tokenB)).json()) as { runId: string }).runId).toBe(
      b.runs[0]!.runId,
    );

    await harness.tokens.revokeAll(runA);
    expect((await call(harness, "/run", tokenA)).status).toBe(401);
  });

  test("events are idempotent by seq; the answer carries cancel and relayed messages once", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    const task = await harness.startPlanTask({});
    const runId = task.runs[0]!.runId;
    const token = await harness.tokens.mint(runId, 3600);
    const batch = {
      events: [
        { seq: 0, type: "run.started" },
        {
          seq: 1,
          type: "command.finished",
          argv: ["npm", "test"],
          exitCode: 1,
          durationMs: 30,
          outputTail: "FAIL",
        },
        { seq: 2, type: "plan.updated", steps: [{ step: "look", status: "in_progress" }] },
      ],
    };
    await harness.runControl.relay(task, [runId], "also check the docs", "U0OTHER");
    const first = await post(harness, "/events", token, batch);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({
      acceptedSeq: 2,
      cancelled: false,
      messages: [{ author: "U0OTHER", text: "also check the docs", ts: expect.any(String) }],
    });
    const again = await post(harness, "/events", token, batch);
    expect(await again.json()).toEqual({ acceptedSeq: 2, cancelled: false, messages: [] });
    expect(await harness.records.evidence(runId)).toEqual([
      { argv: ["npm", "test"], exitCode: 1, durationMs: 30 },
    ]);

    const stored = await harness.store.get(task.id);
    expect(stored?.runs[0]?.status).toBe("running");
    expect(stored?.progress.steps).toEqual([{ step: "look", status: "in_progress" }]);
    expect(stored?.progress.lastCommand).toEqual({ argv: ["npm", "test"], exitCode: 1, durationMs: 30 });

    expect((await post(harness, "/events", token, { events: [{ seq: 3, type: "nope" }] })).status).toBe(400);

    await harness.runControl.cancel(task, [runId]);
    const cancelled = await post(harness, "/events", token, {
      events: [{ seq: 3, type: "message", text: "hi" }],
    });
    expect(await cancelled.json()).toMatchObject({ acceptedSeq: 3, cancelled: true });
  });

  test("bundle: size-limited; a changes result needs it; evidence is the runner's record", async () => {
    harness = await createHarness({ redisUrl: testRedisUrl() });
    const plan = await harness.startPlanTask({});
    const planToken = await harness.tokens.mint(plan.runs[0]!.runId, 3600);
    expect(
      (await call(harness, "/bundle", planToken, { method: "PUT", body: Buffer.from("x") })).status,
    ).toBe(409);

    const task = await harness.startImplementTask({});
    const runId = task.runs[0]!.runId;
    const token = await harness.tokens.mint(runId, 3600);
    const tooBig = await call(harness, "/bundle", token, {
      method: "PUT",
      body: Buffer.alloc(MAX_BUNDLE_BYTES + 1),
    });
    expect(tooBig.status).toBe(413);

    await post(harness, "/events", token, {
      events: [{ seq: 0, type: "command.finished", argv: ["npm", "test"], exitCode: 1, durationMs: 5 }],
    });
    const changes = {
      outcome: "changes",
      summary: "fixed it",
      headSha: "a".repeat(40),
      filesChanged: ["src/a.ts"],
      // The agent claims its tests passed; the runner saw them fail.
      evidence: [{ argv: ["npm", "test"], exitCode: 0, durationMs: 5 }],
    };
    const early = await post(harness, "/result", token, changes);
    expect(early.status).toBe(409);

    const bundle = Buffer.from("# v2 git bundle\nfake\n");
    expect((await call(harness, "/bundle", token, { method: "PUT", body: bundle })).status).toBe(200);
    expect(
      (await post(harness, "/result", token, { ...changes, outcome: "plan", steps: ["x"] })).status,
    ).toBe(400);
    const result = await post(harness, "/result", token, changes);
    expect(result.status).toBe(200);

    const stored = await harness.store.get(task.id);
    expect(stored?.attemptResults).toEqual([
      expect.objectContaining({
        attempt: 1,
        runId,
        outcome: "changes",
        headSha: "a".repeat(40),
        evidence: [{ argv: ["npm", "test"], exitCode: 1, durationMs: 5 }],
        testsPassed: false,
      }),
    ]);
    expect(harness.publishCalls).toEqual([{ taskId: task.id, attempt: 1, runId }]);
    expect(await harness.records.get(runId)).toMatchObject({ status: "ended", outcome: "changes" });
    // A retried result (lost answer) is accepted again and changes nothing.
    expect((await post(harness, "/result", token, changes)).status).toBe(200);
    expect(harness.publishCalls).toHaveLength(1);
  });

  test("git proxy: a run token clones the run's repository through Baton's credential; pushes are refused", async () => {
    const root = mkdtempSync(join(tmpdir(), "baton-git-"));
    const home = join(root, "home");
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const upstreamRoot = join(root, "upstream");
    makeBareRepo(upstreamRoot, "acme/web", home);
    const upstream: GitServer = await startGitServer(upstreamRoot, "Bearer upstream-credential");
    cleanups.push(() => upstream.close());
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      gitHost: {
        gitRemote: async (repo) => ({
          url: `${upstream.url}/${repo}.git`,
          authorization: upstream.authorization,
        }),
        repoInfo: async (repo) => ({ fullName: repo, defaultBranch: "main", private: true }),
      },
    });
    const task = await harness.startPlanTask({});
    const token = await harness.tokens.mint(task.runs[0]!.runId, 3600);
    const remote = (secret: string) =>
      `${harness!.runnerUrl.replace("http://", `http://agent:${secret}@`)}/runner/v1/git/acme/web.git`;

    const clone = await gitAsync(["clone", "-q", remote(token), join(root, "clone")], root, home);
    expect(clone).toMatchObject({ status: 0 });
    expect(readFileSync(join(root, "clone", "README.md"), "utf8")).toBe("hello from upstream\n");
    expect((await gitAsync(["fetch", "-q", "origin"], join(root, "clone"), home)).status).toBe(0);

    const seenBefore = upstream.seen.length;
    const push = await gitAsync(
      ["push", "-q", "origin", "HEAD:refs/heads/baton/evil"],
      join(root, "clone"),
      home,
    );
    expect(push.status).not.toBe(0);
    expect(push.stderr).toMatch(/403/);
    // The push never reached upstream, and upstream has no such branch.
    expect(upstream.seen.slice(seenBefore).some((line) => line.includes("receive-pack"))).toBe(false);
    expect((await gitAsync(["ls-remote", remote(token)], root, home)).stdout).not.toMatch(/baton\/evil/);

    const bad = await gitAsync(
      ["clone", "-q", remote("not-a-valid-token-at-all-000000000000000000"), join(root, "bad")],
      root,
      home,
    );
    expect(bad.status).not.toBe(0);
  });

  test("gateway: a channel's spent daily budget refuses calls with an OpenAI-style 429", async () => {
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      policy: { channels: { C0CHAN: { budgetUsdPerDay: 1 } } },
    });
    const task = await harness.startPlanTask({});
    const runId = task.runs[0]!.runId;
    const token = await harness.tokens.mint(runId, 3600);
    await harness.usage.record({
      runId: "other-run",
      taskId: "T-OTHER1",
      channelId: "C0CHAN",
      userId: "U0REQ",
      promptTokens: 1,
      completionTokens: 1,
      cachedTokens: 0,
      costUsd: 1.5,
      at: new Date(),
    });
    const res = await post(harness, "/llm/v1/chat/completions", token, { model: "x", messages: [] });
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({
      error: {
        type: "budget_exhausted",
        code: "budget_exhausted",
        param: null,
        message: expect.stringContaining("daily model budget ($1)"),
      },
    });
    expect((await harness.records.get(runId))?.budgetExhausted).toBe("channel");
  });

  test("gateway: streams pass through intact, the Responses API is metered too, the agent's token never goes upstream", async () => {
    const upstream = await startFakeUpstream({ prompt: 300, completion: 50, cached: 20 });
    cleanups.push(() => upstream.close());
    harness = await createHarness({
      redisUrl: testRedisUrl(),
      upstreamUrl: upstream.url,
      policy: {
        models: { prices: { [MODEL]: { inputPerMTok: 2, outputPerMTok: 8, cachedInputPerMTok: 1 } } },
      },
    });
    const task = await harness.startPlanTask({});
    const runId = task.runs[0]!.runId;
    const token = await harness.tokens.mint(runId, 3600);

    const chat = await post(harness, "/llm/v1/chat/completions", token, {
      model: "gpt-4o",
      stream: true,
      stream_options: { include_usage: false },
      messages: [{ role: "user", content: "hi" }],
    });
    expect(chat.status).toBe(200);
    expect(chat.headers.get("content-type")).toContain("text/event-stream");
    const text = await chat.text();
    const data = text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => l.slice(6));
    expect(data.at(-1)).toBe("[DONE]");
    expect(data.slice(0, -1).map((d) => (JSON.parse(d) as { choices: unknown[] }).choices.length)).toEqual([
      1, 1, 0,
    ]);

    const responses = await post(harness, "/llm/v1/responses", token, {
      model: "o3",
      stream: true,
      input: "hi",
    });
    expect(responses.status).toBe(200);
    expect(await responses.text()).toContain("response.completed");
    const plain = await post(harness, "/llm/v1/responses", token, { model: "o3", input: "hi" });
    expect(((await plain.json()) as { usage: { input_tokens: number } }).usage.input_tokens).toBe(300);

    expect(upstream.requests.map((r) => [r.path, r.body.model, r.authorization])).toEqual([
      ["/v1/chat/completions", MODEL, `Bearer ${UPSTREAM_KEY}`],
      ["/v1/responses", MODEL, `Bearer ${UPSTREAM_KEY}`],
      ["/v1/responses", MODEL, `Bearer ${UPSTREAM_KEY}`],
    ]);
    expect(upstream.requests[0]!.body.stream_options).toEqual({ include_usage: true });
    expect(JSON.stringify(upstream.requests)).not.toContain(token);

    const perCall = (280 * 2 + 20 * 1 + 50 * 8) / 1_000_000;
    const totals = await harness.usage.runTotals(runId);
    expect(totals).toMatchObject({ promptTokens: 900, completionTokens: 150, cachedTokens: 60 });
    expect(totals.costUsd).toBeCloseTo(3 * perCall, 12);
    // Usage reaches the task as one coalesced progress event.
    const stored = await harness.waitForTask(task.id, (t) => t.progress.usage.promptTokens === 900, 5_000);
    expect(stored.progress.usage.completionTokens).toBe(150);
    const today = new Date().toISOString().slice(0, 10);
    expect(
      Number(await harness.redis.hget(`${harness.prefix}usage:channel:C0CHAN:${today}`, "costUsd")),
    ).toBeCloseTo(3 * perCall, 12);
    expect(
      Number(await harness.redis.hget(`${harness.prefix}usage:user:U0REQ:${today}`, "promptTokens")),
    ).toBe(900);
  });
});
