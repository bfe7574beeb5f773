// Slack's payload limits and rate limits as the emulator enforces them.
import type { RateLimitOptions, RateLimitRule, SlackMethod } from "./types.js";

export const MAX_TEXT_CHARS = 40_000;
export const MAX_MESSAGE_BLOCKS = 50;
export const MAX_VIEW_BLOCKS = 100;
export const MAX_SECTION_TEXT_CHARS = 3_000;
export const MAX_SECTION_FIELDS = 10;
export const MAX_FIELD_TEXT_CHARS = 2_000;
export const MAX_HEADER_TEXT_CHARS = 150;
export const MAX_CONTEXT_ELEMENTS = 10;
export const MAX_ACTIONS_ELEMENTS = 25;
export const MAX_BLOCK_ID_CHARS = 255;

const BLOCK_TYPES = new Set([
  "section",
  "divider",
  "header",
  "context",
  "actions",
  "image",
  "input",
  "rich_text",
  "file",
  "video",
  "markdown",
]);

function textOf(value: unknown): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const text = (value as { text?: unknown }).text;
  return typeof text === "string" ? text : undefined;
}

/** Undefined when the blocks are acceptable, otherwise Slack's error code. */
export function validateBlocks(blocks: unknown, maxBlocks: number): string | undefined {
  if (!Array.isArray(blocks)) return "invalid_blocks_format";
  if (blocks.length > maxBlocks) return "invalid_blocks";
  for (const block of blocks) {
    if (block === null || typeof block !== "object") return "invalid_blocks";
    const b = block as Record<string, unknown>;
    if (typeof b.type !== "string" || !BLOCK_TYPES.has(b.type)) return "invalid_blocks";
    if (typeof b.block_id === "string" && b.block_id.length > MAX_BLOCK_ID_CHARS) return "invalid_blocks";
    switch (b.type) {
      case "section": {
        const text = textOf(b.text);
        const fields = b.fields;
        if (text === undefined && !Array.isArray(fields)) return "invalid_blocks";
        if (text !== undefined && (text.length === 0 || text.length > MAX_SECTION_TEXT_CHARS))
          return "invalid_blocks";
        if (Array.isArray(fields)) {
          if (fields.length > MAX_SECTION_FIELDS) return "invalid_blocks";
          for (const f of fields) {
            const t = textOf(f);
            if (t === undefined || t.length > MAX_FIELD_TEXT_CHARS) return "invalid_blocks";
          }
        }
        break;
      }
      case "header": {
        const text = textOf(b.text);
        if (text === undefined || text.length === 0 || text.length > MAX_HEADER_TEXT_CHARS)
          return "invalid_blocks";
        break;
      }
      case "context": {
        if (
          !Array.isArray(b.elements) ||
          b.elements.length === 0 ||
          b.elements.length > MAX_CONTEXT_ELEMENTS
        ) {
          return "invalid_blocks";
        }
        break;
      }
      case "actions": {
        if (
          !Array.isArray(b.elements) ||
          b.elements.length === 0 ||
          b.elements.length > MAX_ACTIONS_ELEMENTS
        ) {
          return "invalid_blocks";
        }
        break;
      }
      default:
        break;
    }
  }
  return undefined;
}

/** Checks a message body (text and/or blocks) like chat.postMessage / chat.update do. */
export function validateMessage(text: unknown, blocks: unknown): string | undefined {
  if (text !== undefined && typeof text !== "string") return "invalid_arguments";
  const hasText = typeof text === "string" && text.length > 0;
  const hasBlocks = Array.isArray(blocks) && blocks.length > 0;
  if (!hasText && !hasBlocks && blocks === undefined) return "no_text";
  if (typeof text === "string" && text.length > MAX_TEXT_CHARS) return "msg_too_long";
  if (blocks !== undefined) return validateBlocks(blocks, MAX_MESSAGE_BLOCKS);
  return undefined;
}

