// The task state machine: every state x every event type (table), then whole scenarios.
import { describe, expect, test } from "@jest/globals";
import { transition } from "../../../src/core/transitions.js";
import {
  TASK_STATES,
  newTask,
  runIdFor,
  type Actor,
  type Effect,
  type Task,
  type TaskEvent,
  type TaskEventType,
  type TaskState,
  type TransitionResult,
} from "../../../src/core/task.js";
import type { EvidenceEntry } from "../../../src/shared/run-result.js";

// ---------------------------------------------------------------------------------------------
// Fixtures

const ID = "T-ABC123" as const;
const REQ = "U_REQ";
const requester: Actor = { userId: REQ, approver: false, admin: false };
const stranger: Actor = { userId: "U_STRANGER", approver: false, admin: false };
const approver: Actor = { userId: "U_APPROVER", approver: true, admin: false };
const admin: Actor = { userId: "U_ADMIN", approver: false, admin: true };

const P1 = runIdFor(ID, "plan", 1, 1);
const I2A1 = runIdFor(ID, "implement", 2, 1);
const I2A2 = runIdFor(ID, "implement", 2, 2);
const AT = "2026-11-25T12:00:00.000Z";
let clock = 0;
/** Distinct, increasing timestamps for the steps that build fixtures. */
const tick = (): string => new Date(Date.UTC(2026, 10, 25, 10, 0, clock++)).toISOString();

const cmd = (argv: string[], exitCode: number | null): EvidenceEntry => ({ argv, exitCode, durationMs: 5 });
const EVIDENCE_A1 = [cmd(["npm", "ci"], 0), cmd(["npm", "test"], 1)]; // tests fail
const EVIDENCE_A2 = [cmd(["npm", "test"], 0)]; // tests pass
const SHA = "a".repeat(40);
const FAILURE = { code: "budget_exhausted", message: "The run used its whole token budget." };

function received(overrides: Partial<Task> = {}): Task {
  return {
    ...newTask({
      id: ID,
      now: tick(),
      requester: { userId: REQ },
      channelId: "C1",
      threadTs: "100.1",
      triggerTs: "100.1",
      source: "mention",
      text: "fix the login bug",
      repo: "acme/web",
      mode: "plan",
      attempts: 2,
    }),
    version: 1,
    ...overrides,
  };
}

/** Applies events one by one; each must change the task (fixtures are built from real transitions). */
function drive(task: Task, ...events: TaskEvent[]): Task {
  let current = task;
  for (const event of events) {
    const { task: next } = transition(current, event);
    if (next === current) throw new Error(`fixture step ${event.type} did not apply in ${current.state}`);
    current = next;
  }
  return current;
}

const start = (): TaskEvent => ({ type: "start", at: tick() });
const planReady = (runId = P1): TaskEvent => ({
  type: "run.plan_ready",
  at: tick(),
  runId,
  summary: "Fix the session check",
  steps: ["Find the check", "Fix it", "Test it"],
});
const approve = (actor = requester): TaskEvent => ({ type: "approve", at: tick(), actor });
const changesReady = (runId: string, evidence: EvidenceEntry[], files: string[]): TaskEvent => ({
  type: "run.changes_ready",
  at: tick(),
  runId,
  summary: `changes of ${runId}`,
  headSha: SHA,
  filesChanged: files,
  evidence,
});
const noChange = (runId: string, evidence: EvidenceEntry[] = []): TaskEvent => ({
  type: "run.no_change",
  at: tick(),
  runId,
  summary: `nothing to change in ${runId}`,
  evidence,
});
const runFailed = (runId: string, evidence: EvidenceEntry[] = [], failure = FAILURE): TaskEvent => ({
  type: "run.failed",
  at: tick(),
  runId,
  failure,
  evidence,
});
const published = (attempt: number, number: number): TaskEvent => ({
  type: "publish.succeeded",
  at: tick(),
  attempt,
  pr: { number, url: `https://github.com/acme/web/pull/${number}` },
});

function planning(): Task {
  return drive(received(), start());
}
function awaitingApproval(): Task {
  return drive(planning(), planReady());
}
function implementing(): Task {
  return drive(awaitingApproval(), approve());
}
function prOpened(): Task {
  return drive(
    implementing(),
    changesReady(I2A1, EVIDENCE_A1, ["a.ts", "b.ts"]),
    changesReady(I2A2, EVIDENCE_A2, ["a.ts"]),
    published(2, 7),
  );
}

const FIXTURES: Record<TaskState, () => Task> = {
  received: () => received(),
  planning,
  awaiting_approval: awaitingApproval,
  implementing,
  pr_opened: prOpened,
  no_change: () => drive(implementing(), noChange(I2A1), noChange(I2A2)),
  failed: () => drive(planning(), runFailed(P1)),
  rejected: () => drive(awaitingApproval(), { type: "reject", at: tick(), actor: requester }),
  expired: () => drive(awaitingApproval(), { type: "approval.expired", at: tick() }),
  cancelled: () => drive(implementing(), { type: "cancel", at: tick(), actor: requester }),
};

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** `task` with `patch` applied the way transitions do it: `undefined` removes a field. */
function patched(task: Task, patch: Record<string, unknown>): Task {
  const next: Record<string, unknown> = { ...task, ...patch, updatedAt: AT };
  for (const [key, value] of Object.entries(patch)) if (value === undefined) delete next[key];
  return next as unknown as Task;
}

function expectUnchanged(before: Task, result: TransitionResult): void {
  expect(result.task).toBe(before);
  expect(result.effects).toEqual([]);
}

function expectNotice(before: Task, result: TransitionResult, userId: string, text: string | RegExp): void {
  expect(result.task).toBe(before);
  expect(result.effects).toHaveLength(1);
  expect(result.effects[0]).toEqual({
    type: "notify_user",
    userId,
    text: typeof text === "string" ? text : expect.stringMatching(text),
  });
}

function expectChange(
  before: Task,
  result: TransitionResult,
  patch: Record<string, unknown>,
  effects: Effect[],
): void {
  expect(result.task).not.toBe(before);
  expect(result.task).toStrictEqual(patched(before, patch));
  expect(result.effects).toEqual(effects);
}

