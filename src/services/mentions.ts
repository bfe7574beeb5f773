// `@baton …` in a channel message or a thread reply (CONTRACT §5): a request starts a task in the
// message's thread, a mention in a thread with an active task is a follow-up for it, and the control
// words status / cancel / retry / help act on that thread's task. Answers go to the person alone.
import { parseMentionText, slackToPlainText } from "../core/intents.js";
import { renderHelp, renderStatus } from "../core/render.js";
import { isTerminal } from "../core/task.js";
import { controlAnswer, statusAnswer } from "./commands.js";
import {
  checkRequest,
  createRequestTask,
  followUp,
  resumeTriggered,
  taskOfThread,
  threadTexts,
  type NewRequest,
} from "./requests.js";
import { CLAIM_TTL, ensureReaction, tellUser, type SlackServiceDeps } from "./slack-context.js";

export interface MentionInput {
  channel: string;
  ts: string;
  /** Set when the message is a thread reply. */
  threadTs?: string;
  user: string;
  text: string;
}

export async function handleMention(deps: SlackServiceDeps, input: MentionInput): Promise<void> {
  const intent = parseMentionText(input.text, deps.identity().userId);
  const inThread = input.threadTs !== undefined && input.threadTs !== input.ts;
  const threadTs = inThread && input.threadTs ? input.threadTs : input.ts;
  // Answers are private and need nothing durable: they go out after the acknowledgement.
  const reply = (text: string, blocks?: Parameters<typeof tellUser>[1]["blocks"]): void =>
    deps.background(`reply ${input.channel}:${input.ts}`, () =>
      tellUser(deps, {
        channel: input.channel,
        user: input.user,
        threadTs,
        text,
        ...(blocks ? { blocks } : {}),
      }),
    );

  switch (intent.kind) {
    case "help": {
      const help = renderHelp();
      return reply(help.text, help.blocks);
    }
    case "invalid":
      return reply(intent.message);
    case "config_repo":
      return reply("Channel settings change with `/baton config repo owner/name`.");
    case "list":
    case "budget":
      return reply(`Use \`/baton ${intent.kind}\` for that.`);
    case "status": {
      if (intent.taskId) {
        const answer = await statusAnswer(deps, {
          user: input.user,
          channel: input.channel,
          taskId: intent.taskId,
        });
        return reply(answer.text, answer.blocks);
      }
      const task = inThread ? await taskOfThread(deps, input.channel, threadTs) : undefined;
      if (!task) {
        const answer = await statusAnswer(deps, { user: input.user, channel: input.channel });
        return reply(answer.text, answer.blocks);
      }
      const status = renderStatus(task, { now: deps.clock.now(), redact: deps.redact });
      return reply(status.text, status.blocks);
    }
    case "cancel":
    case "retry": {
      const task = intent.taskId
        ? await deps.store.get(intent.taskId)
        : inThread
          ? await taskOfThread(deps, input.channel, threadTs)
          : undefined;
      if (!task) {
        return reply(
          intent.taskId
            ? `I can't find task ${intent.taskId}.`
            : `There is no task in this thread. Say which one: \`@Baton ${intent.kind} T-…\`.`,
        );
      }
      const answer = await controlAnswer(deps, task.id, input.user, intent.kind);
      return reply(answer.text);
    }
    case "request":
      break;
  }

  // This very message may have started a task already (a retry after a partial failure).
  if (await resumeTriggered(deps, input.channel, input.ts)) return;
  const active = await deps.store.findActiveByThread(input.channel, threadTs);
  if (active && !isTerminal(active.state)) {
    if (intent.text.trim() === "") {
      return reply(
        `${active.id} is already working in this thread. Mention me with instructions to follow up.`,
      );
    }
    return followUp(deps, {
      task: active,
      user: input.user,
      text: intent.text,
      ...(intent.mode ? { mode: intent.mode } : {}),
      messageTs: input.ts,
    });
  }
  if (intent.text.trim() === "" && !inThread) {
    return reply(
      "Tell me what to do, e.g. `@Baton fix the login redirect repo=acme/web`, or mention me in a thread that describes the problem.",
    );
  }

  const vague = inThread && VAGUE_REQUEST.test(intent.text.trim());
  const texts =
    (intent.repo === undefined || vague) && inThread
      ? await threadTexts(deps, input.channel, threadTs)
      : [input.text];
  const request: NewRequest = {
    source: "mention",
    channel: input.channel,
    user: input.user,
    text: vague ? describeThreadRequest(texts) : intent.text,
    options: {
      ...(intent.repo !== undefined ? { repo: intent.repo } : {}),
      ...(intent.branch !== undefined ? { branch: intent.branch } : {}),
      ...(intent.attempts !== undefined ? { attempts: intent.attempts } : {}),
      ...(intent.mode !== undefined ? { mode: intent.mode } : {}),
    },
    // The thread is the task's context; it is read here only when it may name the repository or
    // say what "it" is.
    contextTexts: texts,
  };
  const check = await checkRequest(deps, request);
  if (!check.ok) return reply(check.message);
  // 👀 goes out while the task is being stored: the acknowledgement must land within 3 s.
  deps.background(`eyes ${input.channel}:${input.ts}`, () =>
    ensureReaction(deps, input.channel, input.ts, "eyes"),
  );
  await createRequestTask(deps, request, check, { threadTs, triggerTs: input.ts });
}