/** Defaults like Slack's tiers: Tier 3 ≈ 50/min, Tier 4 ≈ 100/min, chat.postMessage ≈ 1/s per channel. */
export const DEFAULT_RATE_LIMITS: Record<SlackMethod, RateLimitRule | null> = {
  "auth.test": { max: 100, windowMs: 60_000, scope: "workspace" },
  "chat.postMessage": { max: 5, windowMs: 5_000, scope: "channel" },
  "chat.update": { max: 50, windowMs: 60_000, scope: "workspace" },
  "chat.postEphemeral": { max: 100, windowMs: 60_000, scope: "workspace" },
  "chat.getPermalink": { max: 100, windowMs: 60_000, scope: "workspace" },
  "reactions.add": { max: 50, windowMs: 60_000, scope: "workspace" },
  "conversations.replies": { max: 50, windowMs: 60_000, scope: "workspace" },
  "conversations.history": { max: 50, windowMs: 60_000, scope: "workspace" },
  "users.info": { max: 100, windowMs: 60_000, scope: "workspace" },
  "views.publish": { max: 100, windowMs: 60_000, scope: "workspace" },
  "views.open": { max: 100, windowMs: 60_000, scope: "workspace" },
  "apps.connections.open": { max: 100, windowMs: 60_000, scope: "workspace" },
};

export function resolveRateLimits(overrides: RateLimitOptions | undefined): Map<string, RateLimitRule> {
  const rules = new Map<string, RateLimitRule>();
  for (const [method, rule] of Object.entries({ ...DEFAULT_RATE_LIMITS, ...overrides })) {
    if (rule) rules.set(method, rule);
  }
  return rules;
}

export type RateDecision =
  { allowed: true } | { allowed: false; retryAfterSeconds: number; ignored: boolean };

/** Sliding-window limiter with Retry-After penalties, keyed by method (and channel for per-channel rules). */
export class SlidingWindowLimiter {
  private readonly accepted = new Map<string, number[]>();
  private readonly penaltyUntil = new Map<string, number>();

  constructor(private readonly rules: Map<string, RateLimitRule>) {}

  private key(method: string, channel: string | undefined): string | undefined {
    const rule = this.rules.get(method);
    if (!rule) return undefined;
    return rule.scope === "channel" ? `${method}:${channel ?? "-"}` : method;
  }

  /** True when a call now would land inside a Retry-After window Slack announced earlier. */
  inPenalty(method: string, channel: string | undefined, now: number): boolean {
    const key = this.key(method, channel) ?? method;
    return (this.penaltyUntil.get(key) ?? 0) > now;
  }

  /** Opens a Retry-After window (also used by injected 429 faults). */
  penalise(method: string, channel: string | undefined, now: number, retryAfterSeconds: number): void {
    const key = this.key(method, channel) ?? method;
    this.penaltyUntil.set(key, Math.max(this.penaltyUntil.get(key) ?? 0, now + retryAfterSeconds * 1000));
  }

  /** Decides one call and, when allowed, counts it. */
  take(method: string, channel: string | undefined, now: number): RateDecision {
    const key = this.key(method, channel);
    const rule = this.rules.get(method);
    if (key === undefined || !rule) return { allowed: true };
    const penalty = this.penaltyUntil.get(key) ?? 0;
    if (penalty > now) {
      return {
        allowed: false,
        retryAfterSeconds: Math.max(1, Math.ceil((penalty - now) / 1000)),
        ignored: true,
      };
    }
    const times = (this.accepted.get(key) ?? []).filter((t) => t > now - rule.windowMs);
    if (times.length >= rule.max) {
      const oldest = times[0] ?? now;
      const retryAfterSeconds = Math.max(1, Math.ceil((oldest + rule.windowMs - now) / 1000));
      this.accepted.set(key, times);
      this.penaltyUntil.set(key, now + retryAfterSeconds * 1000);
      return { allowed: false, retryAfterSeconds, ignored: false };
    }
    times.push(now);
    this.accepted.set(key, times);
    return { allowed: true };
  }
}
