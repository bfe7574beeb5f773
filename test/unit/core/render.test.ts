// Task → Slack messages: content people rely on, button values, redaction and escaping of untrusted
// text, and Slack's limits under adversarial input (huge summaries, 10 000 steps, 5 000 evidence rows).
import { describe, expect, test } from "@jest/globals";
import { createRedactor } from "../../../src/core/redact.js";
import {
  ACTION_IDS,
  enforceLimits,
  formatCost,
  formatDuration,
  formatTokens,
  parseChooseValue,
  parseRepoPickValue,
  renderAttemptsSummary,
  renderBugOffer,
  renderHelp,
  renderHome,
  renderPlan,
  renderRepoPicker,
  renderResult,
  renderStatus,
  renderTaskList,
  SLACK_LIMITS,
  TRUNCATED,
  type RenderContext,
  type SlackMessage,
} from "../../../src/core/render.js";
import {
  newTask,
  type AttemptResult,
  type Task,
  type TaskId,
  type TaskState,
} from "../../../src/core/task.js";
import type { SlackBlock } from "../../../src/core/ports/chat.js";
import { validateBlocks, validateMessage } from "../../emulators/slack/limits.js";

const SECRET = "sup3r-s3cret-t0ken-value";
const ID: TaskId = "T-ABC123";
const ctx: RenderContext = { now: new Date("2026-01-01T00:03:05Z"), redact: createRedactor([SECRET]) };
const MB = 1024 * 1024;

function makeTask(overrides: Partial<Task> = {}): Task {
  const task = newTask({
    id: ID,
    now: "2026-01-01T00:00:00.000Z",
    requester: { userId: "U01REQ" },
    channelId: "C01CHAN",
    threadTs: "1700000000.000100",
    triggerTs: "1700000000.000100",
    source: "mention",
    text: "fix the login redirect loop",
    repo: "acme/web",
    mode: "plan",
    attempts: 1,
  });
  return { ...task, updatedAt: "2026-01-01T00:02:00.000Z", ...overrides };
}

function attempt(n: number, overrides: Partial<AttemptResult> = {}): AttemptResult {
  return {
    attempt: n,
    runId: `t-abc123-i1-a${n}`,
    outcome: "changes",
    summary: `attempt ${n} summary`,
    headBranch: `baton/t-abc123-a${n}`,
    headSha: "a".repeat(40),
    filesChanged: ["src/a.ts"],
    evidence: [{ argv: ["npm", "test"], exitCode: 0, durationMs: 1500 }],
    score: n / 10,
    testsPassed: n % 2 === 1,
    failingCommands: n % 2 === 1 ? 0 : 2,
    ...overrides,
  };
}

/** Every string anywhere in the blocks. */
function allStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) allStrings(v, out);
  else if (value !== null && typeof value === "object")
    for (const v of Object.values(value)) allStrings(v, out);
  return out;
}

function texts(message: SlackMessage): string {
  return [message.text, ...allStrings(message.blocks)].join("\n");
}

function buttons(blocks: SlackBlock[]): Array<{ action_id: string; value: string; text: string }> {
  const found: Array<{ action_id: string; value: string; text: string }> = [];
  const visit = (element: unknown): void => {
    const e = element as { type?: string; action_id?: string; value?: string; text?: { text?: string } };
    if (e?.type === "button")
      found.push({ action_id: e.action_id ?? "", value: e.value ?? "", text: e.text?.text ?? "" });
  };
  for (const block of blocks) {
    if (Array.isArray(block["elements"])) for (const e of block["elements"]) visit(e);
    visit(block["accessory"]);
  }
  return found;
}

function textLength(blocks: SlackBlock[]): number {
  let n = 0;
  const add = (v: unknown): void => {
    const t = (v as { text?: unknown } | undefined)?.text;
    if (typeof t === "string") n += t.length;
  };
  for (const b of blocks) {
    add(b["text"]);
    for (const key of ["fields", "elements"]) {
      const list = b[key];
      if (Array.isArray(list))
        for (const item of list)
          add(
            (item as { text?: unknown }).text && typeof (item as { text?: unknown }).text === "object"
              ? (item as { text: unknown }).text
              : item,
          );
    }
    if (b["accessory"]) add((b["accessory"] as { text?: unknown }).text);
  }
  return n;
}