const UPDATE: Effect = { type: "update_status" };

// ---------------------------------------------------------------------------------------------
// Every state x every event

const SAMPLES = {
  start: { type: "start", at: AT },
  "repo.selected": { type: "repo.selected", at: AT, actor: requester, repo: "acme/other" },
  "repo.selected (stranger)": { type: "repo.selected", at: AT, actor: stranger, repo: "acme/other" },
  approve: { type: "approve", at: AT, actor: requester },
  "approve (stranger)": { type: "approve", at: AT, actor: stranger },
  reject: { type: "reject", at: AT, actor: requester },
  "reject (stranger)": { type: "reject", at: AT, actor: stranger },
  cancel: { type: "cancel", at: AT, actor: requester },
  "cancel (stranger)": { type: "cancel", at: AT, actor: stranger },
  retry: { type: "retry", at: AT, actor: requester },
  "retry (stranger)": { type: "retry", at: AT, actor: stranger },
  choose_attempt: { type: "choose_attempt", at: AT, actor: requester, attempt: 1 },
  "choose_attempt (stranger)": { type: "choose_attempt", at: AT, actor: stranger, attempt: 1 },
  follow_up: { type: "follow_up", at: AT, actor: requester, text: "also fix the footer" },
  "follow_up mode=plan": {
    type: "follow_up",
    at: AT,
    actor: requester,
    text: "also fix the footer",
    mode: "plan",
  },
  "follow_up (stranger)": { type: "follow_up", at: AT, actor: stranger, text: "also fix the footer" },
  "run.queued (plan)": { type: "run.queued", at: AT, runId: P1, position: 3 },
  "run.started (plan)": { type: "run.started", at: AT, runId: P1 },
  "run.progress (plan)": {
    type: "run.progress",
    at: AT,
    runId: P1,
    steps: [{ step: "Read the code", status: "in_progress" }],
  },
  "run.plan_ready (plan)": {
    type: "run.plan_ready",
    at: AT,
    runId: P1,
    summary: "New plan",
    steps: ["One", "Two"],
  },
  "run.failed (plan)": { type: "run.failed", at: AT, runId: P1, failure: FAILURE },
  "run.queued (implement)": { type: "run.queued", at: AT, runId: I2A1, position: 2 },
  "run.started (implement)": { type: "run.started", at: AT, runId: I2A1 },
  "run.progress (implement)": {
    type: "run.progress",
    at: AT,
    runId: I2A1,
    lastCommand: { argv: ["npm", "test"], exitCode: 0, durationMs: 900 },
    usage: { promptTokens: 1000, completionTokens: 200, cachedTokens: 0, costUsd: 0.02 },
  },
  "run.plan_ready (implement run)": {
    type: "run.plan_ready",
    at: AT,
    runId: I2A1,
    summary: "A plan from an implement run",
    steps: ["x"],
  },
  "run.changes_ready (implement)": {
    type: "run.changes_ready",
    at: AT,
    runId: I2A1,
    summary: "Fixed it",
    headSha: SHA,
    filesChanged: ["a.ts"],
    evidence: EVIDENCE_A2,
  },
  "run.no_change (implement)": {
    type: "run.no_change",
    at: AT,
    runId: I2A1,
    summary: "Already fixed",
    evidence: [],
  },
  "run.failed (implement)": {
    type: "run.failed",
    at: AT,
    runId: I2A1,
    failure: FAILURE,
    evidence: EVIDENCE_A1,
  },
  "publish.succeeded (attempt 2, #7)": {
    type: "publish.succeeded",
    at: AT,
    attempt: 2,
    pr: { number: 7, url: "https://github.com/acme/web/pull/7" },
  },
  "publish.succeeded (attempt 1, #8)": {
    type: "publish.succeeded",
    at: AT,
    attempt: 1,
    pr: { number: 8, url: "https://github.com/acme/web/pull/8" },
  },
  "publish.failed (attempt 2)": {
    type: "publish.failed",
    at: AT,
    attempt: 2,
    failure: { code: "publish_refused", message: "The change touches .github/workflows." },
  },
  "approval.expired": { type: "approval.expired", at: AT },
} satisfies Record<string, TaskEvent>;

type SampleName = keyof typeof SAMPLES;
type Expectation = (before: Task, result: TransitionResult) => void;

// Adding an event type to TaskEvent fails compilation here until the table covers it.
const EVENT_TYPES: Record<TaskEventType, true> = {
  start: true,
  "repo.selected": true,
  approve: true,
  reject: true,
  cancel: true,
  retry: true,
  choose_attempt: true,
  follow_up: true,
  "run.queued": true,
  "run.started": true,
  "run.progress": true,
  "run.plan_ready": true,
  "run.changes_ready": true,
  "run.no_change": true,
  "run.failed": true,
  "publish.succeeded": true,
  "publish.failed": true,
  "approval.expired": true,
};

const notAllowed = (what: string): Expectation => {
  return (before, result) =>
    expectNotice(before, result, stranger.userId, `Only <@${REQ}>, approvers or admins can ${what}`);
};
const onlyFailedRetry = (state: string): Expectation => {
  return (before, result) =>
    expectNotice(before, result, REQ, `Only failed tasks can be retried; ${ID} is ${state}.`);
};
const closesOrphan = (number: number): Expectation => {
  return (before, result) =>
    expectChange(before, result, { closedPrs: [number] }, [{ type: "close_pr", number }, UPDATE]);
};

const FEEDBACK = [{ userId: REQ, text: "also fix the footer", at: AT }];
const PLAN_STEPS = ["Find the check", "Fix it", "Test it"];
const pending = (steps: string[]) => steps.map((step) => ({ step, status: "pending" as const }));

