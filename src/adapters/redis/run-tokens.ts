// Per-run tokens for the runner API (CONTRACT §7): 32 random bytes, handed to the agent once and
// stored only as a sha256 hash mapping to the run id. Revoked when the run ends.
import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "./connection.js";

export interface RunTokens {
  /** A new token for the run; valid for `ttlSeconds` at most (the run's deadline plus a margin). */
  mint(runId: string, ttlSeconds: number): Promise<string>;
  /** The run id a token belongs to, or undefined for an unknown or revoked token. */
  resolve(token: string): Promise<string | undefined>;
  /** Revokes one token (e.g. minted for a launch that turned out to be a re-attach). */
  revoke(token: string): Promise<void>;
  /** Revokes every token of the run. Idempotent. */
  revokeAll(runId: string): Promise<void>;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function createRedisRunTokens(redis: Redis, prefix: string): RunTokens {
  const tokenKey = (hash: string) => `${prefix}runtoken:${hash}`;
  const runKey = (runId: string) => `${prefix}run:${runId}:tokens`;
  return {
    async mint(runId, ttlSeconds) {
      const token = randomBytes(32).toString("base64url");
      const hash = hashToken(token);
      const ttl = Math.max(60, Math.ceil(ttlSeconds));
      await redis
        .multi()
        .set(tokenKey(hash), runId, "EX", ttl)
        .sadd(runKey(runId), hash)
        .expire(runKey(runId), ttl)
        .exec();
      return token;
    },
    async resolve(token) {
      // Cheap shape check first: garbage never reaches Redis.
      if (!TOKEN_PATTERN.test(token)) return undefined;
      const runId = await redis.get(tokenKey(hashToken(token)));
      return runId ?? undefined;
    },
    async revoke(token) {
      const hash = hashToken(token);
      const runId = await redis.get(tokenKey(hash));
      const multi = redis.multi().del(tokenKey(hash));
      if (runId) multi.srem(runKey(runId), hash);
      await multi.exec();
    },
    async revokeAll(runId) {
      const hashes = await redis.smembers(runKey(runId));
      const multi = redis.multi();
      for (const hash of hashes) multi.del(tokenKey(hash));
      multi.del(runKey(runId));
      await multi.exec();
    },
  };
}