/** "@baton fix it" in a thread: the request is whatever the thread describes. */
const VAGUE_REQUEST =
  /^(?:(?:please\s+)?(?:it|this|that|this one|that one|this bug|the bug|this issue|this error|the problem))?[.!]*$/i;

/** A readable request for a vague mention: the thread's first message, first line, bounded. */
function describeThreadRequest(threadTexts: readonly string[]): string {
  const root = slackToPlainText(threadTexts[0] ?? "").trim();
  const firstLine =
    root
      .split("\n")
      .find((line) => line.trim() !== "")
      ?.trim() ?? "";
  if (firstLine === "") return "Fix what this thread describes.";
  const shown = firstLine.length > 200 ? `${firstLine.slice(0, 199)}…` : firstLine;
  return `Fix what this thread describes: "${shown}"`;
}

/** The root ts of the thread holding message `ts` (the message itself when it is not a reply). */
async function threadRootOf(deps: SlackServiceDeps, channel: string, ts: string): Promise<string> {
  try {
    const [first] = await deps.chat.readThread({ channel, threadTs: ts, limit: 1 });
    return first?.threadTs ?? first?.ts ?? ts;
  } catch {
    return ts;
  }
}

/** 🛠 on any message (or a "fix" button): a task whose context is that message and its thread. */
export async function handleFixRequest(
  deps: SlackServiceDeps,
  input: { channel: string; ts: string; user: string; source: "reaction" | "button" },
): Promise<void> {
  // 🛠 on Baton's offer under a bug report means "fix the report".
  const offeredFor = await deps.state.offerThread(input.channel, input.ts);
  // 🛠 on a reply belongs to its thread: the task lives in the thread, not under the reply.
  const threadTs = offeredFor ?? (await threadRootOf(deps, input.channel, input.ts));
  const triggerTs = offeredFor ?? input.ts;
  const tell = (text: string): void =>
    deps.background(`reply ${input.channel}:${input.ts}`, () =>
      tellUser(deps, { channel: input.channel, user: input.user, threadTs, text }),
    );
  const active = await deps.store.findActiveByThread(input.channel, threadTs);
  if (active) return tell(`${active.id} is already working on this thread. Mention me there to follow up.`);
  const request: NewRequest = {
    source: input.source,
    channel: input.channel,
    user: input.user,
    text: "",
    options: {},
    contextTexts: await threadTexts(deps, input.channel, threadTs),
  };
  const check = await checkRequest(deps, request);
  if (!check.ok) return tell(check.message);
  // One task per message however many people react (claimed only by someone allowed to ask).
  const key = `fix:${input.channel}:${triggerTs}`;
  if (!(await deps.claims.claim(key, CLAIM_TTL.message))) return;
  try {
    deps.background(`eyes ${input.channel}:${triggerTs}`, () =>
      ensureReaction(deps, input.channel, triggerTs, "eyes"),
    );
    await createRequestTask(deps, request, check, { threadTs, triggerTs });
  } catch (error) {
    await deps.claims.release(key).catch(() => undefined);
    throw error;
  }
}
