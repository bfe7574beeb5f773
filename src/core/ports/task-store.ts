// Port: durable task storage (adapter: src/adapters/redis/task-store.ts).
import type { Task, TaskId } from "../task.js";

/** Thrown by `update` when another writer changed the task first; the caller re-reads and retries. */
export class VersionConflictError extends Error {
  constructor(readonly taskId: TaskId) {
    super(`task ${taskId} was changed concurrently`);
    this.name = "VersionConflictError";
  }
}

/** Which of Baton's messages a Slack message is (reactions are routed by it). */
export type TaskMessageKind = "status" | "plan" | "result" | "attempts" | "trigger";

export interface TaskStore {
  /** Stores a new task (version 1). Fails if the id exists. Also indexes it as the thread's active task. */
  create(task: Task): Promise<Task>;
  get(id: TaskId): Promise<Task | undefined>;
  /**
   * Writes `next` if the stored version still equals `next.version`; stores it as version + 1 and
   * returns what was stored. Throws VersionConflictError otherwise.
   */
  update(next: Task): Promise<Task>;
  /** The active (non-terminal) task of a Slack thread, if any. */
  findActiveByThread(channelId: string, threadTs: string): Promise<Task | undefined>;
  /** Remembers that Slack message `channelId:ts` belongs to a task (status, plan, summary…). */
  indexMessage(channelId: string, ts: string, taskId: TaskId, kind: TaskMessageKind): Promise<void>;
  findByMessage(
    channelId: string,
    ts: string,
  ): Promise<{ taskId: TaskId; kind: TaskMessageKind } | undefined>;
  /** Newest first. */
  listByUser(userId: string, limit: number): Promise<Task[]>;
  /** Newest first. */
  listByChannel(channelId: string, limit: number): Promise<Task[]>;
  /** Active tasks of the whole install (for reconciliation), newest first. */
  listActive(limit: number): Promise<Task[]>;
}

/** Idempotency claims: the first caller for a key wins for `ttlSeconds`. */
export interface Claims {
  /** True exactly once per key while the claim lives (SET NX EX). */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
  /** Gives a claim up (e.g. when the work it guarded failed and a retry must be allowed). */
  release(key: string): Promise<void>;
}
