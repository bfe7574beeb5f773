// The Notifier: every message Baton posts for a task (TaskNotifier). One status message per task,
// posted once and then edited in place; status edits coalesce (latest wins) under workspace-wide
// budgets per method (shared by replicas through Redis with `sharedBudget`) with Retry-After
// honoured; final messages go before progress; a post whose
// answer was lost is looked up by its metadata instead of being posted again blindly; replicas
// agree on who posts through Redis claims.
import { randomUUID } from "node:crypto";
import { RateLimitedError, UnknownOutcomeError } from "../../core/ports/chat.js";
import type { Clock } from "../../core/ports/clock.js";
import type { NotifyEffect, TaskNotifier } from "../../core/ports/effects.js";
import type { Claims, TaskMessageKind, TaskStore } from "../../core/ports/task-store.js";
import type { Redactor } from "../../core/redact.js";
import {
  renderAttemptsSummary,
  renderPlan,
  renderResult,
  renderStatus,
  type RenderContext,
  type SlackMessage,
} from "../../core/render.js";
import { isTerminal, type Task, type TaskId } from "../../core/task.js";
import { updateTask } from "../../services/task-events.js";
import type { Logger } from "../../shared/logger.js";
import { SlackApiError, type MessageMetadata, type SlackChat } from "./chat.js";
import { BudgetClosedError, SlackBudget, type BudgetRule } from "./notifier/budget.js";
import { withinSlackLimits } from "./notifier/message-limits.js";
import type { SharedRateBudget } from "./notifier/shared-budget.js";

export interface NotifierLimits {
  /** chat.update, whole workspace (Slack Tier 3: ~50/min). */
  chatUpdate: BudgetRule;
  /** chat.postMessage, per channel (Slack: ~1/s, short bursts allowed). */
  postMessagePerChannel: BudgetRule;
  /** reactions.add, whole workspace. */
  reactions: BudgetRule;
  /** chat.postEphemeral, whole workspace. */
  ephemeral: BudgetRule;
  /** conversations.replies (finding our own messages by metadata), whole workspace. */
  replies: BudgetRule;
  /** Least time between two edits of one status message (progress only; terminal edits skip it). */
  statusMinIntervalMs: number;
  /** How long a claim to post one message lives. */
  claimTtlSeconds: number;
  /** Waits before each metadata lookup after a post whose answer was lost. */
  unknownOutcomeChecksMs: number[];
  /** How long to wait for another replica that claimed a post before taking over. */
  peerWaitMs: number;
}

export const DEFAULT_NOTIFIER_LIMITS: NotifierLimits = {
  chatUpdate: { max: 50, windowMs: 60_000 },
  postMessagePerChannel: { max: 3, windowMs: 3_000 },
  reactions: { max: 50, windowMs: 60_000 },
  ephemeral: { max: 100, windowMs: 60_000 },
  replies: { max: 50, windowMs: 60_000 },
  statusMinIntervalMs: 1_000,
  claimTtlSeconds: 7 * 24 * 3600,
  unknownOutcomeChecksMs: [1_000, 3_000, 10_000],
  peerWaitMs: 120_000,
};

export interface NotifierDeps {
  chat: SlackChat;
  store: TaskStore;
  claims: Claims;
  clock: Clock;
  logger: Logger;
  redact: Redactor;
  limits?: Partial<NotifierLimits>;
  /**
   * The budget all replicas share (createRedisRateBudget). Without it each process keeps its own,
   * which is workspace-wide only while a single process talks to Slack.
   */
  sharedBudget?: SharedRateBudget;
}

