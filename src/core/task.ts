// The Task: one request from Slack, from "@baton fix it" to a pull request (ARCHITECTURE "Task lifecycle").
// Pure data; persisted as JSON by the TaskStore with a version number for optimistic concurrency.
import type { PlanStep } from "../shared/agent-events.js";
import type { EvidenceEntry } from "../shared/run-result.js";
import type { RunPhase } from "../shared/run-spec.js";

export type TaskId = `T-${string}`;

export const TASK_ID_PATTERN = /^T-[0-9A-Z]{6}$/;
const ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** A new task id, `T-` + 6 of [0-9A-Z], from caller-supplied random bytes (core does no I/O). */
export function newTaskId(randomBytes: (n: number) => Uint8Array): TaskId {
  // Rejection sampling keeps the distribution uniform (256 is not a multiple of 36).
  let id = "";
  while (id.length < 6) {
    for (const byte of randomBytes(12)) {
      if (byte < 252 && id.length < 6) id += ID_ALPHABET[byte % 36];
    }
  }
  return `T-${id}`;
}

export function isTaskId(value: string): value is TaskId {
  return TASK_ID_PATTERN.test(value);
}

/** `baton/t-7f3k2a`, or `baton/t-7f3k2a-a2` for attempt 2 of a best-of-N task (CONTRACT §9). */
export function headBranchFor(id: TaskId, attempt?: number, attempts = 1): string {
  const base = `baton/${id.toLowerCase()}`;
  return attempts > 1 && attempt !== undefined ? `${base}-a${attempt}` : base;
}

/** Deterministic run id: task, phase, launch number and attempt (`t-7f3k2a-i2-a1`). */
export function runIdFor(id: TaskId, phase: RunPhase, launch: number, attempt: number): string {
  return `${id.toLowerCase()}-${phase === "plan" ? "p" : "i"}${launch}-a${attempt}`;
}

export type ActiveState = "received" | "planning" | "awaiting_approval" | "implementing" | "pr_opened";
export type TerminalState = "no_change" | "failed" | "rejected" | "expired" | "cancelled";
export type TaskState = ActiveState | TerminalState;

export const ACTIVE_STATES: readonly ActiveState[] = [
  "received",
  "planning",
  "awaiting_approval",
  "implementing",
  "pr_opened",
];
export const TERMINAL_STATES: readonly TerminalState[] = [
  "no_change",
  "failed",
  "rejected",
  "expired",
  "cancelled",
];
export const TASK_STATES: readonly TaskState[] = [...ACTIVE_STATES, ...TERMINAL_STATES];

export function isTerminal(state: TaskState): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

export type TaskMode = "plan" | "auto";
export type TaskSource = "mention" | "slash" | "reaction" | "button";

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface RunInfo {
  runId: string;
  phase: RunPhase;
  attempt: number;
  launch: number;
  status: RunStatus;
  /** 1-based position in the queue while `queued`. */
  queuePosition?: number;
  startedAt?: string;
  endedAt?: string;
}

export interface CommandSummary {
  argv: string[];
  exitCode: number | null;
  durationMs: number;
}

export interface UsageTotals {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
}

/** What one implement attempt produced, scored from the runner's evidence (never the model's prose). */
export interface AttemptResult {
  attempt: number;
  runId: string;
  outcome: "changes" | "no_change" | "failed";
  summary: string;
  headBranch: string;
  headSha?: string;
  filesChanged: string[];
  evidence: EvidenceEntry[];
  score: number;
  testsPassed: boolean;
  failingCommands: number;
}

export interface TaskFailure {
  /** Machine-readable reason, e.g. `budget_exhausted`, `oom_killed`, `deadline_exceeded`, `publish_refused`. */
  code: string;
  /** One clear sentence for the thread. */
  message: string;
  /** Last lines of the agent's log, redacted. */
  logTail?: string;
}

export interface PullRequestRef {
  number: number;
  url: string;
  headBranch: string;
  attempt: number;
}

export interface FeedbackEntry {
  userId: string;
  text: string;
  at: string;
}

