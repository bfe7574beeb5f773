// End-to-end best-of-N: `attempts=2` runs two implement runs of the real agent at once on
// `baton/<id>-a1` and `-a2`; attempt 1 leaves the test failing, attempt 2 fixes it. Baton publishes
// attempt 2 and posts a summary of both attempts; the requester's `one` on that summary publishes
// attempt 1 instead and closes attempt 2's pull request.
import { execFileSync } from "node:child_process";
import { afterEach, expect, test } from "@jest/globals";
import {
  BOT_USER,
  CHANNEL,
  FIX_PATCH,
  REPO,
  REQUESTER,
  WRONG_PATCH,
  implementReply,
  planReply,
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

const textOf = (m: { text: string; blocks?: unknown[] }) => `${m.text}\n${JSON.stringify(m.blocks ?? [])}`;

test("attempts=2: the passing attempt is published, `one` on the summary switches to attempt 1", async () => {
  // Both attempts must be in flight together: each waits (bounded) at its first turn for the other.
  const firstTurns = new Set<string>();
  let overlapped = false;
  e2e = await startE2E({
    executor: "kubernetes",
    brain: async (turn) => {
      if (turn.phase === "classify") return { content: "no" };
      if (turn.phase === "plan") return planReply(turn);
      const branch = turn.headBranch ?? "";
      if (turn.step === 0) {
        firstTurns.add(branch);
        const deadline = Date.now() + 20_000;
        while (firstTurns.size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        if (firstTurns.size >= 2) overlapped = true;
      }
      return branch.endsWith("-a1")
        ? implementReply(turn, WRONG_PATCH, "Multiply in add()")
        : implementReply(turn, FIX_PATCH, "Fix add() to add");
    },
  });
  const env = e2e;
  const { ts: root } = await env.slack.user("U0REPORTER").postMessage({
    channel: CHANNEL,
    text: "add(2, 3) returns -1 instead of 5",
  });
  await env.say(`<@${BOT_USER}> fix it attempts=2 mode=auto`, root);

  const published = await env.waitFor(
    "the pull request of the best attempt",
    () => env.github.pulls(REPO)[0],
    60_000,
  );
  expect(overlapped).toBe(true);
  expect(published).toMatchObject({
    state: "open",
    head: expect.stringMatching(/^baton\/t-[0-9a-z]{6}-a2$/),
  });
  const taskBranch = published.head.replace(/-a2$/, "");
  expect(fileOnBranch(env, published.head, "math.js")).toContain("return a + b;");
  // Both attempts ran on their own branches of the task.
  expect(
    new Set(
      env
        .turns()
        .filter((t) => t.phase === "implement")
        .map((t) => t.headBranch),
    ),
  ).toEqual(new Set([`${taskBranch}-a1`, `${taskBranch}-a2`]));

  const summary = await env.waitFor("the attempts summary", () =>
    env
      .botMessages(root)
      .find((m) => textOf(m).includes(`Attempts for ${taskBranch.slice(6).toUpperCase()}`)),
  );
  // A row per attempt, from the runner's evidence: attempt 1's test failed, attempt 2's passed and
  // attempt 2 is the one published (the summary is posted as the launch ends, while publishing).
  const rows = (summary.blocks as { text?: { text?: string } }[]).map((b) => b.text?.text ?? "");
  const row1 = rows.find((r) => r.includes("*Attempt 1*")) ?? "";
  const row2 = rows.find((r) => r.includes("*Attempt 2*")) ?? "";
  expect({ row1, row2 }).toEqual({
    row1: expect.stringContaining("tests :x: not passing"),
    row2: expect.stringMatching(/:star: \*(published|best, publishing)\*.*tests :white_check_mark: passed/),
  });

  const rowOf = (attempt: number) =>
    ((env.slack.message(CHANNEL, summary.ts)?.blocks ?? []) as { text?: { text?: string } }[])
      .map((b) => b.text?.text ?? "")
      .find((r) => r.includes(`*Attempt ${attempt}*`)) ?? "";
  // Once the pull request is open, the summary is edited to mark attempt 2 as published.
  await env.waitFor("the summary to mark attempt 2 published", () => rowOf(2).includes(":star: *published*"));

  await env.react(summary.ts, "one", REQUESTER);
  const switched = await env.waitFor("attempt 1's pull request", () =>
    env.github.pulls(REPO).find((p) => p.head === `${taskBranch}-a1` && p.state === "open"),
  );
  expect(fileOnBranch(env, switched.head, "math.js")).toContain("return a * b;");
  await env.waitFor("attempt 2's pull request to be closed", () =>
    env.github.pulls(REPO).find((p) => p.head === `${taskBranch}-a2` && p.state === "closed"),
  );
  const prUrl = new RegExp(`/acme/widget/pull/${switched.number}\\b`);
  await env.waitFor("attempt 1's PR link in the thread", () =>
    env.botMessages(root).find((m) => prUrl.test(textOf(m))),
  );
  expect(env.github.pulls(REPO).filter((p) => p.state === "open")).toHaveLength(1);
  // The summary follows the switch: attempt 1 is now the published one.
  await env.waitFor("the summary to mark attempt 1 published", () => rowOf(1).includes(":star: *published*"));
  expect(rowOf(2)).not.toContain(":star:");
}, 120_000);
