// What the Slack-triggered use cases (requests, controls, watcher, App Home, slash commands) share:
// their dependencies, the small ports they own (budget, channel settings), and helpers to run work
// after Slack has been acknowledged without losing track of it.
import type { Policy, ChannelPolicy } from "../config/policy.js";
import type { ChatPort, SlackBlock } from "../core/ports/chat.js";
import type { Clock, Random } from "../core/ports/clock.js";
import type { Claims, TaskStore } from "../core/ports/task-store.js";
import type { Effect, Task } from "../core/task.js";
import type { Logger } from "../shared/logger.js";
import type { EffectRunner } from "./task-events.js";
import type { BudgetReader } from "../core/ports/budget.js";

/**
 * Small runtime state of the Slack side: channel defaults changed with `/baton config repo`, and
 * which thread a watcher offer belongs to (so 🛠 on the offer fixes the report it answers).
 */
export interface SlackState {
  channelRepo(channelId: string): Promise<string | undefined>;
  setChannelRepo(channelId: string, repo: string): Promise<void>;
  rememberOffer(channelId: string, offerTs: string, threadTs: string): Promise<void>;
  offerThread(channelId: string, offerTs: string): Promise<string | undefined>;
}

/** Baton's own identity in the workspace (auth.test). */
export interface BotIdentity {
  userId: string;
  botId?: string;
  teamId?: string;
}

/** Cheap model classification of a message: true = bug report; undefined = no opinion. */
export type Classify = (text: string) => Promise<boolean | undefined>;

export interface SlackServiceDeps {
  policy: Policy;
  chat: ChatPort;
  store: TaskStore;
  claims: Claims;
  effects: EffectRunner;
  clock: Clock;
  random: Random;
  logger: Logger;
  budget: BudgetReader;
  state: SlackState;
  classify?: Classify;
  /** Resolved at start (auth.test); events arrive only after it is known. */
  identity(): BotIdentity;
  /** Runs work after the acknowledgement; failures are logged, shutdown waits for it. */
  background(what: string, work: () => Promise<unknown>): void;
  /** Redacts secrets from text bound for logs or Slack. */
  redact(text: string): string;
}

/** Claims that guard one-time work: long enough to outlive every Slack retry. */
export const CLAIM_TTL = {
  event: 24 * 3600,
  message: 24 * 3600,
  notice: 7 * 24 * 3600,
  watch: 90 * 24 * 3600,
} as const;

export interface ChannelSettings extends ChannelPolicy {
  /** Where the default repository came from, for `/baton config` answers. */
  repoSource?: "policy" | "runtime";
}

/** The channel's effective settings: policy file, overridden by `/baton config repo`. */
export async function channelSettings(deps: SlackServiceDeps, channelId: string): Promise<ChannelSettings> {
  const fromPolicy = deps.policy.channels[channelId] ?? {};
  const runtime = await deps.state.channelRepo(channelId);
  if (runtime) return { ...fromPolicy, repo: runtime, repoSource: "runtime" };
  return fromPolicy.repo ? { ...fromPolicy, repoSource: "policy" } : { ...fromPolicy };
}

/** A private message in the channel (and thread); refusals and answers to one person. */
export async function tellUser(
  deps: SlackServiceDeps,
  input: { channel: string; user: string; threadTs?: string; text: string; blocks?: SlackBlock[] },
): Promise<void> {
  try {
    await deps.chat.postEphemeral({
      channel: input.channel,
      user: input.user,
      ...(input.threadTs ? { threadTs: input.threadTs } : {}),
      text: input.text,
      ...(input.blocks ? { blocks: input.blocks } : {}),
    });
  } catch (error) {
    deps.logger.warn({ err: error, channel: input.channel, user: input.user }, "ephemeral message failed");
  }
}

/** Adds a reaction; the chat adapter treats "already there" as success. Failures are only logged. */
export async function ensureReaction(
  deps: SlackServiceDeps,
  channel: string,
  ts: string,
  name: string,
): Promise<void> {
  try {
    await deps.chat.addReaction({ channel, ts, name });
  } catch (error) {
    deps.logger.warn({ err: error, channel, ts, reaction: name }, "adding a reaction failed");
  }
}

/**
 * An EffectRunner that hands the effects to the real one in the background, so a Slack request is
 * acknowledged as soon as the task's new state is stored. Private notices to a person are sent at
 * most once per task + action + person (a stranger clicking ✅ five times hears it once).
 */
export function deferredEffects(deps: SlackServiceDeps, action: string): EffectRunner {
  return {
    async run(task: Task, effects: Effect[]) {
      deps.background(`effects ${task.id}`, async () => {
        const kept: Effect[] = [];
        for (const effect of effects) {
          if (effect.type === "notify_user") {
            const fresh = await deps.claims.claim(
              `notice:${task.id}:${action}:${effect.userId}`,
              CLAIM_TTL.notice,
            );
            if (!fresh) continue;
          }
          kept.push(effect);
        }
        if (kept.length > 0) await deps.effects.run(task, kept);
      });
    },
  };
}

/** Milliseconds-precision ISO time from the injected clock. */
export function nowIso(deps: Pick<SlackServiceDeps, "clock">): string {
  return deps.clock.now().toISOString();
}

/** Thread permalinks of tasks (App Home, `/baton list`): fetched in parallel, best effort. */
export async function threadPermalinks(
  deps: Pick<SlackServiceDeps, "chat" | "logger">,
  tasks: readonly { id: string; channelId: string; threadTs: string }[],
): Promise<Record<string, string>> {
  const entries = await Promise.all(
    tasks.map(async (task) => {
      try {
        const link = await deps.chat.permalink({ channel: task.channelId, ts: task.threadTs });
        return link ? ([task.id, link] as const) : undefined;
      } catch (error) {
        deps.logger.debug({ err: error, taskId: task.id }, "permalink lookup failed");
        return undefined;
      }
    }),
  );
  return Object.fromEntries(entries.filter((e): e is readonly [string, string] => e !== undefined));
}