const EXPECTED: Record<TaskState, Partial<Record<SampleName, Expectation>>> = {
  received: {
    start: (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "planning",
          launch: 1,
          runs: [{ runId: P1, phase: "plan", attempt: 1, launch: 1, status: "queued" }],
          progress: { steps: [], usage: before.progress.usage },
        },
        [{ type: "start_runs", phase: "plan", runIds: [P1] }, UPDATE],
      ),
    cancel: (before, result) =>
      expectChange(before, result, { state: "cancelled" }, [{ type: "post_result" }, UPDATE]),
    "cancel (stranger)": notAllowed(`cancel ${ID}.`),
    follow_up: (before, result) => expectChange(before, result, { feedback: FEEDBACK }, [UPDATE]),
    "follow_up mode=plan": (before, result) => expectChange(before, result, { feedback: FEEDBACK }, [UPDATE]),
    "follow_up (stranger)": notAllowed(
      `give ${ID} follow-up instructions. Mention Baton in a new thread to request work of your own.`,
    ),
  },
  planning: {
    cancel: (before, result) =>
      expectChange(
        before,
        result,
        { state: "cancelled", runs: [{ ...before.runs[0], status: "cancelled", endedAt: AT }] },
        [{ type: "cancel_runs", runIds: [P1] }, { type: "post_result" }, UPDATE],
      ),
    "cancel (stranger)": notAllowed(`cancel ${ID}.`),
    follow_up: (before, result) =>
      expectChange(before, result, { feedback: FEEDBACK }, [
        { type: "relay_to_runs", runIds: [P1], text: "also fix the footer", userId: REQ },
        UPDATE,
      ]),
    "follow_up mode=plan": (before, result) =>
      expectChange(before, result, { feedback: FEEDBACK }, [
        { type: "relay_to_runs", runIds: [P1], text: "also fix the footer", userId: REQ },
        UPDATE,
      ]),
    "follow_up (stranger)": notAllowed(
      `give ${ID} follow-up instructions. Mention Baton in a new thread to request work of your own.`,
    ),
    "run.queued (plan)": (before, result) =>
      expectChange(before, result, { runs: [{ ...before.runs[0], queuePosition: 3 }] }, [UPDATE]),
    "run.started (plan)": (before, result) =>
      expectChange(before, result, { runs: [{ ...before.runs[0], status: "running", startedAt: AT }] }, [
        UPDATE,
      ]),
    "run.progress (plan)": (before, result) =>
      expectChange(
        before,
        result,
        { progress: { ...before.progress, steps: [{ step: "Read the code", status: "in_progress" }] } },
        [UPDATE],
      ),
    "run.plan_ready (plan)": (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "awaiting_approval",
          runs: [{ ...before.runs[0], status: "succeeded", endedAt: AT }],
          plan: { summary: "New plan", steps: ["One", "Two"] },
          progress: { ...before.progress, steps: pending(["One", "Two"]) },
        },
        [{ type: "post_plan" }, UPDATE],
      ),
    "run.failed (plan)": (before, result) =>
      expectChange(
        before,
        result,
        { state: "failed", runs: [{ ...before.runs[0], status: "failed", endedAt: AT }], failure: FAILURE },
        [{ type: "post_result" }, UPDATE],
      ),
  },
  awaiting_approval: {
    approve: (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "implementing",
          plan: { ...before.plan, approvedBy: REQ },
          round: 1,
          launch: 2,
          runs: [
            ...before.runs,
            { runId: I2A1, phase: "implement", attempt: 1, launch: 2, status: "queued" },
            { runId: I2A2, phase: "implement", attempt: 2, launch: 2, status: "queued" },
          ],
          progress: { steps: pending(PLAN_STEPS), usage: before.progress.usage },
        },
        [{ type: "start_runs", phase: "implement", runIds: [I2A1, I2A2] }, UPDATE],
      ),
    "approve (stranger)": notAllowed(`approve the plan of ${ID}.`),
    reject: (before, result) =>
      expectChange(before, result, { state: "rejected" }, [{ type: "post_result" }, UPDATE]),
    "reject (stranger)": notAllowed(`reject the plan of ${ID}.`),
    cancel: (before, result) =>
      expectChange(before, result, { state: "cancelled" }, [{ type: "post_result" }, UPDATE]),
    "cancel (stranger)": notAllowed(`cancel ${ID}.`),
    follow_up: (before, result) => expectReplan(before, result),
    "follow_up mode=plan": (before, result) => expectReplan(before, result),
    "follow_up (stranger)": notAllowed(
      `give ${ID} follow-up instructions. Mention Baton in a new thread to request work of your own.`,
    ),
    "approval.expired": (before, result) =>
      expectChange(before, result, { state: "expired" }, [{ type: "post_result" }, UPDATE]),
  },
  implementing: {
    cancel: (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "cancelled",
          runs: [
            before.runs[0],
            ...before.runs.slice(1).map((run) => ({ ...run, status: "cancelled", endedAt: AT })),
          ],
        },
        [{ type: "cancel_runs", runIds: [I2A1, I2A2] }, { type: "post_result" }, UPDATE],
      ),
    "cancel (stranger)": notAllowed(`cancel ${ID}.`),
    choose_attempt: (before, result) => expectNotice(before, result, REQ, /is still working on its result/),
    "choose_attempt (stranger)": notAllowed(`choose which attempt of ${ID} to publish.`),
    follow_up: (before, result) =>
      expectChange(before, result, { feedback: FEEDBACK }, [
        { type: "relay_to_runs", runIds: [I2A1, I2A2], text: "also fix the footer", userId: REQ },
        UPDATE,
      ]),
    "follow_up mode=plan": (before, result) =>
      expectChange(before, result, { feedback: FEEDBACK }, [
        { type: "relay_to_runs", runIds: [I2A1, I2A2], text: "also fix the footer", userId: REQ },
        UPDATE,
      ]),
    "follow_up (stranger)": notAllowed(
      `give ${ID} follow-up instructions. Mention Baton in a new thread to request work of your own.`,
    ),
    "run.queued (implement)": (before, result) =>
      expectChange(before, result, { runs: withRun(before, I2A1, { queuePosition: 2 }) }, [UPDATE]),
    "run.started (implement)": (before, result) =>
      expectChange(before, result, { runs: withRun(before, I2A1, { status: "running", startedAt: AT }) }, [
        UPDATE,
      ]),
    "run.progress (implement)": (before, result) =>
      expectChange(
        before,
        result,
        {
          progress: {
            ...before.progress,
            lastCommand: { argv: ["npm", "test"], exitCode: 0, durationMs: 900 },
            usage: { promptTokens: 1000, completionTokens: 200, cachedTokens: 0, costUsd: 0.02 },
          },
        },
        [UPDATE],
      ),
    "run.changes_ready (implement)": (before, result) =>
      expectChange(
        before,
        result,
        {
          runs: withRun(before, I2A1, { status: "succeeded", endedAt: AT }),
          attemptResults: [
            {
              attempt: 1,
              runId: I2A1,
              outcome: "changes",
              summary: "Fixed it",
              headBranch: "baton/t-abc123-a1",
              headSha: SHA,
              filesChanged: ["a.ts"],
              evidence: EVIDENCE_A2,
              score: 1099,
              testsPassed: true,
              failingCommands: 0,
            },
          ],
        },
        [UPDATE],
      ),
    "run.no_change (implement)": (before, result) =>
      expectChange(
        before,
        result,
        {
          runs: withRun(before, I2A1, { status: "succeeded", endedAt: AT }),
          attemptResults: [
            {
              attempt: 1,
              runId: I2A1,
              outcome: "no_change",
              summary: "Already fixed",
              headBranch: "baton/t-abc123-a1",
              filesChanged: [],
              evidence: [],
              score: -1e6,
              testsPassed: false,
              failingCommands: 0,
            },
          ],
        },
        [UPDATE],
      ),
    "run.failed (implement)": (before, result) =>
      expectChange(
        before,
        result,
        {
          runs: withRun(before, I2A1, { status: "failed", endedAt: AT }),
          attemptResults: [
            {
              attempt: 1,
              runId: I2A1,
              outcome: "failed",
              summary: FAILURE.message,
              headBranch: "baton/t-abc123-a1",
              filesChanged: [],
              evidence: EVIDENCE_A1,
              score: -1e9,
              testsPassed: false,
              failingCommands: 1,
            },
          ],
          // kept as the best-informed failure so far, reported if every attempt fails
          failure: FAILURE,
        },
        [UPDATE],
      ),
  },
  pr_opened: {
    cancel: (before, result) =>
      expectNotice(
        before,
        result,
        REQ,
        /^Nothing is running for T-ABC123: .*close the pull request on GitHub/i,
      ),
    "cancel (stranger)": notAllowed(`cancel ${ID}.`),
    choose_attempt: (before, result) => {
      expect(result.task).toBe(before);
      expect(result.effects).toEqual([{ type: "publish", attempt: 1, runId: I2A1 }]);
    },
    "choose_attempt (stranger)": notAllowed(`choose which attempt of ${ID} to publish.`),
    follow_up: (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "implementing",
          round: 2,
          launch: 3,
          feedback: FEEDBACK,
          runs: [
            ...before.runs,
            {
              runId: runIdFor(ID, "implement", 3, 2),
              phase: "implement",
              attempt: 2,
              launch: 3,
              status: "queued",
            },
          ],
          progress: { steps: [], usage: before.progress.usage },
        },
        [{ type: "start_runs", phase: "implement", runIds: [runIdFor(ID, "implement", 3, 2)] }, UPDATE],
      ),
    "follow_up mode=plan": (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "planning",
          mode: "plan",
          round: 2,
          launch: 3,
          feedback: FEEDBACK,
          runs: [
            ...before.runs,
            { runId: runIdFor(ID, "plan", 3, 1), phase: "plan", attempt: 1, launch: 3, status: "queued" },
          ],
          progress: { steps: [], usage: before.progress.usage },
        },
        [{ type: "start_runs", phase: "plan", runIds: [runIdFor(ID, "plan", 3, 1)] }, UPDATE],
      ),
    "follow_up (stranger)": notAllowed(
      `give ${ID} follow-up instructions. Mention Baton in a new thread to request work of your own.`,
    ),
    "publish.succeeded (attempt 1, #8)": (before, result) =>
      expectChange(
        before,
        result,
        {
          pr: {
            number: 8,
            url: "https://github.com/acme/web/pull/8",
            headBranch: "baton/t-abc123-a1",
            attempt: 1,
          },
          closedPrs: [7],
          resultSummary: `changes of ${I2A1}`,
        },
        [{ type: "close_pr", number: 7 }, { type: "post_result" }, UPDATE],
      ),
    "publish.failed (attempt 2)": (before, result) =>
      expectChange(
        before,
        result,
        { failure: { code: "publish_refused", message: "The change touches .github/workflows." } },
        [{ type: "post_result" }, UPDATE],
      ),
  },
  no_change: {
    retry: onlyFailedRetry("finished without changes"),
    "retry (stranger)": (before, result) =>
      expectNotice(
        before,
        result,
        stranger.userId,
        `Only failed tasks can be retried; ${ID} is finished without changes.`,
      ),
  },
  failed: {
    retry: (before, result) =>
      expectChange(
        before,
        result,
        {
          state: "planning",
          launch: 2,
          runs: [
            ...before.runs,
            { runId: runIdFor(ID, "plan", 2, 1), phase: "plan", attempt: 1, launch: 2, status: "queued" },
          ],
          progress: { steps: [], usage: before.progress.usage },
          failure: undefined,
        },
        [{ type: "start_runs", phase: "plan", runIds: [runIdFor(ID, "plan", 2, 1)] }, UPDATE],
      ),
    "retry (stranger)": notAllowed(`retry ${ID}.`),
  },
  rejected: {
    retry: onlyFailedRetry("rejected"),
    "retry (stranger)": (before, result) =>
      expectNotice(before, result, stranger.userId, `Only failed tasks can be retried; ${ID} is rejected.`),
  },
  expired: {
    retry: onlyFailedRetry("expired"),
    "retry (stranger)": (before, result) =>
      expectNotice(before, result, stranger.userId, `Only failed tasks can be retried; ${ID} is expired.`),
  },
  cancelled: {
    retry: onlyFailedRetry("cancelled"),
    "retry (stranger)": (before, result) =>
      expectNotice(before, result, stranger.userId, `Only failed tasks can be retried; ${ID} is cancelled.`),
    // A publish that lands after the cancel must not leave an untracked pull request open.
    "publish.succeeded (attempt 2, #7)": closesOrphan(7),
    "publish.succeeded (attempt 1, #8)": closesOrphan(8),
  },
};

