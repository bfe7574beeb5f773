// The Bolt app: Slack requests in (signed HTTP on the one server, or Socket Mode), listeners out to
// the use cases in src/services/. A request is acknowledged only after its work is durably recorded
// (task stored, claim written): a failure answers 5xx (HTTP) or leaves the envelope unacknowledged
// (Socket Mode) so Slack delivers it again. Slow work (Slack messages, runs) continues after the ack.
import { App, LogLevel, type Logger as BoltLogger, type Receiver, type ReceiverEvent } from "@slack/bolt";
import { SocketModeClient } from "@slack/socket-mode";
import { z } from "zod";
import type { Config } from "../../config/load.js";
import type { ChatPort } from "../../core/ports/chat.js";
import type { Clock, Random } from "../../core/ports/clock.js";
import type { Claims, TaskStore } from "../../core/ports/task-store.js";
import type { Logger } from "../../shared/logger.js";
import type { EffectRunner } from "../../services/task-events.js";
import type { BudgetReader } from "../../core/ports/budget.js";
import type { BotIdentity, Classify, SlackServiceDeps, SlackState } from "../../services/slack-context.js";
import type { SlackHttpHandler, SlackHttpRequest, SlackHttpResponse } from "../http/server.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Redis } from "../redis/connection.js";
import { verifySlackSignature } from "./signature.js";
import { registerListeners } from "./listeners/index.js";

export interface SlackAppDeps {
  config: Pick<Config, "slack" | "policy">;
  chat: ChatPort;
  store: TaskStore;
  claims: Claims;
  /** Routes transition effects to the notifier, runs and publisher (services/effects.ts). */
  effects: EffectRunner;
  clock: Clock;
  random: Random;
  logger: Logger;
  metrics: Metrics;
  budget: BudgetReader;
  state: SlackState;
  classify?: Classify;
  redact?: (text: string) => string;
  /** Seconds since the epoch for the signature check (tests move it); the clock by default. */
  nowSeconds?: () => number;
}

export interface SlackApp {
  /** For the HTTP server's `POST /slack/events` (HTTP mode). */
  handler: SlackHttpHandler;
  /** Resolves Baton's identity (auth.test) and, in Socket Mode, connects. Call before serving. */
  start(): Promise<void>;
  /** Disconnects Socket Mode and waits (bounded) for background work. */
  stop(): Promise<void>;
  /** Resolves when no background work is pending (tests, graceful shutdown). */
  idle(): Promise<void>;
  /** True once started (and, in Socket Mode, while connected). */
  ready(): boolean;
}

/** The parts of a Slack body the receiver relies on; listeners validate their own payloads. */
const SlackBody = z.looseObject({ type: z.string().optional(), command: z.string().optional() });

type DispatchResult = { ok: true; response: unknown } | { ok: false; error: unknown };

