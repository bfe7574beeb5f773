// ChatPort over @slack/web-api. One attempt per call (the Notifier owns retries and rate limits):
// 429 becomes RateLimitedError, a lost answer to chat.postMessage becomes UnknownOutcomeError, and
// everything posted passes through `redact` once more and has link unfurling switched off.
// A `pacer` puts the calls made outside the Notifier under the same budgets (Retry-After too).
import { randomUUID } from "node:crypto";
import {
  LogLevel,
  WebAPIHTTPError,
  WebAPIPlatformError,
  WebAPIRateLimitedError,
  WebAPIRequestError,
  WebClient,
  type FetchFunction,
  type Logger as SlackLogger,
} from "@slack/web-api";
import { z } from "zod";
import {
  RateLimitedError,
  UnknownOutcomeError,
  type ChatPort,
  type PostMessageInput,
  type SlackBlock,
  type ThreadReadMessage,
} from "../../core/ports/chat.js";
import { redactDeep, type Redactor } from "../../core/redact.js";
import type { Logger } from "../../shared/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { BudgetClosedError, SlackBudget, type BudgetRule } from "./notifier/budget.js";
import type { SharedRateBudget } from "./notifier/shared-budget.js";

/** Slack message metadata (chat.postMessage `metadata`), read back with `include_all_metadata`. */
export interface MessageMetadata {
  event_type: string;
  event_payload: Record<string, string | number | boolean>;
}

/** A message of Baton's that carries metadata, as found in a thread. */
export interface TaggedMessage {
  ts: string;
  metadata: MessageMetadata;
}

/** ChatPort plus what the Notifier needs to find its own messages again. */
export interface SlackChat extends ChatPort {
  postMessage(input: PostMessageInput & { metadata?: MessageMetadata }): Promise<{ ts: string }>;
  /** Baton's messages in a thread that carry metadata of `eventType`, oldest first. */
  findTaggedMessages(input: {
    channel: string;
    threadTs: string;
    eventType: string;
  }): Promise<TaggedMessage[]>;
}

/** Slack answered `ok: false` (or an HTTP error other than 429) with this error code. */
export class SlackApiError extends Error {
  constructor(
    readonly method: string,
    readonly code: string,
    /** True for errors worth another attempt later (Slack-side trouble), false for bad requests. */
    readonly transient: boolean,
  ) {
    super(`slack ${method} failed: ${code}`);
    this.name = "SlackApiError";
  }
}

export interface SlackChatOptions {
  token: string;
  /** Base URL of the Web API, ending with `/api/` (SLACK_API_URL). */
  apiUrl?: string;
  logger: Logger;
  metrics: Metrics;
  redact: Redactor;
  /** Per-request timeout (default 15 s); a timed-out chat.postMessage has an unknown outcome. */
  timeoutMs?: number;
  /**
   * Paces every call (createSlackPacer). Leave it out of the chat handed to the Notifier, which
   * paces its own calls under the same bucket keys: pacing them twice would take two slots a call.
   */
  pacer?: SlackPacer;
}

const TRANSIENT_CODES = new Set([
  "internal_error",
  "fatal_error",
  "service_unavailable",
  "request_timeout",
  "ratelimited",
  "team_added_to_org",
]);

/** Connection errors that prove the request was never sent (as opposed to resets and timeouts). */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

function causeCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Global fetch, keeping the connection error's code on a plain Error: WebClient re-wraps errors it
 * does not recognise as its own realm's Error and would lose the cause (and with it, whether the
 * request was sent at all).
 */
const codedFetch: FetchFunction = async (url, init) => {
  try {
    return await fetch(url, init);
  } catch (error) {
    const code = causeCode(error);
    const message = String((error as { message?: unknown } | null)?.message ?? error);
    throw Object.assign(
      new Error(code !== undefined ? `${message} (${code})` : message),
      code ? { code } : {},
    );
  }
};

const postedSchema = z.object({ ts: z.string().min(1) });
const metadataSchema = z.object({
  event_type: z.string(),
  event_payload: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
});
const repliesSchema = z.object({
  messages: z
    .array(
      z.object({
        ts: z.string(),
        thread_ts: z.string().optional(),
        user: z.string().optional(),
        bot_id: z.string().optional(),
        text: z.string().optional(),
        metadata: z.unknown().optional(),
      }),
    )
    .default([]),
  has_more: z.boolean().optional(),
  response_metadata: z.object({ next_cursor: z.string().optional() }).optional(),
});
const permalinkSchema = z.object({ permalink: z.string().min(1) });
const userInfoSchema = z.object({
  user: z.object({
    name: z.string().optional(),
    real_name: z.string().optional(),
    profile: z.object({ display_name: z.string().optional(), real_name: z.string().optional() }).optional(),
  }),
});
const authSchema = z.object({
  user_id: z.string(),
  bot_id: z.string().optional(),
  team_id: z.string().optional(),
});

