// End-to-end follow-ups: a mention while the implement run is active reaches the running agent (the
// model sees it in a later request); after the pull request is open, a mention starts a new implement
// run on the same branch whose commit lands on the same pull request, and the status message shows
// round 2.
import { execFileSync } from "node:child_process";
import { afterEach, expect, test } from "@jest/globals";
import { BOT_USER, CHANNEL, FIX_PATCH, REPO, startE2E, type E2E, type Turn } from "./harness.js";
import type { ScriptedReply } from "../emulators/model/index.js";

let e2e: E2E | undefined;

afterEach(async () => {
  await e2e?.close();
  e2e = undefined;
});

const WHILE_RUNNING = "keep-the-name-add please";
const AFTER_PR = "add-a-doc-comment please";

const DOC_PATCH = [
  "*** Begin Patch",
  "*** Update File: math.js",
  "@@",
  "-exports.add = function add(a, b) {",
  "+// Adds two numbers.",
  "+exports.add = function add(a, b) {",
  "*** End Patch",
].join("\n");

const textOf = (m: { text: string; blocks?: unknown[] }) => `${m.text}\n${JSON.stringify(m.blocks ?? [])}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function git(env: E2E, ...args: string[]): string {
  return execFileSync("git", ["--git-dir", env.github.bareRepoPath(REPO), ...args], { encoding: "utf8" });
}

test("a mention reaches the running agent; after the PR, a follow-up adds a commit to the same PR", async () => {
  let followUpPosted = false;
  const shell = (): ScriptedReply => ({
    toolCalls: [{ name: "shell", arguments: { command: ["node", "test.js"] } }],
  });
  const brain = async (turn: Turn): Promise<ScriptedReply> => {
    if (turn.phase === "classify") return { content: "no" };
    if (turn.phase === "plan") throw new Error("no plan run expected in mode=auto");
    if (turn.task.includes(AFTER_PR)) {
      // Round 2 on the existing branch: the fix is there already; add the comment, test, finish.
      if (turn.step === 0) return { toolCalls: [{ name: "apply_patch", arguments: { patch: DOC_PATCH } }] };
      if (turn.step === 1) return shell();
      return { toolCalls: [{ name: "finish", arguments: { summary: "Document add()" } }] };
    }
    if (turn.step === 0) {
      // Hold the first turn until the thread mention has been posted, so it arrives mid-run.
      const deadline = Date.now() + 20_000;
      while (!followUpPosted && Date.now() < deadline) await sleep(25);
      return { toolCalls: [{ name: "apply_patch", arguments: { patch: FIX_PATCH } }] };
    }
    // Keep working (bounded) until the thread message shows up in the conversation.
    if (turn.allText.includes(WHILE_RUNNING) || turn.step > 60) {
      return { toolCalls: [{ name: "finish", arguments: { summary: "Fix add() to add" } }] };
    }
    await sleep(200);
    return shell();
  };
  e2e = await startE2E({ executor: "kubernetes", brain });
  const env = e2e;

  const { ts: root } = await env.slack.user("U0REPORTER").postMessage({
    channel: CHANNEL,
    text: "add(2, 3) returns -1 instead of 5",
  });
  await env.say(`<@${BOT_USER}> fix it mode=auto`, root);
  await env.waitFor("the implement run's first model request", () =>
    env.turns().some((t) => t.phase === "implement"),
  );
  const midRun = await env.say(`<@${BOT_USER}> ${WHILE_RUNNING}`, root);
  followUpPosted = true;
  await env.waitFor(
    "👀 on the mid-run mention",
    () => env.slack.reactions(CHANNEL, midRun).some((r) => r.name === "eyes"),
    5_000,
  );

  const pull = await env.waitFor("the pull request", () => env.github.pulls(REPO)[0]);
  // The running agent got the thread message as a new message, in a later model request.
  const saw = env.turns().find((t) => t.phase === "implement" && t.allText.includes(WHILE_RUNNING));
  expect(saw?.step).toBeGreaterThan(0);
  expect(saw?.task).not.toContain(WHILE_RUNNING);
  // It did not start a second task or run.
  expect(env.github.pulls(REPO)).toHaveLength(1);
  const firstRound = git(env, "rev-list", `main..${pull.head}`).split("\n").filter(Boolean);
  expect(firstRound).toHaveLength(1);
  const prUrl = new RegExp(`/acme/widget/pull/${pull.number}\\b`);
  await env.waitFor("the PR link in the thread", () =>
    env.botMessages(root).find((m) => prUrl.test(textOf(m))),
  );
  const status = env.botMessages(root)[0]!;

  // After the PR: a follow-up mention starts round 2 on the same branch.
  await env.say(`<@${BOT_USER}> ${AFTER_PR}`, root);
  await env.waitFor("round 2's commit on the branch", () => {
    const commits = git(env, "rev-list", `main..${pull.head}`).split("\n").filter(Boolean);
    return commits.length === 2 ? commits : undefined;
  });
  expect(git(env, "show", `${pull.head}:math.js`)).toBe(
    "// Adds two numbers.\nexports.add = function add(a, b) {\n  return a + b;\n};\n",
  );
  // The same pull request, still the only one, still open; round 2 worked on the existing branch.
  expect(env.github.pulls(REPO)).toEqual([
    expect.objectContaining({ number: pull.number, state: "open", head: pull.head }),
  ]);
  const round2 = env.turns().find((t) => t.task.includes(AFTER_PR));
  expect(round2?.headBranch).toBe(pull.head);
  expect(round2?.task).toContain("The branch already holds earlier work");
  // Round 2's result is reported in the thread with the same pull request.
  await env.waitFor("round 2's result in the thread", () =>
    env.botMessages(root).find((m) => textOf(m).includes("Document add()") && prUrl.test(textOf(m))),
  );
  // The pull request's description follows the new round (its summary and evidence).
  expect(env.github.pulls(REPO)[0]?.body).toContain("Document add()");
  // One status message, edited in place, now showing round 2.
  await env.waitFor("the status message to show round 2", () =>
    textOf(env.slack.message(CHANNEL, status.ts)!).includes("round 2"),
  );
  expect(env.botMessages(root)[0]!.ts).toBe(status.ts);
  expect(
    env.botMessages(root).filter((m) => textOf(m).includes("*Runs*") || /Requested by/.test(textOf(m))),
  ).toHaveLength(1);
}, 120_000);

test("a mention while the plan awaits approval re-plans; the new plan is the one approved", async () => {
  const FEEDBACK = "only-touch-math-js please";
  e2e = await startE2E({
    executor: "local",
    brain: (turn) => {
      if (turn.phase === "classify") return { content: "no" };
      if (turn.phase === "plan") {
        const revised = turn.task.includes(FEEDBACK);
        if (turn.step === 0)
          return { toolCalls: [{ name: "shell", arguments: { command: ["node", "test.js"] } }] };
        return {
          toolCalls: [
            {
              name: "submit_plan",
              arguments: revised
                ? { summary: "Revised: fix add() in math.js only.", steps: ["Fix add in math.js"] }
                : { summary: "First plan: rewrite the widget.", steps: ["Rewrite everything"] },
            },
          ],
        };
      }
      switch (turn.step) {
        case 0:
          return { toolCalls: [{ name: "apply_patch", arguments: { patch: FIX_PATCH } }] };
        case 1:
          return { toolCalls: [{ name: "shell", arguments: { command: ["node", "test.js"] } }] };
        default:
          return { toolCalls: [{ name: "finish", arguments: { summary: "Fix add() to add" } }] };
      }
    },
  });
  const env = e2e;
  const { ts: root } = await env.slack.user("U0REPORTER").postMessage({
    channel: CHANNEL,
    text: "add(2, 3) returns -1 instead of 5",
  });
  await env.say(`<@${BOT_USER}> fix it`, root);
  const first = await env.waitFor("the first plan", () =>
    env.botMessages(root).find((m) => textOf(m).includes("First plan: rewrite the widget.")),
  );

  await env.say(`<@${BOT_USER}> ${FEEDBACK}`, root);
  const revised = await env.waitFor("the revised plan", () =>
    env.botMessages(root).find((m) => textOf(m).includes("Revised: fix add() in math.js only.")),
  );
  expect(revised.ts).not.toBe(first.ts);
  const replan = env.turns().find((t) => t.phase === "plan" && t.task.includes(FEEDBACK));
  expect(replan?.task).toContain("Feedback on an earlier plan");

  // Approving the replaced plan does nothing; approving the new one implements it.
  await env.react(first.ts, "white_check_mark");
  await env.react(revised.ts, "white_check_mark");
  const pull = await env.waitFor("the pull request", () => env.github.pulls(REPO)[0]);
  expect(git(env, "show", `${pull.head}:math.js`)).toContain("return a + b;");
  const implementTasks = new Set(
    env
      .turns()
      .filter((t) => t.phase === "implement")
      .map((t) => t.task),
  );
  expect([...implementTasks]).toHaveLength(1);
  // The approved plan handed to the agent is the revised one (the thread still shows the first).
  const approved = /<<<DATA approved plan>>>\n([\s\S]*?)<<<END DATA>>>/.exec(
    [...implementTasks][0] ?? "",
  )?.[1];
  expect(approved).toBe("Revised: fix add() in math.js only.\n1. Fix add in math.js\n");
}, 90_000);
