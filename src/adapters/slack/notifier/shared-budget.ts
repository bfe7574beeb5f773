// The Slack budget shared by every replica (bot and worker processes), on Redis: one sliding window
// per bucket in a sorted set, where a call in flight holds a lease and an answered call counts until
// `windowMs` after its answer, plus the Retry-After pause. Redis's clock is the only clock, so
// replicas with skewed clocks still agree.
import type { Redis } from "../../redis/connection.js";
import type { BudgetRule } from "./budget.js";

export interface SharedRateBudget {
  /** Takes a slot for call `id`, or says how long to wait before asking again. */
  take(key: string, rule: BudgetRule, id: string): Promise<{ ok: true } | { ok: false; waitMs: number }>;
  /** The call was answered: its slot now counts for `windowMs` from now. */
  settle(key: string, id: string): Promise<void>;
  /** No call was made with the slot: free it at once. */
  cancel(key: string, id: string): Promise<void>;
  /** Slack said Retry-After: no replica calls this bucket for `seconds`. */
  pause(key: string, seconds: number): Promise<void>;
}

/** How long a call may stay unanswered before its slot is considered lost (a crashed replica). */
const LEASE_MS = 60_000;
/** Longest single wait before asking again (slots held by calls in flight free up on answer). */
const MAX_WAIT_MS = 1_000;

// KEYS: window zset, pause key. ARGV: windowMs, max, id, leaseMs, maxWaitMs.
// Returns 0 when the slot was taken, else milliseconds to wait.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return math.min(paused - now, tonumber(ARGV[5])) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + tonumber(ARGV[4]))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
return math.max(1, math.min(wait, tonumber(ARGV[5])))
`;

// KEYS: window zset. ARGV: id.
const SETTLE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 1
`;

// KEYS: pause key. ARGV: milliseconds.
const PAUSE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > current then redis.call('SET', KEYS[1], untilMs, 'PX', tonumber(ARGV[1])) end
return 1
`;

export function createRedisRateBudget(redis: Redis, prefix: string): SharedRateBudget {
  const windowKey = (key: string) => `${prefix}slack-budget:${key}`;
  const pauseKey = (key: string) => `${prefix}slack-budget:${key}:paused`;
  return {
    async take(key, rule, id) {
      const wait = Number(
        await redis.eval(
          TAKE,
          2,
          windowKey(key),
          pauseKey(key),
          String(rule.windowMs),
          String(rule.max),
          id,
          String(LEASE_MS),
          String(MAX_WAIT_MS),
        ),
      );
      return wait === 0 ? { ok: true } : { ok: false, waitMs: wait };
    },
    async settle(key, id) {
      await redis.eval(SETTLE, 1, windowKey(key), id);
    },
    async cancel(key, id) {
      await redis.zrem(windowKey(key), id);
    },
    async pause(key, seconds) {
      await redis.eval(PAUSE, 1, pauseKey(key), String(Math.max(1, Math.ceil(seconds * 1000))));
    },
  };
}