function expectReplan(before: Task, result: TransitionResult): void {
  const P2 = runIdFor(ID, "plan", 2, 1);
  expectChange(
    before,
    result,
    {
      state: "planning",
      feedback: FEEDBACK,
      launch: 2,
      runs: [...before.runs, { runId: P2, phase: "plan", attempt: 1, launch: 2, status: "queued" }],
      progress: { steps: [], usage: before.progress.usage },
    },
    [{ type: "start_runs", phase: "plan", runIds: [P2] }, UPDATE],
  );
}

function withRun(task: Task, runId: string, patch: Record<string, unknown>): Task["runs"] {
  return task.runs.map((run) => (run.runId === runId ? ({ ...run, ...patch } as Task["runs"][number]) : run));
}

describe("transition: every state x every event", () => {
  test("the samples cover every event type and the fixtures every state", () => {
    expect(new Set(Object.values(SAMPLES).map((event) => event.type))).toEqual(
      new Set(Object.keys(EVENT_TYPES)),
    );
    for (const state of TASK_STATES) expect(FIXTURES[state]().state).toBe(state);
  });

  const cases = TASK_STATES.flatMap((state) =>
    (Object.keys(SAMPLES) as SampleName[]).map((name) => [state, name] as const),
  );
  test.each(cases)("%s + %s", (state, name) => {
    const before = deepFreeze(FIXTURES[state]()); // a transition that mutates its input throws here
    const result = transition(before, SAMPLES[name]);
    const expectation = EXPECTED[state][name];
    if (expectation) expectation(before, result);
    else expectUnchanged(before, result);
  });
});