const USER_CACHE_TTL_MS = 10 * 60_000;
const USER_CACHE_MAX = 1000;

/** Slack's own mass mentions; render escapes untrusted text already, this is the last line of defence. */
function neutraliseMassMentions(text: string): string {
  return text.replace(/<!(channel|here|everyone)(\|[^>]*)?>/gi, "@\u200D$1");
}

function slackLogger(logger: Logger): SlackLogger {
  let level = LogLevel.WARN;
  const line = (msgs: unknown[]) =>
    msgs.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ");
  return {
    debug: (...m) => logger.debug({ sdk: "slack-web-api" }, line(m)),
    info: (...m) => logger.info({ sdk: "slack-web-api" }, line(m)),
    warn: (...m) => logger.warn({ sdk: "slack-web-api" }, line(m)),
    error: (...m) => logger.error({ sdk: "slack-web-api" }, line(m)),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

export function createSlackChat(options: SlackChatOptions): SlackChat {
  const { logger, metrics, redact } = options;
  const client = new WebClient(options.token, {
    ...(options.apiUrl !== undefined ? { slackApiUrl: options.apiUrl } : {}),
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: options.timeoutMs ?? 15_000,
    fetch: codedFetch,
    logger: slackLogger(logger),
    logLevel: LogLevel.WARN,
  });
  const names = new Map<string, { name: string | undefined; at: number }>();
  let identity: { userId: string; botId?: string; teamId?: string } | undefined;

  const clean = (text: string): string => neutraliseMassMentions(redact(text));
  const cleanBlocks = (blocks: SlackBlock[] | undefined): SlackBlock[] | undefined =>
    blocks === undefined ? undefined : (redactDeep(blocks, clean) as SlackBlock[]);

  /** A Web API call, paced when a pacer was given (which also retries after a 429). */
  function call<T>(method: string, args: Record<string, unknown>, schema: z.ZodType<T>): Promise<T> {
    const pacer = options.pacer;
    if (!pacer) return callOnce(method, args, schema);
    const channel = typeof args.channel === "string" ? args.channel : undefined;
    return pacer.run(method, channel, () => callOnce(method, args, schema));
  }

  /** One attempt at a Web API method, with errors mapped to the port's taxonomy and counted. */
  async function callOnce<T>(
    method: string,
    args: Record<string, unknown>,
    schema: z.ZodType<T>,
  ): Promise<T> {
    try {
      const result: unknown = await client.apiCall(method, args);
      const parsed = schema.safeParse(result);
      if (!parsed.success) {
        metrics.slackApiCalls.inc({ method, outcome: "error" });
        throw new SlackApiError(method, "unexpected_response", false);
      }
      metrics.slackApiCalls.inc({ method, outcome: "ok" });
      return parsed.data;
    } catch (error) {
      if (error instanceof SlackApiError) throw error;
      if (error instanceof WebAPIRateLimitedError) {
        metrics.slackApiCalls.inc({ method, outcome: "rate_limited" });
        metrics.slackRateLimited.inc({ method });
        throw new RateLimitedError(error.retryAfter);
      }
      if (error instanceof WebAPIPlatformError) {
        metrics.slackApiCalls.inc({ method, outcome: "error" });
        const code = error.data.error;
        throw new SlackApiError(method, code, TRANSIENT_CODES.has(code));
      }
      const isPost = method === "chat.postMessage";
      if (error instanceof WebAPIHTTPError) {
        if (error.statusCode === 429) {
          metrics.slackApiCalls.inc({ method, outcome: "rate_limited" });
          metrics.slackRateLimited.inc({ method });
          throw new RateLimitedError(Number(error.headers["retry-after"] ?? "1") || 1);
        }
        // A 5xx answer to a post may come after Slack stored the message: the outcome is unknown.
        if (isPost && error.statusCode >= 500) {
          metrics.slackApiCalls.inc({ method, outcome: "unknown" });
          throw new UnknownOutcomeError(`slack ${method}: HTTP ${error.statusCode}`);
        }
        metrics.slackApiCalls.inc({ method, outcome: "error" });
        throw new SlackApiError(method, `http_${error.statusCode}`, error.statusCode >= 500);
      }
      if (error instanceof WebAPIRequestError) {
        // No connection at all: the request never reached Slack, so nothing was posted.
        if (NOT_SENT_CODES.has(causeCode(error.original) ?? "")) {
          metrics.slackApiCalls.inc({ method, outcome: "error" });
          throw new SlackApiError(method, "unreachable", true);
        }
        metrics.slackApiCalls.inc({ method, outcome: "unknown" });
        if (isPost) throw new UnknownOutcomeError(`slack ${method}: ${redact(error.original.message)}`);
        throw new SlackApiError(method, "request_failed", true);
      }
      metrics.slackApiCalls.inc({ method, outcome: "error" });
      throw error;
    }
  }

  const chat: SlackChat = {
    async postMessage(input) {
      const blocks = cleanBlocks(input.blocks);
      const posted = await call(
        "chat.postMessage",
        {
          channel: input.channel,
          ...(input.threadTs !== undefined ? { thread_ts: input.threadTs } : {}),
          text: clean(input.text),
          ...(blocks !== undefined ? { blocks } : {}),
          ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
          unfurl_links: false,
          unfurl_media: false,
        },
        postedSchema,
      );
      return { ts: posted.ts };
    },

    async updateMessage(input) {
      const blocks = cleanBlocks(input.blocks);
      await call(
        "chat.update",
        {
          channel: input.channel,
          ts: input.ts,
          text: clean(input.text),
          ...(blocks !== undefined ? { blocks } : {}),
        },
        z.unknown(),
      );
    },

    async postEphemeral(input) {
      const blocks = cleanBlocks(input.blocks);
      await call(
        "chat.postEphemeral",
        {
          channel: input.channel,
          user: input.user,
          ...(input.threadTs !== undefined ? { thread_ts: input.threadTs } : {}),
          text: clean(input.text),
          ...(blocks !== undefined ? { blocks } : {}),
        },
        z.unknown(),
      );
    },

    async addReaction(input) {
      try {
        await call(
          "reactions.add",
          { channel: input.channel, timestamp: input.ts, name: input.name },
          z.unknown(),
        );
      } catch (error) {
        // Reacting is "ensure": a reaction that is already there is success (e.g. a replayed effect).
        if (error instanceof SlackApiError && error.code === "already_reacted") return;
        throw error;
      }
    },

    async readThread(input) {
      const out: ThreadReadMessage[] = [];
      let cursor: string | undefined;
      do {
        const page = await call(
          "conversations.replies",
          {
            channel: input.channel,
            ts: input.threadTs,
            limit: Math.min(200, Math.max(1, input.limit - out.length)),
            ...(cursor !== undefined ? { cursor } : {}),
          },
          repliesSchema,
        );
        for (const m of page.messages) {
          if (out.length >= input.limit) break;
          out.push({
            ts: m.ts,
            text: m.text ?? "",
            ...(m.thread_ts !== undefined ? { threadTs: m.thread_ts } : {}),
            ...(m.user !== undefined ? { user: m.user } : {}),
            ...(m.bot_id !== undefined ? { botId: m.bot_id } : {}),
          });
        }
        cursor =
          page.has_more && page.response_metadata?.next_cursor
            ? page.response_metadata.next_cursor
            : undefined;
      } while (cursor !== undefined && out.length < input.limit);
      return out;
    },

    async findTaggedMessages(input) {
      const me = await chat.whoAmI();
      const found: TaggedMessage[] = [];
      let cursor: string | undefined;
      do {
        const page = await call(
          "conversations.replies",
          {
            channel: input.channel,
            ts: input.threadTs,
            limit: 200,
            include_all_metadata: true,
            ...(cursor !== undefined ? { cursor } : {}),
          },
          repliesSchema,
        );
        for (const m of page.messages) {
          // Only Baton's own messages count: anyone could copy metadata-looking text, not metadata.
          const mine = m.user === me.userId || (me.botId !== undefined && m.bot_id === me.botId);
          const metadata = metadataSchema.safeParse(m.metadata);
          if (mine && metadata.success && metadata.data.event_type === input.eventType) {
            found.push({ ts: m.ts, metadata: metadata.data });
          }
        }
        cursor =
          page.has_more && page.response_metadata?.next_cursor
            ? page.response_metadata.next_cursor
            : undefined;
      } while (cursor !== undefined);
      return found;
    },

    async permalink(input) {
      try {
        const answer = await call(
          "chat.getPermalink",
          { channel: input.channel, message_ts: input.ts },
          permalinkSchema,
        );
        return answer.permalink;
      } catch (error) {
        if (error instanceof SlackApiError && !error.transient) return undefined;
        throw error;
      }
    },

    async userName(userId) {
      const cached = names.get(userId);
      if (cached && Date.now() - cached.at < USER_CACHE_TTL_MS) return cached.name;
      let name: string | undefined;
      try {
        const answer = await call("users.info", { user: userId }, userInfoSchema);
        const u = answer.user;
        name = [u.profile?.display_name, u.profile?.real_name, u.real_name, u.name].find(
          (n) => n !== undefined && n !== "",
        );
      } catch (error) {
        if (!(error instanceof SlackApiError) || error.transient) throw error;
        name = undefined;
      }
      if (names.size >= USER_CACHE_MAX) names.delete(names.keys().next().value as string);
      names.set(userId, { name, at: Date.now() });
      return name;
    },

    async publishHome(input) {
      const blocks = cleanBlocks(input.blocks) ?? [];
      await call("views.publish", { user_id: input.userId, view: { type: "home", blocks } }, z.unknown());
    },

    async whoAmI() {
      if (identity) return identity;
      const me = await call("auth.test", {}, authSchema);
      identity = {
        userId: me.user_id,
        ...(me.bot_id !== undefined ? { botId: me.bot_id } : {}),
        ...(me.team_id !== undefined ? { teamId: me.team_id } : {}),
      };
      return identity;
    },
  };
  return chat;
}

// ---------------------------------------------------------------------------------------------
// Pacing for the calls made outside the Notifier (acknowledgement reactions, private notes, App
// Home, thread reads, permalinks, user names, watcher and slash-command posts).

/** Budgets per Web API method, after Slack's tiers (Tier 2 ≈ 20/min, Tier 3 ≈ 50/min, Tier 4 ≈ 100/min). */
export interface SlackPacingLimits {
  /** reactions.add, whole workspace (Tier 3). */
  reactions: BudgetRule;
  /** chat.postEphemeral, whole workspace (Tier 4). */
  ephemeral: BudgetRule;
  /**
   * conversations.replies, whole workspace (Tier 3 for internal apps such as a self-hosted Baton;
   * commercially distributed non-Marketplace apps created since May 2025 get ~1/min instead).
   */
  replies: BudgetRule;
  /** chat.getPermalink, whole workspace (Tier 4). */
  permalink: BudgetRule;
  /** users.info, whole workspace (Tier 4). */
  usersInfo: BudgetRule;
  /** views.publish, whole workspace (Tier 4). */
  viewsPublish: BudgetRule;
  /** auth.test, whole workspace (Tier 4; answered once and cached). */
  authTest: BudgetRule;
  /** chat.postMessage, per channel (Slack: ~1/s, short bursts allowed). */
  postMessagePerChannel: BudgetRule;
  /** chat.update, whole workspace (Tier 3). */
  chatUpdate: BudgetRule;
}

/**
 * Same keys and rules as the Notifier's (DEFAULT_NOTIFIER_LIMITS) where both call a method, so with
 * a shared budget the two draw from one workspace-wide window in Redis.
 */
export const DEFAULT_PACING_LIMITS: SlackPacingLimits = {
  reactions: { max: 50, windowMs: 60_000 },
  ephemeral: { max: 100, windowMs: 60_000 },
  replies: { max: 50, windowMs: 60_000 },
  permalink: { max: 100, windowMs: 60_000 },
  usersInfo: { max: 100, windowMs: 60_000 },
  viewsPublish: { max: 100, windowMs: 60_000 },
  authTest: { max: 100, windowMs: 60_000 },
  postMessagePerChannel: { max: 3, windowMs: 3_000 },
  chatUpdate: { max: 50, windowMs: 60_000 },
};

export interface SlackPacingOptions {
  logger: Logger;
  /** The budget every replica shares (createRedisRateBudget); without it this process paces alone. */
  sharedBudget?: SharedRateBudget;
  limits?: Partial<SlackPacingLimits>;
  /** Attempts after a 429 (Slack did not process the call, so any method may try again). */
  maxRateLimitedRetries?: number;
  /** Attempts after Slack-side trouble, for calls that are safe to repeat. */
  maxTransientRetries?: number;
}

export interface SlackPacer {
  /** Runs one Web API call of `method` in its bucket's budget, honouring Retry-After. */
  run<T>(method: string, channel: string | undefined, fn: () => Promise<T>): Promise<T>;
  /** Stops pacing: calls waiting for a slot fail with BudgetClosedError (shutdown). */
  close(): void;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Posts are not repeated after Slack-side trouble: they may have been delivered. */
const NOT_REPEATABLE = new Set(["chat.postMessage", "chat.postEphemeral"]);

/** Methods paced under one workspace-wide bucket, and the limit each uses. */
const WORKSPACE_RULES: Readonly<Record<string, Exclude<keyof SlackPacingLimits, "postMessagePerChannel">>> = {
  "reactions.add": "reactions",
  "chat.postEphemeral": "ephemeral",
  "conversations.replies": "replies",
  "chat.getPermalink": "permalink",
  "users.info": "usersInfo",
  "views.publish": "viewsPublish",
  "auth.test": "authTest",
  "chat.update": "chatUpdate",
};

/**
 * Per-method budgets for the Web API calls made outside the Notifier: a call waits for a slot
 * (locally and, when given, in the replicas' shared budget), and after a 429 the bucket pauses for
 * Retry-After before the call goes again (Slack did not process it, so this is safe for posts too).
 * Methods without a rule go out unpaced.
 */
export function createSlackPacer(options: SlackPacingOptions): SlackPacer {
  const { logger, sharedBudget } = options;
  const limits: SlackPacingLimits = { ...DEFAULT_PACING_LIMITS, ...options.limits };
  const maxLimited = options.maxRateLimitedRetries ?? 10;
  const maxTransient = options.maxTransientRetries ?? 3;
  const budget = new SlackBudget();
  let closed = false;
  const warnShared = (error: unknown): void => logger.warn({ err: error }, "shared slack budget unavailable");

  const bucket = (
    method: string,
    channel: string | undefined,
  ): { key: string; rule: BudgetRule } | undefined => {
    // chat.postMessage is limited per channel; every other paced method workspace-wide.
    if (method === "chat.postMessage") {
      return { key: `chat.postMessage:${channel ?? "-"}`, rule: limits.postMessagePerChannel };
    }
    const name = WORKSPACE_RULES[method];
    return name === undefined ? undefined : { key: method, rule: limits[name] };
  };

  /** A place in the replicas' shared budget; false when Redis cannot say (the local budget decides). */
  async function takeShared(key: string, rule: BudgetRule, id: string): Promise<boolean> {
    if (!sharedBudget) return false;
    for (;;) {
      let answer: Awaited<ReturnType<SharedRateBudget["take"]>>;
      try {
        answer = await sharedBudget.take(key, rule, id);
      } catch (error) {
        logger.warn({ err: error, bucket: key }, "shared slack budget unavailable; using the local one");
        return false;
      }
      if (answer.ok) return true;
      if (closed) throw new BudgetClosedError();
      await pause(answer.waitMs);
    }
  }

  async function paced<T>(
    key: string,
    rule: BudgetRule,
    repeatable: boolean,
    fn: () => Promise<T>,
  ): Promise<T> {
    let limited = 0;
    let transient = 0;
    for (;;) {
      const lease = await budget.acquire(key, rule, () => 0);
      const id = randomUUID();
      let shared: boolean;
      try {
        shared = await takeShared(key, rule, id);
      } catch (error) {
        lease.release({ used: false });
        throw error;
      }
      try {
        return await fn();
      } catch (error) {
        if (error instanceof RateLimitedError && limited < maxLimited) {
          limited += 1;
          // Paused before the slot is given back, so nothing else slips out inside the window.
          const seconds = Math.max(1, error.retryAfterSeconds);
          budget.pause(key, rule, Date.now() + seconds * 1000);
          if (sharedBudget) await sharedBudget.pause(key, seconds).catch(warnShared);
          logger.warn({ bucket: key, retryAfter: seconds }, "slack rate limited; pausing");
          continue;
        }
        // Slack answered with trouble on its side; only a call that is safe to repeat goes again.
        if (repeatable && error instanceof SlackApiError && error.transient && transient < maxTransient) {
          transient += 1;
          await pause(250 * 2 ** transient);
          continue;
        }
        throw error;
      } finally {
        lease.release();
        if (shared && sharedBudget) void sharedBudget.settle(key, id).catch(warnShared);
      }
    }
  }

  return {
    run(method, channel, fn) {
      const b = bucket(method, channel);
      if (!b) return fn();
      return paced(b.key, b.rule, !NOT_REPEATABLE.has(method), fn);
    },
    close() {
      closed = true;
      budget.close();
    },
  };
}
