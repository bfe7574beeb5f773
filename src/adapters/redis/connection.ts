// Redis connections (ioredis). Producers fail fast while Redis is down; blocking consumers (BullMQ
// workers) need `maxRetriesPerRequest: null` and wait instead.
import { Redis, type RedisOptions } from "ioredis";

export type { Redis };

export interface RedisConnectOptions {
  /** For BullMQ workers and other blocking consumers: retry forever instead of failing the command. */
  blocking?: boolean;
  connectionName?: string;
  /** One connection attempt, no reconnects (checks such as `baton doctor`). */
  once?: boolean;
}

export function connectRedis(url: string, options: RedisConnectOptions = {}): Redis {
  const base: RedisOptions = {
    connectionName: options.connectionName ?? "baton",
    lazyConnect: false,
    enableReadyCheck: true,
    // Reconnect with capped backoff forever: Redis restarts must not take the bot down.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    reconnectOnError: () => true,
  };
  if (options.once) {
    base.retryStrategy = () => null;
    base.reconnectOnError = () => false;
  }
  return new Redis(url, {
    ...base,
    ...(options.blocking
      ? { maxRetriesPerRequest: null }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 5000 }),
  });
}

/** Resolves once the connection is ready (or rejects after `timeoutMs`). */
export async function waitForRedis(redis: Redis, timeoutMs = 10_000): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    // A client that gives up reconnecting (`once`) ends: fail now instead of at the timeout.
    const onEnd = () => {
      cleanup();
      reject(new Error("Redis connection closed (refused or unreachable)"));
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("end", onEnd);
    };
    redis.on("ready", onReady);
    redis.on("end", onEnd);
  });
}

export interface EvictionPolicyCheck {
  ok: boolean;
  policy: string;
  message: string;
}

/**
 * Baton keeps tasks and queues in Redis: an evicting `maxmemory-policy` silently loses them.
 * `noeviction` makes Redis refuse writes instead, which Baton reports.
 */
export async function checkEvictionPolicy(redis: Redis): Promise<EvictionPolicyCheck> {
  let policy = "unknown";
  try {
    const answer = (await redis.call("CONFIG", "GET", "maxmemory-policy")) as unknown;
    if (Array.isArray(answer) && typeof answer[1] === "string") policy = answer[1];
  } catch {
    // Managed Redis services often forbid CONFIG; fall back to INFO.
    const info = await redis.info("memory");
    policy = /maxmemory_policy:(\S+)/.exec(info)?.[1] ?? "unknown";
  }
  const ok = policy === "noeviction";
  return {
    ok,
    policy,
    message: ok
      ? "maxmemory-policy is noeviction"
      : `maxmemory-policy is ${policy}; set it to noeviction or Redis may silently drop tasks and queued runs`,
  };
}