// ---------------------------------------------------------------------------------------------
// Scenarios

/** Applies an event and returns the new task and effects (for scenarios that look at both). */
function step(task: Task, event: TaskEvent): TransitionResult {
  return transition(deepFreeze(task), event);
}

describe("scenario: plan, approve, best of two, choose the other attempt", () => {
  test("the passing attempt is published, the summary posted, and choosing swaps the pull request", () => {
    let task = awaitingApproval();
    expect(task.plan).toEqual({ summary: "Fix the session check", steps: PLAN_STEPS });

    let r = step(task, approve(approver));
    task = r.task;
    expect(task.state).toBe("implementing");
    expect(task.plan?.approvedBy).toBe(approver.userId);
    expect(r.effects).toEqual([{ type: "start_runs", phase: "implement", runIds: [I2A1, I2A2] }, UPDATE]);

    task = drive(task, { type: "run.queued", at: tick(), runId: I2A2, position: 1 });
    task = drive(
      task,
      { type: "run.started", at: tick(), runId: I2A1 },
      { type: "run.started", at: tick(), runId: I2A2 },
    );
    expect(task.runs.filter((run) => run.status === "running")).toHaveLength(2);
    expect(task.runs.find((run) => run.runId === I2A2)?.queuePosition).toBeUndefined();

    // Attempt 1 ends with failing tests: attempt 2 is still running, so only the status changes.
    r = step(task, changesReady(I2A1, EVIDENCE_A1, ["a.ts", "b.ts"]));
    task = r.task;
    expect(r.effects).toEqual([UPDATE]);
    expect(task.attemptResults[0]).toMatchObject({
      attempt: 1,
      testsPassed: false,
      failingCommands: 1,
      score: 48,
    });

    r = step(task, changesReady(I2A2, EVIDENCE_A2, ["a.ts"]));
    task = r.task;
    expect(task.state).toBe("implementing");
    expect(task.attemptResults[1]).toMatchObject({
      attempt: 2,
      headBranch: "baton/t-abc123-a2",
      testsPassed: true,
      score: 1099,
    });
    expect(r.effects).toEqual([
      { type: "publish", attempt: 2, runId: I2A2 },
      { type: "post_attempts_summary" },
      UPDATE,
    ]);

    r = step(task, published(2, 7));
    task = r.task;
    expect(task.state).toBe("pr_opened");
    expect(task.pr).toEqual({
      number: 7,
      url: "https://github.com/acme/web/pull/7",
      headBranch: "baton/t-abc123-a2",
      attempt: 2,
    });
    expect(task.resultSummary).toBe(`changes of ${I2A2}`);
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);

    // The requester prefers attempt 1.
    r = step(task, { type: "choose_attempt", at: tick(), actor: requester, attempt: 1 });
    expect(r.task).toBe(task);
    expect(r.effects).toEqual([{ type: "publish", attempt: 1, runId: I2A1 }]);

    r = step(task, published(1, 8));
    task = r.task;
    expect(task.pr).toMatchObject({ number: 8, attempt: 1, headBranch: "baton/t-abc123-a1" });
    expect(task.closedPrs).toEqual([7]);
    expect(task.resultSummary).toBe(`changes of ${I2A1}`);
    expect(r.effects).toEqual([{ type: "close_pr", number: 7 }, { type: "post_result" }, UPDATE]);

    // A redelivery of the first publish must not swap back to the closed pull request.
    expectUnchanged(task, step(task, published(2, 7)));
    expectUnchanged(task, step(task, published(1, 8)));

    // Back to attempt 2: a new pull request replaces #8.
    r = step(task, { type: "choose_attempt", at: tick(), actor: admin, attempt: 2 });
    expect(r.effects).toEqual([{ type: "publish", attempt: 2, runId: I2A2 }]);
    task = step(task, published(2, 9)).task;
    expect(task.pr).toMatchObject({ number: 9, attempt: 2 });
    expect(task.closedPrs).toEqual([7, 8]);
  });

  test("ties between attempts publish the lowest attempt", () => {
    const task = drive(implementing(), changesReady(I2A2, EVIDENCE_A2, ["a.ts"]));
    const r = step(task, changesReady(I2A1, EVIDENCE_A2, ["b.ts"]));
    expect(r.effects[0]).toEqual({ type: "publish", attempt: 1, runId: I2A1 });
  });

  test("a failed attempt never wins over one with changes", () => {
    const task = drive(implementing(), runFailed(I2A1, EVIDENCE_A2));
    const r = step(task, changesReady(I2A2, [cmd(["npx", "tsc"], 2)], ["a.ts"]));
    expect(r.task.failure).toBeUndefined(); // the attempt-1 failure is not the task's
    expect(r.effects).toEqual([
      { type: "publish", attempt: 2, runId: I2A2 },
      { type: "post_attempts_summary" },
      UPDATE,
    ]);
  });

  test("choosing an attempt without changes names the ones that can be chosen", () => {
    const task = drive(
      implementing(),
      noChange(I2A1),
      changesReady(I2A2, EVIDENCE_A2, ["a.ts"]),
      published(2, 7),
    );
    expectNotice(
      task,
      step(task, { type: "choose_attempt", at: AT, actor: requester, attempt: 1 }),
      REQ,
      `Attempt 1 of ${ID} has no changes to publish; no other attempt produced changes (attempt 2 is the open pull request).`,
    );
    const three = received({ attempts: 3 });
    const opened = drive(
      three,
      start(),
      planReady(),
      approve(),
      changesReady(runIdFor(ID, "implement", 2, 1), EVIDENCE_A2, ["a"]),
      noChange(runIdFor(ID, "implement", 2, 2)),
      changesReady(runIdFor(ID, "implement", 2, 3), EVIDENCE_A1, ["b"]),
      published(1, 7),
    );
    expectNotice(
      opened,
      step(opened, { type: "choose_attempt", at: AT, actor: requester, attempt: 4 }),
      REQ,
      `Attempt 4 of ${ID} has no changes to publish; you can choose attempt 3.`,
    );
    // Choosing the attempt that is already the pull request does nothing.
    expectUnchanged(opened, step(opened, { type: "choose_attempt", at: AT, actor: requester, attempt: 1 }));
  });
});