export interface Notifier extends TaskNotifier {
  /** Resolves once nothing is pending or in flight (tests, shutdown). */
  flush(): Promise<void>;
  /** Stops taking work; waits up to `timeoutMs` for pending messages, then drops the rest. */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/** Metadata event type on every message Baton posts for a task. */
export const BATON_MESSAGE_EVENT = "baton_message";

type PostKind = Exclude<TaskMessageKind, "trigger">;

// Lower goes first: final messages, then other posts, then progress edits.
const FINAL = 0;
const POST = 1;
const PROGRESS = 2;

const MAX_RATE_LIMITED_RETRIES = 10;
const MAX_TRANSIENT_RETRIES = 3;
const MAX_TAKEOVERS = 3;
const MAX_STATUS_FAILURES = 5;

const REACTIONS_FOR_ATTEMPTS = ["one", "two", "three", "four"] as const;

interface StatusState {
  /** Newest task snapshot waiting to be shown. */
  pending?: Task;
  running: boolean;
  /** Running, but only waiting out the interval after an edit (not pending work for flush()). */
  lingering: boolean;
  ts?: string;
  lastSentAt: number;
  sentVersion: number;
  failures: number;
  wake?: () => void;
}

/** Read through a call: the field changes while we await, which narrowing cannot know. */
function pendingOf(s: StatusState): Task | undefined {
  return s.pending;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Slack's key for the message of `kind`: one status message ever, other posts per launch/state. */
export function messageKey(task: Task, kind: PostKind): string {
  switch (kind) {
    case "status":
      return `${task.id}:status`;
    case "plan":
      return `${task.id}:plan:${task.launch}`;
    case "attempts":
      return `${task.id}:attempts:${task.launch}`;
    case "result":
      return `${task.id}:result:${task.launch}:${task.state}:${task.pr?.number ?? 0}`;
  }
}

const SLACK_FIELD: Record<PostKind, keyof Task["slack"]> = {
  status: "statusTs",
  plan: "planTs",
  result: "resultTs",
  attempts: "summaryTs",
};

export function createNotifier(deps: NotifierDeps): Notifier {
  const { chat, store, claims, clock, logger } = deps;
  const limits: NotifierLimits = { ...DEFAULT_NOTIFIER_LIMITS, ...deps.limits };
  const budget = new SlackBudget();
  const statuses = new Map<TaskId, StatusState>();
  const inflightPosts = new Map<string, Promise<{ ts: string; postedVersion?: number }>>();
  const lanes = new Map<TaskId, Promise<void>>();
  let active = 0;
  let idleWaiters: (() => void)[] = [];
  let closed = false;
  let closing: Promise<void> | undefined;

  const ctx = (): RenderContext => ({ now: clock.now(), redact: deps.redact });

  const busy = (): boolean =>
    active > 0 || [...statuses.values()].some((s) => (s.running && !s.lingering) || s.pending !== undefined);
  const settle = (): void => {
    if (busy()) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  };
  const track = async <T>(work: () => Promise<T>): Promise<T> => {
    active += 1;
    try {
      return await work();
    } finally {
      active -= 1;
      settle();
    }
  };

  // -------------------------------------------------------------------------------------------
  // Calls under a budget: wait for a slot, honour Retry-After, retry Slack-side trouble briefly.

  /** One call's place in the local budget and, when configured, in the replicas' shared one. */
  interface Slot {
    release(options?: { used?: boolean }): void;
  }

  async function acquireSlot(key: string, rule: BudgetRule, priority: () => number): Promise<Slot> {
    const lease = await budget.acquire(key, rule, priority);
    const callId = randomUUID();
    let shared: boolean;
    try {
      shared = await takeShared(key, rule, callId);
    } catch (error) {
      lease.release({ used: false });
      throw error;
    }
    let released = false;
    return {
      release(options = {}) {
        if (released) return;
        released = true;
        const used = options.used ?? true;
        lease.release({ used });
        if (shared && deps.sharedBudget) {
          const done = used ? deps.sharedBudget.settle(key, callId) : deps.sharedBudget.cancel(key, callId);
          void done.catch((e: unknown) => logger.warn({ err: e }, "shared slack budget unavailable"));
        }
      },
    };
  }

  /**
   * Runs `fn` (one Slack call) in a budget slot: waits its turn, honours Retry-After, and retries
   * briefly when Slack answered with trouble on its side. `first` is a slot the caller already holds.
   */
  async function budgeted<T>(
    key: string,
    rule: BudgetRule,
    priority: () => number,
    fn: () => Promise<T>,
    first?: Slot,
  ): Promise<T> {
    let limited = 0;
    let transient = 0;
    let held = first;
    for (;;) {
      const slot = held ?? (await acquireSlot(key, rule, priority));
      held = undefined;
      try {
        return await fn();
      } catch (error) {
        if (error instanceof RateLimitedError && limited < MAX_RATE_LIMITED_RETRIES) {
          limited += 1;
          // Paused before the slot is released, so no one else slips out inside the window.
          budget.pause(key, rule, Date.now() + Math.max(1, error.retryAfterSeconds) * 1000);
          void deps.sharedBudget
            ?.pause(key, error.retryAfterSeconds)
            .catch((e: unknown) => logger.warn({ err: e }, "shared slack budget unavailable"));
          logger.warn({ bucket: key, retryAfter: error.retryAfterSeconds }, "slack rate limited; pausing");
          continue;
        }
        // Slack answered (ok:false or HTTP 5xx): it did not act, so another attempt is safe.
        if (error instanceof SlackApiError && error.transient && transient < MAX_TRANSIENT_RETRIES) {
          transient += 1;
          await sleep(250 * 2 ** transient);
          continue;
        }
        throw error;
      } finally {
        slot.release();
      }
    }
  }

  /** Waits for a slot in the replicas' shared budget; without Redis, the local budget alone decides. */
  async function takeShared(key: string, rule: BudgetRule, callId: string): Promise<boolean> {
    const shared = deps.sharedBudget;
    if (!shared) return false;
    for (;;) {
      let answer: Awaited<ReturnType<SharedRateBudget["take"]>>;
      try {
        answer = await shared.take(key, rule, callId);
      } catch (error) {
        logger.warn({ err: error, bucket: key }, "shared slack budget unavailable; using the local one");
        return false;
      }
      if (answer.ok) return true;
      if (closed) throw new BudgetClosedError();
      await sleep(answer.waitMs);
    }
  }

  const postBucket = (channel: string) => ({
    key: `chat.postMessage:${channel}`,
    rule: limits.postMessagePerChannel,
  });

  // -------------------------------------------------------------------------------------------
  // Finding and recording Baton's own messages.

  async function findPosted(task: Task, key: string): Promise<string | undefined> {
    try {
      const tagged = await budgeted(
        "conversations.replies",
        limits.replies,
        () => POST,
        () =>
          chat.findTaggedMessages({
            channel: task.channelId,
            threadTs: task.threadTs,
            eventType: BATON_MESSAGE_EVENT,
          }),
      );
      return tagged.find((m) => m.metadata.event_payload.key === key)?.ts;
    } catch (error) {
      if (error instanceof SlackApiError && error.code === "thread_not_found") return undefined;
      throw error;
    }
  }

  async function recordedStatusTs(task: Task): Promise<string | undefined> {
    if (task.slack.statusTs !== undefined) return task.slack.statusTs;
    try {
      return (await store.get(task.id))?.slack.statusTs;
    } catch (error) {
      logger.warn(
        { taskId: task.id, err: error },
        "task store unavailable while looking for the status message",
      );
      return undefined;
    }
  }

  async function record(task: Task, kind: PostKind, ts: string): Promise<void> {
    const field = SLACK_FIELD[kind];
    await updateTask(store, task.id, (t) => {
      if (t.slack[field] === ts) return undefined;
      // There is one status message ever: never point the task at another one.
      if (kind === "status" && t.slack.statusTs !== undefined) return undefined;
      return { ...t, slack: { ...t.slack, [field]: ts } };
    });
    await store.indexMessage(task.channelId, ts, task.id, kind);
  }

  /** Waits for a replica that claimed `key` to finish; undefined if it seems gone. */
  async function waitForPeer(task: Task, kind: PostKind, key: string): Promise<string | undefined> {
    const deadline = Date.now() + limits.peerWaitMs;
    let nextLookup = kind === "status" ? Date.now() + 2_000 : Date.now();
    for (;;) {
      if (kind === "status") {
        const ts = (await store.get(task.id))?.slack.statusTs;
        if (ts !== undefined) return ts;
      }
      if (Date.now() >= nextLookup) {
        const ts = await findPosted(task, key);
        if (ts !== undefined) return ts;
        nextLookup = Date.now() + 3_000;
      }
      if (Date.now() >= deadline) return undefined;
      await sleep(kind === "status" ? 100 : 500);
    }
  }

  /** Posts once under a claim we hold; a lost answer is resolved by looking the message up. */
  async function postClaimed(
    task: Task,
    kind: PostKind,
    key: string,
    claimKey: string,
    render: () => Promise<{ message: SlackMessage; version: number }>,
    priority: number,
    slot: Slot,
  ): Promise<{ ts: string; postedVersion?: number }> {
    let first: Slot | undefined = slot;
    const metadata: MessageMetadata = {
      event_type: BATON_MESSAGE_EVENT,
      event_payload: { task_id: task.id, kind, key },
    };
    const bucket = postBucket(task.channelId);
    for (let unknown = 0; ; unknown++) {
      let rendered: { message: SlackMessage; version: number };
      try {
        rendered = await render();
      } catch (error) {
        // Nothing was sent: free the slot and the claim.
        first?.release({ used: false });
        await claims.release(claimKey).catch(() => undefined);
        throw error;
      }
      const { message, version } = rendered;
      const held = first;
      first = undefined;
      try {
        const { ts } = await budgeted(
          bucket.key,
          bucket.rule,
          () => priority,
          () =>
            chat.postMessage({
              channel: task.channelId,
              threadTs: task.threadTs,
              text: message.text,
              ...(message.blocks.length > 0 ? { blocks: message.blocks } : {}),
              metadata,
            }),
          held,
        );
        return { ts, postedVersion: version };
      } catch (error) {
        if (error instanceof UnknownOutcomeError) {
          logger.warn(
            { taskId: task.id, kind, key },
            "answer to chat.postMessage lost; looking the message up",
          );
          for (const wait of limits.unknownOutcomeChecksMs) {
            await sleep(wait);
            const ts = await findPosted(task, key);
            if (ts !== undefined) return { ts };
          }
          // Verified absent (several lookups): posting again is not a blind retry. Past the bound
          // the claim stays taken: a redelivered effect waits, then looks in Slack before posting.
          if (unknown + 1 < MAX_TRANSIENT_RETRIES) continue;
          throw error;
        }
        // Slack refused the post outright: nothing was posted, so a later retry may claim again.
        await claims.release(claimKey).catch(() => undefined);
        throw error;
      }
    }
  }

  /** The message for `key`, posted at most once across replicas, redeliveries and lost answers. */
  function postOnce(
    task: Task,
    kind: PostKind,
    key: string,
    render: () => Promise<{ message: SlackMessage; version: number }>,
    priority: number,
  ): Promise<{ ts: string; postedVersion?: number }> {
    const running = inflightPosts.get(key);
    if (running) return running;
    const bucket = postBucket(task.channelId);
    const work = (async () => {
      for (let generation = 0; generation <= MAX_TAKEOVERS; generation++) {
        const claimKey = generation === 0 ? `slack:post:${key}` : `slack:post:${key}:takeover${generation}`;
        // Claim only once it is our turn to post in this channel: a claim then stands for a post in
        // progress, never for a wait in a queue, so peers can tell a dead poster from a busy channel.
        const slot = await acquireSlot(bucket.key, bucket.rule, () => priority);
        let handedOver = false;
        try {
          if (await claims.claim(claimKey, limits.claimTtlSeconds)) {
            // Taking over from a replica that went quiet: it may have posted after all.
            if (generation > 0) {
              const ts = await findPosted(task, key);
              if (ts !== undefined) return { ts };
            }
            handedOver = true;
            return await postClaimed(task, kind, key, claimKey, render, priority, slot);
          }
        } finally {
          if (!handedOver) slot.release({ used: false });
        }
        const ts = await waitForPeer(task, kind, key);
        if (ts !== undefined) return { ts };
        logger.warn(
          { taskId: task.id, kind, key, generation },
          "the replica that claimed this post went quiet; taking over",
        );
      }
      throw new Error(`could not post the ${kind} message of ${task.id}`);
    })();
    inflightPosts.set(key, work);
    void work.then(
      () => inflightPosts.delete(key),
      () => inflightPosts.delete(key),
    );
    return work;
  }

  // -------------------------------------------------------------------------------------------
  // The status message.

  async function freshest(task: Task): Promise<Task> {
    try {
      const stored = await store.get(task.id);
      return stored !== undefined && stored.version > task.version ? stored : task;
    } catch {
      return task;
    }
  }

  const render = (
    fn: (task: Task, ctx: RenderContext) => SlackMessage,
    task: Task,
    kind: PostKind,
  ): SlackMessage => {
    const checked = withinSlackLimits(fn(task, ctx()));
    if (checked.violation !== undefined) {
      logger.error(
        { taskId: task.id, kind, violation: checked.violation },
        "rendered message breaks Slack limits; sending text only",
      );
    }
    return checked.message;
  };

  const statusState = (id: TaskId): StatusState => {
    let s = statuses.get(id);
    if (!s) {
      s = { running: false, lingering: false, lastSentAt: 0, sentVersion: -1, failures: 0 };
      statuses.set(id, s);
    }
    return s;
  };

  /** The status message's ts, posting it (once, ever) if it does not exist yet. */
  async function ensureStatus(task: Task, priority: number): Promise<string> {
    const known = statuses.get(task.id)?.ts;
    if (known !== undefined) return known;
    const recorded = await recordedStatusTs(task);
    const posted =
      recorded !== undefined
        ? { ts: recorded }
        : await postOnce(
            task,
            "status",
            messageKey(task, "status"),
            async () => {
              // The newest state known when the post goes out, not the one that asked for it.
              const pending = statuses.get(task.id)?.pending;
              const fresh = await freshest(
                pending !== undefined && pending.version > task.version ? pending : task,
              );
              return { message: render(renderStatus, fresh, "status"), version: fresh.version };
            },
            priority,
          );
    if (recorded === undefined) await record(task, "status", posted.ts);
    // Only tasks with a status sender keep state here: posts alone must not grow the map.
    const s = statuses.get(task.id);
    if (s) {
      s.ts = posted.ts;
      if (posted.postedVersion !== undefined) s.sentVersion = Math.max(s.sentVersion, posted.postedVersion);
    }
    return posted.ts;
  }

  function enqueueStatus(task: Task): void {
    const s = statusState(task.id);
    if (s.pending === undefined || task.version >= s.pending.version) s.pending = task;
    if (isTerminal(task.state) || closed) s.wake?.();
    if (!s.running) {
      s.running = true;
      void runStatus(task.id, s).finally(() => {
        s.running = false;
        if (s.pending !== undefined && !closed) {
          enqueueStatus(s.pending);
          return;
        }
        if (statuses.get(task.id) === s) statuses.delete(task.id);
        settle();
      });
    }
  }

  async function waitForInterval(s: StatusState): Promise<void> {
    const due = s.lastSentAt + limits.statusMinIntervalMs - Date.now();
    if (due <= 0 || (s.pending !== undefined && isTerminal(s.pending.state))) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, due);
      function done() {
        clearTimeout(timer);
        s.wake = undefined;
        resolve();
      }
      s.wake = done;
    });
  }

  async function runStatus(id: TaskId, s: StatusState): Promise<void> {
    for (;;) {
      if (closed) return;
      if (s.pending === undefined) {
        // Stay a moment after an edit: events arriving within the interval become one next edit
        // (calls per task do not grow with the agent's event rate).
        if (s.lastSentAt + limits.statusMinIntervalMs <= Date.now()) return;
        s.lingering = true;
        settle();
        await waitForInterval(s);
        s.lingering = false;
        continue;
      }
      const snapshot = s.pending;
      try {
        if (s.ts === undefined) {
          const priority = isTerminal(snapshot.state) ? FINAL : POST;
          await ensureStatus(snapshot, priority);
          if (s.pending === snapshot && s.sentVersion >= snapshot.version) s.pending = undefined;
          s.lastSentAt = Date.now();
          continue;
        }
        await waitForInterval(s);
        const ts = s.ts;
        await budgeted(
          "chat.update",
          limits.chatUpdate,
          () => (s.pending !== undefined && isTerminal(s.pending.state) ? FINAL : PROGRESS),
          async () => {
            // Coalescing: whatever is newest when our turn comes is what gets shown.
            const latest = s.pending;
            s.pending = undefined;
            if (latest === undefined) return;
            try {
              const fresh = await freshest(latest);
              if (fresh.version <= s.sentVersion) return;
              const message = render(renderStatus, fresh, "status");
              await chat.updateMessage({
                channel: fresh.channelId,
                ts,
                text: message.text,
                blocks: message.blocks,
              });
              s.sentVersion = fresh.version;
              s.lastSentAt = Date.now();
            } catch (error) {
              // Not shown: keep it unless something newer arrived meanwhile.
              const newer = pendingOf(s);
              if (newer === undefined || newer.version < latest.version) s.pending = latest;
              throw error;
            }
          },
        );
        s.failures = 0;
      } catch (error) {
        if (error instanceof BudgetClosedError) return;
        s.failures += 1;
        const permanent = error instanceof SlackApiError && !error.transient;
        logger.warn({ taskId: id, err: error, failures: s.failures }, "status message not updated");
        if (permanent || s.failures >= MAX_STATUS_FAILURES) {
          // Dropping this render; a later state change brings a new one.
          s.pending = undefined;
          s.failures = 0;
          return;
        }
        await sleep(500 * 2 ** s.failures);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Posts: plan, result, attempts summary (each once per key), in order per task.

  function inLane(id: TaskId, work: () => Promise<void>): Promise<void> {
    const previous = lanes.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    lanes.set(id, settled);
    void settled.then(() => {
      if (lanes.get(id) === settled) lanes.delete(id);
    });
    return next;
  }

  async function addReactions(task: Task, ts: string, names: readonly string[]): Promise<void> {
    for (const name of names) {
      await budgeted(
        "reactions.add",
        limits.reactions,
        () => POST,
        () => chat.addReaction({ channel: task.channelId, ts, name }),
      );
    }
  }

  async function post(task: Task, kind: Exclude<PostKind, "status">, priority: number): Promise<void> {
    // The status message is always the task's first message.
    await ensureStatus(task, priority);
    const renderer = kind === "plan" ? renderPlan : kind === "result" ? renderResult : renderAttemptsSummary;
    const posted = await postOnce(
      task,
      kind,
      messageKey(task, kind),
      async () => {
        // The summary is asked for as the launch ends, but the publish it announces may be done by
        // the time it is posted: show the pull request as it stands then.
        const subject = kind === "attempts" ? await freshest(task) : task;
        return { message: render(renderer, subject, kind), version: subject.version };
      },
      priority,
    );
    await record(task, kind, posted.ts);
    if (kind === "plan") await addReactions(task, posted.ts, ["white_check_mark", "x"]);
    if (kind === "attempts") {
      const n = Math.min(REACTIONS_FOR_ATTEMPTS.length, Math.max(task.attempts, task.attemptResults.length));
      await addReactions(task, posted.ts, REACTIONS_FOR_ATTEMPTS.slice(0, n));
    }
    if (kind === "result") {
      await refreshSummary(task).catch((error: unknown) =>
        logger.warn({ taskId: task.id, err: error }, "attempts summary not updated"),
      );
    }
  }

  /**
   * The attempts summary is posted as a best-of-N launch ends, before the pull request exists; once
   * a result names the pull request (first publish, or another attempt chosen), the summary is
   * edited to mark the attempt that is now published.
   */
  async function refreshSummary(task: Task): Promise<void> {
    if (task.pr === undefined || task.attempts < 2 || task.round > 1) return;
    const stored = await store.get(task.id);
    const latest = stored !== undefined && stored.version > task.version ? stored : task;
    const ts = stored?.slack.summaryTs ?? task.slack.summaryTs;
    if (ts === undefined || latest.pr === undefined) return;
    const message = render(renderAttemptsSummary, latest, "attempts");
    await budgeted(
      "chat.update",
      limits.chatUpdate,
      () => POST,
      () => chat.updateMessage({ channel: latest.channelId, ts, text: message.text, blocks: message.blocks }),
    );
  }

  async function notifyUser(task: Task, userId: string, text: string): Promise<void> {
    const message = withinSlackLimits({ text, blocks: [] }).message;
    await budgeted(
      "chat.postEphemeral",
      limits.ephemeral,
      () => POST,
      () =>
        chat.postEphemeral({
          channel: task.channelId,
          user: userId,
          threadTs: task.threadTs,
          text: message.text,
        }),
    );
  }

  const notifier: Notifier = {
    async handle(task: Task, effect: NotifyEffect): Promise<void> {
      if (closed) throw new Error("notifier closed");
      switch (effect.type) {
        case "update_status":
          // Returns at once: edits are coalesced and paced; flush() waits for them.
          enqueueStatus(task);
          return;
        case "post_plan":
          return track(() => inLane(task.id, () => post(task, "plan", POST)));
        case "post_result":
          return track(() => inLane(task.id, () => post(task, "result", FINAL)));
        case "post_attempts_summary":
          return track(() => inLane(task.id, () => post(task, "attempts", POST)));
        case "notify_user":
          return track(() => notifyUser(task, effect.userId, effect.text));
      }
    },

    async flush() {
      while (busy()) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },

    close(options = {}) {
      closing ??= (async () => {
        const timeoutMs = options.timeoutMs ?? 10_000;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), timeoutMs);
        });
        const outcome = await Promise.race([notifier.flush().then(() => "flushed" as const), timedOut]);
        clearTimeout(timer);
        closed = true;
        if (outcome === "timeout") {
          const dropped = [...statuses.values()].filter((s) => s.pending !== undefined).length;
          logger.warn({ dropped }, "notifier closed with status updates still pending");
        }
        budget.close();
        for (const s of statuses.values()) {
          s.pending = undefined;
          s.wake?.();
        }
        settle();
      })();
      return closing;
    },
  };
  return notifier;
}