function boltLogger(logger: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const text = (msg: unknown[]) =>
    msg
      .map((m) => (m instanceof Error ? m.message : typeof m === "string" ? m : JSON.stringify(m)))
      .join(" ");
  return {
    debug: (...msg) => logger.debug({ from: "bolt" }, text(msg)),
    info: (...msg) => logger.info({ from: "bolt" }, text(msg)),
    warn: (...msg) => logger.warn({ from: "bolt" }, text(msg)),
    error: (...msg) => logger.error({ from: "bolt" }, text(msg)),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

function kindOf(body: Record<string, unknown>): string {
  if (typeof body.command === "string") return "command";
  if (body.type === "event_callback") return "event";
  if (typeof body.type === "string") return body.type;
  return "unknown";
}

/** Parses a Slack HTTP body: JSON (events), form with `payload` (interactivity), form (commands). */
function parseBody(raw: Buffer, contentType: string | undefined): Record<string, unknown> | undefined {
  const text = raw.toString("utf8");
  try {
    if ((contentType ?? "").includes("application/json")) {
      const parsed = SlackBody.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : undefined;
    }
    const form = new URLSearchParams(text);
    const payload = form.get("payload");
    if (payload !== null) {
      const parsed = SlackBody.safeParse(JSON.parse(payload));
      return parsed.success ? parsed.data : undefined;
    }
    const fields = Object.fromEntries(form.entries());
    return typeof fields.command === "string" ? fields : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Bolt receiver with processBeforeResponse semantics for both transports: Bolt's ack only records
 * the answer; it is sent once the listeners finished, and never when they failed.
 */
class BatonReceiver implements Receiver {
  private app: App | undefined;

  init(app: App): void {
    this.app = app;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  async dispatch(
    body: Record<string, unknown>,
    retryNum?: number,
    retryReason?: string,
  ): Promise<DispatchResult> {
    const app = this.app;
    if (!app) return { ok: false, error: new Error("receiver not initialised") };
    let response: unknown;
    let acked = false;
    const event: ReceiverEvent = {
      body,
      ...(retryNum !== undefined ? { retryNum } : {}),
      ...(retryReason ? { retryReason } : {}),
      ack: async (answer?: unknown) => {
        if (acked) return;
        acked = true;
        response = answer;
      },
    };
    try {
      await app.processEvent(event);
      return { ok: true, response };
    } catch (error) {
      return { ok: false, error };
    }
  }
}

function responseFor(answer: unknown): SlackHttpResponse {
  if (answer === undefined || answer === null || answer === "") return { status: 200, body: "" };
  if (typeof answer === "string")
    return { status: 200, headers: { "content-type": "text/plain; charset=utf-8" }, body: answer };
  return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(answer) };
}

/** Pending background work, so shutdown and tests can wait for it. */
class BackgroundWork {
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly logger: Logger) {}

  run(what: string, work: () => Promise<unknown>): void {
    const p = Promise.resolve()
      .then(work)
      .catch((error: unknown) => this.logger.error({ err: error, what }, "background work failed"))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

export function createSlackApp(deps: SlackAppDeps): SlackApp {
  const { config, logger, metrics } = deps;
  const redact = deps.redact ?? ((t: string) => t);
  const nowSeconds = deps.nowSeconds ?? (() => Math.floor(deps.clock.now().getTime() / 1000));
  const background = new BackgroundWork(logger);
  let identity: BotIdentity | undefined;
  let started = false;
  let socket: SocketModeClient | undefined;

  const receiver = new BatonReceiver();
  const botToken = config.slack.botToken ?? "";
  const app = new App({
    receiver,
    logger: boltLogger(logger),
    // Identity comes from one auth.test at start; Bolt's ignoreSelf middleware uses it.
    authorize: async () => {
      if (!identity) throw new Error("Slack app not started");
      return {
        botToken,
        botUserId: identity.userId,
        ...(identity.botId ? { botId: identity.botId } : {}),
        ...(identity.teamId ? { teamId: identity.teamId } : {}),
      };
    },
    ...(config.slack.apiUrl ? { clientOptions: { slackApiUrl: config.slack.apiUrl } } : {}),
    ignoreSelf: true,
  });

  const services: SlackServiceDeps = {
    policy: config.policy,
    chat: deps.chat,
    store: deps.store,
    claims: deps.claims,
    effects: deps.effects,
    clock: deps.clock,
    random: deps.random,
    logger,
    budget: deps.budget,
    state: deps.state,
    ...(deps.classify ? { classify: deps.classify } : {}),
    identity: () => {
      if (!identity) throw new Error("Slack app not started");
      return identity;
    },
    background: (what, work) => background.run(what, work),
    redact,
  };
  registerListeners(app, services);
  app.error(async (error) => {
    logger.error({ err: error }, "slack listener failed");
    // Rethrow so the receiver answers 5xx / leaves the envelope unacknowledged: Slack retries.
    throw error;
  });

  const dispatch = async (body: Record<string, unknown>, retryNum?: number, retryReason?: string) => {
    const kind = kindOf(body);
    const startedAt = performance.now();
    const result = await receiver.dispatch(body, retryNum, retryReason);
    metrics.ackLatencySeconds.observe({ kind }, (performance.now() - startedAt) / 1000);
    if (!result.ok) logger.warn({ kind, retryNum }, "slack request not acknowledged; Slack will retry");
    return result;
  };

  const handler: SlackHttpHandler = async (request: SlackHttpRequest): Promise<SlackHttpResponse> => {
    const secret = config.slack.signingSecret;
    if (!secret) return { status: 404, body: "not found\n" };
    // Signature first: nothing from an unsigned, stale or future request reaches a listener.
    const check = verifySlackSignature(secret, request.headers, request.rawBody, nowSeconds());
    if (!check.ok) {
      logger.warn({ reason: check.reason }, "slack request refused");
      return { status: 401, body: "invalid signature\n" };
    }
    const contentType = request.headers["content-type"];
    const body = parseBody(request.rawBody, Array.isArray(contentType) ? contentType[0] : contentType);
    if (!body) return { status: 400, body: "malformed body\n" };
    if (body.type === "url_verification" && typeof body.challenge === "string") {
      return {
        status: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ challenge: body.challenge }),
      };
    }
    if (body.type === "ssl_check") return { status: 200, body: "" };
    if (!started) return { status: 503, headers: { "retry-after": "1" }, body: "starting\n" };
    const retryHeader = request.headers["x-slack-retry-num"];
    const retryNum = Number(Array.isArray(retryHeader) ? retryHeader[0] : retryHeader);
    const reasonHeader = request.headers["x-slack-retry-reason"];
    const retryReason = Array.isArray(reasonHeader) ? reasonHeader[0] : reasonHeader;
    const result = await dispatch(body, Number.isFinite(retryNum) ? retryNum : undefined, retryReason);
    if (!result.ok) return { status: 500, body: "internal error\n" };
    return responseFor(result.response);
  };

  const startSocketMode = async (appToken: string): Promise<void> => {
    const client = new SocketModeClient({
      appToken,
      logger: boltLogger(logger),
      ...(config.slack.apiUrl ? { clientOptions: { slackApiUrl: config.slack.apiUrl } } : {}),
    });
    client.on(
      "slack_event",
      (envelope: {
        ack: (r?: unknown) => Promise<void>;
        body: unknown;
        retry_num?: number;
        retry_reason?: string;
      }) => {
        const parsed = SlackBody.safeParse(envelope.body);
        if (!parsed.success) {
          // Nothing we can act on: acknowledge so Slack does not redeliver it forever.
          void envelope.ack().catch(() => undefined);
          return;
        }
        void (async () => {
          const result = await dispatch(parsed.data, envelope.retry_num, envelope.retry_reason || undefined);
          // Without an ack Slack redelivers the envelope: that is the retry of a failed request.
          if (!result.ok) return;
          const answer = result.response;
          await envelope.ack(answer === undefined || answer === null || answer === "" ? undefined : answer);
        })().catch((error: unknown) => logger.warn({ err: error }, "socket mode acknowledgement failed"));
      },
    );
    await client.start();
    socket = client;
  };

  return {
    handler,
    async start() {
      if (started) return;
      identity = await deps.chat.whoAmI();
      logger.info(
        { botUserId: identity.userId, socketMode: config.slack.socketMode },
        "slack app identity resolved",
      );
      if (config.slack.socketMode && config.slack.appToken) await startSocketMode(config.slack.appToken);
      started = true;
    },
    async stop() {
      started = false;
      const client = socket;
      socket = undefined;
      if (client) await client.disconnect().catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        background.idle(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 10_000);
        }),
      ]);
      if (timer) clearTimeout(timer);
    },
    idle: () => background.idle(),
    ready: () => started,
  };
}

/** SlackState on Redis: channel default repositories set at runtime, and watcher offers. */
export function createRedisSlackState(redis: Redis, prefix: string): SlackState {
  const OFFER_TTL_SECONDS = 90 * 24 * 3600;
  const key = {
    channelRepo: (channel: string) => `${prefix}slack:channel-repo:${channel}`,
    offer: (channel: string, ts: string) => `${prefix}slack:offer:${channel}:${ts}`,
  };
  return {
    async channelRepo(channelId) {
      return (await redis.get(key.channelRepo(channelId))) ?? undefined;
    },
    async setChannelRepo(channelId, repo) {
      await redis.set(key.channelRepo(channelId), repo);
    },
    async rememberOffer(channelId, offerTs, threadTs) {
      await redis.set(key.offer(channelId, offerTs), threadTs, "EX", OFFER_TTL_SECONDS);
    },
    async offerThread(channelId, offerTs) {
      return (await redis.get(key.offer(channelId, offerTs))) ?? undefined;
    },
  };
}