export interface Task {
  id: TaskId;
  /** Incremented on every persisted change (optimistic concurrency). */
  version: number;
  state: TaskState;
  createdAt: string;
  updatedAt: string;
  requester: { userId: string; name?: string };
  channelId: string;
  /** The thread holding every message of this task. */
  threadTs: string;
  /** The message that triggered the task (gets the `eyes` reaction). */
  triggerTs: string;
  source: TaskSource;
  request: { text: string };
  /** `owner/name`; undefined while Baton waits for the requester to pick one. */
  repo?: string;
  /** Base branch override (`branch=`); the repository's policy default otherwise. */
  baseBranch?: string;
  mode: TaskMode;
  attempts: number;
  /** Number of run launches so far (plan, re-plan, implement, follow-up, retry each add one). */
  launch: number;
  /** Implement round: 1 for the first implementation, +1 per follow-up after the PR opened. */
  round: number;
  runs: RunInfo[];
  plan?: { summary: string; steps: string[]; approvedBy?: string };
  /** Plan feedback and follow-up instructions, oldest first. */
  feedback: FeedbackEntry[];
  progress: {
    steps: PlanStep[];
    lastCommand?: CommandSummary;
    usage: UsageTotals;
  };
  attemptResults: AttemptResult[];
  pr?: PullRequestRef;
  /** PRs of earlier choices closed by choosing another attempt. */
  closedPrs: number[];
  failure?: TaskFailure;
  /** Summary of the latest finished implement run (for the result message). */
  resultSummary?: string;
  /** Slack messages Baton posted for this task. */
  slack: { statusTs?: string; planTs?: string; resultTs?: string; summaryTs?: string };
}

export interface NewTaskInput {
  id: TaskId;
  now: string;
  requester: { userId: string; name?: string };
  channelId: string;
  threadTs: string;
  triggerTs: string;
  source: TaskSource;
  text: string;
  repo?: string;
  baseBranch?: string;
  mode: TaskMode;
  attempts: number;
}

export function newTask(input: NewTaskInput): Task {
  return {
    id: input.id,
    version: 0,
    state: "received",
    createdAt: input.now,
    updatedAt: input.now,
    requester: input.requester,
    channelId: input.channelId,
    threadTs: input.threadTs,
    triggerTs: input.triggerTs,
    source: input.source,
    request: { text: input.text },
    ...(input.repo !== undefined ? { repo: input.repo } : {}),
    ...(input.baseBranch !== undefined ? { baseBranch: input.baseBranch } : {}),
    mode: input.mode,
    attempts: input.attempts,
    launch: 0,
    round: 0,
    runs: [],
    feedback: [],
    progress: { steps: [], usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0, costUsd: 0 } },
    attemptResults: [],
    closedPrs: [],
    slack: {},
  };
}

// ---------------------------------------------------------------------------------------------
// Events: everything that can happen to a task. `transition(task, event)` (transitions.ts) is total.

/** Who did it, with the roles the policy gives them (the requester is recognised by user id). */
export interface Actor {
  userId: string;
  approver: boolean;
  admin: boolean;
}

export type TaskEvent =
  // people
  | { type: "start"; at: string }
  | { type: "repo.selected"; at: string; actor: Actor; repo: string }
  | { type: "approve"; at: string; actor: Actor }
  | { type: "reject"; at: string; actor: Actor }
  | { type: "cancel"; at: string; actor: Actor }
  | { type: "retry"; at: string; actor: Actor }
  | { type: "choose_attempt"; at: string; actor: Actor; attempt: number }
  | { type: "follow_up"; at: string; actor: Actor; text: string; mode?: TaskMode }
  // runs (from the supervisor and the runner API)
  | { type: "run.queued"; at: string; runId: string; position: number }
  | { type: "run.started"; at: string; runId: string }
  | {
      type: "run.progress";
      at: string;
      runId: string;
      steps?: PlanStep[];
      lastCommand?: CommandSummary;
      usage?: UsageTotals;
    }
  | { type: "run.plan_ready"; at: string; runId: string; summary: string; steps: string[] }
  | {
      type: "run.changes_ready";
      at: string;
      runId: string;
      summary: string;
      headSha: string;
      filesChanged: string[];
      evidence: EvidenceEntry[];
    }
  | { type: "run.no_change"; at: string; runId: string; summary: string; evidence: EvidenceEntry[] }
  | { type: "run.failed"; at: string; runId: string; failure: TaskFailure; evidence?: EvidenceEntry[] }
  // publishing
  | { type: "publish.succeeded"; at: string; attempt: number; pr: { number: number; url: string } }
  | { type: "publish.failed"; at: string; attempt: number; failure: TaskFailure }
  // time
  | { type: "approval.expired"; at: string };

export type TaskEventType = TaskEvent["type"];

/** Side effects a transition asks for; executed by services after the new task is persisted. */
export type Effect =
  | { type: "start_runs"; phase: RunPhase; runIds: string[] }
  | { type: "cancel_runs"; runIds: string[] }
  /** Relay a thread message to a running agent (it reaches the model before its next turn). */
  | { type: "relay_to_runs"; runIds: string[]; text: string; userId: string }
  | { type: "publish"; attempt: number; runId: string }
  | { type: "close_pr"; number: number }
  | { type: "update_status" }
  | { type: "post_plan" }
  | { type: "post_attempts_summary" }
  | { type: "post_result" }
  /** A private note to one person (chat.postEphemeral): refusals and explanations. */
  | { type: "notify_user"; userId: string; text: string };

export type EffectType = Effect["type"];

export interface TransitionResult {
  task: Task;
  effects: Effect[];
}
