// Use cases for new work from Slack: a mention, `/baton <request>`, 🛠 on a message or a "fix"
// button becomes a Task (or a follow-up of the thread's active task). Checks access, per-user and
// per-channel limits, resolves the repository (repo= → a GitHub URL in the thread → the channel's
// default → ask with a picker), stores the task and starts it. Everything before the task is stored
// runs while Slack waits for the acknowledgement; Slack messages and runs follow in the background.
import { mayRequest, actorFor } from "../core/access.js";
import { findGitHubRepo, isValidRepoName, type RequestOptions } from "../core/intents.js";
import { renderRepoPicker } from "../core/render.js";
import { isTerminal, newTask, newTaskId, type Task, type TaskId, type TaskSource } from "../core/task.js";
import { applyTaskEvent } from "./task-events.js";
import {
  channelSettings,
  deferredEffects,
  ensureReaction,
  nowIso,
  tellUser,
  type SlackServiceDeps,
} from "./slack-context.js";

/** How much of a thread is read to find a repository URL (the run reads its own context later). */
const THREAD_READ_LIMIT = 50;
/** Slack wants an answer within 3 s; the thread read must leave room for storing the task. */
const THREAD_READ_DEADLINE_MS = 1500;

export interface NewRequest {
  source: TaskSource;
  channel: string;
  user: string;
  /** The request text without options (may be empty in a thread: "fix what the thread describes"). */
  text: string;
  options: RequestOptions;
  /** Texts to search for a GitHub repository URL when `repo=` is absent (the message, its thread). */
  contextTexts: readonly string[];
}

export type RequestCheck =
  | { ok: true; repo?: string; mode: "plan" | "auto"; attempts: number; baseBranch?: string }
  | { ok: false; message: string };

function whoToAsk(deps: SlackServiceDeps): string {
  const admins = deps.policy.access.admins;
  if (admins.length === 0) return "an admin of Baton";
  return admins
    .slice(0, 3)
    .map((u) => `<@${u}>`)
    .join(" or ");
}

function usd(n: number): string {
  return `$${n.toFixed(2)}`;
}

/** Active tasks of a requester (the store lists newest first; old ones are terminal anyway). */
async function activeTasksOf(deps: SlackServiceDeps, userId: string, limit: number): Promise<Task[]> {
  const recent = await deps.store.listByUser(userId, Math.max(limit * 4, 50));
  return recent.filter((t) => !isTerminal(t.state));
}

/**
 * Decides whether a request may become a task, and with which repository, mode and attempts.
 * Refusals carry one sentence that says what is wrong and what to do.
 */
export async function checkRequest(deps: SlackServiceDeps, request: NewRequest): Promise<RequestCheck> {
  const { policy } = deps;
  if (!mayRequest(request.user, policy.access)) {
    return {
      ok: false,
      message: `You are not on Baton's list of people who may request work. Ask ${whoToAsk(deps)} to add you (access.users).`,
    };
  }
  const attempts = request.options.attempts ?? 1;
  if (attempts > policy.limits.maxAttempts) {
    return {
      ok: false,
      message: `attempts=${attempts} is more than this install allows (at most ${policy.limits.maxAttempts}). Ask again with a smaller number.`,
    };
  }
  const channel = await channelSettings(deps, request.channel);

  if (channel.budgetUsdPerDay !== undefined) {
    const spent = await deps.budget.channelSpentToday(request.channel);
    if (spent >= channel.budgetUsdPerDay) {
      return {
        ok: false,
        message: `This channel's model budget for today (${usd(channel.budgetUsdPerDay)}) is spent (${usd(spent)}). Try again tomorrow (UTC), or ask ${whoToAsk(deps)} to raise budgetUsdPerDay.`,
      };
    }
  }

  const active = await activeTasksOf(deps, request.user, policy.limits.perUser);
  if (active.length >= policy.limits.perUser) {
    const ids = active
      .slice(0, 5)
      .map((t) => t.id)
      .join(", ");
    return {
      ok: false,
      message: `You already have ${active.length} active tasks (${ids}); the limit is ${policy.limits.perUser}. Cancel one (\`/baton cancel T-…\`) or wait for one to finish.`,
    };
  }

  let repo = request.options.repo ?? findGitHubRepo(request.contextTexts) ?? channel.repo;
  if (repo !== undefined && !isValidRepoName(repo)) repo = undefined;
  // Without a repository Baton asks with a picker; with nothing to pick from, say what to type.
  if (repo === undefined && knownRepos(deps).length === 0) {
    return {
      ok: false,
      message:
        "I don't know which repository to work in. Add `repo=owner/name` to your request, or ask an admin to set this channel's default with `/baton config repo owner/name`.",
    };
  }
  const mode = request.options.mode ?? channel.mode ?? "plan";
  return {
    ok: true,
    ...(repo !== undefined ? { repo } : {}),
    mode,
    attempts,
    ...(request.options.branch !== undefined ? { baseBranch: request.options.branch } : {}),
  };
}