/** Slack's limits, the emulator's validator, fences balanced, no live mass mention, no secret. */
function expectWithinLimits(message: SlackMessage, maxBlocks: number = SLACK_LIMITS.messageBlocks): void {
  expect(validateMessage(message.text, message.blocks)).toBeUndefined();
  expect(validateBlocks(message.blocks, maxBlocks)).toBeUndefined();
  expect(message.blocks.length).toBeLessThanOrEqual(maxBlocks);
  expect(message.text.length).toBeGreaterThan(0);
  expect(message.text.length).toBeLessThanOrEqual(SLACK_LIMITS.fallbackText);
  expect(textLength(message.blocks)).toBeLessThanOrEqual(SLACK_LIMITS.totalText);
  for (const block of message.blocks) {
    const text = (block["text"] as { text?: string } | undefined)?.text;
    if (block["type"] === "section" && text !== undefined) {
      expect(text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
      expect((text.match(/```/g) ?? []).length % 2).toBe(0);
    }
    if (block["type"] === "context") {
      for (const e of block["elements"] as Array<{ text?: string }>)
        expect((e.text ?? "").length).toBeLessThanOrEqual(SLACK_LIMITS.contextText);
    }
    if (block["type"] === "header") expect(text!.length).toBeLessThanOrEqual(SLACK_LIMITS.headerText);
  }
  const all = texts(message);
  expect(all).not.toContain("<!");
  expect(all).not.toMatch(/@(channel|here|everyone)\b/i);
  expect(all).not.toContain(SECRET);
  // Untrusted mentions and links from HOSTILE stay inert.
  expect(all).not.toContain("<@U999>");
  expect(all).not.toContain("<https://evil");
}

const HOSTILE = `<!channel> @here <@U999> <https://evil.example|click> ${SECRET} `;

describe("renderStatus", () => {
  test("an implementing task: id, state, repo, mode, checklist, last command, elapsed, tokens, cost, cancel", () => {
    const task = makeTask({
      state: "implementing",
      attempts: 1,
      progress: {
        steps: [
          { step: "read the router", status: "completed" },
          { step: "fix the redirect", status: "in_progress" },
          { step: "run the tests", status: "pending" },
        ],
        lastCommand: { argv: ["npm", "test", "--", "login spec"], exitCode: 1, durationMs: 12_345 },
        usage: { promptTokens: 12_000, completionTokens: 345, cachedTokens: 0, costUsd: 0.4213 },
      },
    });
    const message = renderStatus(task, ctx);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toContain("T-ABC123");
    expect(all).toContain("Implementing");
    expect(all).toContain("`acme/web`");
    expect(all).toContain("plan first");
    expect(all).toContain("✅ read the router\n▶️ fix the redirect\n⬜ run the tests");
    expect(all).toContain("`npm test -- 'login spec'` → exit 1 in 12.3s");
    expect(all).toContain("Elapsed 3m 05s");
    expect(all).toContain("12,345 tokens · $0.42");
    expect(all).toContain("<@U01REQ>");
    expect(message.text).toContain("T-ABC123");
    expect(buttons(message.blocks)).toEqual([{ action_id: ACTION_IDS.cancel, value: ID, text: "Cancel" }]);
  });

  test("queue position while queued, per attempt for best-of-N", () => {
    const single = makeTask({
      state: "planning",
      launch: 1,
      runs: [{ runId: "r", phase: "plan", attempt: 1, launch: 1, status: "queued", queuePosition: 4 }],
    });
    expect(texts(renderStatus(single, ctx))).toContain("Queued, position 4");
    const multi = makeTask({
      state: "implementing",
      attempts: 3,
      round: 2,
      launch: 2,
      runs: [
        { runId: "old", phase: "plan", attempt: 1, launch: 1, status: "succeeded" },
        { runId: "a1", phase: "implement", attempt: 1, launch: 2, status: "running" },
        { runId: "a2", phase: "implement", attempt: 2, launch: 2, status: "queued", queuePosition: 2 },
        { runId: "a3", phase: "implement", attempt: 3, launch: 2, status: "queued" },
      ],
    });
    const all = texts(renderStatus(multi, ctx));
    expect(all).toContain("Attempt 1: running · Attempt 2: queued (position 2) · Attempt 3: queued");
    expect(all).toContain("3 attempts, round 2");
  });

  test("failed: reason and a Retry button; terminal states have no Cancel; the clock stops", () => {
    const failed = makeTask({
      state: "failed",
      failure: { code: "oom_killed", message: "The agent ran out of memory." },
    });
    const message = renderStatus(failed, ctx);
    expectWithinLimits(message);
    expect(texts(message)).toContain("The agent ran out of memory.");
    expect(texts(message)).toContain("Took 2m 00s");
    expect(texts(message)).toContain("/baton retry T-ABC123");
    expect(buttons(message.blocks)).toEqual([{ action_id: ACTION_IDS.retry, value: ID, text: "Retry" }]);
    for (const state of [
      "no_change",
      "rejected",
      "expired",
      "cancelled",
      "pr_opened",
    ] satisfies TaskState[]) {
      expect(buttons(renderStatus(makeTask({ state }), ctx).blocks)).toEqual([]);
    }
  });

  test("the thread permalink, when given, is linked", () => {
    const message = renderStatus(makeTask(), {
      ...ctx,
      permalink: "https://acme.slack.com/archives/C01CHAN/p1",
    });
    expect(texts(message)).toContain("<https://acme.slack.com/archives/C01CHAN/p1|thread>");
  });

  test("waiting for a repository", () => {
    const task = makeTask({ repo: undefined });
    expect(texts(renderStatus(task, ctx))).toContain("Waiting for a repository");
    expect(texts(renderStatus(task, ctx))).toContain("_not chosen yet_");
  });

  test("adversarial: 10 000 steps, 1 MB request, mass mentions and secrets everywhere", () => {
    const task = makeTask({
      state: "implementing",
      request: { text: HOSTILE.repeat(MB / HOSTILE.length) },
      progress: {
        steps: Array.from({ length: 10_000 }, (_, i) => ({
          step: `${HOSTILE}${i}`.repeat(5),
          status: i < 5000 ? "completed" : "pending",
        })),
        lastCommand: { argv: ["sh", "-c", `${HOSTILE}`.repeat(100)], exitCode: null, durationMs: 5 },
        usage: { promptTokens: 1, completionTokens: 1, cachedTokens: 0, costUsd: 0 },
      },
      failure: { code: "x", message: HOSTILE.repeat(10_000) },
    });
    const start = performance.now();
    const message = renderStatus(task, ctx);
    expect(performance.now() - start).toBeLessThan(2000);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toContain("5,000 of 10,000 steps done");
    expect(all).toMatch(/more steps \(truncated\)/);
    expect(all).toContain("&lt;!channel&gt;");
    expect(all).toContain("[REDACTED]");
    expect(buttons(message.blocks)).toEqual([{ action_id: ACTION_IDS.cancel, value: ID, text: "Cancel" }]);
  });
});

describe("renderPlan", () => {
  test("summary, numbered steps, reaction hint, Approve/Reject buttons", () => {
    const task = makeTask({
      state: "awaiting_approval",
      plan: { summary: "Fix the redirect.", steps: ["Read the router", "Patch it", "Test"] },
    });
    const message = renderPlan(task, ctx);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toContain("Fix the redirect.");
    expect(all).toContain("1. Read the router\n2. Patch it\n3. Test");
    expect(all).toContain("React ✅ to approve or ❌ to reject");
    expect(buttons(message.blocks)).toEqual([
      { action_id: ACTION_IDS.approve, value: ID, text: "Approve" },
      { action_id: ACTION_IDS.reject, value: ID, text: "Reject" },
    ]);
  });

  test("after approval: who approved, no buttons", () => {
    const task = makeTask({
      state: "implementing",
      plan: { summary: "s", steps: ["a"], approvedBy: "U01APP" },
    });
    const message = renderPlan(task, ctx);
    expect(texts(message)).toContain("Approved by <@U01APP>");
    expect(buttons(message.blocks)).toEqual([]);
  });

  test("adversarial: 1 MB summary and 10 000 steps of mass mentions keep the buttons", () => {
    const task = makeTask({
      state: "awaiting_approval",
      plan: {
        summary: "```" + HOSTILE.repeat(MB / HOSTILE.length),
        steps: Array.from({ length: 10_000 }, (_, i) => `${HOSTILE} step ${i}`),
      },
    });
    const message = renderPlan(task, ctx);
    expectWithinLimits(message);
    expect(texts(message)).toContain(TRUNCATED);
    expect(buttons(message.blocks).map((b) => b.action_id)).toEqual([ACTION_IDS.approve, ACTION_IDS.reject]);
  });
});

describe("renderResult", () => {
  const pr = {
    number: 42,
    url: "https://github.com/acme/web/pull/42",
    headBranch: "baton/t-abc123-a2",
    attempt: 2,
  };

  test("pr_opened: PR link, summary, evidence of the published attempt, files, cost", () => {
    const task = makeTask({
      state: "pr_opened",
      attempts: 2,
      pr,
      resultSummary: "Fixed the loop by checking the session first.",
      attemptResults: [
        attempt(1, { evidence: [{ argv: ["echo", "not-this-one"], exitCode: 0, durationMs: 1 }] }),
        attempt(2, {
          evidence: [
            { argv: ["npm", "ci"], exitCode: 0, durationMs: 20_500 },
            { argv: ["npm", "test"], exitCode: 1, durationMs: 3000 },
            { argv: ["npm", "test"], exitCode: null, durationMs: 600_000, timedOut: true },
          ],
          filesChanged: ["src/router.ts", "test/router.test.ts"],
        }),
      ],
      progress: {
        steps: [],
        usage: { promptTokens: 1000, completionTokens: 234, cachedTokens: 0, costUsd: 1.5 },
      },
    });
    const message = renderResult(task, ctx);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toContain("<https://github.com/acme/web/pull/42|#42 in acme/web>");
    expect(message.text).toContain("https://github.com/acme/web/pull/42");
    expect(all).toContain("Fixed the loop by checking the session first.");
    expect(all).toMatch(/exit 0 +20\.5s {2}npm ci/);
    expect(all).toMatch(/exit 1 +3\.0s {2}npm test/);
    expect(all).toMatch(/timed out +10m 00s {2}npm test/);
    expect(all).not.toContain("not-this-one");
    expect(all).toContain("`src/router.ts`, `test/router.test.ts`");
    expect(all).toContain("Model cost: $1.50 (1,234 tokens)");
    expect(all).toContain("Attempt 2 of 2 published");
  });

  test("failed: reason, log tail in a code block (its end kept), cost so far, how to retry", () => {
    const logTail = Array.from(
      { length: 5000 },
      (_, i) => `log line ${i} ${i === 4999 ? "THE-END" : ""}`,
    ).join("\n");
    const task = makeTask({
      state: "failed",
      failure: { code: "budget_exhausted", message: "The token budget ran out.", logTail },
    });
    const message = renderResult(task, ctx);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toContain("The token budget ran out.");
    expect(all).toContain("`budget_exhausted`");
    expect(all).toContain("THE-END");
    expect(all).not.toContain("log line 0 ");
    expect(all).toContain("earlier lines truncated");
    expect(all).toContain("Cost so far: $0.00 (0 tokens)");
    expect(all).toContain("React 🔁 on the status message");
    expect(all).toContain("/baton retry T-ABC123");
    expect(buttons(message.blocks)).toEqual([{ action_id: ACTION_IDS.retry, value: ID, text: "Retry" }]);
  });

  test.each([
    ["no_change", /finished without changes/],
    ["rejected", /plan was rejected/],
    ["cancelled", /was cancelled/],
    ["expired", /not approved in time/],
  ] satisfies Array<[TaskState, RegExp]>)("%s: one clear sentence", (state, sentence) => {
    const message = renderResult(makeTask({ state }), ctx);
    expectWithinLimits(message);
    expect(message.text).toMatch(sentence);
    expect(texts(message)).toMatch(sentence);
  });

  test("adversarial: 5 000 evidence rows, 10 000 files, 1 MB summary and log", () => {
    const huge = HOSTILE.repeat(MB / HOSTILE.length);
    const task = makeTask({
      state: "pr_opened",
      pr: { ...pr, attempt: 1 },
      resultSummary: huge,
      attemptResults: [
        attempt(1, {
          evidence: Array.from({ length: 5000 }, (_, i) => ({
            argv: ["run", `${HOSTILE}${i}`, "```"],
            exitCode: i % 3,
            durationMs: i,
          })),
          filesChanged: Array.from({ length: 10_000 }, (_, i) => `src/${HOSTILE}/${i}.ts`),
        }),
      ],
    });
    const start = performance.now();
    const message = renderResult(task, ctx);
    expect(performance.now() - start).toBeLessThan(2000);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toMatch(/more commands \(truncated\)/);
    expect(all).toMatch(/more \(truncated\)/);
    expect(all).toContain("pull/42");

    const failed = renderResult(
      makeTask({ state: "failed", failure: { code: "x", message: huge, logTail: huge } }),
      ctx,
    );
    expectWithinLimits(failed);
    expect(buttons(failed.blocks).map((b) => b.action_id)).toEqual([ACTION_IDS.retry]);
  });

  test("a PR URL that is not http(s) is not linked", () => {
    const task = makeTask({ state: "pr_opened", pr: { ...pr, url: "javascript:alert(1)|x>" } });
    const all = texts(renderResult(task, ctx));
    expect(all).not.toContain("<javascript:");
  });
});

describe("renderAttemptsSummary", () => {
  test("one row per attempt, the published one marked, choose buttons carry task:attempt", () => {
    const task = makeTask({
      state: "pr_opened",
      attempts: 3,
      pr: {
        number: 7,
        url: "https://github.com/acme/web/pull/7",
        headBranch: "baton/t-abc123-a1",
        attempt: 1,
      },
      attemptResults: [
        attempt(3, { outcome: "failed" }),
        attempt(1, { score: 0.87 }),
        attempt(2, { filesChanged: ["a", "b", "c"] }),
      ],
    });
    const message = renderAttemptsSummary(task, ctx);
    expectWithinLimits(message);
    const all = texts(message);
    expect(all).toMatch(
      /:one: \*Attempt 1\* :star: \*published\* · score 0\.87 · tests :white_check_mark: passed · 0 failing commands · 1 file changed/,
    );
    expect(all).toMatch(
      /:two: \*Attempt 2\* · score 0\.20 · tests :x: not passing · 2 failing commands · 3 files changed/,
    );
    expect(all).toMatch(/:three: \*Attempt 3\* · failed/);
    expect(all).toContain("React :one: … :three:");
    // Only attempts with changes that are not already published can be chosen.
    expect(buttons(message.blocks)).toEqual([
      { action_id: ACTION_IDS.choose, value: "T-ABC123:2", text: "Choose #2" },
    ]);
    expect(parseChooseValue("T-ABC123:2")).toEqual({ taskId: ID, attempt: 2 });
    expect(parseChooseValue("T-ABC123")).toBeUndefined();
  });
});

describe("lists, help, home, picker, bug offer", () => {
  test("help covers the grammar", () => {
    const message = renderHelp();
    expectWithinLimits(message);
    const all = texts(message);
    for (const word of [
      "repo=owner/name",
      "attempts=1..4",
      "mode=plan|auto",
      "/baton list",
      "/baton budget",
      "/baton config repo",
      ":hammer_and_wrench:",
    ]) {
      expect(all).toContain(word);
    }
  });

  test("task list: one line per task, PR links, adversarial size", () => {
    const tasks = Array.from({ length: 5000 }, (_, i) =>
      makeTask({
        state: i % 2 ? "failed" : "pr_opened",
        request: { text: HOSTILE.repeat(50) },
        pr: { number: i, url: `https://github.com/acme/web/pull/${i}`, headBranch: "b", attempt: 1 },
      }),
    );
    const message = renderTaskList(tasks, ctx);
    expectWithinLimits(message);
    expect(texts(message)).toContain("<https://github.com/acme/web/pull/0|PR #0>");
    expect(texts(message)).toMatch(/truncated/);
    const linked = renderTaskList(tasks.slice(0, 2), ctx, {
      [ID]: "https://acme.slack.com/archives/C01CHAN/p1",
    });
    expect(texts(linked)).toContain("*<https://acme.slack.com/archives/C01CHAN/p1|T-ABC123>*");
    const empty = renderTaskList([], ctx);
    expectWithinLimits(empty);
    expect(texts(empty)).toContain("no tasks");
  });

  test("home: budget and tasks within the 100-block view limit", () => {
    const tasks = Array.from({ length: 500 }, (_, i) =>
      makeTask({ state: i % 3 ? "implementing" : "no_change", request: { text: HOSTILE } }),
    );
    const blocks = renderHome({ tasks, budget: { spentUsd: 3.456, limitUsd: 25 } }, ctx);
    expectWithinLimits({ text: "home", blocks }, SLACK_LIMITS.viewBlocks);
    expect(allStrings(blocks).join("\n")).toContain("$3.46 of $25.00");
  });

  test("repo picker: a select whose options carry request id and repo; none → how to name one", () => {
    const message = renderRepoPicker({
      requestId: "req-1",
      repos: ["acme/web", "acme/api", ...Array.from({ length: 300 }, (_, i) => `acme/r${i}`)],
    });
    expectWithinLimits(message);
    const select = message.blocks[0]?.["accessory"] as {
      action_id: string;
      options: Array<{ value: string }>;
    };
    expect(select.action_id).toBe(ACTION_IDS.repoPick);
    expect(select.options).toHaveLength(SLACK_LIMITS.selectOptions);
    expect(select.options[0]?.value).toBe("req-1:acme/web");
    expect(parseRepoPickValue("req-1:acme/web")).toEqual({ requestId: "req-1", repo: "acme/web" });
    const none = renderRepoPicker({ requestId: "req-1", repos: [] });
    expectWithinLimits(none);
    expect(texts(none)).toContain("repo=owner/name");
  });

  test("bug offer", () => {
    const message = renderBugOffer();
    expectWithinLimits(message);
    expect(message.text).toBe(
      "Looks like a bug report. React :hammer_and_wrench: or mention @Baton to have me try a fix.",
    );
    expect(buttons(message.blocks).map((b) => b.action_id)).toEqual([ACTION_IDS.fix]);
  });
});

describe("enforceLimits", () => {
  const section = (text: string): SlackBlock => ({ type: "section", text: { type: "mrkdwn", text } });
  const actionsBlock: SlackBlock = {
    type: "actions",
    elements: [{ type: "button", text: { type: "plain_text", text: "Go" }, action_id: "go", value: "v" }],
  };

  test("more than 50 blocks: cut visibly, buttons kept", () => {
    const blocks = [...Array.from({ length: 80 }, (_, i) => section(`block ${i}`)), actionsBlock];
    const out = enforceLimits({ text: "t", blocks });
    expectWithinLimits(out);
    expect(out.blocks).toHaveLength(50);
    expect(out.blocks[out.blocks.length - 1]).toEqual(actionsBlock);
    expect(texts(out)).toContain("truncated: 32 more blocks");
    expect(texts(out)).toContain("block 47");
    expect(texts(out)).not.toContain("block 48");
  });

  test("long section text is cut with a marker and an open code fence is closed", () => {
    const out = enforceLimits({ text: "t", blocks: [section("intro\n```\n" + "x".repeat(10_000))] });
    expectWithinLimits(out);
    const text = (out.blocks[0]?.["text"] as { text: string }).text;
    expect(text.endsWith("```\n" + TRUNCATED)).toBe(true);
  });

  test("a cut never splits an entity or a link", () => {
    const entity = enforceLimits({ text: "t", blocks: [section("a".repeat(2983) + "&amp;&amp;&amp;&amp;")] });
    expect((entity.blocks[0]?.["text"] as { text: string }).text).toMatch(/a\n… \(truncated\)$/);
    const linked = enforceLimits({
      text: "t",
      blocks: [section("a".repeat(2980) + "<https://example.com/x|label>")],
    });
    expect((linked.blocks[0]?.["text"] as { text: string }).text).not.toContain("<https");
  });

  test("total text over 12 000 characters: later blocks dropped with a marker", () => {
    const blocks = [...Array.from({ length: 10 }, (_, i) => section(`${i}`.repeat(2500))), actionsBlock];
    const out = enforceLimits({ text: "t", blocks });
    expectWithinLimits(out);
    expect(texts(out)).toContain("message too long");
    expect(out.blocks[out.blocks.length - 1]).toEqual(actionsBlock);
  });

  test("fallback text, headers, fields, context and buttons are clamped; live <! is defused", () => {
    const out = enforceLimits({
      text: "<!channel> " + "y".repeat(5000),
      blocks: [
        { type: "header", text: { type: "plain_text", text: "h".repeat(500) } },
        {
          type: "section",
          fields: Array.from({ length: 15 }, () => ({ type: "mrkdwn", text: "f".repeat(700) })),
        },
        {
          type: "context",
          elements: Array.from({ length: 15 }, () => ({ type: "mrkdwn", text: "<!here> c" })),
        },
        {
          type: "actions",
          elements: [
            {
              type: "button",
              text: { type: "plain_text", text: "b".repeat(200) },
              action_id: "a",
              value: "v",
            },
          ],
        },
        { type: "section", text: { type: "mrkdwn", text: "" } },
      ],
    });
    expectWithinLimits(out);
    expect(out.text.length).toBeLessThanOrEqual(3000);
    expect(out.text).toContain(TRUNCATED);
    expect(out.text.startsWith("&lt;!channel")).toBe(true);
    expect((out.blocks[1]?.["fields"] as unknown[]).length).toBe(10);
    expect((out.blocks[2]?.["elements"] as unknown[]).length).toBe(10);
    // The empty section is dropped rather than sent (Slack refuses empty text).
    expect(out.blocks).toHaveLength(4);

    // Fields that do not fit the total are dropped, the ones that do are kept.
    const wide = enforceLimits({
      text: "t",
      blocks: [
        {
          type: "section",
          fields: Array.from({ length: 10 }, (_, i) => ({ type: "mrkdwn", text: `${i}`.repeat(2000) })),
        },
      ],
    });
    expectWithinLimits(wide);
    expect((wide.blocks[0]?.["fields"] as unknown[]).length).toBe(5);
    expect(texts(wide)).toContain("message too long");
  });
});

describe("formatting", () => {
  test("cost, tokens, durations", () => {
    expect(formatCost(0.4213)).toBe("$0.42");
    expect(formatCost(Number.NaN)).toBe("$0.00");
    expect(formatTokens(1_234_567)).toBe("1,234,567");
    expect(formatDuration(850)).toBe("850ms");
    expect(formatDuration(12_345)).toBe("12.3s");
    expect(formatDuration(185_000)).toBe("3m 05s");
    expect(formatDuration(3_780_000)).toBe("1h 03m");
    expect(formatDuration(2 * 86_400_000 + 3_600_000)).toBe("2d 1h");
  });
});
