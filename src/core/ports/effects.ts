// Ports for executing transition effects. services/effects.ts routes each Effect to one of these.
import type { Effect, Task } from "../task.js";

export type NotifyEffect = Extract<
  Effect,
  { type: "update_status" | "post_plan" | "post_attempts_summary" | "post_result" | "notify_user" }
>;

/** Slack side (adapter: src/adapters/slack/notifier.ts): owns every message Baton posts for a task. */
export interface TaskNotifier {
  handle(task: Task, effect: NotifyEffect): Promise<void>;
}

/** Run side (services/runs.ts): queue, launch, cancel and talk to agent runs. */
export interface RunControl {
  /** Enqueues the runs (idempotent by run id: a run is launched once whatever happens). */
  start(task: Task, runIds: string[]): Promise<void>;
  cancel(task: Task, runIds: string[]): Promise<void>;
  /** Queues a thread message for running agents; they get it with their next `POST /events` answer. */
  relay(task: Task, runIds: string[], text: string, userId: string): Promise<void>;
}

/** Publishing side (services/publish.ts): bundle -> push baton/* -> open or update the PR. */
export interface PublishControl {
  /** Publishes an attempt's bundle; reports back with publish.succeeded / publish.failed events. */
  publish(task: Task, attempt: number, runId: string): Promise<void>;
  closePullRequest(task: Task, prNumber: number): Promise<void>;
}