export interface CreatedTask {
  task: Task;
  /** True when Baton asked the requester to pick a repository first. */
  awaitingRepo: boolean;
}

/**
 * Stores a new task for an accepted request and starts it (or asks for the repository). Returns
 * once the task is durably stored and started; Slack messages and runs follow in the background.
 */
export async function createRequestTask(
  deps: SlackServiceDeps,
  request: NewRequest,
  accepted: Extract<RequestCheck, { ok: true }>,
  where: { threadTs: string; triggerTs: string },
): Promise<CreatedTask> {
  const earlier = await resumeTriggered(deps, request.channel, where.triggerTs);
  if (earlier) return earlier;
  const id = newTaskId((n) => deps.random.bytes(n));
  const task = newTask({
    id,
    now: nowIso(deps),
    requester: { userId: request.user },
    channelId: request.channel,
    threadTs: where.threadTs,
    triggerTs: where.triggerTs,
    source: request.source,
    text: request.text,
    ...(accepted.repo !== undefined ? { repo: accepted.repo } : {}),
    ...(accepted.baseBranch !== undefined ? { baseBranch: accepted.baseBranch } : {}),
    mode: accepted.mode,
    attempts: accepted.attempts,
  });
  // Index first: an index entry without its task is harmless, a task its retry cannot find is not.
  await deps.store.indexMessage(request.channel, where.triggerTs, id, "trigger");
  const stored = await deps.store.create(task);
  deps.logger.info(
    { taskId: id, channel: request.channel, source: request.source, repo: accepted.repo },
    "task created",
  );
  return resume(deps, stored);
}

/**
 * A redelivery after a partial failure: the task this message already triggered, started if it is
 * still waiting. Undefined when the message triggered nothing yet.
 */
export async function resumeTriggered(
  deps: SlackServiceDeps,
  channel: string,
  triggerTs: string,
): Promise<CreatedTask | undefined> {
  const earlier = await deps.store.findByMessage(channel, triggerTs);
  if (earlier?.kind !== "trigger") return undefined;
  const existing = await deps.store.get(earlier.taskId);
  return existing ? resume(deps, existing) : undefined;
}

/** Starts a stored task that is still `received` (or asks for its repository). Idempotent. */
async function resume(deps: SlackServiceDeps, task: Task): Promise<CreatedTask> {
  if (task.state !== "received") return { task, awaitingRepo: false };
  if (task.repo === undefined) {
    deps.background(`repo picker ${task.id}`, () => askForRepo(deps, task));
    return { task, awaitingRepo: true };
  }
  const outcome = await applyTaskEvent(
    { store: deps.store, effects: deferredEffects(deps, "start") },
    task.id,
    {
      type: "start",
      at: nowIso(deps),
    },
  );
  return { task: outcome?.task ?? task, awaitingRepo: false };
}

/** Repositories a picker can offer: the policy's repositories and channel defaults. */
function knownRepos(deps: SlackServiceDeps): string[] {
  const repos = new Set<string>(Object.keys(deps.policy.repos));
  for (const channel of Object.values(deps.policy.channels)) if (channel.repo) repos.add(channel.repo);
  return [...repos].sort();
}

