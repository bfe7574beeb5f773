// End-to-end: the real `baton bot` process driven as users through the Slack emulator — a bug report
// in a thread, "@baton fix it", 👀, the plan, ✅ by the requester, the implement run of the real
// `baton agent` (in an emulated Kubernetes pod, or as a local process), and the pull request on the
// GitHub emulator with the fix, linked in the thread with its evidence; `mode=auto` skips approval.
import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, test } from "@jest/globals";
import {
  BOT_USER,
  CHANNEL,
  GITHUB_TOKEN,
  MODEL_KEY,
  REPO,
  REQUESTER,
  allVersions,
  startE2E,
  type E2E,
} from "./harness.js";

let e2e: E2E | undefined;

afterEach(async () => {
  await e2e?.close();
  e2e = undefined;
});

function fileOnBranch(env: E2E, branch: string, file: string): string {
  return execFileSync("git", ["--git-dir", env.github.bareRepoPath(REPO), "show", `${branch}:${file}`], {
    encoding: "utf8",
  });
}

function commitsOnBranch(env: E2E, branch: string): string[] {
  return execFileSync("git", ["--git-dir", env.github.bareRepoPath(REPO), "rev-list", `main..${branch}`], {
    encoding: "utf8",
  })
    .split("\n")
    .filter(Boolean);
}

/** A bug report by someone else, then the requester's mention in its thread. */
async function reportAndMention(env: E2E, mention: string): Promise<{ root: string; mentionTs: string }> {
  const reporter = env.slack.user("U0REPORTER");
  const { ts: root } = await reporter.postMessage({
    channel: CHANNEL,
    text: "add(2, 3) returns -1 instead of 5, the widget test fails",
  });
  const mentionTs = await env.say(`<@${BOT_USER}> ${mention}`, root);
  return { root, mentionTs };
}

async function expectPublished(env: E2E, root: string, mentionTs: string, minEdits = 2): Promise<void> {
  const pull = await env.waitFor("the pull request", () => env.github.pulls(REPO)[0]);
  expect(pull).toMatchObject({
    state: "open",
    base: "main",
    head: expect.stringMatching(/^baton\/t-[0-9a-z]{6}$/),
  });
  expect(fileOnBranch(env, pull.head, "math.js")).toContain("return a + b;");
  expect(commitsOnBranch(env, pull.head)).toHaveLength(1);
  // Evidence in the PR body comes from the runner's own record of the commands.
  expect(pull.body).toContain("node test.js");
  expect(pull.body).toMatch(/Requested by .+ in Slack: http/);

  const prUrl = new RegExp(`/acme/widget/pull/${pull.number}\\b`);
  const result = await env.waitFor("the PR link in the thread", () =>
    env.botMessages(root).find((m) => prUrl.test(m.text) || JSON.stringify(m.blocks ?? []).match(prUrl)),
  );
  expect(result.threadTs).toBe(root);
  // The result carries the evidence: the test command the runner recorded, and that it passed.
  const resultText = `${result.text}\n${JSON.stringify(result.blocks ?? [])}`;
  expect(resultText).toContain("node test.js");
  expect(result.unfurlLinks).toBe(false);

  // One status message, first in the thread, edited in place through the task's life.
  const taskId = pull.head.replace("baton/", "").toUpperCase();
  const status = env.botMessages(root)[0]!;
  expect(allVersions(status).some((t) => t.includes(taskId))).toBe(true);
  await env.waitFor(
    "the status message to show the pull request",
    () =>
      env.slack.message(CHANNEL, status.ts)!.text.match(prUrl) ||
      JSON.stringify(env.slack.message(CHANNEL, status.ts)!.blocks ?? []).match(prUrl),
  );
  expect(env.slack.message(CHANNEL, status.ts)!.edits.length).toBeGreaterThanOrEqual(minEdits);
  const statusUpdates = env.slack.calls("chat.update").filter((c) => c.ok && c.args.ts === status.ts);
  expect(statusUpdates.length).toBeGreaterThanOrEqual(minEdits);
  // Everything Baton posted went into the thread; nothing top-level.
  expect(env.slack.messages(CHANNEL).filter((m) => m.user === BOT_USER)).toEqual([]);
  expect(env.slack.reactions(CHANNEL, mentionTs)).toContainEqual({ name: "eyes", users: [BOT_USER] });
}

