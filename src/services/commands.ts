// `/baton …` (CONTRACT §5): a request opens a new thread (Baton posts the root message, the task
// lives in its thread); help, status, list, cancel, retry, budget and `config repo` answer the
// person privately through the command's response. Also the shared answers for `@baton status`.
import { isAdmin } from "../core/access.js";
import { escapeSlackText } from "../core/escape.js";
import { isValidRepoName, parseSlashText, type Intent } from "../core/intents.js";
import type { SlackBlock } from "../core/ports/chat.js";
import { renderHelp, renderStatus, renderTaskList } from "../core/render.js";
import { isTaskId, isTerminal, type TaskId } from "../core/task.js";
import { applyControl, describeControl, type ControlAction } from "./controls.js";
import { checkRequest, createRequestTask, type NewRequest } from "./requests.js";
import {
  CLAIM_TTL,
  channelSettings,
  ensureReaction,
  threadPermalinks,
  type SlackServiceDeps,
} from "./slack-context.js";

/** What the command answers (shown only to the person who typed it). */
export interface CommandAnswer {
  text: string;
  blocks?: SlackBlock[];
}

export interface SlashInput {
  channel: string;
  user: string;
  text: string;
  /** Unique per invocation; guards against a redelivered command starting a second task. */
  triggerId?: string;
}

function usd(n: number): string {
  return `$${n.toFixed(2)}`;
}

function plain(text: string): CommandAnswer {
  return { text };
}

export async function handleSlashCommand(
  deps: SlackServiceDeps,
  input: SlashInput,
): Promise<CommandAnswer | undefined> {
  const intent = parseSlashText(input.text);
  switch (intent.kind) {
    case "help":
      return renderHelp();
    case "invalid":
      return plain(intent.message);
    case "status":
      return statusAnswer(deps, {
        user: input.user,
        channel: input.channel,
        ...(intent.taskId ? { taskId: intent.taskId } : {}),
      });
    case "list":
      return listAnswer(deps, input.channel);
    case "budget":
      return budgetAnswer(deps, input.channel, input.user);
    case "config_repo":
      return configRepo(deps, input.channel, input.user, intent.repo);
    case "cancel":
    case "retry":
      if (!intent.taskId)
        return plain(`Say which task: \`/baton ${intent.kind} T-…\` (the id is in its status message).`);
      return controlAnswer(deps, intent.taskId, input.user, intent.kind);
    case "request":
      return slashRequest(deps, input, intent);
  }
}

/** A control action by command; the answer says what happened or why not. */
export async function controlAnswer(
  deps: SlackServiceDeps,
  taskId: TaskId,
  user: string,
  action: ControlAction,
): Promise<CommandAnswer> {
  const outcome = await applyControl(deps, { taskId, user, action, answerDirectly: true });
  return plain(describeControl(taskId, action, outcome));
}

export async function statusAnswer(
  deps: SlackServiceDeps,
  input: { user: string; channel: string; taskId?: TaskId },
): Promise<CommandAnswer> {
  const ctx = { now: deps.clock.now(), redact: deps.redact };
  if (input.taskId) {
    const task = await deps.store.get(input.taskId);
    // A task from another (perhaps private) channel is shown only to its requester and to
    // approvers and admins: an id must not be a key to someone else's conversation.
    const access = deps.policy.access;
    const visible =
      task !== undefined &&
      (task.channelId === input.channel ||
        task.requester.userId === input.user ||
        access.approvers.includes(input.user) ||
        access.admins.includes(input.user));
    if (!task || !visible) return plain(`I can't find task ${input.taskId}.`);
    return renderStatus(task, ctx);
  }
  const mine = (await deps.store.listByUser(input.user, 50)).filter((t) => !isTerminal(t.state));
  if (mine.length === 0) return plain("You have no active tasks. `/baton list` shows this channel's tasks.");
  return renderTaskList(mine, ctx, await threadPermalinks(deps, mine));
}

async function listAnswer(deps: SlackServiceDeps, channel: string): Promise<CommandAnswer> {
  const tasks = await deps.store.listByChannel(channel, 20);
  if (tasks.length === 0)
    return plain("No tasks in this channel yet. Mention me with a request to start one.");
  return renderTaskList(
    tasks,
    { now: deps.clock.now(), redact: deps.redact },
    await threadPermalinks(deps, tasks),
  );
}