describe("scenario: who may act", () => {
  test("a stranger's approval changes nothing and tells them why; an approver's counts", () => {
    const task = awaitingApproval();
    const r = step(task, approve(stranger));
    expectNotice(
      task,
      r,
      stranger.userId,
      `Only <@${REQ}>, approvers or admins can approve the plan of ${ID}.`,
    );
    const approved = step(task, approve(approver)).task;
    expect(approved.state).toBe("implementing");
    expect(approved.plan?.approvedBy).toBe(approver.userId);
    expect(step(task, approve(admin)).task.plan?.approvedBy).toBe(admin.userId);
  });

  test("a stranger cannot choose the repository; the requester can, and the task starts", () => {
    const task = received({ repo: undefined });
    delete (task as Partial<Task>).repo;
    expectUnchanged(task, step(task, start()));
    expectNotice(
      task,
      step(task, { type: "repo.selected", at: AT, actor: stranger, repo: "acme/web" }),
      stranger.userId,
      `Only <@${REQ}>, approvers or admins can choose the repository for ${ID}.`,
    );
    const r = step(task, { type: "repo.selected", at: AT, actor: requester, repo: "acme/web" });
    expect(r.task).toMatchObject({ state: "planning", repo: "acme/web", launch: 1, updatedAt: AT });
    expect(r.effects).toEqual([{ type: "start_runs", phase: "plan", runIds: [P1] }, UPDATE]);
    // A second pick (another click on the picker) is ignored.
    expectUnchanged(
      r.task,
      step(r.task, { type: "repo.selected", at: AT, actor: requester, repo: "acme/api" }),
    );
  });
});

describe("scenario: duplicate and late events", () => {
  test("redelivered run events are ignored once the run ended", () => {
    const task = awaitingApproval();
    expectUnchanged(task, step(task, planReady()));
    expectUnchanged(task, step(task, { type: "run.started", at: AT, runId: P1 }));
    expectUnchanged(task, step(task, runFailed(P1)));

    const one = drive(implementing(), changesReady(I2A1, EVIDENCE_A1, ["a.ts"]));
    expectUnchanged(one, step(one, changesReady(I2A1, EVIDENCE_A1, ["a.ts"])));
    expectUnchanged(one, step(one, runFailed(I2A1)));
    expectUnchanged(one, step(one, { type: "run.progress", at: AT, runId: I2A1, steps: [] }));
  });

  test("events of an older launch's runs are ignored after a re-plan", () => {
    const replanning = drive(awaitingApproval(), {
      type: "follow_up",
      at: tick(),
      actor: requester,
      text: "use the new API",
    });
    expect(replanning.launch).toBe(2);
    // the old plan run (launch 1) reports late
    expectUnchanged(replanning, step(replanning, planReady(P1)));
    const r = step(replanning, planReady(runIdFor(ID, "plan", 2, 1)));
    expect(r.task.state).toBe("awaiting_approval");
    expect(r.effects).toEqual([{ type: "post_plan" }, UPDATE]);
  });

  test("unknown run ids and wrong phases are ignored", () => {
    const task = implementing();
    expectUnchanged(task, step(task, { type: "run.started", at: AT, runId: "t-abc123-i9-a1" }));
    expectUnchanged(task, step(task, planReady(I2A1)));
    const plan = planning();
    expectUnchanged(plan, step(plan, changesReady(P1, [], ["a"])));
  });

  test("queue positions and progress only write when something changed", () => {
    let task = drive(implementing(), { type: "run.queued", at: tick(), runId: I2A1, position: 4 });
    expectUnchanged(task, step(task, { type: "run.queued", at: AT, runId: I2A1, position: 4 }));
    task = drive(task, { type: "run.started", at: tick(), runId: I2A1 });
    // a queue position for a run that already started is stale
    expectUnchanged(task, step(task, { type: "run.queued", at: AT, runId: I2A1, position: 1 }));
    expectUnchanged(task, step(task, { type: "run.started", at: AT, runId: I2A1 }));

    const usage = { promptTokens: 10, completionTokens: 5, cachedTokens: 0, costUsd: 0.001 };
    task = drive(task, { type: "run.progress", at: tick(), runId: I2A1, usage });
    expect(task.progress.usage).toEqual(usage);
    expectUnchanged(task, step(task, { type: "run.progress", at: AT, runId: I2A1, usage: { ...usage } }));
    expectUnchanged(task, step(task, { type: "run.progress", at: AT, runId: I2A1 }));
    // a queued (not yet started) run may report progress too
    const r = step(task, {
      type: "run.progress",
      at: AT,
      runId: I2A2,
      steps: [{ step: "x", status: "completed" }],
    });
    expect(r.task.progress).toEqual({ ...task.progress, steps: [{ step: "x", status: "completed" }] });
  });

  test("a duplicate publish.failed or approval does nothing", () => {
    const opened = prOpened();
    const failure = { code: "publish_refused", message: "protected path" };
    const failedOnce = drive(opened, { type: "publish.failed", at: tick(), attempt: 1, failure });
    expectUnchanged(failedOnce, step(failedOnce, { type: "publish.failed", at: AT, attempt: 1, failure }));
    const working = implementing();
    expectUnchanged(working, step(working, approve()));
  });
});

