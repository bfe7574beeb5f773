// Slack Web API emulator: a real HTTP (and Socket Mode WebSocket) server on 127.0.0.1 that checks
// tokens, payload limits and rate limits like Slack, keeps channels and threads, records every call,
// injects faults, and acts as users (messages, reactions, slash commands, buttons) by delivering
// signed Events API / interactivity requests to the app, or envelopes over Socket Mode.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { computeSlackSignature } from "../../../src/adapters/slack/signature.js";
import {
  MAX_TEXT_CHARS,
  MAX_VIEW_BLOCKS,
  SlidingWindowLimiter,
  resolveRateLimits,
  validateBlocks,
  validateMessage,
} from "./limits.js";
import type {
  DeliverOptions,
  Delivery,
  DeliveryKind,
  EmulatedEphemeral,
  EmulatedMessage,
  FaultSpec,
  RecordedCall,
  SlackEmulator,
  SlackEmulatorOptions,
  SlackEmulatorStats,
  SlackUserActor,
} from "./types.js";

export type * from "./types.js";
export { DEFAULT_RATE_LIMITS } from "./limits.js";

const MAX_BODY_BYTES = 5 * 1024 * 1024;
const VERIFICATION_TOKEN = "emulated-verification-token";

class ApiError extends Error {
  constructor(
    readonly code: string,
    readonly status = 200,
  ) {
    super(code);
  }
}

interface ChannelState {
  id: string;
  name: string;
  /** Every message of the channel (top level and replies), in ts order. */
  messages: EmulatedMessage[];
  byTs: Map<string, EmulatedMessage>;
  /** `ts` -> reaction name -> users, in the order they were added. */
  reactions: Map<string, Map<string, string[]>>;
}

interface UserState {
  id: string;
  name: string;
  isBot: boolean;
  botId?: string;
}

interface ActiveFault {
  spec: FaultSpec;
  remaining: number;
}

type Args = Record<string, unknown>;

interface Handled {
  body: Record<string, unknown>;
  /** Runs after the response was decided (Socket Mode echo and the like). */
  after?: () => void;
}

const JSON_FIELDS = new Set(["blocks", "attachments", "metadata", "view"]);

function parseArgs(raw: string, contentType: string | undefined): Args {
  if (raw.length === 0) return {};
  if (contentType?.includes("application/json")) {
    const parsed: unknown = JSON.parse(raw);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
      throw new ApiError("invalid_json");
    return parsed as Args;
  }
  const args: Args = {};
  for (const [key, value] of new URLSearchParams(raw)) {
    if (JSON_FIELDS.has(key)) {
      try {
        args[key] = JSON.parse(value);
      } catch {
        throw new ApiError(key === "blocks" ? "invalid_blocks_format" : "invalid_arguments");
      }
    } else {
      args[key] = value;
    }
  }
  return args;
}

function str(args: Args, key: string): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  return typeof v === "string" ? v : String(v);
}

function bool(args: Args, key: string): boolean | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  return v === true || v === "true" || v === 1 || v === "1";
}

function required(args: Args, key: string): string {
  const v = str(args, key);
  if (v === undefined || v.length === 0) throw new ApiError("invalid_arguments");
  return v;
}

function tsToMicros(ts: string): number {
  const [s, us = "0"] = ts.split(".");
  return Number(s) * 1_000_000 + Number(us.padEnd(6, "0"));
}

