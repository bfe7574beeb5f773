// The Notifier against the Slack emulator, with the real Redis task store and claims.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createMetrics } from "../../../src/adapters/metrics/metrics.js";
import { createRedisClaims } from "../../../src/adapters/redis/claims.js";
import { connectRedis, waitForRedis, type Redis } from "../../../src/adapters/redis/connection.js";
import { createRedisTaskStore } from "../../../src/adapters/redis/task-store.js";
import { createSlackChat } from "../../../src/adapters/slack/chat.js";
import { createNotifier, type Notifier, type NotifierLimits } from "../../../src/adapters/slack/notifier.js";
import { createRedisRateBudget } from "../../../src/adapters/slack/notifier/shared-budget.js";
import type { TaskStore } from "../../../src/core/ports/task-store.js";
import { createRedactor } from "../../../src/core/redact.js";
import { newTask, type Task, type TaskId, type TaskState } from "../../../src/core/task.js";
import { updateTask } from "../../../src/services/task-events.js";
import { silentLogger } from "../../../src/shared/logger.js";
import {
  startSlackEmulator,
  type EmulatedMessage,
  type SlackEmulator,
  type SlackEmulatorOptions,
} from "../../emulators/slack/index.js";
import { testRedisUrl, uniquePrefix } from "../../support/redis.js";

let redis: Redis;
let sink: Server;
let sinkUrl: string;

