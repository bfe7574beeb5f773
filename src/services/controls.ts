// Use cases for controlling a task from Slack: approve, reject, cancel, retry, choose an attempt —
// by reaction on one of Baton's messages, by button, by `/baton cancel T-…` or `@baton cancel`.
// The state machine decides who may do what; strangers hear why privately, once per task + action.
import { actorFor } from "../core/access.js";
import type { TaskMessageKind } from "../core/ports/task-store.js";
import type { Effect, Task, TaskEvent, TaskId } from "../core/task.js";
import { applyTaskEvent, type EffectRunner } from "./task-events.js";
import { deferredEffects, nowIso, type SlackServiceDeps } from "./slack-context.js";

export type ControlAction = "approve" | "reject" | "cancel" | "retry" | { choose: number };

export interface ControlOutcome {
  found: boolean;
  changed: boolean;
  task?: Task;
  /** Private notes for the acting person (when the caller answers them directly). */
  notices: string[];
}

function actionName(action: ControlAction): string {
  return typeof action === "string" ? action : "choose";
}

function eventFor(action: ControlAction, actor: ReturnType<typeof actorFor>, at: string): TaskEvent {
  if (typeof action !== "string") return { type: "choose_attempt", at, actor, attempt: action.choose };
  return { type: action, at, actor };
}

/** Which of Baton's messages each reaction is read from (CONTRACT §5). */
const REACTION_TARGETS: Record<string, readonly TaskMessageKind[]> = {
  approve: ["plan"],
  reject: ["plan"],
  cancel: ["status"],
  retry: ["status", "result"],
  choose: ["attempts"],
};

/**
 * Applies a control action. With `answerDirectly`, the acting person's notices are returned (the
 * caller puts them in its own answer, e.g. the slash command response) instead of being posted.
 */
export async function applyControl(
  deps: SlackServiceDeps,
  input: { taskId: TaskId; user: string; action: ControlAction; answerDirectly?: boolean },
): Promise<ControlOutcome> {
  const notices: string[] = [];
  const name = actionName(input.action);
  const deferred = deferredEffects(deps, name);
  const effects: EffectRunner = input.answerDirectly
    ? {
        async run(task: Task, all: Effect[]) {
          const rest: Effect[] = [];
          for (const effect of all) {
            if (effect.type === "notify_user" && effect.userId === input.user) notices.push(effect.text);
            else rest.push(effect);
          }
          if (rest.length > 0) await deferred.run(task, rest);
        },
      }
    : deferred;
  const actor = actorFor(input.user, deps.policy.access);
  const outcome = await applyTaskEvent(
    { store: deps.store, effects },
    input.taskId,
    eventFor(input.action, actor, nowIso(deps)),
  );
  if (!outcome) return { found: false, changed: false, notices };
  if (outcome.changed)
    deps.logger.info({ taskId: input.taskId, action: name, user: input.user }, "task control applied");
  return { found: true, changed: outcome.changed, task: outcome.task, notices };
}

/** A reaction on one of Baton's messages: look the message up, check it is the right one, apply. */
export async function reactionControl(
  deps: SlackServiceDeps,
  input: { channel: string; ts: string; user: string; action: ControlAction },
): Promise<ControlOutcome | undefined> {
  const ref = await deps.store.findByMessage(input.channel, input.ts);
  if (!ref) return undefined;
  const allowed = REACTION_TARGETS[actionName(input.action)] ?? [];
  if (!allowed.includes(ref.kind)) return undefined;
  return applyControl(deps, { taskId: ref.taskId, user: input.user, action: input.action });
}

/** One sentence answering the person who asked for a control action by command. */
export function describeControl(taskId: string, action: ControlAction, outcome: ControlOutcome): string {
  if (!outcome.found) return `I can't find task ${taskId}.`;
  if (outcome.notices.length > 0) return outcome.notices.join("\n");
  const name = actionName(action);
  if (!outcome.changed) {
    const state = outcome.task?.state.replace(/_/g, " ") ?? "unknown";
    return `Nothing to ${name === "choose" ? "choose" : name} for ${taskId}: it is ${state}.`;
  }
  switch (name) {
    case "cancel":
      return `Cancelled ${taskId}.`;
    case "retry":
      return `Retrying ${taskId}.`;
    case "approve":
      return `Approved the plan of ${taskId}.`;
    case "reject":
      return `Rejected the plan of ${taskId}.`;
    default:
      return `Switching ${taskId} to the chosen attempt.`;
  }
}
