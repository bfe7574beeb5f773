// Public types of the Slack Web API emulator (see index.ts for the server itself).

/** The Web API methods the emulator speaks. */
export type SlackMethod =
  | "auth.test"
  | "chat.postMessage"
  | "chat.update"
  | "chat.postEphemeral"
  | "chat.getPermalink"
  | "reactions.add"
  | "conversations.replies"
  | "conversations.history"
  | "users.info"
  | "views.publish"
  | "views.open"
  | "apps.connections.open";

/**
 * At most `max` accepted calls in any `windowMs` (sliding window), counted per workspace or per
 * channel. Calls answered 429 do not count, like Slack.
 */
export interface RateLimitRule {
  max: number;
  windowMs: number;
  scope: "workspace" | "channel";
}

/** `null` switches a method's limit off. */
export type RateLimitOptions = Partial<Record<SlackMethod, RateLimitRule | null>>;

export interface SlackEmulatorOptions {
  botToken?: string;
  appToken?: string;
  signingSecret?: string;
  botUserId?: string;
  botId?: string;
  teamId?: string;
  appId?: string;
  /** Where user actions are delivered over HTTP (signed) while no Socket Mode client is connected. */
  eventsUrl?: string;
  rateLimits?: RateLimitOptions;
  /** Milliseconds since the epoch; drives rate-limit windows, message timestamps and signatures. */
  clock?: () => number;
  /** Deliver the bot's own API posts back as `message` events (to test that the app ignores itself). */
  echoBotMessages?: boolean;
  /** C…/G…/D… channel ids that were never declared are created on first use (default true). */
  autoCreateChannels?: boolean;
  /** How long a trigger_id is valid for views.open (Slack: 3 s). */
  triggerTtlMs?: number;
  /** How long a Socket Mode delivery waits for the client's ack before reporting status 0. */
  socketAckTimeoutMs?: number;
}

export type FaultKind = "429" | "500" | "drop_response" | "delay";

export interface FaultSpec {
  method: SlackMethod | string;
  kind: FaultKind;
  /** How many calls the fault applies to (default 1). */
  times?: number;
  /** Seconds, for kind "429" (default 1). */
  retryAfter?: number;
  /** For kind "delay" (default 1000). */
  delayMs?: number;
}

export interface MessageEdit {
  text: string;
  blocks?: unknown[];
  at: number;
}

export interface EmulatedMessage {
  channel: string;
  ts: string;
  /** Set on replies (the root's ts) and on a root that has replies. */
  threadTs?: string;
  user?: string;
  botId?: string;
  subtype?: string;
  text: string;
  blocks?: unknown[];
  metadata?: { event_type: string; event_payload: Record<string, unknown> };
  unfurlLinks?: boolean;
  unfurlMedia?: boolean;
  /** Earlier versions, oldest first (chat.update keeps the ts and records what it replaced). */
  edits: MessageEdit[];
  postedAt: number;
}

export interface EmulatedEphemeral {
  channel: string;
  user: string;
  text: string;
  blocks?: unknown[];
  threadTs?: string;
  messageTs: string;
  postedBy: string;
  at: number;
}

export interface RecordedCall {
  method: string;
  args: Record<string, unknown>;
  /** HTTP status answered (0 when the response was dropped). */
  status: number;
  ok: boolean;
  error?: string;
  time: number;
  /** The call came while its method was still inside a Retry-After window. */
  ignoredRetryAfter: boolean;
}

export interface Delivery {
  status: number;
  body: string;
  ms: number;
}

export type DeliveryKind = "event" | "command" | "interactive";

export interface DeliverOptions {
  kind?: DeliveryKind;
  retryNum?: number;
  retryReason?: string;
  /** Signature timestamp in seconds (forge stale requests with it). */
  timestamp?: number;
  /** Replaces the computed `X-Slack-Signature` (forge bad signatures with it). */
  signature?: string;
}

export interface SlackUserActor {
  readonly id: string;
  postMessage(input: {
    channel: string;
    text: string;
    threadTs?: string;
  }): Promise<{ ts: string; delivery: Delivery[] }>;
  react(input: { channel: string; ts: string; name: string }): Promise<Delivery>;
  slashCommand(input: { channel: string; text: string; command?: string }): Promise<Delivery>;
  clickButton(input: {
    channel: string;
    messageTs: string;
    actionId: string;
    value: string;
    blockId?: string;
  }): Promise<Delivery>;
  selectOption(input: {
    channel: string;
    messageTs?: string;
    actionId: string;
    value: string;
    ephemeral?: boolean;
    blockId?: string;
  }): Promise<Delivery>;
  openHome(): Promise<Delivery>;
}

export interface SlackEmulatorStats {
  rateLimited: number;
  ignoredRateLimits: number;
  byMethod: Record<string, number>;
}

export interface SlackEmulator {
  /** "http://127.0.0.1:PORT/api/" (what SLACK_API_URL gets). */
  apiUrl: string;
  botToken: string;
  appToken: string;
  signingSecret: string;
  botUserId: string;
  botId: string;
  teamId: string;
  appId: string;
  setEventsUrl(url: string): void;
  user(userId: string, opts?: { isBot?: boolean; botId?: string; name?: string }): SlackUserActor;
  channel(id: string, opts?: { name?: string }): void;
  /** Top-level messages of a channel, or one thread (root first), oldest first. */
  messages(channel: string, threadTs?: string): EmulatedMessage[];
  message(channel: string, ts: string): EmulatedMessage | undefined;
  reactions(channel: string, ts: string): { name: string; users: string[] }[];
  ephemerals(filter?: { user?: string; channel?: string }): EmulatedEphemeral[];
  calls(method?: string): RecordedCall[];
  stats(): SlackEmulatorStats;
  homeViews(userId: string): unknown[];
  /** Views opened with views.open, oldest first. */
  openedViews(): { triggerId: string; view: unknown }[];
  responses(): { url: string; body: unknown }[];
  injectFault(f: FaultSpec): void;
  waitFor<T>(fn: () => T | undefined | false | null, timeoutMs?: number): Promise<T>;
  deliver(payload: unknown, opts?: DeliverOptions): Promise<Delivery>;
  /** Sends Slack's `url_verification` challenge to the events URL. */
  urlVerification(challenge?: string): Promise<Delivery>;
  socket: {
    connected(): boolean;
    /** Closes every Socket Mode connection (clients are expected to reconnect). */
    disconnectAll(): void;
  };
  close(): Promise<void>;
}