async function budgetAnswer(deps: SlackServiceDeps, channel: string, user: string): Promise<CommandAnswer> {
  const settings = await channelSettings(deps, channel);
  const [channelSpent, userSpent] = await Promise.all([
    deps.budget.channelSpentToday(channel),
    deps.budget.userSpentToday(user),
  ]);
  const limit = settings.budgetUsdPerDay;
  const channelLine =
    limit === undefined
      ? `This channel spent ${usd(channelSpent)} on the model today (no daily budget set).`
      : `This channel spent ${usd(channelSpent)} of its ${usd(limit)} daily budget today (${usd(Math.max(0, limit - channelSpent))} left).`;
  return plain(`${channelLine}\nYou spent ${usd(userSpent)} today. Days are UTC.`);
}

async function configRepo(
  deps: SlackServiceDeps,
  channel: string,
  user: string,
  repo: string,
): Promise<CommandAnswer> {
  if (!isAdmin(user, deps.policy.access)) {
    const admins = deps.policy.access.admins
      .slice(0, 3)
      .map((u) => `<@${u}>`)
      .join(" or ");
    return plain(`Only Baton admins can change channel settings.${admins ? ` Ask ${admins}.` : ""}`);
  }
  if (!isValidRepoName(repo))
    return plain(`${escapeSlackText(repo)} is not a repository name like owner/name.`);
  await deps.state.setChannelRepo(channel, repo);
  deps.logger.info({ channel, repo, user }, "channel default repository changed");
  return plain(`Requests in <#${channel}> now go to ${escapeSlackText(repo)} unless they say repo=….`);
}

/** `/baton <request>`: post a root message in the channel, then run the task in its thread. */
async function slashRequest(
  deps: SlackServiceDeps,
  input: SlashInput,
  intent: Extract<Intent, { kind: "request" }>,
): Promise<CommandAnswer> {
  if (intent.text.trim() === "")
    return plain("Tell me what to do, e.g. `/baton fix the login redirect repo=acme/web`.");
  const request: NewRequest = {
    source: "slash",
    channel: input.channel,
    user: input.user,
    text: intent.text,
    options: {
      ...(intent.repo !== undefined ? { repo: intent.repo } : {}),
      ...(intent.branch !== undefined ? { branch: intent.branch } : {}),
      ...(intent.attempts !== undefined ? { attempts: intent.attempts } : {}),
      ...(intent.mode !== undefined ? { mode: intent.mode } : {}),
    },
    contextTexts: [input.text],
  };
  const check = await checkRequest(deps, request);
  if (!check.ok) return plain(check.message);

  const claimKey = input.triggerId ? `slash:${input.triggerId}` : undefined;
  if (claimKey && !(await deps.claims.claim(claimKey, CLAIM_TTL.event))) return plain("Already on it.");
  let rootTs: string;
  try {
    const root = await deps.chat.postMessage({
      channel: input.channel,
      text: `<@${input.user}> asked Baton: ${escapeSlackText(deps.redact(intent.text)).slice(0, 2900)}`,
    });
    rootTs = root.ts;
  } catch (error) {
    if (claimKey) await deps.claims.release(claimKey);
    deps.logger.warn(
      { err: error, channel: input.channel },
      "posting the root message of a slash request failed",
    );
    return plain("I can't post in this channel. Invite me first (`/invite @Baton`), then ask again.");
  }
  const created = await createRequestTask(deps, request, check, { threadTs: rootTs, triggerTs: rootTs });
  deps.background(`eyes ${created.task.id}`, () => ensureReaction(deps, input.channel, rootTs, "eyes"));
  return plain(
    created.awaitingRepo
      ? `Started ${created.task.id} in the thread. Which repository? Pick one there.`
      : `Started ${created.task.id}; follow it in the thread.`,
  );
}

/** Parses a task id typed by a person (case-insensitive). */
export function taskIdFrom(text: string): TaskId | undefined {
  const upper = text.trim().toUpperCase();
  return isTaskId(upper) ? upper : undefined;
}
