// Slack-side faults through the whole product (bot + worker + real agent in emulated Jobs):
// redelivered events, a 429 storm and a lost chat.postMessage answer. Every task still ends with
// exactly one status and one terminal message, one pull request, and no secret anywhere.
import { afterEach, describe, expect, test } from "@jest/globals";
import {
  BOT_USER,
  CHANNEL,
  REPO,
  REQUESTER,
  mentionEnvelope,
  rootMessage,
  startProduct,
  waitFor,
  type Product,
} from "./harness.js";

let product: Product | undefined;

afterEach(async () => {
  await product?.close();
  product = undefined;
});

describe("Slack faults, whole product", () => {
  test("the same app_mention delivered 4 times, in turn and while the first is still handled, makes one task each", async () => {
    product = await startProduct();
    const p = product;

    // In turn: the original, then Slack's three retries.
    const first = await rootMessage(p, "fix add() please");
    const envelope = mentionEnvelope(first, "fix add() please");
    const sequential = [];
    for (let retry = 0; retry < 4; retry++) {
      sequential.push(
        await p.slack.deliver(envelope, retry === 0 ? {} : { retryNum: retry, retryReason: "http_timeout" }),
      );
    }
    expect(sequential.map((d) => d.status)).toEqual([200, 200, 200, 200]);

    // Concurrent: retries arrive while the first delivery is still being handled.
    const second = await rootMessage(p, "also fix add() over here");
    const envelope2 = mentionEnvelope(second, "also fix add() over here");
    const concurrent = await Promise.all([
      p.slack.deliver(envelope2),
      p.slack.deliver(envelope2, { retryNum: 1, retryReason: "http_timeout" }),
      p.slack.deliver(envelope2, { retryNum: 2, retryReason: "http_timeout" }),
      p.slack.deliver(envelope2, { retryNum: 3, retryReason: "http_timeout" }),
    ]);
    expect(concurrent.every((d) => d.status === 200)).toBe(true);

    await p.waitForResult(first, 90_000);
    await p.waitForResult(second, 90_000);
    const a = p.checkThread(first);
    const b = p.checkThread(second);
    expect(a.taskId).not.toBe(b.taskId);
    expect(a.result.text).toContain("pull request #");
    expect(b.result.text).toContain("pull request #");
    // One PR per task, and one Job per task.
    expect(
      p.github
        .pulls(REPO)
        .map((pr) => pr.head)
        .sort(),
    ).toEqual([`baton/${a.taskId.toLowerCase()}`, `baton/${b.taskId.toLowerCase()}`].sort());
    expect(p.kube.jobs().length).toBe(2);
    // The 👀 acknowledgement once per message.
    expect(p.slack.reactions(CHANNEL, first)).toEqual([{ name: "eyes", users: [BOT_USER] }]);
    p.checkNoLeaks();
  }, 150_000);

  test("a 429 storm on every write method: no Retry-After ignored, the final message still arrives", async () => {
    product = await startProduct();
    const p = product;
    for (const method of ["chat.postMessage", "chat.update", "reactions.add"]) {
      p.slack.injectFault({ method, kind: "429", times: 6, retryAfter: 1 });
    }
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 120_000);
    expect(result.text).toContain("pull request #");
    p.checkThread(thread);
    // Every method got its 429s (the injected faults were all consumed) and retried after them.
    const limited = p.slack.calls().filter((c) => c.status === 429);
    for (const method of ["chat.postMessage", "chat.update", "reactions.add"])
      expect(limited.filter((c) => c.method === method).length).toBeGreaterThan(0);
    expect(p.slack.stats().ignoredRateLimits).toBe(0);
    expect(p.slack.calls().filter((c) => c.ignoredRetryAfter)).toEqual([]);
    p.checkNoLeaks();
  }, 150_000);

  test("a lost chat.postMessage answer (the post took effect) leaves exactly one status message", async () => {
    product = await startProduct();
    const p = product;
    p.slack.injectFault({ method: "chat.postMessage", kind: "drop_response", times: 1 });
    const thread = await p.mention("fix add() in math.js");
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toContain("pull request #");
    const { status } = p.checkThread(thread);
    // The dropped call was the status post, and it was found again rather than posted twice.
    expect(p.slack.calls("chat.postMessage")[0]).toMatchObject({ status: 0 });
    expect(status.text).toContain("Pull request opened");
    p.checkNoLeaks();
  }, 120_000);

  test("the plan approval (✅) delivered 4 times at once starts exactly one implement run", async () => {
    product = await startProduct({ policy: { channels: { [CHANNEL]: { repo: REPO, mode: "plan" } } } });
    const p = product;
    const thread = await p.mention("fix add() in math.js");
    const plan = await waitFor(() => p.messagesByKind(thread)["plan"]?.[0], 60_000, "the plan message");
    // Slack's redelivery of one reaction_added event: the same event id every time.
    const envelope = {
      ...mentionEnvelope(plan.ts, ""),
      event: {
        type: "reaction_added",
        user: REQUESTER,
        reaction: "white_check_mark",
        item: { type: "message", channel: CHANNEL, ts: plan.ts },
        item_user: BOT_USER,
        event_ts: `${Math.floor(Date.now() / 1000)}.000100`,
      },
    };
    const deliveries = await Promise.all(
      [0, 1, 2, 3].map((n) =>
        p.slack.deliver(envelope, n === 0 ? {} : { retryNum: n, retryReason: "http_timeout" }),
      ),
    );
    expect(deliveries.map((d) => d.status)).toEqual([200, 200, 200, 200]);
    const result = await p.waitForResult(thread, 90_000);
    expect(result.text).toContain("pull request #");
    const { taskId } = p.checkThread(thread);
    expect(p.messagesByKind(thread)["plan"]).toHaveLength(1);
    // One plan Job and one implement Job, one pull request.
    const jobs = p.kube.jobs().map((j) => j.metadata.name);
    expect(jobs).toHaveLength(2);
    expect(jobs.filter((n) => n.startsWith(`baton-${taskId.toLowerCase()}-p`))).toHaveLength(1);
    expect(jobs.filter((n) => n.startsWith(`baton-${taskId.toLowerCase()}-i`))).toHaveLength(1);
    expect(p.github.pulls(REPO)).toHaveLength(1);
    p.checkNoLeaks();
  }, 150_000);
});