describe("scenario: failures and retry", () => {
  test("every attempt failing reports the failure of the run that got furthest", () => {
    const deep = {
      code: "deadline_exceeded",
      message: "The run hit its time limit.",
      logTail: "npm test\n...",
    };
    let task = drive(implementing(), runFailed(I2A1, [cmd(["ls"], 0), cmd(["npm", "test"], 1)], deep));
    const r = step(task, runFailed(I2A2, [], FAILURE));
    task = r.task;
    expect(task.state).toBe("failed");
    expect(task.failure).toEqual(deep);
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);

    // Retry: the approved plan is implemented again, best of two, without a new approval.
    const retried = step(task, { type: "retry", at: AT, actor: requester });
    expect(retried.task).toMatchObject({ state: "implementing", launch: 3, round: 1 });
    expect(retried.task.failure).toBeUndefined();
    expect(retried.task.progress.steps).toEqual(pending(PLAN_STEPS));
    expect(retried.effects).toEqual([
      {
        type: "start_runs",
        phase: "implement",
        runIds: [runIdFor(ID, "implement", 3, 1), runIdFor(ID, "implement", 3, 2)],
      },
      UPDATE,
    ]);
    // the runs of the failed launch stay ended
    expectUnchanged(retried.task, step(retried.task, changesReady(I2A1, [], ["a"])));
  });

  test("the later failure wins when it got further", () => {
    const task = drive(implementing(), runFailed(I2A1, [], FAILURE));
    const deeper = { code: "oom_killed", message: "The agent ran out of memory." };
    const r = step(task, runFailed(I2A2, [cmd(["npm", "test"], null)], deeper));
    expect(r.task.failure).toEqual(deeper);
  });

  test("a mode auto task retries by implementing again", () => {
    const auto = drive(received({ mode: "auto", attempts: 1 }), start());
    expect(auto).toMatchObject({ state: "implementing", round: 1, launch: 1 });
    const failed = drive(auto, runFailed(runIdFor(ID, "implement", 1, 1)));
    expect(failed.state).toBe("failed");
    const r = step(failed, { type: "retry", at: AT, actor: approver });
    expect(r.task).toMatchObject({ state: "implementing", round: 1, launch: 2 });
    expect(r.effects).toEqual([
      { type: "start_runs", phase: "implement", runIds: [runIdFor(ID, "implement", 2, 1)] },
      UPDATE,
    ]);
  });

  test("a refused publish fails the task, and retry starts over from the approved plan", () => {
    const task = drive(implementing(), noChange(I2A1), changesReady(I2A2, EVIDENCE_A2, ["a.ts"]));
    const failure = { code: "publish_refused", message: "The change touches .github/workflows/ci.yml." };
    const r = step(task, { type: "publish.failed", at: AT, attempt: 2, failure });
    expect(r.task).toMatchObject({ state: "failed", failure });
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);
    expect(step(r.task, { type: "retry", at: AT, actor: requester }).task.state).toBe("implementing");
  });

  test("publish events for an attempt without changes, or while runs are active, are ignored", () => {
    const task = drive(implementing(), noChange(I2A1));
    expectUnchanged(task, step(task, published(1, 7)));
    const done = drive(task, changesReady(I2A2, EVIDENCE_A2, ["a.ts"]));
    expectUnchanged(done, step(done, published(1, 7)));
    expectUnchanged(done, step(done, { type: "publish.failed", at: AT, attempt: 1, failure: FAILURE }));
  });
});

describe("scenario: outcomes without changes", () => {
  test("no attempt changed anything: no_change with the best summary", () => {
    const task = drive(implementing(), runFailed(I2A1));
    const r = step(task, noChange(I2A2, EVIDENCE_A2));
    expect(r.task).toMatchObject({ state: "no_change", resultSummary: `nothing to change in ${I2A2}` });
    expect(r.task.failure).toBeUndefined();
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);
  });

  test("mode auto goes straight to implementing when a plan arrives", () => {
    const task = drive(planning(), { type: "follow_up", at: tick(), actor: requester, text: "x" });
    const auto = { ...task, mode: "auto" as const };
    const r = step(auto, planReady());
    expect(r.task).toMatchObject({ state: "implementing", round: 1, launch: 2 });
    expect(r.task.plan).toEqual({ summary: "Fix the session check", steps: PLAN_STEPS });
    expect(r.effects).toEqual([{ type: "start_runs", phase: "implement", runIds: [I2A1, I2A2] }, UPDATE]);
  });
});

