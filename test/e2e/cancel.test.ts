// End-to-end cancellation: `@baton cancel` in the thread while the implement run works in an emulated
// Kubernetes pod deletes its Job, stops the agent, marks the status message cancelled, and nothing
// is published.
import { afterEach, expect, test } from "@jest/globals";
import { BOT_USER, CHANNEL, REPO, startE2E, type E2E } from "./harness.js";

let e2e: E2E | undefined;

afterEach(async () => {
  await e2e?.close();
  e2e = undefined;
});

const textOf = (m: { text: string; blocks?: unknown[] }) => `${m.text}\n${JSON.stringify(m.blocks ?? [])}`;

test("@baton cancel mid-run deletes the Job and publishes nothing", async () => {
  let release = false;
  e2e = await startE2E({
    executor: "kubernetes",
    brain: async (turn) => {
      if (turn.phase === "classify") return { content: "no" };
      // The implement run stays busy in its first model turn until the test lets go (bounded).
      const deadline = Date.now() + 30_000;
      while (!release && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      return { toolCalls: [{ name: "finish", arguments: { summary: "Nothing to do" } }] };
    },
  });
  const env = e2e;
  const kubernetes = env.kubernetes!;
  try {
    const root = await env.say(`<@${BOT_USER}> fix the add() function mode=auto`);
    await env.waitFor("the implement run's first model request", () =>
      env.turns().some((t) => t.phase === "implement"),
    );
    expect(kubernetes.jobs("baton-e2e")).toHaveLength(1);
    const statusTs = env.botMessages(root)[0]!.ts;

    await env.say(`<@${BOT_USER}> cancel`, root);
    await env.waitFor("the Job to be deleted", () => kubernetes.jobs("baton-e2e").length === 0);
    await env.waitFor("the status message to say cancelled", () =>
      textOf(env.slack.message(CHANNEL, statusTs)!).includes("Cancelled"),
    );
    const deletes = kubernetes.requests().filter((r) => r.method === "DELETE" && r.path.includes("/jobs/"));
    expect(deletes).toHaveLength(1);
    expect(JSON.stringify(deletes[0]?.body ?? deletes[0]?.query)).toContain("Background");
  } finally {
    release = true;
  }
  // The pod went with its Job (Background propagation), so the agent is gone: nothing is published.
  await env.waitFor("the agent pod to be gone", () =>
    kubernetes.pods("baton-e2e").every((p) => p.metadata.deletionTimestamp !== undefined),
  );
  expect(env.github.pulls(REPO)).toEqual([]);
  expect(
    await env.github.branchSha(REPO, env.turns().find((t) => t.phase === "implement")!.headBranch!),
  ).toBe(undefined);
}, 90_000);