beforeAll(async () => {
  redis = connectRedis(testRedisUrl());
  await waitForRedis(redis);
  // Stands in for the app: user actions in these tests only need to be stored by the emulator.
  sink = createServer((_req, res) => res.end(""));
  await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", () => resolve()));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  redis.disconnect();
  await new Promise<void>((resolve) => sink.close(() => resolve()));
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface World {
  emu: SlackEmulator;
  store: TaskStore;
  prefix: string;
  notifier(limits?: Partial<NotifierLimits>, options?: { sharedBudget?: boolean }): Notifier;
  /** A task in the store whose thread is a user's message in `channel`. */
  task(channel: string, patch?: Partial<Task>): Promise<Task>;
  /** Persists a change and returns the stored task (what effects receive). */
  change(id: TaskId, patch: Partial<Task>): Promise<Task>;
  statusMessages(task: Task): EmulatedMessage[];
}

let idCounter = 0;

async function world(emuOptions: SlackEmulatorOptions = {}): Promise<World> {
  const emu = await startSlackEmulator({ eventsUrl: sinkUrl, ...emuOptions });
  cleanups.push(() => emu.close());
  const prefix = uniquePrefix("notifier");
  const store = createRedisTaskStore(redis, prefix);
  const requester = emu.user("UREQ", { name: "req" });
  return {
    emu,
    store,
    prefix,
    notifier(limits = {}, options = {}) {
      const redact = createRedactor([]);
      const chat = createSlackChat({
        token: emu.botToken,
        apiUrl: emu.apiUrl,
        logger: silentLogger(),
        metrics: createMetrics({ defaultMetrics: false }),
        redact,
        timeoutMs: 3000,
      });
      const notifier = createNotifier({
        chat,
        store,
        claims: createRedisClaims(redis, prefix),
        clock: { now: () => new Date() },
        logger: silentLogger(),
        redact,
        limits: { statusMinIntervalMs: 0, unknownOutcomeChecksMs: [100, 300], peerWaitMs: 3000, ...limits },
        ...(options.sharedBudget ? { sharedBudget: createRedisRateBudget(redis, prefix) } : {}),
      });
      cleanups.push(() => notifier.close({ timeoutMs: 2000 }));
      return notifier;
    },
    async task(channel, patch = {}) {
      const { ts } = await requester.postMessage({ channel, text: "please fix the flaky test" });
      idCounter += 1;
      const id =
        `T-${String(idCounter).padStart(2, "0")}${Math.random().toString(36).slice(2, 6).toUpperCase().padEnd(4, "0")}` as TaskId;
      const task = newTask({
        id,
        now: new Date().toISOString(),
        requester: { userId: "UREQ", name: "req" },
        channelId: channel,
        threadTs: ts,
        triggerTs: ts,
        source: "mention",
        text: "please fix the flaky test",
        repo: "acme/web",
        mode: "plan",
        attempts: 1,
      });
      return store.create({ ...task, ...patch });
    },
    async change(id, patch) {
      const stored = await updateTask(store, id, (t) => ({
        ...t,
        ...patch,
        updatedAt: new Date().toISOString(),
      }));
      if (!stored) throw new Error(`no task ${id}`);
      return stored;
    },
    statusMessages(task) {
      return emu.messages(task.channelId, task.threadTs).filter((m) => kindOf(m) === "status");
    },
  };
}

const kindOf = (m: EmulatedMessage): string | undefined =>
  (m.metadata?.event_payload as { kind?: string } | undefined)?.kind;

const steps = (n: number, done: number) =>
  Array.from({ length: n }, (_, i) => ({
    step: `step ${i + 1}`,
    status: (i < done ? "completed" : i === done ? "in_progress" : "pending") as
      "completed" | "in_progress" | "pending",
  }));

describe("Notifier", () => {
  test("one status message, edited in place; plan with reactions; result; all recorded and indexed", async () => {
    const w = await world();
    const notifier = w.notifier();
    let task = await w.task("CFLOW");

    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    const [status] = w.statusMessages(task);
    expect(status).toBeDefined();
    expect(status!.text).toContain(task.id);
    expect(status!.metadata).toEqual({
      event_type: "baton_message",
      event_payload: { task_id: task.id, kind: "status", key: `${task.id}:status` },
    });
    expect((await w.store.get(task.id))?.slack.statusTs).toBe(status!.ts);
    expect(await w.store.findByMessage("CFLOW", status!.ts)).toEqual({ taskId: task.id, kind: "status" });

    task = await w.change(task.id, { state: "planning", progress: { ...task.progress, steps: steps(3, 1) } });
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    expect(w.statusMessages(task)).toHaveLength(1);
    expect(w.emu.message("CFLOW", status!.ts)!.edits).toHaveLength(1);
    expect(JSON.stringify(w.emu.message("CFLOW", status!.ts)!.blocks)).toContain("step 2");

    task = await w.change(task.id, {
      state: "awaiting_approval",
      launch: 1,
      plan: { summary: "Retry the flaky network call", steps: ["add a retry", "add a test"] },
    });
    await notifier.handle(task, { type: "post_plan" });
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    const planTs = (await w.store.get(task.id))!.slack.planTs!;
    expect(w.emu.message("CFLOW", planTs)?.text).toBeDefined();
    expect(w.emu.reactions("CFLOW", planTs).map((r) => r.name)).toEqual(["white_check_mark", "x"]);
    expect(await w.store.findByMessage("CFLOW", planTs)).toEqual({ taskId: task.id, kind: "plan" });

    task = await w.change(task.id, {
      state: "pr_opened",
      launch: 2,
      pr: { number: 17, url: "https://github.com/acme/web/pull/17", headBranch: "baton/x", attempt: 1 },
    });
    await notifier.handle(task, { type: "post_result" });
    await notifier.handle(task, { type: "update_status" });
    // A redelivered effect (another replica, a retried job) posts nothing new.
    await w.notifier().handle(task, { type: "post_result" });
    await notifier.flush();
    const thread = w.emu.messages("CFLOW", task.threadTs);
    const kinds = thread.map((m) => kindOf(m) ?? "user");
    expect(kinds).toEqual(["user", "status", "plan", "result"]);
    const result = thread[3]!;
    expect(JSON.stringify(result.blocks) + result.text).toContain("https://github.com/acme/web/pull/17");
    expect((await w.store.get(task.id))!.slack.resultTs).toBe(result.ts);
    // The status message keeps its ts and now shows the pull request.
    expect(JSON.stringify(w.emu.message("CFLOW", status!.ts)!.blocks)).toContain("#17");
    expect(
      thread.every((m) => m.user !== w.emu.botUserId || (m.unfurlLinks === false && m.unfurlMedia === false)),
    ).toBe(true);
  });

  test("a lost answer to chat.postMessage still leaves exactly one status message", async () => {
    const w = await world();
    const notifier = w.notifier();
    const task = await w.task("CLOST");
    w.emu.injectFault({ method: "chat.postMessage", kind: "drop_response" });
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    const statuses = w.statusMessages(task);
    expect(statuses).toHaveLength(1);
    expect(w.emu.calls("chat.postMessage").map((c) => c.status)).toEqual([0]);
    expect((await w.store.get(task.id))?.slack.statusTs).toBe(statuses[0]!.ts);

    // The same for a result whose answer is lost, followed by a redelivery of the effect.
    const done = await w.change(task.id, {
      state: "failed",
      failure: { code: "x", message: "The agent crashed." },
      launch: 1,
    });
    w.emu.injectFault({ method: "chat.postMessage", kind: "drop_response" });
    await notifier.handle(done, { type: "post_result" });
    await notifier.handle(done, { type: "post_result" });
    await notifier.flush();
    const results = w.emu.messages("CLOST", task.threadTs).filter((m) => kindOf(m) === "result");
    expect(results).toHaveLength(1);
    expect((await w.store.get(task.id))?.slack.resultTs).toBe(results[0]!.ts);
  });

  test("two replicas racing on a new task post one status message", async () => {
    const w = await world();
    const a = w.notifier();
    const b = w.notifier();
    for (let round = 0; round < 5; round++) {
      const task = await w.task("CRACE");
      const next = await w.change(task.id, { state: "planning" });
      await Promise.all([
        a.handle(task, { type: "update_status" }),
        b.handle(next, { type: "update_status" }),
      ]);
      await Promise.all([a.flush(), b.flush()]);
      const statuses = w.statusMessages(task);
      expect(statuses).toHaveLength(1);
      expect((await w.store.get(task.id))?.slack.statusTs).toBe(statuses[0]!.ts);
      // Whoever went last, the message shows the newest state.
      expect(statuses[0]!.text + JSON.stringify(statuses[0]!.blocks)).toMatch(/lanning/);
    }
  });

  test("a busy channel does not make a waiting replica take over a claimed post", async () => {
    const w = await world({
      rateLimits: { "chat.postMessage": { max: 1, windowMs: 300, scope: "channel" } },
    });
    // Posting in this channel takes ~300 ms a message, so the last status waits far longer than
    // the peers' patience (peerWaitMs): only claims taken at posting time keep that safe.
    const limits = { postMessagePerChannel: { max: 1, windowMs: 300 }, peerWaitMs: 600 };
    const a = w.notifier(limits, { sharedBudget: true });
    const b = w.notifier(limits, { sharedBudget: true });
    const tasks: Task[] = [];
    for (let i = 0; i < 8; i++) tasks.push(await w.task("CBUSY"));
    await Promise.all(
      tasks.flatMap((t) => [a.handle(t, { type: "update_status" }), b.handle(t, { type: "update_status" })]),
    );
    await Promise.all([a.flush(), b.flush()]);
    for (const t of tasks) expect(w.statusMessages(t)).toHaveLength(1);
    expect(w.emu.stats().rateLimited).toBe(0);
  }, 30_000);

  test("Retry-After is honoured", async () => {
    const w = await world();
    const notifier = w.notifier();
    let task = await w.task("CRETRY");
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    w.emu.injectFault({ method: "chat.update", kind: "429", retryAfter: 1 });
    task = await w.change(task.id, { state: "planning" });
    const started = Date.now();
    await notifier.handle(task, { type: "update_status" });
    task = await w.change(task.id, { state: "awaiting_approval" });
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(w.emu.stats()).toMatchObject({ rateLimited: 1, ignoredRateLimits: 0 });
    // Coalesced: after the 429, one edit carried the newest state.
    expect(w.emu.calls("chat.update").map((c) => c.status)).toEqual([429, 200]);
    expect(w.emu.message("CRETRY", w.statusMessages(task)[0]!.ts)!.edits).toHaveLength(1);
  });

  test("200 progress updates for 20 tasks stay within Slack's limits; final messages arrive", async () => {
    // A tight workspace budget (chat.update 20 per 3 s) so that pacing and coalescing both matter.
    const chatUpdate = { max: 20, windowMs: 3000 };
    const w = await world({
      rateLimits: {
        "chat.update": { ...chatUpdate, scope: "workspace" },
        "chat.postMessage": { max: 1, windowMs: 250, scope: "channel" },
      },
    });
    const notifier = w.notifier({
      chatUpdate,
      postMessagePerChannel: { max: 1, windowMs: 250 },
      statusMinIntervalMs: 100,
    });
    const channels = ["CLOADA", "CLOADB", "CLOADC", "CLOADD"];
    const tasks: Task[] = [];
    for (let i = 0; i < 20; i++) tasks.push(await w.task(channels[i % channels.length]!));

    const updatesPerTask = 10;
    for (let u = 0; u < updatesPerTask; u++) {
      await Promise.all(
        tasks.map(async (t, i) => {
          const stored = await w.change(t.id, {
            state: "implementing",
            progress: { ...t.progress, steps: steps(updatesPerTask, u) },
          });
          tasks[i] = stored;
          await notifier.handle(stored, { type: "update_status" });
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    const finals: TaskState[] = ["pr_opened", "failed", "no_change", "cancelled"];
    const finished = Date.now();
    await Promise.all(
      tasks.map(async (t, i) => {
        const state = finals[i % finals.length]!;
        const stored = await w.change(t.id, {
          state,
          launch: 1,
          ...(state === "pr_opened"
            ? {
                pr: {
                  number: 100 + i,
                  url: `https://github.com/acme/web/pull/${100 + i}`,
                  headBranch: "baton/x",
                  attempt: 1,
                },
              }
            : {}),
          ...(state === "failed" ? { failure: { code: "oom_killed", message: "Out of memory." } } : {}),
        });
        tasks[i] = stored;
        await Promise.all([
          notifier.handle(stored, { type: "post_result" }),
          notifier.handle(stored, { type: "update_status" }),
        ]);
      }),
    );
    const resultsIn = Date.now() - finished;
    await notifier.flush();

    const stats = w.emu.stats();
    expect(stats.ignoredRateLimits).toBe(0);
    expect(stats.rateLimited).toBe(0);
    // Coalescing: far fewer edits than the 220 status changes.
    expect(stats.byMethod["chat.update"]).toBeLessThan(220);
    for (const t of tasks) {
      const statuses = w.statusMessages(t);
      expect(statuses).toHaveLength(1);
      const shown = await w.store.get(t.id);
      expect(shown?.slack.statusTs).toBe(statuses[0]!.ts);
      // The status shows the final state, and the result is there.
      const blocks = JSON.stringify(statuses[0]!.blocks);
      expect(blocks).toContain(t.id);
      if (t.pr) expect(blocks).toContain(`#${t.pr.number}`);
      const results = w.emu.messages(t.channelId, t.threadTs).filter((m) => kindOf(m) === "result");
      expect(results).toHaveLength(1);
      expect(shown?.slack.resultTs).toBe(results[0]!.ts);
    }
    // Results are posts (per channel), never stuck behind the progress backlog.
    expect(resultsIn).toBeLessThan(20 * 250 + 2000);
  }, 60_000);

  test("terminal status edits jump the queue of progress edits", async () => {
    const chatUpdate = { max: 2, windowMs: 500 };
    const w = await world({
      rateLimits: { "chat.update": { ...chatUpdate, scope: "workspace" }, "chat.postMessage": null },
    });
    const notifier = w.notifier({ chatUpdate, postMessagePerChannel: { max: 100, windowMs: 1000 } });
    const tasks: Task[] = [];
    for (let i = 0; i < 12; i++) {
      const t = await w.task("CPRIO");
      await notifier.handle(t, { type: "update_status" });
      tasks.push(t);
    }
    await notifier.flush();
    // Every task has a progress edit waiting; then the last one finishes.
    for (const [i, t] of tasks.entries()) {
      tasks[i] = await w.change(t.id, {
        state: "implementing",
        progress: { ...t.progress, steps: steps(2, 1) },
      });
      await notifier.handle(tasks[i]!, { type: "update_status" });
    }
    const last = tasks.at(-1)!;
    const done = await w.change(last.id, { state: "cancelled" });
    await notifier.handle(done, { type: "update_status" });
    const lastTs = (await w.store.get(last.id))!.slack.statusTs!;
    await w.emu.waitFor(
      () => w.emu.calls("chat.update").some((c) => c.args.ts === lastTs && c.status === 200),
      10_000,
    );
    const order = w.emu
      .calls("chat.update")
      .filter((c) => c.status === 200)
      .map((c) => c.args.ts);
    // Among the first edits (the budget allows two at a time), not behind eleven progress edits.
    expect(order.indexOf(lastTs)).toBeLessThan(4);
    await notifier.flush();
    expect(w.emu.stats().ignoredRateLimits).toBe(0);
  }, 30_000);

  test("attempts summary gets one reaction per attempt", async () => {
    const w = await world({ rateLimits: { "chat.postMessage": null } });
    const notifier = w.notifier({ postMessagePerChannel: { max: 100, windowMs: 1000 } });
    const base = await w.task("CATT", { attempts: 3 });
    const attempt = (n: number) => ({
      attempt: n,
      runId: `r${n}`,
      outcome: "changes" as const,
      summary: `attempt ${n}`,
      headBranch: `baton/x-a${n}`,
      filesChanged: ["a.ts"],
      evidence: [{ argv: ["npm", "test"], exitCode: 0, durationMs: 1000 }],
      score: 10 - n,
      testsPassed: true,
      failingCommands: 0,
    });
    const task = await w.change(base.id, {
      state: "implementing",
      launch: 2,
      attemptResults: [attempt(1), attempt(2), attempt(3)],
    });
    await notifier.handle(task, { type: "post_attempts_summary" });
    const summaryTs = (await w.store.get(task.id))!.slack.summaryTs!;
    expect(w.emu.reactions("CATT", summaryTs).map((r) => r.name)).toEqual(["one", "two", "three"]);
    expect(await w.store.findByMessage("CATT", summaryTs)).toEqual({ taskId: task.id, kind: "attempts" });
    // The status message came first.
    expect(w.emu.messages("CATT", task.threadTs).map((m) => kindOf(m) ?? "user")).toEqual([
      "user",
      "status",
      "attempts",
    ]);
  });

  test("a replica that claimed a post and died is taken over, after checking Slack", async () => {
    const w = await world();
    const task = await w.task("CDEAD");
    // The dead replica's claim: it never posted and never recorded anything.
    expect(await createRedisClaims(redis, w.prefix).claim(`slack:post:${task.id}:status`, 3600)).toBe(true);
    const notifier = w.notifier({ peerWaitMs: 500 });
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    expect(w.statusMessages(task)).toHaveLength(1);
    expect((await w.store.get(task.id))?.slack.statusTs).toBe(w.statusMessages(task)[0]!.ts);

    // It posted but died before recording: the message is found by its metadata, not posted again.
    const other = await w.task("CDEAD");
    const claims = createRedisClaims(redis, w.prefix);
    expect(await claims.claim(`slack:post:${other.id}:status`, 3600)).toBe(true);
    await w.emu.user("UREQ").postMessage({ channel: "CDEAD", text: "noise" });
    const chat = createSlackChat({
      token: w.emu.botToken,
      apiUrl: w.emu.apiUrl,
      logger: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      redact: (t) => t,
    });
    const orphan = await chat.postMessage({
      channel: "CDEAD",
      threadTs: other.threadTs,
      text: "status from the dead replica",
      metadata: {
        event_type: "baton_message",
        event_payload: { task_id: other.id, kind: "status", key: `${other.id}:status` },
      },
    });
    await notifier.handle(other, { type: "update_status" });
    await notifier.flush();
    expect(w.statusMessages(other).map((m) => m.ts)).toEqual([orphan.ts]);
    expect((await w.store.get(other.id))?.slack.statusTs).toBe(orphan.ts);
    // And it was brought up to date.
    expect(w.emu.message("CDEAD", orphan.ts)!.text).not.toBe("status from the dead replica");
  });

  test("a post that times out and lands late is found, not posted twice", async () => {
    const w = await world();
    const redact = createRedactor([]);
    const chat = createSlackChat({
      token: w.emu.botToken,
      apiUrl: w.emu.apiUrl,
      logger: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      redact,
      timeoutMs: 300,
    });
    const notifier = createNotifier({
      chat,
      store: w.store,
      claims: createRedisClaims(redis, w.prefix),
      clock: { now: () => new Date() },
      logger: silentLogger(),
      redact,
      limits: { unknownOutcomeChecksMs: [50, 100, 1200] },
    });
    cleanups.push(() => notifier.close({ timeoutMs: 2000 }));
    const task = await w.task("CLATE");
    // Slack takes 800 ms; the client gives up after 300 ms; the message appears afterwards.
    w.emu.injectFault({ method: "chat.postMessage", kind: "delay", delayMs: 800 });
    await notifier.handle(task, { type: "update_status" });
    await notifier.flush();
    expect(w.statusMessages(task)).toHaveLength(1);
    expect(w.emu.calls("chat.postMessage")).toHaveLength(1);
    expect((await w.store.get(task.id))?.slack.statusTs).toBe(w.statusMessages(task)[0]!.ts);
  });

  test("replicas share one workspace budget through Redis", async () => {
    const chatUpdate = { max: 6, windowMs: 1500 };
    const run = async (sharedBudget: boolean) => {
      const w = await world({
        rateLimits: { "chat.update": { ...chatUpdate, scope: "workspace" }, "chat.postMessage": null },
      });
      const limits = { chatUpdate, postMessagePerChannel: { max: 100, windowMs: 1000 } };
      const replicas = [w.notifier(limits, { sharedBudget }), w.notifier(limits, { sharedBudget })];
      const tasks: Task[] = [];
      for (let i = 0; i < 8; i++) tasks.push(await w.task("CSHARED"));
      await Promise.all(tasks.map((t, i) => replicas[i % 2]!.handle(t, { type: "update_status" })));
      await Promise.all(replicas.map((r) => r.flush()));
      for (let u = 1; u <= 2; u++) {
        await Promise.all(
          tasks.map(async (t, i) => {
            tasks[i] = await w.change(t.id, {
              state: "implementing",
              progress: { ...t.progress, steps: steps(3, u) },
            });
            await replicas[i % 2]!.handle(tasks[i]!, { type: "update_status" });
          }),
        );
        await Promise.all(replicas.map((r) => r.flush()));
      }
      for (const t of tasks) {
        expect(JSON.stringify(w.emu.message("CSHARED", w.statusMessages(t)[0]!.ts)!.blocks)).toContain(
          "2 of 3",
        );
      }
      return w.emu.stats();
    };
    // Each replica alone keeps to the limit, so together they exceed it, and one replica's 429 does
    // not stop the other from calling inside the Retry-After window…
    const apart = await run(false);
    expect(apart.rateLimited).toBeGreaterThan(0);
    // … while a shared budget keeps the workspace within it.
    const together = await run(true);
    expect(together).toMatchObject({ rateLimited: 0, ignoredRateLimits: 0 });
  }, 60_000);

  test("notify_user sends an ephemeral note in the task's thread", async () => {
    const w = await world();
    const notifier = w.notifier();
    const task = await w.task("CEPHEM");
    await notifier.handle(task, {
      type: "notify_user",
      userId: "UOTHER",
      text: "Only the requester can approve.",
    });
    expect(w.emu.ephemerals({ user: "UOTHER" })).toEqual([
      expect.objectContaining({
        channel: "CEPHEM",
        threadTs: task.threadTs,
        text: "Only the requester can approve.",
      }),
    ]);
  });
});