/** The ephemeral repository picker, in the task's thread, for the requester alone. */
async function askForRepo(deps: SlackServiceDeps, task: Task): Promise<void> {
  const picker = renderRepoPicker({ requestId: task.id, repos: knownRepos(deps).slice(0, 100) });
  await tellUser(deps, {
    channel: task.channelId,
    user: task.requester.userId,
    threadTs: task.threadTs,
    text: picker.text,
    blocks: picker.blocks,
  });
}

/** The repository picker's selection: set the repository and start the waiting task. */
export async function selectRepo(
  deps: SlackServiceDeps,
  input: { taskId: TaskId; user: string; repo: string; channel?: string },
): Promise<void> {
  if (!isValidRepoName(input.repo)) {
    if (input.channel) {
      await tellUser(deps, {
        channel: input.channel,
        user: input.user,
        text: `${input.repo} is not a repository name like owner/name.`,
      });
    }
    return;
  }
  const at = nowIso(deps);
  const effects = deferredEffects(deps, "repo.selected");
  const outcome = await applyTaskEvent({ store: deps.store, effects }, input.taskId, {
    type: "repo.selected",
    at,
    actor: actorFor(input.user, deps.policy.access),
    repo: input.repo,
  });
  if (outcome?.changed) {
    deps.logger.info({ taskId: input.taskId, repo: input.repo }, "repository selected");
    // Some state machines keep the task in `received` after the selection; `start` is a no-op otherwise.
    if (outcome.task.state === "received") {
      await applyTaskEvent({ store: deps.store, effects }, input.taskId, { type: "start", at });
    }
    deps.background(`eyes ${input.taskId}`, () =>
      ensureReaction(deps, outcome.task.channelId, outcome.task.triggerTs, "eyes"),
    );
  }
}

/** A mention in a thread that already has an active task: a follow-up for that task (CONTRACT §8). */
export async function followUp(
  deps: SlackServiceDeps,
  input: { task: Task; user: string; text: string; mode?: "plan" | "auto"; messageTs: string },
): Promise<void> {
  const outcome = await applyTaskEvent(
    { store: deps.store, effects: deferredEffects(deps, "follow_up") },
    input.task.id,
    {
      type: "follow_up",
      at: nowIso(deps),
      actor: actorFor(input.user, deps.policy.access),
      text: input.text,
      ...(input.mode ? { mode: input.mode } : {}),
    },
  );
  if (outcome?.changed) {
    deps.background(`eyes ${input.task.id}`, () =>
      ensureReaction(deps, input.task.channelId, input.messageTs, "eyes"),
    );
  }
}

/**
 * Reads a thread's texts (bounded) to find a repository URL. It runs before the acknowledgement,
 * so it gets a deadline; failures and timeouts just mean "no hint".
 */
export async function threadTexts(
  deps: SlackServiceDeps,
  channel: string,
  threadTs: string,
): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const read = deps.chat.readThread({ channel, threadTs, limit: THREAD_READ_LIMIT });
    const deadline = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), THREAD_READ_DEADLINE_MS);
    });
    const messages = await Promise.race([read, deadline]);
    if (!messages) {
      read.catch(() => undefined);
      deps.logger.warn({ channel, threadTs }, "reading the thread took too long; going on without it");
      return [];
    }
    return messages.map((m) => m.text);
  } catch (error) {
    deps.logger.warn({ err: error, channel, threadTs }, "reading the thread failed");
    return [];
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * The task a thread is about: its active task, else the newest task of that thread (a failed task
 * can still be retried from its thread).
 */
export async function taskOfThread(
  deps: SlackServiceDeps,
  channel: string,
  threadTs: string,
): Promise<Task | undefined> {
  const active = await deps.store.findActiveByThread(channel, threadTs);
  if (active) return active;
  const recent = await deps.store.listByChannel(channel, 100);
  return recent.find((t) => t.threadTs === threadTs);
}