function microsToTs(value: number): string {
  // A test clock may return fractional milliseconds; Slack timestamps have whole microseconds.
  const micros = Math.floor(value);
  const s = Math.floor(micros / 1_000_000);
  const us = micros % 1_000_000;
  return `${s}.${String(us).padStart(6, "0")}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ApiError("request_too_large", 413));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startSlackEmulator(opts: SlackEmulatorOptions = {}): Promise<SlackEmulator> {
  const clock = opts.clock ?? Date.now;
  const botToken = opts.botToken ?? `xoxb-emulated-${randomBytes(6).toString("hex")}`;
  const appToken = opts.appToken ?? `xapp-1-emulated-${randomBytes(6).toString("hex")}`;
  const signingSecret = opts.signingSecret ?? randomBytes(16).toString("hex");
  const botUserId = opts.botUserId ?? "UBATONBOT";
  const botId = opts.botId ?? "BBATONBOT";
  const teamId = opts.teamId ?? "TEMULATED";
  const appId = opts.appId ?? "AEMULATED";
  const autoCreate = opts.autoCreateChannels ?? true;
  const triggerTtlMs = opts.triggerTtlMs ?? 3000;
  const socketAckTimeoutMs = opts.socketAckTimeoutMs ?? 3000;
  let eventsUrl = opts.eventsUrl;

  const channels = new Map<string, ChannelState>();
  const users = new Map<string, UserState>();
  const ephemerals: EmulatedEphemeral[] = [];
  const calls: RecordedCall[] = [];
  const homeViews = new Map<string, unknown[]>();
  const openedViews: { triggerId: string; view: unknown }[] = [];
  const responses: { url: string; body: unknown }[] = [];
  const triggers = new Map<string, number>();
  const faults: ActiveFault[] = [];
  const limiter = new SlidingWindowLimiter(resolveRateLimits(opts.rateLimits));
  const stats = { rateLimited: 0, ignoredRateLimits: 0 };
  let lastTsMicros = 0;
  let eventCounter = 0;
  let viewCounter = 0;

  users.set(botUserId, { id: botUserId, name: "baton", isBot: true, botId });

  const nextTs = (): string => {
    lastTsMicros = Math.max(lastTsMicros + 1, Math.floor(clock() * 1000));
    return microsToTs(lastTsMicros);
  };

  const addChannel = (id: string, name?: string): ChannelState => {
    const existing = channels.get(id);
    if (existing) {
      if (name !== undefined) existing.name = name;
      return existing;
    }
    const state: ChannelState = {
      id,
      name: name ?? id.toLowerCase(),
      messages: [],
      byTs: new Map(),
      reactions: new Map(),
    };
    channels.set(id, state);
    return state;
  };

  const getChannel = (id: string | undefined): ChannelState => {
    if (id === undefined || id.length === 0) throw new ApiError("channel_not_found");
    const existing = channels.get(id);
    if (existing) return existing;
    if (autoCreate && /^[CGD][A-Z0-9]+$/.test(id)) return addChannel(id);
    throw new ApiError("channel_not_found");
  };

  /** Root ts of the thread a reply goes to (Slack normalises a reply's ts to its root). */
  const threadRoot = (ch: ChannelState, threadTs: string | undefined): string | undefined => {
    if (threadTs === undefined || threadTs.length === 0) return undefined;
    const parent = ch.byTs.get(threadTs);
    if (!parent) throw new ApiError("thread_not_found");
    return parent.threadTs ?? parent.ts;
  };

  const storeMessage = (ch: ChannelState, msg: EmulatedMessage): EmulatedMessage => {
    ch.messages.push(msg);
    ch.byTs.set(msg.ts, msg);
    if (msg.threadTs !== undefined) {
      const root = ch.byTs.get(msg.threadTs);
      if (root && root.threadTs === undefined) root.threadTs = root.ts;
    }
    return msg;
  };

  const isReply = (m: EmulatedMessage): boolean => m.threadTs !== undefined && m.threadTs !== m.ts;

  const replyCount = (ch: ChannelState, ts: string): number =>
    ch.messages.filter((m) => m.threadTs === ts && m.ts !== ts).length;

  const toApiMessage = (
    ch: ChannelState,
    m: EmulatedMessage,
    withMetadata: boolean,
  ): Record<string, unknown> => {
    const out: Record<string, unknown> = { type: "message", ts: m.ts, text: m.text };
    if (m.user !== undefined) out.user = m.user;
    if (m.botId !== undefined) out.bot_id = m.botId;
    if (m.subtype !== undefined) out.subtype = m.subtype;
    if (m.blocks !== undefined) out.blocks = m.blocks;
    if (m.threadTs !== undefined) out.thread_ts = m.threadTs;
    if (m.threadTs === m.ts) {
      out.reply_count = replyCount(ch, m.ts);
    } else if (m.threadTs !== undefined) {
      out.parent_user_id = ch.byTs.get(m.threadTs)?.user;
    }
    if (m.edits.length > 0)
      out.edited = { user: m.user, ts: microsToTs(Math.floor((m.edits.at(-1)?.at ?? 0) * 1000)) };
    const reactions = ch.reactions.get(m.ts);
    if (reactions && reactions.size > 0) {
      out.reactions = [...reactions].map(([name, who]) => ({ name, users: [...who], count: who.length }));
    }
    if (withMetadata && m.metadata !== undefined) out.metadata = m.metadata;
    return out;
  };

  // ---------------------------------------------------------------------------------------------
  // Deliveries to the app: signed HTTP, or Socket Mode envelopes while a client is connected.

  const sockets = new Set<WebSocket>();
  const socketTickets = new Set<string>();
  const pendingAcks = new Map<string, (payload: unknown) => void>();
  let socketCursor = 0;

  const openSocket = (): WebSocket | undefined => {
    const open = [...sockets].filter((s) => s.readyState === s.OPEN);
    if (open.length === 0) return undefined;
    socketCursor = (socketCursor + 1) % open.length;
    return open[socketCursor];
  };

  const inferKind = (payload: unknown): DeliveryKind => {
    const type = (payload as { type?: unknown } | null)?.type;
    if (type === "event_callback" || type === "url_verification" || type === "app_rate_limited")
      return "event";
    if (typeof type === "string") return "interactive";
    return "command";
  };

  const httpDeliver = async (payload: unknown, kind: DeliveryKind, o: DeliverOptions): Promise<Delivery> => {
    if (eventsUrl === undefined)
      throw new Error("slack emulator: no events URL set and no Socket Mode client connected");
    let body: string;
    let contentType: string;
    if (kind === "event") {
      body = JSON.stringify(payload);
      contentType = "application/json";
    } else if (kind === "command") {
      const fields = new URLSearchParams();
      for (const [k, v] of Object.entries((payload ?? {}) as Record<string, unknown>)) {
        fields.set(k, typeof v === "string" ? v : JSON.stringify(v));
      }
      body = fields.toString();
      contentType = "application/x-www-form-urlencoded";
    } else {
      body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
      contentType = "application/x-www-form-urlencoded";
    }
    const timestamp = o.timestamp ?? Math.floor(clock() / 1000);
    const headers: Record<string, string> = {
      "content-type": contentType,
      "x-slack-request-timestamp": String(timestamp),
      "x-slack-signature": o.signature ?? computeSlackSignature(signingSecret, timestamp, body),
      "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    };
    if (o.retryNum !== undefined) headers["x-slack-retry-num"] = String(o.retryNum);
    if (o.retryReason !== undefined) headers["x-slack-retry-reason"] = o.retryReason;
    const started = performance.now();
    const res = await fetch(eventsUrl, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, body: text, ms: performance.now() - started };
  };

  const socketDeliver = async (
    socket: WebSocket,
    payload: unknown,
    kind: DeliveryKind,
    o: DeliverOptions,
  ): Promise<Delivery> => {
    const envelopeId = randomBytes(16).toString("hex");
    const type = kind === "event" ? "events_api" : kind === "command" ? "slash_commands" : "interactive";
    const envelope = {
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: kind !== "event",
      retry_attempt: o.retryNum ?? 0,
      retry_reason: o.retryReason ?? "",
    };
    const started = performance.now();
    const acked = new Promise<{ acked: true; payload: unknown } | { acked: false }>((resolve) => {
      const timer = setTimeout(() => {
        pendingAcks.delete(envelopeId);
        resolve({ acked: false });
      }, socketAckTimeoutMs);
      pendingAcks.set(envelopeId, (p) => {
        clearTimeout(timer);
        pendingAcks.delete(envelopeId);
        resolve({ acked: true, payload: p });
      });
    });
    socket.send(JSON.stringify(envelope));
    const result = await acked;
    const ms = performance.now() - started;
    if (!result.acked) return { status: 0, body: "", ms };
    return { status: 200, body: result.payload === undefined ? "" : JSON.stringify(result.payload), ms };
  };

  const deliver = async (payload: unknown, o: DeliverOptions = {}): Promise<Delivery> => {
    const kind = o.kind ?? inferKind(payload);
    const forged = o.signature !== undefined || o.timestamp !== undefined;
    const isVerification = (payload as { type?: unknown } | null)?.type === "url_verification";
    const socket = forged || isVerification ? undefined : openSocket();
    if (socket) return socketDeliver(socket, payload, kind, o);
    return httpDeliver(payload, kind, o);
  };

  const eventEnvelope = (event: Record<string, unknown>): Record<string, unknown> => {
    eventCounter += 1;
    const now = clock();
    return {
      token: VERIFICATION_TOKEN,
      team_id: teamId,
      api_app_id: appId,
      event: { ...event, event_ts: event.event_ts ?? microsToTs(now * 1000) },
      type: "event_callback",
      event_id: `Ev${String(eventCounter).padStart(8, "0")}${randomBytes(3).toString("hex").toUpperCase()}`,
      event_time: Math.floor(now / 1000),
      authorizations: [
        {
          enterprise_id: null,
          team_id: teamId,
          user_id: botUserId,
          is_bot: true,
          is_enterprise_install: false,
        },
      ],
      is_ext_shared_channel: false,
      event_context: `4-${randomBytes(8).toString("hex")}`,
    };
  };

  const newTrigger = (): string => {
    const id = `${Math.floor(clock() / 1000)}.${randomBytes(6).toString("hex")}`;
    triggers.set(id, clock());
    return id;
  };

  const newResponseUrl = (): string => `${baseUrl}/response/${randomBytes(12).toString("hex")}`;

  const messageEvent = (ch: ChannelState, m: EmulatedMessage): Record<string, unknown> => {
    const event: Record<string, unknown> = {
      type: "message",
      channel: ch.id,
      text: m.text,
      ts: m.ts,
      event_ts: m.ts,
      channel_type: ch.id.startsWith("D") ? "im" : ch.id.startsWith("G") ? "group" : "channel",
      team: teamId,
    };
    if (m.user !== undefined) event.user = m.user;
    if (m.botId !== undefined) event.bot_id = m.botId;
    if (m.subtype !== undefined) event.subtype = m.subtype;
    if (m.blocks !== undefined) event.blocks = m.blocks;
    if (isReply(m)) {
      event.thread_ts = m.threadTs;
      event.parent_user_id = ch.byTs.get(m.threadTs ?? "")?.user;
    }
    return event;
  };

  // ---------------------------------------------------------------------------------------------
  // Web API methods.

  const messageMatchesArgs = (args: Args, kind: "post" | "update"): { text: string; blocks?: unknown[] } => {
    const text = args.text;
    const blocks = args.blocks;
    const error = validateMessage(text, blocks);
    if (error !== undefined) {
      // chat.update may clear blocks with an empty text only when blocks are given.
      if (!(kind === "update" && error === "no_text" && blocks !== undefined)) throw new ApiError(error);
    }
    return { text: typeof text === "string" ? text : "", ...(Array.isArray(blocks) ? { blocks } : {}) };
  };

  const handlers: Record<string, (args: Args, auth: "bot" | "app") => Handled> = {
    "auth.test": () => ({
      body: {
        url: `https://emulated-${teamId.toLowerCase()}.slack.com/`,
        team: "Emulated Workspace",
        user: "baton",
        team_id: teamId,
        user_id: botUserId,
        bot_id: botId,
        is_enterprise_install: false,
      },
    }),

    "chat.postMessage": (args) => {
      const ch = getChannel(str(args, "channel"));
      const { text, blocks } = messageMatchesArgs(args, "post");
      const threadTs = threadRoot(ch, str(args, "thread_ts"));
      const metadata = args.metadata as EmulatedMessage["metadata"] | undefined;
      if (metadata !== undefined) {
        if (
          metadata === null ||
          typeof metadata !== "object" ||
          typeof metadata.event_type !== "string" ||
          metadata.event_payload === null ||
          typeof metadata.event_payload !== "object"
        ) {
          throw new ApiError("invalid_metadata_format");
        }
      }
      const m = storeMessage(ch, {
        channel: ch.id,
        ts: nextTs(),
        ...(threadTs !== undefined ? { threadTs } : {}),
        user: botUserId,
        botId,
        text,
        ...(blocks !== undefined ? { blocks } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
        ...(args.unfurl_links !== undefined ? { unfurlLinks: bool(args, "unfurl_links") ?? false } : {}),
        ...(args.unfurl_media !== undefined ? { unfurlMedia: bool(args, "unfurl_media") ?? false } : {}),
        edits: [],
        postedAt: clock(),
      });
      return {
        body: { channel: ch.id, ts: m.ts, message: { ...toApiMessage(ch, m, false), bot_id: botId } },
        after: () => {
          if (opts.echoBotMessages)
            void deliver(eventEnvelope(messageEvent(ch, m)), { kind: "event" }).catch(() => undefined);
        },
      };
    },

    "chat.update": (args) => {
      const ch = getChannel(str(args, "channel"));
      const ts = required(args, "ts");
      const m = ch.byTs.get(ts);
      if (!m) throw new ApiError("message_not_found");
      if (m.user !== botUserId) throw new ApiError("cant_update_message");
      const { text, blocks } = messageMatchesArgs(args, "update");
      m.edits.push({ text: m.text, ...(m.blocks !== undefined ? { blocks: m.blocks } : {}), at: clock() });
      m.text = text;
      if (blocks !== undefined) m.blocks = blocks;
      return { body: { channel: ch.id, ts: m.ts, text: m.text, message: toApiMessage(ch, m, false) } };
    },

    "chat.postEphemeral": (args) => {
      const ch = getChannel(str(args, "channel"));
      const user = required(args, "user");
      if (!/^[UW][A-Z0-9]+$/.test(user)) throw new ApiError("user_not_found");
      const { text, blocks } = messageMatchesArgs(args, "post");
      const rawThread = str(args, "thread_ts");
      const threadTs = rawThread !== undefined && rawThread.length > 0 ? rawThread : undefined;
      const messageTs = nextTs();
      ephemerals.push({
        channel: ch.id,
        user,
        text,
        ...(blocks !== undefined ? { blocks } : {}),
        ...(threadTs !== undefined ? { threadTs } : {}),
        messageTs,
        postedBy: botUserId,
        at: clock(),
      });
      return { body: { message_ts: messageTs } };
    },

    "chat.getPermalink": (args) => {
      const ch = getChannel(str(args, "channel"));
      const ts = required(args, "message_ts");
      const m = ch.byTs.get(ts);
      if (!m) throw new ApiError("message_not_found");
      const base = `https://emulated-${teamId.toLowerCase()}.slack.com/archives/${ch.id}/p${ts.replace(".", "")}`;
      const permalink = isReply(m) ? `${base}?thread_ts=${m.threadTs}&cid=${ch.id}` : base;
      return { body: { channel: ch.id, permalink } };
    },

    "reactions.add": (args) => {
      const ch = getChannel(str(args, "channel"));
      const ts = required(args, "timestamp");
      const name = required(args, "name");
      if (!/^[a-z0-9_+'-]+$/.test(name)) throw new ApiError("invalid_name");
      if (!ch.byTs.has(ts)) throw new ApiError("message_not_found");
      const byName = ch.reactions.get(ts) ?? new Map<string, string[]>();
      ch.reactions.set(ts, byName);
      const who = byName.get(name) ?? [];
      if (who.includes(botUserId)) throw new ApiError("already_reacted");
      byName.set(name, [...who, botUserId]);
      return { body: {} };
    },

    "conversations.replies": (args) => {
      const ch = getChannel(str(args, "channel"));
      const ts = required(args, "ts");
      const parent = ch.byTs.get(ts);
      if (!parent) throw new ApiError("thread_not_found");
      const root = parent.threadTs ?? parent.ts;
      const all = ch.messages.filter((m) => m.ts === root || m.threadTs === root);
      return { body: page(ch, all, args) };
    },

    "conversations.history": (args) => {
      const ch = getChannel(str(args, "channel"));
      const top = ch.messages.filter((m) => !isReply(m)).reverse();
      return { body: page(ch, top, args) };
    },

    "users.info": (args) => {
      const id = required(args, "user");
      const u = users.get(id);
      if (!u) throw new ApiError("user_not_found");
      return {
        body: {
          user: {
            id: u.id,
            team_id: teamId,
            name: u.name,
            real_name: u.name,
            deleted: false,
            is_bot: u.isBot,
            is_app_user: false,
            profile: {
              display_name: u.name,
              real_name: u.name,
              ...(u.botId !== undefined ? { bot_id: u.botId } : {}),
            },
          },
        },
      };
    },

    "views.publish": (args) => {
      const userId = required(args, "user_id");
      const view = checkView(args.view);
      if (view.type !== "home") throw new ApiError("invalid_arguments");
      const history = homeViews.get(userId) ?? [];
      history.push(view);
      homeViews.set(userId, history);
      viewCounter += 1;
      return { body: { view: { ...view, id: `V${String(viewCounter).padStart(8, "0")}`, team_id: teamId } } };
    },

    "views.open": (args) => {
      const triggerId = required(args, "trigger_id");
      const issued = triggers.get(triggerId);
      if (issued === undefined) throw new ApiError("invalid_trigger_id");
      if (clock() - issued > triggerTtlMs) throw new ApiError("expired_trigger_id");
      triggers.delete(triggerId);
      const view = checkView(args.view);
      if (view.type !== "modal") throw new ApiError("invalid_arguments");
      openedViews.push({ triggerId, view });
      viewCounter += 1;
      return { body: { view: { ...view, id: `V${String(viewCounter).padStart(8, "0")}`, team_id: teamId } } };
    },

    "apps.connections.open": (_args, auth) => {
      if (auth !== "app") throw new ApiError("not_allowed_token_type");
      const ticket = randomBytes(12).toString("hex");
      socketTickets.add(ticket);
      return { body: { url: `${wsBaseUrl}/link/?ticket=${ticket}&app_id=${appId}` } };
    },
  };

  function checkView(raw: unknown): { type: string; blocks: unknown[] } & Record<string, unknown> {
    if (raw === null || typeof raw !== "object") throw new ApiError("invalid_arguments");
    const view = raw as { type?: unknown; blocks?: unknown } & Record<string, unknown>;
    if (typeof view.type !== "string") throw new ApiError("invalid_arguments");
    const error = validateBlocks(view.blocks, MAX_VIEW_BLOCKS);
    if (error !== undefined) throw new ApiError(error);
    return view as { type: string; blocks: unknown[] } & Record<string, unknown>;
  }

  function page(ch: ChannelState, list: EmulatedMessage[], args: Args): Record<string, unknown> {
    const oldest = str(args, "oldest");
    const latest = str(args, "latest");
    const inclusive = bool(args, "inclusive") ?? false;
    const filtered = list.filter((m) => {
      const t = tsToMicros(m.ts);
      if (oldest !== undefined && (inclusive ? t < tsToMicros(oldest) : t <= tsToMicros(oldest)))
        return false;
      if (latest !== undefined && (inclusive ? t > tsToMicros(latest) : t >= tsToMicros(latest)))
        return false;
      return true;
    });
    const limitArg = Number(str(args, "limit") ?? "100");
    const limit = Number.isFinite(limitArg) && limitArg > 0 ? Math.min(Math.floor(limitArg), 1000) : 100;
    const cursor = str(args, "cursor");
    let start = 0;
    if (cursor !== undefined && cursor.length > 0) {
      const decoded = Number(
        Buffer.from(cursor, "base64")
          .toString("utf8")
          .replace(/^next:/, ""),
      );
      if (!Number.isInteger(decoded) || decoded < 0) throw new ApiError("invalid_cursor");
      start = decoded;
    }
    const slice = filtered.slice(start, start + limit);
    const more = start + limit < filtered.length;
    const withMetadata = bool(args, "include_all_metadata") ?? false;
    return {
      messages: slice.map((m) => toApiMessage(ch, m, withMetadata)),
      has_more: more,
      response_metadata: { next_cursor: more ? Buffer.from(`next:${start + limit}`).toString("base64") : "" },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP server.

  const send = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
    res.end(text);
  };

  const takeFault = (method: string): FaultSpec | undefined => {
    const index = faults.findIndex((f) => f.spec.method === method && f.remaining > 0);
    const fault = faults[index];
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) faults.splice(index, 1);
    return fault.spec;
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, method: string): Promise<void> => {
    const time = clock();
    let args: Args = {};
    const record = (status: number, ok: boolean, error: string | undefined, ignored: boolean): void => {
      const { token: _token, ...rest } = args;
      calls.push({
        method,
        args: rest,
        status,
        ok,
        ...(error !== undefined ? { error } : {}),
        time,
        ignoredRetryAfter: ignored,
      });
    };
    let ignored = false;
    try {
      const raw = await readBody(req);
      args = parseArgs(raw, req.headers["content-type"]);
      const handler = handlers[method];
      if (!handler) throw new ApiError("unknown_method");

      const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
      const token = bearer ?? str(args, "token");
      if (token === undefined) throw new ApiError("not_authed");
      const auth = token === botToken ? "bot" : token === appToken ? "app" : undefined;
      if (auth === undefined) throw new ApiError("invalid_auth");
      if (auth === "app" && method !== "apps.connections.open") throw new ApiError("not_allowed_token_type");

      const channel = str(args, "channel");
      ignored = limiter.inPenalty(method, channel, time);
      if (ignored) stats.ignoredRateLimits += 1;

      const fault = takeFault(method);
      if (fault?.kind === "delay") await sleep(fault.delayMs ?? 1000);
      if (fault?.kind === "429") {
        const retryAfter = fault.retryAfter ?? 1;
        limiter.penalise(method, channel, clock(), retryAfter);
        stats.rateLimited += 1;
        record(429, false, "ratelimited", ignored);
        send(res, 429, { ok: false, error: "ratelimited" }, { "retry-after": String(retryAfter) });
        return;
      }
      if (fault?.kind === "500") {
        record(500, false, "internal_error", ignored);
        send(res, 500, { ok: false, error: "internal_error" });
        return;
      }

      const decision = limiter.take(method, channel, clock());
      if (!decision.allowed) {
        stats.rateLimited += 1;
        record(429, false, "ratelimited", ignored);
        send(
          res,
          429,
          { ok: false, error: "ratelimited" },
          { "retry-after": String(decision.retryAfterSeconds) },
        );
        return;
      }

      const handled = handler(args, auth);
      if (fault?.kind === "drop_response") {
        record(0, true, undefined, ignored);
        handled.after?.();
        // The call took effect; the client never learns it (a lost response).
        req.socket.destroy();
        return;
      }
      record(200, true, undefined, ignored);
      send(res, 200, { ok: true, ...handled.body });
      handled.after?.();
    } catch (error) {
      if (error instanceof ApiError) {
        record(error.status, false, error.code, ignored);
        send(res, error.status, { ok: false, error: error.code });
        return;
      }
      if (error instanceof SyntaxError) {
        record(200, false, "invalid_json", ignored);
        send(res, 200, { ok: false, error: "invalid_json" });
        return;
      }
      record(500, false, "internal_error", ignored);
      send(res, 500, { ok: false, error: "internal_error", detail: String(error) });
    }
  };

  const handleResponseUrl = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readBody(req);
    let body: unknown = raw;
    try {
      body = JSON.parse(raw);
    } catch {
      // Slack accepts plain text bodies too; keep it as is.
    }
    const url = `${baseUrl}${req.url ?? ""}`;
    if (
      body !== null &&
      typeof body === "object" &&
      typeof (body as { text?: unknown }).text === "string" &&
      (body as { text: string }).text.length > MAX_TEXT_CHARS
    ) {
      send(res, 200, { ok: false, error: "msg_too_long" });
      return;
    }
    responses.push({ url, body });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  };

  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    const apiMatch = /^\/api\/([A-Za-z.]+)(\?.*)?$/.exec(url);
    const done = (p: Promise<void>): void => {
      p.catch((error: unknown) => {
        if (!res.headersSent) send(res, 500, { ok: false, error: "internal_error", detail: String(error) });
      });
    };
    if (req.method === "POST" && apiMatch?.[1] !== undefined) return done(handleApi(req, res, apiMatch[1]));
    if (req.method === "POST" && url.startsWith("/response/")) return done(handleResponseUrl(req, res));
    send(res, 404, { ok: false, error: "not_found" });
  });
  const connections = new Set<Socket>();
  server.on("connection", (socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const ticket = url.searchParams.get("ticket");
    if (url.pathname !== "/link/" || ticket === null || !socketTickets.delete(ticket)) {
      socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      // Slack pings; the SDK drops a connection that hears nothing for 30 s.
      const pinger = setInterval(() => {
        if (ws.readyState === ws.OPEN) ws.ping();
      }, 5_000);
      pinger.unref();
      ws.on("message", (data) => {
        let msg: unknown;
        try {
          msg = JSON.parse(String(data));
        } catch {
          return;
        }
        const envelopeId = (msg as { envelope_id?: unknown } | null)?.envelope_id;
        if (typeof envelopeId === "string")
          pendingAcks.get(envelopeId)?.((msg as { payload?: unknown }).payload);
      });
      ws.on("close", () => {
        clearInterval(pinger);
        sockets.delete(ws);
      });
      ws.on("error", () => undefined);
      ws.send(
        JSON.stringify({
          type: "hello",
          num_connections: sockets.size,
          debug_info: { host: "emulated", approximate_connection_time: 3600 },
          connection_info: { app_id: appId },
        }),
      );
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const wsBaseUrl = `ws://127.0.0.1:${port}`;

  // ---------------------------------------------------------------------------------------------
  // Acting as users.

  const user = (
    userId: string,
    o: { isBot?: boolean; botId?: string; name?: string } = {},
  ): SlackUserActor => {
    const existing = users.get(userId);
    const state: UserState = {
      id: userId,
      name: o.name ?? existing?.name ?? userId.toLowerCase(),
      isBot: o.isBot ?? existing?.isBot ?? false,
      ...((o.botId ?? existing?.botId) !== undefined
        ? { botId: o.botId ?? existing?.botId }
        : o.isBot
          ? { botId: `B${userId.slice(1)}` }
          : {}),
    };
    users.set(userId, state);

    const userObject = { id: userId, username: state.name, name: state.name, team_id: teamId };
    const channelObject = (ch: ChannelState) => ({ id: ch.id, name: ch.name });

    return {
      id: userId,
      async postMessage(input) {
        const ch = getChannel(input.channel);
        const threadTs = threadRoot(ch, input.threadTs);
        const m = storeMessage(ch, {
          channel: ch.id,
          ts: nextTs(),
          ...(threadTs !== undefined ? { threadTs } : {}),
          user: userId,
          ...(state.isBot ? { botId: state.botId, subtype: "bot_message" } : {}),
          text: input.text,
          edits: [],
          postedAt: clock(),
        });
        const delivery: Delivery[] = [await deliver(eventEnvelope(messageEvent(ch, m)), { kind: "event" })];
        if (input.text.includes(`<@${botUserId}>`)) {
          const mention: Record<string, unknown> = {
            type: "app_mention",
            user: userId,
            text: m.text,
            ts: m.ts,
            channel: ch.id,
            event_ts: m.ts,
            team: teamId,
          };
          if (state.isBot) mention.bot_id = state.botId;
          if (threadTs !== undefined) mention.thread_ts = threadTs;
          delivery.push(await deliver(eventEnvelope(mention), { kind: "event" }));
        }
        return { ts: m.ts, delivery };
      },

      async react(input) {
        const ch = getChannel(input.channel);
        const m = ch.byTs.get(input.ts);
        if (!m) throw new Error(`slack emulator: no message ${input.channel}:${input.ts} to react to`);
        const byName = ch.reactions.get(m.ts) ?? new Map<string, string[]>();
        ch.reactions.set(m.ts, byName);
        const who = byName.get(input.name) ?? [];
        if (!who.includes(userId)) byName.set(input.name, [...who, userId]);
        return deliver(
          eventEnvelope({
            type: "reaction_added",
            user: userId,
            reaction: input.name,
            item: { type: "message", channel: ch.id, ts: m.ts },
            ...(m.user !== undefined ? { item_user: m.user } : {}),
            event_ts: microsToTs(clock() * 1000),
          }),
          { kind: "event" },
        );
      },

      async slashCommand(input) {
        const ch = getChannel(input.channel);
        return deliver(
          {
            token: VERIFICATION_TOKEN,
            team_id: teamId,
            team_domain: `emulated-${teamId.toLowerCase()}`,
            channel_id: ch.id,
            channel_name: ch.name,
            user_id: userId,
            user_name: state.name,
            command: input.command ?? "/baton",
            text: input.text,
            api_app_id: appId,
            is_enterprise_install: "false",
            response_url: newResponseUrl(),
            trigger_id: newTrigger(),
          },
          { kind: "command" },
        );
      },

      async clickButton(input) {
        const ch = getChannel(input.channel);
        const m = ch.byTs.get(input.messageTs);
        if (!m) throw new Error(`slack emulator: no message ${input.channel}:${input.messageTs} to click in`);
        return deliver(
          {
            type: "block_actions",
            user: userObject,
            api_app_id: appId,
            token: VERIFICATION_TOKEN,
            container: { type: "message", message_ts: m.ts, channel_id: ch.id, is_ephemeral: false },
            trigger_id: newTrigger(),
            team: { id: teamId, domain: `emulated-${teamId.toLowerCase()}` },
            channel: channelObject(ch),
            message: toApiMessage(ch, m, false),
            response_url: newResponseUrl(),
            actions: [
              {
                type: "button",
                action_id: input.actionId,
                block_id: input.blockId ?? "actions",
                value: input.value,
                text: { type: "plain_text", text: input.value },
                action_ts: microsToTs(clock() * 1000),
              },
            ],
          },
          { kind: "interactive" },
        );
      },

      async selectOption(input) {
        const ch = getChannel(input.channel);
        const m = input.messageTs !== undefined ? ch.byTs.get(input.messageTs) : undefined;
        if (input.messageTs !== undefined && !m && !input.ephemeral) {
          throw new Error(`slack emulator: no message ${input.channel}:${input.messageTs}`);
        }
        const container = input.ephemeral
          ? {
              type: "message",
              message_ts: input.messageTs ?? nextTs(),
              channel_id: ch.id,
              is_ephemeral: true,
            }
          : { type: "message", message_ts: m?.ts, channel_id: ch.id, is_ephemeral: false };
        return deliver(
          {
            type: "block_actions",
            user: userObject,
            api_app_id: appId,
            token: VERIFICATION_TOKEN,
            container,
            trigger_id: newTrigger(),
            team: { id: teamId, domain: `emulated-${teamId.toLowerCase()}` },
            channel: channelObject(ch),
            ...(m && !input.ephemeral ? { message: toApiMessage(ch, m, false) } : {}),
            response_url: newResponseUrl(),
            actions: [
              {
                type: "static_select",
                action_id: input.actionId,
                block_id: input.blockId ?? "actions",
                selected_option: { text: { type: "plain_text", text: input.value }, value: input.value },
                action_ts: microsToTs(clock() * 1000),
              },
            ],
          },
          { kind: "interactive" },
        );
      },

      async openHome() {
        return deliver(
          eventEnvelope({
            type: "app_home_opened",
            user: userId,
            channel: `D${userId.slice(1)}`,
            tab: "home",
            event_ts: microsToTs(clock() * 1000),
          }),
          { kind: "event" },
        );
      },
    };
  };

  return {
    apiUrl: `${baseUrl}/api/`,
    botToken,
    appToken,
    signingSecret,
    botUserId,
    botId,
    teamId,
    appId,
    setEventsUrl(url) {
      eventsUrl = url;
    },
    user,
    channel(id, o = {}) {
      addChannel(id, o.name);
    },
    messages(channel, threadTs) {
      const ch = channels.get(channel);
      if (!ch) return [];
      if (threadTs === undefined) return ch.messages.filter((m) => !isReply(m));
      const root = ch.byTs.get(threadTs);
      const rootTs = root?.threadTs ?? threadTs;
      return ch.messages.filter((m) => m.ts === rootTs || m.threadTs === rootTs);
    },
    message(channel, ts) {
      return channels.get(channel)?.byTs.get(ts);
    },
    reactions(channel, ts) {
      const byName = channels.get(channel)?.reactions.get(ts);
      if (!byName) return [];
      return [...byName]
        .filter(([, who]) => who.length > 0)
        .map(([name, who]) => ({ name, users: [...who] }));
    },
    ephemerals(filter = {}) {
      return ephemerals.filter(
        (e) =>
          (filter.user === undefined || e.user === filter.user) &&
          (filter.channel === undefined || e.channel === filter.channel),
      );
    },
    calls(method) {
      return method === undefined ? [...calls] : calls.filter((c) => c.method === method);
    },
    stats(): SlackEmulatorStats {
      const byMethod: Record<string, number> = {};
      for (const c of calls) byMethod[c.method] = (byMethod[c.method] ?? 0) + 1;
      return { rateLimited: stats.rateLimited, ignoredRateLimits: stats.ignoredRateLimits, byMethod };
    },
    homeViews(userId) {
      return [...(homeViews.get(userId) ?? [])];
    },
    openedViews() {
      return [...openedViews];
    },
    responses() {
      return [...responses];
    },
    injectFault(f) {
      faults.push({ spec: f, remaining: f.times ?? 1 });
    },
    async waitFor<T>(fn: () => T | undefined | false | null, timeoutMs = 5000): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = fn();
        if (value !== undefined && value !== false && value !== null) return value;
        if (Date.now() > deadline)
          throw new Error(`slack emulator: condition not met within ${timeoutMs} ms`);
        await sleep(10);
      }
    },
    deliver,
    urlVerification(challenge = randomBytes(8).toString("hex")) {
      return deliver({ token: VERIFICATION_TOKEN, challenge, type: "url_verification" }, { kind: "event" });
    },
    socket: {
      connected: () => [...sockets].some((s) => s.readyState === s.OPEN),
      disconnectAll: () => {
        for (const s of sockets) s.close(1001, "going away");
      },
    },
    async close() {
      for (const s of sockets) s.terminate();
      sockets.clear();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const c of connections) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
