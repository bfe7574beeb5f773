// The task state machine (ARCHITECTURE "Task lifecycle"): transition(task, event) -> { task, effects }.
// Pure and total. An event that does not apply (wrong state, unknown or ended run, older launch,
// duplicate) returns the SAME task object and no effects, so redeliveries are harmless and the
// services write nothing; every change returns a new object with `updatedAt = event.at` and ends its
// effects with `update_status`. `version` is left alone: the store bumps it.
import { mayControl } from "./access.js";
import { bestAttempt, scoreAttempt } from "./scoring.js";
import { headBranchFor, isTerminal, runIdFor } from "./task.js";
import type {
  Actor,
  AttemptResult,
  Effect,
  PullRequestRef,
  RunInfo,
  Task,
  TaskEvent,
  TaskEventType,
  TransitionResult,
} from "./task.js";
import type { PlanStep } from "../shared/agent-events.js";
import type { RunPhase } from "../shared/run-spec.js";

type EventOf<T extends TaskEventType> = Extract<TaskEvent, { type: T }>;
type RunEndEvent = EventOf<"run.changes_ready" | "run.no_change" | "run.failed">;

export function transition(task: Task, event: TaskEvent): TransitionResult {
  switch (event.type) {
    case "start":
      return onStart(task, event);
    case "repo.selected":
      return onRepoSelected(task, event);
    case "approve":
      return onApprove(task, event);
    case "reject":
      return onReject(task, event);
    case "cancel":
      return onCancel(task, event);
    case "retry":
      return onRetry(task, event);
    case "choose_attempt":
      return onChooseAttempt(task, event);
    case "follow_up":
      return onFollowUp(task, event);
    case "run.queued":
      return onRunQueued(task, event);
    case "run.started":
      return onRunStarted(task, event);
    case "run.progress":
      return onRunProgress(task, event);
    case "run.plan_ready":
      return onPlanReady(task, event);
    case "run.changes_ready":
    case "run.no_change":
      return onImplementRunEnded(task, event);
    case "run.failed":
      return task.state === "planning" ? onPlanRunFailed(task, event) : onImplementRunEnded(task, event);
    case "publish.succeeded":
      return onPublishSucceeded(task, event);
    case "publish.failed":
      return onPublishFailed(task, event);
    case "approval.expired":
      return onApprovalExpired(task, event);
  }
}

/** Runs of the current launch that have not ended. */
export function activeRuns(task: Task): RunInfo[] {
  return task.runs.filter((run) => run.launch === task.launch && isRunActive(run));
}