async function planAndApprove(env: E2E, root: string, mentionTs: string): Promise<void> {
  await env.waitFor(
    "👀 on the mention",
    () => env.slack.reactions(CHANNEL, mentionTs).some((r) => r.name === "eyes"),
    5_000,
  );
  const plan = await env.waitFor("the plan message", () =>
    env
      .botMessages(root)
      .find(
        (m) =>
          m.text.includes("Make add() add.") || JSON.stringify(m.blocks ?? []).includes("Make add() add."),
      ),
  );
  // Nothing is implemented before approval.
  expect(env.github.pulls(REPO)).toEqual([]);
  expect(env.turns().some((t) => t.phase === "implement")).toBe(false);
  await env.react(plan.ts, "white_check_mark", REQUESTER);
}

/** No credential reached Slack, the pull request, the model (so no agent tool), an agent pod or the log. */
function expectNoSecretLeaked(env: E2E): void {
  const secrets = [GITHUB_TOKEN, MODEL_KEY, env.slack.botToken, env.slack.signingSecret];
  const places: Record<string, string> = {
    slack: JSON.stringify([
      ...env.slack.messages(CHANNEL).flatMap((m) => env.slack.messages(CHANNEL, m.ts)),
      ...env.slack.ephemerals(),
    ]),
    pulls: JSON.stringify(env.github.pulls(REPO)),
    model: JSON.stringify(env.model.requests.map((r) => r.body)),
    pods: JSON.stringify(env.kubernetes?.containerStarts().map((s) => s.env) ?? []),
    log: env.log(),
  };
  const leaks = Object.entries(places).flatMap(([where, text]) =>
    secrets.filter((secret) => text.includes(secret)).map((secret) => `${where}: ${secret.slice(0, 6)}…`),
  );
  expect(leaks).toEqual([]);
  expect(places.slack).toContain("Make add() add."); // the scan saw real content
}

describe("mention → plan → ✅ → pull request", () => {
  test("through the Kubernetes executor (the emulated kubelet runs the real agent)", async () => {
    e2e = await startE2E({ executor: "kubernetes" });
    const { root, mentionTs } = await reportAndMention(e2e, "fix it");
    await planAndApprove(e2e, root, mentionTs);
    await expectPublished(e2e, root, mentionTs);
    // Two Jobs (plan, implement) ran the real agent in pods.
    expect(e2e.kubernetes!.containerStarts().length).toBe(2);
    expectNoSecretLeaked(e2e);
    expect(
      e2e
        .turns()
        .filter((t) => t.phase === "implement")
        .map((t) => t.step),
    ).toEqual([0, 1, 2]);
  }, 90_000);

  test("through the local executor", async () => {
    e2e = await startE2E({ executor: "local" });
    const { root, mentionTs } = await reportAndMention(e2e, "fix it");
    await planAndApprove(e2e, root, mentionTs);
    await expectPublished(e2e, root, mentionTs);
  }, 90_000);

  test("mode=auto skips the approval", async () => {
    e2e = await startE2E({ executor: "local" });
    const { root, mentionTs } = await reportAndMention(e2e, "fix it mode=auto");
    // A quick run's progress may coalesce into a single edit (the notifier paces chat.update).
    await expectPublished(e2e, root, mentionTs, 1);
    // No plan run, no plan message.
    expect(e2e.turns().some((t) => t.phase === "plan")).toBe(false);
    expect(e2e.botMessages(root).some((m) => m.text.includes("Make add() add."))).toBe(false);
  }, 90_000);
});
