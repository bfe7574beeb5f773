// Who may do what (CONTRACT §3 `access`, §5): request work, control a task, change channel settings.
import type { Actor, Task } from "./task.js";

/** The policy file's `access` section (structurally the same shape as the parsed config). */
export interface AccessPolicy {
  /** Who may request work; empty means anyone. */
  users: readonly string[];
  /** May approve, reject, cancel, retry or choose on anyone's task. */
  approvers: readonly string[];
  /** May change channel settings (and control any task). */
  admins: readonly string[];
}

/** The roles the policy gives `userId` (whether they are the requester depends on the task). */
export function actorFor(userId: string, access: AccessPolicy): Actor {
  return {
    userId,
    approver: access.approvers.includes(userId),
    admin: access.admins.includes(userId),
  };
}

/** May `userId` start a task? An empty `users` list lets anyone; approvers and admins always may. */
export function mayRequest(userId: string, access: AccessPolicy): boolean {
  return (
    access.users.length === 0 ||
    access.users.includes(userId) ||
    access.approvers.includes(userId) ||
    access.admins.includes(userId)
  );
}

/** May `actor` approve, reject, cancel, retry, choose, follow up on or pick the repository of `task`? */
export function mayControl(task: Task, actor: Actor): boolean {
  return actor.userId === task.requester.userId || actor.approver || actor.admin;
}

export function isAdmin(userId: string, access: AccessPolicy): boolean {
  return access.admins.includes(userId);
}
