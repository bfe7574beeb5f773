// Port: the Slack Web API operations Baton uses (adapter: src/adapters/slack/chat.ts over @slack/web-api).
// Blocks are Slack Block Kit JSON; core/render.ts builds them within Slack's limits.

export type SlackBlock = Record<string, unknown>;

export interface PostMessageInput {
  channel: string;
  threadTs?: string;
  text: string;
  blocks?: SlackBlock[];
}

export interface ThreadReadMessage {
  ts: string;
  /** The thread's root ts, when the message is part of a thread. */
  threadTs?: string;
  user?: string;
  botId?: string;
  text: string;
}

/** A call whose outcome is unknown (timeout, connection reset after sending): never blindly retried. */
export class UnknownOutcomeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnknownOutcomeError";
  }
}

/** Slack answered 429; `retryAfterSeconds` comes from its Retry-After header. */
export class RateLimitedError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`rate limited, retry after ${retryAfterSeconds}s`);
    this.name = "RateLimitedError";
  }
}

export interface ChatPort {
  postMessage(input: PostMessageInput): Promise<{ ts: string }>;
  updateMessage(input: { channel: string; ts: string; text: string; blocks?: SlackBlock[] }): Promise<void>;
  postEphemeral(input: {
    channel: string;
    user: string;
    threadTs?: string;
    text: string;
    blocks?: SlackBlock[];
  }): Promise<void>;
  addReaction(input: { channel: string; ts: string; name: string }): Promise<void>;
  /** The thread's messages, oldest first, at most `limit`. */
  readThread(input: { channel: string; threadTs: string; limit: number }): Promise<ThreadReadMessage[]>;
  permalink(input: { channel: string; ts: string }): Promise<string | undefined>;
  userName(userId: string): Promise<string | undefined>;
  publishHome(input: { userId: string; blocks: SlackBlock[] }): Promise<void>;
  /** Bot identity (auth.test). */
  whoAmI(): Promise<{ userId: string; botId?: string; teamId?: string }>;
}