describe("scenario: cancel", () => {
  test("cancelling while implementing stops every active run, once", () => {
    const task = drive(implementing(), changesReady(I2A1, EVIDENCE_A1, ["a.ts"]));
    const r = step(task, { type: "cancel", at: AT, actor: approver });
    expect(r.task.state).toBe("cancelled");
    expect(r.task.runs.map((run) => run.status)).toEqual(["succeeded", "succeeded", "cancelled"]);
    expect(r.effects).toEqual([{ type: "cancel_runs", runIds: [I2A2] }, { type: "post_result" }, UPDATE]);
    expectUnchanged(r.task, step(r.task, { type: "cancel", at: AT, actor: requester }));
    expectUnchanged(r.task, step(r.task, changesReady(I2A2, EVIDENCE_A2, ["a.ts"])));
  });

  test("cancelling a follow-up run cancels the task", () => {
    const task = drive(prOpened(), { type: "follow_up", at: tick(), actor: requester, text: "rename it" });
    const r = step(task, { type: "cancel", at: AT, actor: requester });
    expect(r.task.state).toBe("cancelled");
    expect(r.effects).toEqual([
      { type: "cancel_runs", runIds: [runIdFor(ID, "implement", 3, 2)] },
      { type: "post_result" },
      UPDATE,
    ]);
  });

  test("cancelling while the result is being published cancels without runs to stop", () => {
    const task = drive(implementing(), noChange(I2A1), changesReady(I2A2, EVIDENCE_A2, ["a.ts"]));
    const r = step(task, { type: "cancel", at: AT, actor: requester });
    expect(r.task.state).toBe("cancelled");
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);
    // the publish finishing afterwards is closed rather than left behind
    expect(step(r.task, published(2, 11)).effects).toEqual([{ type: "close_pr", number: 11 }, UPDATE]);
  });
});

describe("scenario: follow-ups", () => {
  test("a follow-up on the pull request implements on the same branch and updates the same PR", () => {
    const opened = prOpened();
    const I3 = runIdFor(ID, "implement", 3, 2);
    let r = step(opened, { type: "follow_up", at: tick(), actor: requester, text: "also rename the helper" });
    let task = r.task;
    expect(task).toMatchObject({ state: "implementing", round: 2, launch: 3 });
    expect(task.feedback.map((entry) => entry.text)).toEqual(["also rename the helper"]);

    // a thread message while it runs reaches the agent
    r = step(task, { type: "follow_up", at: tick(), actor: approver, text: "keep the old name as an alias" });
    expect(r.effects).toEqual([
      { type: "relay_to_runs", runIds: [I3], text: "keep the old name as an alias", userId: approver.userId },
      UPDATE,
    ]);
    task = r.task;
    expect(task.feedback).toHaveLength(2);

    r = step(task, changesReady(I3, EVIDENCE_A2, ["helper.ts"]));
    task = r.task;
    expect(task.attemptResults.at(-1)).toMatchObject({
      attempt: 2,
      runId: I3,
      headBranch: "baton/t-abc123-a2",
    });
    // a single follow-up run: no attempts summary
    expect(r.effects).toEqual([{ type: "publish", attempt: 2, runId: I3 }, UPDATE]);

    // a follow-up sent while publishing cannot reach any run
    expectNotice(
      task,
      step(task, { type: "follow_up", at: AT, actor: requester, text: "one more thing" }),
      REQ,
      /publishing its result right now/,
    );

    r = step(task, published(2, 7));
    expect(r.task).toMatchObject({ state: "pr_opened", resultSummary: `changes of ${I3}`, closedPrs: [] });
    expect(r.task.pr?.number).toBe(7);
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);
  });

  test("a follow-up that changes nothing or fails leaves the pull request as it was", () => {
    const opened = prOpened();
    const I3 = runIdFor(ID, "implement", 3, 2);
    const running = drive(opened, { type: "follow_up", at: tick(), actor: requester, text: "tidy up" });

    let r = step(running, noChange(I3));
    expect(r.task).toMatchObject({
      state: "pr_opened",
      pr: opened.pr,
      resultSummary: `nothing to change in ${I3}`,
    });
    expect(r.task.failure).toBeUndefined();
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);

    r = step(running, runFailed(I3));
    expect(r.task).toMatchObject({
      state: "pr_opened",
      pr: opened.pr,
      failure: FAILURE,
      resultSummary: opened.resultSummary,
    });
    expect(r.effects).toEqual([{ type: "post_result" }, UPDATE]);

    // the next follow-up clears the old failure
    const again = step(r.task, { type: "follow_up", at: AT, actor: requester, text: "try again" });
    expect(again.task.failure).toBeUndefined();
    expect(again.task.round).toBe(3);
  });

  test("a follow-up with mode=plan re-plans, waits for approval, then implements one run on the PR's attempt", () => {
    const opened = prOpened();
    let task = drive(opened, {
      type: "follow_up",
      at: tick(),
      actor: requester,
      text: "redo it",
      mode: "plan",
    });
    expect(task).toMatchObject({ state: "planning", round: 2, mode: "plan" });
    task = drive(task, planReady(runIdFor(ID, "plan", 3, 1)));
    expect(task.state).toBe("awaiting_approval");

    const r = step(task, approve());
    expect(r.task).toMatchObject({ state: "implementing", round: 2, launch: 4 });
    expect(r.effects).toEqual([
      { type: "start_runs", phase: "implement", runIds: [runIdFor(ID, "implement", 4, 2)] },
      UPDATE,
    ]);

    // rejecting (or letting expire) the follow-up plan keeps the pull request's task alive
    const rejected = step(task, { type: "reject", at: AT, actor: requester });
    expect(rejected.task).toMatchObject({ state: "pr_opened", pr: opened.pr });
    expect(rejected.effects).toEqual([UPDATE]);
    expect(step(task, { type: "approval.expired", at: AT }).task.state).toBe("pr_opened");
    // and a failing re-plan too
    const planningAgain = drive(opened, {
      type: "follow_up",
      at: tick(),
      actor: requester,
      text: "x",
      mode: "plan",
    });
    expect(step(planningAgain, runFailed(runIdFor(ID, "plan", 3, 1))).task).toMatchObject({
      state: "pr_opened",
      failure: FAILURE,
    });
  });

  test("feedback on a plan re-plans with it; blank follow-ups and terminal tasks are ignored", () => {
    const task = awaitingApproval();
    const r = step(task, { type: "follow_up", at: AT, actor: admin, text: "  use the v2 client  " });
    expect(r.task.state).toBe("planning");
    expect(r.task.feedback).toEqual([{ userId: admin.userId, text: "use the v2 client", at: AT }]);
    expectUnchanged(task, step(task, { type: "follow_up", at: AT, actor: requester, text: "   " }));
    const done = FIXTURES.rejected();
    expectUnchanged(done, step(done, { type: "follow_up", at: AT, actor: requester, text: "please" }));
  });
});
