// Infrastructure faults through the whole product: Redis down at ingress and restarted mid-run, the
// worker stopped mid-run (a second one re-attaches), Kubernetes watches dropped and answered 410,
// the agent's pod OOMKilled, and the Job's deadline exceeded. Every task ends with exactly one
// terminal message, one status message, at most one pull request, and no secret anywhere.
import { afterEach, describe, expect, test } from "@jest/globals";
import { connectRedis, waitForRedis } from "../../src/adapters/redis/connection.js";
import {
  NAMESPACE,
  REPO,
  mentionEnvelope,
  rootMessage,
  slowTurn,
  startProduct,
  waitFor,
  type Product,
} from "./harness.js";

let product: Product | undefined;

afterEach(async () => {
  await product?.close();
  product = undefined;
});

/** Waits until the agent's first implement step (the `sleep`) is running in its pod. */
async function waitForSleepingAgent(p: Product): Promise<string> {
  const job = await waitFor(() => p.kube.jobs(NAMESPACE)[0], 30_000, "a Job");
  await waitFor(
    () => p.model.requests.some((r) => JSON.stringify(r.body.messages).length > 0 && r.status === 200),
    30_000,
    "the agent's first model call",
  );
  return job.metadata.name;
}

function expectPullRequest(p: Product, thread: string): void {
  const { result, taskId } = p.checkThread(thread);
  expect(result.text).toContain("pull request #");
  expect(p.github.pulls(REPO).map((pr) => pr.head)).toEqual([`baton/${taskId.toLowerCase()}`]);
  expect(p.kube.jobs(NAMESPACE)).toHaveLength(1);
  p.checkNoLeaks();
}

describe("infrastructure faults, whole product", () => {
  test("Redis down at ingress: Slack gets a 5xx; the retry after Redis is back makes exactly one task", async () => {
    product = await startProduct();
    const p = product;
    const ts = await rootMessage(p, "fix add() in math.js");
    const envelope = mentionEnvelope(ts, "fix add() in math.js");

    await p.redis.stop();
    const refused = await p.slack.deliver(envelope);
    expect(refused.status).toBeGreaterThanOrEqual(500);
    expect(p.botMessages(ts)).toEqual([]);

    await p.redis.start();
    const accepted = await waitFor(
      async () => {
        const d = await p.slack.deliver(envelope, { retryNum: 1, retryReason: "http_error" });
        return d.status === 200 ? d : undefined;
      },
      30_000,
      "a 200 for the retry",
    );
    expect(accepted.status).toBe(200);
    // Slack's further retries of the same event change nothing.
    await p.slack.deliver(envelope, { retryNum: 2, retryReason: "http_error" });

    await p.waitForResult(ts, 90_000);
    expectPullRequest(p, ts);
  }, 150_000);

  test("Redis restarted mid-run: the run still ends with one result and one pull request", async () => {
    product = await startProduct({ turn: slowTurn(4) });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    await waitForSleepingAgent(p);
    await p.redis.stop();
    await new Promise((r) => setTimeout(r, 1500)); // Redis stays down for a while (the fault itself).
    await p.redis.start();
    await p.waitForResult(thread, 90_000);
    expectPullRequest(p, thread);
  }, 150_000);

  test("the worker stopped mid-run: a second worker re-attaches (one Job, one result, one PR)", async () => {
    // The agent's first command outlasts the old worker's shutdown (which drains for a few seconds).
    product = await startProduct({ turn: slowTurn(7) });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    await waitForSleepingAgent(p);
    const first = p.instances[0]!;
    await first.stop();
    // Stopping did not wait for the run: the agent is still at work, with no result yet.
    expect(p.messagesByKind(thread)["result"]).toBeUndefined();
    // The replacement serves the same runner URL (as a Service would) and has never seen the run.
    await p.startInstance("all", { samePort: true });
    await p.waitForResult(thread, 90_000);
    expectPullRequest(p, thread);
    // The run's queue job ends completed (by the second worker), with nothing launched or posted again.
    const redis = connectRedis(p.redis.url);
    try {
      await waitForRedis(redis);
      await waitFor(
        async () =>
          (await redis.llen("baton:bull:runs:active")) === 0 &&
          (await redis.zcard("baton:bull:runs:completed")) >= 1,
        75_000,
        "the run's queue job completed by the second worker",
      );
    } finally {
      redis.disconnect();
    }
    expectPullRequest(p, thread);
    expect(p.kube.containerStarts()).toHaveLength(1);
  }, 180_000);

  test("the worker process SIGKILLed mid-run: another worker re-attaches once its lock expires (one Job, one result, one PR)", async () => {
    product = await startProduct({ turn: slowTurn(6), ingressOnly: true });
    const p = product;
    const worker = await p.startWorkerProcess();
    const thread = await p.mention("fix add() in math.js");
    await waitForSleepingAgent(p);
    await worker.kill();
    // A new worker behind the same runner URL; the run's queue job is still locked by the dead one.
    await p.startInstance("worker", { samePort: true });
    await p.waitForResult(thread, 90_000);
    const redis = connectRedis(p.redis.url);
    try {
      await waitForRedis(redis);
      // BullMQ's stalled check gives the job to the new worker once the dead one's lock expires.
      await waitFor(
        async () =>
          (await redis.llen("baton:bull:runs:active")) === 0 &&
          (await redis.zcard("baton:bull:runs:completed")) >= 1,
        90_000,
        "the run's queue job completed by the second worker",
      );
    } finally {
      redis.disconnect();
    }
    expectPullRequest(p, thread);
    expect(p.kube.containerStarts()).toHaveLength(1);
  }, 200_000);

  test("Kubernetes watches dropped and answered 410 Gone mid-run: the task still ends once", async () => {
    product = await startProduct({ turn: slowTurn(4) });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    await waitForSleepingAgent(p);
    p.kube.inject({ type: "goneOnNextWatch" });
    p.kube.inject({ type: "dropWatches" });
    await waitFor(() => p.kube.openWatches() > 0, 20_000, "the executor watching again");
    p.kube.inject({ type: "compactHistory" });
    p.kube.inject({ type: "dropWatches" });
    await p.waitForResult(thread, 90_000);
    expectPullRequest(p, thread);
  }, 150_000);

  test("the agent's pod OOMKilled: the thread says it ran out of memory, naming the limit", async () => {
    product = await startProduct({ turn: slowTurn(30) });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const job = await waitForSleepingAgent(p);
    const limit = (
      p.kube.jobs(NAMESPACE)[0]?.spec as
        { template: { spec: { containers: { resources: { limits: { memory: string } } }[] } } } | undefined
    )?.template.spec.containers[0]?.resources.limits.memory;
    expect(limit).toEqual(expect.any(String));
    p.kube.inject({ type: "oomKill", job });
    const result = await p.waitForResult(thread, 60_000);
    expect(result.text).toMatch(/out of memory/i);
    expect(result.text).toContain(limit!);
    p.checkThread(thread);
    expect(p.github.pulls(REPO)).toEqual([]);
    p.checkNoLeaks();
  }, 120_000);

  test("the Job's deadline exceeded: the thread names the time limit", async () => {
    product = await startProduct({ turn: slowTurn(60), policy: { limits: { runTimeoutMinutes: 0.05 } } });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 60_000);
    expect(result.text).toMatch(/time limit of 3 ?s/i);
    p.checkThread(thread);
    expect(p.github.pulls(REPO)).toEqual([]);
    p.checkNoLeaks();
  }, 120_000);
});
