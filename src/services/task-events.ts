// Applies an event to a stored task: read, transition (pure), persist with the version check, then
// run the effects. A version conflict means someone else changed the task first: re-read and retry,
// so concurrent deliveries (Slack retries, two workers) serialise without locks.
import { transition } from "../core/transitions.js";
import type { Effect, Task, TaskEvent, TaskId } from "../core/task.js";
import { VersionConflictError, type TaskStore } from "../core/ports/task-store.js";

/** Executes the effects of a transition (Slack messages, runs, publishing). */
export interface EffectRunner {
  run(task: Task, effects: Effect[]): Promise<void>;
}

export interface ApplyOutcome {
  task: Task;
  effects: Effect[];
  /** False when the event did not apply (duplicate, late, not allowed): nothing was written. */
  changed: boolean;
}

const MAX_ATTEMPTS = 20;

export async function applyTaskEvent(
  deps: { store: TaskStore; effects: EffectRunner },
  taskId: TaskId,
  event: TaskEvent,
): Promise<ApplyOutcome | undefined> {
  for (let attempt = 1; ; attempt++) {
    const current = await deps.store.get(taskId);
    if (!current) return undefined;
    const { task: next, effects } = transition(current, event);
    const changed = next !== current;
    let stored = current;
    if (changed) {
      try {
        stored = await deps.store.update(next);
      } catch (error) {
        if (error instanceof VersionConflictError && attempt < MAX_ATTEMPTS) continue;
        throw error;
      }
    }
    if (effects.length > 0) await deps.effects.run(stored, effects);
    return { task: stored, effects, changed };
  }
}

/** Re-reads and rewrites a task with `mutate` until no concurrent writer interferes. */
export async function updateTask(
  store: TaskStore,
  taskId: TaskId,
  mutate: (task: Task) => Task | undefined,
): Promise<Task | undefined> {
  for (let attempt = 1; ; attempt++) {
    const current = await store.get(taskId);
    if (!current) return undefined;
    const next = mutate(current);
    if (!next || next === current) return current;
    try {
      return await store.update(next);
    } catch (error) {
      if (error instanceof VersionConflictError && attempt < MAX_ATTEMPTS) continue;
      throw error;
    }
  }
}
