// ChatPort over @slack/web-api. One attempt per call (the Notifier owns retries and rate limits):
// 429 becomes RateLimitedError, a lost answer to chat.postMessage becomes UnknownOutcomeError, and
// everything posted passes through `redact` once more and has link unfurling switched off.
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

  /** One attempt at a Web API method, with errors mapped to the port's taxonomy and counted. */
  async function call<T>(method: string, args: Record<string, unknown>, schema: z.ZodType<T>): Promise<T> {
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