/** Attempts whose result can be published (outcome "changes"), ascending, the published one included. */
export function choosableAttempts(task: Task): number[] {
  const attempts = new Set(task.attemptResults.filter((r) => r.outcome === "changes").map((r) => r.attempt));
  return [...attempts].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// People

function onStart(task: Task, event: EventOf<"start">): TransitionResult {
  if (task.state !== "received" || task.repo === undefined) return unchanged(task);
  return begin(task, event.at);
}

function onRepoSelected(task: Task, event: EventOf<"repo.selected">): TransitionResult {
  if (task.state !== "received" || task.repo !== undefined) return unchanged(task);
  if (!mayControl(task, event.actor)) {
    return refuse(task, event.actor, `Only ${controllers(task)} can choose the repository for ${task.id}.`);
  }
  return begin({ ...task, repo: event.repo }, event.at);
}

/** received -> planning (mode plan) or implementing (mode auto, round 1). */
function begin(task: Task, at: string): TransitionResult {
  if (task.mode === "plan") {
    const launch = launchRuns(task, "plan", [1], []);
    return changed(task, at, { state: "planning", ...launch.patch }, [launch.effect]);
  }
  const launch = launchRuns(task, "implement", implementAttempts(task), []);
  return changed(task, at, { state: "implementing", round: 1, ...launch.patch }, [launch.effect]);
}

function onApprove(task: Task, event: EventOf<"approve">): TransitionResult {
  if (task.state !== "awaiting_approval" || task.plan === undefined) return unchanged(task);
  if (!mayControl(task, event.actor)) {
    return refuse(task, event.actor, `Only ${controllers(task)} can approve the plan of ${task.id}.`);
  }
  return implementPlan(task, event.at, event.actor.userId);
}

/** Starts implementing `task.plan` (approved by a person, or as if approved in mode auto). */
function implementPlan(task: Task, at: string, approvedBy: string | undefined): TransitionResult {
  const current = task.plan ?? { summary: "", steps: [] };
  const plan = {
    summary: current.summary,
    steps: current.steps,
    ...(approvedBy !== undefined ? { approvedBy } : {}),
  };
  // A follow-up re-plan already counted its round when it was asked for.
  const round = task.pr !== undefined ? task.round : task.round + 1;
  const launch = launchRuns(task, "implement", implementAttempts(task), pendingSteps(plan.steps));
  return changed(task, at, { state: "implementing", plan, round, ...launch.patch }, [launch.effect]);
}

function onReject(task: Task, event: EventOf<"reject">): TransitionResult {
  if (task.state !== "awaiting_approval") return unchanged(task);
  if (!mayControl(task, event.actor)) {
    return refuse(task, event.actor, `Only ${controllers(task)} can reject the plan of ${task.id}.`);
  }
  // Rejecting the re-plan of a follow-up keeps the pull request and its task alive.
  if (task.pr !== undefined) return changed(task, event.at, { state: "pr_opened" });
  return changed(task, event.at, { state: "rejected" }, [{ type: "post_result" }]);
}

function onApprovalExpired(task: Task, event: EventOf<"approval.expired">): TransitionResult {
  if (task.state !== "awaiting_approval") return unchanged(task);
  if (task.pr !== undefined) return changed(task, event.at, { state: "pr_opened" });
  return changed(task, event.at, { state: "expired" }, [{ type: "post_result" }]);
}

function onCancel(task: Task, event: EventOf<"cancel">): TransitionResult {
  if (isTerminal(task.state)) return unchanged(task);
  if (!mayControl(task, event.actor)) {
    return refuse(task, event.actor, `Only ${controllers(task)} can cancel ${task.id}.`);
  }
  const running = task.runs.filter(isRunActive);
  if (task.state === "pr_opened" && running.length === 0) {
    return refuse(
      task,
      event.actor,
      `Nothing is running for ${task.id}: its pull request is open. Close the pull request on GitHub if you no longer want it.`,
    );
  }
  const runs = task.runs.map((run) => (isRunActive(run) ? endRun(run, "cancelled", event.at) : run));
  const effects: Effect[] = [];
  if (running.length > 0) effects.push({ type: "cancel_runs", runIds: running.map((run) => run.runId) });
  effects.push({ type: "post_result" });
  return changed(task, event.at, { state: "cancelled", runs, failure: undefined }, effects);
}

function onRetry(task: Task, event: EventOf<"retry">): TransitionResult {
  if (task.state !== "failed") {
    if (!isTerminal(task.state)) return unchanged(task); // e.g. a second delivery after the retry
    return refuse(
      task,
      event.actor,
      `Only failed tasks can be retried; ${task.id} is ${describeState(task)}.`,
    );
  }
  if (!mayControl(task, event.actor)) {
    return refuse(task, event.actor, `Only ${controllers(task)} can retry ${task.id}.`);
  }
  const approved = task.plan?.approvedBy !== undefined;
  if (approved || task.mode === "auto") {
    const steps = approved && task.plan ? pendingSteps(task.plan.steps) : [];
    const launch = launchRuns(task, "implement", implementAttempts(task), steps);
    return changed(
      task,
      event.at,
      { state: "implementing", round: Math.max(task.round, 1), ...launch.patch },
      [launch.effect],
    );
  }
  const launch = launchRuns(task, "plan", [1], []);
  return changed(task, event.at, { state: "planning", ...launch.patch }, [launch.effect]);
}

function onChooseAttempt(task: Task, event: EventOf<"choose_attempt">): TransitionResult {
  if (task.state !== "pr_opened" && task.state !== "implementing") return unchanged(task);
  if (!mayControl(task, event.actor)) {
    return refuse(
      task,
      event.actor,
      `Only ${controllers(task)} can choose which attempt of ${task.id} to publish.`,
    );
  }
  if (task.state === "implementing" || task.pr === undefined) {
    return refuse(
      task,
      event.actor,
      `${task.id} is still working on its result; choose an attempt once the pull request is linked in the thread.`,
    );
  }
  if (event.attempt === task.pr.attempt) return unchanged(task); // already the pull request
  const result = latestChanges(task.attemptResults, event.attempt);
  if (result === undefined) {
    const others = choosableAttempts(task).filter((attempt) => attempt !== task.pr?.attempt);
    const hint =
      others.length === 0
        ? `no other attempt produced changes (attempt ${task.pr.attempt} is the open pull request).`
        : `you can choose ${others.length === 1 ? "attempt" : "attempts"} ${joinOr(others)}.`;
    return refuse(
      task,
      event.actor,
      `Attempt ${event.attempt} of ${task.id} has no changes to publish; ${hint}`,
    );
  }
  // The task itself changes when publish.succeeded swaps the pull request.
  return { task, effects: [{ type: "publish", attempt: result.attempt, runId: result.runId }] };
}

function onFollowUp(task: Task, event: EventOf<"follow_up">): TransitionResult {
  if (isTerminal(task.state)) return unchanged(task);
  if (!mayControl(task, event.actor)) {
    return refuse(
      task,
      event.actor,
      `Only ${controllers(task)} can give ${task.id} follow-up instructions. Mention Baton in a new thread to request work of your own.`,
    );
  }
  const text = event.text.trim();
  if (text === "") return unchanged(task);
  const feedback = [...task.feedback, { userId: event.actor.userId, text, at: event.at }];

  switch (task.state) {
    case "received":
      // Becomes context for the first run once a repository is chosen.
      return changed(task, event.at, { feedback });
    case "awaiting_approval": {
      const launch = launchRuns(task, "plan", [1], []);
      return changed(task, event.at, { state: "planning", feedback, ...launch.patch }, [launch.effect]);
    }
    case "planning":
    case "implementing": {
      const running = activeRuns(task);
      if (running.length === 0) {
        return refuse(
          task,
          event.actor,
          `${task.id} is publishing its result right now; send the follow-up again once the pull request is linked in the thread.`,
        );
      }
      return changed(task, event.at, { feedback }, [
        { type: "relay_to_runs", runIds: running.map((run) => run.runId), text, userId: event.actor.userId },
      ]);
    }
    case "pr_opened": {
      const pr = task.pr;
      if (pr === undefined) return unchanged(task);
      const mode = event.mode ?? task.mode;
      const round = task.round + 1;
      if (event.mode === "plan") {
        const launch = launchRuns(task, "plan", [1], []);
        return changed(task, event.at, { state: "planning", mode, round, feedback, ...launch.patch }, [
          launch.effect,
        ]);
      }
      const launch = launchRuns(task, "implement", [pr.attempt], []);
      return changed(task, event.at, { state: "implementing", mode, round, feedback, ...launch.patch }, [
        launch.effect,
      ]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Runs

function onRunQueued(task: Task, event: EventOf<"run.queued">): TransitionResult {
  const run = liveRun(task, event.runId);
  if (run === undefined || run.status !== "queued" || run.queuePosition === event.position)
    return unchanged(task);
  return changed(task, event.at, { runs: replaceRun(task, { ...run, queuePosition: event.position }) });
}

function onRunStarted(task: Task, event: EventOf<"run.started">): TransitionResult {
  const run = liveRun(task, event.runId);
  if (run === undefined || run.status !== "queued") return unchanged(task);
  const { queuePosition: _position, ...rest } = run;
  return changed(task, event.at, {
    runs: replaceRun(task, { ...rest, status: "running", startedAt: event.at }),
  });
}

function onRunProgress(task: Task, event: EventOf<"run.progress">): TransitionResult {
  if (liveRun(task, event.runId) === undefined) return unchanged(task);
  const progress = {
    ...task.progress,
    ...(event.steps !== undefined ? { steps: event.steps } : {}),
    ...(event.lastCommand !== undefined ? { lastCommand: event.lastCommand } : {}),
    ...(event.usage !== undefined ? { usage: event.usage } : {}),
  };
  if (deepEqual(progress, task.progress)) return unchanged(task);
  return changed(task, event.at, { progress });
}

function onPlanReady(task: Task, event: EventOf<"run.plan_ready">): TransitionResult {
  const run = liveRun(task, event.runId);
  if (run === undefined || task.state !== "planning") return unchanged(task);
  const planned: Task = {
    ...task,
    runs: replaceRun(task, endRun(run, "succeeded", event.at)),
    plan: { summary: event.summary, steps: event.steps },
    progress: { ...task.progress, steps: pendingSteps(event.steps) },
  };
  // Mode auto never waits for a person.
  if (task.mode === "auto") return implementPlan(planned, event.at, undefined);
  return changed(planned, event.at, { state: "awaiting_approval" }, [{ type: "post_plan" }]);
}

function onPlanRunFailed(task: Task, event: EventOf<"run.failed">): TransitionResult {
  const run = liveRun(task, event.runId);
  if (run === undefined) return unchanged(task);
  const runs = replaceRun(task, endRun(run, "failed", event.at));
  // A failed follow-up re-plan leaves the open pull request as it was.
  const state = task.pr !== undefined ? "pr_opened" : "failed";
  return changed(task, event.at, { state, runs, failure: event.failure }, [{ type: "post_result" }]);
}

function onImplementRunEnded(task: Task, event: RunEndEvent): TransitionResult {
  const run = liveRun(task, event.runId);
  if (run === undefined || task.state !== "implementing") return unchanged(task);

  const outcome =
    event.type === "run.changes_ready" ? "changes" : event.type === "run.no_change" ? "no_change" : "failed";
  const evidence = event.evidence ?? [];
  const filesChanged = event.type === "run.changes_ready" ? event.filesChanged : [];
  const result: AttemptResult = {
    attempt: run.attempt,
    runId: run.runId,
    outcome,
    summary: event.type === "run.failed" ? event.failure.message : event.summary,
    // Follow-up rounds keep publishing to the open pull request's branch.
    headBranch: task.pr?.headBranch ?? headBranchFor(task.id, run.attempt, task.attempts),
    ...(event.type === "run.changes_ready" ? { headSha: event.headSha } : {}),
    filesChanged,
    evidence,
    ...scoreAttempt({ outcome, evidence, filesChanged }),
  };
  const ended: Task = {
    ...task,
    runs: replaceRun(task, endRun(run, outcome === "failed" ? "failed" : "succeeded", event.at)),
    attemptResults: [...task.attemptResults, result],
  };
  if (event.type === "run.failed" && isBestInformedFailure(ended, result)) ended.failure = event.failure;

  if (activeRuns(ended).length > 0) return changed(ended, event.at, {});
  return finishImplementLaunch(ended, event.at);
}

/**
 * Keeps, in `task.failure`, the failure of the failed attempt that got furthest (the most commands
 * recorded; the earlier one on a tie): AttemptResult has no room for a failure, and that is the one
 * reported when every attempt failed.
 */
function isBestInformedFailure(task: Task, result: AttemptResult): boolean {
  return launchResults(task)
    .filter((other) => other.outcome === "failed" && other.runId !== result.runId)
    .every((other) => result.evidence.length > other.evidence.length);
}

/** Every run of the launch has ended: publish the best attempt, or report why there is nothing to publish. */
function finishImplementLaunch(task: Task, at: string): TransitionResult {
  const results = launchResults(task);
  const best = bestAttempt(results.filter((result) => result.outcome === "changes"));
  if (best !== undefined) {
    const effects: Effect[] = [{ type: "publish", attempt: best.attempt, runId: best.runId }];
    if (task.runs.filter((run) => run.launch === task.launch).length > 1)
      effects.push({ type: "post_attempts_summary" });
    return changed(task, at, { failure: undefined }, effects);
  }
  const allFailed = results.every((result) => result.outcome === "failed");
  const noChange = bestAttempt(results.filter((result) => result.outcome === "no_change"));
  const summary = noChange !== undefined ? { resultSummary: noChange.summary } : {};
  if (task.pr !== undefined) {
    // A follow-up that changed nothing or failed: the pull request stays as it was.
    return changed(
      task,
      at,
      { state: "pr_opened", ...summary, ...(allFailed ? {} : { failure: undefined }) },
      [{ type: "post_result" }],
    );
  }
  if (allFailed) return changed(task, at, { state: "failed" }, [{ type: "post_result" }]);
  return changed(task, at, { state: "no_change", ...summary, failure: undefined }, [{ type: "post_result" }]);
}

// ---------------------------------------------------------------------------------------------
// Publishing

function onPublishSucceeded(task: Task, event: EventOf<"publish.succeeded">): TransitionResult {
  if (task.state === "cancelled") return closeOrphanPullRequest(task, event);
  const result = publishableResult(task, event.attempt);
  if (result === undefined) return unchanged(task);
  const old = task.pr;
  if (
    old !== undefined &&
    old.number === event.pr.number &&
    old.attempt === event.attempt &&
    task.state === "pr_opened"
  ) {
    return unchanged(task); // duplicate delivery
  }
  if (task.closedPrs.includes(event.pr.number)) return unchanged(task); // late: that pull request was replaced
  const pr: PullRequestRef = {
    number: event.pr.number,
    url: event.pr.url,
    headBranch: result.headBranch,
    attempt: event.attempt,
  };
  const effects: Effect[] = [];
  let closedPrs = task.closedPrs;
  if (old !== undefined && old.number !== pr.number) {
    effects.push({ type: "close_pr", number: old.number });
    closedPrs = [...closedPrs, old.number];
  }
  effects.push({ type: "post_result" });
  return changed(
    task,
    event.at,
    { state: "pr_opened", pr, closedPrs, resultSummary: result.summary, failure: undefined },
    effects,
  );
}

/** A publish that finished after the task was cancelled must not leave a pull request nobody tracks. */
function closeOrphanPullRequest(task: Task, event: EventOf<"publish.succeeded">): TransitionResult {
  const number = event.pr.number;
  if (task.pr?.number === number || task.closedPrs.includes(number)) return unchanged(task);
  return changed(task, event.at, { closedPrs: [...task.closedPrs, number] }, [{ type: "close_pr", number }]);
}

function onPublishFailed(task: Task, event: EventOf<"publish.failed">): TransitionResult {
  if (publishableResult(task, event.attempt) === undefined) return unchanged(task);
  if (task.state === "pr_opened" && deepEqual(task.failure, event.failure)) return unchanged(task);
  const state = task.pr !== undefined ? "pr_opened" : "failed";
  return changed(task, event.at, { state, failure: event.failure }, [{ type: "post_result" }]);
}

/**
 * The result a publish.* event can be about: in implementing, a "changes" result of the finished
 * current launch; in pr_opened (choosing another attempt), the latest "changes" result of that attempt.
 */
function publishableResult(task: Task, attempt: number): AttemptResult | undefined {
  if (task.state === "implementing") {
    if (activeRuns(task).length > 0) return undefined;
    return latestChanges(launchResults(task), attempt);
  }
  if (task.state === "pr_opened") return latestChanges(task.attemptResults, attempt);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers

type TaskPatch = Partial<Omit<Task, "id" | "version" | "updatedAt">>;

function unchanged(task: Task): TransitionResult {
  return { task, effects: [] };
}

function refuse(task: Task, actor: Actor, text: string): TransitionResult {
  return { task, effects: [{ type: "notify_user", userId: actor.userId, text }] };
}

/** A new task with `patch` applied (an `undefined` value removes the field); `update_status` ends the effects. */
function changed(task: Task, at: string, patch: TaskPatch, effects: Effect[] = []): TransitionResult {
  const next: Record<string, unknown> = { ...task, ...patch, updatedAt: at };
  for (const [key, value] of Object.entries(patch)) if (value === undefined) delete next[key];
  return { task: next as unknown as Task, effects: [...effects, { type: "update_status" }] };
}

function isRunActive(run: RunInfo): boolean {
  return run.status === "queued" || run.status === "running";
}

/** The run a run.* event may act on: current launch, not ended, of the phase the task is in. */
function liveRun(task: Task, runId: string): RunInfo | undefined {
  const phase = task.state === "planning" ? "plan" : task.state === "implementing" ? "implement" : undefined;
  if (phase === undefined) return undefined;
  const run = task.runs.find((candidate) => candidate.runId === runId);
  if (run === undefined || run.launch !== task.launch || run.phase !== phase || !isRunActive(run))
    return undefined;
  return run;
}

function replaceRun(task: Task, run: RunInfo): RunInfo[] {
  return task.runs.map((candidate) => (candidate.runId === run.runId ? run : candidate));
}

function endRun(run: RunInfo, status: "succeeded" | "failed" | "cancelled", at: string): RunInfo {
  const { queuePosition: _position, ...rest } = run;
  return { ...rest, status, endedAt: at };
}

/** A new launch: its runs queued, the checklist reset, any earlier failure cleared. */
function launchRuns(
  task: Task,
  phase: RunPhase,
  attempts: readonly number[],
  steps: PlanStep[],
): { patch: TaskPatch; effect: Effect } {
  const launch = task.launch + 1;
  const runs: RunInfo[] = attempts.map((attempt) => ({
    runId: runIdFor(task.id, phase, launch, attempt),
    phase,
    attempt,
    launch,
    status: "queued",
  }));
  return {
    patch: {
      launch,
      runs: [...task.runs, ...runs],
      progress: { steps, usage: task.progress.usage },
      failure: undefined,
    },
    effect: { type: "start_runs", phase, runIds: runs.map((run) => run.runId) },
  };
}

/** Best-of-N on the first implementation; a single run on the open pull request's attempt afterwards. */
function implementAttempts(task: Task): number[] {
  if (task.pr !== undefined) return [task.pr.attempt];
  return Array.from({ length: Math.max(1, task.attempts) }, (_, index) => index + 1);
}

function launchResults(task: Task): AttemptResult[] {
  const ids = new Set(task.runs.filter((run) => run.launch === task.launch).map((run) => run.runId));
  return task.attemptResults.filter((result) => ids.has(result.runId));
}

function latestChanges(results: readonly AttemptResult[], attempt: number): AttemptResult | undefined {
  return results.findLast((result) => result.attempt === attempt && result.outcome === "changes");
}

function pendingSteps(steps: readonly string[]): PlanStep[] {
  return steps.map((step) => ({ step, status: "pending" }));
}

function controllers(task: Task): string {
  return `<@${task.requester.userId}>, approvers or admins`;
}

function describeState(task: Task): string {
  switch (task.state) {
    case "no_change":
      return "finished without changes";
    case "expired":
      return "expired";
    default:
      return task.state.replace("_", " ");
  }
}

function joinOr(values: readonly number[]): string {
  if (values.length <= 1) return values.join("");
  return `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}`;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a).filter((key) => (a as Record<string, unknown>)[key] !== undefined);
  const keysB = Object.keys(b).filter((key) => (b as Record<string, unknown>)[key] !== undefined);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((key) =>
    deepEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
  );
}
